//! [`Pki`]: the operations on CAs and leaves. Each one runs in a single store
//! transaction: gather facts, check the lifecycle rule, sign, write, append
//! to the change log, commit. Nothing is reported as done before the commit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use der::asn1::ObjectIdentifier;
use der::Encode;
use time::{Duration, OffsetDateTime};

use crate::clock::Clock;
use crate::secrets::{KeyRing, SealedKind};
use crate::store::{
    AuditRow, CaRow, ChangeKind, CrlRow, CrlScopeKey, DelegateRow, LeafCursor, LeafFilter, LeafOrder, LeafPage,
    LeafQuery, LeafRow, LeafStatusRow, LeafStatuses, Presigned, Store, StoreError, Tx, TxMode,
};
use crate::x509::cert::{self, CertRequest, CertRole, ParsedCert, RevocationPointers};
use crate::x509::names::{self, SubjectParts};
use crate::x509::{crl, csr, ocsp, oids, pem, HashAlgorithm, KeyAlgorithm, Signer, SoftwareKey};

use super::audit;
use super::error::{PkiError, Result};
use super::lifecycle::{self, Action, Effect, Facts};
use super::model::*;

mod cas;
mod crls;
mod edge;
mod enrolment;
mod leaves;
mod responder;

pub use crls::{CrlBasis, CrlScope};
pub use edge::{EdgeKey, EnrolmentToken, ResponderInfo, EDGE_KEY};
pub use enrolment::{
    EnrolOutcome, EnrolRefusal, EnrolRequest, Enrolled, EnrolmentRequestInfo, IssuedChallenge, NewChallenge,
    NewProfile, Profile, ScepRa, ScepRas,
};
pub use responder::OcspResponder;
use responder::Presign;

/// Certificates are back-dated this much to absorb relying parties' clock
/// skew (Cloud PKI's leaves show the same 10 minutes).
const BACKDATE: Duration = Duration::minutes(10);
/// Minimum security strength of a leaf key (RSA-2048 / 112 bits, NIST SP 800-57).
const MIN_LEAF_STRENGTH: u16 = 112;
const MAX_VALIDITY_YEARS: u32 = 50;

/// Settings fixed when a data directory is initialised, and the
/// revocation-data timings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Base URL embedded in certificates (no trailing slash).
    pub public_url: String,
    /// Maximum number of live CAs (None: unlimited).
    pub max_cas: Option<u32>,
    pub timings: Timings,
    /// Who signs OCSP answers.
    pub ocsp_signing: OcspSigning,
}

/// Who signs OCSP answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OcspSigning {
    /// The CA key: the smallest answers (no certificate inside), no extra
    /// certificate to manage. The default.
    #[default]
    CaKey,
    /// A delegated OCSP signing certificate per CA (id-kp-OCSPSigning,
    /// id-pkix-ocsp-nocheck), issued by the CA and rotated before it expires,
    /// so a node answering on demand never needs the CA key.
    Delegated,
}

impl OcspSigning {
    pub fn name(self) -> &'static str {
        match self {
            OcspSigning::CaKey => "ca",
            OcspSigning::Delegated => "delegated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ca" => Some(OcspSigning::CaKey),
            "delegated" => Some(OcspSigning::Delegated),
            _ => None,
        }
    }
}

/// CRL numbers reserved per disk write.
const CRL_NUMBER_BLOCK: i64 = 1000;

/// A delegated OCSP certificate lives this long (capped at its CA's end)...
const DELEGATE_VALIDITY: Duration = Duration::days(30);
/// ...and is replaced when less than this remains: answers it signed (valid
/// 4 days, re-signed daily) then always verify.
const DELEGATE_ROTATE_BEFORE: Duration = Duration::days(10);

