//! `serve`: wires the engine, the snapshot maintainer and the HTTP listener.
//!
//! `run(config, shutdown)` takes its shutdown signal as a parameter, so tests
//! start the whole server on `127.0.0.1:0` and stop it themselves.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;

use crate::config::{self, ConfigError, OpenOptions};
use crate::domain::engine::Timings;
use crate::domain::Pki;
use crate::http::responder::{Responder, SigningLimits};
use crate::http::{AppState, Limits, Surface};
use crate::observability::Metrics;
use crate::snapshot::maintainer::{MaintainError, Maintainer, Wake};
use crate::snapshot::{Published, Snapshot};

/// What one `serve` process does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// API, signing and the public responder routes: one node.
    #[default]
    All,
    /// API and signing (CRLs, OCSP refresh); holds the KEK; no public responder routes.
    Signer,
    /// The public responder routes only, from what signers stored; holds no key.
    Responder,
}

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub role: Role,
    pub open: OpenOptions,
    pub listen: SocketAddr,
    pub timings: Timings,
    pub limits: Limits,
    pub signing: SigningLimits,
    /// A second listener for `/metrics` (and health); `/metrics` then leaves the main one.
    pub admin_listen: Option<SocketAddr>,
    /// External OIDC issuers whose tokens the API accepts.
    pub oidc: Vec<crate::auth::OidcIssuerConfig>,
    /// API requests per second per principal; 0: unlimited.
    pub api_rate_limit: u32,
    /// Cap on OCSP GET max-age (seconds); None: until nextUpdate.
    pub ocsp_max_age: Option<i64>,
    /// Responders: a token from `cloudpki responder enrolment-token` that
    /// approves this responder's key without an operator's `approve`.
    pub enrolment_token: Option<String>,
    /// The TLS listener (EST; the API too), when configured.
    pub tls: Option<TlsListen>,
    /// SCEP/EST requests per source address and per challenge.
    pub enrol_limits: crate::enrol::limit::EnrolLimits,
    /// How often the C allocator is asked to give free pages back; None: never.
    pub allocator_trim: Option<std::time::Duration>,
}

/// Where the TLS listener binds and the PEM files of its certificate.
#[derive(Debug, Clone)]
pub struct TlsListen {
    pub listen: SocketAddr,
    /// Certificate chain (leaf first) and private key, PEM; reloaded when
    /// they change and on SIGHUP.
    pub cert_file: std::path::PathBuf,
    pub key_file: std::path::PathBuf,
}

impl ServeConfig {
    /// Defaults around an open configuration (tests, embedders).
    pub fn new(open: OpenOptions, listen: SocketAddr) -> Self {
        ServeConfig {
            role: Role::All,
            open,
            listen,
            timings: Timings::default(),
            limits: Limits::default(),
            signing: SigningLimits::default(),
            admin_listen: None,
            oidc: Vec::new(),
            api_rate_limit: DEFAULT_API_RATE_LIMIT,
            ocsp_max_age: None,
            enrolment_token: None,
            tls: None,
            enrol_limits: Default::default(),
            allocator_trim: Some(DEFAULT_ALLOCATOR_TRIM),
        }
    }
}

/// glibc keeps the pages a burst of connections freed (measured: 28 MB
/// resident before 2,000 attacking connections, 72 MB after they left, 25 MB
/// after one trim). A trim when nothing is free costs tens of microseconds.
pub const DEFAULT_ALLOCATOR_TRIM: std::time::Duration = std::time::Duration::from_secs(10);

/// With the periodic trim on, `free` returns an arena's top above this size
/// (glibc's default before it starts moving the threshold itself). A fixed
/// threshold is what returns a worker's arena top after a burst of
/// connections, which `malloc_trim` does not touch (see the malloc-trim crate).
pub const ALLOCATOR_TRIM_THRESHOLD: usize = 128 * 1024;

