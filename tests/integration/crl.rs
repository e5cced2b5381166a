//! CRLs as a relying party fetches them, checked against the store by
//! `cloudpki crl verify`.

use crate::support::*;

#[test]
fn crl_verify_checks_every_served_crl_against_the_store() {
    let env = Env::new();
    let server = env.server();
    let (root, issuing) = env.ec_hierarchy("Verify");
    let csr = env.openssl_csr("leaf", &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"], "/CN=leaf");
    let csr = csr.to_str().unwrap();
    let leaves: Vec<serde_json::Value> = (0..3)
        .map(|_| env.json(&["cert", "issue", "--ca", &issuing, "--csr", csr]))
        .collect();
    env.json(&["cert", "revoke", &id(&leaves[0]), "--reason", "keyCompromise"]);

    // Every CRL verifies and matches the store: the root's one CRL, and the
    // issuing CA's current.crl and its 16 partitions.
    let out = env.run(&["crl", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let lines = |ca: &str| -> Vec<String> { text.lines().filter(|l| l.contains(ca)).map(str::to_owned).collect() };
    let entries = |l: &str| -> u64 {
        let (_, rest) = l.split_once(": ").unwrap();
        rest.split_once(' ').unwrap().0.parse().unwrap()
    };
    let root_lines = lines(&root);
    assert_eq!(root_lines.len(), 1, "{text}");
    assert!(
        root_lines[0].starts_with("ok") && entries(&root_lines[0]) == 0,
        "{text}"
    );
    let issuing_lines = lines(&issuing);
    assert_eq!(issuing_lines.len(), 17, "{text}");
    assert!(issuing_lines.iter().all(|l| l.starts_with("ok")), "{text}");
    let revoked_url = leaves[0]["crlDistributionPointUrl"].as_str().unwrap();
    assert!(revoked_url.starts_with(&format!("{}/crls/{issuing}_v1/", server.url)));
    for l in &issuing_lines {
        let want = u64::from(l.ends_with(&format!("  {revoked_url}")));
        assert_eq!(entries(l), want, "only the revoked leaf's partition lists it: {l}");
    }
    assert!(issuing_lines[0].ends_with(&format!("{}/crls/{issuing}_v1/current.crl", server.url)));
    // --json: one object per CRL.
    let out = env.run(&["crl", "verify", "--ca", &issuing, "--json"]);
    assert!(out.status.success());
    let objects: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 17);
    assert!(objects.iter().all(|o| o["ok"] == true));
    let total: u64 = objects.iter().map(|o| o["entries"].as_u64().unwrap()).sum();
    assert_eq!(total, 1);

    // A revocation the CRL does not show (written behind the engine's back,
    // so nothing republished) is a difference: exit 1, naming the serial.
    let serial = leaves[1]["serialNumber"].as_str().unwrap().to_owned();
    let db = rusqlite::Connection::open(env.data_dir().join("cloudpki.db")).unwrap();
    db.execute(
        "UPDATE leaves SET revoked_at = 1700000000, revocation_reason = 1 WHERE id = ?1",
        [id(&leaves[1])],
    )
    .unwrap();
    drop(db);
    let out = env.run(&["crl", "verify", "--ca", &issuing]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let failed: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(failed.len(), 1, "{text}");
    assert!(
        failed[0].contains("1 revoked but not listed")
            && failed[0].contains(&serial)
            && failed[0].contains(leaves[1]["crlDistributionPointUrl"].as_str().unwrap()),
        "the partition of that leaf: {text}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 CRL(s) differ"));
    server.stop();
}

/// Partitioned CRLs as relying parties we did not write fetch them, from
/// the URLs in the certificates: `openssl verify -crl_download` follows
/// each leaf's CRL DP (and the issuing CA's, with `-crl_check_all`), Python
/// `cryptography` parses every partition listed in `partitions.json`, and
/// pkilint lints each (the root's as an ARL).
#[test]
fn partitioned_crls_as_relying_parties_fetch_them() {
    let env = Env::new();
    let server = env.server();
    let (root, issuing) = env.ec_hierarchy_with("Part", &["--crl-partitions", "4"]);
    let root_pem = env.save(&["ca", "cert", &root], "root.pem");
    let issuing_pem = env.save(&["ca", "cert", &issuing], "issuing.pem");
    let csr = env.openssl_csr("leaf", &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"], "/CN=leaf");
    let mut leaves = Vec::new();
    for i in 0..8 {
        let (pem, serial) = env.issue_pem(&issuing, &csr, &format!("leaf{i}.pem"));
        leaves.push((pem, serial, i % 2 == 1));
    }
    let dir = format!("{}/crls/{issuing}_v1/", server.url);
    let mut partitions_used = std::collections::BTreeSet::new();
    for (pem, serial, revoke) in &leaves {
        let url = cdp_url(pem);
        let p: u32 = url
            .strip_prefix(&dir)
            .and_then(|f| f.strip_suffix(".crl"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{url} is not a partition of {dir}"));
        assert!((1..=4).contains(&p), "{url}");
        partitions_used.insert(p);
        if *revoke {
            env.json(&["cert", "revoke", "--serial", serial, "--reason", "keyCompromise"]);
        }
    }
    // The CLI is another process: wait until every partition shows its revocations.
    let listed = |url: &str, serial: &str| {
        let f = env.path("probe.crl");
        std::fs::write(&f, curl("GET", url, None, &[]).body).unwrap();
        openssl_any(&["crl", "-inform", "DER", "-in", f.to_str().unwrap(), "-noout", "-text"])
            .1
            .contains(serial)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    for (pem, serial, revoke) in &leaves {
        while *revoke && !listed(&cdp_url(pem), serial) {
            assert!(std::time::Instant::now() < deadline, "{serial} never on its partition");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    // openssl fetches the CRL each certificate names, over HTTP.
    for (pem, serial, revoke) in &leaves {
        for check in ["-crl_check", "-crl_check_all"] {
            let (ok, out) = openssl_any(&[
                "verify",
                check,
                "-crl_download",
                "-CAfile",
                root_pem.to_str().unwrap(),
                "-untrusted",
                issuing_pem.to_str().unwrap(),
                pem.to_str().unwrap(),
            ]);
            if *revoke {
                assert!(!ok && out.contains("certificate revoked"), "{serial} {check}: {out}");
            } else if check == "-crl_check" {
                assert!(ok && out.contains(": OK"), "{serial} {check}: {out}");
            } else {
                // OpenSSL 3 also asks for a CRL covering the trust anchor
                // itself, which has no CRL DP (the root's CRL of issuing CAs
                // names its own URL, so cannot cover it): the leaf's
                // partition and the issuing CA's entry on the root's CRL,
                // depths 0 and 1, were downloaded and passed.
                assert!(
                    !ok && out.contains("error 3 at 2 depth lookup: unable to get certificate CRL"),
                    "{serial} {check}: {out}"
                );
                assert!(!out.contains("at 0 depth") && !out.contains("at 1 depth"), "{out}");
            }
        }
        // Every other partition lists none of this leaf's revocation.
        for p in 1..=4 {
            let url = format!("{dir}{p}.crl");
            if url != cdp_url(pem) && *revoke {
                assert!(!listed(&url, serial), "{serial} also on {url}");
            }
        }
    }

    // partitions.json: CCADB's JSON array, the same list the CA entity shows.
    let r = curl("GET", &format!("{dir}partitions.json"), None, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let urls: Vec<String> = serde_json::from_slice(&r.body).unwrap();
    let entity = env.json(&["ca", "show", &issuing]);
    assert_eq!(entity["crlPartitionCount"], 4);
    assert_eq!(serde_json::json!(urls), entity["crlPartitionUrls"]);
    assert_eq!(entity["crlPartitionsUrl"], format!("{dir}partitions.json"));
    let mut want = vec![format!("{dir}current.crl")];
    want.extend((1..=4).map(|p| format!("{dir}{p}.crl")));
    assert_eq!(urls, want);
    assert_eq!(curl("GET", &format!("{dir}5.crl"), None, &[]).status, 404);
    assert_eq!(curl("GET", &format!("{dir}01.crl"), None, &[]).status, 404);

    // Python cryptography parses every one; each IDP names its own URL.
    let mut files = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let f = env.path(&format!("p{i}.crl"));
        let r = curl("GET", url, None, &[]);
        assert_eq!(r.status, 200, "{url}");
        std::fs::write(&f, &r.body).unwrap();
        files.push(f);
    }
    let root_crl = env.path("root.crl");
    std::fs::write(&root_crl, curl("GET", &cdp_url(&issuing_pem), None, &[]).body).unwrap();
    let script = r#"
import sys
from cryptography import x509
issuer = x509.load_pem_x509_certificate(open(sys.argv[1], "rb").read())
args = sys.argv[2:]
for url, path in zip(args[0::2], args[1::2]):
    crl = x509.load_der_x509_crl(open(path, "rb").read())
    assert crl.is_signature_valid(issuer.public_key()), url
    idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
    assert idp.critical, url
    assert [n.value for n in idp.value.full_name] == [url], (url, idp.value.full_name)
    assert idp.value.only_contains_user_certs, url
    print(url, len(list(crl)))
"#;
    let mut args = vec![
        "-c".to_owned(),
        script.to_owned(),
        issuing_pem.to_str().unwrap().to_owned(),
    ];
    for (url, f) in urls.iter().zip(&files) {
        args.push(url.clone());
        args.push(f.to_str().unwrap().to_owned());
    }
    let out = std::process::Command::new("python3").args(&args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let total: usize = text
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(total, 4, "every revocation on exactly one partition: {text}");
    assert!(
        text.lines().next().unwrap().ends_with(" 0"),
        "current.crl lists nothing: {text}"
    );

    pkilint("crl", &files);
    pkilint("arl", &[root_crl]);
    server.stop();
}

/// Delta CRLs: a leaf of a CA with deltas names its partition's delta in
/// its Freshest CRL extension; a revocation re-signs only the delta, so
/// `openssl verify -crl_download -use_deltas -extended_crl` catches a revocation the
/// complete CRL does not list yet; a delta past the size threshold cuts a
/// new complete CRL (and an empty delta naming it).
#[test]
fn delta_crls_as_relying_parties_use_them() {
    let env = Env::new();
    let server = env.server_adjusted(|cfg| cfg.timings.crl_delta_max_entries = 3);
    let (root, issuing) = env.ec_hierarchy_with("Delta", &["--crl-partitions", "1", "--delta-crls"]);
    let root_pem = env.save(&["ca", "cert", &root], "root.pem");
    let issuing_pem = env.save(&["ca", "cert", &issuing], "issuing.pem");
    assert_eq!(env.json(&["ca", "show", &issuing])["deltaCrlEnabled"], true);
    let csr = env.openssl_csr("leaf", &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"], "/CN=leaf");
    let leaves: Vec<(std::path::PathBuf, String)> = (0..5)
        .map(|i| env.issue_pem(&issuing, &csr, &format!("leaf{i}.pem")))
        .collect();
    let dir = format!("{}/crls/{issuing}_v1/", server.url);
    let (base_url, delta_url) = (format!("{dir}1.crl"), format!("{dir}1-delta.crl"));
    for (pem, _) in &leaves {
        assert_eq!(cdp_url(pem), base_url);
        let ext = openssl(&["x509", "-in", pem.to_str().unwrap(), "-noout", "-ext", "freshestCRL"]);
        assert!(ext.contains(&format!("URI:{delta_url}")), "{ext}");
    }
    let text_of = |url: &str, name: &str| {
        let f = env.path(name);
        let r = curl("GET", url, None, &[]);
        assert_eq!(r.status, 200, "{url}");
        std::fs::write(&f, &r.body).unwrap();
        let (_, text) = openssl_any(&["crl", "-inform", "DER", "-in", f.to_str().unwrap(), "-noout", "-text"]);
        (f, text)
    };
    let wait_for = |what: &str, mut f: Box<dyn FnMut() -> bool + '_>| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !f() {
            assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };

    // One revocation: on the delta only.
    let (revoked_pem, revoked) = &leaves[0];
    env.json(&["cert", "revoke", "--serial", revoked, "--reason", "keyCompromise"]);
    wait_for(
        "the revocation on the delta",
        Box::new(|| text_of(&delta_url, "d.crl").1.contains(revoked)),
    );
    let (base_file, base_text) = text_of(&base_url, "base.crl");
    let (delta_file, delta_text) = text_of(&delta_url, "delta.crl");
    assert!(
        !base_text.contains(revoked),
        "the complete CRL waits for its cut: {base_text}"
    );
    assert!(
        base_text.contains(&format!("URI:{delta_url}")),
        "Freshest CRL on the base: {base_text}"
    );
    let number = |text: &str, label: &str| -> u64 {
        let at = text.find(label).unwrap_or_else(|| panic!("no {label}: {text}"));
        text[at..].lines().nth(1).unwrap().trim().parse().unwrap()
    };
    let base_number = number(&base_text, "X509v3 CRL Number");
    assert_eq!(number(&delta_text, "X509v3 Delta CRL Indicator: critical"), base_number);
    assert!(number(&delta_text, "X509v3 CRL Number") > base_number);
    assert!(
        delta_text.contains(&format!("URI:{base_url}")),
        "the delta's IDP is its base's: {delta_text}"
    );

    // OpenSSL's -crl_download fetches the Freshest CRL as well as the CDP.
    // OpenSSL 3.0 tells a delta from a complete CRL only with -extended_crl:
    // without it the newer of the two is taken as the complete CRL (with or
    // without -use_deltas), which misses what only the base lists. So a
    // relying party using deltas passes -use_deltas -extended_crl; one that
    // does not, -extended_crl (or no -crl_download of Freshest CRLs).
    let verify = |pem: &std::path::Path, deltas: bool| {
        let mut args = vec!["verify", "-crl_check", "-crl_download", "-extended_crl"];
        if deltas {
            args.push("-use_deltas");
        }
        args.extend_from_slice(&[
            "-CAfile",
            root_pem.to_str().unwrap(),
            "-untrusted",
            issuing_pem.to_str().unwrap(),
        ]);
        args.push(pem.to_str().unwrap());
        openssl_any(&args)
    };
    let (ok, out) = verify(revoked_pem, true);
    assert!(
        !ok && out.contains("certificate revoked"),
        "caught through the delta: {out}"
    );
    let (ok, out) = verify(revoked_pem, false);
    assert!(
        ok,
        "without deltas, the complete CRL does not list it until its cut: {out}"
    );
    let (ok, out) = verify(&leaves[1].0, true);
    assert!(ok && out.contains(": OK"), "{out}");

    // pyhanko-certvalidator follows the leaf's Freshest CRL too: with
    // revocation from CRLs only, the revocation only the delta lists is caught.
    let pyhanko = |pem: &std::path::Path| -> String {
        let out = std::process::Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/pyhanko_crl.py"))
            .args([&root_pem, &issuing_pem, pem])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = pyhanko(revoked_pem);
    assert!(out.starts_with("revoked\n"), "pyhanko through the delta: {out}");
    assert!(
        out.lines().any(|l| l == base_url) && out.lines().any(|l| l == delta_url),
        "it fetched the base and the delta: {out}"
    );
    let out = pyhanko(&leaves[1].0);
    assert!(out.starts_with("valid\n"), "{out}");

    // Python cryptography reads both; pkilint lints both.
    let script = r#"
import sys
from cryptography import x509
base = x509.load_der_x509_crl(open(sys.argv[1], "rb").read())
delta = x509.load_der_x509_crl(open(sys.argv[2], "rb").read())
ind = delta.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
assert ind.critical
number = base.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
assert ind.value.crl_number == number, (ind.value.crl_number, number)
fresh = base.extensions.get_extension_for_class(x509.FreshestCRL).value
assert [n.value for dp in fresh for n in dp.full_name] == [sys.argv[3]]
print(len(list(base)), len(list(delta)))
"#;
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            script,
            base_file.to_str().unwrap(),
            delta_file.to_str().unwrap(),
            &delta_url,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0 1");
    pkilint("crl", &[base_file, delta_file]);

    // crl verify combines each complete CRL with its delta.
    let out = env.run(&["crl", "verify", "--ca", &issuing]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let line = text.lines().find(|l| l.ends_with(&format!("  {base_url}"))).unwrap();
    assert!(line.contains(": 0 entries") && line.contains(": 1 entries"), "{line}");

    // Three revocations since the base reach the threshold: a new complete
    // CRL lists all of them, and the delta starts empty again.
    for (_, serial) in &leaves[1..3] {
        env.json(&["cert", "revoke", "--serial", serial]);
    }
    wait_for(
        "a new complete CRL",
        Box::new(|| {
            let base = text_of(&base_url, "b2.crl").1;
            leaves[..3].iter().all(|(_, s)| base.contains(s))
        }),
    );
    wait_for(
        "an empty delta naming it",
        Box::new(|| {
            let base = text_of(&base_url, "b3.crl").1;
            let delta = text_of(&delta_url, "d3.crl").1;
            delta.contains("No Revoked Certificates")
                && number(&delta, "X509v3 Delta CRL Indicator: critical") == number(&base, "X509v3 CRL Number")
        }),
    );
    let (ok, out) = verify(&leaves[2].0, false);
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    env.json(&["cert", "revoke", "--serial", &leaves[3].1]);
    wait_for(
        "leaf 3 on the delta",
        Box::new(|| text_of(&delta_url, "d4.crl").1.contains(&leaves[3].1)),
    );
    // A delta signed a later second than its base: whether or not a
    // relying party combines them, what the base lists stays revoked.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.json(&["cert", "revoke", "--serial", &leaves[4].1]);
    wait_for(
        "leaf 4 on the delta",
        Box::new(|| text_of(&delta_url, "d5.crl").1.contains(&leaves[4].1)),
    );
    for deltas in [false, true] {
        let (ok, out) = verify(&leaves[0].0, deltas);
        assert!(!ok && out.contains("certificate revoked"), "use_deltas {deltas}: {out}");
    }
    let (ok, out) = verify(&leaves[4].0, true);
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let out = env.run(&["crl", "verify", "--ca", &issuing]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    server.stop();
}

/// A CRL past 32 KiB is sent with `sendfile` from an unnamed file copy
/// (snapshot::zerocopy): relying parties get exactly the signed bytes, in
/// parallel downloads, and `crl verify` finds them equal to the store.
#[test]
fn large_crls_are_sent_from_a_file_copy_byte_for_byte() {
    let env = Env::new();
    let server = env.server();
    let (_, issuing) = env.ec_hierarchy_with("Large", &["--crl-partitions", "0"]);
    let csr = env.openssl_csr("leaf", &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"], "/CN=leaf");
    let n = 800; // 49 bytes an entry: about 39 KB
    env.json(&[
        "cert",
        "issue-bulk",
        "--ca",
        &issuing,
        "--csr",
        csr.to_str().unwrap(),
        "--count",
        &n.to_string(),
    ]);
    let out = env.run(&[
        "cert",
        "revoke-all",
        "--ca",
        &issuing,
        "--reason",
        "keyCompromise",
        "--yes",
    ]);
    assert!(out.status.success());
    let issuing_pem = env.save(&["ca", "cert", &issuing], "issuing.pem");
    let url = format!("{}/crls/{issuing}_v1/current.crl", server.url);
    let zero_copy = || -> i64 {
        let m = String::from_utf8(curl("GET", &format!("{}/metrics", server.url), None, &[]).body).unwrap();
        m.lines()
            .find_map(|l| l.strip_prefix("cloudpki_zero_copy_bodies "))
            .map_or(0, |v| v.parse().unwrap())
    };
    let listed = |der: &[u8]| -> usize {
        let f = env.path("listed.crl");
        std::fs::write(&f, der).unwrap();
        openssl(&["crl", "-inform", "DER", "-in", f.to_str().unwrap(), "-noout", "-text"])
            .matches("Serial Number:")
            .count()
    };
    // The server follows the CLI's commits: wait for the CRL listing all.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let body = loop {
        let body = curl("GET", &url, None, &[]).body;
        if listed(&body) == n {
            break body;
        }
        assert!(std::time::Instant::now() < deadline, "the CRL never listed all {n}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(body.len() > 32 * 1024, "{} bytes: too small to be mirrored", body.len());
    assert!(zero_copy() >= 1, "the CRL is served from a file copy");
    // Parallel downloads, each whole and identical, and verifiable.
    let downloads: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6).map(|_| s.spawn(|| curl("GET", &url, None, &[]).body)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(downloads.iter().all(|d| *d == body), "every download is the same bytes");
    let f = env.path("large.crl");
    std::fs::write(&f, &body).unwrap();
    let (ok, out) = openssl_any(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        f.to_str().unwrap(),
        "-CAfile",
        issuing_pem.to_str().unwrap(),
        "-noout",
    ]);
    assert!(ok && out.contains("verify OK"), "{out}");
    let whole = curl("GET", &url, None, &[]);
    assert_eq!(whole.header("content-length"), Some(body.len().to_string().as_str()));
    let out = env.run(&["crl", "verify", "--ca", &issuing]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    server.stop();
}

/// An issuing CA with one unpartitioned CRL (`current.crl`) and `n` leaves,
/// served: what the store-comparison tests start from.
struct OneCrl {
    env: Env,
    server: TestServer,
    issuing: String,
    leaves: Vec<serde_json::Value>,
}

impl OneCrl {
    fn new(name: &str, n: usize) -> OneCrl {
        let env = Env::new();
        let server = env.server();
        let (_, issuing) = env.ec_hierarchy_with(name, &["--crl-partitions", "0"]);
        let csr = env.openssl_csr("leaf", &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"], "/CN=leaf");
        let csr = csr.to_str().unwrap().to_owned();
        let leaves = (0..n)
            .map(|_| env.json(&["cert", "issue", "--ca", &issuing, "--csr", &csr]))
            .collect();
        OneCrl {
            env,
            server,
            issuing,
            leaves,
        }
    }

    fn serial(&self, i: usize) -> String {
        self.leaves[i]["serialNumber"].as_str().unwrap().to_owned()
    }

    fn revoke(&self, i: usize) {
        self.env
            .json(&["cert", "revoke", &id(&self.leaves[i]), "--reason", "keyCompromise"]);
    }

    /// The served CRL, as `openssl crl -text` prints it.
    fn listed(&self) -> String {
        let url = format!("{}/crls/{}_v1/current.crl", self.server.url, self.issuing);
        let f = self.env.path("served.crl");
        std::fs::write(&f, curl("GET", &url, None, &[]).body).unwrap();
        openssl(&["crl", "-inform", "DER", "-in", f.to_str().unwrap(), "-noout", "-text"])
    }

    /// CRLs of this CA refused by the check before publication.
    fn refused(&self) -> i64 {
        let m = String::from_utf8(curl("GET", &format!("{}/metrics", self.server.url), None, &[]).body).unwrap();
        m.lines()
            .filter(|l| l.starts_with("cloudpki_crl_check_failures_total{") && l.contains(&self.issuing))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<i64>().unwrap())
            .sum()
    }

    fn wait(&self, what: &str, ok: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !ok() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.env.data_dir().join("cloudpki.db")).unwrap()
    }
}

/// Before a CRL is served it is compared with the store's digest of its
/// scope's revocations: one the store holds that the CRL would not list
/// (written here behind the engine's back, as a lost change-log entry would
/// leave it) stops the publication, so relying parties keep the last good
/// CRL, and the failure is counted for the alert.
#[test]
fn a_crl_that_differs_from_the_store_is_never_served() {
    let t = OneCrl::new("Differs", 3);
    // A proper revocation is listed: the comparison passes.
    t.revoke(0);
    t.wait("the first revocation is listed", || t.listed().contains(&t.serial(0)));
    assert_eq!(t.refused(), 0);

    // A revocation the store recorded but no change announced (a lost
    // change-log entry): the row, and the scope's digest as the engine keeps it.
    let db = t.db();
    db.execute(
        "UPDATE leaves SET revoked_at = 1700000000, revocation_reason = 1 WHERE id = ?1",
        [id(&t.leaves[1])],
    )
    .unwrap();
    let serial = t.serial(1);
    let serial_bytes: Vec<u8> = (0..serial.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&serial[i..i + 2], 16).unwrap())
        .collect();
    let counted = db
        .execute(
            "UPDATE crl_scope_digests SET entries = entries + 1, digest = digest + ?1 WHERE ca_id = ?2",
            rusqlite::params![cloudpki::x509::crl::SerialDigest::of_serial(&serial_bytes), t.issuing],
        )
        .unwrap();
    assert_eq!(counted, 1, "the scope's digest was kept since its first CRL");
    drop(db);
    // The next revocation's CRL would lack it: it is refused, not served.
    t.revoke(2);
    t.wait("the refusal is counted", || t.refused() >= 1);
    let served = t.listed();
    assert!(
        served.contains(&t.serial(0)) && !served.contains(&t.serial(2)) && !served.contains(&t.serial(1)),
        "the last good CRL is still the one served: {served}"
    );
    t.server.stop();
}

/// A kept digest that is itself off (a revocation made by a node of the
/// previous release during a rolling upgrade) does not stop publication:
/// the leaves decide, and the digest is computed again from them.
#[test]
fn a_drifted_scope_digest_is_recomputed_from_the_leaves() {
    let t = OneCrl::new("Drift", 2);
    t.revoke(0);
    t.wait("the first revocation is listed", || t.listed().contains(&t.serial(0)));
    let db = t.db();
    let entries = || -> i64 {
        db.query_row(
            "SELECT entries FROM crl_scope_digests WHERE ca_id = ?1",
            [&t.issuing],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(entries(), 1);
    db.execute(
        "UPDATE crl_scope_digests SET entries = entries + 1, digest = digest + 7 WHERE ca_id = ?1",
        [&t.issuing],
    )
    .unwrap();
    t.revoke(1);
    t.wait("the second revocation is listed", || t.listed().contains(&t.serial(1)));
    assert_eq!(entries(), 2, "computed again from the leaves");
    assert_eq!(t.refused(), 0, "no CRL was refused");
    t.server.stop();
}