/// How long signed revocation data is valid and when it is renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// OCSP nextUpdate - thisUpdate (default 4 days).
    pub ocsp_validity: Duration,
    /// Pre-signed OCSP answers older than this are re-signed (default 1 day).
    pub ocsp_refresh_after: Duration,
    /// CRL nextUpdate - thisUpdate (default 7 days, as Cloud PKI).
    pub crl_validity: Duration,
    /// A CRL older than this is re-published even without revocations (3.5 days).
    pub crl_republish_after: Duration,
    /// How long an entry stays on CRLs past its certificate's notAfter,
    /// beyond the one CRL issued after it that RFC 5280 §3.3 requires
    /// (default 0: it leaves the second CRL issued after notAfter).
    pub crl_keep_expired: Duration,
    /// Where a CA publishes delta CRLs, a new complete CRL is cut after
    /// this (default 24 hours) ...
    pub crl_delta_base_after: Duration,
    /// ... or once the delta lists this many revocations (default 5,000,
    /// about 245 KB): past that, fetching the base again is the cheaper way.
    pub crl_delta_max_entries: usize,
    /// Lifetime of a keyless responder's delegated OCSP certificate
    /// (default 2 days: ocsp-nocheck certificates are never checked for
    /// revocation, so their lifetime bounds a lost responder key) ...
    pub responder_cert_validity: Duration,
    /// ... renewed when this little of it is left (default 1 day).
    pub responder_cert_renew_before: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            ocsp_validity: Duration::days(4),
            ocsp_refresh_after: Duration::days(1),
            crl_validity: Duration::days(7),
            crl_republish_after: Duration::hours(84),
            crl_keep_expired: Duration::ZERO,
            crl_delta_base_after: Duration::hours(24),
            crl_delta_max_entries: 5_000,
            responder_cert_validity: Duration::days(2),
            responder_cert_renew_before: Duration::days(1),
        }
    }
}

impl Settings {
    pub fn crl_url(&self, ca_id: &str, version: i32) -> String {
        format!("{}current.crl", self.crl_dir(ca_id, version))
    }
    pub fn crl_dir(&self, ca_id: &str, version: i32) -> String {
        format!("{}/crls/{ca_id}_v{version}/", self.public_url)
    }
    pub fn cert_url(&self, ca_id: &str, version: i32) -> String {
        format!("{}/cacerts/{ca_id}_v{version}/cert.cer", self.public_url)
    }
    pub fn ocsp_url(&self) -> String {
        format!("{}/ocsp", self.public_url)
    }
}

/// Input for creating a CA.
#[derive(Debug, Clone)]
pub struct NewCa {
    pub ca_type: CaType,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub subject: SubjectParts,
    /// The anchoring root, for an issuing CA.
    pub issuer_id: Option<String>,
    pub key_size: KeyAlgorithm,
    pub hash: HashAlgorithm,
    pub validity_years: u32,
    /// EKU OIDs (dotted). Empty: serverAuth + clientAuth for a root, the
    /// root's set for an issuing CA.
    pub ekus: Vec<String>,
    pub role_scope_tag_ids: Vec<String>,
    /// CRL partitions for its leaves (None: [`DEFAULT_CRL_PARTITIONS`] for an
    /// issuing CA; a root has none).
    pub crl_partitions: Option<u32>,
    /// Publish delta CRLs, named by its leaves' Freshest CRL extension
    /// (default off; a root has none).
    pub delta_crls: bool,
}

/// Changes to a CA's settings (PATCH); None leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct CaPatch {
    pub display_name: Option<String>,
    pub description: Option<Option<String>>,
    pub role_scope_tag_ids: Option<Vec<String>>,
    /// More CRL partitions for new leaves (never fewer: leaves keep theirs).
    pub crl_partitions: Option<u32>,
    /// Start publishing delta CRLs (never stopped: certificates name them).
    pub delta_crls: Option<bool>,
}

/// Input for issuing a leaf.
#[derive(Debug, Clone, Default)]
pub struct NewLeaf {
    /// DER PKCS#10.
    pub csr: Vec<u8>,
    pub device_name: Option<String>,
    pub user_principal_name: Option<String>,
    pub device_id: Option<String>,
    pub user_id: Option<String>,
    pub device_platform: Option<String>,
    /// Requested lifetime in days (default 365, capped at the CA's notAfter).
    pub validity_days: Option<u32>,
    /// Key usages by Graph name (empty: by key type, see `cert::leaf_key_usage`).
    pub key_usages: Vec<String>,
}

/// A page request over leaves.
#[derive(Debug, Clone)]
pub struct LeafListQuery {
    pub ca_id: Option<String>,
    pub status: Option<LeafStatus>,
    pub after_seq: i64,
    pub limit: u32,
}

/// A page of a CA's leaves in one of the orders the store pages by index.
#[derive(Debug, Clone)]
pub struct LeafPageRequest {
    pub ca_id: String,
    pub order: LeafOrder,
    pub descending: bool,
    /// Which statuses the page admits (all, when every one is set).
    pub active: bool,
    pub expired: bool,
    pub revoked: bool,
    /// The instant statuses are judged at: pinned by the first page so that
    /// paging on never sees a leaf change segment (None: now).
    pub at: Option<i64>,
    pub after: Option<LeafCursor>,
    pub skip: u32,
    pub limit: u32,
}

