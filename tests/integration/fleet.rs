//! A fleet on loopback: PostgreSQL, one signer, two responders, each a real
//! `cloudpki serve` process. Revocations through the signer's API must reach
//! both responders (OCSP and CRL); PostgreSQL is stopped and restarted and a
//! responder is killed with SIGKILL mid-test; nothing may be lost.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use der::Decode;
use serde_json::{json, Value};

use crate::support::{curl, free_port, openssl, openssl_any, repo, BIN};

/// A throwaway PostgreSQL cluster of this test's own, so it can be stopped.
struct Postgres {
    dir: PathBuf,
    port: u16,
    url: String,
}

/// Runs scripts/pg-throwaway.sh; returns its stdout.
fn pg_script(args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(repo().join("scripts/pg-throwaway.sh"))
        .args(args)
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "PostgreSQL is required for the fleet test (scripts/install-test-deps.sh installs it): {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Postgres {
    fn start(dir: &Path, port: u16) -> Postgres {
        let out = pg_script(&["start", dir.to_str().unwrap(), &port.to_string()]);
        let url = out.lines().last().unwrap_or_default().trim().to_owned();
        assert!(url.starts_with("postgres://"), "{url}");
        // Every node reaches PostgreSQL over TLS, checking the server's
        // certificate against the cluster's CA and its name (127.0.0.1).
        assert!(url.contains("sslmode=verify-full&sslrootcert="), "{url}");
        Postgres {
            dir: dir.to_path_buf(),
            port,
            url,
        }
    }

    fn stop(&self) {
        pg_script(&["stop", self.dir.to_str().unwrap()]);
    }

    /// The nodes' sessions (application name cloudpki…): how many, and how
    /// many of them are encrypted.
    fn node_sessions(&self) -> (i64, i64) {
        let mut client = cloudpki::store::PgConnector::parse(&self.url)
            .unwrap()
            .connect()
            .unwrap();
        let row = client
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a
                 JOIN pg_stat_ssl s USING (pid) WHERE a.application_name LIKE 'cloudpki%'",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    }

    fn restart(&self) {
        pg_script(&["start", self.dir.to_str().unwrap(), &self.port.to_string()]);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo().join("scripts/pg-throwaway.sh"))
            .arg("stop")
            .arg(&self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(self.dir.with_extension("lock"));
    }
}

/// One `cloudpki serve` process.
struct Node {
    child: Child,
    url: String,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    stdout: Arc<Mutex<String>>,
    stderr: PathBuf,
}

impl Node {
    fn spawn(args: Vec<String>, envs: Vec<(String, String)>, port: u16, stderr: PathBuf) -> Node {
        let mut c = Command::new(BIN);
        c.args(&args)
            .env_remove("CLOUDPKI_KEK")
            .env_remove("CLOUDPKI_DATABASE")
            .env_remove("CLOUDPKI_PUBLIC_URL")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap());
        for (k, v) in &envs {
            c.env(k, v);
        }
        let mut child = c.spawn().unwrap();
        let stdout = Arc::new(Mutex::new(String::new()));
        {
            let out = child.stdout.take().unwrap();
            let sink = stdout.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let mut s = sink.lock().unwrap();
                    s.push_str(&line);
                    s.push('\n');
                }
            });
        }
        let node = Node {
            child,
            url: format!("http://127.0.0.1:{port}"),
            args,
            envs,
            stdout,
            stderr,
        };
        node.wait_status("/healthz", 200, Duration::from_secs(60));
        node
    }

    fn restart(&mut self) {
        let port: u16 = self.url.rsplit(':').next().unwrap().parse().unwrap();
        let fresh = Node::spawn(self.args.clone(), self.envs.clone(), port, self.stderr.clone());
        let old = std::mem::replace(self, fresh);
        drop(old);
    }

    fn log(&self) -> String {
        format!(
            "{}\n{}",
            self.stdout.lock().unwrap(),
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    fn wait_status(&self, path: &str, status: u16, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some((s, body)) = http(&self.url, "GET", path, &[], b"") {
                if s == status {
                    return String::from_utf8_lossy(&body).into_owned();
                }
            }
            assert!(
                Instant::now() < deadline,
                "{}{path} never answered {status}:\n{}",
                self.url,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn metric(&self, name: &str) -> i64 {
        let (_, body) = http(&self.url, "GET", "/metrics", &[], b"").unwrap();
        String::from_utf8_lossy(&body)
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(-1.0) as i64
    }
}

/// Anything with a base URL to ask.
trait HasUrl {
    fn url(&self) -> &str;
}

impl HasUrl for Node {
    fn url(&self) -> &str {
        &self.url
    }
}

/// A base URL alone (for threads that must not own a process).
struct Probe(String);

impl HasUrl for Probe {
    fn url(&self) -> &str {
        &self.0
    }
}

impl Node {
    fn probe(url: &str) -> Probe {
        Probe(url.to_owned())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 exchange (one request per connection): fast enough to
/// poll every few milliseconds. None when the node does not answer.
fn http(base: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Option<(u16, Vec<u8>)> {
    let addr = base.strip_prefix("http://")?;
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut payload = raw[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        payload = dechunk(&payload);
    }
    Some((status, payload))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
    out
}

#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Good,
    Revoked,
    Other,
}

/// Asks a node's OCSP endpoint; decodes the answer with x509-ocsp.
fn ocsp_status(node: &impl HasUrl, request: &[u8]) -> Option<Seen> {
    let (status, body) = http(
        node.url(),
        "POST",
        "/ocsp",
        &[("Content-Type", "application/ocsp-request")],
        request,
    )?;
    if status != 200 {
        return None;
    }
    let resp = x509_ocsp::OcspResponse::from_der(&body).ok()?;
    let bytes = resp.response_bytes?;
    let basic = x509_ocsp::BasicOcspResponse::from_der(bytes.response.as_bytes()).ok()?;
    Some(match basic.tbs_response_data.responses.first()?.cert_status {
        x509_ocsp::CertStatus::Good(_) => Seen::Good,
        x509_ocsp::CertStatus::Revoked(_) => Seen::Revoked,
        _ => Seen::Other,
    })
}

/// Serials (uppercase hex, no leading zeros) on a node's CRL for `ca`.
/// Every serial on any of a CA's CRLs, as one node serves them: the URLs
/// come from its `partitions.json` (CCADB's list); None until each is served.
fn crl_serials(node: &Node, ca: &str) -> Option<Vec<String>> {
    let (status, body) = http(&node.url, "GET", &format!("/crls/{ca}_v1/partitions.json"), &[], b"")?;
    if status != 200 {
        return None;
    }
    let urls: Vec<String> = serde_json::from_slice(&body).ok()?;
    let mut serials = Vec::new();
    for url in urls {
        // The URLs carry the fleet's public name; ask this node for the path.
        let path = &url[url.find("/crls/")?..];
        let (status, body) = http(&node.url, "GET", path, &[], b"")?;
        if status != 200 {
            return None;
        }
        let crl = x509_cert::crl::CertificateList::from_der(&body).ok()?;
        serials.extend(
            crl.tbs_cert_list
                .revoked_certificates
                .unwrap_or_default()
                .iter()
                .map(|r| norm(&hex(r.serial_number.as_bytes()))),
        );
        // And its delta CRL, where the CA publishes one.
        let delta = path.replace(".crl", "-delta.crl");
        if let Some((200, body)) = http(&node.url, "GET", &delta, &[], b"") {
            let crl = x509_cert::crl::CertificateList::from_der(&body).ok()?;
            serials.extend(
                crl.tbs_cert_list
                    .revoked_certificates
                    .unwrap_or_default()
                    .iter()
                    .map(|r| norm(&hex(r.serial_number.as_bytes()))),
            );
        }
    }
    Some(serials)
}

/// The CRL number of every CRL of a CA a node serves (complete and delta),
/// by file name; None until each is served.
fn crl_numbers(node: &Node, ca: &str) -> Option<std::collections::BTreeMap<String, u64>> {
    let (status, body) = http(&node.url, "GET", &format!("/crls/{ca}_v1/partitions.json"), &[], b"")?;
    if status != 200 {
        return None;
    }
    let urls: Vec<String> = serde_json::from_slice(&body).ok()?;
    let mut out = std::collections::BTreeMap::new();
    for url in urls {
        let path = url[url.find("/crls/")?..].to_owned();
        for path in [path.clone(), path.replace(".crl", "-delta.crl")] {
            let (status, body) = http(&node.url, "GET", &path, &[], b"")?;
            if status == 404 && path.ends_with("-delta.crl") {
                continue;
            }
            if status != 200 {
                return None;
            }
            let crl = x509_cert::crl::CertificateList::from_der(&body).ok()?;
            let number = crl
                .tbs_cert_list
                .crl_extensions?
                .iter()
                .find(|e| e.extn_id.to_string() == "2.5.29.20")
                .map(|e| x509_cert::ext::pkix::CrlNumber::from_der(e.extn_value.as_bytes()))?
                .ok()?;
            let n = number.0.as_bytes().iter().fold(0u64, |n, b| n * 256 + u64::from(*b));
            out.insert(path.rsplit('/').next()?.to_owned(), n);
        }
    }
    Some(out)
}

/// A fresh P-256 key in `dir` and a PEM CSR for `/CN={cn}`.
fn new_csr(dir: &Path, cn: &str) -> String {
    let key = dir.join(format!("{cn}.key"));
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-subj",
        &format!("/CN={cn}"),
    ])
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn norm(serial: &str) -> String {
    let s = serial.trim_start_matches('0').to_ascii_uppercase();
    if s.is_empty() {
        "0".into()
    } else {
        s
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Leaf {
    id: String,
    serial: String,
    request: Vec<u8>,
}

struct Fleet {
    dir: tempfile::TempDir,
    pg: Postgres,
    signer: Node,
    responders: Vec<Node>,
    token: String,
    kek: String,
}

impl Fleet {
    fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.api_at(&self.signer, method, path, body)
    }

    /// The API of one signer (any signer takes the administrator's token).
    fn api_at(&self, signer: &Node, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let auth = format!("Bearer {}", self.token);
        let bytes = body.map(|b| b.to_string().into_bytes());
        let r = curl(
            method,
            &format!("{}/beta/deviceManagement{path}", signer.url),
            bytes.as_deref(),
            &[("Authorization", &auth), ("Content-Type", "application/json")],
        );
        (r.status, serde_json::from_slice(&r.body).unwrap_or(Value::Null))
    }

    fn api_ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.api_ok_at(&self.signer, method, path, body)
    }

    fn api_ok_at(&self, signer: &Node, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.api_at(signer, method, path, body);
        assert!((200..300).contains(&status), "{method} {path}: {status} {v}");
        v
    }

    /// A root and an issuing CA (P-256) through the API; `issuing_extra`
    /// adds properties to the issuing CA's body. Returns their ids.
    fn hierarchy(&self, name: &str, issuing_extra: Value) -> (String, String) {
        let root = self.api_ok(
            "POST",
            "/cloudCertificationAuthority",
            Some(json!({"displayName": format!("{name} Root"),
                "cloudCertificationAuthorityType": "rootCertificationAuthority",
                "commonName": format!("{name} Root"), "certificateKeySize": "eCP256", "validityPeriodInYears": 10})),
        );
        let root_id = root["id"].as_str().unwrap().to_owned();
        let mut body = json!({"displayName": format!("{name} Issuing"),
            "cloudCertificationAuthorityType": "issuingCertificationAuthority",
            "certificationAuthorityIssuerId": root_id, "commonName": format!("{name} Issuing"),
            "certificateKeySize": "eCP256", "validityPeriodInYears": 4});
        if let (Some(b), Some(extra)) = (body.as_object_mut(), issuing_extra.as_object()) {
            b.extend(extra.clone());
        }
        let issuing = self.api_ok("POST", "/cloudCertificationAuthority", Some(body));
        (root_id, issuing["id"].as_str().unwrap().to_owned())
    }

    /// Revokes through the signer's API; returns when the API acknowledged.
    fn revoke(&self, issuing: &str, leaf: &Leaf) -> Instant {
        let v = self.api_ok(
            "POST",
            &format!("/cloudCertificationAuthority/{issuing}/revokeLeafCertificate"),
            Some(json!({"leafCertificateId": leaf.id})),
        );
        assert_eq!(v["value"]["certificateStatus"], "revoked");
        Instant::now()
    }

    fn wait_ocsp(&self, node: &Node, leaf: &Leaf, want: Seen, limit: Duration) -> Instant {
        let deadline = Instant::now() + limit;
        loop {
            if ocsp_status(node, &leaf.request).as_ref() == Some(&want) {
                return Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "{} never answered {want:?} for {}:\n{}",
                node.url,
                leaf.serial,
                node.log()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn wait_crl(&self, node: &Node, ca: &str, serial: &str, limit: Duration) -> Instant {
        let deadline = Instant::now() + limit;
        loop {
            if crl_serials(node, ca).is_some_and(|s| s.iter().any(|x| *x == norm(serial))) {
                return Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "{} CRL never listed {serial}:\n{}",
                node.url,
                node.log()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn start_fleet() -> Fleet {
    start_fleet_with("")
}

/// A fleet whose signer reads `signer_config` (TOML) as its configuration file.
fn start_fleet_with(signer_config: &str) -> Fleet {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("signer.toml");
    std::fs::write(&config, signer_config).unwrap();
    // Under target/, which the postgres account can reach (a private /tmp
    // directory it could not); removed when the test ends.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let pg_dir = repo().join(format!("target/pg-fleet-{}-{nanos}", std::process::id()));
    let pg = Postgres::start(&pg_dir, free_port());
    let kek = openssl(&["rand", "-base64", "32"]).trim().to_owned();
    let signer_port = free_port();
    let data = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let out = Command::new(BIN)
        .args(["--data-dir", &data("signer"), "--database", &pg.url])
        .args(["--public-url", "http://pki.fleet.test", "init"])
        .env("CLOUDPKI_KEK", &kek)
        .output()
        .unwrap();
    assert!(out.status.success(), "init: {}", String::from_utf8_lossy(&out.stderr));
    let signer = Node::spawn(
        vec![
            "--data-dir".into(),
            data("signer"),
            "--database".into(),
            // Named, so tests can tell which signer holds the lead.
            format!("{}&application_name=cloudpki-signer-a", pg.url),
            "serve".into(),
            "--role".into(),
            "signer".into(),
            "--config".into(),
            config.to_str().unwrap().to_owned(),
            "--listen".into(),
            format!("127.0.0.1:{signer_port}"),
        ],
        vec![("CLOUDPKI_KEK".into(), kek.clone())],
        signer_port,
        dir.path().join("signer.log"),
    );
    // The first serve writes the administrator token to a private file
    // (stdout is not a terminal here) and says where.
    let deadline = Instant::now() + Duration::from_secs(10);
    let token_file = std::path::Path::new(&data("signer")).join("admin-token");
    let token = loop {
        let out = signer.stdout.lock().unwrap().clone();
        if out.contains("administrator token") && out.contains("admin-token") {
            if let Ok(t) = std::fs::read_to_string(&token_file) {
                break t.trim().to_owned();
            }
        }
        assert!(Instant::now() < deadline, "no admin token: {}", signer.log());
        std::thread::sleep(Duration::from_millis(20));
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the token file is readable by its owner only");
    }
    let responders = (0..2)
        .map(|i| {
            let port = free_port();
            let name = format!("responder-{i}");
            Node::spawn(
                vec![
                    "--data-dir".into(),
                    data(&name),
                    "--database".into(),
                    pg.url.clone(),
                    "serve".into(),
                    "--role".into(),
                    "responder".into(),
                    "--listen".into(),
                    format!("127.0.0.1:{port}"),
                ],
                Vec::new(),
                port,
                dir.path().join(format!("{name}.log")),
            )
        })
        .collect();
    Fleet {
        dir,
        pg,
        signer,
        responders,
        token,
        kek,
    }
}

#[test]
fn fleet_on_postgres_signer_and_keyless_responders() {
    let mut f = start_fleet();
    for r in &f.responders {
        r.wait_status("/readyz", 200, Duration::from_secs(30));
    }
    // Pools, LISTEN threads and the signer's leader-lock session: all TLS.
    let (sessions, encrypted) = f.pg.node_sessions();
    assert!(sessions >= 4, "{sessions} node sessions");
    assert_eq!(encrypted, sessions, "node sessions without TLS");
    // The signer serves no responder routes; responders no API.
    assert_eq!(
        http(&f.signer.url, "GET", "/crls/x_v1/current.crl", &[], b"")
            .unwrap()
            .0,
        404
    );
    assert_eq!(
        http(
            &f.responders[0].url,
            "GET",
            "/beta/deviceManagement/cloudCertificationAuthority",
            &[],
            b""
        )
        .unwrap()
        .0,
        404
    );

    let (root_id, issuing_id) = f.hierarchy("Fleet", json!({}));

    // AIA from a responder: the CA certificates, served without any key.
    let work = f.dir.path().to_path_buf();
    let fetch_pem = |node: &Node, id: &str, name: &str| {
        let path = work.join(name);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some((200, body)) = http(&node.url, "GET", &format!("/cacerts/{id}_v1/cert.pem"), &[], b"") {
                std::fs::write(&path, body).unwrap();
                return path;
            }
            assert!(Instant::now() < deadline, "no AIA for {id}: {}", node.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let root_pem = fetch_pem(&f.responders[0], &root_id, "root.pem");
    let issuing_pem = fetch_pem(&f.responders[1], &issuing_id, "issuing.pem");
    let verify = openssl(&[
        "verify",
        "-CAfile",
        root_pem.to_str().unwrap(),
        issuing_pem.to_str().unwrap(),
    ]);
    assert!(verify.contains("OK"), "{verify}");

    // Leaves through the API, and their OCSP requests built by openssl.
    let mut leaves = Vec::new();
    for i in 0..30 {
        let csr = new_csr(&work, &format!("fleet-device-{i}"));
        let v = f.api_ok(
            "POST",
            &format!("/cloudCertificationAuthority/{issuing_id}/issueLeafCertificate"),
            Some(json!({"certificateSigningRequest": csr, "deviceName": format!("fleet-device-{i}")})),
        );
        let der =
            <base64ct::Base64 as base64ct::Encoding>::decode_vec(v["value"]["certificate"].as_str().unwrap()).unwrap();
        let cert = work.join(format!("leaf{i}.der"));
        std::fs::write(&cert, &der).unwrap();
        let pem = work.join(format!("leaf{i}.pem"));
        openssl(&[
            "x509",
            "-inform",
            "DER",
            "-in",
            cert.to_str().unwrap(),
            "-out",
            pem.to_str().unwrap(),
        ]);
        let req = work.join(format!("leaf{i}.req"));
        openssl(&[
            "ocsp",
            "-issuer",
            issuing_pem.to_str().unwrap(),
            "-cert",
            pem.to_str().unwrap(),
            "-no_nonce",
            "-reqout",
            req.to_str().unwrap(),
        ]);
        leaves.push(Leaf {
            id: v["value"]["id"].as_str().unwrap().to_owned(),
            serial: v["value"]["serialNumber"].as_str().unwrap().to_owned(),
            request: std::fs::read(&req).unwrap(),
        });
    }
    for r in &f.responders {
        for l in &leaves {
            f.wait_ocsp(r, l, Seen::Good, Duration::from_secs(5));
        }
    }
    // A nonce request to a keyless responder: answered from the pre-signed set
    // (no nonce echoed), and openssl accepts the signature.
    let (_, out) = openssl_any(&[
        "ocsp",
        "-issuer",
        issuing_pem.to_str().unwrap(),
        "-cert",
        work.join("leaf0.pem").to_str().unwrap(),
        "-url",
        &format!("{}/ocsp", f.responders[0].url),
        "-CAfile",
        root_pem.to_str().unwrap(),
    ]);
    assert!(out.contains(": good") && out.contains("Response verify OK"), "{out}");

    // Propagation: revoke through the signer, time until each responder says so.
    let (mut ocsp_times, mut crl_times) = (Vec::new(), Vec::new());
    for leaf in &leaves[..20] {
        let acked = f.revoke(&issuing_id, leaf);
        for r in &f.responders {
            ocsp_times.push(f.wait_ocsp(r, leaf, Seen::Revoked, Duration::from_secs(5)) - acked);
        }
        for r in &f.responders {
            crl_times.push(f.wait_crl(r, &issuing_id, &leaf.serial, Duration::from_secs(5)) - acked);
        }
    }
    ocsp_times.sort();
    crl_times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "fleet propagation over {} answers (2 responders): OCSP p50 {:.1} ms p99 {:.1} ms max {:.1} ms; CRL p50 {:.1} ms p99 {:.1} ms max {:.1} ms",
        ocsp_times.len(),
        ms(percentile(&ocsp_times, 0.5)),
        ms(percentile(&ocsp_times, 0.99)),
        ms(*ocsp_times.last().unwrap()),
        ms(percentile(&crl_times, 0.5)),
        ms(percentile(&crl_times, 0.99)),
        ms(*crl_times.last().unwrap()),
    );
    assert!(
        percentile(&ocsp_times, 0.99) < Duration::from_secs(1),
        "OCSP p99 over 1 s"
    );
    assert!(
        percentile(&crl_times, 0.99) < Duration::from_secs(1),
        "CRL p99 over 1 s"
    );

    // The CRL a keyless responder serves verifies under the issuing CA.
    let (_, crl) = http(
        &f.responders[1].url,
        "GET",
        &format!("/crls/{issuing_id}_v1/current.crl"),
        &[],
        b"",
    )
    .unwrap();
    let crl_path = work.join("issuing.crl");
    std::fs::write(&crl_path, &crl).unwrap();
    let (ok, text) = openssl_any(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        crl_path.to_str().unwrap(),
        "-CAfile",
        issuing_pem.to_str().unwrap(),
        "-noout",
    ]);
    assert!(ok && text.contains("verify OK"), "{text}");

    // PostgreSQL goes away: responders keep answering from their snapshot and
    // say they are degraded; API writes fail with 503 and change nothing.
    f.pg.stop();
    for r in &f.responders {
        let body = r.wait_status("/readyz", 503, Duration::from_secs(10));
        assert!(body.contains("degraded"), "{body}");
        assert_eq!(ocsp_status(r, &leaves[0].request), Some(Seen::Revoked));
        assert_eq!(ocsp_status(r, &leaves[25].request), Some(Seen::Good));
        assert!(r.metric("cloudpki_store_degraded") == 1);
    }
    let (status, body) = f.api(
        "POST",
        &format!("/cloudCertificationAuthority/{issuing_id}/revokeLeafCertificate"),
        Some(json!({"leafCertificateId": leaves[20].id})),
    );
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "ServiceUnavailable");
    // A responder killed during the outage starts again from the snapshot it
    // kept on its own disk: degraded, but every answer right.
    f.responders[1].child.kill().unwrap();
    f.responders[1].child.wait().unwrap();
    let cold = Instant::now();
    f.responders[1].restart();
    loop {
        let r = &f.responders[1];
        if ocsp_status(r, &leaves[0].request) == Some(Seen::Revoked)
            && ocsp_status(r, &leaves[25].request) == Some(Seen::Good)
        {
            break;
        }
        assert!(
            cold.elapsed() < Duration::from_secs(30),
            "no answer from disk:\n{}",
            r.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    println!(
        "cold start from the disk snapshot with PostgreSQL down: first correct OCSP answer after {:?}",
        cold.elapsed()
    );
    {
        let r = &f.responders[1];
        let body = r.wait_status("/readyz", 503, Duration::from_secs(5));
        assert!(body.contains("degraded"), "{body}");
        assert!(
            r.log().contains("serving the snapshot last written to disk"),
            "{}",
            r.log()
        );
        assert!(
            r.metric("cloudpki_snapshot_age_seconds") >= 1,
            "the age counts from the last sync"
        );
        for (i, leaf) in leaves.iter().enumerate() {
            let want = if i < 20 { Seen::Revoked } else { Seen::Good };
            assert_eq!(ocsp_status(r, &leaf.request), Some(want), "leaf {i} from disk");
        }
        let mut on_crl = crl_serials(r, &issuing_id).unwrap();
        let mut want: Vec<String> = leaves[..20].iter().map(|l| norm(&l.serial)).collect();
        on_crl.sort();
        want.sort();
        assert_eq!(on_crl, want, "the CRLs come from disk too");
    }
    f.pg.restart();
    for r in &f.responders {
        r.wait_status("/readyz", 200, Duration::from_secs(30));
    }
    // Reconnections after the outage use the same TLS settings.
    let (sessions, encrypted) = f.pg.node_sessions();
    assert_eq!(encrypted, sessions, "node sessions without TLS after the restart");
    assert_eq!(
        ocsp_status(&f.responders[0], &leaves[20].request),
        Some(Seen::Good),
        "the refused write left nothing"
    );
    for leaf in &leaves[20..24] {
        f.revoke(&issuing_id, leaf);
        for r in &f.responders {
            f.wait_ocsp(r, leaf, Seen::Revoked, Duration::from_secs(5));
        }
    }

    // A responder killed with SIGKILL under load misses changes, restarts and
    // catches up; the other keeps answering every request correctly meanwhile.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loaders: Vec<_> = f
        .responders
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (url, stop) = (r.url.clone(), stop.clone());
            let (good, revoked) = (leaves[29].request.clone(), leaves[0].request.clone());
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0u64, 0u64);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for (req, want) in [(&good, Seen::Good), (&revoked, Seen::Revoked)] {
                        let node = Node::probe(&url);
                        match ocsp_status(&node, req) {
                            Some(s) if s == want => ok += 1,
                            Some(s) => panic!("responder {i} answered {s:?}, not {want:?}"),
                            None => failed += 1,
                        }
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    f.responders[1].child.kill().unwrap();
    f.responders[1].child.wait().unwrap();
    for leaf in &leaves[24..27] {
        f.revoke(&issuing_id, leaf);
        f.wait_ocsp(&f.responders[0], leaf, Seen::Revoked, Duration::from_secs(5));
    }
    f.responders[1].restart();
    f.responders[1].wait_status("/readyz", 200, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let counts: Vec<(u64, u64)> = loaders.into_iter().map(|h| h.join().unwrap()).collect();
    println!(
        "OCSP answers during the kill: responder 0 {:?}, responder 1 (killed) {:?} (ok, no answer)",
        counts[0], counts[1]
    );
    assert!(
        counts[0].0 > 100 && counts[0].1 == 0,
        "the surviving responder missed requests: {counts:?}"
    );
    assert!(
        counts[1].0 > 0 && counts[1].1 > 0,
        "the killed responder was down, then answered again: {counts:?}"
    );

    // Nothing lost, nothing extra: every responder agrees with the API, leaf by leaf,
    // and has followed the change log to its end.
    for r in &f.responders {
        for (i, leaf) in leaves.iter().enumerate() {
            let want = if i < 27 { Seen::Revoked } else { Seen::Good };
            f.wait_ocsp(r, leaf, want, Duration::from_secs(5));
        }
        let on_crl = crl_serials(r, &issuing_id).unwrap();
        let mut want: Vec<String> = leaves[..27].iter().map(|l| norm(&l.serial)).collect();
        let mut got = on_crl.clone();
        want.sort();
        got.sort();
        assert_eq!(got, want, "{}: CRL entries", r.url);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seqs: Vec<i64> = f
            .responders
            .iter()
            .map(|r| r.metric("cloudpki_snapshot_change_seq"))
            .chain([f.signer.metric("cloudpki_snapshot_change_seq")])
            .collect();
        if seqs.iter().all(|s| *s == seqs[0] && *s > 0) {
            break;
        }
        assert!(Instant::now() < deadline, "change sequences differ: {seqs:?}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Responders never held key material: no KEK in their environment or data directory.
    for i in 0..2 {
        let d = f.dir.path().join(format!("responder-{i}"));
        let files: Vec<String> = std::fs::read_dir(&d)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(!files.iter().any(|n| n.contains("kek")), "{files:?}");
        assert!(f.responders[i].envs.iter().all(|(k, _)| !k.contains("KEK")));
    }
}

/// CRL numbers only grow at every responder while the signing lead moves
/// from signer A to signer B and back (each loses its leader session, as in
/// a network partition, without restarting): a signer that regains the
/// lead drops the numbers it reserved before, and numbers every CRL above
/// what the other published; partitions and deltas included.
#[test]
fn crl_numbers_only_grow_as_the_signing_lead_moves_a_b_a() {
    let f = start_fleet();
    for r in &f.responders {
        r.wait_status("/readyz", 200, Duration::from_secs(30));
    }
    let signer_b_port = free_port();
    let data_b = f.dir.path().join("signer-b");
    let signer_b = Node::spawn(
        vec![
            "--data-dir".into(),
            data_b.to_str().unwrap().to_owned(),
            "--database".into(),
            format!("{}&application_name=cloudpki-signer-b", f.pg.url),
            "serve".into(),
            "--role".into(),
            "signer".into(),
            "--listen".into(),
            format!("127.0.0.1:{signer_b_port}"),
        ],
        vec![("CLOUDPKI_KEK".into(), f.kek.clone())],
        signer_b_port,
        f.dir.path().join("signer-b.log"),
    );
    let pg = || {
        cloudpki::store::PgConnector::parse(&f.pg.url)
            .unwrap()
            .connect()
            .unwrap()
    };
    // The leader lock is a session advisory lock on LEADER_LOCK (store::postgres).
    const LEADER: &str = "l.locktype = 'advisory' AND l.granted AND l.classid::bigint = 1668050805 \
                          AND l.objid::bigint = 1685089131";
    let leader = || -> Option<String> {
        pg().query_opt(
            &format!("SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE {LEADER}"),
            &[],
        )
        .unwrap()
        .map(|r| r.get(0))
    };
    let move_lead_to = |name: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match leader() {
                Some(l) if l == name => return,
                Some(_) => {
                    // The holder loses its session, as in a partition; it
                    // stays up, keeps its state, and tries to lead again.
                    pg().execute(
                        &format!("SELECT pg_terminate_backend(l.pid) FROM pg_locks l WHERE {LEADER}"),
                        &[],
                    )
                    .unwrap();
                }
                None => {}
            }
            assert!(Instant::now() < deadline, "{name} never took the lead");
            std::thread::sleep(Duration::from_millis(30));
        }
    };
    move_lead_to("cloudpki-signer-a");

    let api = |signer: &Node, method: &str, path: &str, body: Value| f.api_ok_at(signer, method, path, Some(body));
    let (_, issuing_id) = f.hierarchy("Lead", json!({"crlPartitionCount": 2, "deltaCrlEnabled": true}));
    let work = f.dir.path().to_path_buf();
    let leaves: Vec<(String, String)> = (0..3)
        .map(|i| {
            let csr = new_csr(&work, &format!("lead-{i}"));
            let v = api(
                &f.signer,
                "POST",
                &format!("/cloudCertificationAuthority/{issuing_id}/issueLeafCertificate"),
                json!({"certificateSigningRequest": csr}),
            );
            (
                v["value"]["id"].as_str().unwrap().to_owned(),
                v["value"]["serialNumber"].as_str().unwrap().to_owned(),
            )
        })
        .collect();

    // Every responder's numbers, per CRL, never go down; `history` keeps
    // what each responder served last.
    let mut history: Vec<std::collections::BTreeMap<String, u64>> = vec![Default::default(); f.responders.len()];
    let mut step = |label: &str, signer: &Node, leaf: &(String, String)| {
        api(
            signer,
            "POST",
            &format!("/cloudCertificationAuthority/{issuing_id}/revokeLeafCertificate"),
            json!({"leafCertificateId": leaf.0}),
        );
        for (r, seen) in f.responders.iter().zip(history.iter_mut()) {
            f.wait_crl(r, &issuing_id, &leaf.1, Duration::from_secs(10));
            let now = crl_numbers(r, &issuing_id).unwrap_or_else(|| panic!("{label}: {} serves every CRL", r.url));
            assert_eq!(now.len(), 6, "{label}: current, 1, 2 and their deltas: {now:?}");
            for (file, n) in &now {
                let before = seen.get(file).copied().unwrap_or(0);
                assert!(
                    *n >= before,
                    "{label}: {} served {file} number {n} after {before}",
                    r.url
                );
            }
            let newest_before = seen.values().max().copied().unwrap_or(0);
            assert!(
                now.values().max().copied().unwrap_or(0) > newest_before,
                "{label}: the revocation was published under a new, higher number: {now:?} after {seen:?}"
            );
            *seen = now;
        }
    };
    step("A leads", &f.signer, &leaves[0]);
    move_lead_to("cloudpki-signer-b");
    step("B leads", &signer_b, &leaves[1]);
    move_lead_to("cloudpki-signer-a");
    step("A leads again", &f.signer, &leaves[2]);
    assert!(
        f.signer.log().contains("signing lead changed"),
        "A saw its lead go and come back: {}",
        f.signer.log()
    );
}

/// Runs the CLI against the fleet's database (no KEK: responder commands need none).
fn fleet_cli(f: &Fleet, args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .args([
            "--data-dir",
            f.dir.path().join("cli").to_str().unwrap(),
            "--database",
            &f.pg.url,
            "--json",
        ])
        .args(args)
        .env_remove("CLOUDPKI_KEK")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The serial of the certificate that signed an OCSP response (hex), if it carries one.
fn responder_cert_serial(response: &[u8]) -> Option<String> {
    let resp = x509_ocsp::OcspResponse::from_der(response).ok()?;
    let basic = x509_ocsp::BasicOcspResponse::from_der(resp.response_bytes?.response.as_bytes()).ok()?;
    Some(hex(basic.certs?.first()?.tbs_certificate.serial_number.as_bytes()))
}

/// A keyless responder signs what nothing pre-signed fits (a nonce, a
/// SHA-384 CertID, several CertIDs) with a key of its own once an operator
/// approved it; its delegated certificates are renewed before they expire
/// without a failed answer; it keeps signing with the database gone.
#[test]
fn keyless_responder_signs_at_the_edge_once_approved() {
    // Short-lived responder certificates, so renewals happen within the test.
    let f = start_fleet_with("responder_cert_validity_seconds = 30\nresponder_cert_renew_seconds = 20\n");
    for r in &f.responders {
        r.wait_status("/readyz", 200, Duration::from_secs(30));
    }
    let (root_id, issuing_id) = f.hierarchy("Edge", json!({}));
    let work = f.dir.path().to_path_buf();
    let save = |path: &str, name: &str| {
        let file = work.join(name);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some((200, body)) = http(&f.responders[0].url, "GET", path, &[], b"") {
                std::fs::write(&file, body).unwrap();
                return file;
            }
            assert!(Instant::now() < deadline, "no {path}: {}", f.responders[0].log());
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let root_pem = save(&format!("/cacerts/{root_id}_v1/cert.pem"), "edge-root.pem");
    let issuing_pem = save(&format!("/cacerts/{issuing_id}_v1/cert.pem"), "edge-issuing.pem");
    let mut leaves = Vec::new();
    for i in 0..2 {
        let csr = new_csr(&work, &format!("edge-device-{i}"));
        let v = f.api_ok(
            "POST",
            &format!("/cloudCertificationAuthority/{issuing_id}/issueLeafCertificate"),
            Some(json!({"certificateSigningRequest": csr})),
        );
        let der =
            <base64ct::Base64 as base64ct::Encoding>::decode_vec(v["value"]["certificate"].as_str().unwrap()).unwrap();
        let der_file = work.join(format!("edge{i}.der"));
        std::fs::write(&der_file, &der).unwrap();
        let pem = work.join(format!("edge{i}.pem"));
        openssl(&[
            "x509",
            "-inform",
            "DER",
            "-in",
            der_file.to_str().unwrap(),
            "-out",
            pem.to_str().unwrap(),
        ]);
        leaves.push(pem);
    }
    let leaf = |i: usize| leaves[i].to_str().unwrap();
    let ask = |node: &Node, extra: &[&str], respout: Option<&Path>| -> String {
        let url = format!("{}/ocsp", node.url);
        let mut args = vec!["ocsp", "-issuer", issuing_pem.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["-url", &url, "-CAfile", root_pem.to_str().unwrap()]);
        if let Some(p) = respout {
            args.extend_from_slice(&["-respout", p.to_str().unwrap()]);
        }
        openssl_any(&args).1
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ask(&f.responders[0], &["-no_nonce", "-cert", leaf(0)], None).contains(": good") {
        assert!(Instant::now() < deadline, "{}", f.responders[0].log());
        std::thread::sleep(Duration::from_millis(50));
    }

    // Before approval: the nonce is ignored, a SHA-384 CertID is not served.
    let out = ask(&f.responders[0], &["-nonce", "-cert", leaf(0)], None);
    assert!(
        out.contains(": good") && out.contains("WARNING: no nonce in response"),
        "{out}"
    );
    let out = ask(&f.responders[0], &["-sha384", "-no_nonce", "-cert", leaf(0)], None);
    assert!(out.contains("unauthorized"), "{out}");

    // Both responders asked; the operator approves the first by its id.
    let listed = fleet_cli(&f, &["responder", "list"]);
    let rows = listed.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{listed}");
    assert!(rows.iter().all(|r| r["status"] == "requested"), "{listed}");
    let address = f.responders[0].url.trim_start_matches("http://").to_owned();
    let first = rows
        .iter()
        .find(|r| r["name"].as_str().unwrap().ends_with(&format!("@{address}")))
        .unwrap_or_else(|| panic!("no responder named for {address}: {listed}"));
    let id = first["id"].as_str().unwrap().to_owned();
    assert!(
        f.responders[0].log().contains(&id),
        "the responder names its key id in its log"
    );
    let approved = fleet_cli(&f, &["responder", "approve", &id]);
    assert_eq!(approved[0]["status"], "approved", "{approved}");

    // Within seconds it signs nonces with its own key and a delegated certificate.
    let approved_at = Instant::now();
    let signed = |out: &str| out.contains("Response verify OK") && !out.contains("WARNING: no nonce");
    loop {
        let out = ask(&f.responders[0], &["-nonce", "-cert", leaf(0)], None);
        if signed(&out) && out.contains(": good") {
            break;
        }
        assert!(
            approved_at.elapsed() < Duration::from_secs(15),
            "{out}\n{}",
            f.responders[0].log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("approval to first edge-signed answer: {:?}", approved_at.elapsed());
    let resp = work.join("edge-nonce.resp");
    for extra in [
        &["-sha256", "-nonce", "-cert", leaf(0)][..],
        &["-sha384", "-nonce", "-cert", leaf(0)][..],
        &["-sha512", "-no_nonce", "-cert", leaf(0)][..],
        &["-nonce", "-cert", leaf(0), "-cert", leaf(1)][..],
        &["-nonce", "-serial", "0x0123456789ABCDEF01"][..],
    ] {
        let out = ask(&f.responders[0], extra, Some(&resp));
        assert!(out.contains("Response verify OK"), "{extra:?}: {out}");
        assert!(!out.contains("WARNING"), "{extra:?}: {out}");
        assert!(out.contains(": good") || out.contains(": unknown"), "{extra:?}: {out}");
        let body = std::fs::read(&resp).unwrap();
        assert!(
            responder_cert_serial(&body).is_some(),
            "a delegated certificate travels with the answer"
        );
        crate::support::pkilint("ocsp", std::slice::from_ref(&resp));
    }
    let out = ask(&f.responders[0], &["-nonce", "-cert", leaf(0), "-cert", leaf(1)], None);
    assert!(
        out.contains("edge0.pem: good") && out.contains("edge1.pem: good"),
        "{out}"
    );
    // The other responder was not approved: it still ignores nonces.
    let out = ask(&f.responders[1], &["-nonce", "-cert", leaf(0)], None);
    assert!(out.contains("WARNING: no nonce in response"), "{out}");

    // A responder deployed with an enrolment token is approved at its first
    // start, with no operator step; the token is then spent.
    let minted = fleet_cli(
        &f,
        &["responder", "enrolment-token", "--uses", "1", "--valid-hours", "1"],
    );
    let token = minted["token"].as_str().unwrap().to_owned();
    let port = free_port();
    let pod = Node::spawn(
        vec![
            "--data-dir".into(),
            work.join("pod").to_str().unwrap().to_owned(),
            "--database".into(),
            f.pg.url.clone(),
            "serve".into(),
            "--role".into(),
            "responder".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
        ],
        vec![("CLOUDPKI_RESPONDER_ENROLMENT_TOKEN".into(), token.clone())],
        port,
        work.join("pod.log"),
    );
    pod.wait_status("/readyz", 200, Duration::from_secs(30));
    let pod_started = Instant::now();
    loop {
        let out = ask(&pod, &["-sha384", "-nonce", "-cert", leaf(0)], None);
        if signed(&out) && out.contains(": good") {
            break;
        }
        assert!(pod_started.elapsed() < Duration::from_secs(15), "{out}\n{}", pod.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!pod.log().contains(&token), "the token is never logged");
    let listed = fleet_cli(&f, &["responder", "list"]);
    let approved: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "approved")
        .collect();
    assert_eq!(approved.len(), 2, "{listed}");
    assert!(
        approved
            .iter()
            .any(|r| r["approvedBy"].as_str().unwrap().starts_with("enrolment token")),
        "{listed}"
    );
    drop(pod);

    // Certificates live 30 s and are renewed 20 s before their end: over
    // 25 s every answer verifies and at least two certificates signed them.
    let mut serials = std::collections::BTreeSet::new();
    let started = Instant::now();
    let mut asked = 0;
    while started.elapsed() < Duration::from_secs(25) {
        let out = ask(&f.responders[0], &["-nonce", "-cert", leaf(1)], Some(&resp));
        assert!(signed(&out) && out.contains(": good"), "answer {asked} failed: {out}");
        serials.insert(responder_cert_serial(&std::fs::read(&resp).unwrap()).unwrap());
        asked += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        serials.len() >= 2,
        "{asked} answers, responder certificates {serials:?}"
    );

    // The database goes away: the responder keeps signing with its key.
    f.pg.stop();
    let out = ask(&f.responders[0], &["-nonce", "-cert", leaf(1)], None);
    assert!(signed(&out) && out.contains(": good"), "{out}");
}
