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
    AuditRow, CaRow, ChangeKind, CrlRow, DelegateRow, LeafFilter, LeafQuery, LeafRow, LeafStatusRow, Presigned, Store,
    StoreError, Tx, TxMode,
};
use crate::x509::cert::{self, CertRequest, CertRole, ParsedCert, RevocationPointers};
use crate::x509::names::{self, SubjectParts};
use crate::x509::{crl, csr, ocsp, oids, pem, HashAlgorithm, KeyAlgorithm, Signer, SoftwareKey};

use super::audit;
use super::error::{PkiError, Result};
use super::lifecycle::{self, Action, Effect, Facts};
use super::model::*;

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

/// The key that signs OCSP answers for one CA, with its certificate when delegated.
pub struct OcspResponder {
    pub key: Arc<SoftwareKey>,
    pub cert: Option<Arc<x509_cert::Certificate>>,
    pub not_after: Option<OffsetDateTime>,
}

impl std::fmt::Debug for OcspResponder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcspResponder")
            .field("delegated", &self.cert.is_some())
            .finish_non_exhaustive()
    }
}

impl OcspResponder {
    pub fn as_key(&self) -> ocsp::ResponderKey<'_> {
        ocsp::ResponderKey {
            signer: self.key.as_ref(),
            delegated_cert: self.cert.as_deref(),
        }
    }
}

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
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            ocsp_validity: Duration::days(4),
            ocsp_refresh_after: Duration::days(1),
            crl_validity: Duration::days(7),
            crl_republish_after: Duration::hours(84),
        }
    }
}

impl Settings {
    pub fn crl_url(&self, ca_id: &str, version: i32) -> String {
        format!("{}/crls/{ca_id}_v{version}/current.crl", self.public_url)
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
}

/// A page request over leaves.
#[derive(Debug, Clone)]
pub struct LeafListQuery {
    pub ca_id: Option<String>,
    pub status: Option<LeafStatus>,
    pub after_seq: i64,
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
    signers: Mutex<HashMap<String, Arc<SoftwareKey>>>,
    /// Reserved CRL numbers per CA: (next, last reserved).
    crl_numbers: Mutex<HashMap<String, (i64, i64)>>,
    /// Delegated OCSP responders, by CA id.
    delegates: Mutex<HashMap<String, Arc<OcspResponder>>>,
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
    signer: Arc<SoftwareKey>,
    responder: Arc<OcspResponder>,
}

/// A CA row decoded into its entity plus the facts the engine needs.
struct LoadedCa {
    row: CaRow,
    entity: CertificationAuthority,
}

impl LoadedCa {
    fn status(&self) -> CaStatus {
        self.entity.certification_authority_status
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
            ca_type: self.entity.cloud_certification_authority_type,
            status: self.status(),
            active_leaves,
            anchored_cas,
        })
    }

    fn ekus(&self) -> Result<Vec<ObjectIdentifier>> {
        self.entity
            .extended_key_usages
            .iter()
            .map(|e| parse_oid(&e.object_identifier))
            .collect()
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
        scope_tags: serde_json::to_string(scope_tags).unwrap_or_else(|_| "[]".into()),
    }
}