/// The PKI engine.
pub struct Pki {
    store: Arc<dyn Store>,
    /// None on responder nodes: they serve pre-signed answers and hold no key.
    /// Otherwise the KEK this node was started with, plus the next one during
    /// a rotation (see [`super::kek`]).
    keys: Option<KeyRing>,
    clock: Arc<dyn Clock>,
    settings: Settings,
    /// Unsealed CA keys, so a burst of issuance does not unseal per request.
    signers: Mutex<HashMap<String, Arc<dyn Signer>>>,
    /// Reserved CRL numbers per CA: (next, last reserved).
    crl_numbers: Mutex<HashMap<String, (i64, i64)>>,
    /// Delegated OCSP responders, by CA id.
    delegates: Mutex<HashMap<String, Arc<OcspResponder>>>,
    /// SCEP RAs (certificate and unsealed key), by CA id.
    /// With the instant each entry is to be looked at again.
    scep_ras: Mutex<HashMap<String, (Arc<ScepRas>, OffsetDateTime)>>,
    /// Called after every commit (the responder's snapshot follower wakes on it).
    on_commit: Mutex<Option<CommitHook>>,
}

/// A callback run after each committed change.
pub type CommitHook = Arc<dyn Fn() + Send + Sync>;

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn ts(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

fn from_ts(s: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(s).map_err(|e| PkiError::Store(StoreError::Corrupt(e.to_string())))
}

fn corrupt(e: impl std::fmt::Display) -> PkiError {
    PkiError::Store(StoreError::Corrupt(e.to_string()))
}

pub(crate) fn parse_oid(s: &str) -> Result<ObjectIdentifier> {
    let s = s.trim();
    let invalid = || PkiError::Invalid(format!("{s:?} is not an object identifier"));
    // const-oid 0.9 accepts arcs it cannot encode (>= 2^28) and then panics or
    // rewrites them: bound every arc first, then insist on a lossless round trip.
    if s.split('.')
        .any(|arc| arc.parse::<u32>().map_or(true, |a| a >= 1 << 28))
    {
        return Err(invalid());
    }
    let oid = ObjectIdentifier::new(s).map_err(|_| invalid())?;
    if ObjectIdentifier::from_bytes(oid.as_bytes()).is_err() || oid.to_string() != s {
        return Err(invalid());
    }
    Ok(oid)
}

fn add_years(t: OffsetDateTime, years: u32) -> Result<OffsetDateTime> {
    let y = t.year() + years as i32;
    // 29 February maps to 28 February in non-leap years.
    t.replace_year(y)
        .or_else(|_| t.replace_day(28).and_then(|t| t.replace_year(y)))
        .map_err(|e| PkiError::Invalid(e.to_string()))
}

/// What signs a batch of leaves: the CA (parsed once), its key, its OCSP responder.
struct IssuingKeys<'a> {
    ca: &'a LoadedCa,
    ca_cert: ParsedCert,
    signer: Arc<dyn Signer>,
    responder: Arc<OcspResponder>,
}

/// A CA row decoded into its record, with the row kept for what only the
/// engine touches (certificate, chain, pre-signed answers).
struct LoadedCa {
    row: CaRow,
    entity: Ca,
}

impl LoadedCa {
    fn status(&self) -> CaStatus {
        self.entity.status
    }

    fn facts(&self, tx: &mut dyn Tx, now: OffsetDateTime, action: Action) -> Result<Facts> {
        let active_leaves = if action == Action::Revoke {
            tx.count_leaves(Some(&self.row.id), LeafFilter::Active { now: ts(now) })?
        } else {
            0
        };
        let anchored_cas = if action == Action::Delete {
            tx.live_children(&self.row.id)?
        } else {
            0
        };
        Ok(Facts {
            ca_type: self.entity.ca_type,
            status: self.status(),
            active_leaves,
            anchored_cas,
        })
    }

    fn ekus(&self) -> Result<Vec<ObjectIdentifier>> {
        self.entity.ekus.iter().map(|e| parse_oid(e)).collect()
    }

    fn cert(&self) -> Result<ParsedCert> {
        let der = self
            .row
            .cert
            .as_deref()
            .ok_or_else(|| corrupt("CA without certificate"))?;
        Ok(ParsedCert::from_der(der)?)
    }
}

/// An audit event by the current actor (the store assigns `seq`).
pub(super) fn audit_row(
    now: OffsetDateTime,
    activity: &str,
    target: (&str, &str),
    result: &str,
    detail: &str,
    scope_tags: &[String],
) -> AuditRow {
    AuditRow {
        seq: 0,
        at: ts(now),
        actor: audit::current_actor(),
        activity: activity.to_owned(),
        target_type: target.0.to_owned(),
        target_id: target.1.to_owned(),
        result: result.to_owned(),
        detail: detail.to_owned(),
        scope_tags: scope_tags.to_vec(),
    }
}

