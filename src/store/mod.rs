//! Durable state behind one interface.
//!
//! The store knows rows, indexes and transactions; it does not know what a
//! certificate or a lifecycle rule is. The domain layer serialises its
//! entities into [`CaRow`] / [`LeafRow`] and decides everything; the store
//! only guarantees atomicity, durability (nothing is acknowledged before its
//! transaction is committed to disk) and uniqueness constraints.
//!
//! Every write transaction appends to the change log ([`Change`]), whose
//! sequence number only grows: readers (the responder's snapshot builder,
//! other processes) follow it to learn what changed.

#[cfg(test)]
pub(crate) mod conformance;
mod migrations;
mod pg_tls;
pub mod postgres;
pub(crate) mod rows;
pub mod sqlite;

pub use crate::x509::RevocationReason;
pub use pg_tls::{PgConnector, SslMode};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Errors from a storage backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("database error: {0}")]
    Backend(String),
    #[error("a certification authority named {0:?} already exists")]
    DuplicateCommonName(String),
    #[error("serial number already used by this CA")]
    DuplicateSerial,
    #[error("the row was changed concurrently")]
    Conflict,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
    /// The database cannot be reached; nothing was written.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The database URL or its TLS settings are wrong: nothing to retry.
    #[error("invalid database settings: {0}")]
    Settings(String),
    /// Another writer held the database past the busy timeout; nothing was
    /// written, and retrying later will do.
    #[error("the database is busy")]
    Busy,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => StoreError::Busy,
            _ => StoreError::Backend(e.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The one decoding of a stored reason code (the column holds RFC 5280's
/// CRLReason value): an unknown code is corruption, never a guess.
pub(crate) fn reason_from_column(code: Option<i64>) -> Result<Option<RevocationReason>> {
    code.map(|c| {
        u8::try_from(c)
            .ok()
            .and_then(RevocationReason::from_code)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown revocation reason code {c}")))
    })
    .transpose()
}

/// A certification authority as stored: one column per fact, no document.
/// Enumerations are stored by their names (the domain owns the spelling);
/// lists of tokens (OIDs, scope tag ids) as space-separated text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaRow {
    pub id: String,
    /// `rootCertificationAuthority`, ...
    pub ca_type: String,
    pub display_name: String,
    pub description: Option<String>,
    /// The anchoring root of an issuing CA.
    pub issuer_id: Option<String>,
    /// Lifecycle status as stored (never "expired": that is derived).
    pub status: String,
    pub common_name: String,
    pub organization_name: Option<String>,
    pub organization_unit: Option<String>,
    pub country_name: Option<String>,
    pub state_name: Option<String>,
    pub locality_name: Option<String>,
    /// The subject as Graph prints it (from the certificate once there is one).
    pub subject_name: String,
    pub key_algorithm: String,
    pub hash_algorithm: String,
    pub key_platform: String,
    pub validity_years: i64,
    /// EKU OIDs, dotted.
    pub ekus: Vec<String>,
    pub scope_tags: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub modified_at: i64,
    /// The CA certificate's version (1 until renewal exists).
    pub version: i64,
    pub issuer_common_name: Option<String>,
    pub root_common_name: Option<String>,
    /// Where the issuer's certificate is published (AIA caIssuers).
    pub issuer_cert_url: Option<String>,
    pub cert: Option<Vec<u8>>,
    /// Certificates above this CA when an external CA signed it (DER, issuer first).
    pub chain: Vec<Vec<u8>>,
    pub csr: Option<Vec<u8>>,
    /// Unix seconds.
    pub revoked_at: Option<i64>,
    pub revocation_reason: Option<RevocationReason>,
    /// Incremented on every update; the basis of the entity's eTag.
    pub row_version: i64,
    /// Highest CRL number issued for this CA (0: none yet); its partitions
    /// share the sequence.
    pub crl_number: i64,
    /// How many CRL partitions new leaves are spread over (0: none, every
    /// leaf on `current.crl`).
    pub crl_partitions: i64,
    /// Whether the CA publishes delta CRLs (and its new leaves name them).
    pub delta_crls: bool,
    /// The issuer's pre-signed OCSP answers about this CA's certificate.
    pub ocsp: Option<Presigned>,
}

/// Pre-signed OCSP responses for one certificate: the SHA-1 CertID answer
/// (RFC 5019's, what clients send) always; the SHA-256 one only for CA
/// certificates and rows signed before it became lazy (a leaf's is signed
/// on demand where asked for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presigned {
    pub sha1: Vec<u8>,
    pub sha256: Option<Vec<u8>>,
    /// Unix seconds; the responses' thisUpdate.
    pub this_update: i64,
    /// Unix seconds; their nextUpdate as signed (None: rows signed before it
    /// was stored, whose nextUpdate is thisUpdate plus the validity setting).
    pub next_update: Option<i64>,
}

