//! The revocation responder over real HTTP, checked with clients we did not
//! write: openssl (ocsp, crl, verify), curl, pkilint, the `ocsp` crate.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64ct::Encoding;

use crate::support::{cdp_url, curl, id, openssl, openssl_any, pkilint, Env, TestServer};

/// A served PKI: root, issuing CA, a good and a revoked leaf.
struct Served {
    env: Env,
    server: TestServer,
    root: String,
    issuing: String,
    root_pem: PathBuf,
    issuing_pem: PathBuf,
    good: PathBuf,
    revoked: PathBuf,
}

fn served(key_size: &str) -> Served {
    served_with(key_size, &[])
}

fn served_with(key_size: &str, init_args: &[&str]) -> Served {
    let env = Env::new();
    let server = env.server_with(init_args);
    let root = id(&env.create_ca(&[
        "--type",
        "root",
        "--common-name",
        "Responder Root",
        "--key-size",
        key_size,
    ]));
    let issuing = id(&env.create_ca(&[
        "--type",
        "issuing",
        "--issuer",
        &root,
        "--common-name",
        "Responder Issuing",
        "--key-size",
        key_size,
    ]));
    let mut leaves = Vec::new();
    for name in ["good", "revoked"] {
        let csr = env.openssl_csr(
            name,
            &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            &format!("/CN={name}"),
        );
        leaves.push(env.issue_pem(&issuing, &csr, &format!("{name}.pem")));
    }
    let serial = leaves[1].1.clone();
    let leaves: Vec<PathBuf> = leaves.into_iter().map(|(pem, _)| pem).collect();
    env.json(&["cert", "revoke", "--serial", &serial, "--reason", "keyCompromise"]);
    let root_pem = env.save(&["ca", "cert", &root], "root.pem");
    let issuing_pem = env.save(&["ca", "cert", &issuing], "issuing.pem");
    let s = Served {
        env,
        server,
        root,
        issuing,
        root_pem,
        issuing_pem,
        good: leaves[0].clone(),
        revoked: leaves[1].clone(),
    };
    // The CLI is another process: wait for the server to follow its commits
    // (OCSP first, then the re-signed CRL).
    wait_for(&s, &s.revoked, "revoked");
    // The partition the revoked certificate names.
    let crl_url = cdp_url(&s.revoked);
    let deadline = Instant::now() + Duration::from_secs(5);
    let crl = s.env.path("wait.crl");
    loop {
        std::fs::write(&crl, curl("GET", &crl_url, None, &[]).body).unwrap();
        if openssl_any(&["crl", "-inform", "DER", "-in", p(&crl), "-noout", "-text"])
            .1
            .contains(&serial)
        {
            break;
        }
        assert!(Instant::now() < deadline, "the CRL never listed the revoked leaf");
        std::thread::sleep(Duration::from_millis(20));
    }
    s
}

fn p(path: &std::path::Path) -> &str {
    path.to_str().unwrap()
}

/// `openssl ocsp` against the server; returns its output.
fn ask(s: &Served, cert_args: &[&str], extra: &[&str]) -> String {
    let url = format!("{}/ocsp", s.server.url);
    let mut args = vec!["ocsp", "-issuer", p(&s.issuing_pem)];
    args.extend_from_slice(extra); // digest flags must come before -cert / -serial
    args.extend_from_slice(cert_args);
    args.extend_from_slice(&["-url", &url, "-CAfile", p(&s.root_pem)]);
    let (_, out) = openssl_any(&args);
    out
}

