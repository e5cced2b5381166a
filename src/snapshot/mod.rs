//! Immutable snapshots of everything relying parties can ask for.
//!
//! A [`Snapshot`] holds, per CA, the ready bytes of its certificate (DER,
//! PEM, PKCS#7 chain), its current CRL, and the pre-signed OCSP answers of
//! every certificate it issued. The responder reads the current snapshot
//! through [`Published`] (an `ArcSwap`): no lock, no database, no signature
//! for an ordinary request. The [`maintainer`] builds a new snapshot after
//! each change and swaps it in.
//!
//! Per-CA certificates live in a [`CertMap`] (see [`certs`]): a packed
//! sorted array plus a persistent B-tree of recent changes, so a revocation
//! copies a handful of tree nodes, not the CA's million entries, and the old
//! snapshot stays valid for readers still holding it.

pub mod certs;
pub mod disk;
pub mod maintainer;
pub mod zerocopy;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use bytes::Bytes;

use crate::domain::engine::OcspResponder;
use crate::domain::CaStatus;
pub use crate::store::CrlScopeKey;
use crate::x509::ocsp::{self, CertIdHash, ErrorAnswer, IssuerHashes, ParsedRequest, SingleAnswer, Status};
pub use certs::{Answer, CertMap, CertState};

/// The current snapshot, swapped atomically.
pub type Published = Arc<ArcSwap<Snapshot>>;

/// How current the published snapshot is with the store. The maintainer
/// writes it after each round; `/readyz` and `/metrics` read it. When the
/// store cannot be reached the last snapshot keeps being served (its answers
/// stay valid until their nextUpdate) and this says so.
#[derive(Debug, Default)]
pub struct SyncState {
    degraded: std::sync::atomic::AtomicBool,
    /// Unix milliseconds of the last round that reached the store.
    synced_ms: std::sync::atomic::AtomicU64,
}

impl SyncState {
    fn now_ms() -> u64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    /// A round reached the store: the snapshot is current.
    pub fn synced(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.synced_ms.store(Self::now_ms(), Relaxed);
        self.degraded.store(false, Relaxed);
    }