/// The scope tags of a stored CA (none when it does not exist): who may read
/// the audit events about it.
fn stored_scope_tags(tx: &mut dyn Tx, ca_id: &str) -> Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Tags {
        #[serde(rename = "roleScopeTagIds", default)]
        tags: Vec<String>,
    }
    Ok(match tx.ca(ca_id)? {
        Some(row) => serde_json::from_str::<Tags>(&row.doc).map_err(corrupt)?.tags,
        None => Vec::new(),
    })
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

    /// Signs the SHA-1 and SHA-256 CertID answers for one certificate of `issuer`.
    fn presign(
        &self,
        issuer: &ParsedCert,
        key: &OcspResponder,
        serial: &[u8],
        status: ocsp::Status,
        now: OffsetDateTime,
    ) -> Result<Presigned> {
        let t = &self.settings.timings;
        let responder = key.as_key();
        let one = |hash| -> Result<Vec<u8>> {
            let answer = ocsp::SingleAnswer {
                cert_id: ocsp::IssuerHashes::of(&issuer.cert, hash)?.cert_id(serial)?,
                status,
                this_update: now,
                next_update: now + t.ocsp_validity,
            };
            Ok(ocsp::sign_response(&responder, &[answer], None, now)?)
        };
        Ok(Presigned {
            sha1: one(ocsp::CertIdHash::Sha1)?,
            sha256: one(ocsp::CertIdHash::Sha256)?,
            this_update: ts(now),
        })
    }

    /// The OCSP answers about an issuing CA's own certificate, signed by its root.
    fn presign_ca_cert(&self, tx: &mut dyn Tx, ca: &CaRow, now: OffsetDateTime) -> Result<Option<Presigned>> {
        let (Some(parent_id), Some(cert)) = (&ca.issuer_id, &ca.cert) else {
            return Ok(None);
        };
        let parent = self.load_ca(tx, parent_id, now)?;
        let key = self.responder(tx, &parent, now)?;
        let serial = ParsedCert::from_der(cert)?.tbs().serial_number.as_bytes().to_vec();
        let status = match (ca.revoked_at, ca.revocation_reason) {
            (Some(at), reason) => ocsp::Status::Revoked {
                at: from_ts(at)?,
                reason: reason.unwrap_or(0),
            },
            _ => ocsp::Status::Good,
        };
        Ok(Some(self.presign(
            &parent.cert()?,
            key.as_ref(),
            &serial,
            status,
            now,
        )?))
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
        tx.append_change(ts(now), kind, ca_id, leaf_id)?;
        let target = match leaf_id {
            Some(l) => ("CloudCertificationAuthorityLeafCertificate", l),
            None => ("CloudCertificationAuthority", ca_id),
        };
        let tags = stored_scope_tags(tx, ca_id)?;
        tx.append_audit(&audit_row(now, activity, target, "success", "", &tags))?;
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
        let entity = self.ca_entity(&row, now)?;
        Ok(LoadedCa { row, entity })
    }

    /// Decodes a stored CA into its Graph entity, deriving status and eTag.
    pub fn ca_entity(&self, row: &CaRow, now: OffsetDateTime) -> Result<CertificationAuthority> {
        let mut e: CertificationAuthority = serde_json::from_str(&row.doc).map_err(corrupt)?;
        let stored = CaStatus::parse(&row.status).ok_or_else(|| corrupt(format!("CA status {}", row.status)))?;
        let expired = e.validity_end_date_time.is_some_and(|end| end <= now);
        e.certification_authority_status = match stored {
            CaStatus::Active | CaStatus::Paused if expired => CaStatus::Expired,
            s => s,
        };
        e.e_tag = Some(format!("W/\"{}\"", row.row_version));
        e.revocation_date_time = row.revoked_at.map(from_ts).transpose()?;
        Ok(e)
    }

    fn leaf_entity(&self, row: &LeafRow, now: OffsetDateTime) -> Result<LeafCertificate> {
        let mut e: LeafCertificate = serde_json::from_str(&row.doc).map_err(corrupt)?;
        e.certificate_status = if row.revoked_at.is_some() {
            LeafStatus::Revoked
        } else if row.not_after <= ts(now) {
            LeafStatus::Expired
        } else {
            LeafStatus::Active
        };
        e.revocation_date_time = row.revoked_at.map(from_ts).transpose()?;
        e.revocation_reason = row.revocation_reason.and_then(RevocationReason::from_code);
        Ok(e)
    }

    /// The CA's signing key, unsealed once and cached.
    fn signer(&self, tx: &mut dyn Tx, ca: &LoadedCa) -> Result<Arc<SoftwareKey>> {
        let id = &ca.row.id;
        if let Some(s) = self.signers.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            return Ok(s.clone());
        }
        let sealed = tx.sealed_key(id)?.ok_or_else(|| corrupt("CA has no key"))?;
        let pkcs8 = self.unseal(SealedKind::CaKey, id, &sealed)?;
        let key = Arc::new(SoftwareKey::from_pkcs8(
            ca.entity.certificate_key_size,
            ca.entity.cloud_certification_authority_hashing_algorithm,
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

    fn ca_row(&self, entity: &CertificationAuthority, row_version: i64) -> Result<CaRow> {
        Ok(CaRow {
            id: entity.id.clone(),
            common_name: entity.common_name.clone(),
            issuer_id: entity.certification_authority_issuer_id.clone(),
            status: entity.certification_authority_status.name().to_owned(),
            doc: serde_json::to_string(entity).map_err(corrupt)?,
            cert: None,
            chain: Vec::new(),
            csr: None,
            revoked_at: None,
            revocation_reason: None,
            row_version,
            crl_number: 0,
            ocsp: None,
        })
    }

    /// Writes `ca.entity` back with a new status (and bumped row version).
    fn save_ca(&self, tx: &mut dyn Tx, ca: &mut LoadedCa, now: OffsetDateTime) -> Result<()> {
        ca.entity.last_modified_date_time = Some(now);
        // Expired is derived, never stored: store what the CA was before.
        let stored_status = match ca.entity.certification_authority_status {
            CaStatus::Expired => ca.row.status.clone(),
            s => s.name().to_owned(),
        };
        ca.row.status = stored_status;
        ca.row.doc = serde_json::to_string(&ca.entity).map_err(corrupt)?;
        ca.row.row_version += 1;
        tx.update_ca(&ca.row)?;
        ca.entity.e_tag = Some(format!("W/\"{}\"", ca.row.row_version));
        Ok(())
    }

    // ---------------------------------------------------------------- CAs

    /// Creates a root, an issuing CA under a root, or an issuing CA awaiting
    /// an external signature.
    pub fn create_ca(&self, req: NewCa) -> Result<CertificationAuthority> {
        req.subject.validate()?;
        if req.validity_years == 0 || req.validity_years > MAX_VALIDITY_YEARS {
            return Err(PkiError::Invalid(format!(
                "validityPeriodInYears must be 1 to {MAX_VALIDITY_YEARS}"
            )));
        }
        let mut ekus = req.ekus.iter().map(|s| parse_oid(s)).collect::<Result<Vec<_>>>()?;
        if ekus.contains(&oids::ANY_EKU) {
            return Err(PkiError::Invalid(
                "the Any Purpose EKU (2.5.29.37.0) is not allowed".into(),
            ));
        }
        ekus.dedup();
        match (req.ca_type, &req.issuer_id) {
            (CaType::IssuingCertificationAuthority, None) => {
                return Err(PkiError::Invalid(
                    "an issuing CA needs certificationAuthorityIssuerId (its root)".into(),
                ))
            }
            (CaType::RootCertificationAuthority | CaType::IssuingCertificationAuthorityWithExternalRoot, Some(_)) => {
                return Err(PkiError::Invalid(
                    "only an issuing CA anchored to a cloudpki root takes certificationAuthorityIssuerId".into(),
                ))
            }
            _ => {}
        }
        // Key generation is the slow part (RSA-4096: up to seconds); do it
        // before taking the write lock.
        let (key, pkcs8) = SoftwareKey::generate(req.key_size, req.hash)?;
        let id = uuid::Uuid::new_v4().to_string();
        let now = self.clock.now();
        let subject = req.subject.to_name()?;

        let mut tx = self.store.begin(TxMode::Write)?;
        let sealed = self.seal_in(tx.as_mut(), SealedKind::CaKey, &id, &pkcs8)?;
        if let Some(max) = self.settings.max_cas {
            if tx.cas()?.len() as u64 >= u64::from(max) {
                return Err(PkiError::CaLimitReached(max));
            }
        }
        let not_before = now - BACKDATE;
        let not_after = add_years(now, req.validity_years)?;
        let version = 1;
        let mut entity = CertificationAuthority {
            odata_type: CA_ODATA_TYPE.into(),
            id: id.clone(),
            display_name: req
                .display_name
                .clone()
                .unwrap_or_else(|| req.subject.common_name.clone()),
            description: req.description.clone(),
            scep_server_url: None,
            certificate_revocation_list_url: Some(self.settings.crl_url(&id, version)),
            certificate_download_url: Some(self.settings.cert_url(&id, version)),
            certification_authority_issuer_uri: None,
            ocsp_responder_uri: Some(self.settings.ocsp_url()),
            certification_authority_status: CaStatus::Active,
            e_tag: None,
            last_modified_date_time: Some(now),
            role_scope_tag_ids: if req.role_scope_tag_ids.is_empty() {
                vec!["0".into()]
            } else {
                req.role_scope_tag_ids.clone()
            },
            created_date_time: Some(now),
            certification_authority_issuer_id: req.issuer_id.clone(),
            issuer_common_name: None,
            cloud_certification_authority_type: req.ca_type,
            validity_period_in_years: req.validity_years as i32,
            validity_start_date_time: Some(not_before),
            validity_end_date_time: Some(not_after),
            common_name: req.subject.common_name.clone(),
            organization_name: req.subject.organization_name.clone(),
            organization_unit: req.subject.organization_unit.clone(),
            country_name: req.subject.country_name.as_ref().map(|c| c.to_ascii_uppercase()),
            state_name: req.subject.state_name.clone(),
            locality_name: req.subject.locality_name.clone(),
            subject_name: names::graph_subject_name(&subject),
            certificate_key_size: req.key_size,
            cloud_certification_authority_hashing_algorithm: req.hash,
            thumbprint: None,
            serial_number: None,
            certificate_signing_request: None,
            extended_key_usages: Vec::new(),
            version_number: version,
            root_certificate_common_name: None,
            key_platform: KeyPlatform::Software,
            revocation_date_time: None,
        };

        let (cert_der, csr_der) = match req.ca_type {
            CaType::RootCertificationAuthority => {
                if ekus.is_empty() {
                    ekus = vec![oids::KP_SERVER_AUTH, oids::KP_CLIENT_AUTH];
                }
                let ski = cert::key_identifier(key.public_key());
                let der = cert::issue(
                    &CertRequest {
                        serial: cert::random_serial()?,
                        subject: subject.clone(),
                        issuer: subject.clone(),
                        issuer_key_id: ski,
                        public_key: key.public_key().clone(),
                        not_before,
                        not_after,
                        // root -> issuing -> leaf: one CA below the root.
                        role: CertRole::Ca { path_len: Some(1) },
                        key_usage: cert::ca_key_usage(),
                        ekus: ekus.clone(),
                        pointers: None,
                        subject_alt_name: None,
                    },
                    &key,
                )?;
                entity.root_certificate_common_name = Some(req.subject.common_name.clone());
                (Some(der), None)
            }
            CaType::IssuingCertificationAuthority => {
                let root_id = req.issuer_id.as_deref().unwrap_or_default();
                let root = self.load_ca(tx.as_mut(), root_id, now)?;
                lifecycle::check(
                    Action::AnchorIssuingCa,
                    root.facts(tx.as_mut(), now, Action::AnchorIssuingCa)?,
                )?;
                let root_ekus = root.ekus()?;
                if ekus.is_empty() {
                    ekus = root_ekus.clone();
                } else if let Some(extra) = ekus.iter().find(|e| !root_ekus.contains(e)) {
                    return Err(PkiError::Invalid(format!("EKU {extra} is not defined on the root CA")));
                }
                let root_end = root
                    .entity
                    .validity_end_date_time
                    .ok_or_else(|| corrupt("root without validity"))?;
                if not_after > root_end {
                    return Err(PkiError::Invalid(format!(
                        "an issuing CA cannot outlive its root: {} years ends after the root's notAfter {root_end}",
                        req.validity_years
                    )));
                }
                let root_cert = root.cert()?;
                let root_key = self.signer(tx.as_mut(), &root)?;
                let der = cert::issue(
                    &CertRequest {
                        serial: cert::random_serial()?,
                        subject: subject.clone(),
                        issuer: root_cert.tbs().subject.clone(),
                        issuer_key_id: cert::key_identifier(root_key.public_key()),
                        public_key: key.public_key().clone(),
                        not_before,
                        not_after,
                        role: CertRole::Ca { path_len: Some(0) },
                        key_usage: cert::ca_key_usage(),
                        ekus: ekus.clone(),
                        pointers: Some(RevocationPointers {
                            crl_url: self.settings.crl_url(&root.row.id, root.entity.version_number),
                            ca_issuers_url: self.settings.cert_url(&root.row.id, root.entity.version_number),
                            ocsp_url: Some(self.settings.ocsp_url()),
                        }),
                        subject_alt_name: None,
                    },
                    root_key.as_ref(),
                )?;
                entity.issuer_common_name = Some(root.entity.common_name.clone());
                entity.root_certificate_common_name = Some(root.entity.common_name.clone());
                entity.certification_authority_issuer_uri = root.entity.certificate_download_url.clone();
                (Some(der), None)
            }
            CaType::IssuingCertificationAuthorityWithExternalRoot => {
                if ekus.is_empty() {
                    ekus = vec![oids::KP_SERVER_AUTH, oids::KP_CLIENT_AUTH];
                }
                let csr_der = csr::build_ca_request(&subject, &key, &ekus)?;
                entity.certification_authority_status = CaStatus::SigningPending;
                entity.certificate_signing_request =
                    Some(<base64ct::Base64 as base64ct::Encoding>::encode_string(&csr_der));
                entity.validity_start_date_time = None;
                entity.validity_end_date_time = None;
                (None, Some(csr_der))
            }
        };
        entity.extended_key_usages = ekus
            .iter()
            .map(|o| ExtendedKeyUsage {
                name: eku_name(&o.to_string()).into(),
                object_identifier: o.to_string(),
            })
            .collect();
        if let Some(der) = &cert_der {
            let parsed = ParsedCert::from_der(der)?;
            entity.thumbprint = Some(crate::x509::thumbprint(der));
            entity.serial_number = Some(parsed.serial_hex());
        }
        let mut row = self.ca_row(&entity, 1)?;
        row.cert = cert_der;
        row.csr = csr_der;
        row.ocsp = self.presign_ca_cert(tx.as_mut(), &row, now)?;
        tx.insert_ca(&row, Some(&sealed))?;
        self.record(tx.as_mut(), now, ChangeKind::CaCreated, &id, None, audit::CREATE_CA)?;
        self.commit(tx)?;
        self.signers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Arc::new(key));
        entity.e_tag = Some("W/\"1\"".into());
        Ok(entity)
    }

    pub fn get_ca(&self, id: &str) -> Result<CertificationAuthority> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Read)?;
        Ok(self.load_ca(tx.as_mut(), id, now)?.entity)
    }

    pub fn list_cas(&self) -> Result<Vec<CertificationAuthority>> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Read)?;
        tx.cas()?.iter().map(|r| self.ca_entity(r, now)).collect()
    }

    /// The CA certificate (DER), if it has one yet.
    pub fn ca_certificate(&self, id: &str) -> Result<Vec<u8>> {
        let mut tx = self.store.begin(TxMode::Read)?;
        let row = tx.ca(id)?.ok_or_else(|| PkiError::NotFound {
            what: "certification authority",
            id: id.into(),
        })?;
        row.cert
            .ok_or_else(|| PkiError::Invalid("the CA has no certificate yet: signing is pending".into()))
    }

    /// The CSR of a CA awaiting its external signature (DER).
    pub fn ca_csr(&self, id: &str) -> Result<Vec<u8>> {
        let mut tx = self.store.begin(TxMode::Read)?;
        let row = tx.ca(id)?.ok_or_else(|| PkiError::NotFound {
            what: "certification authority",
            id: id.into(),
        })?;
        row.csr.ok_or_else(|| {
            PkiError::Invalid("the CA has no certificate signing request (only a CA with an external root does)".into())
        })
    }

    /// Applies a status-changing action (pause, resume, revoke) to a CA.
    fn transition(&self, id: &str, action: Action, reason: Option<RevocationReason>) -> Result<CertificationAuthority> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write)?;
        let mut ca = self.load_ca(tx.as_mut(), id, now)?;
        let facts = ca.facts(tx.as_mut(), now, action)?;
        match lifecycle::check(action, facts)? {
            Effect::Become(status) => ca.entity.certification_authority_status = status,
            Effect::Stay | Effect::Remove => return Err(corrupt("unexpected lifecycle effect")),
        }
        if action == Action::Revoke {
            ca.row.revoked_at = Some(ts(now));
            ca.row.revocation_reason = Some(reason.unwrap_or(RevocationReason::CessationOfOperation).code());
            ca.entity.revocation_date_time = Some(now);
            // The root's answer about this CA's certificate becomes "revoked".
            ca.row.ocsp = self.presign_ca_cert(tx.as_mut(), &ca.row, now)?;
        }
        self.save_ca(tx.as_mut(), &mut ca, now)?;
        self.record(
            tx.as_mut(),
            now,
            ChangeKind::CaUpdated,
            id,
            None,
            if action == Action::Revoke {
                audit::REVOKE_CA
            } else {
                audit::CHANGE_STATUS
            },
        )?;
        self.commit(tx)?;
        Ok(ca.entity)
    }

    pub fn pause_ca(&self, id: &str) -> Result<CertificationAuthority> {
        self.transition(id, Action::Pause, None)
    }

    pub fn resume_ca(&self, id: &str) -> Result<CertificationAuthority> {
        self.transition(id, Action::Resume, None)
    }

    /// Revokes an issuing CA's certificate (it then appears on its root's CRL).
    pub fn revoke_ca(&self, id: &str, reason: Option<RevocationReason>) -> Result<CertificationAuthority> {
        self.transition(id, Action::Revoke, reason)
    }

    pub fn delete_ca(&self, id: &str) -> Result<()> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write)?;
        let ca = self.load_ca(tx.as_mut(), id, now)?;
        let facts = ca.facts(tx.as_mut(), now, Action::Delete)?;
        lifecycle::check(Action::Delete, facts)?;
        // Recorded first: the audit event takes the scope tags of the CA it deletes.
        self.record(tx.as_mut(), now, ChangeKind::CaDeleted, id, None, audit::DELETE_CA)?;
        tx.delete_ca(id, ts(now))?;
        self.commit(tx)?;
        self.forget_signer(id);
        Ok(())
    }

    /// Updates the writable properties (Graph PATCH), checking the eTag when given.
    pub fn update_ca(
        &self,
        id: &str,
        if_match: Option<&str>,
        display_name: Option<String>,
        description: Option<Option<String>>,
        role_scope_tag_ids: Option<Vec<String>>,
    ) -> Result<CertificationAuthority> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write)?;
        let mut ca = self.load_ca(tx.as_mut(), id, now)?;
        if let Some(tag) = if_match {
            if tag != "*" && Some(tag) != ca.entity.e_tag.as_deref() {
                return Err(PkiError::PreconditionFailed);
            }
        }
        if let Some(name) = display_name {
            if name.trim().is_empty() {
                return Err(PkiError::Invalid("displayName must not be empty".into()));
            }
            ca.entity.display_name = name;
        }
        if let Some(d) = description {
            ca.entity.description = d;
        }
        if let Some(tags) = role_scope_tag_ids {
            ca.entity.role_scope_tag_ids = if tags.is_empty() { vec!["0".into()] } else { tags };
        }
        self.save_ca(tx.as_mut(), &mut ca, now)?;
        self.record(tx.as_mut(), now, ChangeKind::CaUpdated, id, None, audit::PATCH_CA)?;
        self.commit(tx)?;
        Ok(ca.entity)
    }

    /// Completes an external-root CA: `signed` must be a CA certificate for
    /// this CA's key, signed by the first certificate of `chain`, and the
    /// chain must verify up to a self-signed root.
    pub fn upload_signed_certificate(&self, id: &str, signed: &[u8], chain: &[u8]) -> Result<CertificationAuthority> {
        let cert_der = pem::decode_one(signed, &["CERTIFICATE"])?;
        let leaf =
            ParsedCert::from_der(&cert_der).map_err(|e| PkiError::Rejected(format!("signed certificate: {e}")))?;
        leaf.check_serial()
            .map_err(|e| PkiError::Rejected(format!("signed certificate: {e}")))?;
        let mut chain_certs = Vec::new();
        for der in pem::decode_all(chain, &["CERTIFICATE"])? {
            chain_certs
                .push(ParsedCert::from_der(&der).map_err(|e| PkiError::Rejected(format!("chain certificate: {e}")))?);
        }
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write)?;
        let mut ca = self.load_ca(tx.as_mut(), id, now)?;
        lifecycle::check(
            Action::UploadSignedCertificate,
            ca.facts(tx.as_mut(), now, Action::UploadSignedCertificate)?,
        )?;
        let key = self.signer(tx.as_mut(), &ca)?;

        if leaf.tbs().subject_public_key_info != *key.public_key() {
            return Err(PkiError::Rejected("the certificate is not for this CA's key".into()));
        }
        if !leaf.is_ca()? {
            return Err(PkiError::Rejected(
                "the certificate is not a CA certificate (basicConstraints cA / keyCertSign)".into(),
            ));
        }
        let in_validity = |c: &ParsedCert| -> Result<bool> { Ok(c.not_before()? <= now && now < c.not_after()?) };
        if !in_validity(&leaf)? {
            return Err(PkiError::Rejected(
                "the certificate is not within its validity period".into(),
            ));
        }
        // Walk leaf -> ... -> self-signed anchor, verifying every signature.
        let mut ordered: Vec<ParsedCert> = Vec::new();
        let mut current = leaf.clone();
        loop {
            let issuer = chain_certs
                .iter()
                .find(|c| {
                    c.tbs().subject == current.tbs().issuer
                        && current.verify_signed_by(&c.tbs().subject_public_key_info).is_ok()
                })
                .cloned()
                .ok_or_else(|| {
                    PkiError::Rejected(format!(
                        "no certificate in the chain signed {}",
                        names::graph_subject_name(&current.tbs().subject)
                    ))
                })?;
            if !issuer.is_ca()? {
                return Err(PkiError::Rejected("a chain certificate is not a CA certificate".into()));
            }
            if !in_validity(&issuer)? {
                return Err(PkiError::Rejected(
                    "a chain certificate is not within its validity period".into(),
                ));
            }
            let done = issuer.is_self_issued();
            ordered.push(issuer.clone());
            if done {
                break;
            }
            if ordered.len() > 8 {
                return Err(PkiError::Rejected("the chain is longer than 8 certificates".into()));
            }
            current = issuer;
        }
        let signer_cert = &ordered[0];
        let anchor = &ordered[ordered.len() - 1];
        let cert_ekus = leaf.ekus()?;
        if cert_ekus.contains(&oids::ANY_EKU) {
            return Err(PkiError::Rejected("the certificate carries the Any Purpose EKU".into()));
        }
        if !cert_ekus.is_empty() {
            ca.entity.extended_key_usages = cert_ekus
                .iter()
                .map(|o| ExtendedKeyUsage {
                    name: eku_name(&o.to_string()).into(),
                    object_identifier: o.to_string(),
                })
                .collect();
        }
        ca.entity.certification_authority_status = CaStatus::Active;
        ca.entity.validity_start_date_time = Some(leaf.not_before()?);
        ca.entity.validity_end_date_time = Some(leaf.not_after()?);
        ca.entity.thumbprint = Some(crate::x509::thumbprint(&cert_der));
        ca.entity.serial_number = Some(leaf.serial_hex());
        ca.entity.subject_name = names::graph_subject_name(&leaf.tbs().subject);
        ca.entity.issuer_common_name = names::common_name(&signer_cert.tbs().subject);
        ca.entity.root_certificate_common_name = names::common_name(&anchor.tbs().subject);
        ca.entity.certification_authority_issuer_uri = leaf.ca_issuers_uri()?;
        ca.entity.certificate_signing_request = None;
        ca.row.cert = Some(cert_der);
        ca.row.chain = ordered.into_iter().map(|c| c.der).collect();
        self.save_ca(tx.as_mut(), &mut ca, now)?;
        self.record(tx.as_mut(), now, ChangeKind::CaUpdated, id, None, audit::UPLOAD)?;
        self.commit(tx)?;
        Ok(ca.entity)
    }

    /// The certificates above a CA, issuer first (for chain downloads).
    pub fn ca_chain(&self, id: &str) -> Result<Vec<Vec<u8>>> {
        let mut tx = self.store.begin(TxMode::Read)?;
        let row = tx.ca(id)?.ok_or_else(|| PkiError::NotFound {
            what: "certification authority",
            id: id.into(),
        })?;
        if !row.chain.is_empty() {
            return Ok(row.chain);
        }
        let mut out = Vec::new();
        let mut parent = row.issuer_id;
        while let Some(pid) = parent {
            let Some(p) = tx.ca(&pid)? else { break };
            if let Some(c) = p.cert {
                out.push(c);
            }
            parent = p.issuer_id;
        }
        Ok(out)
    }

    // ------------------------------------------------------------- leaves

    /// Checks a CSR and the CA's permission to issue for it; returns what the
    /// certificate will be built from.
    fn prepare_leaf(
        &self,
        ca: &LoadedCa,
        request: &NewLeaf,
    ) -> Result<(csr::VerifiedCsr, Vec<ObjectIdentifier>, String)> {
        let csr = csr::verify(&request.csr, MIN_LEAF_STRENGTH)
            .map_err(|e| PkiError::Rejected(format!("certificate signing request: {e}")))?;
        if csr.subject.0.is_empty() && csr.subject_alt_name.is_none() {
            return Err(PkiError::Rejected(
                "the request has neither a subject nor a subjectAltName".into(),
            ));
        }
        let ca_ekus = ca.ekus()?;
        let ekus = if csr.requested_ekus.is_empty() {
            ca_ekus
        } else {
            if let Some(missing) = csr.requested_ekus.iter().find(|e| !ca_ekus.contains(e)) {
                return Err(PkiError::Rejected(format!(
                    "the CA does not have the requested EKU {missing}"
                )));
            }
            csr.requested_ekus.clone()
        };
        let platform = match &request.device_platform {
            None => "Unknown",
            Some(p) => device_platform(p).ok_or_else(|| PkiError::Invalid(format!("unknown devicePlatform {p:?}")))?,
        };
        Ok((csr, ekus, platform.to_owned()))
    }

    fn build_leaf(
        &self,
        tx: &mut dyn Tx,
        keys: &IssuingKeys<'_>,
        prepared: &(csr::VerifiedCsr, Vec<ObjectIdentifier>, String),
        request: &NewLeaf,
        now: OffsetDateTime,
    ) -> Result<(LeafCertificate, Vec<u8>)> {
        let IssuingKeys {
            ca,
            ca_cert,
            signer,
            responder,
        } = keys;
        let (ca, ca_cert, signer, responder) = (*ca, ca_cert, signer.as_ref(), responder.as_ref());
        let (csr, ekus, platform) = prepared;
        let ca_end = ca
            .entity
            .validity_end_date_time
            .ok_or_else(|| corrupt("CA without validity"))?;
        let days = request.validity_days.unwrap_or(365).clamp(1, 3650);
        let not_before = now - BACKDATE;
        let not_after = (now + Duration::days(i64::from(days))).min(ca_end);
        let version = ca.entity.version_number;
        let crl_url = self.settings.crl_url(&ca.row.id, version);
        let cert_url = self.settings.cert_url(&ca.row.id, version);
        let key_usage = cert::leaf_key_usage(&csr.public_key);
        let mut req = CertRequest {
            serial: Vec::new(),
            subject: csr.subject.clone(),
            issuer: ca_cert.tbs().subject.clone(),
            issuer_key_id: cert::key_identifier(signer.public_key()),
            public_key: csr.public_key.clone(),
            not_before,
            not_after,
            role: CertRole::EndEntity,
            key_usage,
            ekus: ekus.clone(),
            pointers: Some(RevocationPointers {
                crl_url: crl_url.clone(),
                ca_issuers_url: cert_url.clone(),
                ocsp_url: Some(self.settings.ocsp_url()),
            }),
            subject_alt_name: csr.subject_alt_name.clone(),
        };
        // A 127-bit random serial collides with negligible probability; the
        // unique index turns the impossible case into a retry, not a duplicate.
        for _ in 0..3 {
            req.serial = cert::random_serial()?;
            let der = cert::issue(&req, signer)?;
            let id = uuid::Uuid::new_v4().to_string();
            let serial = crate::x509::hex_upper(&req.serial);
            let entity = LeafCertificate {
                odata_type: LEAF_ODATA_TYPE.into(),
                id: id.clone(),
                subject_name: names::graph_subject_name(&csr.subject),
                issuer_id: ca.row.id.clone(),
                issuer_name: names::graph_issuer_name(&ca_cert.tbs().subject),
                certificate_status: LeafStatus::Active,
                validity_start_date_time: not_before,
                validity_end_date_time: not_after,
                crl_distribution_point_url: Some(crl_url.clone()),
                certification_authority_issuer_uri: Some(cert_url.clone()),
                ocsp_responder_uri: Some(self.settings.ocsp_url()),
                thumbprint: crate::x509::thumbprint(&der),
                serial_number: serial.clone(),
                revocation_date_time: None,
                revocation_reason: None,
                device_name: request.device_name.clone(),
                user_principal_name: request.user_principal_name.clone(),
                device_id: request.device_id.clone(),
                user_id: request.user_id.clone(),
                device_platform: platform.clone(),
                key_usages: cert::key_usage_names(&req.key_usage),
                extended_key_usages: ekus.iter().map(ToString::to_string).collect(),
            };
            let row = LeafRow {
                seq: 0,
                id: id.clone(),
                ca_id: ca.row.id.clone(),
                serial,
                not_after: ts(not_after),
                revoked_at: None,
                revocation_reason: None,
                doc: serde_json::to_string(&entity).map_err(corrupt)?,
                der: der.clone(),
                // A new certificate has its signed answer from the moment it exists.
                ocsp: Some(self.presign(ca_cert, responder, &req.serial, ocsp::Status::Good, now)?),
            };
            match tx.insert_leaf(&row) {
                Ok(_) => {
                    self.record(
                        tx,
                        now,
                        ChangeKind::LeafIssued,
                        &ca.row.id,
                        Some(&id),
                        audit::ISSUE_LEAF,
                    )?;
                    return Ok((entity, der));
                }
                Err(StoreError::DuplicateSerial) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(PkiError::Store(StoreError::Backend(
            "could not find a free serial number".into(),
        )))
    }

    /// Issues one leaf certificate from a PKCS#10 request.
    pub fn issue_leaf(&self, ca_id: &str, request: &NewLeaf) -> Result<(LeafCertificate, Vec<u8>)> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write)?;
        let ca = self.load_ca(tx.as_mut(), ca_id, now)?;
        lifecycle::check(Action::IssueLeaf, ca.facts(tx.as_mut(), now, Action::IssueLeaf)?)?;
        let prepared = self.prepare_leaf(&ca, request)?;
        let signer = self.signer(tx.as_mut(), &ca)?;
        let responder = self.responder(tx.as_mut(), &ca, now)?;
        let keys = IssuingKeys {
            ca: &ca,
            ca_cert: ca.cert()?,
            signer,
            responder,
        };
        let out = self.build_leaf(tx.as_mut(), &keys, &prepared, request, now)?;
        self.commit(tx)?;
        Ok(out)
    }

    /// Issues `count` leaves for one request, committing every `batch`
    /// (load-test fixtures and benchmarks). `on_batch` sees each committed batch.
    pub fn issue_leaves_bulk(
        &self,
        ca_id: &str,
        request: &NewLeaf,
        count: u64,
        batch: u64,
        on_batch: &mut dyn FnMut(&[LeafCertificate]),
    ) -> Result<u64> {
        let mut issued = 0;
        while issued < count {
            let now = self.clock.now();
            let mut tx = self.store.begin(TxMode::Write)?;
            let ca = self.load_ca(tx.as_mut(), ca_id, now)?;
            lifecycle::check(Action::IssueLeaf, ca.facts(tx.as_mut(), now, Action::IssueLeaf)?)?;
            let prepared = self.prepare_leaf(&ca, request)?;
            let signer = self.signer(tx.as_mut(), &ca)?;
            let responder = self.responder(tx.as_mut(), &ca, now)?;
            let keys = IssuingKeys {
                ca: &ca,
                ca_cert: ca.cert()?,
                signer,
                responder,
            };
            let n = batch.max(1).min(count - issued);
            let mut done = Vec::with_capacity(n as usize);
            for _ in 0..n {
                done.push(self.build_leaf(tx.as_mut(), &keys, &prepared, request, now)?.0);
            }
            self.commit(tx)?;
            issued += n;
            on_batch(&done);
        }
        Ok(issued)
    }

    pub fn get_leaf(&self, id: &str) -> Result<(LeafCertificate, Vec<u8>)> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Read)?;
        let row = tx.leaf(id)?.ok_or_else(|| PkiError::NotFound {
            what: "leaf certificate",
            id: id.into(),
        })?;
        Ok((self.leaf_entity(&row, now)?, row.der))
    }

    /// Finds a leaf by serial number (any case, with or without `00`).
    pub fn find_leaf_by_serial(&self, ca_id: Option<&str>, serial: &str) -> Result<LeafCertificate> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Read)?;
        let row = self.leaf_row_by_serial(tx.as_mut(), ca_id, serial)?;
        self.leaf_entity(&row, now)
    }

    fn leaf_row_by_serial(&self, tx: &mut dyn Tx, ca_id: Option<&str>, serial: &str) -> Result<LeafRow> {
        let canonical = crate::x509::normalize_serial(serial)
            .ok_or_else(|| PkiError::Invalid(format!("{serial:?} is not a hexadecimal serial number")))?;
        let mut rows = tx.leaves_by_serial(ca_id, &canonical)?;
        match rows.len() {
            0 => Err(PkiError::NotFound {
                what: "leaf certificate with serial number",
                id: canonical,
            }),
            1 => Ok(rows.remove(0)),
            _ => Err(PkiError::AmbiguousSerial(canonical)),
        }
    }

    /// One page of leaves, in issuance order.
    pub fn list_leaves(&self, q: &LeafListQuery) -> Result<Vec<(i64, LeafCertificate)>> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Read)?;
        if let Some(ca) = &q.ca_id {
            self.load_ca(tx.as_mut(), ca, now)?;
        }
        let rows = tx.leaves(&LeafQuery {
            ca_id: q.ca_id.clone(),
            filter: leaf_filter(q.status, now),
            after_seq: q.after_seq,
            limit: q.limit,
        })?;
        rows.iter().map(|r| Ok((r.seq, self.leaf_entity(r, now)?))).collect()
    }

    /// Every leaf of a CA, in issuance order.
    pub fn all_leaves(&self, ca_id: &str) -> Result<Vec<LeafCertificate>> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page = self.list_leaves(&LeafListQuery {
                ca_id: Some(ca_id.to_owned()),
                status: None,
                after_seq: after,
                limit: 5000,
            })?;
            let Some((last, _)) = page.last() else { break };
            after = *last;
            all.extend(page.into_iter().map(|(_, l)| l));
        }
        Ok(all)
    }

    pub fn count_leaves(&self, ca_id: Option<&str>, status: Option<LeafStatus>) -> Result<u64> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Read)?;
        Ok(tx.count_leaves(ca_id, leaf_filter(status, now))?)
    }

    fn revoke_row(
        &self,
        tx: &mut dyn Tx,
        row: &LeafRow,
        reason: RevocationReason,
        now: OffsetDateTime,
    ) -> Result<LeafCertificate> {
        let ca = self.load_ca(tx, &row.ca_id, now)?;
        lifecycle::check(Action::RevokeLeaf, ca.facts(tx, now, Action::RevokeLeaf)?)?;
        if row.revoked_at.is_some() {
            return Err(PkiError::AlreadyRevoked(row.id.clone()));
        }
        let serial = crate::x509::cert::ParsedCert::from_der(&row.der)?
            .tbs()
            .serial_number
            .as_bytes()
            .to_vec();
        let key = self.responder(tx, &ca, now)?;
        let status = ocsp::Status::Revoked {
            at: now,
            reason: reason.code(),
        };
        let presigned = self.presign(&ca.cert()?, key.as_ref(), &serial, status, now)?;
        if !tx.revoke_leaf(&row.id, ts(now), reason.code(), &presigned)? {
            return Err(PkiError::AlreadyRevoked(row.id.clone()));
        }
        self.record(
            tx,
            now,
            ChangeKind::LeafRevoked,
            &row.ca_id,
            Some(&row.id),
            audit::REVOKE_LEAF,
        )?;
        let mut revoked = row.clone();
        revoked.revoked_at = Some(ts(now));
        revoked.revocation_reason = Some(reason.code());
        self.leaf_entity(&revoked, now)
    }

    /// Revokes one leaf by id. Revoking twice is an error, not a second entry.
    pub fn revoke_leaf(&self, id: &str, ca_id: Option<&str>, reason: RevocationReason) -> Result<LeafCertificate> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write)?;
        let row = tx.leaf(id)?.ok_or_else(|| PkiError::NotFound {
            what: "leaf certificate",
            id: id.into(),
        })?;
        if ca_id.is_some_and(|c| c != row.ca_id) {
            return Err(PkiError::NotFound {
                what: "leaf certificate of this CA",
                id: id.into(),
            });
        }
        let out = self.revoke_row(tx.as_mut(), &row, reason, now)?;
        self.commit(tx)?;
        Ok(out)
    }

    pub fn revoke_leaf_by_serial(
        &self,
        ca_id: Option<&str>,
        serial: &str,
        reason: RevocationReason,
    ) -> Result<LeafCertificate> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write)?;
        let row = self.leaf_row_by_serial(tx.as_mut(), ca_id, serial)?;
        let out = self.revoke_row(tx.as_mut(), &row, reason, now)?;
        self.commit(tx)?;
        Ok(out)
    }

    /// Revokes the given leaves in one transaction: all or none.
    pub fn revoke_leaves(&self, ids: &[String], reason: RevocationReason) -> Result<Vec<LeafCertificate>> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let row = tx.leaf(id)?.ok_or_else(|| PkiError::NotFound {
                what: "leaf certificate",
                id: id.clone(),
            })?;
            out.push(self.revoke_row(tx.as_mut(), &row, reason, now)?);
        }
        self.commit(tx)?;
        Ok(out)
    }

    /// Revokes every active leaf of a CA, committing every `batch` leaves;
    /// `on_batch` is called after each commit with what it made durable.
    pub fn revoke_all_leaves(
        &self,
        ca_id: &str,
        reason: RevocationReason,
        batch: u32,
        on_batch: &mut dyn FnMut(&[LeafCertificate]),
    ) -> Result<u64> {
        let mut total = 0;
        loop {
            let now = self.clock.now();
            let mut tx = self.store.begin(TxMode::Write)?;
            let ca = self.load_ca(tx.as_mut(), ca_id, now)?;
            lifecycle::check(Action::RevokeLeaf, ca.facts(tx.as_mut(), now, Action::RevokeLeaf)?)?;
            let rows = tx.leaves(&LeafQuery {
                ca_id: Some(ca_id.to_owned()),
                filter: LeafFilter::Active { now: ts(now) },
                after_seq: 0,
                limit: batch.max(1),
            })?;
            if rows.is_empty() {
                return Ok(total);
            }
            let mut done = Vec::with_capacity(rows.len());
            for row in &rows {
                done.push(self.revoke_row(tx.as_mut(), row, reason, now)?);
            }
            self.commit(tx)?;
            total += done.len() as u64;
            on_batch(&done);
        }
    }

    /// Updates a leaf's device/user metadata (Graph PATCH on a leaf).
    pub fn update_leaf(&self, id: &str, patch: &NewLeaf) -> Result<LeafCertificate> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write)?;
        let row = tx.leaf(id)?.ok_or_else(|| PkiError::NotFound {
            what: "leaf certificate",
            id: id.into(),
        })?;
        let mut e = self.leaf_entity(&row, now)?;
        if let Some(v) = &patch.device_name {
            e.device_name = Some(v.clone());
        }
        if let Some(v) = &patch.user_principal_name {
            e.user_principal_name = Some(v.clone());
        }
        if let Some(v) = &patch.device_id {
            e.device_id = Some(v.clone());
        }
        if let Some(v) = &patch.user_id {
            e.user_id = Some(v.clone());
        }
        if let Some(p) = &patch.device_platform {
            e.device_platform = device_platform(p)
                .ok_or_else(|| PkiError::Invalid(format!("unknown devicePlatform {p:?}")))?
                .into();
        }
        tx.update_leaf_doc(id, &serde_json::to_string(&e).map_err(corrupt)?)?;
        self.record(
            tx.as_mut(),
            now,
            ChangeKind::LeafUpdated,
            &row.ca_id,
            Some(id),
            audit::PATCH_LEAF,
        )?;
        self.commit(tx)?;
        Ok(e)
    }

    // ------------------------------------------------- revocation data

    /// The key (and, when delegated, certificate) that signs OCSP answers
    /// about `ca_id`'s certificates, for answers made on demand (nonces,
    /// unknown serials). Issues or rotates the delegated certificate if due.
    pub fn ocsp_responder(&self, ca_id: &str) -> Result<Arc<OcspResponder>> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write)?;
        let ca = self.load_ca(tx.as_mut(), ca_id, now)?;
        let r = self.responder(tx.as_mut(), &ca, now)?;
        self.commit(tx)?;
        Ok(r)
    }

    /// The OCSP responder key of a CA: the CA key itself, or a delegated
    /// OCSP signing certificate the CA issues and rotates (per the data
    /// directory's `ocsp_signer` setting).
    fn responder(&self, tx: &mut dyn Tx, ca: &LoadedCa, now: OffsetDateTime) -> Result<Arc<OcspResponder>> {
        if self.settings.ocsp_signing == OcspSigning::CaKey {
            return Ok(Arc::new(OcspResponder {
                key: self.signer(tx, ca)?,
                cert: None,
                not_after: None,
            }));
        }
        let id = &ca.row.id;
        let rotate_before = now + DELEGATE_ROTATE_BEFORE;
        let cached = self
            .delegates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned();
        if let Some(r) = cached.filter(|r| r.not_after.is_some_and(|t| t > rotate_before)) {
            return Ok(r);
        }
        let stored = tx.ocsp_delegate(id)?;
        let fresh = match stored {
            Some(DelegateRow {
                cert,
                sealed_key: sealed,
                not_after,
            }) if from_ts(not_after)? > rotate_before => {
                let pkcs8 = self.unseal(SealedKind::OcspDelegateKey, id, &sealed)?;
                let key = SoftwareKey::from_pkcs8(
                    ca.entity.certificate_key_size,
                    ca.entity.cloud_certification_authority_hashing_algorithm,
                    &pkcs8,
                )?;
                let cert = ParsedCert::from_der(&cert)?;
                OcspResponder {
                    key: Arc::new(key),
                    cert: Some(Arc::new(cert.cert)),
                    not_after: Some(from_ts(not_after)?),
                }
            }
            _ => {
                let ca_key = self.signer(tx, ca)?;
                let ca_cert = ca.cert()?;
                let ca_end = ca
                    .entity
                    .validity_end_date_time
                    .ok_or_else(|| corrupt("CA without validity"))?;
                let not_after = (now + DELEGATE_VALIDITY).min(ca_end);
                if not_after <= now + self.settings.timings.ocsp_validity {
                    // Too close to the CA's end for a useful delegate: sign with the CA key.
                    return Ok(Arc::new(OcspResponder {
                        key: ca_key,
                        cert: None,
                        not_after: None,
                    }));
                }
                let (key, pkcs8) = SoftwareKey::generate(
                    ca.entity.certificate_key_size,
                    ca.entity.cloud_certification_authority_hashing_algorithm,
                )?;
                let mut subject = ca_cert.tbs().subject.clone();
                let cn = format!("{} OCSP Responder", ca.entity.common_name);
                subject.0.retain(|rdn| !rdn.0.iter().any(|a| a.oid == oids::CN));
                subject.0.extend(
                    SubjectParts {
                        common_name: cn,
                        ..Default::default()
                    }
                    .to_name()?
                    .0,
                );
                let der = cert::issue(
                    &CertRequest {
                        serial: cert::random_serial()?,
                        subject,
                        issuer: ca_cert.tbs().subject.clone(),
                        issuer_key_id: cert::key_identifier(ca_key.public_key()),
                        public_key: key.public_key().clone(),
                        not_before: now - BACKDATE,
                        not_after,
                        role: CertRole::OcspResponder,
                        key_usage: x509_cert::ext::pkix::KeyUsage(
                            x509_cert::ext::pkix::KeyUsages::DigitalSignature.into(),
                        ),
                        ekus: vec![oids::KP_OCSP_SIGNING],
                        pointers: None,
                        subject_alt_name: None,
                    },
                    ca_key.as_ref(),
                )?;
                let sealed = self.seal_in(tx, SealedKind::OcspDelegateKey, id, &pkcs8)?;
                tx.put_ocsp_delegate(id, &der, &sealed, ts(not_after))?;
                let cert = ParsedCert::from_der(&der)?;
                OcspResponder {
                    key: Arc::new(key),
                    cert: Some(Arc::new(cert.cert)),
                    not_after: Some(not_after),
                }
            }
        };
        let fresh = Arc::new(fresh);
        self.delegates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), fresh.clone());
        Ok(fresh)
    }

    /// Hands out the next CRL number of a CA. Numbers are reserved durably
    /// in blocks, so signing a CRL waits for no disk write; a restart skips
    /// the rest of a block (RFC 5280 requires increasing numbers, not
    /// consecutive ones).
    fn next_crl_number(&self, ca_id: &str) -> Result<i64> {
        let mut blocks = self.crl_numbers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((next, high)) = blocks.get_mut(ca_id) {
            if *next <= *high {
                *next += 1;
                return Ok(*next - 1);
            }
        }
        let mut tx = self.store.begin(TxMode::Write)?;
        let high = tx.reserve_crl_numbers(ca_id, CRL_NUMBER_BLOCK)?;
        tx.commit()?;
        let first = high - CRL_NUMBER_BLOCK + 1;
        blocks.insert(ca_id.to_owned(), (first + 1, high));
        Ok(first)
    }

    /// Signs a new CRL of `ca_id` listing `entries`, without storing it: the
    /// caller serves it at once and stores it with [`Pki::store_crl`].
    pub fn sign_crl(&self, ca_id: &str, entries: &crl::CrlEntries) -> Result<CrlRow> {
        let now = self.clock.now();
        let (ca, key) = {
            let mut tx = self.store.begin(TxMode::Read)?;
            let ca = self.load_ca(tx.as_mut(), ca_id, now)?;
            let key = self.signer(tx.as_mut(), &ca)?;
            (ca, key)
        };
        let cert = ca.cert()?;
        let number = self.next_crl_number(ca_id)?;
        let next_update = now + self.settings.timings.crl_validity;
        let dp = self.settings.crl_url(ca_id, ca.entity.version_number);
        let der = crl::sign_crl(
            &crl::CrlParams {
                issuer: &cert.tbs().subject,
                issuer_key_id: &cert::key_identifier(key.public_key()),
                number: number as u64,
                this_update: now,
                next_update,
                distribution_point: &dp,
                only_ca_certs: ca.entity.cloud_certification_authority_type == CaType::RootCertificationAuthority,
            },
            entries,
            key.as_ref(),
        )?;
        Ok(CrlRow {
            ca_id: ca_id.to_owned(),
            number,
            this_update: ts(now),
            next_update: ts(next_update),
            der,
        })
    }

    /// Stores a signed CRL (for other responders and restarts) and logs the change.
    pub fn store_crl(&self, row: &CrlRow) -> Result<()> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write)?;
        tx.put_crl(row)?;
        tx.append_change(ts(now), ChangeKind::CrlPublished, &row.ca_id, None)?;
        self.commit(tx)
    }

    /// Signs and stores a CRL in one call.
    pub fn publish_crl(&self, ca_id: &str, entries: &crl::CrlEntries) -> Result<CrlRow> {
        let row = self.sign_crl(ca_id, entries)?;
        self.store_crl(&row)?;
        Ok(row)
    }

    /// Re-signs pre-signed OCSP answers older than the refresh age: up to
    /// `limit` leaves, plus CA certificates' own answers. Returns how many
    /// answers were refreshed. Each CA's batch is one change-log entry.
    pub fn refresh_ocsp(&self, limit: u32) -> Result<usize> {
        let now = self.clock.now();
        let cutoff = ts(now - self.settings.timings.ocsp_refresh_after);
        let mut tx = self.store.begin(TxMode::Write)?;
        let due = tx.leaves_due_for_ocsp(cutoff, limit)?;
        let mut by_ca: HashMap<String, Vec<LeafStatusRow>> = HashMap::new();
        for row in due {
            by_ca.entry(row.ca_id.clone()).or_default().push(row);
        }
        let mut refreshed = 0;
        for (ca_id, rows) in by_ca {
            let Some(ca_row) = tx.ca(&ca_id)? else {
                continue;
            };
            let ca = LoadedCa {
                entity: self.ca_entity(&ca_row, now)?,
                row: ca_row,
            };
            let key = self.responder(tx.as_mut(), &ca, now)?;
            let cert = ca.cert()?;
            let seq = tx.append_change(ts(now), ChangeKind::OcspRefreshed, &ca_id, None)?;
            for row in rows {
                let serial = hex_bytes(&row.serial)?;
                let status = match row.revoked_at {
                    Some(at) => ocsp::Status::Revoked {
                        at: from_ts(at)?,
                        reason: row.revocation_reason.unwrap_or(0),
                    },
                    None => ocsp::Status::Good,
                };
                let p = self.presign(&cert, key.as_ref(), &serial, status, now)?;
                tx.set_leaf_ocsp(&row.id, &p, seq)?;
                refreshed += 1;
            }
        }
        for ca_row in tx.cas()? {
            let stale = ca_row
                .ocsp
                .as_ref()
                .map_or(ca_row.issuer_id.is_some(), |o| o.this_update < cutoff);
            if !stale || ca_row.cert.is_none() {
                continue;
            }
            let Some(fresh) = self.presign_ca_cert(tx.as_mut(), &ca_row, now)? else {
                continue;
            };
            let mut ca = LoadedCa {
                entity: self.ca_entity(&ca_row, now)?,
                row: ca_row,
            };
            ca.row.ocsp = Some(fresh);
            let id = ca.row.id.clone();
            self.save_ca(tx.as_mut(), &mut ca, now)?;
            tx.append_change(ts(now), ChangeKind::CaUpdated, &id, None)?;
            refreshed += 1;
        }
        if refreshed > 0 {
            self.commit(tx)?;
        }
        Ok(refreshed)
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

fn leaf_filter(status: Option<LeafStatus>, now: OffsetDateTime) -> LeafFilter {
    match status {
        None => LeafFilter::All,
        Some(LeafStatus::Active) => LeafFilter::Active { now: ts(now) },
        Some(LeafStatus::Revoked) => LeafFilter::Revoked,
        Some(LeafStatus::Expired) => LeafFilter::Expired { now: ts(now) },
    }
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
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::config::{open_with_clock, OpenOptions};

    fn new_ca(ca_type: CaType, cn: &str, issuer: Option<String>) -> NewCa {
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
        }
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

    #[test]
    fn delegated_ocsp_certificate_rotates_before_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = crate::clock::truncate(OffsetDateTime::now_utc());
        let open = |t: OffsetDateTime| {
            let opts = OpenOptions {
                data_dir: dir.path().to_path_buf(),
                public_url: None,
                kek_file: None,
                kek_base64: None,
                next_kek_files: Vec::new(),
                next_kek_base64: None,
                max_cas: None,
                ocsp_signing: Some(OcspSigning::Delegated),
                database: None,
                keyless: false,
            };
            open_with_clock(&opts, Arc::new(FixedClock(t))).unwrap()
        };
        let pki = open(t0);
        let root = pki
            .create_ca(new_ca(CaType::RootCertificationAuthority, "Root", None))
            .unwrap();
        let issuing = pki
            .create_ca(new_ca(CaType::IssuingCertificationAuthority, "Issuing", Some(root.id)))
            .unwrap();
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
        let opts = OpenOptions {
            data_dir: dir.path().to_path_buf(),
            public_url: None,
            kek_file: None,
            kek_base64: None,
            next_kek_files: Vec::new(),
            next_kek_base64: None,
            max_cas: None,
            ocsp_signing: None,
            database: None,
            keyless: false,
        };
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