/// Per principal; Graph's Intune limits are of this order.
pub const DEFAULT_API_RATE_LIMIT: u32 = 100;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Tls(#[from] crate::http::tls::TlsError),
    #[error("loading the snapshot failed: {0}")]
    Snapshot(#[from] MaintainError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("API authentication: {0}")]
    Auth(String),
    #[error("cannot start the snapshot thread: {0}")]
    Thread(std::io::Error),
    #[error("{0}")]
    Kek(crate::domain::PkiError),
}

/// What a running server exposes to its embedder (tests, benchmarks).
#[derive(Clone)]
pub struct Handles {
    pub addr: SocketAddr,
    /// The admin listener's address, when there is one.
    pub admin_addr: Option<SocketAddr>,
    /// The TLS listener's address, when there is one.
    pub tls_addr: Option<SocketAddr>,
    /// None on a responder that started from its disk snapshot, until its
    /// store answers.
    pub pki: Option<Arc<Pki>>,
    pub published: Published,
}

/// Runs the server until `shutdown` resolves. `on_listening` receives the
/// bound address (useful with port 0) and handles on the engine and snapshot.
pub async fn run(
    cfg: ServeConfig,
    on_listening: impl FnOnce(&Handles),
    shutdown: impl Future<Output = ()>,
) -> Result<(), AppError> {
    let mut cfg = cfg;
    // A responder opens no key, whatever the caller's options say.
    cfg.open.keyless = cfg.role == Role::Responder;
    // A store this serve initialises gets the URL it listens on, so the
    // certificates it issues point at a port somebody answers on.
    if cfg.open.default_public_url.is_none() {
        cfg.open.default_public_url = config::public_url_for_listen(cfg.listen);
    }
    // Large CRLs are sent from unnamed files on the data directory's disk
    // (see snapshot::zerocopy).
    crate::snapshot::zerocopy::mirror_in(&cfg.open.data_dir);
    let metrics = Arc::new(Metrics::new()?);
    let shared = Shared {
        published: Arc::new(ArcSwap::from_pointee(Snapshot::empty())),
        sync: Arc::new(crate::snapshot::SyncState::default()),
        metrics: metrics.clone(),
        wake: Arc::new(Wake::default()),
        stop: Arc::new(AtomicBool::new(false)),
    };
    // Background threads stop on every way out of here, errors included.
    let _stop_on_return = StopOnDrop(shared.stop.clone());
    let (published, sync, wake, stop) = (
        shared.published.clone(),
        shared.sync.clone(),
        shared.wake.clone(),
        shared.stop.clone(),
    );
    // A responder signs what nothing pre-signed fits with a key of its own,
    // once an operator approved it (see domain::engine::edge), and keeps its
    // last snapshot on its own disk (see snapshot::disk).
    let (edge, disk) = if cfg.role == Role::Responder {
        let name = format!("{}@{}", host_name(), cfg.listen);
        (
            Some(Arc::new(config::edge_key(&cfg.open.data_dir, &name)?)),
            Some(crate::snapshot::disk::dir_of(&cfg.open.data_dir)),
        )
    } else {
        (None, None)
    };
    let edge_start = EdgeStart {
        edge: edge.clone(),
        token: cfg.enrolment_token.clone(),
        disk: disk.clone(),
    };
    // Store access blocks (the PostgreSQL client runs a runtime of its own):
    // keep it off the async workers.
    let open = cfg.open.clone();
    let opened = tokio::task::spawn_blocking(move || config::open(&open))
        .await
        .map_err(|e| AppError::Thread(std::io::Error::other(e)))?;
    let mut reconnect = None;
    let pki = match opened {
        Ok(mut pki) => {
            pki.set_timings(cfg.timings);
            Some(Arc::new(pki))
        }
        // A responder restarted while the store is unreachable serves the
        // snapshot it last wrote to disk, degraded, until the store returns.
        Err(ConfigError::Store(crate::store::StoreError::Unavailable(why))) if cfg.role == Role::Responder => {
            let dir = disk.clone().unwrap_or_default();
            let restored = crate::snapshot::disk::load(&dir, edge.as_deref()).map_err(|e| {
                tracing::error!(error = %e, "the store is unreachable and there is no snapshot on disk to start from");
                AppError::Config(ConfigError::Store(crate::store::StoreError::Unavailable(why.clone())))
            })?;
            sync.restored(restored.synced_ms);
            tracing::warn!(
                store = %why,
                age_seconds = sync.age_seconds(),
                certificates = restored.snapshot.cas.values().map(|c| c.certs.len()).sum::<usize>(),
                "the store is unreachable: serving the snapshot last written to disk until it returns"
            );
            published.store(Arc::new(restored.snapshot));
            reconnect = Some(
                spawn_reconnect(cfg.open.clone(), cfg.timings, edge_start.clone(), shared.clone())
                    .map_err(AppError::Thread)?,
            );
            None
        }
        Err(e) => return Err(e.into()),
    };
    // Only a responder starting from disk has no store yet; every other
    // node has returned above if it could not open one.
    let store_pki = || {
        pki.clone()
            .ok_or_else(|| AppError::Thread(std::io::Error::other("no store opened")))
    };
    // Everything the configuration names is checked before any port is
    // bound: a bad JWKS file or token key serves nothing.
    let external = cfg
        .oidc
        .iter()
        .map(crate::auth::ExternalIssuer::load)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AppError::Auth(e.to_string()))?;
    // The API lives on nodes that hold keys; responders answer relying parties only.
    let api = if cfg.role == Role::Responder {
        None
    } else {
        let pki = store_pki()?;
        let setup = pki.clone();
        let data_dir = cfg.open.data_dir.clone();
        let (tokens, first) = tokio::task::spawn_blocking(move || {
            let tokens = crate::auth::TokenIssuer::load_or_create(&setup).map_err(|e| AppError::Auth(e.to_string()))?;
            let first = first_admin_token(&setup, &tokens, &data_dir)?;
            Ok::<_, AppError>((tokens, first))
        })
        .await
        .map_err(|e| AppError::Thread(std::io::Error::other(e)))??;
        let tokens = Arc::new(tokens.with_external(external));
        if let Some(first) = first {
            first.announce();
        }
        Some(Arc::new(crate::api::Api::new(pki.clone(), tokens, cfg.api_rate_limit)))
    };
    // Signers register the KEK ids they hold before touching any key, and
    // keep the registration fresh, so `kek rotate` knows who must hold the
    // new KEK (see domain::kek).
    let heartbeat = if cfg.role == Role::Responder {
        None
    } else {
        let pki = store_pki()?;
        let (p, role, listen) = (
            pki.clone(),
            format!("{:?}", cfg.role).to_lowercase(),
            cfg.listen.to_string(),
        );
        let registration = tokio::task::spawn_blocking(move || {
            let mut r = crate::domain::kek::SignerRegistration::new(&p, &role, &listen)?;
            r.beat(&p)?;
            Ok::<_, crate::domain::PkiError>(r)
        })
        .await
        .map_err(|e| AppError::Thread(std::io::Error::other(e)))?
        .map_err(AppError::Kek)?;
        Some(spawn_heartbeat(pki.clone(), registration, stop.clone()).map_err(AppError::Thread)?)
    };
    let trimming = match cfg.allocator_trim {
        Some(every) if !every.is_zero() => {
            Some(spawn_allocator_trim(every, metrics.clone(), stop.clone()).map_err(AppError::Thread)?)
        }
        _ => None,
    };
    let following = match &pki {
        Some(pki) => {
            let (pki, shared) = (pki.clone(), shared.clone());
            Some(
                tokio::task::spawn_blocking(move || follow(pki, &edge_start, &shared))
                    .await
                    .map_err(|e| AppError::Thread(std::io::Error::other(e)))??,
            )
        }
        None => None,
    };

    let listener = TcpListener::bind(cfg.listen).await.map_err(|source| AppError::Bind {
        addr: cfg.listen,
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| AppError::Bind {
        addr: cfg.listen,
        source,
    })?;
    let admin = match cfg.admin_listen {
        Some(a) => {
            let l = TcpListener::bind(a)
                .await
                .map_err(|source| AppError::Bind { addr: a, source })?;
            let bound = l.local_addr().map_err(|source| AppError::Bind { addr: a, source })?;
            Some((l, bound))
        }
        None => None,
    };
    // TLS: the certificate is checked before anything binds.
    let tls = match &cfg.tls {
        Some(t) if cfg.role != Role::Responder => {
            let certs = crate::http::tls::CertStore::open(&t.cert_file, &t.key_file)?;
            let config = crate::http::tls::server_config(certs.clone())?;
            let l = TcpListener::bind(t.listen)
                .await
                .map_err(|source| AppError::Bind { addr: t.listen, source })?;
            let bound = l
                .local_addr()
                .map_err(|source| AppError::Bind { addr: t.listen, source })?;
            Some((l, bound, certs, config))
        }
        _ => None,
    };
    if let Some(pki) = &pki {
        warn_if_public_port_differs(&pki.settings().public_url, addr);
    }
    on_listening(&Handles {
        addr,
        admin_addr: admin.as_ref().map(|(_, a)| *a),
        tls_addr: tls.as_ref().map(|(_, a, _, _)| *a),
        pki: pki.clone(),
        published: published.clone(),
    });
    let mut responder = Responder::new(
        published.clone(),
        sync.clone(),
        metrics.clone(),
        cfg.timings.ocsp_validity,
        cfg.signing,
    );
    responder.ocsp_max_age = cfg.ocsp_max_age;
    // SCEP, like the API, needs the keys: nodes that hold them serve it.
    let scep = match (&pki, cfg.role) {
        (Some(pki), Role::All | Role::Signer) => Some(
            crate::enrol::Enrolment::new(pki.clone(), cfg.enrol_limits).with_tokens(api.as_ref().map(|a| a.tokens())),
        ),
        _ => None,
    };
    let api_tls = api.clone();
    let state = Arc::new(AppState {
        responder,
        api,
        scep: scep.clone(),
        tls: false,
        limits: cfg.limits,
        surface: if admin.is_some() { Surface::Public } else { Surface::All },
        responder_routes: cfg.role != Role::Signer,
    });
    // One shutdown signal, fanned out to every listener.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let admin_task = admin.map(|(l, _)| {
        let state = Arc::new(AppState {
            responder: Responder::new(
                published.clone(),
                sync.clone(),
                metrics.clone(),
                cfg.timings.ocsp_validity,
                cfg.signing,
            ),
            api: None,
            scep: None,
            tls: false,
            limits: cfg.limits,
            surface: Surface::Admin,
            responder_routes: false,
        });
        tokio::spawn(crate::http::serve(l, state, stopped(stop_rx.clone())))
    });
    // The TLS listener: the API and enrolment (SCEP and EST); CRL, AIA and
    // OCSP stay on plain HTTP, where relying parties look for them.
    let tls_task = tls.map(|(l, _, certs, config)| {
        let watcher = certs.watch(stop_rx.clone());
        let state = Arc::new(AppState {
            responder: Responder::new(
                published.clone(),
                sync.clone(),
                metrics.clone(),
                cfg.timings.ocsp_validity,
                cfg.signing,
            ),
            api: api_tls,
            scep,
            tls: true,
            limits: cfg.limits,
            surface: Surface::Public,
            responder_routes: false,
        });
        let served = tokio::spawn(crate::http::serve_tls(l, config, state, stopped(stop_rx.clone())));
        (served, watcher)
    });
    let main = crate::http::serve(listener, state, stopped(stop_rx));
    tokio::pin!(main);
    tokio::select! {
        () = &mut main => {}
        () = shutdown => {
            let _ = stop_tx.send(true);
            main.await;
        }
    }
    let _ = stop_tx.send(true);
    if let Some(t) = admin_task {
        let _ = t.await;
    }
    if let Some((served, watcher)) = tls_task {
        let _ = served.await;
        let _ = watcher.await;
    }
    stop.store(true, Ordering::Relaxed);
    wake.notify();
    // Joined on a plain thread, not a blocking task: the runtime waits for
    // its blocking tasks when it is dropped, and the point is not to wait.
    let (joined_tx, joined) = tokio::sync::oneshot::channel();
    let joiner = std::thread::Builder::new().name("join".into()).spawn(move || {
        if let Some(f) = following {
            f.join();
        }
        if let Some(r) = reconnect {
            let _ = r.join();
        }
        if let Some(h) = heartbeat {
            let _ = h.join();
        }
        if let Some(t) = trimming {
            let _ = t.join();
        }
        let _ = joined_tx.send(());
    });
    // The threads see `stop` within a round, but one may be inside a whole
    // snapshot load from the store (seconds at millions of certificates).
    // Nothing it holds needs saving (every acknowledged change is already
    // committed), so shutdown waits a little, then leaves it to the exit.
    if joiner.is_ok() && tokio::time::timeout(SHUTDOWN_JOIN_WAIT, joined).await.is_err() {
        tracing::warn!("stopping without waiting for the snapshot load in progress");
    }
    tracing::info!("stopped");
    Ok(())
}

