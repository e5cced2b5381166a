//! Signing at the edge: a keyless responder's own OCSP key.
//!
//! A responder holds no CA key and no KEK. To answer what nothing pre-signed
//! fits (nonces, SHA-384/512 CertIDs, several CertIDs, unknown serials) it
//! generates one P-256 key of its own, which never leaves it, and asks to
//! be trusted by writing only its public key to the store. Once an operator
//! approves it (`cloudpki responder approve`), the signing leader keeps a
//! delegated OCSP responder certificate (id-kp-OCSPSigning,
//! id-pkix-ocsp-nocheck) per CA version for that key, short-lived and
//! renewed before it expires; the responder picks each one up from the
//! change log. Relying parties never check an ocsp-nocheck certificate's
//! revocation (RFC 6960 §4.2.2.2.1), so a lost responder key is contained
//! by removing the responder: nothing renews its certificates and they
//! lapse within their lifetime (two days by default).

use der::Decode;
use spki::SubjectPublicKeyInfoOwned;

use super::*;
use crate::domain::lifecycle::{check_responder, ResponderAction, ResponderStanding};
use crate::store::{ResponderCertRow, ResponderRow};

/// The key kind of every responder key: fast to sign with, and verified by
/// every relying party that speaks OCSP.
pub const EDGE_KEY: (KeyAlgorithm, HashAlgorithm) = (KeyAlgorithm::EcP256, HashAlgorithm::Sha256);

/// A keyless responder's own OCSP signing key and the identity derived from it.
pub struct EdgeKey {
    /// `rsp-` and 128 bits of the SHA-256 of its SubjectPublicKeyInfo:
    /// approving an id approves exactly this key.
    pub id: String,
    /// A name for people (the host, by default).
    pub name: String,
    pub key: Arc<dyn Signer>,
    /// SubjectPublicKeyInfo, DER.
    pub spki: Vec<u8>,
}

impl std::fmt::Debug for EdgeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl EdgeKey {
    /// Loads a responder key from its PKCS#8 encoding.
    pub fn from_pkcs8(pkcs8: &[u8], name: &str) -> Result<Self> {
        let key = SoftwareKey::from_pkcs8(EDGE_KEY.0, EDGE_KEY.1, pkcs8)?;
        let spki = key.public_key().to_der().map_err(crate::x509::X509Error::from)?;
        Ok(EdgeKey {
            id: Self::id_of(&spki),
            name: name.to_owned(),
            key: Arc::new(key),
            spki,
        })
    }

    /// A new key, with its PKCS#8 encoding for the responder's own disk.
    pub fn generate(name: &str) -> Result<(Self, zeroize::Zeroizing<Vec<u8>>)> {
        let pkcs8 = crate::x509::keys::generate_pkcs8(EDGE_KEY.0)?;
        Ok((Self::from_pkcs8(&pkcs8, name)?, pkcs8))
    }

    pub fn id_of(spki: &[u8]) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki);
        format!("rsp-{}", crate::x509::hex_upper(&digest.as_ref()[..16]).to_lowercase())
    }
}

/// A responder as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponderInfo {
    pub id: String,
    pub name: String,
    pub standing: ResponderStanding,
    pub requested_at: OffsetDateTime,
    pub approved_at: Option<OffsetDateTime>,
    pub approved_by: Option<String>,
    pub last_seen_at: Option<OffsetDateTime>,
}

fn standing(row: &ResponderRow) -> ResponderStanding {
    match (row.approved_at, row.removed_at) {
        (_, Some(_)) => ResponderStanding::Removed,
        (Some(_), None) => ResponderStanding::Approved,
        (None, None) => ResponderStanding::Requested,
    }
}

