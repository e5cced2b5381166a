//! CA key pairs: generation, PKCS#8 import, and signing behind [`Signer`].
//!
//! aws-lc-rs does the work wherever it has a constant for the curve/hash pair
//! (RSA PKCS#1 v1.5 with SHA-2, P-256/SHA-256, P-384/SHA-384, P-521/SHA-*,
//! secp256k1/SHA-256): it signs RSA and the NIST curves several times faster
//! than the pure-Rust crates. The remaining ECDSA pairs (for example P-256
//! with SHA-512, which RFC 5758 allows) are signed over a pre-computed digest
//! with the RustCrypto curve crates.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize as AwsRsaSize;
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, KeyPair, RsaKeyPair};
use der::asn1::{AnyRef, ObjectIdentifier};
use der::{Decode, Encode};
use serde::{Deserialize, Serialize};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use zeroize::Zeroizing;

use super::oids;
use super::X509Error;

/// The CA key kinds Graph's `cloudCertificationAuthorityCertificateKeySize` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(rename = "cloudCertificationAuthorityCertificateKeySize")]
pub enum KeyAlgorithm {
    #[serde(rename = "rsa2048")]
    Rsa2048,
    #[serde(rename = "rsa3072")]
    Rsa3072,
    #[serde(rename = "rsa4096")]
    Rsa4096,
    #[serde(rename = "eCP256")]
    EcP256,
    #[serde(rename = "eCP256k")]
    EcP256k,
    #[serde(rename = "eCP384")]
    EcP384,
    #[serde(rename = "eCP521")]
    EcP521,
}

impl KeyAlgorithm {
    pub const ALL: [KeyAlgorithm; 7] = [
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa3072,
        KeyAlgorithm::Rsa4096,
        KeyAlgorithm::EcP256,
        KeyAlgorithm::EcP256k,
        KeyAlgorithm::EcP384,
        KeyAlgorithm::EcP521,
    ];

    /// Graph's member name.
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::Rsa2048 => "rsa2048",
            KeyAlgorithm::Rsa3072 => "rsa3072",
            KeyAlgorithm::Rsa4096 => "rsa4096",
            KeyAlgorithm::EcP256 => "eCP256",
            KeyAlgorithm::EcP256k => "eCP256k",
            KeyAlgorithm::EcP384 => "eCP384",
            KeyAlgorithm::EcP521 => "eCP521",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name().eq_ignore_ascii_case(s))
    }

    pub fn is_rsa(self) -> bool {
        matches!(
            self,
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096
        )
    }

    /// Approximate security strength in bits (NIST SP 800-57 part 1 table 2).
    pub fn strength_bits(self) -> u16 {
        match self {
            KeyAlgorithm::Rsa2048 => 112,
            KeyAlgorithm::Rsa3072 | KeyAlgorithm::EcP256 | KeyAlgorithm::EcP256k => 128,
            KeyAlgorithm::Rsa4096 => 152,
            KeyAlgorithm::EcP384 => 192,
            KeyAlgorithm::EcP521 => 256,
        }
    }
}

/// Graph's `cloudCertificationAuthorityHashingAlgorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "cloudCertificationAuthorityHashingAlgorithm")]
pub enum HashAlgorithm {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlgorithm {
    pub const ALL: [HashAlgorithm; 3] = [HashAlgorithm::Sha256, HashAlgorithm::Sha384, HashAlgorithm::Sha512];

    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Sha384 => "sha384",
            HashAlgorithm::Sha512 => "sha512",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.name().eq_ignore_ascii_case(s))
    }

    pub(crate) fn digest_alg(self) -> &'static aws_lc_rs::digest::Algorithm {
        match self {
            HashAlgorithm::Sha256 => &aws_lc_rs::digest::SHA256,
            HashAlgorithm::Sha384 => &aws_lc_rs::digest::SHA384,
            HashAlgorithm::Sha512 => &aws_lc_rs::digest::SHA512,
        }
    }
}