/// `If-Match`: absent or `*` matches anything; otherwise it must be the
/// current eTag (an update or deletion against a stale one is refused).
fn check_if_match(if_match: Option<&str>, current: Option<&str>) -> Result<()> {
    match if_match {
        Some(tag) if tag != "*" && Some(tag) != current => Err(PkiError::PreconditionFailed),
        _ => Ok(()),
    }
}

/// The scope tags of a stored CA (none when it does not exist): who may read
/// the audit events about it.
fn stored_scope_tags(tx: &mut dyn Tx, ca_id: &str) -> Result<Vec<String>> {
    Ok(tx.ca(ca_id)?.map(|row| row.scope_tags).unwrap_or_default())
}

impl Pki {
    pub fn new(store: Arc<dyn Store>, keys: Option<KeyRing>, clock: Arc<dyn Clock>, settings: Settings) -> Self {
        Pki {
            store,
            keys,
            clock,
            settings,
            signers: Mutex::new(HashMap::new()),
            delegates: Mutex::new(HashMap::new()),
            scep_ras: Mutex::new(HashMap::new()),
            crl_numbers: Mutex::new(HashMap::new()),
            on_commit: Mutex::new(None),
        }
    }

    /// The KEKs this node holds (none on responders).
    pub fn key_ring(&self) -> std::result::Result<&KeyRing, crate::secrets::SecretError> {
        self.keys.as_ref().ok_or(crate::secrets::SecretError::NoKek)
    }

    /// Whether this node can open keys (and so sign): false on responders.
    pub fn holds_keys(&self) -> bool {
        self.keys.is_some()
    }

