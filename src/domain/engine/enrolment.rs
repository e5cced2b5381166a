//! Enrolment: profiles (what a device may get from an issuing CA), challenges
//! (what authorises one request), each CA's SCEP RA, and the decision on one
//! device request. The protocols (SCEP's CMS, later EST) live at the edge and
//! in `x509::scep`; this module decides and issues.

use std::time::Duration as StdDuration;

use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;

use super::*;
use crate::store::{ChallengeRow, DelegateRow, ProfileRow};
use crate::x509::scep::RaDecryptor;

use super::audit::{CREATE_CHALLENGE, CREATE_PROFILE, ENROL, REMOVE_PROFILE};

/// RA certificates live a year (or until the CA's end) and are replaced a
/// month before they expire.
const RA_VALIDITY: Duration = Duration::days(365);
const RA_ROTATE_BEFORE: Duration = Duration::days(30);
/// How long a renewal's senderNonce is remembered (no challenge bounds it).
const RENEWAL_NONCE_TTL: Duration = Duration::days(2);
/// Longest a challenge may live.
pub const MAX_CHALLENGE_LIFETIME: StdDuration = StdDuration::from_secs(90 * 24 * 3600);

/// Why an enrolment was refused, in the terms the protocols answer in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrolRefusal {
    /// The request asks for something its profile or CA does not allow, or
    /// the CA does not issue now (paused, revoked).
    #[error("{0}")]
    NotAllowed(String),
    /// No such challenge, or it is used up, or bound to something else.
    #[error("{0}")]
    Challenge(String),
    /// The challenge expired.
    #[error("the challenge expired at {0}")]
    ChallengeExpired(String),
    /// A renewal signed with a certificate that is not a current one of this CA.
    #[error("{0}")]
    Certificate(String),
    /// The request was seen before.
    #[error("replayed request: this senderNonce was already used")]
    Replay,
}

/// An enrolment profile (Intune's SCEP certificate profile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub id: String,
    pub ca_id: String,
    pub name: String,
    pub key_types: Vec<KeyAlgorithm>,
    /// A request's common name must end with one of these (empty: any).
    pub cn_suffixes: Vec<String>,
    /// DNS names a request may carry must end with one of these (empty: no
    /// subjectAltName at all).
    pub dns_suffixes: Vec<String>,
    /// EKUs of issued certificates (a subset of the CA's).
    pub ekus: Vec<ObjectIdentifier>,
    pub validity_days: u32,
    /// A renewal is accepted this many days before the current certificate expires.
    pub renewal_days: u32,
    /// First enrolments wait for an administrator (renewals do not).
    pub requires_approval: bool,
    /// Key usages of issued certificates by Graph name (empty: by key type).
    pub key_usages: Vec<String>,
    pub created_at: OffsetDateTime,
}

/// What an administrator asks for when creating a profile.
#[derive(Debug, Clone)]
pub struct NewProfile {
    pub ca_id: String,
    pub name: String,
    /// Empty: RSA-2048, 3072 and 4096, bounded by the CA.
    pub key_types: Vec<KeyAlgorithm>,
    pub cn_suffixes: Vec<String>,
    pub dns_suffixes: Vec<String>,
    /// Empty: the CA's EKUs.
    pub ekus: Vec<ObjectIdentifier>,
    pub validity_days: u32,
    pub renewal_days: u32,
    pub requires_approval: bool,
    /// Empty: by key type (digitalSignature, plus keyEncipherment for RSA).
    pub key_usages: Vec<String>,
}

/// What an administrator asks for when creating a challenge.
#[derive(Debug, Clone)]
pub struct NewChallenge {
    pub profile_id: String,
    pub uses: u32,
    pub valid_for: StdDuration,
    pub device_id: Option<String>,
    /// The common name a request must carry.
    pub subject: Option<String>,
}

/// A new challenge: the secret is shown once and never stored.
#[derive(Debug, Clone)]
pub struct IssuedChallenge {
    pub id: String,
    pub profile_id: String,
    pub secret: String,
    pub uses: u32,
    pub expires_at: OffsetDateTime,
}

/// A CA's SCEP registration authority: an RSA certificate the CA issued,
/// whose key decrypts device requests and signs CertReps.
pub struct ScepRa {
    pub key: SoftwareKey,
    pub decryptor: RaDecryptor,
    pub cert: x509_cert::Certificate,
    pub cert_der: Vec<u8>,
    pub not_after: OffsetDateTime,
}

/// A CA's RAs that have not expired: the current one first (GetCACert
/// serves it; new requests are encrypted to it), then those it replaced,
/// which keep decrypting requests from devices that still hold their
/// certificate until they expire.
#[derive(Debug)]
pub struct ScepRas {
    pub ras: Vec<ScepRa>,
}

impl ScepRas {
    pub fn current(&self) -> Option<&ScepRa> {
        self.ras.first()
    }
}

impl std::fmt::Debug for ScepRa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScepRa")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// One device request, as the protocol edge read it.
#[derive(Debug, Clone)]
pub struct EnrolRequest {
    /// DER PKCS#10.
    pub csr: Vec<u8>,
    /// For a renewal: the current certificate the request was signed with
    /// (SCEP) or presented in the TLS handshake (EST).
    pub renewing: Option<Vec<u8>>,
    /// The challenge, when the protocol carries it outside the CSR (EST's
    /// HTTP Basic password); else the CSR's challengePassword is used.
    pub challenge: Option<zeroize::Zeroizing<String>>,
    /// Instead of a challenge: an administrator's token already allowed this
    /// profile (EST with a bearer token; the edge checked the permission).
    pub authorised_profile: Option<String>,
    pub transaction_id: String,
    /// A nonce to refuse replays of (SCEP's senderNonce; EST runs over TLS).
    pub nonce: Option<Vec<u8>>,
    /// "scep" or "est", for the audit trail.
    pub protocol: &'static str,
}

/// How one issuance came about (for the leaf's record and the audit trail).
struct Enrolment<'a> {
    device_id: Option<String>,
    protocol: &'a str,
    transaction_id: &'a str,
    renewal: bool,
    now: OffsetDateTime,
}