/// How long shutdown waits for the snapshot threads once listeners are closed.
const SHUTDOWN_JOIN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What every thread that keeps the snapshot shares with the listeners.
#[derive(Clone)]
struct Shared {
    published: Published,
    sync: Arc<crate::snapshot::SyncState>,
    metrics: Arc<Metrics>,
    wake: Arc<Wake>,
    stop: Arc<AtomicBool>,
}

/// A responder's own key, enrolment token and disk copy (all None elsewhere).
#[derive(Clone)]
struct EdgeStart {
    edge: Option<Arc<crate::domain::engine::EdgeKey>>,
    token: Option<String>,
    disk: Option<std::path::PathBuf>,
}

/// What keeps the snapshot current: the maintainer thread and the store's
/// change watcher.
struct Following {
    thread: std::thread::JoinHandle<()>,
    watcher: Option<std::thread::JoinHandle<()>>,
}

impl Following {
    fn join(self) {
        let _ = self.thread.join();
        if let Some(w) = self.watcher {
            let _ = w.join();
        }
    }
}

/// Loads the snapshot from the store and starts following it (blocking).
fn follow(pki: Arc<Pki>, start: &EdgeStart, shared: &Shared) -> Result<Following, AppError> {
    if let Some(edge) = &start.edge {
        match pki.request_edge_signing(edge, start.token.as_deref()) {
            Ok(crate::domain::lifecycle::ResponderStanding::Requested) => tracing::warn!(
                responder = %edge.id,
                "this responder's OCSP key awaits approval (cloudpki responder approve {}); until then nonces are ignored and several CertIDs, SHA-384/512 CertIDs and unknown serials answer unauthorized",
                edge.id
            ),
            Ok(standing) => tracing::info!(responder = %edge.id, ?standing, "responder OCSP key"),
            Err(e) => tracing::warn!(responder = %edge.id, error = %e, "could not record this responder's key request"),
        }
    }
    {
        let wake = shared.wake.clone();
        pki.set_commit_hook(Arc::new(move || wake.notify()));
    }
    let mut maintainer = Maintainer::new(
        pki.clone(),
        shared.published.clone(),
        shared.sync.clone(),
        shared.metrics.clone(),
        shared.wake.clone(),
    );
    if let Some(edge) = &start.edge {
        maintainer = maintainer.with_edge(edge.clone());
    }
    if let Some(dir) = &start.disk {
        maintainer = maintainer.with_disk(dir.clone()).map_err(AppError::Thread)?;
    }
    maintainer.load()?;
    // Other processes' commits: pushed where the store can (PostgreSQL), and
    // the maintainer's poll catches anything a lost notification missed.
    let watcher = {
        let wake = shared.wake.clone();
        match pki.store().watch(Arc::new(move || wake.notify()), shared.stop.clone()) {
            Some(handle) => Some(handle.map_err(AppError::Thread)?),
            None => None,
        }
    };
    let stop = shared.stop.clone();
    let thread = std::thread::Builder::new()
        .name("snapshot".into())
        .spawn(move || maintainer.run(stop))
        .map_err(AppError::Thread)?;
    Ok(Following { thread, watcher })
}