impl Presigned {
    /// The SHA-256 answer as stored: empty, not NULL, when not pre-signed.
    /// A node of the previous release reads NULL as "no answers at all"
    /// (and would keep answering good for a leaf an upgraded signer revoked).
    pub fn stored_sha256(&self) -> &[u8] {
        self.sha256.as_deref().unwrap_or_default()
    }
}

/// What the responder needs of a leaf: status and pre-signed answers, no certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafStatusRow {
    pub seq: i64,
    pub id: String,
    pub ca_id: String,
    pub serial: String,
    pub not_after: i64,
    pub revoked_at: Option<i64>,
    pub revocation_reason: Option<RevocationReason>,
    pub ocsp: Option<Presigned>,
    /// The CRL partition its certificate names (0: `current.crl`).
    pub crl_partition: u32,
}

/// A CA's delegated OCSP signing certificate and its sealed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegateRow {
    pub cert: Vec<u8>,
    pub sealed_key: Vec<u8>,
    /// Unix seconds.
    pub not_after: i64,
}

/// An enrolment profile: what a device may get from one issuing CA.
/// Lists are space-separated (key type names, suffixes, EKU OIDs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileRow {
    pub id: String,
    pub ca_id: String,
    pub name: String,
    pub key_types: String,
    pub cn_suffixes: String,
    pub dns_suffixes: String,
    pub ekus: String,
    pub validity_days: i64,
    pub renewal_days: i64,
    /// Requests wait for an administrator's approval.
    pub requires_approval: bool,
    pub created_at: i64,
    pub created_by: String,
    pub removed_at: Option<i64>,
    /// Space-separated Graph names; empty: by key type.
    pub key_usages: String,
}

/// A device's request waiting for (or decided by) an administrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolmentRequestRow {
    pub id: String,
    pub ca_id: String,
    pub transaction_id: String,
    pub profile_id: String,
    /// DER CertificationRequestInfo, without its challengePassword.
    pub csr: Vec<u8>,
    pub device_id: Option<String>,
    pub requested_at: i64,
    /// "pending", "issued" or "rejected".
    pub state: String,
    pub decided_at: Option<i64>,
    pub decided_by: Option<String>,
    pub leaf_id: Option<String>,
    pub reason: Option<String>,
}

/// An enrolment challenge; the secret itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeRow {
    pub id: String,
    pub profile_id: String,
    /// SHA-256 of the secret.
    pub secret_hash: Vec<u8>,
    pub uses_left: i64,
    pub expires_at: i64,
    pub device_id: Option<String>,
    /// The common name a request must carry, when bound.
    pub subject: Option<String>,
    pub created_at: i64,
    pub created_by: String,
}

/// A keyless responder's own OCSP signing key, as it asked to be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponderRow {
    /// Derived from the key (see `domain::edge`): one id, one key.
    pub id: String,
    pub name: String,
    /// SubjectPublicKeyInfo, DER.
    pub public_key: Vec<u8>,
    /// Unix seconds.
    pub requested_at: i64,
    pub approved_at: Option<i64>,
    pub approved_by: Option<String>,
    pub removed_at: Option<i64>,
    /// When the responder last said it is alive (unix seconds).
    pub last_seen_at: Option<i64>,
}

/// A delegated OCSP responder certificate of one responder for one CA version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponderCertRow {
    pub responder_id: String,
    pub ca_id: String,
    pub ca_version: i64,
    pub cert: Vec<u8>,
    /// Unix seconds.
    pub not_after: i64,
}

