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
        let pem = env.save(
            &[
                "cert",
                "issue",
                "--ca",
                &issuing,
                "--csr",
                csr.to_str().unwrap(),
                "--pem",
            ],
            &format!("leaf{i}.pem"),
        );
        let serial = openssl(&["x509", "-in", pem.to_str().unwrap(), "-noout", "-serial"]);
        let serial = serial.trim().trim_start_matches("serial=").to_owned();
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