/// A responder started from disk: tries the store every second until it
/// answers, then loads from it and follows, as a normal start would.
fn spawn_reconnect(
    open: OpenOptions,
    timings: Timings,
    start: EdgeStart,
    shared: Shared,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("reconnect".into()).spawn(move || {
        while !shared.stop.load(Ordering::Relaxed) {
            let attempt = config::open(&open).map_err(AppError::from).and_then(|mut pki| {
                pki.set_timings(timings);
                follow(Arc::new(pki), &start, &shared)
            });
            match attempt {
                Ok(following) => {
                    tracing::info!("the store is reachable again: snapshot reloaded from it");
                    following.join();
                    return;
                }
                Err(e) => tracing::debug!(error = %e, "the store is still unreachable"),
            }
            for _ in 0..10 {
                if shared.stop.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    })
}

/// This machine's name, for people reading `cloudpki responder list`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "responder".into())
}

/// The public URL is fixed when the store is initialised (certificates
/// embed it). Served on another port, every URL in every certificate points
/// where this process does not answer: fine behind a proxy or load balancer
/// that forwards there, a broken PKI otherwise. Said loudly at every start.
fn warn_if_public_port_differs(public_url: &str, listening: SocketAddr) {
    let Some(public_port) = config::public_url_port(public_url) else {
        return;
    };
    if public_port != listening.port() {
        tracing::warn!(
            public_url,
            public_port,
            listen_port = listening.port(),
            "the stored public URL {public_url} names port {public_port}, but this server listens on port {}: \
             certificates' CRL, AIA and OCSP URLs reach it only through a proxy forwarding port {public_port} \
             here (the public URL is fixed when the data directory is created)",
            listening.port()
        );
    }
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Asks the allocator to return its free pages every `every`, until `stop`
/// (see the malloc-trim crate). A thread of its own: the walk locks each
/// arena in turn, and must not run on a runtime worker.
fn spawn_allocator_trim(
    every: std::time::Duration,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("allocator-trim".into())
        .spawn(move || {
            let step = std::time::Duration::from_millis(100).min(every);
            let mut waited = std::time::Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(step);
                waited += step;
                if waited < every {
                    continue;
                }
                waited = std::time::Duration::ZERO;
                let started = std::time::Instant::now();
                let Some(released) = malloc_trim::trim() else {
                    return; // no such call on this system
                };
                metrics.allocator_trim_seconds.observe(started.elapsed().as_secs_f64());
                metrics
                    .allocator_trims
                    .with_label_values(&[if released { "true" } else { "false" }])
                    .inc();
            }
        })
}

/// Refreshes a signer's registration every [`crate::domain::kek::HEARTBEAT_EVERY`]
/// until `stop`, then removes it.
fn spawn_heartbeat(
    pki: Arc<Pki>,
    mut registration: crate::domain::kek::SignerRegistration,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("kek-heartbeat".into()).spawn(move || {
        let step = std::time::Duration::from_millis(100);
        let mut waited = std::time::Duration::ZERO;
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(step);
            waited += step;
            if waited < crate::domain::kek::HEARTBEAT_EVERY {
                continue;
            }
            waited = std::time::Duration::ZERO;
            if let Err(e) = registration.beat(&pki) {
                tracing::error!(error = %e, "KEK registration heartbeat failed");
            }
        }
        if let Err(e) = registration.leave(&pki) {
            tracing::warn!(error = %e, "could not remove the KEK registration");
        }
    })
}