/// One audit event (append-only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub seq: i64,
    /// Unix seconds.
    pub at: i64,
    pub actor: String,
    pub activity: String,
    pub target_type: String,
    pub target_id: String,
    /// "success" or "failure".
    pub result: String,
    pub detail: String,
    /// The scope tags of the CA the event concerns, when it happened: who
    /// may read the event (none: administrators only).
    pub scope_tags: Vec<String>,
}

/// An API token cloudpki minted (or a foreign token's id put on the deny list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// The token's `jti`.
    pub jti: String,
    pub principal: String,
    /// Unix seconds; 0 when unknown (a foreign token revoked by id).
    pub issued_at: i64,
    pub expires_at: i64,
    /// Graph permissions it carries, space-separated.
    pub permissions: String,
    pub revoked_at: Option<i64>,
    pub revoked_by: Option<String>,
}

/// Which of a CA's CRLs: a partition (0: `current.crl`), complete or delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CrlScopeKey {
    pub partition: u32,
    pub delta: bool,
}

impl CrlScopeKey {
    pub const fn complete(partition: u32) -> Self {
        CrlScopeKey {
            partition,
            delta: false,
        }
    }
    pub const fn delta(partition: u32) -> Self {
        CrlScopeKey { partition, delta: true }
    }

    /// Its name in metrics and logs: `3`, `3-delta`.
    pub fn label(&self) -> String {
        match self.delta {
            false => self.partition.to_string(),
            true => format!("{}-delta", self.partition),
        }
    }
}

/// The latest published CRL of one scope of a CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlRow {
    pub ca_id: String,
    pub scope: CrlScopeKey,
    pub number: i64,
    pub this_update: i64,
    pub next_update: i64,
    pub der: Vec<u8>,
}

/// A leaf certificate as stored: one column per fact, no document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafRow {
    /// Insertion order; stable paging key.
    pub seq: i64,
    pub id: String,
    pub ca_id: String,
    /// The version of the CA certificate that signed it.
    pub ca_version: i64,
    /// Canonical uppercase hex of the serial's DER INTEGER contents.
    pub serial: String,
    pub subject_name: String,
    pub issuer_name: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    pub thumbprint: String,
    pub revoked_at: Option<i64>,
    pub revocation_reason: Option<RevocationReason>,
    pub device_name: Option<String>,
    pub user_principal_name: Option<String>,
    pub device_id: Option<String>,
    pub user_id: Option<String>,
    pub device_platform: String,
    /// keyUsage bit names.
    pub key_usages: Vec<String>,
    /// EKU OIDs, dotted.
    pub ekus: Vec<String>,
    pub der: Vec<u8>,
    pub ocsp: Option<Presigned>,
    /// The CRL partition its certificate names (0: `current.crl`); fixed at issuance.
    pub crl_partition: i64,
}

/// Which leaves a query selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafFilter {
    All,
    /// Not revoked and `not_after` after this instant (unix seconds).
    Active {
        now: i64,
    },
    Revoked,
    /// Not revoked, and `not_after` at or before this instant.
    Expired {
        now: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafQuery {
    pub ca_id: Option<String>,
    pub filter: LeafFilter,
    /// Only rows with `seq` greater than this (keyset paging).
    pub after_seq: i64,
    pub limit: u32,
}

/// The orders a CA's leaves page in, each served by an index so that a page
/// costs the same at the millionth leaf as at the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafOrder {
    /// Issuance order (`seq`).
    Issued,
    /// Subject name, ASCII case-insensitively.
    Subject,
    NotBefore,
    NotAfter,
    /// Status (active, expired, revoked) as of `now`; within a status by
    /// notAfter (unrevoked) or revocation time (revoked).
    Status,
}

/// The statuses a page admits, as of an instant (unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafStatuses {
    pub active: bool,
    pub expired: bool,
    pub revoked: bool,
    pub now: i64,
}

/// Where the previous page ended: the last row's sort key. `rank` is the
/// status segment (0 active, 1 expired, 2 revoked) under [`LeafOrder::Status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafCursor {
    pub rank: u8,
    pub key: SortKey,
    pub seq: i64,
}

/// A sort key value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    Int(i64),
    Text(String),
}