fn wait_for(s: &Served, cert: &std::path::Path, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = ask(s, &["-cert", p(cert)], &["-no_nonce"]);
        if out.contains(&format!(": {status}")) {
            return;
        }
        assert!(Instant::now() < deadline, "status never became {status}: {out}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ocsp_post_with_openssl_every_status_hash_and_nonce() {
    for key_size in ["eCP256", "rsa2048"] {
        let s = served(key_size);
        let unknown_serial = "0x0123456789ABCDEF0123456789ABCDEF";
        for digest in [&["-sha1"][..], &["-sha256"][..]] {
            for nonce in ["-nonce", "-no_nonce"] {
                let mut extra = digest.to_vec();
                extra.push(nonce);
                let out = ask(&s, &["-cert", p(&s.good)], &extra);
                assert!(
                    out.contains("Response verify OK") && out.contains(": good"),
                    "{key_size} {extra:?}: {out}"
                );
                let out = ask(&s, &["-cert", p(&s.revoked)], &extra);
                assert!(
                    out.contains("Response verify OK") && out.contains(": revoked"),
                    "{key_size} {extra:?}: {out}"
                );
                assert!(out.contains("Reason: keyCompromise"), "{out}");
                let out = ask(&s, &["-serial", unknown_serial], &extra);
                assert!(
                    out.contains("Response verify OK") && out.contains(": unknown"),
                    "{key_size} {extra:?}: {out}"
                );
                if nonce == "-nonce" {
                    // openssl checks the echo itself and says so on a mismatch.
                    assert!(!out.contains("WARNING: no nonce in response"), "{out}");
                }
            }
        }
        // Several CertIDs in one request.
        let out = ask(
            &s,
            &["-cert", p(&s.good), "-cert", p(&s.revoked), "-serial", unknown_serial],
            &["-no_nonce"],
        );
        assert!(out.contains("Response verify OK"), "{out}");
        assert!(
            out.contains("good.pem: good") && out.contains("revoked.pem: revoked") && out.contains(": unknown"),
            "{out}"
        );
    }
}

/// Builds a DER request with openssl (no network).
/// What `openssl ocsp -respin` makes of an answer body from the server
/// (checked against the issuing CA, trusting the root); `args` name the
/// certificate (and digest or output flags).
fn read_answer(s: &Served, body: &[u8], args: &[&str]) -> String {
    let resp = s.env.path("answer.resp");
    std::fs::write(&resp, body).unwrap();
    let mut all = vec!["ocsp", "-respin", p(&resp), "-issuer", p(&s.issuing_pem)];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-CAfile", p(&s.root_pem)]);
    openssl_any(&all).1
}

fn request_der(s: &Served, cert: &std::path::Path, extra: &[&str], name: &str) -> Vec<u8> {
    let out = s.env.path(name);
    let mut args = vec!["ocsp", "-issuer", p(&s.issuing_pem)];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-cert", p(cert), "-reqout", p(&out)]);
    openssl(&args);
    std::fs::read(out).unwrap()
}

#[test]
fn ocsp_get_rfc5019_caching_and_conditional_requests() {
    let s = served("eCP256");
    for (digest, encode) in [("-sha1", "std"), ("-sha256", "percent"), ("-sha1", "unpadded")] {
        let der = request_der(&s, &s.good, &[digest, "-no_nonce"], "get.req");
        let b64 = base64ct::Base64::encode_string(&der);
        let path = match encode {
            "std" => b64.clone(),
            "percent" => b64.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D"),
            _ => b64.trim_end_matches('=').to_owned(),
        };
        let r = curl("GET", &format!("{}/ocsp/{path}", s.server.url), None, &[]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/ocsp-response"));
        let cc = r.header("cache-control").unwrap();
        assert!(
            cc.starts_with("max-age=") && cc.contains("public, no-transform, must-revalidate"),
            "{cc}"
        );
        let max_age: i64 = cc
            .trim_start_matches("max-age=")
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            max_age > 3 * 86_400 && max_age <= 4 * 86_400,
            "max-age follows nextUpdate: {max_age}"
        );
        let etag = r.header("etag").unwrap().to_owned();
        let last_modified = r.header("last-modified").unwrap().to_owned();
        assert!(r.header("expires").is_some());
        let out = read_answer(&s, &r.body, &[digest, "-cert", p(&s.good)]);
        assert!(
            out.contains("Response verify OK") && out.contains(": good"),
            "{encode}: {out}"
        );
        // Conditional GETs answer 304 with no body.
        let r = curl(
            "GET",
            &format!("{}/ocsp/{path}", s.server.url),
            None,
            &[("If-None-Match", &etag)],
        );
        assert_eq!(r.status, 304);
        assert!(r.body.is_empty());
        // If-Modified-Since alone: the answer's own second may hold another
        // answer, so only a later date is trusted (see security.rs).
        let r = curl(
            "GET",
            &format!("{}/ocsp/{path}", s.server.url),
            None,
            &[("If-Modified-Since", &last_modified)],
        );
        assert_eq!((r.status, r.body.is_empty()), (200, false));
        let later =
            httpdate::fmt_http_date(httpdate::parse_http_date(&last_modified).unwrap() + Duration::from_secs(1));
        let r = curl(
            "GET",
            &format!("{}/ocsp/{path}", s.server.url),
            None,
            &[("If-Modified-Since", &later)],
        );
        assert_eq!(r.status, 304);
    }
    // Revoked and unknown over GET too.
    let der = request_der(&s, &s.revoked, &["-sha256", "-no_nonce"], "revoked.req");
    let r = curl(
        "GET",
        &format!("{}/ocsp/{}", s.server.url, base64ct::Base64::encode_string(&der)),
        None,
        &[],
    );
    assert!(r.header("cache-control").unwrap().contains("public"));
    let out = read_answer(&s, &r.body, &["-sha256", "-cert", p(&s.revoked)]);
    assert!(out.contains("Response verify OK") && out.contains(": revoked"), "{out}");
    let unknown_req = s.env.path("unknown.req");
    openssl(&[
        "ocsp",
        "-issuer",
        p(&s.issuing_pem),
        "-serial",
        "0x0BADC0FFEE",
        "-no_nonce",
        "-reqout",
        p(&unknown_req),
    ]);
    let der = std::fs::read(&unknown_req).unwrap();
    let r = curl(
        "GET",
        &format!("{}/ocsp/{}", s.server.url, base64ct::Base64::encode_string(&der)),
        None,
        &[],
    );
    assert_eq!(
        r.header("cache-control"),
        Some("max-age=0, no-cache"),
        "unknown answers are not cached publicly"
    );
    let out = read_answer(&s, &r.body, &["-serial", "0x0BADC0FFEE"]);
    assert!(out.contains("Response verify OK") && out.contains(": unknown"), "{out}");

    // A nonce over GET is signed on demand and not cacheable.
    let der = request_der(&s, &s.revoked, &["-nonce"], "nonce.req");
    let r = curl(
        "GET",
        &format!("{}/ocsp/{}", s.server.url, base64ct::Base64::encode_string(&der)),
        None,
        &[],
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let out = read_answer(&s, &r.body, &["-cert", p(&s.revoked), "-resp_text"]);
    assert!(out.contains("OCSP Nonce") && out.contains(": revoked"), "{out}");
}

#[test]
fn crls_verify_and_lint_and_ocsp_responses_lint() {
    let s = served("eCP384");
    // Each leaf is checked against the partition its certificate names.
    let fetch_crl = |leaf: &PathBuf, name: &str| {
        let url = cdp_url(leaf);
        assert!(
            url.starts_with(&format!("{}/crls/{}_v1/", s.server.url, s.issuing)) && !url.ends_with("current.crl"),
            "a new issuing CA's leaves name a partition: {url}"
        );
        let r = curl("GET", &url, None, &[]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/pkix-crl"));
        assert!(r.header("etag").is_some() && r.header("last-modified").is_some());
        let der = s.env.path(name);
        std::fs::write(&der, &r.body).unwrap();
        let pem = s.env.path(&format!("{name}.pem"));
        openssl(&["crl", "-inform", "DER", "-in", p(&der), "-out", p(&pem)]);
        (url, der, pem)
    };
    let (revoked_url, issuing_crl, revoked_crl_pem) = fetch_crl(&s.revoked, "issuing.crl");
    let (good_url, good_crl, good_crl_pem) = fetch_crl(&s.good, "good.crl");
    let (ok, out) = openssl_any(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        p(&issuing_crl),
        "-CAfile",
        p(&s.issuing_pem),
        "-noout",
        "-text",
    ]);
    assert!(ok && out.contains("verify OK"), "{out}");
    assert!(
        out.contains("X509v3 CRL Number") && out.contains("Issuing Distribution Point: critical"),
        "{out}"
    );
    assert!(out.contains("Key Compromise"), "{out}");
    assert!(out.contains(&format!("URI:{revoked_url}")), "IDP = CDP: {out}");
    // openssl verify -crl_check with the served CRL of each leaf's partition.
    let verify = |leaf: &PathBuf, crl: &PathBuf| {
        openssl_any(&[
            "verify",
            "-crl_check",
            "-CAfile",
            p(&s.root_pem),
            "-untrusted",
            p(&s.issuing_pem),
            "-CRLfile",
            p(crl),
            p(leaf),
        ])
    };
    let (ok, out) = verify(&s.good, &good_crl_pem);
    assert!(ok && out.contains(": OK"), "{out}");
    let (ok, out) = verify(&s.revoked, &revoked_crl_pem);
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    if good_url != revoked_url {
        // Another partition's CRL does not cover the leaf: its IDP names
        // another URL, and OpenSSL finds no CRL for it.
        let (ok, out) = verify(&s.good, &revoked_crl_pem);
        assert!(!ok && out.contains("different CRL scope"), "{out}");
    }

    let root_crl = s.env.path("root.crl");
    std::fs::write(
        &root_crl,
        curl(
            "GET",
            &format!("{}/crls/{}_v1/current.crl", s.server.url, s.root),
            None,
            &[],
        )
        .body,
    )
    .unwrap();
    pkilint("crl", &[issuing_crl, good_crl, root_crl]);

    // Every kind of OCSP answer lints clean.
    let mut responses = Vec::new();
    for (name, cert, extra) in [
        ("good.resp", &s.good, &["-no_nonce"][..]),
        ("revoked.resp", &s.revoked, &["-sha256", "-no_nonce"][..]),
        ("nonce.resp", &s.good, &["-nonce"][..]),
    ] {
        let der = request_der(&s, cert, extra, "lint.req");
        let r = curl(
            "POST",
            &format!("{}/ocsp", s.server.url),
            Some(&der),
            &[("Content-Type", "application/ocsp-request")],
        );
        let path = s.env.path(name);
        std::fs::write(&path, &r.body).unwrap();
        responses.push(path);
    }
    pkilint("ocsp", &responses);
}

#[test]
fn aia_downloads() {
    let s = served("eCP256");
    for (file, ctype) in [
        ("cert.cer", "application/pkix-cert"),
        ("cert.pem", "application/x-pem-file"),
        ("chain.p7c", "application/pkcs7-mime"),
    ] {
        let r = curl(
            "GET",
            &format!("{}/cacerts/{}_v1/{file}", s.server.url, s.issuing),
            None,
            &[],
        );
        assert_eq!(r.status, 200, "{file}");
        assert_eq!(r.header("content-type"), Some(ctype));
        let path = s.env.path(file);
        std::fs::write(&path, &r.body).unwrap();
        let text = match file {
            "cert.cer" => openssl(&["x509", "-inform", "DER", "-in", p(&path), "-noout", "-subject"]),
            "cert.pem" => openssl(&["x509", "-in", p(&path), "-noout", "-subject"]),
            _ => openssl(&["pkcs7", "-inform", "DER", "-in", p(&path), "-print_certs", "-noout"]),
        };
        assert!(text.contains("Responder Issuing"), "{file}: {text}");
        if file == "chain.p7c" {
            assert!(text.contains("Responder Root"), "the chain holds the root too: {text}");
        }
    }
    // The leaf's AIA URL is exactly what we serve.
    let text = openssl(&["x509", "-in", p(&s.good), "-noout", "-text"]);
    assert!(
        text.contains(&format!(
            "CA Issuers - URI:{}/cacerts/{}_v1/cert.cer",
            s.server.url, s.issuing
        )),
        "{text}"
    );
}

#[test]
fn lifecycle_pause_revoke_delete_as_relying_parties_see_it() {
    let s = served("eCP256");
    let env = &s.env;
    let crl_url = |ca: &str| format!("{}/crls/{ca}_v1/current.crl", s.server.url);
    // Paused: everything keeps answering.
    env.json(&["ca", "pause", &s.issuing]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(ask(&s, &["-cert", p(&s.good)], &["-no_nonce"]).contains(": good"));
    assert_eq!(curl("GET", &crl_url(&s.issuing), None, &[]).status, 200);
    // Revoke the last active leaf, then the CA: the root's CRL and OCSP list it.
    let out = env.run(&["--json", "cert", "revoke-all", "--ca", &s.issuing]);
    assert!(out.status.success());
    env.json(&["ca", "revoke", &s.issuing, "--reason", "cACompromise"]);
    let issuing_serial = openssl(&["x509", "-in", p(&s.issuing_pem), "-noout", "-serial"]);
    let issuing_serial = issuing_serial.trim().trim_start_matches("serial=").to_owned();
    let deadline = Instant::now() + Duration::from_secs(5);
    let root_crl = env.path("root.crl");
    loop {
        std::fs::write(&root_crl, curl("GET", &crl_url(&s.root), None, &[]).body).unwrap();
        let text = openssl(&["crl", "-inform", "DER", "-in", p(&root_crl), "-noout", "-text"]);
        if text.contains(&issuing_serial) {
            assert!(text.contains("CA Compromise"), "{text}");
            assert!(text.contains("Only CA Certificates"), "{text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "root CRL never listed the revoked issuing CA: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("{}/ocsp", s.server.url);
    let (_, out) = openssl_any(&[
        "ocsp",
        "-issuer",
        p(&s.root_pem),
        "-cert",
        p(&s.issuing_pem),
        "-url",
        &url,
        "-CAfile",
        p(&s.root_pem),
        "-no_nonce",
    ]);
    assert!(
        out.contains("issuing.pem: revoked"),
        "root OCSP on the issuing CA: {out}"
    );
    // Revoked CAs keep answering for their leaves.
    assert!(ask(&s, &["-cert", p(&s.good)], &["-no_nonce"]).contains(": revoked"));
    assert_eq!(
        curl(
            "GET",
            &format!("{}/cacerts/{}_v1/cert.cer", s.server.url, s.issuing),
            None,
            &[]
        )
        .status,
        200
    );
    // Deleted: 404 for CRL and AIA, unauthorized for OCSP; the root still lists it.
    env.json(&["ca", "delete", &s.issuing]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while curl("GET", &crl_url(&s.issuing), None, &[]).status != 404 {
        assert!(Instant::now() < deadline, "deleted CA's CRL still served");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        curl(
            "GET",
            &format!("{}/cacerts/{}_v1/cert.cer", s.server.url, s.issuing),
            None,
            &[]
        )
        .status,
        404
    );
    let out = ask(&s, &["-cert", p(&s.good)], &["-no_nonce"]);
    assert!(out.contains("unauthorized"), "{out}");
    std::fs::write(&root_crl, curl("GET", &crl_url(&s.root), None, &[]).body).unwrap();
    assert!(openssl(&["crl", "-inform", "DER", "-in", p(&root_crl), "-noout", "-text"]).contains(&issuing_serial));
    // A CA version that does not exist.
    assert_eq!(
        curl(
            "GET",
            &format!("{}/crls/{}_v2/current.crl", s.server.url, s.root),
            None,
            &[]
        )
        .status,
        404
    );
}

#[test]
fn bad_input_gets_protocol_answers() {
    let s = served("eCP256");
    let url = &s.server.url;
    const MALFORMED: &[u8] = &[0x30, 0x03, 0x0a, 0x01, 0x01];
    const UNAUTHORIZED: &[u8] = &[0x30, 0x03, 0x0a, 0x01, 0x06];
    let r = curl(
        "POST",
        &format!("{url}/ocsp"),
        Some(b"not der at all"),
        &[("Content-Type", "application/ocsp-request")],
    );
    assert_eq!((r.status, r.body.as_slice()), (200, MALFORMED));
    let r = curl("GET", &format!("{url}/ocsp/%%%%"), None, &[]);
    assert_eq!(r.body, MALFORMED);
    let r = curl("GET", &format!("{url}/ocsp/MAMCAQA="), None, &[]);
    assert_eq!(r.body, MALFORMED);
    // A request about an issuer we do not serve.
    let other = Env::new();
    let foreign = id(&other.create_ca(&["--type", "root", "--common-name", "Foreign", "--key-size", "eCP256"]));
    let foreign_pem = other.save(&["ca", "cert", &foreign], "foreign.pem");
    let req = s.env.path("foreign.req");
    openssl(&[
        "ocsp",
        "-issuer",
        p(&foreign_pem),
        "-serial",
        "0x01",
        "-reqout",
        p(&req),
    ]);
    let r = curl("POST", &format!("{url}/ocsp"), Some(&std::fs::read(&req).unwrap()), &[]);
    assert_eq!(r.body, UNAUTHORIZED);
    // Limits.
    let big = vec![0x30u8; 64 * 1024];
    assert_eq!(curl("POST", &format!("{url}/ocsp"), Some(&big), &[]).status, 413);
    assert_eq!(
        curl("GET", &format!("{url}/ocsp/{}", "A".repeat(6000)), None, &[]).status,
        414
    );
    assert_eq!(curl("PUT", &format!("{url}/ocsp"), Some(b"x"), &[]).status, 405);
    assert_eq!(
        curl("POST", &format!("{url}/crls/x_v1/current.crl"), Some(b"x"), &[]).status,
        405
    );
    assert_eq!(curl("GET", &format!("{url}/nothing"), None, &[]).status, 404);
    assert_eq!(
        curl("GET", &format!("{url}/crls/not-a-ca_v1/current.crl"), None, &[]).status,
        404
    );
    // Health and metrics.
    assert_eq!(curl("GET", &format!("{url}/healthz"), None, &[]).status, 200);
    assert_eq!(curl("GET", &format!("{url}/readyz"), None, &[]).status, 200);
    let metrics = String::from_utf8(curl("GET", &format!("{url}/metrics"), None, &[]).body).unwrap();
    for needle in [
        "cloudpki_ocsp_responses_total{outcome=\"malformed\"}",
        "cloudpki_ocsp_responses_total{outcome=\"unauthorized\"}",
        "cloudpki_ocsp_responses_total{outcome=\"revoked\"}",
        "cloudpki_http_requests_total{route=\"ocsp_post\",status=\"413\"}",
        "cloudpki_snapshot_generation",
        "cloudpki_snapshot_age_seconds",
        "cloudpki_crl_size_bytes",
        "cloudpki_crl_number{ca=",
        "cloudpki_crl_this_update_seconds{ca=",
        "cloudpki_crl_next_update_seconds{ca=",
        "cloudpki_crl_age_seconds{ca=",
        "cloudpki_signatures_total{purpose=\"crl\"}",
        "cloudpki_http_request_duration_seconds_bucket",
    ] {
        assert!(metrics.contains(needle), "metrics lack {needle}");
    }
    // The CRL gauges carry the served CRL's facts.
    let gauge = |name: &str| -> i64 {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{")))
            .unwrap_or_else(|| panic!("no {name}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(gauge("cloudpki_crl_number") >= 1);
    let this_update = gauge("cloudpki_crl_this_update_seconds");
    assert!((now - 3600..=now).contains(&this_update), "{this_update}");
    assert_eq!(gauge("cloudpki_crl_next_update_seconds") - this_update, 7 * 86_400);
    assert!((0..3600).contains(&gauge("cloudpki_crl_age_seconds")));
}

#[test]
fn the_ocsp_crate_reads_the_requests_we_answer() {
    // ocsp-rs 0.4 decodes requests only (it has no response decoder, and it
    // knows SHA-1 CertIDs only): it must see the CertIDs our parser sees.
    let s = served("eCP256");
    for extra in [&["-sha1", "-nonce"][..], &["-sha1", "-no_nonce"][..]] {
        let der = request_der(&s, &s.good, extra, "diff.req");
        let theirs = ocsp::request::OcspRequest::parse(&der).expect("ocsp-rs parses the request");
        let ours = cloudpki::x509::ocsp::parse_request(&der).unwrap();
        assert_eq!(theirs.tbs_request.request_list.len(), ours.questions.len());
        let (t, o) = (&theirs.tbs_request.request_list[0].certid, &ours.questions[0].cert_id);
        assert_eq!(&t.issuer_name_hash[..], o.issuer_name_hash.as_bytes());
        assert_eq!(&t.issuer_key_hash[..], o.issuer_key_hash.as_bytes());
        assert_eq!(&t.serial_num[..], o.serial_number.as_bytes());
        assert_eq!(ours.nonce.is_some(), extra.contains(&"-nonce"));
    }
}

#[test]
fn revocations_become_visible_fast() {
    let env = Env::new();
    let server = env.server();
    let (_, issuing) = env.ec_hierarchy("Fast");
    let csr = env.openssl_csr("fleet", &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"], "/CN=fleet");
    env.json(&[
        "cert",
        "issue-bulk",
        "--ca",
        &issuing,
        "--csr",
        csr.to_str().unwrap(),
        "--count",
        "2000",
    ]);
    let pki = server.handles.pki.clone().unwrap();
    let published = server.handles.published.clone();
    // Wait until the server has followed the CLI's issuance.
    let deadline = Instant::now() + Duration::from_secs(10);
    while published.load().cas.get(issuing.as_str()).map_or(0, |c| c.certs.len()) < 2000 {
        assert!(Instant::now() < deadline, "issuance never reached the snapshot");
        std::thread::sleep(Duration::from_millis(20));
    }
    let leaves = pki
        .list_leaves(&cloudpki::domain::LeafListQuery {
            ca_id: Some(issuing.clone()),
            status: None,
            after_seq: 0,
            limit: 100,
        })
        .unwrap();
    // In-process revocations: OCSP and CRL visibility after commit.
    let leaf_refs: Vec<_> = leaves.iter().map(|(_, l)| l).collect();
    let (mut ocsp_delays, mut crl_delays) = measure_visibility(&server.handles, &issuing, &leaf_refs);
    ocsp_delays.sort();
    crl_delays.sort();
    let p = |v: &[Duration], q: f64| v[((v.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    println!(
        "revocation -> visible (debug build, {} revocations): OCSP p50 {:?} p99 {:?}; CRL p50 {:?} p99 {:?}",
        ocsp_delays.len(),
        p(&ocsp_delays, 0.5),
        p(&ocsp_delays, 0.99),
        p(&crl_delays, 0.5),
        p(&crl_delays, 0.99)
    );
    // The 10 ms target is measured on release builds (load-tests/); a debug
    // build on a shared CI core gets a looser bound that still proves the
    // commit hook, not the 100 ms poll, drives visibility.
    assert!(p(&ocsp_delays, 0.5) < Duration::from_millis(50));

    // CLI revocations (another process): SQLite's data_version watcher, not
    // the 100 ms poll, brings them in (issue: any writer's change visible
    // in 10 ms). Timed from the CLI's acknowledgement.
    let others = pki
        .list_leaves(&cloudpki::domain::LeafListQuery {
            ca_id: Some(issuing.clone()),
            status: Some(cloudpki::domain::LeafStatus::Active),
            after_seq: 0,
            limit: 30,
        })
        .unwrap();
    let mut cli_delays = Vec::new();
    for (_, target) in &others {
        let serial = cloudpki::domain::engine::hex_bytes(&target.serial).unwrap();
        let key = cloudpki::snapshot::SerialKey::new(&serial).unwrap();
        let out = env.run(&["cert", "revoke", &target.id]);
        assert!(out.status.success());
        let acked = Instant::now();
        while !matches!(
            published
                .load()
                .cas
                .get(issuing.as_str())
                .unwrap()
                .certs
                .get(&key)
                .unwrap()
                .status(),
            cloudpki::x509::ocsp::Status::Revoked { .. }
        ) {
            assert!(
                acked.elapsed() < Duration::from_secs(1),
                "a CLI revocation took over 1 s to reach the server"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        cli_delays.push(acked.elapsed());
    }
    cli_delays.sort();
    println!(
        "CLI revocation (another process) -> visible, {} revocations: p50 {:?} p99 {:?} max {:?}",
        cli_delays.len(),
        p(&cli_delays, 0.5),
        p(&cli_delays, 0.99),
        cli_delays[cli_delays.len() - 1]
    );
    // Well under the old 100 ms poll even on a loaded debug CI machine.
    assert!(p(&cli_delays, 0.5) < Duration::from_millis(25), "{cli_delays:?}");
    server.stop();
}

#[test]
fn python_cryptography_and_pyhanko_accept_the_served_pki() {
    // tests/tools/check_responder.py: `cryptography` parses and verifies every
    // CRL, AIA download and OCSP answer (POST and GET, SHA-1/SHA-256, nonce),
    // and pyhanko-certvalidator validates both leaves with revocation fetched
    // over HTTP (OCSP only, CRL only, both).
    for key_size in ["eCP256", "rsa2048"] {
        let s = served(key_size);
        let out = std::process::Command::new("python3")
            .arg(crate::support::repo().join("tests/tools/check_responder.py"))
            .args([
                "--root",
                p(&s.root_pem),
                "--issuing",
                p(&s.issuing_pem),
                "--good",
                p(&s.good),
                "--revoked",
                p(&s.revoked),
            ])
            .output()
            .expect("python3");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{key_size}: check_responder failed:\n{text}");
        assert!(text.contains("0 failed"), "{text}");
    }
}

#[test]
fn delegated_ocsp_signing_certificates() {
    for key_size in ["eCP256", "rsa2048"] {
        let s = served_with(key_size, &["--ocsp-signer", "delegated"]);
        for extra in [&["-sha1", "-nonce"][..], &["-sha256", "-no_nonce"][..]] {
            let out = ask(&s, &["-cert", p(&s.good)], extra);
            assert!(
                out.contains("Response verify OK") && out.contains(": good"),
                "{key_size} {extra:?}: {out}"
            );
            let out = ask(&s, &["-cert", p(&s.revoked)], extra);
            assert!(out.contains("Response verify OK") && out.contains(": revoked"), "{out}");
            let out = ask(&s, &["-serial", "0x0123456789ABCDEF"], extra);
            assert!(out.contains("Response verify OK") && out.contains(": unknown"), "{out}");
        }
        let der = request_der(&s, &s.good, &["-no_nonce"], "delegated.req");
        let resp = s.env.path("delegated.resp");
        std::fs::write(
            &resp,
            curl("POST", &format!("{}/ocsp", s.server.url), Some(&der), &[]).body,
        )
        .unwrap();
        let (_, text) = openssl_any(&["ocsp", "-respin", p(&resp), "-resp_text", "-noverify"]);
        assert!(
            text.contains("OCSP Signing") && text.contains("OCSP No Check"),
            "the delegate is included: {text}"
        );
        assert!(text.contains("Responder Issuing OCSP Responder"), "{text}");
        pkilint("ocsp", &[resp]);
    }
}

/// The 10 ms target at scale (release build, ~2 minutes):
/// `cargo test --release --test integration visibility_at_100k -- --ignored --nocapture`
#[test]
#[ignore]
fn visibility_at_100k_certificates() {
    let env = Env::new();
    let server = env.server();
    let (_, issuing) = env.ec_hierarchy("Scale");
    let csr = env.openssl_csr("scale", &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"], "/CN=scale");
    env.json(&[
        "cert",
        "issue-bulk",
        "--ca",
        &issuing,
        "--csr",
        csr.to_str().unwrap(),
        "--count",
        "100000",
        "--batch",
        "5000",
    ]);
    let pki = server.handles.pki.clone().unwrap();
    let published = server.handles.published.clone();
    let deadline = Instant::now() + Duration::from_secs(120);
    while published.load().cas.get(issuing.as_str()).map_or(0, |c| c.certs.len()) < 100_000 {
        assert!(Instant::now() < deadline, "issuance never reached the snapshot");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Revoke 20 % first so the CRL is realistic (20k entries), then measure 300.
    let leaves = pki
        .list_leaves(&cloudpki::domain::LeafListQuery {
            ca_id: Some(issuing.clone()),
            status: None,
            after_seq: 0,
            limit: 20_300,
        })
        .unwrap();
    let ids: Vec<String> = leaves[..20_000].iter().map(|(_, l)| l.id.clone()).collect();
    for chunk in ids.chunks(1000) {
        pki.revoke_leaves(chunk, cloudpki::domain::RevocationReason::Superseded)
            .unwrap();
    }
    std::thread::sleep(Duration::from_secs(2));
    let leaf_refs: Vec<_> = leaves[20_000..].iter().map(|(_, l)| l).collect();
    let (mut ocsp, mut crl) = measure_visibility(&server.handles, &issuing, &leaf_refs);
    ocsp.sort();
    crl.sort();
    let q = |v: &[Duration], q: f64| v[((v.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    println!(
        "100k certificates, 20k-entry CRL, {} revocations: OCSP p50 {:?} p99 {:?} max {:?}; CRL p50 {:?} p99 {:?} max {:?}",
        ocsp.len(),
        q(&ocsp, 0.5),
        q(&ocsp, 0.99),
        ocsp.last().unwrap(),
        q(&crl, 0.5),
        q(&crl, 0.99),
        crl.last().unwrap()
    );
    assert!(q(&ocsp, 0.99) < Duration::from_millis(10));
    assert!(q(&crl, 0.99) < Duration::from_millis(10));
}

/// Revokes each leaf in the server's process and measures, from commit, when
/// the snapshot answers `revoked` by OCSP and when its CRL partition has grown.
fn measure_visibility(
    handles: &cloudpki::app::Handles,
    issuing: &str,
    leaves: &[&cloudpki::domain::Leaf],
) -> (Vec<Duration>, Vec<Duration>) {
    let (mut ocsp, mut crl) = (Vec::new(), Vec::new());
    for leaf in leaves {
        let serial = cloudpki::domain::engine::hex_bytes(&leaf.serial).unwrap();
        let key = cloudpki::snapshot::SerialKey::new(&serial).unwrap();
        let before = handles
            .published
            .load()
            .cas
            .get(issuing)
            .unwrap()
            .crls
            .get(&cloudpki::snapshot::CrlScopeKey::complete(leaf.crl_partition))
            .unwrap()
            .entries;
        handles
            .pki
            .as_ref()
            .unwrap()
            .revoke_leaf(&leaf.id, None, cloudpki::domain::RevocationReason::KeyCompromise)
            .unwrap();
        let committed = Instant::now();
        let mut seen = None;
        loop {
            let snap = handles.published.load();
            let ca = snap.cas.get(issuing).unwrap();
            if seen.is_none()
                && matches!(
                    ca.certs.get(&key).unwrap().status(),
                    cloudpki::x509::ocsp::Status::Revoked { .. }
                )
            {
                seen = Some(committed.elapsed());
            }
            // The leaf's own partition, the CRL its certificate names.
            if seen.is_some()
                && ca
                    .crls
                    .get(&cloudpki::snapshot::CrlScopeKey::complete(leaf.crl_partition))
                    .unwrap()
                    .entries
                    > before
            {
                crl.push(committed.elapsed());
                break;
            }
            assert!(
                committed.elapsed() < Duration::from_secs(2),
                "revocation not visible after 2 s"
            );
            std::thread::yield_now();
        }
        ocsp.push(seen.unwrap());
    }
    (ocsp, crl)
}

#[test]
fn ocsp_get_max_age_can_be_capped_for_caches_in_front() {
    let s = served("eCP256");
    let der = request_der(&s, &s.good, &["-sha1", "-no_nonce"], "cap.req");
    let path = base64ct::Base64::encode_string(&der);
    let mut cfg = s.env.serve_config(crate::support::free_port());
    cfg.ocsp_max_age = Some(600);
    let capped = s.env.start_server_cfg(cfg);
    let r = curl("GET", &format!("{}/ocsp/{path}", capped.url), None, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("cache-control"),
        Some("max-age=600, public, no-transform, must-revalidate")
    );
    // Same pre-signed bytes; only how long caches may keep them changes.
    let uncapped = curl("GET", &format!("{}/ocsp/{path}", s.server.url), None, &[]);
    assert_eq!(r.body, uncapped.body);
    assert_ne!(uncapped.header("cache-control"), r.header("cache-control"));
}

/// A leaf's SHA-256 CertID answer is not pre-signed: the first question
/// signs it (with the SHA-1 answer's thisUpdate and nextUpdate), later ones
/// get the same bytes without a signature, and a revocation replaces it.
#[test]
fn a_leafs_sha256_answer_is_signed_once_then_kept_until_its_status_changes() {
    let s = served("eCP256");
    let on_demand = || -> i64 {
        let m = curl("GET", &format!("{}/metrics", s.server.url), None, &[]).body;
        String::from_utf8(m)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("cloudpki_signatures_total{purpose=\"ocsp_on_demand\"} "))
            .map_or(0, |v| v.parse().unwrap())
    };
    let get = |digest: &str, name: &str| {
        let der = request_der(&s, &s.good, &[digest, "-no_nonce"], name);
        let url = format!("{}/ocsp/{}", s.server.url, base64ct::Base64::encode_string(&der));
        curl("GET", &url, None, &[])
    };
    let status_of = |body: &[u8], digest: &str| {
        let out = read_answer(&s, body, &[digest, "-cert", p(&s.good)]);
        assert!(out.contains("Response verify OK"), "{out}");
        out
    };
    let before = on_demand();
    let first = get("-sha256", "a.req");
    assert_eq!(first.status, 200);
    assert!(status_of(&first.body, "-sha256").contains(": good"));
    assert_eq!(
        on_demand(),
        before + 1,
        "the first SHA-256 question is signed on demand"
    );
    let second = get("-sha256", "b.req");
    assert_eq!(second.body, first.body, "then kept: the same bytes");
    assert_eq!(on_demand(), before + 1, "and not signed again");
    // It states what the SHA-1 answer states, for the same period.
    let sha1 = get("-sha1", "c.req");
    assert_eq!(sha1.header("last-modified"), first.header("last-modified"));
    assert_eq!(sha1.header("expires"), first.header("expires"));
    assert_eq!(on_demand(), before + 1);

    let serial = crate::support::serial_of(&s.good);
    s.env
        .json(&["cert", "revoke", "--serial", &serial, "--reason", "superseded"]);
    wait_for(&s, &s.good, "revoked");
    let after = get("-sha256", "d.req");
    assert!(
        status_of(&after.body, "-sha256").contains(": revoked"),
        "a new state, a new answer"
    );
    assert_eq!(on_demand(), before + 2);
}

/// A plain OCSP GET is answered before the request's future is built
/// (`http::Handled::Now`); a HEAD, or a GET that carries a body, must still
/// take the whole path, with what that path adds (no body; `Connection:
/// close` for an unread body).
#[test]
fn regression_answered_at_once_only_where_the_whole_path_would_answer_the_same() {
    use std::io::{Read, Write};
    let s = served("eCP256");
    let der = request_der(&s, &s.good, &["-sha1", "-no_nonce"], "at-once.req");
    let path = format!("/ocsp/{}", base64ct::Base64::encode_string(&der).replace('/', "%2F"));
    let plain = curl("GET", &format!("{}{path}", s.server.url), None, &[]);
    assert_eq!(plain.status, 200);
    assert!(read_answer(&s, &plain.body, &["-cert", p(&s.good)]).contains(": good"));
    let addr = s.server.url.trim_start_matches("http://").to_owned();
    let raw = |request: String| -> String {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(request.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    let head = raw(format!("HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-length: {}\r\n", plain.body.len())),
        "{head}"
    );
    assert!(head.ends_with("\r\n\r\n"), "HEAD answered with a body: {head:?}");
    let with_body = raw(format!("GET {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n"));
    assert!(with_body.starts_with("HTTP/1.1 200"), "{with_body}");
    assert!(
        with_body.to_ascii_lowercase().contains("connection: close"),
        "{with_body}"
    );
}

/// A plain `POST /ocsp` takes a future of its own (`http::ocsp_post`), not
/// the general one; what it answers must be what the general path answers:
/// the same body for `/ocsp`, `/ocsp/` and `/ocsp?query` (the last takes
/// the general path), `Connection: close` when a body is refused unread,
/// and several POSTs on one keep-alive connection.
#[test]
fn regression_plain_ocsp_post_answers_as_the_whole_path() {
    use std::io::{Read, Write};
    let s = served("eCP256");
    let der = request_der(&s, &s.good, &["-sha1", "-no_nonce"], "post-route.req");
    let ct = [("Content-Type", "application/ocsp-request")];
    let mut bodies = Vec::new();
    for target in ["/ocsp", "/ocsp/", "/ocsp?via=general"] {
        let r = curl("POST", &format!("{}{target}", s.server.url), Some(&der), &ct);
        assert_eq!(r.status, 200, "{target}");
        assert!(
            read_answer(&s, &r.body, &["-cert", p(&s.good)]).contains(": good"),
            "{target}"
        );
        bodies.push(r.body);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "the routes answered differently"
    );
    let addr = s.server.url.trim_start_matches("http://").to_owned();
    let raw = |request: &[u8]| -> Vec<u8> {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(request).unwrap();
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        out
    };
    // A declared body past the limit is refused before it is read: the
    // connection must close, or its bytes would be read as the next request.
    let big = raw(b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n0123");
    let big = String::from_utf8_lossy(&big).to_ascii_lowercase();
    assert!(big.starts_with("http/1.1 413"), "{big}");
    assert!(big.contains("connection: close"), "{big}");
    // Two POSTs and a close on one connection: both answered, in order.
    let mut two = Vec::new();
    for last in [false, true] {
        two.extend_from_slice(
            format!(
                "POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\nContent-Length: {}\r\n{}\r\n",
                der.len(),
                if last { "Connection: close\r\n" } else { "" }
            )
            .as_bytes(),
        );
        two.extend_from_slice(&der);
    }
    let out = raw(&two);
    let answers = out
        .windows(bodies[0].len())
        .filter(|w| *w == bodies[0].as_slice())
        .count();
    assert_eq!(answers, 2, "{}", String::from_utf8_lossy(&out));
    // A body that is not whole in hyper's first frame (half of it sent with
    // the head, the rest 100 ms later; with a length and chunked) is read on
    // under the deadlines, and answered alike: only a whole first frame is
    // taken as it is.
    let in_pieces = |parts: &[Vec<u8>]| -> Vec<u8> {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.set_nodelay(true).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                std::thread::sleep(Duration::from_millis(100));
            }
            c.write_all(part).unwrap();
        }
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        out
    };
    let (first, rest) = der.split_at(der.len() / 2);
    let head = |framing: String| {
        format!("POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n{framing}\r\nConnection: close\r\n\r\n")
            .into_bytes()
    };
    let with_length = in_pieces(&[
        [head(format!("Content-Length: {}", der.len())), first.to_vec()].concat(),
        rest.to_vec(),
    ]);
    let chunk = |part: &[u8]| {
        [
            format!("{:x}\r\n", part.len()).into_bytes(),
            part.to_vec(),
            b"\r\n".to_vec(),
        ]
        .concat()
    };
    let chunked = in_pieces(&[
        [head("Transfer-Encoding: chunked".into()), chunk(first)].concat(),
        [chunk(rest), b"0\r\n\r\n".to_vec()].concat(),
    ]);
    for (framing, out) in [("length", with_length), ("chunked", chunked)] {
        assert!(
            out.starts_with(b"HTTP/1.1 200"),
            "{framing}: {}",
            String::from_utf8_lossy(&out)
        );
        assert!(
            out.ends_with(&bodies[0]),
            "{framing}: answered otherwise: {}",
            String::from_utf8_lossy(&out)
        );
    }
}