    /// A round failed to reach the store.
    pub fn failed(&self) {
        self.degraded.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Serving a snapshot read back from disk, last current at `synced_ms`
    /// (unix milliseconds): degraded until a round reaches the store.
    pub fn restored(&self, synced_ms: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.synced_ms.store(synced_ms, Relaxed);
        self.degraded.store(true, Relaxed);
    }

    /// Unix milliseconds of the last round that reached the store (0: none yet).
    pub fn synced_ms(&self) -> u64 {
        self.synced_ms.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn degraded(&self) -> bool {
        self.degraded.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Seconds since the snapshot was last known current (0 before the first round).
    pub fn age_seconds(&self) -> f64 {
        let at = self.synced_ms.load(std::sync::atomic::Ordering::Relaxed);
        if at == 0 {
            return 0.0;
        }
        Self::now_ms().saturating_sub(at) as f64 / 1000.0
    }
}

/// A certificate serial as a fixed-size, cheaply cloned key. Serials longer
/// than 20 octets cannot be ours (RFC 5280 §4.1.2.2 caps them at 20).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SerialKey {
    len: u8,
    bytes: [u8; 20],
}

impl SerialKey {
    pub fn new(serial: &[u8]) -> Option<Self> {
        if serial.is_empty() || serial.len() > 20 {
            return None;
        }
        let mut bytes = [0u8; 20];
        bytes[..serial.len()].copy_from_slice(serial);
        Some(SerialKey {
            len: serial.len() as u8,
            bytes,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// The ETag of a signed document: its last 8 bytes in hex, quoted. The
/// signature ends every signed structure, so they identify the body.
/// Rendered on the stack: OCSP GET answers compute theirs per request.
#[derive(Clone, Copy)]
pub struct Etag {
    text: [u8; 18],
    len: usize,
}

impl Etag {
    pub fn of(body: &[u8]) -> Etag {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let tail = &body[body.len().saturating_sub(8)..];
        let mut text = [b'"'; 18];
        for (i, b) in tail.iter().enumerate() {
            text[1 + 2 * i] = HEX[usize::from(b >> 4)];
            text[2 + 2 * i] = HEX[usize::from(b & 15)];
        }
        let len = 2 * tail.len() + 2;
        text[len - 1] = b'"';
        Etag { text, len }
    }

    pub fn as_str(&self) -> &str {
        // Quotes and hex digits only.
        std::str::from_utf8(&self.text[..self.len]).unwrap_or("\"\"")
    }
}

pub fn etag_of(body: &[u8]) -> Arc<str> {
    Etag::of(body).as_str().into()
}

/// A published document with its HTTP validators.
#[derive(Debug, Clone)]
pub struct Document {
    pub body: Bytes,
    /// Unix seconds.
    pub this_update: i64,
    pub next_update: i64,
    pub etag: Arc<str>,
}

/// A CRL as served.
#[derive(Debug, Clone)]
pub struct CrlDocument {
    pub doc: Document,
    pub number: i64,
    pub entries: usize,
    /// The body's sealed file copy, sent without copying (large CRLs).
    pub mirror: Option<Arc<zerocopy::Mirror>>,
}

impl CrlDocument {
    pub fn new(body: Bytes, this_update: i64, next_update: i64, number: i64, entries: usize) -> Self {
        CrlDocument {
            mirror: zerocopy::Mirror::of(&body),
            doc: Document {
                etag: etag_of(&body),
                body,
                this_update,
                next_update,
            },
            number,
            entries,
        }
    }
}

/// A CA certificate as served at one AIA URL, with its validator.
#[derive(Debug, Clone)]
pub struct AiaDocument {
    pub body: Bytes,
    /// From the whole body (a PEM's or a PKCS#7's last bytes are the same
    /// for every CA), computed once when the snapshot is built.
    pub etag: Arc<str>,
}

impl AiaDocument {
    pub fn new(body: Bytes) -> Self {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &body);
        AiaDocument {
            etag: format!("\"{}\"", crate::x509::hex_upper(&digest.as_ref()[..12])).into(),
            body,
        }
    }
}

/// Everything served for one CA.
#[derive(Clone)]
pub struct CaState {
    pub id: Arc<str>,
    pub version: i32,
    pub status: CaStatus,
    pub cert_der: AiaDocument,
    pub cert_pem: AiaDocument,
    pub chain_p7c: AiaDocument,
    pub hashes: Vec<IssuerHashes>,
    /// The CRLs served, by partition (0: `current.crl`), complete and
    /// delta; one is missing only until first signed.
    pub crls: Arc<std::collections::BTreeMap<CrlScopeKey, Arc<CrlDocument>>>,
    /// Partitions 1..=this are served besides `current.crl`.
    pub crl_partitions: u32,
    /// Whether each partition also has a delta CRL.
    pub delta_crls: bool,
    /// `partitions.json`: the JSON array of every CRL URL (CCADB's format).
    pub partitions_json: AiaDocument,
    pub certs: CertMap,
    /// Signs answers that cannot be pre-signed (nonces, unknown serials,
    /// several CertIDs at once). None on a node holding no key.
    pub responder: Option<Arc<OcspResponder>>,
}

/// What a CA's served documents are built from: the store, or the disk copy.
#[derive(Debug, Clone)]
pub struct CaParts {
    pub id: Arc<str>,
    pub version: i32,
    pub status: CaStatus,
    pub cert_der: Bytes,
    /// The certificate and its chain as PKCS#7 (`.p7c`), DER.
    pub chain_p7c: Bytes,
    pub partitions_json: Bytes,
    pub crl_partitions: u32,
    pub delta_crls: bool,
}

impl CaState {
    /// A CA's state from its parts: the PEM, the CertID hashes and the
    /// validators are derived here, once.
    pub fn assemble(
        parts: CaParts,
        crls: Arc<std::collections::BTreeMap<CrlScopeKey, Arc<CrlDocument>>>,
        certs: CertMap,
        responder: Option<Arc<OcspResponder>>,
    ) -> Result<CaState, crate::x509::X509Error> {
        use der::Decode;
        let parsed = x509_cert::Certificate::from_der(&parts.cert_der)?;
        let hashes = CertIdHash::ALL
            .iter()
            .map(|h| IssuerHashes::of(&parsed, *h))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CaState {
            id: parts.id,
            version: parts.version,
            status: parts.status,
            cert_pem: AiaDocument::new(Bytes::from(crate::x509::pem::encode("CERTIFICATE", &parts.cert_der)?)),
            cert_der: AiaDocument::new(parts.cert_der),
            chain_p7c: AiaDocument::new(parts.chain_p7c),
            hashes,
            crls,
            crl_partitions: parts.crl_partitions,
            delta_crls: parts.delta_crls,
            partitions_json: AiaDocument::new(parts.partitions_json),
            certs,
            responder,
        })
    }

    /// Whether this node can sign on demand for this CA now (a responder's
    /// delegated certificate may have lapsed since the snapshot was built).
    pub fn can_sign(&self) -> bool {
        self.responder.as_ref().is_some_and(|r| r.usable_now())
    }
}

impl std::fmt::Debug for CaState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaState")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("certs", &self.certs.len())
            .finish_non_exhaustive()
    }
}

/// issuerKeyHash -> CA id, read on every OCSP answer: keyed, but not
/// SipHash (it showed in the responder's profile).
pub type Issuers = HashMap<Vec<u8>, Arc<str>, ahash::RandomState>;

/// One immutable view of all CAs.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub generation: u64,
    /// The change-log sequence number this snapshot includes.
    pub change_seq: i64,
    pub built_at: SystemTime,
    pub cas: imbl::HashMap<Arc<str>, Arc<CaState>>,
    /// issuerKeyHash -> CA id; hash lengths tell the algorithms apart.
    pub issuers: Arc<Issuers>,
    pub deleted: imbl::HashSet<Arc<str>>,
    pub ready: bool,
}

impl Snapshot {
    /// An empty, not-ready snapshot (before the first load).
    pub fn empty() -> Self {
        Snapshot {
            generation: 0,
            change_seq: 0,
            built_at: SystemTime::now(),
            cas: imbl::HashMap::new(),
            issuers: Arc::default(),
            deleted: imbl::HashSet::new(),
            ready: false,
        }
    }