/// Anything that can sign certificates, CSRs, CRLs and OCSP responses.
///
/// Software keys implement it today; an HSM (PKCS#11) backend implements the
/// same three methods and nothing else in the crate changes.
pub trait Signer: Send + Sync {
    /// The `signatureAlgorithm` written next to every signature this key makes.
    fn signature_algorithm(&self) -> &AlgorithmIdentifierOwned;
    /// The key's SubjectPublicKeyInfo.
    fn public_key(&self) -> &SubjectPublicKeyInfoOwned;
    /// Signs `message` (hashing it with the configured hash).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, X509Error>;
}

enum Inner {
    Rsa(RsaKeyPair, &'static dyn sig::RsaEncoding),
    Ecdsa(EcdsaKeyPair),
    /// Curve/hash pairs aws-lc-rs has no constant for: sign a digest.
    P256Prehash(p256::ecdsa::SigningKey),
    P384Prehash(p384::ecdsa::SigningKey),
    K256Prehash(k256::ecdsa::SigningKey),
}

/// A private key held in memory. Its `Debug` output never shows key material.
pub struct SoftwareKey {
    kind: KeyAlgorithm,
    hash: HashAlgorithm,
    inner: Inner,
    spki: SubjectPublicKeyInfoOwned,
    sig_alg: AlgorithmIdentifierOwned,
    rng: SystemRandom,
}

impl std::fmt::Debug for SoftwareKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareKey")
            .field("kind", &self.kind)
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

fn crypto(what: &'static str) -> impl Fn(aws_lc_rs::error::Unspecified) -> X509Error {
    move |_| X509Error::Crypto(what)
}

fn native_ecdsa(kind: KeyAlgorithm, hash: HashAlgorithm) -> Option<&'static sig::EcdsaSigningAlgorithm> {
    use HashAlgorithm::*;
    use KeyAlgorithm::*;
    Some(match (kind, hash) {
        (EcP256, Sha256) => &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
        (EcP384, Sha384) => &sig::ECDSA_P384_SHA384_ASN1_SIGNING,
        (EcP521, Sha256) => &sig::ECDSA_P521_SHA256_ASN1_SIGNING,
        (EcP521, Sha384) => &sig::ECDSA_P521_SHA384_ASN1_SIGNING,
        (EcP521, Sha512) => &sig::ECDSA_P521_SHA512_ASN1_SIGNING,
        (EcP256k, Sha256) => &sig::ECDSA_P256K1_SHA256_ASN1_SIGNING,
        _ => return None,
    })
}

/// The aws-lc-rs algorithm used only to parse / generate a curve's key; the
/// hash half of the constant is irrelevant for that.
fn curve_alg(kind: KeyAlgorithm) -> Option<&'static sig::EcdsaSigningAlgorithm> {
    Some(match kind {
        KeyAlgorithm::EcP256 => &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
        KeyAlgorithm::EcP384 => &sig::ECDSA_P384_SHA384_ASN1_SIGNING,
        KeyAlgorithm::EcP521 => &sig::ECDSA_P521_SHA512_ASN1_SIGNING,
        KeyAlgorithm::EcP256k => &sig::ECDSA_P256K1_SHA256_ASN1_SIGNING,
        _ => return None,
    })
}

/// Generates a new key and returns it as PKCS#8 DER (zeroized on drop).
pub fn generate_pkcs8(kind: KeyAlgorithm) -> Result<Zeroizing<Vec<u8>>, X509Error> {
    let der = match kind {
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
            let size = match kind {
                KeyAlgorithm::Rsa2048 => AwsRsaSize::Rsa2048,
                KeyAlgorithm::Rsa3072 => AwsRsaSize::Rsa3072,
                _ => AwsRsaSize::Rsa4096,
            };
            let kp = RsaKeyPair::generate(size).map_err(crypto("RSA key generation"))?;
            let der: Pkcs8V1Der = kp.as_der().map_err(crypto("RSA key export"))?;
            der.as_ref().to_vec()
        }
        _ => {
            let alg = curve_alg(kind).ok_or(X509Error::Crypto("unknown curve"))?;
            let kp = EcdsaKeyPair::generate(alg).map_err(crypto("EC key generation"))?;
            kp.to_pkcs8v1().map_err(crypto("EC key export"))?.as_ref().to_vec()
        }
    };
    Ok(Zeroizing::new(der))
}