/// An issued enrolment: the leaf, its DER and the issuing CA's certificate.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub leaf: Leaf,
    pub der: Vec<u8>,
    pub ca_der: Vec<u8>,
    pub profile_id: String,
}

/// What became of a request: issued now, or waiting for an administrator.
#[derive(Debug, Clone)]
pub enum EnrolOutcome {
    Issued(Box<Enrolled>),
    /// The profile requires approval: the device asks again (SCEP CertPoll,
    /// or the same request) until an administrator decides.
    Pending {
        request_id: String,
    },
}

/// A request waiting for (or decided by) an administrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolmentRequestInfo {
    pub id: String,
    pub ca_id: String,
    pub transaction_id: String,
    pub profile_id: String,
    /// The requested subject's common name.
    pub common_name: Option<String>,
    pub device_id: Option<String>,
    pub requested_at: OffsetDateTime,
    /// "pending", "issued" or "rejected".
    pub state: String,
    pub decided_at: Option<OffsetDateTime>,
    pub decided_by: Option<String>,
    pub leaf_id: Option<String>,
    pub reason: Option<String>,
}

fn request_info(r: &crate::store::EnrolmentRequestRow) -> Result<EnrolmentRequestInfo> {
    let common_name = <x509_cert::request::CertReqInfo as der::Decode>::from_der(&r.csr)
        .ok()
        .and_then(|i| names::common_name(&i.subject));
    Ok(EnrolmentRequestInfo {
        id: r.id.clone(),
        ca_id: r.ca_id.clone(),
        transaction_id: r.transaction_id.clone(),
        profile_id: r.profile_id.clone(),
        common_name,
        device_id: r.device_id.clone(),
        requested_at: from_ts(r.requested_at)?,
        state: r.state.clone(),
        decided_at: r.decided_at.map(from_ts).transpose()?,
        decided_by: r.decided_by.clone(),
        leaf_id: r.leaf_id.clone(),
        reason: r.reason.clone(),
    })
}

fn split(list: &str) -> Vec<String> {
    list.split_whitespace().map(str::to_owned).collect()
}

fn profile_from_row(row: &ProfileRow) -> Result<Profile> {
    Ok(Profile {
        id: row.id.clone(),
        ca_id: row.ca_id.clone(),
        name: row.name.clone(),
        key_types: row
            .key_types
            .split_whitespace()
            .map(|k| KeyAlgorithm::parse(k).ok_or_else(|| corrupt("profile key type")))
            .collect::<Result<_>>()?,
        cn_suffixes: split(&row.cn_suffixes),
        dns_suffixes: split(&row.dns_suffixes),
        ekus: row.ekus.split_whitespace().map(parse_oid).collect::<Result<_>>()?,
        validity_days: u32::try_from(row.validity_days).map_err(|_| corrupt("profile validity"))?,
        renewal_days: u32::try_from(row.renewal_days).map_err(|_| corrupt("profile renewal window"))?,
        requires_approval: row.requires_approval,
        key_usages: split(&row.key_usages),
        created_at: from_ts(row.created_at)?,
    })
}

fn secret_hash(secret: &str) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes())
        .as_ref()
        .to_vec()
}

fn suffix_ok(name: &str, suffixes: &[String]) -> bool {
    let name = name.to_ascii_lowercase();
    suffixes.iter().any(|s| {
        let s = s.to_ascii_lowercase();
        s == "*" || name == s.trim_start_matches('.') || name.ends_with(&format!(".{}", s.trim_start_matches('.')))
    })
}

/// The DNS names of a request's subjectAltName (None: another name type,
/// or an unreadable extension).
fn dns_names(csr: &csr::VerifiedCsr) -> Option<Vec<String>> {
    let Some(ext) = &csr.subject_alt_name else {
        return Some(Vec::new());
    };
    let san = <SubjectAltName as der::Decode>::from_der(ext.extn_value.as_bytes()).ok()?;
    san.0
        .iter()
        .map(|n| match n {
            GeneralName::DnsName(d) => Some(d.as_str().to_owned()),
            _ => None,
        })
        .collect()
}

