//! The key-encryption key (KEK) and sealing of private keys at rest.
//!
//! Keys are sealed with AES-256-GCM under the KEK, with the owner's id as
//! associated data so a sealed key cannot be moved to another owner's row. The
//! KEK comes from `CLOUDPKI_KEK` (base64 of 32 bytes), from a file named in
//! the configuration, or, for the zero-setup default, from a `kek` file that
//! `init` creates in the data directory with mode 0600.
//!
//! Sealed blob formats (the first byte says which):
//! - V1 (`01 ‖ nonce(12) ‖ ciphertext ‖ tag(16)`), associated data = context:
//!   written before KEK rotation existed; it does not say which KEK sealed
//!   it, so opening tries every KEK held.
//! - V2 (`02 ‖ kek id(8) ‖ nonce(12) ‖ ciphertext ‖ tag(16)`), associated
//!   data = `02 ‖ kek id ‖ context`: names the KEK that sealed it
//!   ([`KekId`]), so a node opens it with that KEK or says which one it lacks.
//!
//! Every sealed blob is of one [`SealedKind`]; the kind and its owner give the
//! context. The kinds are one list, so KEK rotation cannot forget one.

use std::path::Path;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64ct::{Base64, Encoding};
use zeroize::Zeroizing;

/// Format byte of blobs that do not name their KEK (read only).
const SEALED_V1: u8 = 1;
/// Format byte of blobs that name their KEK (written).
const SEALED_V2: u8 = 2;
const KEK_LEN: usize = 32;
const KEK_ID_LEN: usize = 8;
const TAG_LEN: usize = 16;
/// Domain separation for the KEK id: the id is a hash of the KEK under this
/// label, so it identifies the KEK without being usable as anything else.
const KEK_ID_LABEL: &[u8] = b"cloudpki kek id v1\0";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    #[error("the key-encryption key must be base64 of exactly 32 bytes")]
    BadKek,
    #[error("cannot read key-encryption key file {path}: {source}")]
    KekFile { path: String, source: std::io::Error },
    #[error("sealed key is malformed")]
    Malformed,
    #[error("cannot unseal: wrong key-encryption key, or the sealed key was altered")]
    Unseal,
    #[error("the key is sealed under key-encryption key {0}, which this process does not hold (it holds {1})")]
    NotHeld(KekId, String),
    #[error("random number generator failed")]
    Rng,
    #[error("this node holds no key-encryption key (responder role): it cannot open or seal keys")]
    NoKek,
}

/// What a sealed blob is, and so what it is bound to. Each kind lives in one
/// place in the store (see `domain::kek`); rotation walks [`SealedKind::ALL`].
macro_rules! sealed_kinds {
    ($($(#[$doc:meta])* $kind:ident = $name:literal,)+) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum SealedKind {
            $($(#[$doc])* $kind,)+
        }

        impl SealedKind {
            /// Every kind, generated from the same list as the enum: a new
            /// kind is in it by construction.
            pub const ALL: &'static [SealedKind] = &[$(SealedKind::$kind,)+];

            /// Stable name (status output, rotation progress).
            pub fn name(self) -> &'static str {
                match self {
                    $(SealedKind::$kind => $name,)+
                }
            }
        }
    };
}

sealed_kinds! {
    /// A CA's private key (`cas.sealed_key`), owner = CA id.
    CaKey = "caKey",
    /// A delegated OCSP signing key (`ocsp_delegates.sealed_key`), owner = CA id.
    OcspDelegateKey = "ocspDelegateKey",
    /// A CA's SCEP RA key (`scep_ras.sealed_key`), owner = the RA's id.
    ScepRaKey = "scepRaKey",
    /// The API token issuer key (meta `token_signing_key`), no owner.
    TokenSigningKey = "tokenSigningKey",
    /// A known plaintext (meta `kek_check`) proving a process holds the KEK, no owner.
    KekCheck = "kekCheck",
}

impl SealedKind {
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.name() == s)
    }

    /// The associated data a blob of this kind is bound to (unchanged since V1).
    fn context(self, owner: &str) -> String {
        match self {
            SealedKind::CaKey => owner.to_owned(),
            SealedKind::OcspDelegateKey => format!("ocsp:{owner}"),
            SealedKind::ScepRaKey => format!("scep-ra:{owner}"),
            SealedKind::TokenSigningKey => "token-issuer".to_owned(),
            SealedKind::KekCheck => "cloudpki kek check".to_owned(),
        }
    }
}