fn rsa_encoding(hash: HashAlgorithm) -> &'static dyn sig::RsaEncoding {
    match hash {
        HashAlgorithm::Sha256 => &sig::RSA_PKCS1_SHA256,
        HashAlgorithm::Sha384 => &sig::RSA_PKCS1_SHA384,
        HashAlgorithm::Sha512 => &sig::RSA_PKCS1_SHA512,
    }
}

/// `signatureAlgorithm` for a key kind and hash (RFC 4055 / RFC 5758).
pub fn signature_algorithm(kind: KeyAlgorithm, hash: HashAlgorithm) -> AlgorithmIdentifierOwned {
    if kind.is_rsa() {
        let oid = match hash {
            HashAlgorithm::Sha256 => oids::SHA256_WITH_RSA,
            HashAlgorithm::Sha384 => oids::SHA384_WITH_RSA,
            HashAlgorithm::Sha512 => oids::SHA512_WITH_RSA,
        };
        // RFC 4055 §5: the parameters MUST be NULL for PKCS#1 v1.5.
        AlgorithmIdentifierOwned {
            oid,
            parameters: Some(AnyRef::NULL.into()),
        }
    } else {
        let oid = match hash {
            HashAlgorithm::Sha256 => oids::ECDSA_SHA256,
            HashAlgorithm::Sha384 => oids::ECDSA_SHA384,
            HashAlgorithm::Sha512 => oids::ECDSA_SHA512,
        };
        // RFC 5758 §3.2: the parameters MUST be absent for ECDSA.
        AlgorithmIdentifierOwned { oid, parameters: None }
    }
}

impl SoftwareKey {
    /// Generates a fresh key; returns it with its PKCS#8 encoding for sealing.
    pub fn generate(kind: KeyAlgorithm, hash: HashAlgorithm) -> Result<(Self, Zeroizing<Vec<u8>>), X509Error> {
        let pkcs8 = generate_pkcs8(kind)?;
        let key = Self::from_pkcs8(kind, hash, &pkcs8)?;
        Ok((key, pkcs8))
    }

    /// Loads a PKCS#8 key of the given kind, to sign with the given hash.
    pub fn from_pkcs8(kind: KeyAlgorithm, hash: HashAlgorithm, pkcs8: &[u8]) -> Result<Self, X509Error> {
        let (inner, spki_der) = if kind.is_rsa() {
            let kp = RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| X509Error::Crypto("RSA key import"))?;
            let spki = kp
                .public_key()
                .as_der()
                .map_err(crypto("RSA public key export"))?
                .as_ref()
                .to_vec();
            let expected_bits = match kind {
                KeyAlgorithm::Rsa2048 => 2048,
                KeyAlgorithm::Rsa3072 => 3072,
                _ => 4096,
            };
            if kp.public_modulus_len() * 8 != expected_bits {
                return Err(X509Error::Crypto("RSA key size does not match its kind"));
            }
            (Inner::Rsa(kp, rsa_encoding(hash)), spki)
        } else {
            let curve = curve_alg(kind).ok_or(X509Error::Crypto("unknown curve"))?;
            // Parse once with aws-lc-rs: it validates the key and gives the SPKI.
            let parsed = EcdsaKeyPair::from_pkcs8(curve, pkcs8).map_err(|_| X509Error::Crypto("EC key import"))?;
            let spki = parsed
                .public_key()
                .as_der()
                .map_err(crypto("EC public key export"))?
                .as_ref()
                .to_vec();
            let inner = match native_ecdsa(kind, hash) {
                Some(alg) => {
                    Inner::Ecdsa(EcdsaKeyPair::from_pkcs8(alg, pkcs8).map_err(|_| X509Error::Crypto("EC key import"))?)
                }
                None => prehash_key(kind, pkcs8)?,
            };
            (inner, spki)
        };
        let spki = SubjectPublicKeyInfoOwned::from_der(&spki_der)?;
        Ok(SoftwareKey {
            kind,
            hash,
            inner,
            spki,
            sig_alg: signature_algorithm(kind, hash),
            rng: SystemRandom::new(),
        })
    }

    pub fn kind(&self) -> KeyAlgorithm {
        self.kind
    }

    pub fn hash(&self) -> HashAlgorithm {
        self.hash
    }
}

