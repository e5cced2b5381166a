//! PEM in and out. Files from operators come as PEM or DER; we accept both.

use base64ct::Encoding;
use der::pem::LineEnding;

use super::X509Error;

/// Encodes DER as one PEM block.
pub fn encode(label: &'static str, der: &[u8]) -> Result<String, X509Error> {
    der::pem::encode_string(label, LineEnding::LF, der).map_err(|e| X509Error::Pem(e.to_string()))
}

/// Returns every DER document in `input`: the PEM blocks carrying one of
/// `labels` (others, such as keys, are skipped), or `input` itself when it
/// is not PEM. Also accepts bare base64 (as Graph's JSON bodies carry it).
pub fn decode_all(input: &[u8], labels: &[&str]) -> Result<Vec<Vec<u8>>, X509Error> {
    let text = std::str::from_utf8(input).ok();
    let Some(text) = text.filter(|t| t.contains("-----BEGIN ")) else {
        if let Some(t) = text {
            let compact: String = t.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            if !compact.is_empty()
                && compact
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
            {
                if let Ok(der) = base64ct::Base64::decode_vec(&compact) {
                    return Ok(vec![der]);
                }
            }
        }
        return Ok(vec![input.to_vec()]);
    };
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let block = &rest[start..];
        let label_end = block[11..]
            .find("-----")
            .ok_or_else(|| X509Error::Pem("unterminated BEGIN line".into()))?;
        let label = &block[11..11 + label_end];
        let end_marker = format!("-----END {label}-----");
        let end = block
            .find(&end_marker)
            .ok_or_else(|| X509Error::Pem(format!("missing END line for {label}")))?;
        let pem_block = &block[..end + end_marker.len()];
        if labels.contains(&label) {
            let (_, der) = der::pem::decode_vec(pem_block.as_bytes()).map_err(|e| X509Error::Pem(e.to_string()))?;
            out.push(der);
        }
        rest = &block[end + end_marker.len()..];
    }
    if out.is_empty() {
        return Err(X509Error::Pem(format!("no PEM block labelled {}", labels.join(" or "))));
    }
    Ok(out)
}

/// Exactly one DER document from PEM or DER input.
pub fn decode_one(input: &[u8], labels: &[&str]) -> Result<Vec<u8>, X509Error> {
    let mut all = decode_all(input, labels)?;
    if all.len() != 1 {
        return Err(X509Error::Pem(format!(
            "expected one {}, found {}",
            labels.first().unwrap_or(&"document"),
            all.len()
        )));
    }
    Ok(all.remove(0))
}
