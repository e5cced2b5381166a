//! Distinguished names: building a CA subject from Graph's subject parts, and
//! rendering names the way Graph shows them.

use der::asn1::{Any, PrintableStringRef, Utf8StringRef};
use der::{Tag, Tagged};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};

use super::{oids, X509Error};

/// The subject parts Graph exposes on a CA (`commonName` required).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectParts {
    pub common_name: String,
    pub organization_name: Option<String>,
    pub organization_unit: Option<String>,
    pub country_name: Option<String>,
    pub state_name: Option<String>,
    pub locality_name: Option<String>,
}

/// RFC 5280 upper bounds (ub-*) for the attributes we write.
const UB_COMMON_NAME: usize = 64;
const UB_ORGANIZATION: usize = 64;
const UB_LOCALITY_STATE: usize = 128;

fn check_len(what: &str, value: &str, max: usize) -> Result<(), X509Error> {
    if value.trim().is_empty() {
        return Err(X509Error::InvalidName(format!("{what} must not be empty")));
    }
    if value.chars().count() > max {
        return Err(X509Error::InvalidName(format!(
            "{what} is longer than {max} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(X509Error::InvalidName(format!("{what} contains control characters")));
    }
    Ok(())
}

fn utf8(oid: der::asn1::ObjectIdentifier, value: &str) -> Result<RelativeDistinguishedName, X509Error> {
    let v = Any::encode_from(&Utf8StringRef::new(value)?)?;
    rdn(oid, v)
}

fn rdn(oid: der::asn1::ObjectIdentifier, value: Any) -> Result<RelativeDistinguishedName, X509Error> {
    let atv = AttributeTypeAndValue { oid, value };
    Ok(RelativeDistinguishedName(der::asn1::SetOfVec::try_from(vec![atv])?))
}

impl SubjectParts {
    /// Checks the parts against RFC 5280 and Cloud PKI's rules (C is two letters).
    pub fn validate(&self) -> Result<(), X509Error> {
        check_len("commonName", &self.common_name, UB_COMMON_NAME)?;
        if let Some(o) = &self.organization_name {
            check_len("organizationName", o, UB_ORGANIZATION)?;
        }
        if let Some(ou) = &self.organization_unit {
            check_len("organizationUnit", ou, UB_ORGANIZATION)?;
        }
        if let Some(st) = &self.state_name {
            check_len("stateName", st, UB_LOCALITY_STATE)?;
        }
        if let Some(l) = &self.locality_name {
            check_len("localityName", l, UB_LOCALITY_STATE)?;
        }
        if let Some(c) = &self.country_name {
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(X509Error::InvalidName(
                    "countryName must be two letters (ISO 3166)".into(),
                ));
            }
        }
        Ok(())
    }

    /// Builds the Name in the order Cloud PKI writes it: C, ST, L, O, OU, CN.
    /// C is a PrintableString (RFC 5280 §4.1.2.4), the rest UTF8String.
    pub fn to_name(&self) -> Result<Name, X509Error> {
        self.validate()?;
        let mut rdns = Vec::new();
        if let Some(c) = &self.country_name {
            let upper = c.to_ascii_uppercase();
            rdns.push(rdn(oids::C, Any::encode_from(&PrintableStringRef::new(&upper)?)?)?);
        }
        if let Some(st) = &self.state_name {
            rdns.push(utf8(oids::ST, st)?);
        }
        if let Some(l) = &self.locality_name {
            rdns.push(utf8(oids::L, l)?);
        }
        if let Some(o) = &self.organization_name {
            rdns.push(utf8(oids::O, o)?);
        }
        if let Some(ou) = &self.organization_unit {
            rdns.push(utf8(oids::OU, ou)?);
        }
        rdns.push(utf8(oids::CN, &self.common_name)?);
        Ok(RdnSequence(rdns))
    }
}

fn short_name(oid: &der::asn1::ObjectIdentifier) -> Option<&'static str> {
    Some(match *oid {
        o if o == oids::CN => "CN",
        o if o == oids::C => "C",
        o if o == oids::ST => "ST",
        o if o == oids::L => "L",
        o if o == oids::O => "O",
        o if o == oids::OU => "OU",
        o if o == oids::STREET => "STREET",
        o if o == oids::SERIAL_NUMBER => "SERIALNUMBER",
        o if o == oids::TITLE => "T",
        o if o == oids::POSTAL_CODE => "PostalCode",
        o if o == oids::GIVEN_NAME => "G",
        o if o == oids::DC => "DC",
        o if o == oids::EMAIL => "E",
        _ => return None,
    })
}

/// The string value of an attribute, for the string types names use.
pub fn attribute_string(value: &Any) -> Option<String> {
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::TeletexString => {
            std::str::from_utf8(value.value()).ok().map(str::to_owned)
        }
        Tag::BmpString => {
            let units: Vec<u16> = value
                .value()
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, ch) in v.chars().enumerate() {
        if matches!(ch, ',' | '+' | '"' | '\\' | '<' | '>' | ';') || (i == 0 && matches!(ch, '#' | ' ')) {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

fn components(name: &Name) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for rdn in &name.0 {
        for atv in rdn.0.iter() {
            let key = short_name(&atv.oid).map_or_else(|| atv.oid.to_string(), str::to_owned);
            let value =
                attribute_string(&atv.value).unwrap_or_else(|| "#".to_owned() + &super::hex_upper(atv.value.value()));
            out.push((key, value));
        }
    }
    out
}

/// Graph's `subjectName`: RDNs in encoded order, `,`-joined
/// (observed `C=GB,ST=Hampshire,L=Fair Oak,O=m7kni,OU=home,CN=m7kni.io`).
pub fn graph_subject_name(name: &Name) -> String {
    components(name)
        .into_iter()
        .map(|(k, v)| format!("{k}={}", escape(&v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Graph's leaf `issuerName`: Windows style, most specific first, `, `-joined,
/// `S` for state (observed `CN=m7kni.io, O=m7kni, OU=home, L=Fair Oak, S=Hampshire, C=GB`).
pub fn graph_issuer_name(name: &Name) -> String {
    components(name)
        .into_iter()
        .rev()
        .map(|(k, v)| format!("{}={}", if k == "ST" { "S" } else { &k }, escape(&v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first commonName in a name, if any.
pub fn common_name(name: &Name) -> Option<String> {
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == oids::CN)
        .and_then(|atv| attribute_string(&atv.value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> SubjectParts {
        SubjectParts {
            common_name: "m7kni.io".into(),
            organization_name: Some("m7kni".into()),
            organization_unit: Some("home".into()),
            country_name: Some("gb".into()),
            state_name: Some("Hampshire".into()),
            locality_name: Some("Fair Oak".into()),
        }
    }

    #[test]
    fn renders_like_graph() {
        let name = parts().to_name().unwrap();
        assert_eq!(
            graph_subject_name(&name),
            "C=GB,ST=Hampshire,L=Fair Oak,O=m7kni,OU=home,CN=m7kni.io"
        );
        assert_eq!(
            graph_issuer_name(&name),
            "CN=m7kni.io, OU=home, O=m7kni, L=Fair Oak, S=Hampshire, C=GB"
        );
        assert_eq!(common_name(&name).as_deref(), Some("m7kni.io"));
    }

    #[test]
    fn rejects_bad_parts() {
        let mut p = parts();
        p.country_name = Some("GBR".into());
        assert!(p.to_name().is_err());
        let mut p = parts();
        p.common_name = " ".into();
        assert!(p.to_name().is_err());
        let mut p = parts();
        p.common_name = "x".repeat(65);
        assert!(p.to_name().is_err());
    }

    #[test]
    fn escapes_specials() {
        let mut p = parts();
        p.organization_name = Some("Acme, Inc.".into());
        let name = p.to_name().unwrap();
        assert!(graph_subject_name(&name).contains("O=Acme\\, Inc."));
    }
}