fn prehash_key(kind: KeyAlgorithm, pkcs8: &[u8]) -> Result<Inner, X509Error> {
    use p256::pkcs8::DecodePrivateKey;
    let bad = |_| X509Error::Crypto("EC key import");
    Ok(match kind {
        KeyAlgorithm::EcP256 => Inner::P256Prehash(p256::ecdsa::SigningKey::from_pkcs8_der(pkcs8).map_err(bad)?),
        KeyAlgorithm::EcP384 => Inner::P384Prehash(p384::ecdsa::SigningKey::from_pkcs8_der(pkcs8).map_err(bad)?),
        KeyAlgorithm::EcP256k => Inner::K256Prehash(k256::ecdsa::SigningKey::from_pkcs8_der(pkcs8).map_err(bad)?),
        _ => return Err(X509Error::Crypto("no signer for this curve and hash")),
    })
}

impl Signer for SoftwareKey {
    fn signature_algorithm(&self) -> &AlgorithmIdentifierOwned {
        &self.sig_alg
    }

    fn public_key(&self) -> &SubjectPublicKeyInfoOwned {
        &self.spki
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, X509Error> {
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        let digest = || aws_lc_rs::digest::digest(self.hash.digest_alg(), message);
        let failed = |_| X509Error::Crypto("signing");
        match &self.inner {
            Inner::Rsa(kp, enc) => {
                let mut out = vec![0u8; kp.public_modulus_len()];
                kp.sign(*enc, &self.rng, message, &mut out)
                    .map_err(crypto("RSA signing"))?;
                Ok(out)
            }
            Inner::Ecdsa(kp) => Ok(kp
                .sign(&self.rng, message)
                .map_err(crypto("ECDSA signing"))?
                .as_ref()
                .to_vec()),
            Inner::P256Prehash(k) => {
                let s: p256::ecdsa::Signature = k.sign_prehash(digest().as_ref()).map_err(failed)?;
                Ok(s.to_der().as_bytes().to_vec())
            }
            Inner::P384Prehash(k) => {
                let s: p384::ecdsa::Signature = k.sign_prehash(digest().as_ref()).map_err(failed)?;
                Ok(s.to_der().as_bytes().to_vec())
            }
            Inner::K256Prehash(k) => {
                let s: k256::ecdsa::Signature = k.sign_prehash(digest().as_ref()).map_err(failed)?;
                Ok(s.to_der().as_bytes().to_vec())
            }
        }
    }
}

/// Which [`KeyAlgorithm`] a SubjectPublicKeyInfo holds, if it is one we name.
pub fn key_algorithm_of(spki: &SubjectPublicKeyInfoOwned) -> Result<KeyAlgorithm, X509Error> {
    if spki.algorithm.oid == oids::RSA_ENCRYPTION {
        let bits = rsa_modulus_bits(spki)?;
        return match bits {
            2048 => Ok(KeyAlgorithm::Rsa2048),
            3072 => Ok(KeyAlgorithm::Rsa3072),
            4096 => Ok(KeyAlgorithm::Rsa4096),
            _ => Err(X509Error::WeakKey(format!("RSA-{bits} is not a supported key size"))),
        };
    }
    if spki.algorithm.oid == oids::EC_PUBLIC_KEY {
        let curve = ec_curve(spki)?;
        return match curve {
            c if c == oids::SECP256R1 => Ok(KeyAlgorithm::EcP256),
            c if c == oids::SECP384R1 => Ok(KeyAlgorithm::EcP384),
            c if c == oids::SECP521R1 => Ok(KeyAlgorithm::EcP521),
            c if c == oids::SECP256K1 => Ok(KeyAlgorithm::EcP256k),
            c => Err(X509Error::UnsupportedAlgorithm(format!("elliptic curve {c}"))),
        };
    }
    Err(X509Error::UnsupportedAlgorithm(format!(
        "public key algorithm {}",
        spki.algorithm.oid
    )))
}

/// Security strength of an arbitrary public key; used to refuse weak CSRs.
/// RSA keys of other sizes than the three CA sizes are rated by modulus length.
pub fn strength_bits(spki: &SubjectPublicKeyInfoOwned) -> Result<u16, X509Error> {
    if spki.algorithm.oid == oids::RSA_ENCRYPTION {
        let bits = rsa_modulus_bits(spki)?;
        return Ok(match bits {
            0..=1023 => 0,
            1024..=2047 => 80,
            2048..=3071 => 112,
            3072..=4095 => 128,
            _ => 152,
        });
    }
    key_algorithm_of(spki).map(KeyAlgorithm::strength_bits)
}

/// RFC 8017 A.1.1:
/// ```text
/// RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
/// ```
#[derive(der::Sequence)]
struct RsaPublicKey<'a> {
    modulus: der::asn1::UintRef<'a>,
    public_exponent: der::asn1::UintRef<'a>,
}

