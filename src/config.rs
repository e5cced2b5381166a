//! The data directory and the settings fixed when it is initialised.
//!
//! Layout of a data directory:
//! - `cloudpki.db`: the SQLite store (plus its `-wal`/`-shm` files);
//! - `kek`: the generated key-encryption key, only when none was supplied
//!   through `CLOUDPKI_KEK` or `--kek-file` (mode 0600; keep it out of backups
//!   that leave the machine, or supply the KEK from a secret store instead).
//!
//! During a KEK rotation a process also holds the next KEK
//! (`--next-kek-file` or `CLOUDPKI_NEXT_KEK`); see [`crate::domain::kek`].
//!
//! The public base URL is written into every certificate, so it is recorded
//! in the store on first use and a later, different value is refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::domain::engine::OcspSigning;
use crate::domain::kek::{self, META_KEK_CHECK, META_KEK_CURRENT};
use crate::domain::{Pki, Settings};
use crate::secrets::{Kek, KeyRing, SealedKind, SecretError};
use crate::store::{SqliteStore, Store, StoreError, TxMode};

/// The port `serve` listens on by default, and the default public URL's.
pub const DEFAULT_PORT: u16 = 8180;
const META_PUBLIC_URL: &str = "public_url";
const META_OCSP_SIGNER: &str = "ocsp_signer";
const KEK_CHECK_PLAINTEXT: &[u8] = b"cloudpki";
pub const KEK_ENV: &str = "CLOUDPKI_KEK";
/// The other KEK during a rotation (base64), like `CLOUDPKI_KEK`.
pub const NEXT_KEK_ENV: &str = "CLOUDPKI_NEXT_KEK";

pub fn default_public_url() -> String {
    format!("http://127.0.0.1:{DEFAULT_PORT}")
}

/// The public URL a server listening on `listen` is reached at when nothing
/// says otherwise: its own address (loopback for an unspecified one). None
/// for port 0, whose port is known only once bound.
pub fn public_url_for_listen(listen: std::net::SocketAddr) -> Option<String> {
    if listen.port() == 0 {
        return None;
    }
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Some(format!("http://{addr}"))
}

/// The TCP port a public URL names, explicitly or by its scheme.
pub fn public_url_port(url: &str) -> Option<u16> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    let host_port = authority.rsplit('@').next()?;
    // `[v6]:port`, `host:port`, or no port at all.
    let port = match host_port.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') && (!host.contains(':') || host.ends_with(']')) => Some(port),
        _ => None,
    };
    match (port, scheme) {
        (Some(p), _) => p.parse().ok(),
        (None, "https") => Some(443),
        (None, _) => Some(80),
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error(
        "this data directory was initialised with public URL {stored}; certificates embed it, so it cannot change to {requested}"
    )]
    PublicUrlMismatch { stored: String, requested: String },
    #[error("invalid public URL {0:?}: use http:// or https:// with a host, no query or fragment")]
    BadPublicUrl(String),
    #[error("the data directory's CA keys were sealed with another key-encryption key ({0})")]
    WrongKek(SecretError),
    /// The process lacks a KEK the stored state needs (see `domain::kek`).
    #[error("{0}")]
    KekNotHeld(String),
    #[error("no key-encryption key: set {KEK_ENV} or --kek-file, or restore the data directory's kek file")]
    MissingKek,
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the database is not initialised: start a signer (or run `cloudpki init`) against it first; responders initialise nothing")]
    NotInitialised,
    #[error("{path}: not a responder key ({reason}); move it away to generate a new one (the new key must be approved again)")]
    EdgeKey { path: String, reason: String },
    #[error("a shared database needs an explicit key-encryption key ({KEK_ENV} or --kek-file): generating one per node would seal keys nobody else can open")]
    SharedDatabaseNeedsKek,
}

/// Where the data lives and how to open it.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    pub data_dir: PathBuf,
    pub public_url: Option<String>,
    /// The public URL recorded when the store is initialised and
    /// `public_url` is not given (`serve`: its listen address); never
    /// compared with a stored one. None: [`default_public_url`].
    pub default_public_url: Option<String>,
    pub kek_file: Option<PathBuf>,
    /// Base64 KEK (normally from `CLOUDPKI_KEK`).
    pub kek_base64: Option<String>,
    /// Further KEKs held (`--next-kek-file`, and `kek rotate --new-kek-file`):
    /// keys sealed under them open; new keys are sealed under them only once
    /// a rotation to them has started.
    pub next_kek_files: Vec<PathBuf>,
    /// Base64 of a further KEK (normally from `CLOUDPKI_NEXT_KEK`).
    pub next_kek_base64: Option<String>,
    pub max_cas: Option<u32>,
    /// Who signs OCSP answers; recorded in the data directory when given.
    pub ocsp_signing: Option<OcspSigning>,
    /// `postgres://…`: the state lives in this shared PostgreSQL database
    /// (several nodes, one PKI); None: SQLite in the data directory.
    pub database: Option<String>,
    /// Open no key at all and initialise nothing (responder nodes): the KEK is
    /// neither read nor generated, and the store must already be initialised.
    pub keyless: bool,
}

