//! X.509: keys and signing, names, certificates and CSRs.
//!
//! Everything here is sans-IO: it takes bytes and parameters and returns
//! bytes. ASN.1 goes through the RustCrypto `der` / `x509-cert` types; no DER
//! is written by hand.

pub mod cert;
pub mod chain;
pub mod crl;
pub mod csr;
pub mod keys;
pub mod names;
pub mod ocsp;
pub mod oids;
pub mod pem;
pub mod reason;
pub mod scep;

/// Refuses DER whose constructed values hold more than `max_children`
/// elements (or nest deeper than 32): decoding a SET OF sorts it, which is
/// quadratic, so untrusted input is bounded before it is decoded.
pub fn check_der_shape(der: &[u8], max_children: usize) -> Result<(), X509Error> {
    fn walk(bytes: &[u8], max: usize, depth: usize) -> Result<(), X509Error> {
        use der::{Decode, Reader, Tagged};
        if depth > 32 {
            return Err(X509Error::Malformed("DER nested too deeply"));
        }
        let mut r = der::SliceReader::new(bytes)?;
        let mut n = 0usize;
        while !r.is_finished() {
            let tlv = der::AnyRef::decode(&mut r)?;
            n += 1;
            if n > max {
                return Err(X509Error::Malformed("too many elements in one DER value"));
            }
            if tlv.tag().is_constructed() {
                walk(tlv.value(), max, depth + 1)?;
            }
        }
        Ok(())
    }
    walk(der, max_children, 0)
}

pub use keys::{HashAlgorithm, KeyAlgorithm, Signer, SoftwareKey};
pub use reason::RevocationReason;

/// What can go wrong while building or checking X.509 objects.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum X509Error {
    #[error("malformed DER: {0}")]
    Der(#[from] der::Error),
    #[error("malformed input: {0}")]
    Malformed(&'static str),
    #[error("invalid PEM: {0}")]
    Pem(String),
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
    #[error("unsupported {0}")]
    UnsupportedAlgorithm(String),
    #[error("signature does not verify")]
    BadSignature,
    #[error("key too weak: {0}")]
    WeakKey(String),
    #[error("invalid name: {0}")]
    InvalidName(String),
    #[error("invalid time: {0}")]
    Time(String),
}

/// Uppercase hex, as Graph renders thumbprints and serial numbers.
pub fn hex_upper(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02X}");
    }
    s
}

/// SHA-1 of a DER certificate, uppercase hex: Graph's `thumbprint`.
pub fn thumbprint(der: &[u8]) -> String {
    hex_upper(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref())
}

/// Parses a hex serial number as a user may type it (any case, optional
/// leading `00` sign byte, optional `:` separators) into canonical Graph form:
/// uppercase hex of the DER INTEGER contents.
pub fn normalize_serial(input: &str) -> Option<String> {
    let cleaned: String = input
        .chars()
        .filter(|c| !matches!(c, ':' | ' '))
        .collect::<String>()
        .to_ascii_uppercase();
    if cleaned.is_empty() || cleaned.len() > 80 || !cleaned.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut s = if cleaned.len() % 2 == 1 {
        format!("0{cleaned}")
    } else {
        cleaned
    };
    // Strip redundant leading zero bytes, keeping one where the next byte's
    // high bit is set (that 00 is part of the DER encoding)...
    while s.len() >= 4 && s.starts_with("00") {
        let next = u8::from_str_radix(&s[2..4], 16).ok()?;
        if next >= 0x80 {
            break;
        }
        s.drain(..2);
    }
    // ...and add it when the user left it out: serials are positive, so
    // `E41047` and `00E41047` name the same certificate.
    if u8::from_str_radix(&s[..2], 16).ok()? >= 0x80 {
        s.insert_str(0, "00");
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_normalize() {
        assert_eq!(normalize_serial("00e41047").as_deref(), Some("00E41047"));
        assert_eq!(normalize_serial("E41047").as_deref(), Some("00E41047"));
        assert_eq!(normalize_serial("0041AB").as_deref(), Some("41AB"));
        assert_eq!(normalize_serial("41:ab").as_deref(), Some("41AB"));
        assert_eq!(normalize_serial("1ab").as_deref(), Some("01AB"));
        assert_eq!(normalize_serial("zz"), None);
        assert_eq!(normalize_serial(""), None);
    }
}