/// How long the first administrator token lives: long enough to set up
/// roles and mint proper tokens, short enough that a leaked log line or
/// file is soon worthless (it can also be revoked by id).
pub const FIRST_ADMIN_TOKEN_TTL: i64 = 24 * 3600;

/// The file the first administrator token is written to when stdout is not a terminal.
pub const FIRST_ADMIN_TOKEN_FILE: &str = "admin-token";

/// On the first `serve` of a store: assigns Intune Administrator to principal
/// `admin` and mints a token for it. The marker, the assignment and the
/// token's record commit in one transaction, so a failure leaves either all
/// of them (and the token delivered) or none (and the next start tries again).
fn first_admin_token(
    pki: &Pki,
    tokens: &crate::auth::TokenIssuer,
    data_dir: &std::path::Path,
) -> Result<Option<FirstToken>, AppError> {
    const META: &str = "admin_token_issued";
    let auth = |e: &dyn std::fmt::Display| AppError::Auth(e.to_string());
    let mut tx = pki.store().begin(crate::store::TxMode::Write).map_err(|e| auth(&e))?;
    if tx.meta(META).map_err(|e| auth(&e))?.is_some() {
        return Ok(None);
    }
    let (token, row) = tokens
        .issue(
            "admin",
            &["DeviceManagementCloudCA.ReadWrite.All".to_owned()],
            &[],
            FIRST_ADMIN_TOKEN_TTL,
        )
        .map_err(|e| auth(&e))?;
    tx.set_meta(META, "1").map_err(|e| auth(&e))?;
    tx.put_assignment("admin", crate::auth::INTUNE_ADMINISTRATOR, "[\"0\"]")
        .map_err(|e| auth(&e))?;
    tx.put_token(&row).map_err(|e| auth(&e))?;
    // Delivered before the commit: a token file that exists without its
    // commit is replaced on the next start, never the other way round.
    let delivery = if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        FirstToken::Terminal(token)
    } else {
        let path = data_dir.join(FIRST_ADMIN_TOKEN_FILE);
        let _ = std::fs::create_dir_all(data_dir);
        let _ = std::fs::remove_file(&path);
        crate::config::write_private(&path, format!("{token}\n").as_bytes())
            .map_err(|e| auth(&format!("cannot write {}: {e}", path.display())))?;
        FirstToken::File(path)
    };
    tx.commit().map_err(|e| auth(&e))?;
    Ok(Some(delivery))
}

/// Where the first administrator token went.
enum FirstToken {
    Terminal(String),
    File(std::path::PathBuf),
}

impl FirstToken {
    fn announce(&self) {
        let hours = FIRST_ADMIN_TOKEN_TTL / 3600;
        match self {
            FirstToken::Terminal(token) => {
                println!(
                    "administrator token (shown once; principal \"admin\", Intune Administrator, valid {hours} hours; `cloudpki token revoke` withdraws it):"
                );
                println!("{token}");
            }
            FirstToken::File(path) => println!(
                "administrator token (principal \"admin\", Intune Administrator, valid {hours} hours) written to {} (mode 0600; stdout is not a terminal)",
                path.display()
            ),
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed when this is
/// called, not when the future is first polled: call it before binding the
/// listener, so a SIGTERM that arrives as soon as the port answers is a
/// graceful shutdown, not the default kill. Must be called inside the runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let interrupt = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        match term {
            Some(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = interrupt => {}
                }
            }
            None => {
                let _ = interrupt.await;
            }
        }
        #[cfg(not(unix))]
        {
            let _ = interrupt.await;
        }
        tracing::info!("shutting down: finishing in-flight requests");
    }
}