/// A host name as certificates carry them: LDH labels of 1 to 63
/// characters, at most 253 in all, no wildcard.
fn is_host_name(name: &str) -> bool {
    name.len() <= 253
        && !name.is_empty()
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Checks a verified CSR against a profile: key type, the subject (exactly
/// one common name and nothing else: other attributes, such as an O that
/// some systems read as a group, are not the device's to choose), SANs
/// (DNS names only, host-name syntax, no wildcard), EKUs.
fn check_against_profile(csr: &csr::VerifiedCsr, profile: &Profile) -> std::result::Result<(), EnrolRefusal> {
    let deny = |m: String| Err(EnrolRefusal::NotAllowed(m));
    let kind = crate::x509::keys::key_algorithm_of(&csr.public_key)
        .map_err(|e| EnrolRefusal::NotAllowed(format!("the requested key: {e}")))?;
    if !profile.key_types.contains(&kind) {
        return deny(format!(
            "profile {:?} does not allow {} keys (allowed: {})",
            profile.name,
            kind.name(),
            profile
                .key_types
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let attrs: Vec<_> = csr.subject.0.iter().flat_map(|rdn| rdn.0.iter()).collect();
    if attrs.len() != 1 || attrs[0].oid != oids::CN {
        return deny("the subject must be exactly one common name (CN=...)".into());
    }
    let Some(cn) = names::common_name(&csr.subject) else {
        return deny("the request's common name is not readable text".into());
    };
    if cn.is_empty() || cn.len() > 64 || cn.contains('*') || cn.chars().any(char::is_control) {
        return deny(format!(
            "common name {cn:?} is not allowed (1 to 64 characters, no wildcard)"
        ));
    }
    let cn_allowed = profile.cn_suffixes.is_empty() || (is_host_name(&cn) && suffix_ok(&cn, &profile.cn_suffixes));
    if !cn_allowed {
        return deny(format!(
            "common name {cn:?} is not under {} (profile {:?})",
            profile.cn_suffixes.join(", "),
            profile.name
        ));
    }
    let Some(dns) = dns_names(csr) else {
        return deny(format!(
            "profile {:?} allows only DNS names in subjectAltName",
            profile.name
        ));
    };
    for d in &dns {
        if !is_host_name(d) || !suffix_ok(d, &profile.dns_suffixes) {
            return deny(format!("DNS name {d:?} is not allowed by profile {:?}", profile.name));
        }
    }
    if let Some(eku) = csr.requested_ekus.iter().find(|e| !profile.ekus.contains(e)) {
        return deny(format!("EKU {eku} is not in profile {:?}", profile.name));
    }
    if !profile.key_usages.is_empty() {
        crate::x509::cert::leaf_key_usage_named(&profile.key_usages, &csr.public_key)
            .map_err(|why| EnrolRefusal::NotAllowed(format!("{why} (profile {:?})", profile.name)))?;
    }
    Ok(())
}

impl Pki {
    /// Creates a profile under an issuing CA. Its key types must not be
    /// stronger than the CA's key, its EKUs a subset of the CA's (never Any
    /// Purpose), its validity at most the CA's.
    pub fn create_profile(&self, new: &NewProfile) -> Result<Profile> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write)?;
        let ca = self.load_ca(tx.as_mut(), &new.ca_id, now)?;
        if ca.entity.ca_type == CaType::RootCertificationAuthority {
            return Err(PkiError::Invalid(
                "enrolment profiles belong to issuing CAs, not to roots".into(),
            ));
        }
        let name = new.name.trim();
        if name.is_empty() || name.len() > 128 {
            return Err(PkiError::Invalid(
                "a profile needs a name of 1 to 128 characters".into(),
            ));
        }
        let ca_strength = ca.entity.key_algorithm.strength_bits();
        let key_types = if new.key_types.is_empty() {
            [KeyAlgorithm::Rsa2048, KeyAlgorithm::Rsa3072, KeyAlgorithm::Rsa4096]
                .into_iter()
                .filter(|k| k.strength_bits() <= ca_strength)
                .collect()
        } else {
            new.key_types.clone()
        };
        if let Some(k) = key_types.iter().find(|k| k.strength_bits() > ca_strength) {
            return Err(PkiError::Invalid(format!(
                "{} keys are stronger than the CA's {} key",
                k.name(),
                ca.entity.key_algorithm.name()
            )));
        }
        if key_types.is_empty() {
            return Err(PkiError::Invalid("no key type fits under this CA's key".into()));
        }
        let ca_ekus = ca.ekus()?;
        let ekus = if new.ekus.is_empty() {
            ca_ekus.clone()
        } else {
            new.ekus.clone()
        };
        if ekus.contains(&oids::ANY_EKU) {
            return Err(PkiError::Invalid("Any Purpose is not allowed in a profile".into()));
        }
        if let Some(e) = ekus.iter().find(|e| !ca_ekus.contains(e)) {
            return Err(PkiError::Invalid(format!("the CA does not have EKU {e}")));
        }
        if !(1..=3650).contains(&new.validity_days) {
            return Err(PkiError::Invalid("validity must be 1 to 3650 days".into()));
        }
        const LEAF_USAGES: [&str; 5] = [
            "DigitalSignature",
            "NonRepudiation",
            "KeyEncipherment",
            "DataEncipherment",
            "KeyAgreement",
        ];
        if let Some(u) = new.key_usages.iter().find(|u| !LEAF_USAGES.contains(&u.as_str())) {
            return Err(PkiError::Invalid(format!(
                "key usage {u:?} is not a leaf's (one of {})",
                LEAF_USAGES.join(", ")
            )));
        }
        if new.renewal_days > new.validity_days {
            return Err(PkiError::Invalid(
                "the renewal window cannot exceed the validity".into(),
            ));
        }
        for s in new.cn_suffixes.iter().chain(&new.dns_suffixes) {
            if s.is_empty() || s.len() > 253 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(PkiError::Invalid(format!("bad suffix {s:?}")));
            }
        }
        let row = ProfileRow {
            id: format!("prf-{}", uuid::Uuid::new_v4().simple()),
            ca_id: ca.row.id.clone(),
            name: name.to_owned(),
            key_types: key_types.iter().map(|k| k.name()).collect::<Vec<_>>().join(" "),
            cn_suffixes: new.cn_suffixes.join(" "),
            dns_suffixes: new.dns_suffixes.join(" "),
            ekus: ekus.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "),
            validity_days: i64::from(new.validity_days),
            renewal_days: i64::from(new.renewal_days),
            requires_approval: new.requires_approval,
            key_usages: new.key_usages.join(" "),
            created_at: ts(now),
            created_by: audit::current_actor(),
            removed_at: None,
        };
        tx.insert_profile(&row)?;
        let tags = stored_scope_tags(tx.as_mut(), &ca.row.id)?;
        tx.append_audit(&audit_row(
            now,
            CREATE_PROFILE,
            ("EnrolmentProfile", &row.id),
            "success",
            &row.name,
            &tags,
        ))?;
        self.commit(tx)?;
        profile_from_row(&row)
    }

    /// Live profiles, of one CA or all.
    pub fn profiles(&self, ca_id: Option<&str>) -> Result<Vec<Profile>> {
        let mut tx = self.store.begin(TxMode::Read)?;
        tx.profiles(ca_id)?.iter().map(profile_from_row).collect()
    }

    /// A live profile.
    pub fn profile(&self, id: &str) -> Result<Profile> {
        let mut tx = self.store.begin(TxMode::Read)?;
        match tx.profile(id)? {
            Some(row) if row.removed_at.is_none() => profile_from_row(&row),
            _ => Err(PkiError::NotFound {
                what: "enrolment profile",
                id: id.to_owned(),
            }),
        }
    }

    /// Removes a profile: its challenges stop working at once.
    pub fn remove_profile(&self, id: &str) -> Result<()> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write)?;
        let row = tx.profile(id)?.ok_or_else(|| PkiError::NotFound {
            what: "enrolment profile",
            id: id.to_owned(),
        })?;
        if !tx.remove_profile(id, ts(now))? {
            return Err(PkiError::NotFound {
                what: "enrolment profile",
                id: id.to_owned(),
            });
        }
        let tags = stored_scope_tags(tx.as_mut(), &row.ca_id)?;
        tx.append_audit(&audit_row(
            now,
            REMOVE_PROFILE,
            ("EnrolmentProfile", id),
            "success",
            &row.name,
            &tags,
        ))?;
        self.commit(tx)
    }

    /// Creates a challenge for a profile; only its SHA-256 is stored.
    pub fn create_challenge(&self, new: &NewChallenge) -> Result<IssuedChallenge> {
        use aws_lc_rs::rand::SecureRandom;
        let now = self.clock.now();
        if new.uses == 0 || new.uses > 1_000_000 {
            return Err(PkiError::Invalid("a challenge has 1 to 1000000 uses".into()));
        }
        if new.valid_for.is_zero() || new.valid_for > MAX_CHALLENGE_LIFETIME {
            return Err(PkiError::Invalid("a challenge lives from 1 second to 90 days".into()));
        }
        let mut tx = self.store.begin(TxMode::Write)?;
        let profile = match tx.profile(&new.profile_id)? {
            Some(p) if p.removed_at.is_none() => p,
            _ => {
                return Err(PkiError::NotFound {
                    what: "enrolment profile",
                    id: new.profile_id.clone(),
                })
            }
        };
        // 160 random bits as hex: PrintableString-safe (SCEP puts it in a
        // challengePassword) and easy to paste.
        let mut raw = [0u8; 20];
        aws_lc_rs::rand::SystemRandom::new()
            .fill(&mut raw)
            .map_err(|_| PkiError::X509(crate::x509::X509Error::Crypto("random challenge")))?;
        let secret = crate::x509::hex_upper(&raw);
        let valid_for = Duration::try_from(new.valid_for).map_err(|_| PkiError::Invalid("lifetime".into()))?;
        let expires_at = now + valid_for;
        let row = ChallengeRow {
            id: format!("chl-{}", uuid::Uuid::new_v4().simple()),
            profile_id: profile.id.clone(),
            secret_hash: secret_hash(&secret),
            uses_left: i64::from(new.uses),
            expires_at: ts(expires_at),
            device_id: new.device_id.clone(),
            subject: new.subject.clone(),
            created_at: ts(now),
            created_by: audit::current_actor(),
        };
        tx.insert_challenge(&row)?;
        let tags = stored_scope_tags(tx.as_mut(), &profile.ca_id)?;
        tx.append_audit(&audit_row(
            now,
            CREATE_CHALLENGE,
            ("EnrolmentChallenge", &row.id),
            "success",
            &format!("profile {} ({} uses)", profile.id, new.uses),
            &tags,
        ))?;
        self.commit(tx)?;
        Ok(IssuedChallenge {
            id: row.id,
            profile_id: profile.id,
            secret,
            uses: new.uses,
            expires_at,
        })
    }

    /// The CA's SCEP RAs, the first issued on first use, each replaced a
    /// month before it expires (RSA-2048, a year or the CA's remaining
    /// life). None for a CA that never had one and cannot issue one now
    /// (paused, revoked, a root, no certificate): it still answers
    /// GetCACert with its own certificate.
    pub fn scep_ra(&self, ca_id: &str) -> Result<Option<Arc<ScepRas>>> {
        let now = self.clock.now();
        let cached = self
            .scep_ras
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(ca_id)
            .cloned();
        if let Some((ras, _)) = cached.filter(|(_, until)| *until > now) {
            return Ok(Some(ras));
        }
        let mut tx = self.store.begin(TxMode::Write)?;
        let ca = self.load_ca(tx.as_mut(), ca_id, now)?;
        if ca.entity.ca_type == CaType::RootCertificationAuthority {
            // Roots issue no leaves: nothing enrols with them.
            return Ok(None);
        }
        let stored = tx.scep_ras(ca_id, ts(now))?;
        let current_end = stored.first().map(|(_, row)| from_ts(row.not_after)).transpose()?;
        let fresh = current_end.is_some_and(|end| end > now + RA_ROTATE_BEFORE);
        let ca_end = ca.entity.version.not_after;
        let can_issue = ca.status() == CaStatus::Active && ca.row.cert.is_some();
        // A replacement is worth issuing only if it outlives the current RA
        // (near the CA's end it would not: keep the current one).
        let worth = match (current_end, ca_end) {
            (None, _) => true,
            (Some(end), Some(ca_end)) => (now + RA_VALIDITY).min(ca_end) > end,
            (Some(_), None) => false,
        };
        let mut ras = Vec::with_capacity(stored.len() + 1);
        if !fresh && can_issue && worth {
            ras.push(self.issue_ra(tx.as_mut(), &ca, now)?);
            self.commit(tx)?;
        } else {
            drop(tx);
        }
        for (id, row) in &stored {
            ras.push(self.open_ra(id, row)?);
        }
        let Some(first) = ras.first() else {
            return Ok(None);
        };
        // Until the current RA is due for replacement; a CA that cannot
        // replace it now (paused, near its end) is looked at again in 5 min.
        let due = first.not_after - RA_ROTATE_BEFORE;
        let until = if due > now { due } else { now + Duration::minutes(5) };
        let ras = Arc::new(ScepRas { ras });
        self.scep_ras
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ca_id.to_owned(), (ras.clone(), until));
        Ok(Some(ras))
    }

    /// Issues and stores a new RA for `ca` (inside `tx`, not committed).
    fn issue_ra(&self, tx: &mut dyn Tx, ca: &LoadedCa, now: OffsetDateTime) -> Result<ScepRa> {
        let ca_key = self.signer(tx, ca)?;
        let ca_end = ca
            .entity
            .version
            .not_after
            .ok_or_else(|| corrupt("CA without validity"))?;
        let not_after = (now + RA_VALIDITY).min(ca_end);
        let (key, pkcs8) = SoftwareKey::generate(KeyAlgorithm::Rsa2048, HashAlgorithm::Sha256)?;
        let ca_cert = ca.cert()?;
        let mut subject = ca_cert.tbs().subject.clone();
        subject.0.retain(|rdn| !rdn.0.iter().any(|a| a.oid == oids::CN));
        subject.0.extend(
            SubjectParts {
                common_name: format!("{} SCEP RA", ca.entity.subject.common_name),
                ..Default::default()
            }
            .to_name()?
            .0,
        );
        let serial = cert::random_serial()?;
        let der = cert::issue(
            &CertRequest {
                serial: serial.clone(),
                subject,
                issuer: ca_cert.tbs().subject.clone(),
                issuer_key_id: cert::key_identifier(ca_key.public_key()),
                public_key: key.public_key().clone(),
                not_before: now - BACKDATE,
                not_after,
                role: CertRole::EndEntity,
                key_usage: x509_cert::ext::pkix::KeyUsage(
                    x509_cert::ext::pkix::KeyUsages::DigitalSignature
                        | x509_cert::ext::pkix::KeyUsages::KeyEncipherment,
                ),
                ekus: vec![oids::KP_CMC_RA],
                pointers: None,
                subject_alt_name: None,
            },
            ca_key.as_ref(),
        )?;
        let id = format!("{}:{}", ca.row.id, crate::x509::hex_upper(&serial));
        let sealed = self.seal_in(tx, SealedKind::ScepRaKey, &id, &pkcs8)?;
        tx.put_scep_ra(
            &id,
            &ca.row.id,
            &DelegateRow {
                cert: der.clone(),
                sealed_key: sealed,
                not_after: ts(not_after),
            },
            ts(now),
        )?;
        Ok(ScepRa {
            decryptor: RaDecryptor::from_pkcs8(&pkcs8)?,
            key,
            cert: <x509_cert::Certificate as der::Decode>::from_der(&der).map_err(crate::x509::X509Error::from)?,
            cert_der: der,
            not_after,
        })
    }

    fn open_ra(&self, id: &str, row: &DelegateRow) -> Result<ScepRa> {
        let pkcs8 = self.unseal(SealedKind::ScepRaKey, id, &row.sealed_key)?;
        Ok(ScepRa {
            key: SoftwareKey::from_pkcs8(KeyAlgorithm::Rsa2048, HashAlgorithm::Sha256, &pkcs8)?,
            decryptor: RaDecryptor::from_pkcs8(&pkcs8)?,
            cert: <x509_cert::Certificate as der::Decode>::from_der(&row.cert).map_err(crate::x509::X509Error::from)?,
            cert_der: row.cert.clone(),
            not_after: from_ts(row.not_after)?,
        })
    }

    /// Decides one device request and, if it is allowed, issues its
    /// certificate. A refusal is audited (naming the profile when known) and
    /// returned as [`PkiError::Enrolment`].
    pub fn enrol(&self, ca_id: &str, request: &EnrolRequest) -> Result<EnrolOutcome> {
        match self.try_enrol(ca_id, request) {
            Ok(done) => Ok(done),
            Err((profile, e)) => {
                let detail = format!("{}: {} (transaction {})", request.protocol, e, request.transaction_id);
                let target = profile.as_deref().unwrap_or("-");
                // Best effort: the refusal is the answer even if auditing fails.
                if let Err(audit_error) = self.record_failure(ENROL, ("EnrolmentProfile", target), ca_id, &[], &detail)
                {
                    tracing::warn!(error = %audit_error, "could not audit a refused enrolment");
                }
                Err(e)
            }
        }
    }

    fn try_enrol(
        &self,
        ca_id: &str,
        request: &EnrolRequest,
    ) -> std::result::Result<EnrolOutcome, (Option<String>, PkiError)> {
        let refuse = |p: Option<&str>, r: EnrolRefusal| (p.map(str::to_owned), PkiError::Enrolment(r));
        let plain = |p: Option<&str>| {
            let p = p.map(str::to_owned);
            move |e: PkiError| (p, e)
        };
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write).map_err(|e| (None, e.into()))?;
        let ca = self.load_ca(tx.as_mut(), ca_id, now).map_err(plain(None))?;
        // The same transaction again is a poll (RFC 8894 §3.3.3; an EST
        // client repeats its request): answered from what was decided.
        // What is kept of a request that waits: no challengePassword.
        let kept = csr::without_challenge(&request.csr).map_err(|e| {
            refuse(
                None,
                EnrolRefusal::NotAllowed(format!("certificate signing request: {e}")),
            )
        })?;
        if let Some(existing) = tx
            .enrolment_request_by_transaction(&ca.row.id, &request.transaction_id)
            .map_err(|e| (None, e.into()))?
        {
            let still_good = match (existing.state.as_str(), &existing.leaf_id) {
                ("pending", _) => true,
                ("issued", Some(leaf)) => tx
                    .leaf(leaf)
                    .map_err(|e| (None, e.into()))?
                    .is_some_and(|l| l.revoked_at.is_none() && l.not_after > ts(now)),
                _ => false,
            };
            if still_good {
                if existing.csr != kept {
                    return Err(refuse(
                        Some(&existing.profile_id),
                        EnrolRefusal::NotAllowed("this transaction ID belongs to another request".into()),
                    ));
                }
                return self
                    .answer_existing(tx.as_mut(), &ca, &existing)
                    .map_err(|e| (Some(existing.profile_id.clone()), e));
            }
            // Rejected, or its certificate is revoked or expired: the same
            // key asks anew (strongSwan's transactionID names the key).
            tx.forget_enrolment_request(&existing.id)
                .map_err(|e| (None, e.into()))?;
        }
        // (Not for renewals: a renewal from the same key names the same
        // transaction as the enrolment it renews.)
        if let Some(leaf_id) = request
            .renewing
            .is_none()
            .then(|| tx.enrolled_leaf(&ca.row.id, &request.transaction_id))
            .transpose()
            .map_err(|e| (None, e.into()))?
            .flatten()
        {
            let row = tx
                .leaf(&leaf_id)
                .map_err(|e| (None, e.into()))?
                .ok_or_else(|| (None, corrupt("enrolment without its leaf")))?;
            let same = <x509_cert::request::CertReq as der::Decode>::from_der(&request.csr)
                .ok()
                .zip(ParsedCert::from_der(&row.der).ok())
                .is_some_and(|(csr, cert)| {
                    csr.info.public_key == cert.tbs().subject_public_key_info && csr.info.subject == cert.tbs().subject
                });
            if same && row.revoked_at.is_none() && row.not_after > ts(now) {
                let profile_id = tx.enrolment_profile(&leaf_id).map_err(|e| (None, e.into()))?;
                return Ok(EnrolOutcome::Issued(Box::new(Enrolled {
                    leaf: self.leaf_record(&row, now).map_err(plain(None))?,
                    der: row.der,
                    ca_der: ca.row.cert.clone().unwrap_or_default(),
                    profile_id: profile_id.unwrap_or_default(),
                })));
            }
        }
        let facts = ca.facts(tx.as_mut(), now, Action::IssueLeaf).map_err(plain(None))?;
        if let Err(r) = lifecycle::check(Action::IssueLeaf, facts) {
            return Err(refuse(None, EnrolRefusal::NotAllowed(r.to_string())));
        }
        let csr = csr::verify(&request.csr, MIN_LEAF_STRENGTH).map_err(|e| {
            refuse(
                None,
                EnrolRefusal::NotAllowed(format!("certificate signing request: {e}")),
            )
        })?;

        // Who authorises it: a challenge, or (renewal) the current certificate.
        let mut renewed_device = None;
        let (profile_row, challenge, nonce_until) = match &request.renewing {
            None if request.authorised_profile.is_some() => {
                let id = request.authorised_profile.as_deref().unwrap_or_default();
                let p = tx.profile(id).map_err(|e| (None, e.into()))?;
                match p {
                    Some(p) if p.removed_at.is_none() && p.ca_id == ca.row.id => (p, None, ts(now + RENEWAL_NONCE_TTL)),
                    _ => {
                        return Err(refuse(
                            None,
                            EnrolRefusal::NotAllowed(format!("no enrolment profile {id} under this CA")),
                        ))
                    }
                }
            }
            None => {
                let secret = match (&request.challenge, &csr.challenge_password) {
                    (Some(c), _) => c.as_str(),
                    (None, Some(c)) => c.0.as_str(),
                    (None, None) => {
                        return Err(refuse(
                            None,
                            EnrolRefusal::Challenge("the request carries no challenge".into()),
                        ))
                    }
                };
                let c = tx
                    .challenge_by_hash(&secret_hash(secret))
                    .map_err(|e| (None, e.into()))?
                    .ok_or_else(|| refuse(None, EnrolRefusal::Challenge("unknown challenge".into())))?;
                let pid = Some(c.profile_id.as_str());
                if c.expires_at <= ts(now) {
                    let at = from_ts(c.expires_at).map_err(plain(pid))?;
                    return Err(refuse(pid, EnrolRefusal::ChallengeExpired(rfc3339(at))));
                }
                if c.uses_left <= 0 {
                    return Err(refuse(pid, EnrolRefusal::Challenge("the challenge is used up".into())));
                }
                let p = tx.profile(&c.profile_id).map_err(|e| (None, e.into()))?;
                let p = match p {
                    Some(p) if p.removed_at.is_none() && p.ca_id == ca.row.id => p,
                    _ => {
                        return Err(refuse(
                            pid,
                            EnrolRefusal::Challenge("the challenge is not for this CA".into()),
                        ))
                    }
                };
                if let Some(bound) = &c.subject {
                    let cn_ok = names::common_name(&csr.subject).as_deref() == Some(bound.as_str());
                    // Its DNS names too: a bound challenge names one device.
                    let san_ok = dns_names(&csr)
                        .map(|names| names.iter().all(|n| n.eq_ignore_ascii_case(bound)))
                        .unwrap_or(false);
                    if !cn_ok || !san_ok {
                        return Err(refuse(
                            pid,
                            EnrolRefusal::Challenge(format!("the challenge is bound to {bound:?}")),
                        ));
                    }
                }
                let until = c.expires_at;
                (p, Some(c), until)
            }
            Some(current) => {
                let (row, profile_id) = self.renewable(tx.as_mut(), &ca, current, &csr, now)?;
                renewed_device = row.device_id.clone();
                let p = tx
                    .profile(&profile_id)
                    .map_err(|e| (None, e.into()))?
                    .filter(|p| p.removed_at.is_none())
                    .ok_or_else(|| {
                        refuse(
                            Some(&profile_id),
                            EnrolRefusal::NotAllowed("the certificate's profile was removed".into()),
                        )
                    })?;
                let pid = Some(p.id.as_str());
                let profile = profile_from_row(&p).map_err(plain(pid))?;
                let not_after = from_ts(row.not_after).map_err(plain(pid))?;
                if not_after - Duration::days(i64::from(profile.renewal_days)) > now {
                    return Err(refuse(
                        pid,
                        EnrolRefusal::NotAllowed(format!(
                            "too early to renew: the profile renews {} days before expiry ({})",
                            profile.renewal_days,
                            rfc3339(not_after)
                        )),
                    ));
                }
                (p, None, ts(now + RENEWAL_NONCE_TTL))
            }
        };
        let pid = Some(profile_row.id.as_str());
        let profile = profile_from_row(&profile_row).map_err(plain(pid))?;
        if let Some(nonce) = &request.nonce {
            if !tx
                .remember_nonce(&ca.row.id, nonce, nonce_until, ts(now))
                .map_err(|e| (pid.map(str::to_owned), e.into()))?
            {
                return Err(refuse(pid, EnrolRefusal::Replay));
            }
        }
        check_against_profile(&csr, &profile).map_err(|r| refuse(pid, r))?;
        if let Some(c) = &challenge {
            if !tx
                .spend_challenge(&c.id)
                .map_err(|e| (pid.map(str::to_owned), e.into()))?
            {
                return Err(refuse(pid, EnrolRefusal::Challenge("the challenge is used up".into())));
            }
        }
        let device_id = challenge.as_ref().and_then(|c| c.device_id.clone()).or(renewed_device);
        if profile.requires_approval && request.renewing.is_none() {
            let row = crate::store::EnrolmentRequestRow {
                id: format!("enr-{}", uuid::Uuid::new_v4().simple()),
                ca_id: ca.row.id.clone(),
                transaction_id: request.transaction_id.clone(),
                profile_id: profile.id.clone(),
                csr: kept,
                device_id,
                requested_at: ts(now),
                state: "pending".into(),
                decided_at: None,
                decided_by: None,
                leaf_id: None,
                reason: None,
            };
            (|| {
                tx.insert_enrolment_request(&row)?;
                let tags = stored_scope_tags(tx.as_mut(), &ca.row.id)?;
                tx.append_audit(&audit_row(
                    now,
                    ENROL,
                    ("EnrolmentRequest", &row.id),
                    "success",
                    &format!(
                        "{} request under profile {} awaits approval (transaction {})",
                        request.protocol, profile.id, request.transaction_id
                    ),
                    &tags,
                ))?;
                self.commit(tx)
            })()
            .map_err(plain(pid))?;
            return Ok(EnrolOutcome::Pending { request_id: row.id });
        }
        let issued = self
            .issue_enrolled(
                tx.as_mut(),
                &ca,
                &csr,
                &request.csr,
                &profile,
                Enrolment {
                    device_id,
                    protocol: request.protocol,
                    transaction_id: &request.transaction_id,
                    renewal: request.renewing.is_some(),
                    now,
                },
            )
            .map_err(plain(pid))?;
        self.commit(tx).map_err(plain(pid))?;
        Ok(EnrolOutcome::Issued(Box::new(issued)))
    }

    /// Issues an allowed request inside `tx` (not committed): the leaf, its
    /// enrolment record and audit event.
    fn issue_enrolled(
        &self,
        tx: &mut dyn Tx,
        ca: &LoadedCa,
        csr: &csr::VerifiedCsr,
        csr_der: &[u8],
        profile: &Profile,
        e: Enrolment<'_>,
    ) -> Result<Enrolled> {
        let ekus = if csr.requested_ekus.is_empty() {
            profile.ekus.clone()
        } else {
            csr.requested_ekus.clone()
        };
        let new_leaf = NewLeaf {
            csr: csr_der.to_vec(),
            device_name: names::common_name(&csr.subject),
            user_principal_name: None,
            device_id: e.device_id,
            user_id: None,
            device_platform: None,
            validity_days: Some(profile.validity_days),
            key_usages: profile.key_usages.clone(),
        };
        let signer = self.signer(tx, ca)?;
        let responder = self.responder(tx, ca, e.now)?;
        let keys = IssuingKeys {
            ca,
            ca_cert: ca.cert()?,
            signer,
            responder,
        };
        let prepared = (csr.clone(), ekus, "Unknown".to_owned());
        let (leaf, der) = self.build_leaf(tx, &keys, &prepared, &new_leaf, e.now)?;
        tx.put_enrolment(&leaf.id, &profile.id, e.transaction_id, ts(e.now))?;
        let tags = stored_scope_tags(tx, &ca.row.id)?;
        tx.append_audit(&audit_row(
            e.now,
            ENROL,
            ("CloudCertificationAuthorityLeafCertificate", &leaf.id),
            "success",
            &format!(
                "{} {} under profile {} (transaction {})",
                e.protocol,
                if e.renewal { "renewal" } else { "enrolment" },
                profile.id,
                e.transaction_id
            ),
            &tags,
        ))?;
        Ok(Enrolled {
            leaf,
            der,
            ca_der: ca.row.cert.clone().unwrap_or_default(),
            profile_id: profile.id.clone(),
        })
    }

    /// The answer to a request already recorded (waiting or decided).
    fn answer_existing(
        &self,
        tx: &mut dyn Tx,
        ca: &LoadedCa,
        r: &crate::store::EnrolmentRequestRow,
    ) -> Result<EnrolOutcome> {
        match (r.state.as_str(), &r.leaf_id) {
            ("pending", _) => Ok(EnrolOutcome::Pending {
                request_id: r.id.clone(),
            }),
            ("issued", Some(leaf_id)) => {
                let row = tx
                    .leaf(leaf_id)?
                    .ok_or_else(|| corrupt("issued request without its leaf"))?;
                let now = self.clock.now();
                Ok(EnrolOutcome::Issued(Box::new(Enrolled {
                    leaf: self.leaf_record(&row, now)?,
                    der: row.der,
                    ca_der: ca.row.cert.clone().unwrap_or_default(),
                    profile_id: r.profile_id.clone(),
                })))
            }
            _ => Err(PkiError::Enrolment(EnrolRefusal::NotAllowed(format!(
                "the request was rejected by an administrator{}",
                r.reason.as_deref().map(|why| format!(": {why}")).unwrap_or_default()
            )))),
        }
    }

    /// SCEP CertPoll: what became of the request with this transaction ID.
    pub fn poll_enrolment(&self, ca_id: &str, transaction_id: &str) -> Result<EnrolOutcome> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Read)?;
        let ca = self.load_ca(tx.as_mut(), ca_id, now)?;
        match tx.enrolment_request_by_transaction(&ca.row.id, transaction_id)? {
            Some(r) => self.answer_existing(tx.as_mut(), &ca, &r),
            None => Err(PkiError::Enrolment(EnrolRefusal::Certificate(
                "no request with this transaction ID".into(),
            ))),
        }
    }

    /// SCEP GetCRL: the stored complete CRL of the partition that covers the
    /// CA's certificate with this serial (the one its CDP names).
    pub fn crl_for_certificate(&self, ca_id: &str, serial: &str) -> Result<Vec<u8>> {
        let mut tx = self.store.begin(TxMode::Read)?;
        let row = self.leaf_row_by_serial(tx.as_mut(), Some(ca_id), serial)?;
        let partition = u32::try_from(row.crl_partition).map_err(|_| corrupt("leaf CRL partition"))?;
        let crl = tx
            .crl(ca_id, crate::store::CrlScopeKey::complete(partition))?
            .ok_or_else(|| PkiError::NotFound {
                what: "CRL of the partition of certificate",
                id: serial.to_owned(),
            })?;
        Ok(crl.der)
    }

    /// A CA's enrolment requests, newest first.
    pub fn enrolment_requests(&self, ca_id: &str) -> Result<Vec<EnrolmentRequestInfo>> {
        let mut tx = self.store.begin(TxMode::Read)?;
        tx.enrolment_requests(ca_id, 1000)?.iter().map(request_info).collect()
    }

    /// An administrator approves (issuing the certificate now: the device
    /// gets it at its next poll) or rejects a pending request.
    pub fn decide_enrolment(
        &self,
        ca_id: &str,
        request_id: &str,
        approve: bool,
        reason: Option<String>,
    ) -> Result<EnrolmentRequestInfo> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write)?;
        let mut row = match tx.enrolment_request(request_id)? {
            Some(r) if r.ca_id == ca_id => r,
            _ => {
                return Err(PkiError::NotFound {
                    what: "enrolment request",
                    id: request_id.to_owned(),
                })
            }
        };
        if row.state != "pending" {
            return Err(PkiError::Invalid(format!(
                "the request was already decided ({})",
                row.state
            )));
        }
        let ca = self.load_ca(tx.as_mut(), ca_id, now)?;
        row.decided_at = Some(ts(now));
        row.decided_by = Some(audit::current_actor());
        row.reason = reason;
        if approve {
            lifecycle::check(Action::IssueLeaf, ca.facts(tx.as_mut(), now, Action::IssueLeaf)?)?;
            let profile = match tx.profile(&row.profile_id)? {
                Some(p) if p.removed_at.is_none() => profile_from_row(&p)?,
                _ => return Err(PkiError::Invalid("the request's profile was removed".into())),
            };
            let csr = csr::from_kept_info(&row.csr, MIN_LEAF_STRENGTH)
                .map_err(|e| PkiError::Rejected(format!("certificate signing request: {e}")))?;
            let issued = self.issue_enrolled(
                tx.as_mut(),
                &ca,
                &csr,
                &row.csr,
                &profile,
                Enrolment {
                    device_id: row.device_id.clone(),
                    protocol: "approval",
                    transaction_id: &row.transaction_id,
                    renewal: false,
                    now,
                },
            )?;
            row.state = "issued".into();
            row.leaf_id = Some(issued.leaf.id);
        } else {
            row.state = "rejected".into();
            let tags = stored_scope_tags(tx.as_mut(), ca_id)?;
            tx.append_audit(&audit_row(
                now,
                ENROL,
                ("EnrolmentRequest", &row.id),
                "failure",
                &format!(
                    "rejected by an administrator: {}",
                    row.reason.as_deref().unwrap_or("no reason given")
                ),
                &tags,
            ))?;
        }
        if !tx.decide_enrolment_request(&row)? {
            return Err(PkiError::Store(crate::store::StoreError::Conflict));
        }
        self.commit(tx)?;
        request_info(&row)
    }

    /// A renewal's current certificate: issued by this CA, enrolled under a
    /// profile, not revoked, not expired, for the same subject as the new
    /// request. Returns its row and its profile id.
    fn renewable(
        &self,
        tx: &mut dyn Tx,
        ca: &LoadedCa,
        current: &[u8],
        csr: &csr::VerifiedCsr,
        now: OffsetDateTime,
    ) -> std::result::Result<(crate::store::LeafRow, String), (Option<String>, PkiError)> {
        let refuse = |r: EnrolRefusal| (None, PkiError::Enrolment(r));
        let cert = <x509_cert::Certificate as der::Decode>::from_der(current).map_err(|_| {
            refuse(EnrolRefusal::Certificate(
                "the signing certificate cannot be read".into(),
            ))
        })?;
        let serial = crate::x509::hex_upper(cert.tbs_certificate.serial_number.as_bytes());
        let row = match self.leaf_row_by_serial(tx, Some(&ca.row.id), &serial) {
            Ok(row) if row.der == current => row,
            _ => {
                return Err(refuse(EnrolRefusal::Certificate(
                    "the renewal is not signed with a certificate of this CA".into(),
                )))
            }
        };
        if row.revoked_at.is_some() {
            return Err(refuse(EnrolRefusal::Certificate(format!(
                "certificate {serial} is revoked; enrol again with a challenge"
            ))));
        }
        if row.not_after <= ts(now) {
            return Err(refuse(EnrolRefusal::Certificate(format!(
                "certificate {serial} has expired"
            ))));
        }
        // RFC 7030 §4.2.2 (and what a renewal means): the same subject and
        // subjectAltName, and no EKU beyond the current certificate's.
        if cert.tbs_certificate.subject != csr.subject {
            return Err(refuse(EnrolRefusal::NotAllowed(
                "a renewal must ask for the same subject as the current certificate".into(),
            )));
        }
        let current_san = cert
            .tbs_certificate
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == <SubjectAltName as der::oid::AssociatedOid>::OID);
        let asked_san = csr.subject_alt_name.as_ref();
        if current_san.map(|e| e.extn_value.as_bytes()) != asked_san.map(|e| e.extn_value.as_bytes()) {
            return Err(refuse(EnrolRefusal::NotAllowed(
                "a renewal must ask for the same subjectAltName as the current certificate".into(),
            )));
        }
        let current_ekus = &row.ekus;
        if let Some(e) = csr
            .requested_ekus
            .iter()
            .find(|e| !current_ekus.contains(&e.to_string()))
        {
            return Err(refuse(EnrolRefusal::NotAllowed(format!(
                "a renewal cannot add EKU {e}"
            ))));
        }
        let profile = tx
            .enrolment_profile(&row.id)
            .map_err(|e| (None, e.into()))?
            .ok_or_else(|| {
                refuse(EnrolRefusal::Certificate(format!(
                    "certificate {serial} was not enrolled"
                )))
            })?;
        Ok((row, profile))
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_ldh_without_wildcards() {
        assert!(is_host_name("a-1.devices.example"));
        for bad in ["*.devices.example", "a..b", "-a.b", "a b", "a/b", "", &"x".repeat(64)] {
            assert!(!is_host_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn suffixes_match_whole_labels() {
        let s = vec!["devices.example".to_owned()];
        assert!(suffix_ok("a.devices.example", &s));
        assert!(suffix_ok("DEVICES.example", &s));
        assert!(!suffix_ok("evildevices.example", &s));
        assert!(!suffix_ok("a.example", &s));
        assert!(suffix_ok("anything", &["*".to_owned()]));
        assert!(!suffix_ok("anything", &[]));
    }
}
