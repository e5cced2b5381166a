//! `cloudpki serve` and its configuration file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Cli, CliError, Result};
use crate::app::{self, Role, ServeConfig};
use crate::config::{self, OpenOptions, DEFAULT_PORT};
use crate::domain::engine::{OcspSigning, Timings};
use crate::http::responder::SigningLimits;
use crate::http::Limits;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:8180). On a fresh data
    /// directory without --public-url, the public URL is this address.
    #[arg(long, env = "CLOUDPKI_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// TOML configuration file (see README); flags take precedence.
    #[arg(long, env = "CLOUDPKI_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log as JSON lines.
    #[arg(long)]
    pub json_logs: bool,
    /// Serve /metrics on this second address only (health checks answer on both).
    #[arg(long, env = "CLOUDPKI_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// all: everything in one process; signer: API and signing (holds the
    /// KEK); responder: OCSP/CRL/AIA from what signers stored, with no key.
    #[arg(long, env = "CLOUDPKI_ROLE", value_enum)]
    pub role: Option<Role>,
    /// Responders: an enrolment token (`cloudpki responder enrolment-token`)
    /// that approves this responder's OCSP key at its first start. Prefer
    /// the environment variable: arguments are visible to other users.
    #[arg(long, env = "CLOUDPKI_RESPONDER_ENROLMENT_TOKEN", hide_env_values = true)]
    pub enrolment_token: Option<String>,
    /// A TLS listener (EST, and the API and SCEP) on this address; needs
    /// --tls-cert and --tls-key. CRL, AIA and OCSP stay on plain HTTP.
    #[arg(long, env = "CLOUDPKI_TLS_LISTEN", requires_all = ["tls_cert", "tls_key"])]
    pub tls_listen: Option<SocketAddr>,
    /// The TLS certificate chain, PEM (reloaded when it changes and on SIGHUP).
    #[arg(long, env = "CLOUDPKI_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The TLS private key, PEM (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "CLOUDPKI_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
}

/// The configuration file. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub public_url: Option<String>,
    pub kek_file: Option<PathBuf>,
    /// The other KEK during a rotation (see --next-kek-file).
    pub next_kek_file: Option<PathBuf>,
    pub max_cas: Option<u32>,
    pub json_logs: Option<bool>,
    pub ocsp_validity_hours: Option<i64>,
    pub ocsp_refresh_hours: Option<i64>,
    pub crl_validity_hours: Option<i64>,
    pub crl_republish_hours: Option<i64>,
    /// Hours an entry stays on CRLs after its certificate expired (beyond
    /// the one CRL after notAfter RFC 5280 requires; default 0).
    pub crl_keep_expired_hours: Option<i64>,
    /// Where a CA publishes delta CRLs: hours before a new complete CRL is
    /// cut (default 24), and the delta size that cuts one sooner (5,000).
    pub crl_delta_base_hours: Option<i64>,
    pub crl_delta_max_entries: Option<usize>,
    /// Signers: lifetime of the delegated OCSP certificates of approved
    /// keyless responders (default 172800: 2 days), and how long before
    /// the end they are renewed (default 86400).
    pub responder_cert_validity_seconds: Option<i64>,
    pub responder_cert_renew_seconds: Option<i64>,
    pub max_connections: Option<usize>,
    /// Seconds between asking the C allocator to give free pages back
    /// (default 10; 0: never).
    pub allocator_trim_seconds: Option<u64>,
    pub signing_concurrency: Option<usize>,
    pub signing_queue: Option<usize>,
    /// "ca" (default) or "delegated".
    pub ocsp_signer: Option<String>,
    pub admin_listen: Option<SocketAddr>,
    /// "all" (default), "signer" or "responder".
    pub role: Option<Role>,
    /// `postgres://…` (see --database).
    pub database: Option<String>,
    /// API requests per second per principal (0: unlimited).
    pub api_rate_limit: Option<u32>,
    /// Cap on the max-age of OCSP GET answers, for caches and CDNs in front.
    pub ocsp_max_age_seconds: Option<i64>,
    /// Enrolment requests (SCEP PKIOperation, EST enrol) per second and
    /// burst, per source address (default 20/100) and per challenge
    /// (10/50); 0 per second: unlimited.
    pub enrol_rate_per_source: Option<f64>,
    pub enrol_burst_per_source: Option<f64>,
    pub enrol_rate_per_challenge: Option<f64>,
    pub enrol_burst_per_challenge: Option<f64>,
    /// The TLS listener (see --tls-listen, --tls-cert, --tls-key).
    pub tls_listen: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// `[[oidc_issuers]]`: external token issuers trusted by their JWKS file.
    #[serde(default)]
    pub oidc_issuers: Vec<crate::auth::OidcIssuerConfig>,
}

