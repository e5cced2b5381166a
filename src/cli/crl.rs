//! `cloudpki crl verify`: every served CRL fetched over HTTP from the URL in
//! its CA's certificates, verified as a relying party would, and compared
//! with the store. An operator's (and a CI's) check; exits non-zero on any
//! difference.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use time::OffsetDateTime;

use super::output::Output;
use super::{CliError, Result};
use crate::domain::{CrlScope, Pki};
use crate::x509::cert::ParsedCert;
use crate::x509::crl::inspect_crl;

/// Larger CRLs are refused rather than read into memory.
const MAX_CRL: usize = 512 << 20;
const TIMEOUT: Duration = Duration::from_secs(60);

/// What one CRL check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub number: u64,
    pub entries: usize,
    pub bytes: usize,
    pub next_update: Option<OffsetDateTime>,
    /// The delta CRL's number and entries, where the CA publishes deltas.
    pub delta: Option<(u64, usize)>,
}

pub fn verify(pki: &Pki, ca: Option<&str>, o: &mut Output<'_>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Usage(format!("cannot start the HTTP client: {e}")))?;
    let mut failed = 0;
    for scope in pki.crl_scopes(ca)? {
        let mut result = runtime.block_on(check(&scope, pki.now()));
        if result.is_err() {
            // A revocation committed a moment ago may not be published yet
            // (CRLs follow within milliseconds): look once more.
            std::thread::sleep(Duration::from_secs(1));
            let again = pki.crl_scopes(Some(&scope.ca_id))?;
            if let Some(scope) = again.iter().find(|s| s.partition == scope.partition) {
                result = runtime.block_on(check(scope, pki.now()));
            }
        }
        failed += usize::from(result.is_err());
        o.crl_verified(&scope.ca_id, &scope.url, &result)?;
    }
    if failed > 0 {
        return Err(CliError::Verify(format!(
            "{failed} CRL(s) differ from what the store says"
        )));
    }
    Ok(())
}

/// Fetches and checks one CRL (a CA's `current.crl` or one partition).
async fn check(scope: &CrlScope, now: OffsetDateTime) -> std::result::Result<Verified, String> {
    let der = tokio::time::timeout(TIMEOUT, fetch(&scope.url))
        .await
        .map_err(|_| format!("no answer within {} s", TIMEOUT.as_secs()))??;
    let ca = ParsedCert::from_der(&scope.ca_cert).map_err(|e| format!("stored CA certificate: {e}"))?;
    let facts = inspect_crl(
        &der,
        &ca.tbs().subject,
        &ca.tbs().subject_public_key_info,
        &scope.url,
        scope.only_ca_certs,
    )
    .map_err(|e| e.to_string())?;
    if facts.this_update > now {
        return Err(format!("thisUpdate {} is in the future", facts.this_update));
    }
    match facts.next_update {
        Some(next) if next > now => {}
        Some(next) => return Err(format!("expired: nextUpdate {next}")),
        None => return Err("no nextUpdate".into()),
    }
    if let Some(stored) = scope.stored_number.and_then(|n| u64::try_from(n).ok()) {
        if facts.number < stored {
            return Err(format!(
                "serves CRL number {} but number {stored} is stored",
                facts.number
            ));
        }
    }
    let mut serials = facts.serials().map_err(|e| e.to_string())?;
    if facts.delta_base.is_some() {
        return Err("a complete CRL carries a Delta CRL Indicator".into());
    }
    if facts.freshest_crl != scope.delta_url {
        return Err(format!(
            "Freshest CRL {:?}, expected {:?}",
            facts.freshest_crl, scope.delta_url
        ));
    }
    let mut delta = None;
    if let Some(url) = &scope.delta_url {
        // A relying party combines the complete CRL with its delta
        // (RFC 5280 §5.2.4): the two together must list what the store says.
        let der = tokio::time::timeout(TIMEOUT, fetch(url))
            .await
            .map_err(|_| format!("delta: no answer within {} s", TIMEOUT.as_secs()))??;
        // The delta's IDP is its complete CRL's.
        let d = inspect_crl(
            &der,
            &ca.tbs().subject,
            &ca.tbs().subject_public_key_info,
            &scope.url,
            scope.only_ca_certs,
        )
        .map_err(|e| format!("delta {url}: {e}"))?;
        match d.delta_base {
            None => return Err(format!("delta {url}: no Delta CRL Indicator")),
            Some(base) if base > facts.number => {
                return Err(format!(
                    "delta {url}: base {base} is newer than the complete CRL {}",
                    facts.number
                ))
            }
            Some(_) if d.number <= facts.number => {
                return Err(format!(
                    "delta {url}: number {} is not above the complete CRL's {}",
                    d.number, facts.number
                ))
            }
            Some(_) => {}
        }
        if d.next_update.is_none_or(|n| n <= now) {
            return Err(format!("delta {url}: expired or without nextUpdate"));
        }
        let delta_serials = d.serials().map_err(|e| e.to_string())?;
        delta = Some((d.number, delta_serials.len()));
        serials.extend(delta_serials);
    }
    let listed: BTreeSet<Vec<u8>> = serials.iter().cloned().collect();
    if listed.len() != serials.len() {
        return Err("a serial is listed twice (complete CRL and delta together)".into());
    }
    // Every revocation in scope is listed, except those whose certificate
    // expired long enough before this CRL to have left it (RFC 5280 §3.3).
    let this_update = facts.this_update.unix_timestamp();
    let missing: BTreeSet<&Vec<u8>> = scope
        .revoked
        .iter()
        .filter(|(serial, not_after)| {
            not_after.saturating_add(scope.keep_expired) >= this_update && !listed.contains(*serial)
        })
        .map(|(serial, _)| serial)
        .collect();
    let extra: BTreeSet<&Vec<u8>> = listed.iter().filter(|s| !scope.revoked.contains_key(*s)).collect();
    if !missing.is_empty() || !extra.is_empty() {
        let hex = |set: &BTreeSet<&Vec<u8>>| {
            let mut v: Vec<String> = set.iter().take(5).map(|s| crate::x509::hex_upper(s)).collect();
            if set.len() > 5 {
                v.push("…".into());
            }
            v.join(", ")
        };
        return Err(format!(
            "entries differ from the store: {} revoked but not listed [{}], {} listed but not revoked [{}]",
            missing.len(),
            hex(&missing),
            extra.len(),
            hex(&extra)
        ));
    }
    Ok(Verified {
        number: facts.number,
        entries: serials.len() - delta.map_or(0, |(_, n)| n),
        bytes: der.len(),
        next_update: facts.next_update,
        delta,
    })
}

/// One HTTP/1.1 GET (CRL URLs are plain HTTP, RFC 5280 §4.2.1.13).
async fn fetch(url: &str) -> std::result::Result<Vec<u8>, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// CRL URLs are fetched".into());
    }
    let host = uri.host().ok_or("URL without a host")?.to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("connect {host}:{port}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let authority = uri.authority().map(|a| a.as_str().to_owned()).unwrap_or(host);
    let request = hyper::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(hyper::header::HOST, authority)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    if response.status() != hyper::StatusCode::OK {
        return Err(format!("HTTP {}", response.status()));
    }
    let body = Limited::new(response.into_body(), MAX_CRL)
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(body.to_bytes().to_vec())
}