    /// Registers the callback run after every commit.
    pub fn set_commit_hook(&self, hook: CommitHook) {
        *self.on_commit.lock().unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    fn commit(&self, tx: Box<dyn Tx + '_>) -> Result<()> {
        tx.commit()?;
        let hook = self.on_commit.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(h) = hook {
            h();
        }
        Ok(())
    }

    /// Appends a change and its audit event in the caller's transaction: the
    /// audit trail can never disagree with what was committed.
    fn record(
        &self,
        tx: &mut dyn Tx,
        now: OffsetDateTime,
        kind: ChangeKind,
        ca_id: &str,
        leaf_id: Option<&str>,
        activity: &str,
    ) -> Result<()> {
        let tags = stored_scope_tags(tx, ca_id)?;
        self.record_tagged(tx, now, kind, (ca_id, &tags), leaf_id, activity)
    }

    /// [`Pki::record`] for a caller that already holds the CA's stored scope tags.
    fn record_tagged(
        &self,
        tx: &mut dyn Tx,
        now: OffsetDateTime,
        kind: ChangeKind,
        (ca_id, tags): (&str, &[String]),
        leaf_id: Option<&str>,
        activity: &str,
    ) -> Result<()> {
        tx.append_change(ts(now), kind, ca_id, leaf_id)?;
        let target = match leaf_id {
            Some(l) => ("CloudCertificationAuthorityLeafCertificate", l),
            None => ("CloudCertificationAuthority", ca_id),
        };
        tx.append_audit(&audit_row(now, activity, target, "success", "", tags))?;
        Ok(())
    }

    /// Records a refused or failed change (its own transaction: the change
    /// itself rolled back). `ca_id` names the CA concerned, whose scope tags
    /// decide who reads the event; `requested_tags` stand in when there is
    /// none yet (a refused creation).
    pub fn record_failure(
        &self,
        activity: &str,
        target: (&str, &str),
        ca_id: &str,
        requested_tags: &[String],
        detail: &str,
    ) -> Result<()> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write)?;
        let mut tags = stored_scope_tags(tx.as_mut(), ca_id)?;
        if tags.is_empty() {
            tags = requested_tags.to_vec();
        }
        tx.append_audit(&audit_row(now, activity, target, "failure", detail, &tags))?;
        Ok(tx.commit()?)
    }

    /// A page of audit events, oldest first, optionally of one activity type.
    pub fn audit_events(&self, activity: Option<&str>, after_seq: i64, limit: u32) -> Result<Vec<AuditRow>> {
        Ok(self
            .store
            .begin(TxMode::Read)?
            .audit_events(activity, after_seq, limit)?)
    }

    /// Seals a key of `kind` for `owner` inside the write transaction that
    /// stores it, under the KEK the stored state names (the rotation's target
    /// once a rotation has started): see [`super::kek::sealing_kek`].
    pub fn seal_in(&self, tx: &mut dyn Tx, kind: SealedKind, owner: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        let ring = self.key_ring()?;
        let id = super::kek::sealing_kek(tx, ring)?;
        Ok(ring.seal_with(id, kind, owner, plaintext)?)
    }

    /// Opens a sealed key with whichever held KEK sealed it.
    pub fn unseal(&self, kind: SealedKind, owner: &str, sealed: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        Ok(self.key_ring()?.open(kind, owner, sealed)?.0)
    }

    /// Sets the revocation-data timings (from the server configuration).
    pub fn set_timings(&mut self, timings: Timings) {
        self.settings.timings = timings;
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    fn load_ca(&self, tx: &mut dyn Tx, id: &str, now: OffsetDateTime) -> Result<LoadedCa> {
        let row = tx.ca(id)?.ok_or_else(|| PkiError::NotFound {
            what: "certification authority",
            id: id.to_owned(),
        })?;
        let entity = self.ca_record(&row, now)?;
        Ok(LoadedCa { row, entity })
    }

    /// Decodes a stored CA into its record, deriving what the certificate
    /// and the clock say (validity, thumbprint, expiry) and the URLs.
    pub fn ca_record(&self, row: &CaRow, now: OffsetDateTime) -> Result<Ca> {
        let bad = |what: &str, v: &str| corrupt(format!("CA {}: {what} {v:?}", row.id));
        let stored_status = CaStatus::parse(&row.status).ok_or_else(|| bad("status", &row.status))?;
        let parsed = row.cert.as_deref().map(ParsedCert::from_der).transpose()?;
        let (not_before, not_after) = match &parsed {
            Some(c) => (Some(c.not_before()?), Some(c.not_after()?)),
            None => (None, None),
        };
        let expired = not_after.is_some_and(|end| end <= now);
        let version = u32::try_from(row.version).map_err(|_| bad("version", &row.version.to_string()))?;
        Ok(Ca {
            id: row.id.clone(),
            ca_type: CaType::parse(&row.ca_type).ok_or_else(|| bad("type", &row.ca_type))?,
            display_name: row.display_name.clone(),
            description: row.description.clone(),
            status: match stored_status {
                CaStatus::Active | CaStatus::Paused if expired => CaStatus::Expired,
                s => s,
            },
            stored_status,
            subject: SubjectParts {
                common_name: row.common_name.clone(),
                organization_name: row.organization_name.clone(),
                organization_unit: row.organization_unit.clone(),
                country_name: row.country_name.clone(),
                state_name: row.state_name.clone(),
                locality_name: row.locality_name.clone(),
            },
            subject_name: row.subject_name.clone(),
            issuer_id: row.issuer_id.clone(),
            issuer_common_name: row.issuer_common_name.clone(),
            root_common_name: row.root_common_name.clone(),
            issuer_cert_url: row.issuer_cert_url.clone(),
            key_algorithm: KeyAlgorithm::parse(&row.key_algorithm)
                .ok_or_else(|| bad("key algorithm", &row.key_algorithm))?,
            hash_algorithm: HashAlgorithm::parse(&row.hash_algorithm)
                .ok_or_else(|| bad("hash algorithm", &row.hash_algorithm))?,
            key_platform: KeyPlatform::parse(&row.key_platform)
                .ok_or_else(|| bad("key platform", &row.key_platform))?,
            validity_years: u32::try_from(row.validity_years)
                .map_err(|_| bad("validity", &row.validity_years.to_string()))?,
            ekus: row.ekus.clone(),
            scope_tags: row.scope_tags.clone(),
            created_at: from_ts(row.created_at)?,
            modified_at: from_ts(row.modified_at)?,
            version: CaVersion {
                number: version,
                not_before,
                not_after,
                thumbprint: row.cert.as_deref().map(crate::x509::thumbprint),
                serial: parsed.as_ref().map(ParsedCert::serial_hex),
                csr: row.csr.clone(),
            },
            revoked_at: row.revoked_at.map(from_ts).transpose()?,
            revocation_reason: row.revocation_reason,
            row_version: row.row_version,
            urls: self.urls(&row.id, version),
            crl_partitions: u32::try_from(row.crl_partitions)
                .map_err(|_| bad("CRL partitions", &row.crl_partitions.to_string()))?,
            delta_crls: row.delta_crls,
        })
    }

    /// Where a CA version's certificate and revocation data are published.
    pub(super) fn urls(&self, ca_id: &str, version: u32) -> CaUrls {
        let version = i32::try_from(version).unwrap_or(i32::MAX);
        CaUrls {
            crl: self.settings.crl_url(ca_id, version),
            crl_dir: self.settings.crl_dir(ca_id, version),
            certificate: self.settings.cert_url(ca_id, version),
            ocsp: self.settings.ocsp_url(),
            scep: format!("{}/scep/{ca_id}", self.settings.public_url),
        }
    }

    /// Decodes a stored leaf, deriving its status from revocation and the clock.
    fn leaf_record(&self, row: &LeafRow, now: OffsetDateTime) -> Result<Leaf> {
        let ca_version = u32::try_from(row.ca_version).map_err(|_| corrupt(format!("leaf {}: CA version", row.id)))?;
        Ok(Leaf {
            id: row.id.clone(),
            ca_id: row.ca_id.clone(),
            ca_version,
            serial: row.serial.clone(),
            subject_name: row.subject_name.clone(),
            issuer_name: row.issuer_name.clone(),
            status: if row.revoked_at.is_some() {
                LeafStatus::Revoked
            } else if row.not_after <= ts(now) {
                LeafStatus::Expired
            } else {
                LeafStatus::Active
            },
            not_before: from_ts(row.not_before)?,
            not_after: from_ts(row.not_after)?,
            thumbprint: row.thumbprint.clone(),
            revoked_at: row.revoked_at.map(from_ts).transpose()?,
            revocation_reason: row.revocation_reason,
            device_name: row.device_name.clone(),
            user_principal_name: row.user_principal_name.clone(),
            device_id: row.device_id.clone(),
            user_id: row.user_id.clone(),
            device_platform: row.device_platform.clone(),
            key_usages: row.key_usages.clone(),
            ekus: row.ekus.clone(),
            urls: self.urls(&row.ca_id, ca_version),
            crl_partition: u32::try_from(row.crl_partition)
                .map_err(|_| corrupt(format!("leaf {}: CRL partition", row.id)))?,
        })
    }

    /// The CA's signing key, unsealed once and cached.
    fn signer(&self, tx: &mut dyn Tx, ca: &LoadedCa) -> Result<Arc<dyn Signer>> {
        let id = &ca.row.id;
        if let Some(s) = self.signers.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            return Ok(s.clone());
        }
        let sealed = tx.sealed_key(id)?.ok_or_else(|| corrupt("CA has no key"))?;
        let pkcs8 = self.unseal(SealedKind::CaKey, id, &sealed)?;
        let key: Arc<dyn Signer> = Arc::new(SoftwareKey::from_pkcs8(
            ca.entity.key_algorithm,
            ca.entity.hash_algorithm,
            &pkcs8,
        )?);
        self.signers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), key.clone());
        Ok(key)
    }

    fn forget_signer(&self, id: &str) {
        self.signers.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// Highest committed change sequence number.
    pub fn change_seq(&self) -> Result<i64> {
        Ok(self.store.begin(TxMode::Read)?.last_change_seq()?)
    }
}