fn load_file(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::Io {
        path: path.display().to_string(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))
}

fn hours(h: Option<i64>, default: time::Duration, what: &str) -> Result<time::Duration> {
    match h {
        None => Ok(default),
        Some(h) if h > 0 && h <= 24 * 366 => Ok(time::Duration::hours(h)),
        Some(_) => Err(CliError::Usage(format!("{what} must be 1 to 8784 hours"))),
    }
}

fn seconds(s: Option<i64>, default: time::Duration, what: &str) -> Result<time::Duration> {
    match s {
        None => Ok(default),
        Some(s) if s > 0 && s <= 86_400 * 366 => Ok(time::Duration::seconds(s)),
        Some(_) => Err(CliError::Usage(format!("{what} must be 1 to 31622400 seconds"))),
    }
}

pub fn run(cli: &Cli, args: &ServeArgs) -> Result<()> {
    let file = match &args.config {
        Some(p) => load_file(p)?,
        None => FileConfig::default(),
    };
    crate::observability::init_tracing(args.json_logs || file.json_logs.unwrap_or(false));
    let d = Timings::default();
    let timings = Timings {
        ocsp_validity: hours(file.ocsp_validity_hours, d.ocsp_validity, "ocsp_validity_hours")?,
        ocsp_refresh_after: hours(file.ocsp_refresh_hours, d.ocsp_refresh_after, "ocsp_refresh_hours")?,
        crl_validity: hours(file.crl_validity_hours, d.crl_validity, "crl_validity_hours")?,
        crl_republish_after: hours(file.crl_republish_hours, d.crl_republish_after, "crl_republish_hours")?,
        crl_keep_expired: match file.crl_keep_expired_hours {
            Some(h) if h >= 0 => time::Duration::hours(h),
            Some(_) => return Err(CliError::Usage("crl_keep_expired_hours must not be negative".into())),
            None => d.crl_keep_expired,
        },
        crl_delta_base_after: hours(
            file.crl_delta_base_hours,
            d.crl_delta_base_after,
            "crl_delta_base_hours",
        )?,
        crl_delta_max_entries: file.crl_delta_max_entries.unwrap_or(d.crl_delta_max_entries).max(1),
        responder_cert_validity: seconds(
            file.responder_cert_validity_seconds,
            d.responder_cert_validity,
            "responder_cert_validity_seconds",
        )?,
        responder_cert_renew_before: seconds(
            file.responder_cert_renew_seconds,
            d.responder_cert_renew_before,
            "responder_cert_renew_seconds",
        )?,
    };
    if timings.ocsp_refresh_after >= timings.ocsp_validity
        || timings.crl_republish_after >= timings.crl_validity
        || timings.crl_delta_base_after >= timings.crl_validity
        || timings.responder_cert_renew_before >= timings.responder_cert_validity
    {
        return Err(CliError::Usage(
            "refresh/republish intervals must be shorter than the validity they renew".into(),
        ));
    }
    let mut limits = Limits::default();
    if let Some(n) = file.max_connections {
        limits.max_connections = n.max(1);
    }
    let mut signing = SigningLimits::default();
    if let Some(n) = file.signing_concurrency {
        signing.concurrency = n.max(1);
    }
    if let Some(n) = file.signing_queue {
        signing.queue = n;
    }
    let role = args.role.or(file.role).unwrap_or_default();
    let cfg = ServeConfig {
        role,
        open: OpenOptions {
            data_dir: cli
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(config::default_data_dir),
            public_url: cli.public_url.clone().or(file.public_url),
            // Filled from the listen address by app::run.
            default_public_url: None,
            kek_file: cli.kek_file.clone().or(file.kek_file),
            kek_base64: std::env::var(config::KEK_ENV).ok().filter(|s| !s.is_empty()),
            next_kek_files: cli.next_kek_file.clone().or(file.next_kek_file).into_iter().collect(),
            next_kek_base64: std::env::var(config::NEXT_KEK_ENV).ok().filter(|s| !s.is_empty()),
            max_cas: cli.max_cas.or(file.max_cas),
            ocsp_signing: match &file.ocsp_signer {
                None => None,
                Some(s) => Some(
                    OcspSigning::parse(s)
                        .ok_or_else(|| CliError::Usage("ocsp_signer must be \"ca\" or \"delegated\"".into()))?,
                ),
            },
            database: cli.database.clone().or(file.database),
            keyless: role == Role::Responder,
        },
        listen: args
            .listen
            .or(file.listen)
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT))),
        timings,
        limits,
        signing,
        admin_listen: args.admin_listen.or(file.admin_listen),
        oidc: file.oidc_issuers,
        api_rate_limit: file.api_rate_limit.unwrap_or(app::DEFAULT_API_RATE_LIMIT),
        ocsp_max_age: match file.ocsp_max_age_seconds {
            None => None,
            Some(n) if n >= 0 => Some(n),
            Some(_) => return Err(CliError::Usage("ocsp_max_age_seconds must not be negative".into())),
        },
        enrolment_token: args.enrolment_token.clone().filter(|t| !t.trim().is_empty()),
        enrol_limits: {
            let d = crate::enrol::limit::EnrolLimits::default();
            let rate = |r: Option<f64>, b: Option<f64>, d: crate::enrol::limit::Rate, what: &str| {
                let (per_second, burst) = (r.unwrap_or(d.per_second), b.unwrap_or(d.burst));
                if !(per_second >= 0.0 && burst >= 1.0 && per_second.is_finite() && burst.is_finite()) {
                    return Err(CliError::Usage(format!(
                        "enrol_rate_per_{what} must be >= 0 and enrol_burst_per_{what} >= 1"
                    )));
                }
                Ok(crate::enrol::limit::Rate { per_second, burst })
            };
            crate::enrol::limit::EnrolLimits {
                per_source: rate(
                    file.enrol_rate_per_source,
                    file.enrol_burst_per_source,
                    d.per_source,
                    "source",
                )?,
                per_challenge: rate(
                    file.enrol_rate_per_challenge,
                    file.enrol_burst_per_challenge,
                    d.per_challenge,
                    "challenge",
                )?,
            }
        },
        allocator_trim: match file.allocator_trim_seconds {
            None => Some(app::DEFAULT_ALLOCATOR_TRIM),
            Some(0) => None,
            Some(n) => Some(std::time::Duration::from_secs(n)),
        },
        tls: match (
            args.tls_listen.or(file.tls_listen),
            args.tls_cert.clone().or(file.tls_cert),
            args.tls_key.clone().or(file.tls_key),
        ) {
            (None, _, _) => None,
            (Some(listen), Some(cert_file), Some(key_file)) => Some(app::TlsListen {
                listen,
                cert_file,
                key_file,
            }),
            (Some(_), _, _) => {
                return Err(CliError::Usage(
                    "tls_listen needs tls_cert and tls_key (PEM files)".into(),
                ))
            }
        },
    };
    // The database URL and its TLS settings (the sslrootcert file is read
    // here) are checked before the runtime starts and any port is bound.
    if let Some(url) = &cfg.open.database {
        crate::store::PgStore::check_url(url).map_err(|e| CliError::Config(e.into()))?;
    }
    let data_dir = cfg.open.data_dir.clone();
    let database = cfg.open.database.clone();
    // Here, before the runtime's threads: glibc reads this without a lock.
    // Without the periodic trim, glibc's own policy is left alone as well.
    if cfg.allocator_trim.is_some() {
        let _ = malloc_trim::set_trim_threshold(app::ALLOCATOR_TRIM_THRESHOLD);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Usage(format!("cannot start the runtime: {e}")))?;
    runtime
        .block_on(async {
            let shutdown = app::shutdown_signal();
            app::run(
                cfg,
                |h| {
                    let addr = h.addr;
                    // A responder starting from its disk snapshot has no store yet.
                    let public_url = h.pki.as_ref().map_or("(the store's, once reachable)".to_owned(), |p| {
                        p.settings().public_url.clone()
                    });
                    println!(
                        "cloudpki listening on http://{addr} (role {})",
                        format!("{role:?}").to_lowercase()
                    );
                    match &database {
                        Some(_) => println!("  database:       PostgreSQL"),
                        None => println!("  data directory: {}", data_dir.display()),
                    }
                    println!("  public URL:     {public_url}");
                    if role != Role::Signer {
                        println!("  OCSP:           {public_url}/ocsp");
                        println!("  CRLs:           {public_url}/crls/<caId>_v1/partitions.json (current.crl, N.crl)");
                        println!("  CA certificates: {public_url}/cacerts/<caId>_v1/cert.cer");
                    }
                    match h.admin_addr {
                        Some(admin) => {
                            println!("  health:         http://{addr}/healthz, /readyz");
                            println!("  metrics:        http://{admin}/metrics");
                        }
                        None => println!("  health:         http://{addr}/healthz, /readyz, /metrics"),
                    }
                    if role != Role::Responder {
                        println!("  API:            {public_url}/beta/deviceManagement, {public_url}/openapi.json");
                        println!("  SCEP:           {public_url}/scep/<caId>");
                    }
                    if let Some(tls) = h.tls_addr {
                        println!("  TLS:            https://{tls} (API, SCEP, EST at /.well-known/est/<caId>/)");
                    }
                },
                shutdown,
            )
            .await
        })
        .map_err(CliError::Serve)
}