impl OpenOptions {
    /// A data directory's options with every setting at its default: SQLite
    /// in `data_dir`, the KEK beside it, the default public URL.
    pub fn new(data_dir: PathBuf) -> Self {
        OpenOptions {
            data_dir,
            public_url: None,
            default_public_url: None,
            kek_file: None,
            kek_base64: None,
            next_kek_files: Vec::new(),
            next_kek_base64: None,
            max_cas: None,
            ocsp_signing: None,
            database: None,
            keyless: false,
        }
    }
}

/// The per-user default data directory (`$XDG_DATA_HOME/cloudpki` or
/// `~/.local/share/cloudpki` on Linux).
pub fn default_data_dir() -> PathBuf {
    dirs::data_local_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("cloudpki")
}

fn normalize_url(url: &str) -> Result<String, ConfigError> {
    let u = url.trim().trim_end_matches('/');
    let rest = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
        .ok_or_else(|| ConfigError::BadPublicUrl(url.into()))?;
    if rest.is_empty() || rest.contains(['?', '#', ' ']) || !u.is_ascii() {
        return Err(ConfigError::BadPublicUrl(url.into()));
    }
    Ok(u.to_owned())
}

/// Writes a new file readable by its owner only (fails if it exists).
#[cfg(unix)]
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

#[cfg(not(unix))]
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// The file holding a keyless responder's own OCSP key in its data directory.
pub const EDGE_KEY_FILE: &str = "responder-key.p8";