fn info(row: &ResponderRow) -> Result<ResponderInfo> {
    Ok(ResponderInfo {
        id: row.id.clone(),
        name: row.name.clone(),
        standing: standing(row),
        requested_at: from_ts(row.requested_at)?,
        approved_at: row.approved_at.map(from_ts).transpose()?,
        approved_by: row.approved_by.clone(),
        last_seen_at: row.last_seen_at.map(from_ts).transpose()?,
    })
}

/// Approved, and seen within `dormant_after` (a responder that never said
/// when it was last seen counts as seen).
fn renewable(row: &ResponderRow, now: OffsetDateTime, dormant_after: Duration) -> bool {
    standing(row) == ResponderStanding::Approved && row.last_seen_at.is_none_or(|t| t >= ts(now - dormant_after))
}

/// Bounds the name a responder gives itself (it ends up in audit events and
/// certificate subjects).
fn clean_name(name: &str) -> String {
    let name: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
    if name.trim().is_empty() {
        "responder".into()
    } else {
        name
    }
}

/// Where enrolment tokens live in meta: this prefix and the SHA-256 of the
/// token (never the token), valued `{uses left} {expiry, unix seconds}`.
const ENROLMENT_PREFIX: &str = "responder_enrolment:";

fn enrolment_key(token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.trim().as_bytes());
    format!(
        "{ENROLMENT_PREFIX}{}",
        crate::x509::hex_upper(digest.as_ref()).to_lowercase()
    )
}

/// A new enrolment token, as handed to responders at deploy.
#[derive(Debug, Clone)]
pub struct EnrolmentToken {
    pub token: String,
    pub uses: u32,
    pub expires_at: OffsetDateTime,
}

impl Pki {
    /// Mints a token that approves up to `uses` responders' requests until
    /// `valid_for` has passed: for responders deployed where nobody runs
    /// `responder approve` for each (autoscaled pods with no disk). Only its
    /// hash is stored.
    pub fn create_enrolment_token(&self, uses: u32, valid_for: Duration) -> Result<EnrolmentToken> {
        use aws_lc_rs::rand::SecureRandom;
        if uses == 0 || valid_for <= Duration::ZERO || valid_for > Duration::days(366) {
            return Err(PkiError::Invalid(
                "an enrolment token needs at least one use and a validity of at most a year".into(),
            ));
        }
        let mut raw = [0u8; 32];
        aws_lc_rs::rand::SystemRandom::new()
            .fill(&mut raw)
            .map_err(|_| corrupt("no randomness for an enrolment token"))?;
        let token = format!(
            "cre_{}",
            <base64ct::Base64UrlUnpadded as base64ct::Encoding>::encode_string(&raw)
        );
        let now = self.clock.now();
        let expires_at = now + valid_for;
        let mut tx = self.store.begin(TxMode::Write)?;
        tx.set_meta(&enrolment_key(&token), &format!("{uses} {}", ts(expires_at)))?;
        tx.append_audit(&audit_row(
            now,
            "createResponderEnrolmentToken",
            ("Responder", "*"),
            "success",
            &format!("{uses} use(s) until {expires_at}"),
            &[],
        ))?;
        self.commit(tx)?;
        Ok(EnrolmentToken {
            token,
            uses,
            expires_at,
        })
    }

    /// Spends one use of an enrolment token; false when it is unknown,
    /// expired or used up.
    fn spend_enrolment_token(&self, tx: &mut dyn Tx, token: &str, now: OffsetDateTime) -> Result<bool> {
        let key = enrolment_key(token);
        let Some(value) = tx.meta(&key)? else {
            return Ok(false);
        };
        let parsed = value
            .split_once(' ')
            .and_then(|(u, e)| Some((u.parse::<u32>().ok()?, e.parse::<i64>().ok()?)));
        let Some((uses, expires)) = parsed else {
            return Err(corrupt(format!("enrolment token record {value:?}")));
        };
        if uses == 0 || expires <= ts(now) {
            tx.delete_meta(&key)?;
            return Ok(false);
        }
        if uses == 1 {
            tx.delete_meta(&key)?;
        } else {
            tx.set_meta(&key, &format!("{} {expires}", uses - 1))?;
        }
        Ok(true)
    }