/// Bytes of a canonical hex serial.
pub fn hex_bytes(hex: &str) -> Result<Vec<u8>> {
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
                .ok_or_else(|| corrupt(format!("serial {hex}")))
        })
        .collect()
}

/// DER of a CA's SubjectPublicKeyInfo (for external tools and tests).
pub fn spki_der_of(cert_der: &[u8]) -> Result<Vec<u8>> {
    let c = ParsedCert::from_der(cert_der)?;
    Ok(c.tbs()
        .subject_public_key_info
        .to_der()
        .map_err(crate::x509::X509Error::from)?)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::config::{open_with_clock, OpenOptions};

    pub(crate) fn new_ca(ca_type: CaType, cn: &str, issuer: Option<String>) -> NewCa {
        NewCa {
            ca_type,
            display_name: None,
            description: None,
            subject: SubjectParts {
                common_name: cn.into(),
                ..Default::default()
            },
            issuer_id: issuer,
            key_size: KeyAlgorithm::EcP256,
            hash: HashAlgorithm::Sha256,
            // An issuing CA must end before its root, even when created a second later.
            validity_years: if ca_type == CaType::RootCertificationAuthority {
                10
            } else {
                5
            },
            ekus: vec![],
            role_scope_tag_ids: vec![],
            crl_partitions: None,
            delta_crls: false,
        }
    }

    /// Another signer published a higher CRL number (a lead lost and
    /// regained on PostgreSQL): this one's reserved block is dropped, and its
    /// next CRL is numbered above the stored one, never at or below it.
    #[test]
    fn crl_numbers_stay_above_the_newest_published_one() {
        let dir = tempfile::tempdir().unwrap();
        let opts = OpenOptions::new(dir.path().to_path_buf());
        let pki = open_with_clock(&opts, Arc::new(crate::clock::SystemClock)).unwrap();
        let root = pki
            .create_ca(new_ca(CaType::RootCertificationAuthority, "Root", None))
            .unwrap();
        let first = pki.publish_crl(&root.id, 0, &crl::CrlEntries::new()).unwrap();
        let second = pki.publish_crl(&root.id, 0, &crl::CrlEntries::new()).unwrap();
        assert_eq!(second.number, first.number + 1, "numbers come from the reserved block");
        // What another signer published meanwhile.
        let mut elsewhere = second.clone();
        elsewhere.number = first.number + 5_000;
        let mut tx = pki.store().begin(TxMode::Write).unwrap();
        tx.put_crl(&elsewhere).unwrap();
        tx.commit().unwrap();
        let next = pki.publish_crl(&root.id, 0, &crl::CrlEntries::new()).unwrap();
        assert!(
            next.number > elsewhere.number,
            "{} after {}",
            next.number,
            elsewhere.number
        );
        let stored = pki
            .store()
            .begin(TxMode::Read)
            .unwrap()
            .crl(&root.id, CrlScopeKey::complete(0))
            .unwrap()
            .unwrap();
        assert_eq!(stored.number, next.number);
    }

    /// Scope tags survive storage whatever they hold (an earlier release
    /// accepted any string); empty or over-long ones are refused.
    #[test]
    fn scope_tags_round_trip_and_empty_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::config::open(&OpenOptions::new(dir.path().to_path_buf())).unwrap();
        for bad in [String::new(), " ".to_owned(), "x".repeat(65)] {
            let mut req = new_ca(CaType::RootCertificationAuthority, "Root", None);
            req.role_scope_tag_ids = vec!["0".into(), bad.clone()];
            assert!(matches!(pki.create_ca(req), Err(PkiError::Invalid(_))), "{bad:?}");
        }
        let mut req = new_ca(CaType::RootCertificationAuthority, "Root", None);
        req.role_scope_tag_ids = vec!["0".into(), "12".into(), "tag a".into(), "50%".into()];
        let root = pki.create_ca(req).unwrap();
        assert_eq!(pki.get_ca(&root.id).unwrap().scope_tags, ["0", "12", "tag a", "50%"]);
        let refused = pki.update_ca(
            &root.id,
            None,
            CaPatch {
                role_scope_tag_ids: Some(vec![String::new()]),
                ..CaPatch::default()
            },
        );
        assert!(matches!(refused, Err(PkiError::Invalid(_))));
        assert_eq!(pki.get_ca(&root.id).unwrap().scope_tags, ["0", "12", "tag a", "50%"]);
    }

    #[test]
    fn oids_beyond_what_the_encoder_handles_are_refused() {
        for bad in [
            "1.3.6.1.4.1.4294967295",
            "1.3.6.1.4.1.268435456",
            "1.3.6.1.4.1.300000000",
            "1.3",
            "x",
            "1..2",
            "",
        ] {
            assert!(parse_oid(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_oid(" 1.3.6.1.5.5.7.3.2 ").unwrap(), oids::KP_CLIENT_AUTH);
    }

    /// A store in `dir` whose clock stands at `t`.
    fn clocked(dir: &std::path::Path, t: OffsetDateTime) -> Pki {
        open_with_clock(&OpenOptions::new(dir.to_path_buf()), Arc::new(FixedClock(t))).unwrap()
    }

    /// A root and an issuing CA under it.
    pub(crate) fn hierarchy(pki: &Pki) -> (Ca, Ca) {
        let root = pki
            .create_ca(new_ca(CaType::RootCertificationAuthority, "Root", None))
            .unwrap();
        let issuing = pki
            .create_ca(new_ca(
                CaType::IssuingCertificationAuthority,
                "Issuing",
                Some(root.id.clone()),
            ))
            .unwrap();
        (root, issuing)
    }

    #[test]
    fn scep_ras_rotate_and_the_replaced_one_keeps_decrypting_until_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = crate::clock::truncate(OffsetDateTime::now_utc());
        let open = |t: OffsetDateTime| clocked(dir.path(), t);
        let pki = open(t0);
        let (root, issuing) = hierarchy(&pki);
        assert!(pki.scep_ra(&root.id).unwrap().is_none(), "roots have no RA");
        let serial = |r: &ScepRa| r.cert.tbs_certificate.serial_number.clone();
        let first = pki.scep_ra(&issuing.id).unwrap().unwrap();
        assert_eq!(first.ras.len(), 1);
        let first_serial = serial(first.current().unwrap());
        // 300 days on: the same RA (from the store, not just the cache).
        let same = open(t0 + Duration::days(300)).scep_ra(&issuing.id).unwrap().unwrap();
        assert_eq!(same.ras.len(), 1);
        assert_eq!(serial(same.current().unwrap()), first_serial);
        // Within 30 days of its end: a new current RA, the old one still listed.
        let rotated = open(t0 + Duration::days(340)).scep_ra(&issuing.id).unwrap().unwrap();
        assert_eq!(rotated.ras.len(), 2);
        assert_ne!(serial(rotated.current().unwrap()), first_serial);
        assert_eq!(serial(&rotated.ras[1]), first_serial);
        // After the old one expired: only the new one.
        let later = open(t0 + Duration::days(370)).scep_ra(&issuing.id).unwrap().unwrap();
        assert_eq!(later.ras.len(), 1);
        assert_eq!(serial(later.current().unwrap()), serial(rotated.current().unwrap()));
    }

    #[test]
    fn an_ra_is_not_replaced_when_the_replacement_would_not_outlive_it() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = crate::clock::truncate(OffsetDateTime::now_utc());
        let open = |t: OffsetDateTime| clocked(dir.path(), t);
        let (_, issuing) = hierarchy(&open(t0));
        let ca_end = issuing.version.not_after.unwrap();
        // Ten days before the CA ends: one RA, ending with the CA...
        let late = ca_end - Duration::days(10);
        let first = open(late).scep_ra(&issuing.id).unwrap().unwrap();
        assert_eq!(first.ras.len(), 1);
        assert_eq!(first.current().unwrap().not_after, ca_end);
        // ... and asking again (a new process: no cache) keeps it.
        let again = open(late + Duration::hours(1)).scep_ra(&issuing.id).unwrap().unwrap();
        assert_eq!(again.ras.len(), 1, "no new RA on every request near the CA's end");
        assert_eq!(
            again.current().unwrap().cert.tbs_certificate.serial_number,
            first.current().unwrap().cert.tbs_certificate.serial_number
        );
    }

    #[test]
    fn delegated_ocsp_certificate_rotates_before_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = crate::clock::truncate(OffsetDateTime::now_utc());
        let open = |t: OffsetDateTime| {
            let opts = OpenOptions {
                ocsp_signing: Some(OcspSigning::Delegated),
                ..OpenOptions::new(dir.path().to_path_buf())
            };
            open_with_clock(&opts, Arc::new(FixedClock(t))).unwrap()
        };
        let pki = open(t0);
        let (_, issuing) = hierarchy(&pki);
        let serial = |r: &OcspResponder| r.cert.as_ref().unwrap().tbs_certificate.serial_number.clone();
        let first = pki.ocsp_responder(&issuing.id).unwrap();
        assert_eq!(first.not_after, Some(t0 + DELEGATE_VALIDITY));
        let eku = ParsedCert::from_der(&first.cert.as_ref().unwrap().to_der().unwrap())
            .unwrap()
            .ekus()
            .unwrap();
        assert_eq!(eku, vec![oids::KP_OCSP_SIGNING]);
        // Still fresh 19 days later: the same certificate, from the store.
        let later = open(t0 + Duration::days(19)).ocsp_responder(&issuing.id).unwrap();
        assert_eq!(serial(&later), serial(&first));
        // Within 10 days of its end: a new one.
        let rotated = open(t0 + Duration::days(21)).ocsp_responder(&issuing.id).unwrap();
        assert_ne!(serial(&rotated), serial(&first));
        assert_eq!(rotated.not_after, Some(t0 + Duration::days(21) + DELEGATE_VALIDITY));
    }

    #[test]
    fn ca_key_mode_uses_the_ca_key() {
        let dir = tempfile::tempdir().unwrap();
        let opts = OpenOptions::new(dir.path().to_path_buf());
        let pki = crate::config::open(&opts).unwrap();
        let root = pki
            .create_ca(new_ca(CaType::RootCertificationAuthority, "Root", None))
            .unwrap();
        let r = pki.ocsp_responder(&root.id).unwrap();
        assert!(r.cert.is_none());
        let der = pki.ca_certificate(&root.id).unwrap();
        assert_eq!(
            ParsedCert::from_der(&der).unwrap().tbs().subject_public_key_info,
            *r.key.public_key()
        );
    }
}
