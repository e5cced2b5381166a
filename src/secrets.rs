//! The key-encryption key (KEK) and sealing of CA private keys at rest.
//!
//! Keys are sealed with AES-256-GCM under the KEK, with the owning CA's id as
//! associated data so a sealed key cannot be moved to another CA's row. The
//! KEK comes from `CLOUDPKI_KEK` (base64 of 32 bytes), from a file named in
//! the configuration, or, for the zero-setup default, from a `kek` file that
//! `init` creates in the data directory with mode 0600.

use std::path::Path;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64ct::{Base64, Encoding};
use zeroize::Zeroizing;

/// Format byte written before every sealed blob, so the scheme can evolve.
const SEALED_V1: u8 = 1;
const KEK_LEN: usize = 32;

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
    #[error("random number generator failed")]
    Rng,
    #[error("this node holds no key-encryption key (responder role): it cannot open or seal keys")]
    NoKek,
}

/// The key-encryption key. Never printed, zeroed on drop.
pub struct Kek(Zeroizing<[u8; KEK_LEN]>);

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(..)")
    }
}

impl Kek {
    /// Parses base64 text (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, SecretError> {
        let bytes = Zeroizing::new(Base64::decode_vec(text.trim()).map_err(|_| SecretError::BadKek)?);
        let arr: [u8; KEK_LEN] = bytes.as_slice().try_into().map_err(|_| SecretError::BadKek)?;
        Ok(Kek(Zeroizing::new(arr)))
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
        Ok(Kek(k))
    }

    /// Base64 text, for writing the generated KEK file once.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(Base64::encode_string(self.0.as_ref()))
    }

    fn key(&self) -> Result<LessSafeKey, SecretError> {
        let unbound = UnboundKey::new(&AES_256_GCM, self.0.as_ref()).map_err(|_| SecretError::BadKek)?;
        Ok(LessSafeKey::new(unbound))
    }

    /// Seals `plaintext`, binding it to `context` (the owner's id).
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| SecretError::Rng)?;
        let mut buf = plaintext.to_vec();
        self.key()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .map_err(|_| SecretError::Rng)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        out.push(SEALED_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        // The plaintext copy in `buf` was encrypted in place; nothing to wipe.
        Ok(out)
    }

    /// Opens a blob made by [`Kek::seal`] with the same `context`.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        if sealed.len() < 1 + NONCE_LEN + AES_256_GCM.tag_len() || sealed[0] != SEALED_V1 {
            return Err(SecretError::Malformed);
        }
        let nonce: [u8; NONCE_LEN] = sealed[1..1 + NONCE_LEN]
            .try_into()
            .map_err(|_| SecretError::Malformed)?;
        let mut buf = Zeroizing::new(sealed[1 + NONCE_LEN..].to_vec());
        let len = self
            .key()?
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .map_err(|_| SecretError::Unseal)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_binding() {
        let kek = Kek::generate().unwrap();
        let sealed = kek.seal("ca-1", b"secret key").unwrap();
        assert!(!sealed.windows(10).any(|w| w == b"secret key"));
        assert_eq!(kek.open("ca-1", &sealed).unwrap().as_slice(), b"secret key");
        assert!(matches!(kek.open("ca-2", &sealed), Err(SecretError::Unseal)));
        let other = Kek::generate().unwrap();
        assert!(matches!(other.open("ca-1", &sealed), Err(SecretError::Unseal)));
        assert!(matches!(kek.open("ca-1", &sealed[..5]), Err(SecretError::Malformed)));
    }

    #[test]
    fn base64_roundtrip_and_debug_is_redacted() {
        let kek = Kek::generate().unwrap();
        let again = Kek::from_base64(&kek.to_base64()).unwrap();
        let sealed = kek.seal("x", b"y").unwrap();
        assert_eq!(again.open("x", &sealed).unwrap().as_slice(), b"y");
        assert_eq!(format!("{kek:?}"), "Kek(..)");
        assert!(Kek::from_base64("c2hvcnQ=").is_err());
    }
}