/// Which KEK sealed a blob: the first 8 bytes of SHA-256 over a label and the
/// KEK. Printed as 16 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KekId([u8; KEK_ID_LEN]);

impl std::fmt::Display for KekId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for KekId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KekId({self})")
    }
}

impl KekId {
    /// Parses 16 hex digits.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if s.len() != 2 * KEK_ID_LEN || !s.is_ascii() {
            return None;
        }
        let mut out = [0u8; KEK_ID_LEN];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(KekId(out))
    }
}

/// The header of a sealed blob: which format, and (V2) which KEK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedBy {
    /// A V1 blob: the KEK is not recorded.
    Unlabelled,
    Kek(KekId),
}

/// Reads the header of a sealed blob without opening it.
pub fn sealed_by(sealed: &[u8]) -> Result<SealedBy, SecretError> {
    match sealed.first() {
        Some(&SEALED_V1) if sealed.len() >= 1 + NONCE_LEN + TAG_LEN => Ok(SealedBy::Unlabelled),
        Some(&SEALED_V2) if sealed.len() >= 1 + KEK_ID_LEN + NONCE_LEN + TAG_LEN => {
            let id: [u8; KEK_ID_LEN] = sealed[1..1 + KEK_ID_LEN]
                .try_into()
                .map_err(|_| SecretError::Malformed)?;
            Ok(SealedBy::Kek(KekId(id)))
        }
        _ => Err(SecretError::Malformed),
    }
}

/// The key-encryption key. Never printed, zeroed on drop.
pub struct Kek {
    key: Zeroizing<[u8; KEK_LEN]>,
    id: KekId,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(..)")
    }
}

impl Kek {
    fn new(key: Zeroizing<[u8; KEK_LEN]>) -> Self {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        ctx.update(KEK_ID_LABEL);
        ctx.update(key.as_ref());
        let digest = ctx.finish();
        let mut id = [0u8; KEK_ID_LEN];
        id.copy_from_slice(&digest.as_ref()[..KEK_ID_LEN]);
        Kek { key, id: KekId(id) }
    }

