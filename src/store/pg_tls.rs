//! TLS to PostgreSQL with libpq's `sslmode` and `sslrootcert`.
//!
//! tokio-postgres knows only `sslmode=disable|prefer|require`, rejects
//! `verify-ca` and `verify-full`, and has no `sslrootcert`. So
//! [`PgConnector::parse`] takes those two parameters out of the database URL
//! (URL or `key=value` form) itself, hands the rest to tokio-postgres, and
//! builds one rustls client configuration (aws-lc-rs) that verifies the
//! server the way the mode asks. Every connection a store makes (pool,
//! LISTEN thread, leader-lock session) goes through the one
//! [`PgConnector::connect`], so they all share the same settings.
//!
//! | sslmode | encrypted | chain checked against sslrootcert | host name checked |
//! |---|---|---|---|
//! | `disable` | no | – | – |
//! | `prefer` (default) | if the server offers TLS | only if sslrootcert is given | no |
//! | `require` | yes | only if sslrootcert is given | no |
//! | `verify-ca` | yes | yes | no |
//! | `verify-full` | yes | yes | yes |
//!
//! Like libpq, `verify-*` without `sslrootcert` uses `~/.postgresql/root.crt`
//! (and fails clearly when it is absent). Not supported: client certificates
//! (`sslcert`/`sslkey`), `sslrootcert=system`, `sslmode=allow`, and the
//! `PGSSL*` environment variables.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use postgres::config::SslMode as TransportMode;
use postgres::{Client, Config, NoTls};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`, as far as cloudpki supports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(s: &str) -> Result<SslMode, String> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => {
                return Err(
                    "sslmode=allow is not supported; use disable, prefer, require, verify-ca or verify-full".into(),
                )
            }
            other => {
                return Err(format!(
                    "unknown sslmode {other:?}: expected disable, prefer, require, verify-ca or verify-full"
                ))
            }
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// What tokio-postgres itself is told: whether TLS is tried or required.
    /// Verification is ours (the rustls configuration).
    fn transport(self) -> TransportMode {
        match self {
            SslMode::Disable => TransportMode::Disable,
            SslMode::Prefer => TransportMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => TransportMode::Require,
        }
    }
}

/// The TLS parameters taken out of a database URL, and the URL without them.
#[derive(Debug, PartialEq, Eq)]
struct Split {
    rest: String,
    sslmode: Option<String>,
    sslrootcert: Option<String>,
}

/// Takes `sslmode` and `sslrootcert` out of `url`, in either of libpq's
/// forms. Anything this does not understand is left for tokio-postgres's
/// parser to report. (Values are never echoed in errors: the URL may hold a
/// password.)
fn split_tls_params(url: &str) -> Split {
    let url = url.trim();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        split_uri(url)
    } else {
        split_key_values(url)
    }
}

fn split_uri(url: &str) -> Split {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => {
            return Split {
                rest: url.to_owned(),
                sslmode: None,
                sslrootcert: None,
            }
        }
    };
    let (mut sslmode, mut sslrootcert) = (None, None);
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        match decode(key).as_str() {
            // Later occurrences win, as in libpq.
            "sslmode" => sslmode = Some(decode(value)),
            "sslrootcert" => sslrootcert = Some(decode(value)),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Split {
        rest,
        sslmode,
        sslrootcert,
    }
}

/// `key = value` pairs separated by white space; values may be
/// single-quoted, with `\'` and `\\` escapes (libpq's conninfo syntax).
fn split_key_values(s: &str) -> Split {
    let unchanged = || Split {
        rest: s.to_owned(),
        sslmode: None,
        sslrootcert: None,
    };
    let (mut sslmode, mut sslrootcert) = (None, None);
    let mut kept: Vec<&str> = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    let skip_ws = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    loop {
        i = skip_ws(i);
        if i >= bytes.len() {
            break;
        }
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &s[start..i];
        i = skip_ws(i);
        if i >= bytes.len() || bytes[i] != b'=' {
            return unchanged();
        }
        i = skip_ws(i + 1);
        let mut value = Vec::new();
        if i < bytes.len() && bytes[i] == b'\'' {
            i += 1;
            loop {
                match bytes.get(i) {
                    None => return unchanged(), // unterminated quote
                    Some(b'\'') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < bytes.len() => {
                        value.push(bytes[i + 1]);
                        i += 2;
                    }
                    Some(&b) => {
                        value.push(b);
                        i += 1;
                    }
                }
            }
        } else {
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                if bytes[i] == b'\\' && i + 1 < bytes.len() {
                    i += 1;
                }
                value.push(bytes[i]);
                i += 1;
            }
        }
        let value = String::from_utf8_lossy(&value).into_owned();
        match key {
            "sslmode" => sslmode = Some(value),
            "sslrootcert" => sslrootcert = Some(value),
            _ => kept.push(&s[start..i]),
        }
    }
    Split {
        rest: kept.join(" "),
        sslmode,
        sslrootcert,
    }
}