fn rsa_modulus_bits(spki: &SubjectPublicKeyInfoOwned) -> Result<u32, X509Error> {
    let raw = spki
        .subject_public_key
        .as_bytes()
        .ok_or(X509Error::Malformed("RSA public key bit string"))?;
    let key = RsaPublicKey::from_der(raw)?;
    let m = key.modulus.as_bytes();
    let _ = key.public_exponent;
    let lead = m.first().copied().unwrap_or(0);
    Ok((m.len() as u32) * 8 - lead.leading_zeros())
}

fn ec_curve(spki: &SubjectPublicKeyInfoOwned) -> Result<ObjectIdentifier, X509Error> {
    let params = spki
        .algorithm
        .parameters
        .as_ref()
        .ok_or(X509Error::Malformed("EC key without named curve"))?;
    Ok(params.decode_as::<ObjectIdentifier>()?)
}

/// Verifies `signature` over `message` with `spki`, for the signature
/// algorithms we accept from the outside (CSRs, externally signed CA
/// certificates): RSA PKCS#1 v1.5 and ECDSA, with SHA-256/384/512.
/// SHA-1 and anything else is refused, as Cloud PKI does.
pub fn verify_signature(
    spki: &SubjectPublicKeyInfoOwned,
    algorithm: &AlgorithmIdentifierOwned,
    message: &[u8],
    signature: &[u8],
) -> Result<(), X509Error> {
    let hash = match algorithm.oid {
        o if o == oids::SHA256_WITH_RSA || o == oids::ECDSA_SHA256 => HashAlgorithm::Sha256,
        o if o == oids::SHA384_WITH_RSA || o == oids::ECDSA_SHA384 => HashAlgorithm::Sha384,
        o if o == oids::SHA512_WITH_RSA || o == oids::ECDSA_SHA512 => HashAlgorithm::Sha512,
        o => return Err(X509Error::UnsupportedAlgorithm(format!("signature algorithm {o}"))),
    };
    let is_rsa_sig = [oids::SHA256_WITH_RSA, oids::SHA384_WITH_RSA, oids::SHA512_WITH_RSA].contains(&algorithm.oid);
    let key_bytes = spki
        .subject_public_key
        .as_bytes()
        .ok_or(X509Error::Malformed("public key bit string"))?;
    let bad = X509Error::BadSignature;
    if is_rsa_sig {
        if spki.algorithm.oid != oids::RSA_ENCRYPTION {
            return Err(bad);
        }
        let alg: &dyn sig::VerificationAlgorithm = match hash {
            HashAlgorithm::Sha256 => &sig::RSA_PKCS1_2048_8192_SHA256,
            HashAlgorithm::Sha384 => &sig::RSA_PKCS1_2048_8192_SHA384,
            HashAlgorithm::Sha512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        };
        return sig::UnparsedPublicKey::new(alg, key_bytes)
            .verify(message, signature)
            .map_err(|_| bad);
    }
    let kind = key_algorithm_of(spki)?;
    use HashAlgorithm::*;
    use KeyAlgorithm::*;
    let alg: &dyn sig::VerificationAlgorithm = match (kind, hash) {
        (EcP256, Sha256) => &sig::ECDSA_P256_SHA256_ASN1,
        (EcP256, Sha384) => &sig::ECDSA_P256_SHA384_ASN1,
        (EcP256, Sha512) => &sig::ECDSA_P256_SHA512_ASN1,
        (EcP384, Sha256) => &sig::ECDSA_P384_SHA256_ASN1,
        (EcP384, Sha384) => &sig::ECDSA_P384_SHA384_ASN1,
        (EcP384, Sha512) => &sig::ECDSA_P384_SHA512_ASN1,
        (EcP521, Sha256) => &sig::ECDSA_P521_SHA256_ASN1,
        (EcP521, Sha384) => &sig::ECDSA_P521_SHA384_ASN1,
        (EcP521, Sha512) => &sig::ECDSA_P521_SHA512_ASN1,
        (EcP256k, Sha256) => &sig::ECDSA_P256K1_SHA256_ASN1,
        (EcP256k, _) => {
            use k256::ecdsa::signature::hazmat::PrehashVerifier;
            let vk = k256::ecdsa::VerifyingKey::from_sec1_bytes(key_bytes).map_err(|_| bad)?;
            let s = k256::ecdsa::Signature::from_der(signature).map_err(|_| X509Error::BadSignature)?;
            let d = aws_lc_rs::digest::digest(hash.digest_alg(), message);
            return vk.verify_prehash(d.as_ref(), &s).map_err(|_| X509Error::BadSignature);
        }
        _ => return Err(bad),
    };
    sig::UnparsedPublicKey::new(alg, key_bytes)
        .verify(message, signature)
        .map_err(|_| X509Error::BadSignature)
}