    /// The CA serving `{id}_v{version}`, if it exists in that version.
    pub fn ca_version(&self, id: &str, version: i32) -> Option<&Arc<CaState>> {
        self.cas.get(id).filter(|c| c.version == version)
    }

    /// The common request's ready answer (one lookup, no allocation), with
    /// its thisUpdate, nextUpdate and outcome. None: [`Snapshot::answer_ocsp`]
    /// decides (an issuer or serial not found here, SHA-384/512, a SHA-256
    /// answer not signed yet, ...), so both always agree.
    pub fn answer_simple(&self, q: &ocsp::SimpleQuestion<'_>, now: i64) -> Option<(Bytes, i64, i64, Outcome)> {
        let ca = self.cas.get(self.issuers.get(q.key_hash)?)?;
        if !ca.hashes.iter().any(|h| h.hash == q.hash && h.name_hash == q.name_hash) {
            return None;
        }
        let state = ca.certs.get(&SerialKey::new(q.serial)?)?;
        let (body, next_update) = state.answer(q.hash, now)?;
        let outcome = if state.is_revoked() {
            Outcome::Revoked
        } else {
            Outcome::Good
        };
        Some((body, state.this_update(), next_update, outcome))
    }

    /// Decides an OCSP request against this snapshot.
    pub fn answer_ocsp(&self, req: &ParsedRequest, now: i64) -> OcspDecision {
        let mut ca: Option<&Arc<CaState>> = None;
        let mut answers = Vec::with_capacity(req.questions.len());
        let mut outcome = Outcome::Good;
        for q in &req.questions {
            let Some(hash) = q.hash else {
                return OcspDecision::Error(ErrorAnswer::Unauthorized, Outcome::Unauthorized);
            };
            let found = self
                .issuers
                .get(q.cert_id.issuer_key_hash.as_bytes())
                .and_then(|id| self.cas.get(id))
                .filter(|c| {
                    c.hashes
                        .iter()
                        .any(|h| h.hash == hash && h.name_hash == q.cert_id.issuer_name_hash.as_bytes())
                });
            let Some(this_ca) = found else {
                return OcspDecision::Error(ErrorAnswer::Unauthorized, Outcome::Unauthorized);
            };
            // One response has one signer: every CertID must name the same issuer.
            if ca.is_some_and(|c| !Arc::ptr_eq(c, this_ca)) {
                return OcspDecision::Error(ErrorAnswer::Unauthorized, Outcome::Unauthorized);
            }
            ca = Some(this_ca);
            let state = SerialKey::new(q.cert_id.serial_number.as_bytes()).and_then(|k| this_ca.certs.get(&k));
            match state {
                Some(s) => {
                    if s.is_revoked() {
                        outcome = Outcome::Revoked;
                    }
                    answers.push((q, hash, Some(s.clone())));
                }
                None => {
                    if outcome == Outcome::Good {
                        outcome = Outcome::Unknown;
                    }
                    answers.push((q, hash, None));
                }
            }
        }
        let Some(ca) = ca else {
            return OcspDecision::Error(ErrorAnswer::MalformedRequest, Outcome::Malformed);
        };
        // The common case: one known certificate, SHA-1 or SHA-256, no nonce.
        // A node without a signing key answers a nonce request from the same
        // pre-signed set, without the nonce (RFC 8954 §2.1 allows ignoring it).
        let presigned_will_do = req.nonce.is_none() || !ca.can_sign();
        let mut keep = None;
        if let ([(_, hash, Some(state))], true) = (answers.as_slice(), presigned_will_do) {
            if let Some((body, next_update)) = state.answer(*hash, now) {
                return OcspDecision::Ready {
                    body,
                    this_update: state.this_update(),
                    next_update,
                    outcome,
                };
            }
            // A leaf's SHA-256 answer: signed now, then kept with the state.
            if *hash == CertIdHash::Sha256 && req.nonce.is_none() {
                keep = Some(state.clone());
            }
        }
        if !ca.can_sign() {
            // Nothing pre-signed fits and this node cannot sign (RFC 5019 §2.2.3).
            return OcspDecision::Error(ErrorAnswer::Unauthorized, Outcome::Unauthorized);
        }
        let mut answers: Vec<PendingAnswer> = answers
            .into_iter()
            .map(|(q, _, s)| PendingAnswer {
                cert_id: q.cert_id.clone(),
                status: s.map_or(Status::Unknown, |s| s.status()),
            })
            .collect();
        // A kept answer is served to everyone who asks: its CertID is ours
        // (as a pre-signed one's), not whatever parameters this request's
        // AlgorithmIdentifier carried.
        if let (Some(_), [a]) = (&keep, answers.as_mut_slice()) {
            let ours = ca
                .hashes
                .iter()
                .find(|h| h.hash == CertIdHash::Sha256)
                .and_then(|h| h.cert_id(a.cert_id.serial_number.as_bytes()).ok());
            match ours {
                Some(id) => a.cert_id = id,
                None => keep = None,
            }
        }
        OcspDecision::Sign {
            keep,
            ca: ca.clone(),
            answers,
            nonce: req.nonce.clone(),
            outcome,
        }
    }
}

/// An answer that must be signed now.
#[derive(Debug, Clone)]
pub struct PendingAnswer {
    pub cert_id: x509_ocsp::CertId,
    pub status: Status,
}

/// What the OCSP outcome was, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Good,
    Revoked,
    Unknown,
    Unauthorized,
    Malformed,
    /// Not ready yet, or on-demand signing is saturated.
    TryLater,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Good => "good",
            Outcome::Revoked => "revoked",
            Outcome::Unknown => "unknown",
            Outcome::Unauthorized => "unauthorized",
            Outcome::Malformed => "malformed",
            Outcome::TryLater => "try_later",
        }
    }
}