    /// Records a responder's request to sign with its own key (nothing
    /// changes when it asked before); an enrolment token, when given and
    /// valid, approves a pending request at once. Returns where it stands.
    pub fn request_edge_signing(&self, edge: &EdgeKey, enrolment_token: Option<&str>) -> Result<ResponderStanding> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write)?;
        let row = ResponderRow {
            id: edge.id.clone(),
            name: clean_name(&edge.name),
            public_key: edge.spki.clone(),
            requested_at: ts(now),
            approved_at: None,
            approved_by: None,
            removed_at: None,
            last_seen_at: Some(ts(now)),
        };
        if tx.request_responder(&row)? {
            tx.append_audit(&audit_row(
                now,
                "requestResponderSigning",
                ("Responder", &row.id),
                "success",
                &row.name,
                &[],
            ))?;
        }
        let mut stored = tx
            .responders()?
            .into_iter()
            .find(|r| r.id == edge.id)
            .ok_or_else(|| corrupt("responder request not stored"))?;
        if stored.public_key != edge.spki {
            return Err(corrupt(format!("responder {}: another key under its id", edge.id)));
        }
        tx.responder_seen(&edge.id, ts(now))?;
        let from = standing(&stored);
        if let (Some(token), ResponderStanding::Requested) = (enrolment_token, from) {
            if check_responder(ResponderAction::Approve, from).is_ok()
                && self.spend_enrolment_token(tx.as_mut(), token, now)?
            {
                stored.approved_at = Some(ts(now));
                stored.approved_by = Some(format!(
                    "enrolment token {}",
                    &enrolment_key(token)[ENROLMENT_PREFIX.len()..][..8]
                ));
                tx.set_responder_state(&stored)?;
                tx.append_audit(&audit_row(
                    now,
                    "approveResponder",
                    ("Responder", &stored.id),
                    "success",
                    "enrolment token",
                    &[],
                ))?;
            } else {
                tx.append_audit(&audit_row(
                    now,
                    "approveResponder",
                    ("Responder", &stored.id),
                    "failure",
                    "enrolment token unknown, expired or used up",
                    &[],
                ))?;
            }
        }
        self.commit(tx)?;
        Ok(standing(&stored))
    }

    /// Records that this responder is alive (responders call it every hour):
    /// the signing leader stops renewing the certificates of one not seen
    /// for a certificate lifetime, so replaced nodes' keys lapse on their own.
    pub fn mark_responder_seen(&self, edge: &EdgeKey) -> Result<()> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write)?;
        tx.responder_seen(&edge.id, ts(now))?;
        self.commit(tx)
    }

    /// Every responder that asked to sign, oldest first.
    pub fn responders(&self) -> Result<Vec<ResponderInfo>> {
        self.store.begin(TxMode::Read)?.responders()?.iter().map(info).collect()
    }

    /// Approves or removes a responder (see `lifecycle::check_responder`).
    pub fn set_responder(&self, id: &str, action: ResponderAction) -> Result<ResponderInfo> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write)?;
        let mut row = tx
            .responders()?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| PkiError::NotFound {
                what: "responder",
                id: id.to_owned(),
            })?;
        let from = standing(&row);
        let to = check_responder(action, from)?;
        if to != from {
            match to {
                ResponderStanding::Approved => {
                    row.approved_at = Some(ts(now));
                    row.approved_by = Some(audit::current_actor());
                }
                ResponderStanding::Removed => row.removed_at = Some(ts(now)),
                ResponderStanding::Requested => {}
            }
            tx.set_responder_state(&row)?;
            let activity = match action {
                ResponderAction::Approve => "approveResponder",
                ResponderAction::Remove => "removeResponder",
            };
            tx.append_audit(&audit_row(now, activity, ("Responder", id), "success", &row.name, &[]))?;
            self.commit(tx)?;
        }
        info(&row)
    }

    /// Issues the delegated OCSP certificates that approved responders lack
    /// or that expire within the renewal window, for every CA version this
    /// node can sign for. Run by the signing leader; returns how many.
    pub fn renew_responder_certs(&self) -> Result<usize> {
        let now = self.clock.now();
        let t = &self.settings.timings;
        // Responders say they are alive every hour; one silent for a whole
        // certificate lifetime (at least a day) is gone: let its keys lapse.
        let dormant_after = t.responder_cert_validity.max(Duration::days(1));
        // A read first: nothing is due in almost every round, and a write
        // transaction on PostgreSQL takes the fleet-wide writer lock.
        let due = {
            let mut tx = self.store.begin(TxMode::Read)?;
            let approved: Vec<ResponderRow> = tx
                .responders()?
                .into_iter()
                .filter(|r| renewable(r, now, dormant_after))
                .collect();
            if approved.is_empty() {
                return Ok(0);
            }
            let mut due: Vec<(CaRow, Vec<ResponderRow>)> = Vec::new();
            for ca in tx.cas()? {
                let Some(cert) = ca.cert.as_deref() else { continue };
                let ca_end = ts(ParsedCert::from_der(cert)?.not_after()?);
                if ca_end <= ts(now + t.responder_cert_renew_before.min(Duration::hours(1))) {
                    continue;
                }
                let mut lacking = Vec::new();
                for r in &approved {
                    let held = tx.responder_cert(&r.id, &ca.id, ca.version)?;
                    let fresh = held.is_some_and(|h| {
                        h.not_after > ts(now + t.responder_cert_renew_before) || h.not_after >= ca_end
                    });
                    if !fresh {
                        lacking.push(r.clone());
                    }
                }
                if !lacking.is_empty() {
                    due.push((ca, lacking));
                }
            }
            due
        };
        if due.is_empty() {
            return Ok(0);
        }
        let mut tx = self.store.begin(TxMode::Write)?;
        // Standing again, under the writer lock: a responder removed since
        // the read above gets nothing.
        let still_approved: std::collections::HashSet<String> = tx
            .responders()?
            .into_iter()
            .filter(|r| renewable(r, now, dormant_after))
            .map(|r| r.id)
            .collect();
        let mut issued = 0;
        for (ca_row, responders) in due {
            let responders: Vec<ResponderRow> = responders
                .into_iter()
                .filter(|r| still_approved.contains(&r.id))
                .collect();
            if responders.is_empty() {
                continue;
            }
            let ca = LoadedCa {
                entity: self.ca_record(&ca_row, now)?,
                row: ca_row,
            };
            let ca_end = ca
                .entity
                .version
                .not_after
                .ok_or_else(|| corrupt("CA without validity"))?;
            let key = match self.signer(tx.as_mut(), &ca) {
                Ok(k) => k,
                Err(e) => {
                    tracing::warn!(ca = %ca.row.id, error = %e, "cannot certify responders for this CA");
                    continue;
                }
            };
            for r in responders {
                let Ok(spki) = SubjectPublicKeyInfoOwned::from_der(&r.public_key) else {
                    tracing::warn!(responder = %r.id, "a responder's stored key does not parse; not certified");
                    continue;
                };
                let not_after = (now + t.responder_cert_validity).min(ca_end);
                let cn = format!("OCSP Responder {}", r.id);
                let der = self.delegated_ocsp_cert(&ca, key.as_ref(), spki, &cn, now, not_after)?;
                tx.put_responder_cert(&ResponderCertRow {
                    responder_id: r.id.clone(),
                    ca_id: ca.row.id.clone(),
                    ca_version: ca.row.version,
                    cert: der,
                    not_after: ts(not_after),
                })?;
                issued += 1;
                tracing::info!(ca = %ca.row.id, responder = %r.id, not_after = %not_after, "responder OCSP certificate issued");
            }
            tx.append_change(ts(now), ChangeKind::ResponderCertIssued, &ca.row.id, None)?;
        }
        self.commit(tx)?;
        Ok(issued)
    }

    /// The OCSP signer a keyless responder uses for one CA version: its own
    /// key with the delegated certificate the CA issued it, when there is a
    /// valid one for exactly this key and CA.
    pub fn edge_responder(&self, edge: &EdgeKey, ca: &CaRow) -> Result<Option<Arc<OcspResponder>>> {
        let (Some(ca_cert), Some(held)) = (
            ca.cert.as_deref(),
            self.store
                .begin(TxMode::Read)?
                .responder_cert(&edge.id, &ca.id, ca.version)?,
        ) else {
            return Ok(None);
        };
        edge.responder_for(&held.cert, ca_cert, self.clock.now())
    }
}