/// One page of a CA's leaves in an order, after a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafPage {
    pub ca_id: String,
    pub order: LeafOrder,
    pub descending: bool,
    pub statuses: LeafStatuses,
    pub after: Option<LeafCursor>,
    /// Rows to pass over first (`$skip`, bounded by the caller).
    pub offset: u32,
    pub limit: u32,
}

/// What a change was about, for followers of the change log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    CaCreated,
    CaUpdated,
    CaDeleted,
    LeafIssued,
    LeafRevoked,
    LeafUpdated,
    /// Pre-signed OCSP answers of a CA's leaves were refreshed; the rows
    /// carry this change's sequence number in `ocsp_seq`.
    OcspRefreshed,
    CrlPublished,
    /// A responder's delegated OCSP certificate for this CA was issued or renewed.
    ResponderCertIssued,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::CaCreated => "caCreated",
            ChangeKind::CaUpdated => "caUpdated",
            ChangeKind::CaDeleted => "caDeleted",
            ChangeKind::LeafIssued => "leafIssued",
            ChangeKind::LeafRevoked => "leafRevoked",
            ChangeKind::LeafUpdated => "leafUpdated",
            ChangeKind::OcspRefreshed => "ocspRefreshed",
            ChangeKind::CrlPublished => "crlPublished",
            ChangeKind::ResponderCertIssued => "responderCertIssued",
        }
    }

    pub const ALL: [ChangeKind; 9] = [
        ChangeKind::CaCreated,
        ChangeKind::CaUpdated,
        ChangeKind::CaDeleted,
        ChangeKind::LeafIssued,
        ChangeKind::LeafRevoked,
        ChangeKind::LeafUpdated,
        ChangeKind::OcspRefreshed,
        ChangeKind::CrlPublished,
        ChangeKind::ResponderCertIssued,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One entry of the change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: i64,
    pub at: i64,
    pub kind: ChangeKind,
    pub ca_id: String,
    pub leaf_id: Option<String>,
}

/// Rows that hold one sealed key each, by owner id. The store does not know
/// what a sealed key is; the domain (`domain::kek`) maps each kind to its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedTable {
    /// `cas.sealed_key` of live CAs that have a key; owner = CA id.
    CaKeys,
    /// `ocsp_delegates.sealed_key`; owner = CA id.
    OcspDelegateKeys,
    /// `scep_ras.sealed_key`; owner = the RA's id (`{caId}:{serial}`).
    ScepRaKeys,
}

/// Whether a transaction may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxMode {
    Read,
    Write,
}

/// A storage backend.
pub trait Store: Send + Sync {
    /// Starts a transaction. Dropping it without [`Tx::commit`] rolls back.
    fn begin(&self, mode: TxMode) -> Result<Box<dyn Tx + '_>>;

    /// Whether this process leads the periodic signing work (CRL publication,
    /// OCSP refresh), so that with several signers each is done once. Cheap
    /// enough to ask every maintainer round. A single-node store always leads.
    fn try_lead(&self) -> Result<bool> {
        Ok(true)
    }

    /// Calls `on_change` when another process commits, where the backend can
    /// push that (PostgreSQL's LISTEN/NOTIFY); None where it cannot, and the
    /// follower relies on polling.
    fn watch(
        &self,
        _on_change: std::sync::Arc<dyn Fn() + Send + Sync>,
        _stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Option<std::io::Result<std::thread::JoinHandle<()>>> {
        None
    }
}

/// One transaction. All reads inside see one consistent state.
pub trait Tx {
    fn meta(&mut self, key: &str) -> Result<Option<String>>;
    fn set_meta(&mut self, key: &str, value: &str) -> Result<()>;
    fn delete_meta(&mut self, key: &str) -> Result<()>;
    /// Every meta entry whose key starts with `prefix`, by key.
    fn meta_with_prefix(&mut self, prefix: &str) -> Result<Vec<(String, String)>>;

    /// Sealed keys of a table with owner ids greater than `after_owner`, by
    /// owner id: (owner, sealed key).
    fn sealed_keys(&mut self, table: SealedTable, after_owner: &str, limit: u32) -> Result<Vec<(String, Vec<u8>)>>;
    /// Replaces the sealed key of an existing owner row (the key itself, not
    /// the entity: no row version, no change-log entry); false if there is no
    /// such row with a key.
    fn replace_sealed_key(&mut self, table: SealedTable, owner: &str, sealed: &[u8]) -> Result<bool>;

