//! KEK rotation online: `cloudpki kek rotate` while `serve` answers OCSP and
//! the API issues leaves, and `kill -9` of the rotation at random points.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::api::{token, BASE, RW};
use crate::support::{curl, free_port, id, openssl, Env, Http, TestServer};

fn write_kek(env: &Env, name: &str) -> PathBuf {
    let path = env.path(name);
    std::fs::write(
        &path,
        cloudpki::secrets::Kek::generate().unwrap().to_base64().as_bytes(),
    )
    .unwrap();
    path
}

fn kek_id(env: &Env, file: &Path) -> String {
    env.json(&["kek", "id", "--file", file.to_str().unwrap()])["kekId"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Initialises the data directory (its generated `kek` file is the old KEK)
/// with delegated OCSP signing keys, so every sealed kind exists.
fn init(env: &Env) -> u16 {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let out = env.run(&["--public-url", &url, "init", "--ocsp-signer", "delegated"]);
    assert!(out.status.success(), "init: {}", String::from_utf8_lossy(&out.stderr));
    port
}

fn start(env: &Env, port: u16, kek_file: Option<&Path>, next: Option<&Path>) -> TestServer {
    let mut cfg = env.serve_config(port);
    cfg.open.kek_file = kek_file.map(Path::to_path_buf);
    cfg.open.next_kek_files = next.into_iter().map(Path::to_path_buf).collect();
    env.start_server_cfg(cfg)
}

fn call(server: &TestServer, token: &str, method: &str, path: &str, body: Option<Value>) -> Http {
    let auth = format!("Bearer {token}");
    let bytes = body.map(|b| b.to_string().into_bytes());
    let mut headers = vec![("Authorization", auth.as_str())];
    if bytes.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    curl(
        method,
        &format!("{}{BASE}{path}", server.url),
        bytes.as_deref(),
        &headers,
    )
}

fn ok(server: &TestServer, token: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let r = call(server, token, method, path, body);
    assert!(
        (200..300).contains(&r.status),
        "{method} {path}: {} {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

fn create_ca(server: &TestServer, token: &str, cn: &str, issuer: Option<&str>) -> String {
    let body = match issuer {
        None => json!({"displayName": cn, "cloudCertificationAuthorityType": "rootCertificationAuthority",
            "commonName": cn, "certificateKeySize": "eCP256", "validityPeriodInYears": 10}),
        Some(root) => json!({"displayName": cn, "cloudCertificationAuthorityType": "issuingCertificationAuthority",
            "certificationAuthorityIssuerId": root, "commonName": cn, "certificateKeySize": "eCP256",
            "validityPeriodInYears": 4}),
    };
    id(&ok(server, token, "POST", "/cloudCertificationAuthority", Some(body)))
}

/// Issues a leaf through the API; returns (leaf id, PEM path).
fn issue(env: &Env, server: &TestServer, token: &str, ca: &str, name: &str) -> (String, PathBuf) {
    let csr = env.openssl_csr(
        name,
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        &format!("/CN={name}"),
    );
    let issued = ok(
        server,
        token,
        "POST",
        &format!("/cloudCertificationAuthority/{ca}/issueLeafCertificate"),
        Some(json!({"certificateSigningRequest": std::fs::read_to_string(csr).unwrap()})),
    );
    let leaf = &issued["value"];
    let der = <base64ct::Base64 as base64ct::Encoding>::decode_vec(leaf["certificate"].as_str().unwrap()).unwrap();
    let pem = env.path(&format!("{name}.pem"));
    std::fs::write(&pem, cloudpki::x509::pem::encode("CERTIFICATE", &der).unwrap()).unwrap();
    (id(leaf), pem)
}

/// The OCSP status line openssl prints for a leaf, e.g. "good" or "revoked".
fn ocsp(server: &TestServer, issuer_pem: &Path, leaf_pem: &Path) -> String {
    let out = openssl(&[
        "ocsp",
        "-issuer",
        issuer_pem.to_str().unwrap(),
        "-cert",
        leaf_pem.to_str().unwrap(),
        "-url",
        &format!("{}/ocsp", server.url),
        "-noverify",
        "-no_nonce",
    ]);
    let status = out
        .lines()
        .find_map(|l| l.split_once(".pem: ").map(|(_, s)| s.trim().to_owned()));
    status.unwrap_or(out)
}

fn wait_for_ocsp(server: &TestServer, issuer_pem: &Path, leaf_pem: &Path, want: &str) {
    let start = Instant::now();
    loop {
        let got = ocsp(server, issuer_pem, leaf_pem);
        if got == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "OCSP says {got:?}, expected {want}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kek_rotation_while_serve_answers_ocsp_and_the_api_issues_leaves() {
    let env = Env::new();
    let port = init(&env);
    let old = env.data_dir().join("kek");
    let new = write_kek(&env, "new.kek");
    let (old_id, new_id) = (kek_id(&env, &old), kek_id(&env, &new));
    let out = env.run(&[
        "role",
        "assign",
        "--principal",
        "alice",
        "--role",
        "Intune Administrator",
    ]);
    assert!(out.status.success());
    let admin = token(&env, "alice", &[RW]);

    // A signer holding only the old KEK: the rotation refuses, naming it.
    let server = start(&env, port, None, None);
    let root = create_ca(&server, &admin, "Rotation Root", None);
    let issuing = create_ca(&server, &admin, "Rotation Issuing", Some(&root));
    let issuing_pem = env.save(&["ca", "cert", &issuing], "issuing.pem");
    let (_, first_pem) = issue(&env, &server, &admin, &issuing, "first");
    wait_for_ocsp(&server, &issuing_pem, &first_pem, "good");
    let err = env.fails(&["kek", "rotate", "--new-kek-file", new.to_str().unwrap()]);
    assert!(
        err.contains("do not hold") && err.contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    let status = env.json(&["kek", "status"]);
    assert_eq!(status["current"], old_id.as_str());
    assert!(status["rotation"].is_null());
    server.stop();

    // Restarted with the next KEK too: the rotation runs while it serves.
    let server = start(&env, port, None, Some(&new));
    let status = env.json(&["kek", "status"]);
    let signers = status["liveSigners"].as_array().unwrap();
    assert_eq!(signers.len(), 1, "{status}");
    assert_eq!(signers[0]["held"], json!([old_id, new_id]));
    let mut rotation = env
        .command()
        .args([
            "kek",
            "rotate",
            "--new-kek-file",
            new.to_str().unwrap(),
            "--batch-size",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut rounds = 0;
    let mut during_ca = None;
    loop {
        let done = rotation.try_wait().unwrap().is_some();
        let (_, pem) = issue(&env, &server, &admin, &issuing, &format!("during-{rounds}"));
        wait_for_ocsp(&server, &issuing_pem, &pem, "good");
        assert_eq!(ocsp(&server, &issuing_pem, &first_pem), "good");
        if during_ca.is_none() {
            during_ca = Some(create_ca(&server, &admin, "Created During Rotation", Some(&root)));
        }
        rounds += 1;
        if done && rounds >= 3 {
            break;
        }
    }
    let out = rotation.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kek rotate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("rotation complete"), "{text}");

    // Everything is under the new KEK, and the server still signs: a
    // revocation re-signs OCSP answers and the CRL.
    let status = env.json(&["--next-kek-file", new.to_str().unwrap(), "kek", "status"]);
    assert_eq!(status["current"], new_id.as_str());
    assert!(status["rotation"].is_null());
    let by: Vec<&String> = status["sealed"].as_object().unwrap().keys().collect();
    assert_eq!(by, vec![&new_id], "{status}");
    for kind in ["caKey", "ocspDelegateKey", "tokenSigningKey", "kekCheck"] {
        assert!(
            status["sealed"][&new_id][kind].as_u64().unwrap() >= 1,
            "{kind}: {status}"
        );
    }
    let (leaf, pem) = issue(&env, &server, &admin, &issuing, "after");
    ok(
        &server,
        &admin,
        "POST",
        &format!("/cloudCertificationAuthority/{issuing}/revokeLeafCertificate"),
        Some(json!({"leafCertificateId": leaf})),
    );
    wait_for_ocsp(&server, &issuing_pem, &pem, "revoked");
    // The rotation was idempotent: again, nothing to do.
    let again = env.run(&["kek", "rotate", "--new-kek-file", new.to_str().unwrap()]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to do"));
    server.stop();

    // Only the old KEK: refused clearly. Only the new one: everything works.
    let err = env.fails(&["ca", "list"]);
    assert!(
        err.contains(&format!("the current key-encryption key is {new_id}")),
        "{err}"
    );
    let verified = env.json(&["--kek-file", new.to_str().unwrap(), "kek", "verify"]);
    assert!(verified["opened"].as_u64().unwrap() >= 7, "{verified}");
    let server = start(&env, port, Some(&new), None);
    let (leaf, pem) = issue(&env, &server, &admin, during_ca.as_deref().unwrap(), "new-only");
    let during_pem = env.save(
        &[
            "--kek-file",
            new.to_str().unwrap(),
            "ca",
            "cert",
            during_ca.as_deref().unwrap(),
        ],
        "during.pem",
    );
    wait_for_ocsp(&server, &during_pem, &pem, "good");
    ok(
        &server,
        &admin,
        "POST",
        &format!(
            "/cloudCertificationAuthority/{}/revokeLeafCertificate",
            during_ca.as_deref().unwrap()
        ),
        Some(json!({"leafCertificateId": leaf})),
    );
    wait_for_ocsp(&server, &during_pem, &pem, "revoked");
    let (_, pem) = issue(&env, &server, &admin, &issuing, "new-only-2");
    wait_for_ocsp(&server, &issuing_pem, &pem, "good");
    server.stop();
}

/// A small xorshift generator: the kill points vary per run, and the seed is
/// printed with any failure so a run can be repeated.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

#[test]
fn kek_rotate_killed_at_random_points_resumes_and_every_key_opens_with_either_kek() {
    let env = Env::new();
    init(&env);
    let old = env.data_dir().join("kek");
    let new = write_kek(&env, "new.kek");
    let new_id = kek_id(&env, &new);
    let root = id(&env.create_ca(&["--type", "root", "--common-name", "Kill Root", "--key-size", "eCP256"]));
    let csr = env.openssl_csr("dev", &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"], "/CN=dev");
    for i in 0..6 {
        let ca = id(&env.create_ca(&[
            "--type",
            "issuing",
            "--issuer",
            &root,
            "--common-name",
            &format!("Kill Issuing {i}"),
            "--key-size",
            "eCP256",
        ]));
        // A leaf makes the CA's delegated OCSP key.
        env.json(&["cert", "issue", "--ca", &ca, "--csr", csr.to_str().unwrap()]);
    }
    token(&env, "someone", &[RW]);
    let total = {
        let s = env.json(&["kek", "status"]);
        s["sealed"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|k| k.as_object().unwrap().values())
            .map(|n| n.as_u64().unwrap())
            .sum::<u64>()
    };
    assert!(total >= 15, "keys of every kind: {total}");

    let (old_s, new_s) = (old.to_str().unwrap(), new.to_str().unwrap());
    // The two ways an operator restarts mid-rotation: old KEK with the new as
    // next, or the new KEK with the old as next.
    let old_first: [&str; 4] = ["--kek-file", old_s, "--next-kek-file", new_s];
    let new_first: [&str; 4] = ["--kek-file", new_s, "--next-kek-file", old_s];
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = Rng(seed);
    let mut killed_mid_rotation = 0;
    for trial in 0..8 {
        let keys = if trial % 2 == 0 { old_first } else { new_first };
        let mut child = env
            .command()
            .args(keys)
            .args(["kek", "rotate", "--new-kek-file", new_s, "--batch-size", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.next(120)));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        let st = env.json(&[keys[0], keys[1], keys[2], keys[3], "kek", "status"]);
        if !status.success() && !st["rotation"].is_null() {
            killed_mid_rotation += 1;
        }
        // Restart with either KEK plus the other: every key opens.
        for with in [old_first, new_first] {
            let v = env.json(&[with[0], with[1], with[2], with[3], "kek", "verify"]);
            assert_eq!(v["opened"].as_u64(), Some(total), "seed {seed}, trial {trial}: {v}");
        }
        // Nothing is sealed under a KEK other than the two.
        for by in st["sealed"].as_object().unwrap().keys() {
            assert!(
                *by == new_id || *by == kek_id(&env, &old),
                "seed {seed}, trial {trial}: sealed under {by}"
            );
        }
        if st["rotation"].is_null() && st["current"] == new_id.as_str() {
            break; // a trial let it finish
        }
    }
    eprintln!("seed {seed}: {killed_mid_rotation} kill(s) landed mid-rotation");

    // Re-running completes, and then has nothing to do (exit 0 both times).
    let done = env.run(&["kek", "rotate", "--new-kek-file", new_s, "--batch-size", "1"]);
    assert!(
        done.status.success(),
        "seed {seed}: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    let again = env.run(&["kek", "rotate", "--new-kek-file", new_s]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to do"));
    let v = env.json(&["--kek-file", new_s, "kek", "verify"]);
    assert_eq!(v["opened"].as_u64(), Some(total));
    let err = env.fails(&["kek", "verify"]);
    assert!(err.contains(&new_id), "{err}");
    let st = env.json(&["kek", "status"]);
    assert_eq!(st["current"], new_id.as_str());
    assert_eq!(
        st["sealed"][&new_id]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum::<u64>(),
        total
    );
}