/// A signed ASN.1 structure (`SEQUENCE { tbs, algorithm, signature }`, the
/// shape of Certificate, CertificationRequest and CertificateList) with the
/// to-be-signed part kept as its original bytes: a signature covers exactly
/// what the signer encoded, which a decode/re-encode round trip need not
/// reproduce (non-sorted SETs, BER leftovers in attribute values).
#[derive(der::Sequence)]
pub struct SignedRaw<'a> {
    pub tbs: der::AnyRef<'a>,
    pub algorithm: spki::AlgorithmIdentifier<der::AnyRef<'a>>,
    pub signature: der::asn1::BitStringRef<'a>,
}

/// Verifies the signature of a signed structure given as DER.
pub fn verify_signed_der(der: &[u8], signer: &SubjectPublicKeyInfoOwned) -> Result<(), X509Error> {
    let raw = SignedRaw::from_der(der)?;
    let tbs = raw.tbs.to_der()?;
    let alg = AlgorithmIdentifierOwned {
        oid: raw.algorithm.oid,
        parameters: raw.algorithm.parameters.map(Into::into),
    };
    let sig = raw
        .signature
        .as_bytes()
        .ok_or(X509Error::Malformed("signature bit string"))?;
    verify_signature(signer, &alg, &tbs, sig)
}

/// DER of a SubjectPublicKeyInfo, for key comparisons.
pub fn spki_der(spki: &SubjectPublicKeyInfoOwned) -> Result<Vec<u8>, X509Error> {
    Ok(spki.to_der()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_and_hash_signs_and_verifies() {
        for kind in [
            KeyAlgorithm::Rsa2048,
            KeyAlgorithm::EcP256,
            KeyAlgorithm::EcP256k,
            KeyAlgorithm::EcP384,
            KeyAlgorithm::EcP521,
        ] {
            let pkcs8 = generate_pkcs8(kind).unwrap();
            for hash in HashAlgorithm::ALL {
                let key = SoftwareKey::from_pkcs8(kind, hash, &pkcs8).unwrap();
                let sig = key.sign(b"message").unwrap();
                verify_signature(key.public_key(), key.signature_algorithm(), b"message", &sig)
                    .unwrap_or_else(|e| panic!("{kind:?}/{hash:?}: {e}"));
                assert!(verify_signature(key.public_key(), key.signature_algorithm(), b"other", &sig).is_err());
                assert_eq!(key_algorithm_of(key.public_key()).unwrap(), kind);
            }
        }
    }

    #[test]
    fn debug_never_shows_key_material() {
        let (key, _) = SoftwareKey::generate(KeyAlgorithm::EcP256, HashAlgorithm::Sha256).unwrap();
        let s = format!("{key:?}");
        assert_eq!(s, "SoftwareKey { kind: EcP256, hash: Sha256, .. }");
    }
}