/// The responder's decision for one request.
#[derive(Debug)]
pub enum OcspDecision {
    /// Pre-signed bytes, served as they are.
    Ready {
        body: Bytes,
        /// Unix seconds, of this answer.
        this_update: i64,
        next_update: i64,
        outcome: Outcome,
    },
    /// Must be signed on demand (nonce, unknown serial, several CertIDs,
    /// SHA-384/512, a leaf's first SHA-256 question).
    Sign {
        /// The state whose SHA-256 answer this is, to keep it in once signed
        /// (with the state's thisUpdate, so that it says what the SHA-1 one says).
        keep: Option<CertState>,
        ca: Arc<CaState>,
        answers: Vec<PendingAnswer>,
        nonce: Option<Vec<u8>>,
        outcome: Outcome,
    },
    /// An unsigned error answer.
    Error(ErrorAnswer, Outcome),
}

/// Signs an on-demand answer (blocking: call off the async runtime),
/// produced `now` about statuses known to be right at `known`; with the
/// nextUpdate it carries.
pub fn sign_pending(
    ca: &CaState,
    answers: &[PendingAnswer],
    nonce: Option<&[u8]>,
    now: time::OffsetDateTime,
    known: time::OffsetDateTime,
    validity: time::Duration,
) -> Result<(Vec<u8>, time::OffsetDateTime), crate::x509::X509Error> {
    let signer = ca
        .responder
        .as_deref()
        .ok_or(crate::x509::X509Error::Crypto("no OCSP signing key on this node"))?;
    // Never valid longer than the certificate that signs it: a cached answer
    // must not outlive the delegated certificate that makes it verifiable.
    let next_update = signer
        .not_after
        .map_or(known + validity, |end| (known + validity).min(end));
    let single: Vec<SingleAnswer> = answers
        .iter()
        .map(|a| SingleAnswer {
            cert_id: a.cert_id.clone(),
            status: a.status,
            this_update: known,
            next_update,
        })
        .collect();
    Ok((ocsp::sign_response(&signer.as_key(), &single, nonce, now)?, next_update))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{open, OpenOptions};
    use crate::domain::{CaType, NewLeaf, Pki};
    use crate::observability::Metrics;
    use crate::snapshot::maintainer::{Maintainer, Wake};
    use crate::x509::{HashAlgorithm, KeyAlgorithm, RevocationReason, SoftwareKey};

    /// A store with a root, an issuing CA and `count` leaves (the first
    /// revoked), the request they were issued from, and a maintainer
    /// publishing into a fresh `Published`: what snapshot tests start from.
    pub(crate) struct Fixture {
        pub pki: Arc<Pki>,
        pub issuing: String,
        pub leaves: Vec<crate::domain::Leaf>,
        pub request: NewLeaf,
        pub published: Published,
    }

    impl Fixture {
        pub fn new(data_dir: std::path::PathBuf, count: usize) -> Fixture {
            let pki: Arc<Pki> = Arc::new(open(&OpenOptions::new(data_dir)).unwrap());
            let ca = crate::domain::engine::tests::new_ca;
            let root = pki
                .create_ca(ca(CaType::RootCertificationAuthority, "R", None))
                .unwrap();
            let issuing = pki
                .create_ca(ca(CaType::IssuingCertificationAuthority, "I", Some(root.id.clone())))
                .unwrap();
            let (key, _) = SoftwareKey::generate(KeyAlgorithm::EcP256, HashAlgorithm::Sha256).unwrap();
            let subject = crate::x509::names::SubjectParts {
                common_name: "device".into(),
                ..Default::default()
            }
            .to_name()
            .unwrap();
            let request = NewLeaf {
                csr: crate::x509::csr::build_ca_request(&subject, &key, &[]).unwrap(),
                ..Default::default()
            };
            let leaves: Vec<_> = (0..count)
                .map(|_| pki.issue_leaf(&issuing.id, &request).unwrap().0)
                .collect();
            pki.revoke_leaf(&leaves[0].id, None, RevocationReason::KeyCompromise)
                .unwrap();
            Fixture {
                pki,
                issuing: issuing.id,
                leaves,
                request,
                published: Arc::new(ArcSwap::from_pointee(Snapshot::empty())),
            }
        }

        pub fn maintainer(&self) -> Maintainer {
            Maintainer::new(
                self.pki.clone(),
                self.published.clone(),
                Arc::new(SyncState::default()),
                Arc::new(Metrics::new().unwrap()),
                Arc::new(Wake::default()),
            )
        }
    }

    /// The plain request's path and the general one give the same answer
    /// for every certificate a real snapshot holds, revoked ones included,
    /// with both hashes; and refuse the same questions.
    #[test]
    fn the_plain_request_path_agrees_with_the_general_one() {
        let dir = tempfile::tempdir().unwrap();
        let f = Fixture::new(dir.path().to_path_buf(), 6);
        f.maintainer().load().unwrap();
        let snap = f.published.load_full();
        let (mut compared, mut lazy) = (0, 0);
        for state in snap.cas.values() {
            for hashes in &state.hashes {
                let mut serials: Vec<Vec<u8>> = state.certs.keys().map(|k| k.as_bytes().to_vec()).collect();
                serials.push(vec![0x42; 16]); // not issued: both paths defer to on-demand
                for serial in serials {
                    let q = ocsp::SimpleQuestion {
                        hash: hashes.hash,
                        name_hash: &hashes.name_hash,
                        key_hash: &hashes.key_hash,
                        serial: &serial,
                    };
                    let req = ParsedRequest {
                        questions: vec![ocsp::Question {
                            cert_id: hashes.cert_id(&serial).unwrap(),
                            hash: Some(hashes.hash),
                        }],
                        nonce: None,
                    };
                    let general = snap.answer_ocsp(&req, 0);
                    match (snap.answer_simple(&q, 0), general) {
                        (
                            Some((body, this_update, next_update, outcome)),
                            OcspDecision::Ready {
                                body: b,
                                this_update: t,
                                next_update: n,
                                outcome: o,
                            },
                        ) => {
                            assert_eq!((body, this_update, next_update, outcome), (b, t, n, o));
                            compared += 1;
                        }
                        (None, OcspDecision::Sign { keep: Some(_), .. }) => {
                            assert_eq!(
                                hashes.hash,
                                CertIdHash::Sha256,
                                "only SHA-256 answers are signed lazily"
                            );
                            lazy += 1;
                        }
                        (None, OcspDecision::Ready { .. }) => {
                            panic!("the plain path missed a pre-signed answer ({:?})", hashes.hash)
                        }
                        (Some(_), other) => panic!("the plain path answered where the general one said {other:?}"),
                        (None, _) => {}
                    }
                }
            }
        }
        // 7 certificates (6 leaves, the issuing CA's own) with SHA-1; the
        // CA's own with SHA-256 too: the leaves' SHA-256 answers are signed
        // at their first question.
        assert_eq!((compared, lazy), (8, 6));
    }
}