    /// Parses base64 text (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, SecretError> {
        let bytes = Zeroizing::new(Base64::decode_vec(text.trim()).map_err(|_| SecretError::BadKek)?);
        let arr: [u8; KEK_LEN] = bytes.as_slice().try_into().map_err(|_| SecretError::BadKek)?;
        Ok(Kek::new(Zeroizing::new(arr)))
    }

    pub fn from_file(path: &Path) -> Result<Self, SecretError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| SecretError::KekFile {
            path: path.display().to_string(),
            source,
        })?);
        Self::from_base64(&text)
    }

    /// A fresh random KEK.
    pub fn generate() -> Result<Self, SecretError> {
        let mut k = Zeroizing::new([0u8; KEK_LEN]);
        SystemRandom::new().fill(k.as_mut()).map_err(|_| SecretError::Rng)?;
        Ok(Kek::new(k))
    }

    /// Base64 text, for writing the generated KEK file once.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(Base64::encode_string(self.key.as_ref()))
    }

    /// The id sealed blobs record (safe to print and store).
    pub fn id(&self) -> KekId {
        self.id
    }

    fn aead(&self) -> Result<LessSafeKey, SecretError> {
        let unbound = UnboundKey::new(&AES_256_GCM, self.key.as_ref()).map_err(|_| SecretError::BadKek)?;
        Ok(LessSafeKey::new(unbound))
    }

    /// Seals `plaintext` as a V2 blob of `kind`, bound to `owner`.
    pub fn seal(&self, kind: SealedKind, owner: &str, plaintext: &[u8]) -> Result<Vec<u8>, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| SecretError::Rng)?;
        let mut out = Vec::with_capacity(1 + KEK_ID_LEN + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.push(SEALED_V2);
        out.extend_from_slice(&self.id.0);
        let aad = [&out[..], kind.context(owner).as_bytes()].concat();
        out.extend_from_slice(&nonce);
        let mut buf = plaintext.to_vec();
        self.aead()?
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut buf)
            .map_err(|_| SecretError::Rng)?;
        // The plaintext copy in `buf` was encrypted in place; nothing to wipe.
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Opens a V1 or V2 blob of `kind` bound to `owner`.
    pub fn open(&self, kind: SealedKind, owner: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        let context = kind.context(owner);
        let (aad, body) = match sealed_by(sealed)? {
            SealedBy::Unlabelled => (context.into_bytes(), &sealed[1..]),
            SealedBy::Kek(id) => {
                if id != self.id {
                    return Err(SecretError::Unseal);
                }
                let header = &sealed[..1 + KEK_ID_LEN];
                ([header, context.as_bytes()].concat(), &sealed[1 + KEK_ID_LEN..])
            }
        };
        let nonce: [u8; NONCE_LEN] = body[..NONCE_LEN].try_into().map_err(|_| SecretError::Malformed)?;
        let mut buf = Zeroizing::new(body[NONCE_LEN..].to_vec());
        let len = self
            .aead()?
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut buf)
            .map_err(|_| SecretError::Unseal)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }

    /// Seals `plaintext` in the V1 format (tests of reading old data only).
    #[cfg(test)]
    pub(crate) fn seal_v1(&self, kind: SealedKind, owner: &str, plaintext: &[u8]) -> Result<Vec<u8>, SecretError> {
        let nonce = [7u8; NONCE_LEN];
        let mut buf = plaintext.to_vec();
        self.aead()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(kind.context(owner).as_bytes()),
                &mut buf,
            )
            .map_err(|_| SecretError::Rng)?;
        Ok([&[SEALED_V1][..], &nonce, &buf].concat())
    }
}

/// The KEKs a process holds: the one it was started with and, during a
/// rotation, the other one. Opens blobs sealed under any of them; seals under
/// the one the caller names (the store's state decides which, see `domain::kek`).
#[derive(Debug)]
pub struct KeyRing {
    keks: Vec<Kek>,
}

impl KeyRing {
    /// `primary` first; duplicates (the same KEK given twice) are dropped.
    pub fn new(primary: Kek, others: impl IntoIterator<Item = Kek>) -> Self {
        let mut keks = vec![primary];
        for k in others {
            if !keks.iter().any(|h| h.id == k.id) {
                keks.push(k);
            }
        }
        KeyRing { keks }
    }

    pub fn primary(&self) -> &Kek {
        &self.keks[0]
    }

    /// The ids held, primary first.
    pub fn ids(&self) -> Vec<KekId> {
        self.keks.iter().map(|k| k.id).collect()
    }

    pub fn holds(&self, id: KekId) -> bool {
        self.keks.iter().any(|k| k.id == id)
    }

