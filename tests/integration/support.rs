//! Helpers: a throwaway data directory, the CLI, openssl and pkilint.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_cloudpki");

/// Repository root (for tests/tools/lint.py).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A data directory plus a scratch area, removed when dropped.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--data-dir").arg(self.data_dir());
        c.env_remove("CLOUDPKI_KEK")
            .env_remove("CLOUDPKI_PUBLIC_URL")
            .env_remove("CLOUDPKI_DATA_DIR");
        c
    }

    /// Runs the CLI; returns the output whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run cloudpki")
    }

    /// Runs the CLI with `--json`, expecting success; returns the parsed JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.command().arg("--json").args(args).output().expect("run cloudpki");
        assert!(
            out.status.success(),
            "cloudpki {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "cloudpki {args:?}: bad JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Runs the CLI expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "cloudpki {args:?} should have failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Writes stdout of a successful CLI run to a file.
    pub fn save(&self, args: &[&str], name: &str) -> PathBuf {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "cloudpki {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let p = self.path(name);
        std::fs::write(&p, &out.stdout).expect("write");
        p
    }

    pub fn create_ca(&self, extra: &[&str]) -> Value {
        let mut args = vec!["ca", "create"];
        args.extend_from_slice(extra);
        self.json(&args)
    }

    /// A P-256 root "{name} Root" and an issuing CA "{name} Issuing" under
    /// it, through the CLI; returns their ids.
    pub fn ec_hierarchy(&self, name: &str) -> (String, String) {
        self.ec_hierarchy_with(name, &[])
    }

    /// As [`Env::ec_hierarchy`], with more `ca create` arguments for the issuing CA.
    pub fn ec_hierarchy_with(&self, name: &str, issuing_args: &[&str]) -> (String, String) {
        let root_cn = format!("{name} Root");
        let root = id(&self.create_ca(&["--type", "root", "--common-name", &root_cn, "--key-size", "eCP256"]));
        let issuing_cn = format!("{name} Issuing");
        let mut args = vec![
            "--type",
            "issuing",
            "--issuer",
            &root,
            "--common-name",
            &issuing_cn,
            "--key-size",
            "eCP256",
        ];
        args.extend_from_slice(issuing_args);
        let issuing = id(&self.create_ca(&args));
        (root, issuing)
    }

    /// Issues a leaf from `csr` with the CLI, saved as PEM in `name`; returns
    /// its path and its serial (uppercase hex, as openssl prints it).
    pub fn issue_pem(&self, ca: &str, csr: &Path, name: &str) -> (PathBuf, String) {
        let pem = self.save(
            &["cert", "issue", "--ca", ca, "--csr", csr.to_str().unwrap(), "--pem"],
            name,
        );
        let serial = serial_of(&pem);
        (pem, serial)
    }

    /// Makes a key and a CSR with openssl; returns the CSR path.
    pub fn openssl_csr(&self, name: &str, key_args: &[&str], subject: &str) -> PathBuf {
        let key = self.path(&format!("{name}.key"));
        let csr = self.path(&format!("{name}.csr"));
        let mut args = vec!["req", "-new", "-nodes", "-newkey"];
        args.extend_from_slice(key_args);
        let (k, c) = (key.to_str().unwrap().to_owned(), csr.to_str().unwrap().to_owned());
        args.extend_from_slice(&["-keyout", &k, "-subj", subject, "-out", &c]);
        openssl(&args);
        csr
    }
}

pub fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

/// Runs openssl, expecting success; returns stdout.
/// A PEM certificate's serial, as `openssl x509 -serial` prints it (uppercase hex).
pub fn serial_of(pem: &Path) -> String {
    let out = openssl(&["x509", "-in", pem.to_str().unwrap(), "-noout", "-serial"]);
    out.trim().trim_start_matches("serial=").to_owned()
}

/// The CRL URL a certificate names (its CRL Distribution Point): where a
/// relying party fetches the CRL that covers it.
pub fn cdp_url(pem: &std::path::Path) -> String {
    let text = openssl(&[
        "x509",
        "-in",
        pem.to_str().unwrap(),
        "-noout",
        "-ext",
        "crlDistributionPoints",
    ]);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("URI:"))
        .unwrap_or_else(|| panic!("no CRL distribution point: {text}"))
        .to_owned()
}