/// How a store reaches its server: the tokio-postgres configuration and the
/// TLS connector every one of its connections uses.
#[derive(Clone)]
pub struct PgConnector {
    config: Config,
    /// `None` for `sslmode=disable`.
    tls: Option<MakeRustlsConnect>,
    mode: SslMode,
}

impl PgConnector {
    /// Parses `url` with its TLS parameters and loads the root certificates
    /// it names. Errors are meant for the operator and never quote the URL.
    pub fn parse(url: &str) -> Result<PgConnector, String> {
        let split = split_tls_params(url);
        let mut config: Config = split.rest.parse().map_err(|e| format!("invalid PostgreSQL URL: {e}"))?;
        let mode = match &split.sslmode {
            Some(m) => SslMode::parse(m)?,
            None => SslMode::Prefer,
        };
        config.ssl_mode(mode.transport());
        let root_file = match (&split.sslrootcert, mode) {
            (_, SslMode::Disable) => None,
            (Some(path), _) if path == "system" => {
                return Err("sslrootcert=system is not supported: give the path of a PEM file".into())
            }
            (Some(path), _) => Some(PathBuf::from(path)),
            (None, SslMode::VerifyCa | SslMode::VerifyFull) => Some(default_root_cert(mode)?),
            (None, _) => None,
        };
        let tls = match mode {
            SslMode::Disable => None,
            _ => {
                let roots = root_file.as_deref().map(load_roots).transpose()?;
                Some(MakeRustlsConnect::new(client_config(mode, roots)?))
            }
        };
        Ok(PgConnector { config, tls, mode })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Fills in what the URL left unset.
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.config
    }

    pub fn ssl_mode(&self) -> SslMode {
        self.mode
    }

    /// Opens one connection with the store's TLS settings.
    pub fn connect(&self) -> Result<Client, postgres::Error> {
        match &self.tls {
            None => self.config.connect(NoTls),
            Some(tls) => self.config.connect(tls.clone()),
        }
    }
}

/// libpq's default `sslrootcert`.
fn default_root_cert(mode: SslMode) -> Result<PathBuf, String> {
    let missing = |where_: &str| {
        format!(
            "sslmode={} needs the CA certificate that issued the server's: set sslrootcert=PATH \
             in the database URL ({where_})",
            mode.as_str()
        )
    };
    let home = dirs::home_dir().ok_or_else(|| missing("no home directory for the default ~/.postgresql/root.crt"))?;
    let path = home.join(".postgresql").join("root.crt");
    if !path.exists() {
        return Err(missing(&format!("the default, {}, does not exist", path.display())));
    }
    Ok(path)
}

fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let what = |e: &dyn std::fmt::Display| format!("sslrootcert {}: {e}", path.display());
    let pem = std::fs::read(path).map_err(|e| what(&format_args!("cannot read it: {e}")))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| what(&format_args!("not a PEM certificate file: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| what(&format_args!("unusable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(what(&"holds no PEM certificate"));
    }
    Ok(roots)
}