    /// A live (not deleted) CA.
    fn ca(&mut self, id: &str) -> Result<Option<CaRow>>;
    /// All live CAs, oldest first.
    fn cas(&mut self) -> Result<Vec<CaRow>>;
    /// CAs revoked while anchored to `issuer_id`, deleted or not: the entries
    /// of that issuer's CRL.
    fn revoked_children(&mut self, issuer_id: &str) -> Result<Vec<CaRow>>;
    /// Every revoked leaf of `ca_id` whose certificate names CRL partition
    /// `partition`: (serial hex, revoked at, notAfter), what that CRL must
    /// list (expired ones aside).
    fn revoked_in_partition(&mut self, ca_id: &str, partition: u32) -> Result<Vec<(String, i64, i64)>>;
    /// The digest of every revocation of one CRL scope: (entries, digest),
    /// None until first set.
    fn crl_scope_digest(&mut self, ca_id: &str, partition: u32) -> Result<Option<(i64, i64)>>;
    fn set_crl_scope_digest(&mut self, ca_id: &str, partition: u32, entries: i64, digest: i64) -> Result<()>;
    /// Counts one more revocation into a scope's digest, if it has one.
    fn add_to_crl_scope_digest(&mut self, ca_id: &str, partition: u32, serial_digest: i64) -> Result<()>;
    /// Number of live CAs anchored to `issuer_id`.
    fn live_children(&mut self, issuer_id: &str) -> Result<u64>;
    fn insert_ca(&mut self, row: &CaRow, sealed_key: Option<&[u8]>) -> Result<()>;
    /// Updates a live CA whose stored `row_version` equals `row.row_version - 1`.
    fn update_ca(&mut self, row: &CaRow) -> Result<()>;
    /// Marks a CA deleted: its key is destroyed and its leaves removed; the
    /// row stays as a tombstone so the parent's CRL keeps listing it.
    fn delete_ca(&mut self, id: &str, at: i64) -> Result<()>;
    fn sealed_key(&mut self, id: &str) -> Result<Option<Vec<u8>>>;
    /// Reserves `count` CRL numbers for a CA; returns the highest reserved
    /// (numbers only grow, across restarts and processes).
    fn reserve_crl_numbers(&mut self, id: &str, count: i64) -> Result<i64>;
    /// The numbers of a CA's stored CRLs, without their bytes: (scope,
    /// CRL number), complete before delta, by partition.
    fn crl_numbers(&mut self, ca_id: &str) -> Result<Vec<(CrlScopeKey, i64)>>;