impl EdgeKey {
    /// This key's OCSP signer under `cert`, if `cert` certifies exactly this
    /// key, was signed by the CA certificate `ca_cert` and is valid at `now`.
    pub fn responder_for(
        &self,
        cert: &[u8],
        ca_cert: &[u8],
        now: OffsetDateTime,
    ) -> Result<Option<Arc<OcspResponder>>> {
        let cert = ParsedCert::from_der(cert)?;
        let issuer = ParsedCert::from_der(ca_cert)?;
        let ours = cert
            .tbs()
            .subject_public_key_info
            .to_der()
            .map_err(crate::x509::X509Error::from)?
            == self.spki;
        if !ours || cert.verify_signed_by(&issuer.tbs().subject_public_key_info).is_err() {
            tracing::warn!("a responder certificate is not for this key or not from its CA; ignored");
            return Ok(None);
        }
        let not_after = cert.not_after()?;
        if not_after <= now {
            return Ok(None);
        }
        Ok(Some(Arc::new(OcspResponder {
            key: self.key.clone(),
            cert: Some(Arc::new(cert.cert)),
            not_after: Some(not_after),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::config::{open_with_clock, OpenOptions};
    use crate::domain::engine::tests::new_ca;

    fn issued_serials(pki: &Pki, edge: &EdgeKey, ca: &CaRow) -> Vec<u8> {
        let r = pki
            .edge_responder(edge, ca)
            .unwrap()
            .expect("a usable responder certificate");
        r.cert
            .as_ref()
            .unwrap()
            .tbs_certificate
            .serial_number
            .as_bytes()
            .to_vec()
    }

    #[test]
    fn approved_responders_get_delegated_certificates_renewed_before_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = crate::clock::truncate(OffsetDateTime::now_utc());
        let open = |t: OffsetDateTime| {
            open_with_clock(&OpenOptions::new(dir.path().to_path_buf()), Arc::new(FixedClock(t))).unwrap()
        };
        let pki = open(t0);
        let (_, issuing) = crate::domain::engine::tests::hierarchy(&pki);
        let (edge, _) = EdgeKey::generate("edge-1").unwrap();
        let (other, _) = EdgeKey::generate("edge-2").unwrap();
        assert_eq!(
            pki.request_edge_signing(&edge, None).unwrap(),
            ResponderStanding::Requested
        );
        assert_eq!(
            pki.request_edge_signing(&edge, None).unwrap(),
            ResponderStanding::Requested
        );
        pki.request_edge_signing(&other, None).unwrap();
        // Nothing is issued before approval.
        assert_eq!(pki.renew_responder_certs().unwrap(), 0);
        let row = |pki: &Pki, id: &str| pki.store().begin(TxMode::Read).unwrap().ca(id).unwrap().unwrap();
        assert!(pki.edge_responder(&edge, &row(&pki, &issuing.id)).unwrap().is_none());

        let approved = pki.set_responder(&edge.id, ResponderAction::Approve).unwrap();
        assert_eq!(approved.standing, ResponderStanding::Approved);
        // One per CA (the root answers for its issuing CAs' certificates).
        assert_eq!(pki.renew_responder_certs().unwrap(), 2);
        assert_eq!(pki.renew_responder_certs().unwrap(), 0, "fresh certificates are kept");
        let r = pki.edge_responder(&edge, &row(&pki, &issuing.id)).unwrap().unwrap();
        assert_eq!(r.not_after, Some(t0 + Duration::days(2)));
        let der = r.cert.as_ref().unwrap().to_der().unwrap();
        let parsed = ParsedCert::from_der(&der).unwrap();
        assert_eq!(parsed.ekus().unwrap(), vec![oids::KP_OCSP_SIGNING]);
        assert!(parsed
            .tbs()
            .extensions
            .iter()
            .flatten()
            .any(|e| e.extn_id == oids::OCSP_NOCHECK));
        assert_eq!(parsed.tbs().subject_public_key_info.to_der().unwrap(), edge.spki);
        let ca_cert = ParsedCert::from_der(&pki.ca_certificate(&issuing.id).unwrap()).unwrap();
        parsed.verify_signed_by(&ca_cert.tbs().subject_public_key_info).unwrap();
        // Another key never uses this certificate.
        assert!(pki.edge_responder(&other, &row(&pki, &issuing.id)).unwrap().is_none());
        let first = issued_serials(&pki, &edge, &row(&pki, &issuing.id));

        // Half a day on: still fresh. A day and a second on: renewed.
        let later = open(t0 + Duration::hours(12));
        assert_eq!(later.renew_responder_certs().unwrap(), 0);
        let renewed_at = t0 + Duration::days(1) + Duration::seconds(1);
        let later = open(renewed_at);
        assert_eq!(later.renew_responder_certs().unwrap(), 2);
        let second = issued_serials(&later, &edge, &row(&later, &issuing.id));
        assert_ne!(first, second);

        // Removed: nothing renews it, its certificates lapse, and it is never approved again.
        later.set_responder(&edge.id, ResponderAction::Remove).unwrap();
        let much_later = open(renewed_at + Duration::days(2));
        assert_eq!(much_later.renew_responder_certs().unwrap(), 0);
        assert!(much_later
            .edge_responder(&edge, &row(&much_later, &issuing.id))
            .unwrap()
            .is_none());
        assert!(matches!(
            much_later.set_responder(&edge.id, ResponderAction::Approve),
            Err(PkiError::Lifecycle(crate::domain::lifecycle::Refusal::ResponderRemoved))
        ));
        assert!(matches!(
            much_later.set_responder("rsp-nobody", ResponderAction::Approve),
            Err(PkiError::NotFound { .. })
        ));
        let standings: HashMap<String, ResponderStanding> = much_later
            .responders()
            .unwrap()
            .into_iter()
            .map(|r| (r.id, r.standing))
            .collect();
        assert_eq!(standings[&edge.id], ResponderStanding::Removed);
        assert_eq!(standings[&other.id], ResponderStanding::Requested);
    }

    #[test]
    fn a_responder_not_seen_for_a_certificate_lifetime_is_not_renewed() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = crate::clock::truncate(OffsetDateTime::now_utc());
        let open = |t: OffsetDateTime| {
            open_with_clock(&OpenOptions::new(dir.path().to_path_buf()), Arc::new(FixedClock(t))).unwrap()
        };
        let pki = open(t0);
        pki.create_ca(new_ca(CaType::RootCertificationAuthority, "Root", None))
            .unwrap();
        let (edge, _) = EdgeKey::generate("pod").unwrap();
        pki.request_edge_signing(&edge, None).unwrap();
        pki.set_responder(&edge.id, ResponderAction::Approve).unwrap();
        assert_eq!(pki.renew_responder_certs().unwrap(), 1);
        // Seen at t0 only: after two days and a second it is gone.
        let later = open(t0 + Duration::days(2) + Duration::seconds(1));
        assert_eq!(later.renew_responder_certs().unwrap(), 0);
        assert_eq!(
            later.responders().unwrap()[0].last_seen_at,
            Some(t0),
            "the request counts as a sign of life"
        );
        // It says it is alive again: renewed at once.
        later.mark_responder_seen(&edge).unwrap();
        assert_eq!(later.renew_responder_certs().unwrap(), 1);
    }

    #[test]
    fn enrolment_tokens_approve_as_many_requests_as_they_have_uses_until_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = crate::clock::truncate(OffsetDateTime::now_utc());
        let open = |t: OffsetDateTime| {
            open_with_clock(&OpenOptions::new(dir.path().to_path_buf()), Arc::new(FixedClock(t))).unwrap()
        };
        let pki = open(t0);
        assert!(matches!(
            pki.create_enrolment_token(0, Duration::hours(1)),
            Err(PkiError::Invalid(_))
        ));
        let two = pki.create_enrolment_token(2, Duration::hours(1)).unwrap();
        assert!(two.token.starts_with("cre_") && two.token.len() > 40);
        let keys: Vec<EdgeKey> = (0..4)
            .map(|i| EdgeKey::generate(&format!("pod-{i}")).unwrap().0)
            .collect();
        let ask = |pki: &Pki, k: &EdgeKey, token: &str| pki.request_edge_signing(k, Some(token)).unwrap();
        assert_eq!(ask(&pki, &keys[0], &two.token), ResponderStanding::Approved);
        assert_eq!(ask(&pki, &keys[1], &two.token), ResponderStanding::Approved);
        assert_eq!(ask(&pki, &keys[2], &two.token), ResponderStanding::Requested, "used up");
        assert_eq!(ask(&pki, &keys[2], "cre_wrong"), ResponderStanding::Requested);
        // Asking again with a spent token changes nothing for one approved already.
        assert_eq!(ask(&pki, &keys[0], &two.token), ResponderStanding::Approved);
        let one = pki.create_enrolment_token(1, Duration::hours(1)).unwrap();
        assert_eq!(
            ask(&open(t0 + Duration::hours(2)), &keys[2], &one.token),
            ResponderStanding::Requested,
            "expired"
        );
        // A removed responder is not approved again by a token.
        let fresh = pki.create_enrolment_token(1, Duration::hours(1)).unwrap();
        pki.set_responder(&keys[1].id, ResponderAction::Remove).unwrap();
        assert_eq!(ask(&pki, &keys[1], &fresh.token), ResponderStanding::Removed);
        assert_eq!(
            ask(&pki, &keys[3], &fresh.token),
            ResponderStanding::Approved,
            "not spent on the removed one"
        );
        // Only hashes are stored.
        let stored = pki
            .store()
            .begin(TxMode::Read)
            .unwrap()
            .meta_with_prefix(ENROLMENT_PREFIX)
            .unwrap();
        assert!(stored
            .iter()
            .all(|(k, v)| !k.contains(&two.token[4..]) && !v.contains("cre_")));
    }

    #[test]
    fn a_responder_key_survives_a_restart_and_its_id_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = crate::config::edge_key(dir.path(), "n").unwrap();
        let b = crate::config::edge_key(dir.path(), "n").unwrap();
        assert_eq!(a.id, b.id);
        assert_eq!(a.spki, b.spki);
        assert_eq!(a.id, EdgeKey::id_of(&a.spki));
        assert!(a.id.starts_with("rsp-") && a.id.len() == 36, "{}", a.id);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(crate::config::EDGE_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join(crate::config::EDGE_KEY_FILE), b"garbage").unwrap();
        assert!(matches!(
            crate::config::edge_key(dir.path(), "n"),
            Err(crate::config::ConfigError::EdgeKey { .. })
        ));
    }
}
