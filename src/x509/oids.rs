//! Object identifiers used by cloudpki, with their RFC of origin.

use der::asn1::ObjectIdentifier as Oid;

// RFC 8017 / RFC 4055
pub const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
pub const SHA256_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
pub const SHA384_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.12");
pub const SHA512_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.13");
// RFC 5480 / RFC 5758
pub const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
pub const ECDSA_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
pub const ECDSA_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
pub const ECDSA_SHA512: Oid = Oid::new_unwrap("1.2.840.10045.4.3.4");
pub const SECP256R1: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
pub const SECP384R1: Oid = Oid::new_unwrap("1.3.132.0.34");
pub const SECP521R1: Oid = Oid::new_unwrap("1.3.132.0.35");
pub const SECP256K1: Oid = Oid::new_unwrap("1.3.132.0.10");
// RFC 5280 §4.1.2.4 attribute types
pub const CN: Oid = Oid::new_unwrap("2.5.4.3");
pub const SERIAL_NUMBER: Oid = Oid::new_unwrap("2.5.4.5");
pub const C: Oid = Oid::new_unwrap("2.5.4.6");
pub const L: Oid = Oid::new_unwrap("2.5.4.7");
pub const ST: Oid = Oid::new_unwrap("2.5.4.8");
pub const STREET: Oid = Oid::new_unwrap("2.5.4.9");
pub const O: Oid = Oid::new_unwrap("2.5.4.10");
pub const OU: Oid = Oid::new_unwrap("2.5.4.11");
pub const TITLE: Oid = Oid::new_unwrap("2.5.4.12");
pub const POSTAL_CODE: Oid = Oid::new_unwrap("2.5.4.17");
pub const GIVEN_NAME: Oid = Oid::new_unwrap("2.5.4.42");
pub const DC: Oid = Oid::new_unwrap("0.9.2342.19200300.100.1.25");
pub const EMAIL: Oid = Oid::new_unwrap("1.2.840.113549.1.9.1");
// RFC 2985 PKCS#9
pub const EXTENSION_REQUEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.14");
// RFC 5280 §4.2.1.12 extended key usages
pub const ANY_EKU: Oid = Oid::new_unwrap("2.5.29.37.0");
pub const KP_SERVER_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.1");
pub const KP_CLIENT_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.2");
pub const KP_CODE_SIGNING: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.3");
pub const KP_EMAIL: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.4");
pub const KP_IPSEC_END_SYSTEM: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.5");
pub const KP_IPSEC_TUNNEL: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.6");
pub const KP_IPSEC_USER: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.7");
pub const KP_TIME_STAMPING: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.8");
pub const KP_OCSP_SIGNING: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.9");
/// id-kp-cmcRA (RFC 6402): a registration authority, as SCEP RA certificates say.
pub const KP_CMC_RA: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.28");
pub const KP_SMARTCARD_LOGON: Oid = Oid::new_unwrap("1.3.6.1.4.1.311.20.2.2");
// RFC 5280 §4.2.2.1 access methods
pub const AD_OCSP: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1");
pub const AD_CA_ISSUERS: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.2");
// RFC 6960 §4.2.2.2.1
pub const OCSP_NOCHECK: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1.5");