    fn insert_leaf(&mut self, row: &LeafRow) -> Result<i64>;
    fn leaf(&mut self, id: &str) -> Result<Option<LeafRow>>;
    /// Leaves with this canonical serial, optionally restricted to one CA.
    fn leaves_by_serial(&mut self, ca_id: Option<&str>, serial: &str) -> Result<Vec<LeafRow>>;
    fn leaves(&mut self, query: &LeafQuery) -> Result<Vec<LeafRow>>;
    fn count_leaves(&mut self, ca_id: Option<&str>, filter: LeafFilter) -> Result<u64>;
    /// One page in an order, with each row's cursor; see [`rows::leaf_page_plan`].
    fn leaf_page(&mut self, page: &LeafPage) -> Result<Vec<(LeafRow, LeafCursor)>> {
        let mut out: Vec<(LeafRow, LeafCursor)> = Vec::new();
        // Without a cursor the offset goes to SQL; after one, its rows are
        // read and passed over here (segments split at the cursor's key).
        let (mut offset, mut pass_over) = match page.after {
            None => (u64::from(page.offset), 0),
            Some(_) => (0, u64::from(page.offset)),
        };
        for segment in rows::leaf_page_plan(page) {
            let want = u64::from(page.limit) - out.len() as u64;
            if want == 0 {
                break;
            }
            let got = self.leaf_segment(&segment, offset, want + pass_over)?;
            if got.is_empty() && offset > 0 {
                // The offset may reach past this segment: pass over all of it.
                offset -= offset.min(self.count_leaf_segment(&segment)?);
            } else {
                offset = 0;
            }
            let skip = pass_over.min(got.len() as u64);
            pass_over -= skip;
            out.extend(got.into_iter().skip(skip as usize).map(|r| {
                let c = segment.cursor_of(&r);
                (r, c)
            }));
        }
        out.truncate(page.limit as usize);
        Ok(out)
    }
    /// The rows of one segment of a page plan, in its order.
    fn leaf_segment(&mut self, segment: &rows::Segment, offset: u64, limit: u64) -> Result<Vec<LeafRow>>;
    /// How many rows one segment of a page plan holds (cursor ignored).
    fn count_leaf_segment(&mut self, segment: &rows::Segment) -> Result<u64>;
    /// Revokes a leaf that is not yet revoked, storing its new pre-signed
    /// answers; returns false if it already was revoked.
    fn revoke_leaf(&mut self, id: &str, at: i64, reason: RevocationReason, ocsp: &Presigned) -> Result<bool>;
    /// Replaces a leaf's pre-signed answers, tagging them with change `seq`.
    fn set_leaf_ocsp(&mut self, id: &str, ocsp: &Presigned, seq: i64) -> Result<()>;
    /// Leaves whose answers were signed before `signed_before` (oldest first).
    fn leaves_due_for_ocsp(&mut self, signed_before: i64, limit: u32) -> Result<Vec<LeafStatusRow>>;
    /// Leaves of a CA whose answers were refreshed by change `seq`.
    fn leaves_signed_at_seq(&mut self, ca_id: &str, seq: i64) -> Result<Vec<LeafStatusRow>>;
    /// A page of a CA's leaves, without certificates, in issuance order.
    fn leaf_status_page(&mut self, ca_id: &str, after_seq: i64, limit: u32) -> Result<Vec<LeafStatusRow>>;
    fn leaf_status(&mut self, id: &str) -> Result<Option<LeafStatusRow>>;
    /// The stored CRL of one scope of a CA.
    fn crl(&mut self, ca_id: &str, scope: CrlScopeKey) -> Result<Option<CrlRow>>;
    /// Custom roles: (name, JSON array of permission names).
    fn roles(&mut self) -> Result<Vec<(String, String)>>;
    fn put_role(&mut self, name: &str, permissions: &str) -> Result<()>;
    /// Role assignments: (principal, role, JSON array of scope tags), for one principal or all.
    fn assignments(&mut self, principal: Option<&str>) -> Result<Vec<(String, String, String)>>;
    fn put_assignment(&mut self, principal: &str, role: &str, scope_tags: &str) -> Result<()>;
    /// Appends an audit event; there is no way to change or delete one.
    fn append_audit(&mut self, event: &AuditRow) -> Result<i64>;
    fn audit_events(&mut self, activity: Option<&str>, after_seq: i64, limit: u32) -> Result<Vec<AuditRow>>;
    /// The CA's current delegated OCSP signer: (certificate, sealed key, notAfter).
    /// Records a minted token.
    fn put_token(&mut self, token: &TokenRow) -> Result<()>;
    /// Tokens that expire after `expiring_after` (unix seconds), newest first.
    fn tokens(&mut self, expiring_after: i64) -> Result<Vec<TokenRow>>;
    /// Puts `jti` on the deny list (recording it if unknown); false if it already was.
    fn revoke_token(&mut self, jti: &str, at: i64, by: &str) -> Result<bool>;
    /// Whether `jti` is on the deny list.
    fn token_revoked(&mut self, jti: &str) -> Result<bool>;
    fn ocsp_delegate(&mut self, ca_id: &str) -> Result<Option<DelegateRow>>;
    fn put_ocsp_delegate(&mut self, ca_id: &str, cert: &[u8], sealed_key: &[u8], not_after: i64) -> Result<()>;
    /// Stores a CRL unless one with a higher or equal number is stored for
    /// its partition.
    /// Records a responder's key request; false when its id is already known.
    fn request_responder(&mut self, row: &ResponderRow) -> Result<bool>;
    fn responders(&mut self) -> Result<Vec<ResponderRow>>;
    /// Records that a responder is alive; false when it is unknown.
    fn responder_seen(&mut self, id: &str, at: i64) -> Result<bool>;
    /// Writes a responder's approval and removal fields.
    fn set_responder_state(&mut self, row: &ResponderRow) -> Result<()>;
    fn responder_cert(&mut self, responder_id: &str, ca_id: &str, ca_version: i64) -> Result<Option<ResponderCertRow>>;
    fn put_responder_cert(&mut self, row: &ResponderCertRow) -> Result<()>;
    fn put_crl(&mut self, crl: &CrlRow) -> Result<()>;