/// A keyless responder's own OCSP signing key (`responder-key.p8` in its
/// data directory: PKCS#8, owner-only, never in the store), generated and
/// written atomically on first start. It is not sealed with the KEK:
/// responders hold none.
pub fn edge_key(data_dir: &Path, name: &str) -> Result<crate::domain::engine::EdgeKey, ConfigError> {
    use crate::domain::engine::EdgeKey;
    let path = data_dir.join(EDGE_KEY_FILE);
    let shown = || path.display().to_string();
    match std::fs::read(&path) {
        Ok(pkcs8) => {
            let pkcs8 = zeroize::Zeroizing::new(pkcs8);
            EdgeKey::from_pkcs8(&pkcs8, name).map_err(|e| ConfigError::EdgeKey {
                path: shown(),
                reason: e.to_string(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            create_dir(data_dir)?;
            let (key, pkcs8) = EdgeKey::generate(name).map_err(|e| ConfigError::EdgeKey {
                path: shown(),
                reason: e.to_string(),
            })?;
            // Written whole under a temporary name, then renamed: a crash
            // leaves either no key or the whole key.
            let tmp = data_dir.join(format!("{EDGE_KEY_FILE}.tmp"));
            let write = |source| ConfigError::Write { path: shown(), source };
            let _ = std::fs::remove_file(&tmp);
            write_private(&tmp, &pkcs8).map_err(write)?;
            std::fs::rename(&tmp, &path).map_err(write)?;
            Ok(key)
        }
        Err(source) => Err(ConfigError::Write { path: shown(), source }),
    }
}

fn create_dir(path: &Path) -> Result<(), ConfigError> {
    let err = |source| ConfigError::DataDir {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(path).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    }
    Ok(())
}

/// Opens the data directory, initialising it on first use; returns the engine.
pub fn open(opts: &OpenOptions) -> Result<Pki, ConfigError> {
    open_with_clock(opts, Arc::new(SystemClock))
}

pub fn open_with_clock(opts: &OpenOptions, clock: Arc<dyn Clock>) -> Result<Pki, ConfigError> {
    // aws-lc seeds its entropy source on first use (~45 ms of jitter
    // sampling): do it now, not inside the first write transaction, where it
    // would hold the database's write lock against every other process.
    {
        use aws_lc_rs::rand::SecureRandom;
        let mut warm = [0u8; 16];
        aws_lc_rs::rand::SystemRandom::new()
            .fill(&mut warm)
            .map_err(|_| ConfigError::Secret(SecretError::Rng))?;
    }
    let store: Arc<dyn Store> = match &opts.database {
        Some(url) => Arc::new(crate::store::PgStore::connect(url)?),
        None => {
            create_dir(&opts.data_dir)?;
            Arc::new(SqliteStore::open(&opts.data_dir.join("cloudpki.db"))?)
        }
    };
    let requested = opts.public_url.as_deref().map(normalize_url).transpose()?;
    if opts.keyless {
        return open_keyless(store, requested, clock, opts.max_cas);
    }

    // Most opens change nothing: look first without the write lock.
    let initialised = {
        let mut tx = store.begin(TxMode::Read)?;
        tx.meta(META_KEK_CHECK)?.is_some()
            && tx.meta(META_KEK_CURRENT)?.is_some()
            && tx.meta(META_PUBLIC_URL)?.is_some()
            && requested
                .as_deref()
                .is_none_or(|r| tx.meta(META_PUBLIC_URL).ok().flatten().as_deref() == Some(r))
            && opts.ocsp_signing.is_none_or(|o| {
                tx.meta(META_OCSP_SIGNER)
                    .ok()
                    .flatten()
                    .as_deref()
                    .and_then(OcspSigning::parse)
                    == Some(o)
            })
    };
    let mut tx = store.begin(if initialised { TxMode::Read } else { TxMode::Write })?;
    let kek_check = tx.meta(META_KEK_CHECK)?;
    let kek_path = opts.data_dir.join("kek");
    let kek = if let Some(text) = &opts.kek_base64 {
        Kek::from_base64(text)?
    } else if let Some(file) = &opts.kek_file {
        Kek::from_file(file)?
    } else if kek_path.exists() {
        Kek::from_file(&kek_path)?
    } else if opts.database.is_some() {
        return Err(ConfigError::SharedDatabaseNeedsKek);
    } else if kek_check.is_none() {
        // Fresh data directory and no KEK supplied: make one so the server
        // runs with no setup. Production deployments supply their own.
        let kek = Kek::generate()?;
        write_private(&kek_path, kek.to_base64().as_bytes()).map_err(|source| ConfigError::Write {
            path: kek_path.display().to_string(),
            source,
        })?;
        kek
    } else {
        return Err(ConfigError::MissingKek);
    };
    let mut next = Vec::new();
    for file in &opts.next_kek_files {
        next.push(Kek::from_file(file)?);
    }
    if let Some(text) = &opts.next_kek_base64 {
        next.push(Kek::from_base64(text)?);
    }
    let ring = KeyRing::new(kek, next);
    match &kek_check {
        Some(sealed) => {
            let state = kek::state(tx.as_mut()).map_err(|e| ConfigError::KekNotHeld(e.to_string()))?;
            kek::check_held(&state, &ring).map_err(|e| ConfigError::KekNotHeld(e.to_string()))?;
            let bytes = <base64ct::Base64 as base64ct::Encoding>::decode_vec(sealed)
                .map_err(|_| ConfigError::WrongKek(SecretError::Malformed))?;
            let (_, opened_by) = ring
                .open(SealedKind::KekCheck, "", &bytes)
                .map_err(ConfigError::WrongKek)?;
            if state.current.is_none() {
                // Made before KEK ids were recorded: the KEK that opens the
                // check is the one everything is sealed under.
                tx.set_meta(META_KEK_CURRENT, &opened_by.to_string())?;
            }
        }
        None => {
            let primary = ring.primary();
            let sealed = primary.seal(SealedKind::KekCheck, "", KEK_CHECK_PLAINTEXT)?;
            tx.set_meta(
                META_KEK_CHECK,
                &<base64ct::Base64 as base64ct::Encoding>::encode_string(&sealed),
            )?;
            tx.set_meta(META_KEK_CURRENT, &primary.id().to_string())?;
        }
    }
    // Changing the OCSP signer is safe at any time: answers are re-signed
    // within a day by the new one, and old ones stay valid until nextUpdate.
    let ocsp_signing = match (
        tx.meta(META_OCSP_SIGNER)?.as_deref().and_then(OcspSigning::parse),
        opts.ocsp_signing,
    ) {
        (stored, Some(req)) => {
            if stored != Some(req) {
                tx.set_meta(META_OCSP_SIGNER, req.name())?;
            }
            req
        }
        (Some(stored), None) => stored,
        (None, None) => OcspSigning::default(),
    };
    let public_url = match (tx.meta(META_PUBLIC_URL)?, requested) {
        (Some(stored), Some(req)) if stored != req => {
            return Err(ConfigError::PublicUrlMismatch { stored, requested: req })
        }
        (Some(stored), _) => stored,
        (None, req) => {
            let url = match (req, &opts.default_public_url) {
                (Some(req), _) => req,
                (None, Some(default)) => normalize_url(default)?,
                (None, None) => default_public_url(),
            };
            tx.set_meta(META_PUBLIC_URL, &url)?;
            url
        }
    };
    tx.commit()?;
    Ok(Pki::new(
        store,
        Some(ring),
        clock,
        Settings {
            public_url,
            max_cas: opts.max_cas,
            timings: crate::domain::engine::Timings::default(),
            ocsp_signing,
        },
    ))
}

/// A responder's view: settings read from the store, no key, no write.
fn open_keyless(
    store: Arc<dyn Store>,
    requested: Option<String>,
    clock: Arc<dyn Clock>,
    max_cas: Option<u32>,
) -> Result<Pki, ConfigError> {
    let mut tx = store.begin(TxMode::Read)?;
    let (Some(public_url), Some(_)) = (tx.meta(META_PUBLIC_URL)?, tx.meta(META_KEK_CHECK)?) else {
        return Err(ConfigError::NotInitialised);
    };
    if let Some(req) = requested.filter(|r| *r != public_url) {
        return Err(ConfigError::PublicUrlMismatch {
            stored: public_url,
            requested: req,
        });
    }
    let ocsp_signing = tx
        .meta(META_OCSP_SIGNER)?
        .as_deref()
        .and_then(OcspSigning::parse)
        .unwrap_or_default();
    drop(tx);
    Ok(Pki::new(
        store,
        None,
        clock,
        Settings {
            public_url,
            max_cas,
            timings: crate::domain::engine::Timings::default(),
            ocsp_signing,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(dir: &Path) -> OpenOptions {
        OpenOptions::new(dir.to_path_buf())
    }

    #[test]
    fn the_default_public_url_follows_the_listen_address_only_at_init() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts(dir.path());
        o.default_public_url = public_url_for_listen("127.0.0.1:18400".parse().unwrap());
        assert_eq!(open(&o).unwrap().settings().public_url, "http://127.0.0.1:18400");
        o.default_public_url = public_url_for_listen("127.0.0.1:18401".parse().unwrap());
        assert_eq!(open(&o).unwrap().settings().public_url, "http://127.0.0.1:18400");
        assert_eq!(
            public_url_for_listen("0.0.0.0:80".parse().unwrap()).as_deref(),
            Some("http://127.0.0.1:80")
        );
        assert_eq!(
            public_url_for_listen("[::]:8443".parse().unwrap()).as_deref(),
            Some("http://[::1]:8443")
        );
        assert_eq!(public_url_for_listen("127.0.0.1:0".parse().unwrap()), None);
        for (url, port) in [
            ("http://127.0.0.1:18400", Some(18400)),
            ("https://pki.example", Some(443)),
            ("http://pki.example/base", Some(80)),
            ("http://[::1]:8443", Some(8443)),
            ("http://[::1]", Some(80)),
        ] {
            assert_eq!(public_url_port(url), port, "{url}");
        }
    }

    #[test]
    fn public_url_is_fixed_at_init() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts(dir.path());
        o.public_url = Some("http://pki.example:8180/".into());
        assert_eq!(open(&o).unwrap().settings().public_url, "http://pki.example:8180");
        assert!(open(&o).is_ok());
        o.public_url = None;
        assert_eq!(open(&o).unwrap().settings().public_url, "http://pki.example:8180");
        o.public_url = Some("http://other:1".into());
        assert!(matches!(open(&o), Err(ConfigError::PublicUrlMismatch { .. })));
    }

    #[test]
    fn wrong_kek_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        open(&opts(dir.path())).unwrap();
        let mut o = opts(dir.path());
        o.kek_base64 = Some(Kek::generate().unwrap().to_base64().to_string());
        let err = open(&o).unwrap_err();
        assert!(matches!(err, ConfigError::KekNotHeld(_)), "{err}");
        assert!(err.to_string().contains("the current key-encryption key is"), "{err}");
    }

    #[test]
    fn bad_urls_are_refused() {
        for u in ["ftp://x", "http://", "http://a b", "http://x/?q"] {
            assert!(normalize_url(u).is_err(), "{u}");
        }
    }
}