    fn describe(&self) -> String {
        self.ids()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Seals under the KEK with this id; refuses one it does not hold.
    pub fn seal_with(
        &self,
        id: KekId,
        kind: SealedKind,
        owner: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SecretError> {
        let kek = self
            .keks
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| SecretError::NotHeld(id, self.describe()))?;
        kek.seal(kind, owner, plaintext)
    }

    /// Opens a blob with the KEK its header names, or (V1) with whichever
    /// held KEK opens it; returns the plaintext and the KEK that opened it.
    pub fn open(
        &self,
        kind: SealedKind,
        owner: &str,
        sealed: &[u8],
    ) -> Result<(Zeroizing<Vec<u8>>, KekId), SecretError> {
        match sealed_by(sealed)? {
            SealedBy::Kek(id) => {
                let kek = self
                    .keks
                    .iter()
                    .find(|k| k.id == id)
                    .ok_or_else(|| SecretError::NotHeld(id, self.describe()))?;
                Ok((kek.open(kind, owner, sealed)?, id))
            }
            SealedBy::Unlabelled => self
                .keks
                .iter()
                .find_map(|k| k.open(kind, owner, sealed).ok().map(|p| (p, k.id)))
                .ok_or(SecretError::Unseal),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_seal_open_roundtrip_and_binding() {
        let kek = Kek::generate().unwrap();
        let sealed = kek.seal(SealedKind::CaKey, "ca-1", b"secret key").unwrap();
        assert!(!sealed.windows(10).any(|w| w == b"secret key"));
        assert_eq!(sealed_by(&sealed).unwrap(), SealedBy::Kek(kek.id()));
        assert_eq!(
            kek.open(SealedKind::CaKey, "ca-1", &sealed).unwrap().as_slice(),
            b"secret key"
        );
        // Bound to owner and kind.
        assert!(matches!(
            kek.open(SealedKind::CaKey, "ca-2", &sealed),
            Err(SecretError::Unseal)
        ));
        assert!(matches!(
            kek.open(SealedKind::OcspDelegateKey, "ca-1", &sealed),
            Err(SecretError::Unseal)
        ));
        assert!(matches!(
            kek.open(SealedKind::CaKey, "ca-1", &sealed[..5]),
            Err(SecretError::Malformed)
        ));
        assert!(matches!(
            kek.open(SealedKind::CaKey, "ca-1", &[9u8; 64]),
            Err(SecretError::Malformed)
        ));
    }

    #[test]
    fn v2_wrong_kek_and_kek_id_mismatch_are_refused() {
        let (a, b) = (Kek::generate().unwrap(), Kek::generate().unwrap());
        assert_ne!(a.id(), b.id());
        let sealed = a.seal(SealedKind::TokenSigningKey, "", b"k").unwrap();
        // The header names a; b refuses without trying.
        assert!(matches!(
            b.open(SealedKind::TokenSigningKey, "", &sealed),
            Err(SecretError::Unseal)
        ));
        // A ring without a says which KEK it lacks.
        let ring = KeyRing::new(Kek::from_base64(&b.to_base64()).unwrap(), []);
        match ring.open(SealedKind::TokenSigningKey, "", &sealed) {
            Err(SecretError::NotHeld(id, held)) => {
                assert_eq!(id, a.id());
                assert_eq!(held, b.id().to_string());
            }
            other => panic!("expected NotHeld, got {other:?}"),
        }
        // Rewriting the header's KEK id to b's: b's key is tried and the
        // header is authenticated, so it fails.
        let mut forged = sealed.clone();
        forged[1..9].copy_from_slice(&b.id().0);
        assert!(matches!(
            b.open(SealedKind::TokenSigningKey, "", &forged),
            Err(SecretError::Unseal)
        ));
        // Any flipped bit of the id makes a's own open fail too.
        let mut flipped = sealed.clone();
        flipped[3] ^= 1;
        assert!(a.open(SealedKind::TokenSigningKey, "", &flipped).is_err());
    }

    #[test]
    fn v1_blobs_stay_readable_by_any_held_kek() {
        let (old, new) = (Kek::generate().unwrap(), Kek::generate().unwrap());
        let v1 = old.seal_v1(SealedKind::OcspDelegateKey, "ca-9", b"legacy").unwrap();
        assert_eq!(v1[0], SEALED_V1);
        assert_eq!(sealed_by(&v1).unwrap(), SealedBy::Unlabelled);
        assert_eq!(
            old.open(SealedKind::OcspDelegateKey, "ca-9", &v1).unwrap().as_slice(),
            b"legacy"
        );
        assert!(matches!(
            new.open(SealedKind::OcspDelegateKey, "ca-9", &v1),
            Err(SecretError::Unseal)
        ));
        // The V1 context is what it always was: a CA key's is the CA id.
        let ca_v1 = old.seal_v1(SealedKind::CaKey, "ca-9", b"ca").unwrap();
        assert!(old.open(SealedKind::OcspDelegateKey, "ca-9", &ca_v1).is_err());
        // A ring tries every KEK for V1, new first here.
        let ring = KeyRing::new(
            Kek::from_base64(&new.to_base64()).unwrap(),
            [Kek::from_base64(&old.to_base64()).unwrap()],
        );
        let (plain, by) = ring.open(SealedKind::OcspDelegateKey, "ca-9", &v1).unwrap();
        assert_eq!((plain.as_slice(), by), (&b"legacy"[..], old.id()));
        let alone = KeyRing::new(Kek::from_base64(&new.to_base64()).unwrap(), []);
        assert!(matches!(
            alone.open(SealedKind::OcspDelegateKey, "ca-9", &v1),
            Err(SecretError::Unseal)
        ));
    }

    #[test]
    fn ring_seals_only_under_a_held_kek() {
        let (a, b) = (Kek::generate().unwrap(), Kek::generate().unwrap());
        let (a_id, b_id) = (a.id(), b.id());
        let ring = KeyRing::new(a, [Kek::from_base64(&b.to_base64()).unwrap()]);
        assert_eq!(ring.ids(), vec![a_id, b_id]);
        let sealed = ring.seal_with(b_id, SealedKind::KekCheck, "", b"cloudpki").unwrap();
        assert_eq!(sealed_by(&sealed).unwrap(), SealedBy::Kek(b_id));
        assert_eq!(ring.open(SealedKind::KekCheck, "", &sealed).unwrap().1, b_id);
        let stranger = Kek::generate().unwrap().id();
        assert!(matches!(
            ring.seal_with(stranger, SealedKind::KekCheck, "", b"x"),
            Err(SecretError::NotHeld(..))
        ));
        // The same KEK given twice is held once.
        let twice = KeyRing::new(Kek::from_base64(&b.to_base64()).unwrap(), [b]);
        assert_eq!(twice.ids(), vec![b_id]);
    }

    #[test]
    fn kek_id_is_stable_hex_and_parses_back() {
        let kek = Kek::from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
        let text = kek.id().to_string();
        assert_eq!(text.len(), 16);
        assert!(text.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(KekId::parse(&text), Some(kek.id()));
        assert_eq!(KekId::parse("zz"), None);
        assert_eq!(KekId::parse("0123456789abcdeg"), None);
        // Not a prefix of the KEK itself nor of plain SHA-256 over it.
        let plain = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &[0u8; 32]);
        assert_ne!(&plain.as_ref()[..8], &kek.id().0);
    }

    #[test]
    fn sealed_kinds_list_is_complete_and_names_parse() {
        for &k in SealedKind::ALL {
            assert_eq!(SealedKind::parse(k.name()), Some(k));
        }
        let names: std::collections::HashSet<_> = SealedKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), SealedKind::ALL.len());
    }

    #[test]
    fn base64_roundtrip_and_debug_is_redacted() {
        let kek = Kek::generate().unwrap();
        let again = Kek::from_base64(&kek.to_base64()).unwrap();
        let sealed = kek.seal(SealedKind::CaKey, "x", b"y").unwrap();
        assert_eq!(again.open(SealedKind::CaKey, "x", &sealed).unwrap().as_slice(), b"y");
        assert_eq!(format!("{kek:?}"), "Kek(..)");
        assert!(!format!("{:?}", KeyRing::new(kek, [])).contains(&*again.to_base64()));
        assert!(Kek::from_base64("c2hvcnQ=").is_err());
    }
}