    fn insert_profile(&mut self, row: &ProfileRow) -> Result<()>;
    /// A profile, removed or not.
    fn profile(&mut self, id: &str) -> Result<Option<ProfileRow>>;
    /// Profiles not removed, of one CA or all, oldest first.
    fn profiles(&mut self, ca_id: Option<&str>) -> Result<Vec<ProfileRow>>;
    /// Marks a profile removed; false if there is no such live profile.
    fn remove_profile(&mut self, id: &str, at: i64) -> Result<bool>;
    fn insert_challenge(&mut self, row: &ChallengeRow) -> Result<()>;
    fn challenge_by_hash(&mut self, secret_hash: &[u8]) -> Result<Option<ChallengeRow>>;
    /// Spends one use of a challenge; false if none is left.
    fn spend_challenge(&mut self, id: &str) -> Result<bool>;
    /// A CA's SCEP RAs that have not expired at `now`, latest notAfter first:
    /// (RA id, certificate and sealed key).
    fn scep_ras(&mut self, ca_id: &str, now: i64) -> Result<Vec<(String, DelegateRow)>>;
    /// Adds an RA (`id` names it: `{caId}:{serial}`); expired RAs of the CA
    /// are removed.
    fn put_scep_ra(&mut self, id: &str, ca_id: &str, ra: &DelegateRow, now: i64) -> Result<()>;
    /// Remembers a request's senderNonce until `expires_at`; false if it was
    /// already remembered (a replay). Forgets nonces expired at `now`.
    fn remember_nonce(&mut self, ca_id: &str, nonce: &[u8], expires_at: i64, now: i64) -> Result<bool>;
    /// Records which profile (and enrolment transaction) a leaf came from.
    fn put_enrolment(&mut self, leaf_id: &str, profile_id: &str, transaction_id: &str, at: i64) -> Result<()>;
    /// The profile a leaf was enrolled under, if it was enrolled.
    fn enrolment_profile(&mut self, leaf_id: &str) -> Result<Option<String>>;
    /// The leaf a CA issued for an enrolment transaction, if any.
    fn enrolled_leaf(&mut self, ca_id: &str, transaction_id: &str) -> Result<Option<String>>;
    fn insert_enrolment_request(&mut self, row: &EnrolmentRequestRow) -> Result<()>;
    fn enrolment_request(&mut self, id: &str) -> Result<Option<EnrolmentRequestRow>>;
    fn enrolment_request_by_transaction(
        &mut self,
        ca_id: &str,
        transaction_id: &str,
    ) -> Result<Option<EnrolmentRequestRow>>;
    /// A CA's requests, newest first (at most `limit`).
    fn enrolment_requests(&mut self, ca_id: &str, limit: u32) -> Result<Vec<EnrolmentRequestRow>>;
    /// Deletes a decided request (its transaction ID may be used again).
    fn forget_enrolment_request(&mut self, id: &str) -> Result<()>;
    /// Writes a decision; false unless the request was still pending.
    fn decide_enrolment_request(&mut self, row: &EnrolmentRequestRow) -> Result<bool>;

    /// Appends to the change log; returns the new sequence number.
    fn append_change(&mut self, at: i64, kind: ChangeKind, ca_id: &str, leaf_id: Option<&str>) -> Result<i64>;
    /// Highest sequence number committed (0 when empty).
    fn last_change_seq(&mut self) -> Result<i64>;
    /// How many changes after `seq` can change a CRL's entries (a leaf
    /// revoked, a CA updated: revoked).
    fn revocation_changes_after(&mut self, seq: i64) -> Result<u64>;
    fn changes_since(&mut self, seq: i64, limit: u32) -> Result<Vec<Change>>;

    /// Makes the transaction durable. Only after this returns may a change be
    /// acknowledged to anyone.
    fn commit(self: Box<Self>) -> Result<()>;
}