fn client_config(mode: SslMode, roots: Option<RootCertStore>) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Verifier {
        // `require` (and `prefer`) with an sslrootcert check the chain, as
        // libpq does for an existing root certificate file: sslmode=require
        // with sslrootcert behaves as verify-ca. (libpq also does so when only
        // its default ~/.postgresql/root.crt exists; we verify only against
        // a file the URL names, so a service's home directory never changes
        // what it accepts.)
        roots: roots.map(Arc::new),
        check_host: mode == SslMode::VerifyFull,
        provider: provider.clone(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // As libpq: PostgreSQL 17 requires this ALPN for `sslnegotiation=direct`;
    // older servers ignore it.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(config)
}

/// Checks the server's certificate as the sslmode asks: nothing, the chain
/// to sslrootcert, or the chain and the host name. The handshake signature
/// is always checked, so the server holds the key of what it presented.
#[derive(Debug)]
struct Verifier {
    /// `None`: encryption only (`prefer`/`require` without sslrootcert).
    roots: Option<Arc<RootCertStore>>,
    check_host: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(roots) = &self.roots else {
            return Ok(ServerCertVerified::assertion());
        };
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        if self.check_host {
            rustls::client::verify_server_name(&cert, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// An operator's sentence for a failed TLS handshake, when `e` is one:
/// which check refused the server's certificate and what to change.
pub fn describe_tls_error(e: &postgres::Error) -> Option<String> {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let inner = match c.downcast_ref::<std::io::Error>() {
            // tokio-rustls wraps rustls's error in an io::Error, whose
            // source() skips it.
            Some(io) => io.get_ref().map(|e| e as &(dyn std::error::Error + 'static)),
            None => Some(c),
        };
        if let Some(tls) = inner.and_then(|e| e.downcast_ref::<rustls::Error>()) {
            return Some(explain(tls));
        }
        cause = c.source();
    }
    None
}

fn explain(e: &rustls::Error) -> String {
    let rustls::Error::InvalidCertificate(cert) = e else {
        return format!("TLS handshake with PostgreSQL failed: {e}");
    };
    match cert {
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => format!(
            "the PostgreSQL server's certificate does not match the host name in the database URL \
             (sslmode=verify-full): {cert}"
        ),
        CertificateError::UnknownIssuer => "the PostgreSQL server's certificate was not issued by a CA in \
             sslrootcert (UnknownIssuer)"
            .into(),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            format!("the PostgreSQL server's certificate has expired: {cert}")
        }
        other => format!("the PostgreSQL server's certificate was refused: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_parse_table() {
        for (text, want) in [
            ("disable", Ok(SslMode::Disable)),
            ("prefer", Ok(SslMode::Prefer)),
            ("require", Ok(SslMode::Require)),
            ("verify-ca", Ok(SslMode::VerifyCa)),
            ("verify-full", Ok(SslMode::VerifyFull)),
            ("allow", Err("not supported")),
            ("VERIFY-FULL", Err("unknown sslmode")),
            ("", Err("unknown sslmode")),
        ] {
            match (SslMode::parse(text), want) {
                (Ok(got), Ok(want)) => {
                    assert_eq!(got, want, "{text}");
                    assert_eq!(got.as_str(), text);
                }
                (Err(got), Err(want)) => assert!(got.contains(want), "{text}: {got}"),
                (got, want) => panic!("{text}: {got:?}, expected {want:?}"),
            }
        }
        // What tokio-postgres is told: verification is ours.
        assert_eq!(SslMode::VerifyFull.transport(), TransportMode::Require);
        assert_eq!(SslMode::VerifyCa.transport(), TransportMode::Require);
        assert_eq!(SslMode::Prefer.transport(), TransportMode::Prefer);
        assert_eq!(SslMode::Disable.transport(), TransportMode::Disable);
    }

    fn split(rest: &str, sslmode: Option<&str>, sslrootcert: Option<&str>) -> Split {
        Split {
            rest: rest.into(),
            sslmode: sslmode.map(Into::into),
            sslrootcert: sslrootcert.map(Into::into),
        }
    }

    #[test]
    fn tls_params_are_taken_out_of_both_url_forms() {
        for (url, want) in [
            ("postgres://u:p@h/db", split("postgres://u:p@h/db", None, None)),
            (
                "postgres://u:p@h:5/db?sslmode=verify-full&sslrootcert=/etc/ca.pem",
                split("postgres://u:p@h:5/db", Some("verify-full"), Some("/etc/ca.pem")),
            ),
            (
                "postgresql://h/db?application_name=x&sslrootcert=%2Fa%20b%2Fca.pem&connect_timeout=3&sslmode=require",
                split(
                    "postgresql://h/db?application_name=x&connect_timeout=3",
                    Some("require"),
                    Some("/a b/ca.pem"),
                ),
            ),
            (
                "host=h user=u sslmode=verify-ca password='a b\\'c' sslrootcert = '/x y/ca.pem'",
                split(
                    "host=h user=u password='a b\\'c'",
                    Some("verify-ca"),
                    Some("/x y/ca.pem"),
                ),
            ),
            ("host=h dbname=d", split("host=h dbname=d", None, None)),
            // Unparsable: left whole for tokio-postgres to refuse.
            ("host=h sslmode", split("host=h sslmode", None, None)),
        ] {
            assert_eq!(split_tls_params(url), want, "{url}");
        }
    }

    #[test]
    fn settings_errors_are_clear_and_never_quote_the_url() {
        let err = |url: &str| {
            PgConnector::parse(url)
                .err()
                .unwrap_or_else(|| panic!("{url} accepted"))
        };
        let e = err("postgres://u:secret@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem");
        assert!(e.contains("sslrootcert /nonexistent/ca.pem: cannot read it"), "{e}");
        assert!(!e.contains("secret"), "{e}");
        let e = err("postgres://u:secret@h/db?sslmode=verify-everything");
        assert!(e.contains("unknown sslmode"), "{e}");
        assert!(!e.contains("secret"), "{e}");
        let e = err("postgres://u@h/db?sslmode=require&sslrootcert=system");
        assert!(e.contains("not supported"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = err(&format!("host=h sslmode=verify-ca sslrootcert={}", empty.display()));
        assert!(e.contains("holds no PEM certificate"), "{e}");
        // Without TLS, or without verification, no file is needed.
        assert_eq!(
            PgConnector::parse("postgres://u@h/db?sslmode=disable&sslrootcert=/nonexistent")
                .unwrap()
                .ssl_mode(),
            SslMode::Disable
        );
        assert_eq!(
            PgConnector::parse("postgres://u@h/db").unwrap().ssl_mode(),
            SslMode::Prefer
        );
        assert_eq!(
            PgConnector::parse("postgres://u@h/db?sslmode=require")
                .unwrap()
                .ssl_mode(),
            SslMode::Require
        );
    }
}