pub fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `openssl verify` of `leaf` against `root` with `untrusted` intermediates.
pub fn openssl_verify(root: &Path, untrusted: &Path, leaf: &Path) {
    let out = openssl(&[
        "verify",
        "-x509_strict",
        "-CAfile",
        root.to_str().unwrap(),
        "-untrusted",
        untrusted.to_str().unwrap(),
        leaf.to_str().unwrap(),
    ]);
    assert!(out.trim_end().ends_with(": OK"), "openssl verify: {out}");
}

/// pkilint through tests/tools/lint.py; fails the test on any ERROR/FATAL
/// finding or if pkilint is missing.
pub fn pkilint(kind: &str, files: &[PathBuf]) {
    let out = Command::new("python3")
        .arg(repo().join("tests/tools/lint.py"))
        .arg(kind)
        .args(files)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "pkilint {kind} reported errors (exit {:?}):\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A cloudpki server running in this process on a loopback port whose
/// number is also the data directory's public URL, so the URLs inside
/// certificates point at it.
pub struct TestServer {
    pub url: String,
    pub handles: cloudpki::app::Handles,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl Env {
    /// Initialises the data directory for a server on a free port and starts it.
    pub fn server(&self) -> TestServer {
        self.server_with(&[])
    }

    /// Like [`Env::server`], with extra `init` arguments.
    pub fn server_with(&self, init_args: &[&str]) -> TestServer {
        let port = self.init(init_args);
        self.start_server(port)
    }

    /// Like [`Env::server`], with the serve configuration adjusted by `adjust`.
    pub fn server_adjusted(&self, adjust: impl FnOnce(&mut cloudpki::app::ServeConfig)) -> TestServer {
        let port = self.init(&[]);
        let mut cfg = self.serve_config(port);
        adjust(&mut cfg);
        self.start_server_cfg(cfg)
    }

    /// Initialises the data directory for a server on a free port; returns the port.
    fn init(&self, init_args: &[&str]) -> u16 {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let mut args = vec!["--public-url", &url, "init"];
        args.extend_from_slice(init_args);
        let out = self.run(&args);
        assert!(out.status.success(), "init: {}", String::from_utf8_lossy(&out.stderr));
        port
    }

    /// Starts a server on the existing data directory.
    pub fn start_server(&self, port: u16) -> TestServer {
        self.start_server_with(port, Default::default())
    }

    /// The configuration `start_server` uses, to adjust before `start_server_cfg`.
    pub fn serve_config(&self, port: u16) -> cloudpki::app::ServeConfig {
        cloudpki::app::ServeConfig::new(
            cloudpki::config::OpenOptions::new(self.data_dir()),
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        )
    }

    /// Starts a server with the given HTTP limits.
    pub fn start_server_with(&self, port: u16, limits: cloudpki::http::Limits) -> TestServer {
        let mut cfg = self.serve_config(port);
        cfg.limits = limits;
        self.start_server_cfg(cfg)
    }

    /// Starts a server with a full configuration.
    pub fn start_server_cfg(&self, cfg: cloudpki::app::ServeConfig) -> TestServer {
        let port = cfg.listen.port();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let result = rt.block_on(cloudpki::app::run(
                cfg,
                |h| {
                    let _ = ready_tx.send(h.clone());
                },
                async {
                    let _ = stop_rx.await;
                },
            ));
            if let Err(e) = result {
                panic!("server failed: {e}");
            }
        });
        let handles = ready_rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("server started");
        TestServer {
            url: format!("http://127.0.0.1:{port}"),
            handles,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

impl TestServer {
    /// Stops the server and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// An HTTP exchange done with curl (a client we did not write).
pub struct Http {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Http {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends a request with curl; `body` is posted when given.
pub fn curl(method: &str, url: &str, body: Option<&[u8]>, headers: &[(&str, &str)]) -> Http {
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("head");
    let out = dir.path().join("out");
    let mut c = Command::new("curl");
    c.args(["-s", "-g", "--path-as-is", "-X", method, "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&out);
    for (k, v) in headers {
        c.arg("-H").arg(format!("{k}: {v}"));
    }
    if let Some(b) = body {
        let f = dir.path().join("body");
        std::fs::write(&f, b).unwrap();
        c.arg("--data-binary").arg(format!("@{}", f.display()));
    }
    c.arg(url);
    let res = c.output().expect("curl is installed");
    assert!(
        res.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    let head = std::fs::read_to_string(&head).unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    Http {
        status,
        headers,
        body: std::fs::read(&out).unwrap_or_default(),
    }
}

/// Runs openssl, returning (success, stdout + stderr).
pub fn openssl_any(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
