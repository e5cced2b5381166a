//! Enrolment by SCEP with clients we did not write: strongSwan's
//! `pki --scepca/--scep` and certmonger (its daemon driving `scep-submit`).
//! Every issued certificate is checked with openssl and pkilint, and its
//! OCSP answer followed through a revocation.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{id, openssl, openssl_verify, pkilint, Env, TestServer};

/// A server's issuing CA and one of its profiles, as a device sees them.
struct Scep<'a> {
    env: &'a Env,
    server: &'a TestServer,
    issuing: String,
    profile: String,
    /// `pki --scepca` output: ca.der (root), ca-1.der (issuing), ra.der.
    certs: PathBuf,
}

/// A root and an issuing CA (clientAuth) with one profile, on `server`.
fn setup<'a>(env: &'a Env, server: &'a TestServer, key: &str, profile_args: &[&str]) -> Scep<'a> {
    let root = id(&env.create_ca(&["--type", "root", "--common-name", "Enrol Root", "--key-size", key]));
    let issuing = id(&env.create_ca(&[
        "--type",
        "issuing",
        "--issuer",
        &root,
        "--common-name",
        "Enrol Issuing",
        "--key-size",
        key,
        "--eku",
        "1.3.6.1.5.5.7.3.2",
    ]));
    let mut args = vec![
        "profile",
        "create",
        "--ca",
        &issuing,
        "--name",
        "laptops",
        "--cn-suffix",
        "devices.example",
    ];
    args.extend_from_slice(profile_args);
    let profile = env.json(&args)[0]["id"].as_str().unwrap().to_owned();
    scep_for(env, server, issuing, profile)
}

/// Fetches the CA's certificates with `pki --scepca`, as a device starts.
fn scep_for<'a>(env: &'a Env, server: &'a TestServer, issuing: String, profile: String) -> Scep<'a> {
    let certs = env.path(&format!("scepca-{issuing}"));
    std::fs::create_dir_all(&certs).unwrap();
    let s = Scep {
        env,
        server,
        issuing,
        profile,
        certs,
    };
    let out = s.pki(&[
        "--scepca",
        "--url",
        &s.url(),
        "--caout",
        s.certs.join("ca.der").to_str().unwrap(),
        "--raout",
        s.certs.join("ra.der").to_str().unwrap(),
    ]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pki --scepca: {log}");
    assert!(log.contains("RA cert is trusted"), "the RA chains to the root: {log}");
    assert!(s.certs.join("ra.der").exists() && s.certs.join("ca-1.der").exists());
    s
}

impl Scep<'_> {
    fn url(&self) -> String {
        format!("{}/scep/{}", self.server.url, self.issuing)
    }

    fn pki(&self, args: &[&str]) -> Output {
        Command::new("pki")
            .args(args)
            .output()
            .expect("strongSwan's pki (Debian strongswan-pki) must be installed")
    }

    fn challenge(&self, extra: &[&str]) -> String {
        let mut args = vec!["challenge", "create", "--profile", &self.profile];
        args.extend_from_slice(extra);
        self.env.json(&args)["challenge"].as_str().unwrap().to_owned()
    }

    fn key(&self, name: &str, bits: &str) -> PathBuf {
        let path = self.env.path(name);
        let out = self.pki(&["--gen", "--type", "rsa", "--size", bits]);
        assert!(out.status.success());
        std::fs::write(&path, out.stdout).unwrap();
        path
    }

    /// `pki --scep`; returns (certificate PEM path if issued, stderr).
    fn enrol(&self, key: &Path, dn: &str, extra: &[&str], name: &str) -> (Option<PathBuf>, String) {
        let c = |f: &str| self.certs.join(f).to_str().unwrap().to_owned();
        let url = self.url();
        let (ra, ca1, ca) = (c("ra.der"), c("ca-1.der"), c("ca.der"));
        let mut args = vec![
            "--scep",
            "--url",
            &url,
            "--in",
            key.to_str().unwrap(),
            "--dn",
            dn,
            "--cacert-enc",
            &ra,
            "--cacert-sig",
            &ra,
            "--cacert",
            &ca1,
            "--cacert",
            &ca,
            "--outform",
            "pem",
            "--maxpolltime",
            "5",
        ];
        args.extend_from_slice(extra);
        let out = self.pki(&args);
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            return (None, log);
        }
        let path = self.env.path(name);
        std::fs::write(&path, &out.stdout).unwrap();
        (Some(path), log)
    }

    fn pem(&self, file: &str) -> PathBuf {
        let path = self.env.path(&format!("{file}.pem"));
        let pem = openssl(&["x509", "-inform", "DER", "-in", self.certs.join(file).to_str().unwrap()]);
        std::fs::write(&path, pem).unwrap();
        path
    }

    /// openssl verify against the chain, pkilint, and the subject.
    fn check_issued(&self, cert: &Path, cn: &str) {
        openssl_verify(&self.pem("ca.der"), &self.pem("ca-1.der"), cert);
        pkilint("cert", &[cert.to_path_buf()]);
        let text = openssl(&[
            "x509",
            "-in",
            cert.to_str().unwrap(),
            "-noout",
            "-subject",
            "-ext",
            "extendedKeyUsage",
        ]);
        assert!(text.contains(&format!("CN = {cn}")), "{text}");
        assert!(
            text.contains("TLS Web Client Authentication"),
            "the profile's EKU: {text}"
        );
    }

    fn ocsp(&self, cert: &Path) -> String {
        openssl(&[
            "ocsp",
            "-issuer",
            self.pem("ca-1.der").to_str().unwrap(),
            "-cert",
            cert.to_str().unwrap(),
            "-url",
            &format!("{}/ocsp", self.server.url),
            "-CAfile",
            self.pem("ca.der").to_str().unwrap(),
            "-no_nonce",
        ])
    }

    fn revoke(&self, cert: &Path) {
        let serial = crate::support::serial_of(cert);
        self.env
            .json(&["cert", "revoke", "--serial", &serial, "--ca", &self.issuing]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !self.ocsp(cert).contains(": revoked") {
            assert!(std::time::Instant::now() < deadline, "not revoked at OCSP");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

fn fail_info(log: &str) -> &str {
    log.lines()
        .find_map(|l| l.trim().strip_prefix("failInfo:"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no SCEP failInfo in: {log}"))
}

#[test]
fn strongswan_enrols_renews_and_re_enrols_after_revocation_against_an_rsa_issuing_ca() {
    // Renewals accepted at once: the whole validity is the renewal window.
    let env = Env::new();
    let server = env.server();
    let s = setup(
        &env,
        &server,
        "rsa2048",
        &[
            "--validity-days",
            "30",
            "--renewal-days",
            "30",
            "--dns-suffix",
            "devices.example",
        ],
    );
    let key = s.key("laptop1.key", "2048");
    let san = ["--san", "laptop1.devices.example"];
    let (cert, log) = s.enrol(
        &key,
        "CN=laptop1.devices.example",
        &["--password", &s.challenge(&[]), san[0], san[1]],
        "l1.pem",
    );
    let cert = cert.unwrap_or_else(|| panic!("enrolment failed: {log}"));
    s.check_issued(&cert, "laptop1.devices.example");
    assert!(s.ocsp(&cert).contains(": good"));
    // The leaf list shows it, with the device name from the request.
    let leaves = s.env.json(&["cert", "list", "--ca", &s.issuing]);
    assert!(leaves.to_string().contains("laptop1.devices.example"), "{leaves}");

    // A renewal cannot change the subjectAltName (another device's name).
    let key2 = s.key("laptop1b.key", "2048");
    let (none, log) = s.enrol(
        &key2,
        "CN=laptop1.devices.example",
        &[
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--san",
            "laptop2.devices.example",
        ],
        "l1x.pem",
    );
    assert!(none.is_none());
    assert!(fail_info(&log).starts_with("badRequest"), "{log}");
    // RenewalReq: a new key, signed with the current certificate and key.
    let (renewed, log) = s.enrol(
        &key2,
        "CN=laptop1.devices.example",
        &[
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            san[0],
            san[1],
        ],
        "l1b.pem",
    );
    let renewed = renewed.unwrap_or_else(|| panic!("renewal failed: {log}"));
    s.check_issued(&renewed, "laptop1.devices.example");
    assert_ne!(crate::support::serial_of(&renewed), crate::support::serial_of(&cert));

    // Revoked: its renewal is refused (badCertId), a new challenge enrols again.
    s.revoke(&renewed);
    let key3 = s.key("laptop1c.key", "2048");
    let (none, log) = s.enrol(
        &key3,
        "CN=laptop1.devices.example",
        &[
            "--cert",
            renewed.to_str().unwrap(),
            "--key",
            key2.to_str().unwrap(),
            san[0],
            san[1],
        ],
        "l1c.pem",
    );
    assert!(none.is_none());
    assert!(fail_info(&log).starts_with("badCertId"), "{log}");
    let (again, log) = s.enrol(
        &key3,
        "CN=laptop1.devices.example",
        &["--password", &s.challenge(&[])],
        "l1d.pem",
    );
    let again = again.unwrap_or_else(|| panic!("re-enrolment failed: {log}"));
    s.check_issued(&again, "laptop1.devices.example");
    assert!(s.ocsp(&again).contains(": good"));
}

#[test]
fn strongswan_enrols_against_an_ec_issuing_ca_through_its_rsa_ra() {
    let env = Env::new();
    let server = env.server();
    let s = setup(
        &env,
        &server,
        "eCP256",
        &[
            "--validity-days",
            "30",
            "--renewal-days",
            "30",
            "--key-usage",
            "DigitalSignature",
        ],
    );
    let ra = openssl(&[
        "x509",
        "-inform",
        "DER",
        "-in",
        s.certs.join("ra.der").to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    assert!(ra.contains("rsaEncryption") && ra.contains("Key Encipherment"), "{ra}");
    assert!(ra.contains("Issuer: CN = Enrol Issuing"), "{ra}");
    let key = s.key("ec-device.key", "2048");
    let (cert, log) = s.enrol(
        &key,
        "CN=ec1.devices.example",
        &["--password", &s.challenge(&[])],
        "ec1.pem",
    );
    let cert = cert.unwrap_or_else(|| panic!("enrolment failed: {log}"));
    s.check_issued(&cert, "ec1.devices.example");
    let text = openssl(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-text"]);
    assert!(text.contains("ecdsa-with-SHA256"), "signed by the EC CA: {text}");
    // The profile's key usage, not the RSA default (which adds keyEncipherment).
    assert!(
        text.contains("Digital Signature") && !text.contains("Key Encipherment"),
        "{text}"
    );
    assert!(s.ocsp(&cert).contains(": good"));
    // Renewal through the RA too.
    let key2 = s.key("ec-device2.key", "2048");
    let (renewed, log) = s.enrol(
        &key2,
        "CN=ec1.devices.example",
        &["--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()],
        "ec1b.pem",
    );
    let renewed = renewed.unwrap_or_else(|| panic!("renewal failed: {log}"));
    s.check_issued(&renewed, "ec1.devices.example");
    assert_ne!(crate::support::serial_of(&renewed), crate::support::serial_of(&cert));
    s.revoke(&cert);
    assert!(s.ocsp(&renewed).contains(": good"));
}

#[test]
fn scep_refusals_are_certreps_with_the_right_fail_info() {
    let env = Env::new();
    let server = env.server();
    let s = setup(&env, &server, "rsa2048", &[]);
    let key = s.key("k.key", "2048");
    let refused = |dn: &str, extra: &[&str]| {
        let (cert, log) = s.enrol(&key, dn, extra, "refused.pem");
        assert!(cert.is_none(), "{dn} {extra:?} should be refused: {log}");
        fail_info(&log).to_owned()
    };

    // One-time challenge: used once, then refused.
    let once = s.challenge(&[]);
    let (ok, log) = s.enrol(&key, "CN=a.devices.example", &["--password", &once], "a.pem");
    assert!(ok.is_some(), "{log}");
    assert!(refused("CN=b.devices.example", &["--password", &once]).starts_with("badRequest"));
    // Unknown and expired challenges.
    assert!(refused("CN=b.devices.example", &["--password", "not-a-challenge"]).starts_with("badRequest"));
    let short = s.challenge(&["--valid-seconds", "1"]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(refused("CN=b.devices.example", &["--password", &short]).starts_with("badTime"));
    // A subject, a SAN and a key the profile does not allow.
    assert!(refused("CN=intruder.example", &["--password", &s.challenge(&[])]).starts_with("badRequest"));
    assert!(refused(
        "CN=c.devices.example",
        &["--password", &s.challenge(&[]), "--san", "www.elsewhere.example"]
    )
    .starts_with("badRequest"));
    let big = s.key("big.key", "3072");
    let (cert, log) = s.enrol(
        &big,
        "CN=d.devices.example",
        &["--password", &s.challenge(&[])],
        "d.pem",
    );
    assert!(cert.is_none() && fail_info(&log).starts_with("badRequest"), "{log}");
    // A subject with more than a CN, and a wildcard.
    assert!(refused(
        "CN=h.devices.example, O=system:masters",
        &["--password", &s.challenge(&[])]
    )
    .starts_with("badRequest"));
    assert!(refused("CN=*.devices.example", &["--password", &s.challenge(&[])]).starts_with("badRequest"));
    // A challenge bound to one subject.
    let bound = s.challenge(&["--subject", "e.devices.example"]);
    assert!(refused("CN=f.devices.example", &["--password", &bound]).starts_with("badRequest"));
    // An EKU the CA does not have never makes it into a profile.
    let err = s.env.fails(&[
        "profile",
        "create",
        "--ca",
        &s.issuing,
        "--name",
        "servers",
        "--eku",
        "1.3.6.1.5.5.7.3.1",
    ]);
    assert!(err.contains("the CA does not have EKU 1.3.6.1.5.5.7.3.1"), "{err}");
    let err = s.env.fails(&[
        "profile",
        "create",
        "--ca",
        &s.issuing,
        "--name",
        "any",
        "--eku",
        "2.5.29.37.0",
    ]);
    assert!(err.contains("Any Purpose"), "{err}");

    // Every refusal is audited with its reason.
    let db = s.env.data_dir().join("cloudpki.db");
    let conn = rusqlite::Connection::open(db).unwrap();
    let details: Vec<String> = conn
        .prepare("SELECT detail FROM audit_events WHERE activity LIKE 'Enrol %' AND result = 'failure'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for reason in [
        "used up",
        "unknown challenge",
        "expired",
        "is not under",
        "DNS name",
        "does not allow rsa3072",
    ] {
        assert!(
            details.iter().any(|d| d.contains(reason)),
            "no audited refusal for {reason:?}: {details:?}"
        );
    }

    // A paused CA refuses enrolment but keeps answering GetCACaps and GetCACert.
    s.env.json(&["ca", "pause", &s.issuing]);
    assert!(refused("CN=g.devices.example", &["--password", &s.challenge(&[])]).starts_with("badRequest"));
    let caps = crate::support::curl("GET", &format!("{}?operation=GetCACaps", s.url()), None, &[]);
    assert_eq!(caps.status, 200);
    assert!(String::from_utf8_lossy(&caps.body).contains("SCEPStandard"));
    let cacert = crate::support::curl("GET", &format!("{}?operation=GetCACert", s.url()), None, &[]);
    assert_eq!(cacert.status, 200);
    assert_eq!(cacert.header("content-type"), Some("application/x-x509-ca-ra-cert"));

    // Garbage is an HTTP 400 with a reason (no transaction to answer a
    // CertRep to); an unknown CA is a 404.
    let garbage = crate::support::curl(
        "POST",
        &format!("{}?operation=PKIOperation", s.url()),
        Some(b"\x30\x03\x02\x01\x00"),
        &[("Content-Type", "application/x-pki-message")],
    );
    assert_eq!(garbage.status, 400);
    assert!(String::from_utf8_lossy(&garbage.body).contains("not a SCEP pkiMessage"));
    let nobody = format!("{}/scep/no-such-ca?operation=GetCACert", s.server.url);
    assert_eq!(crate::support::curl("GET", &nobody, None, &[]).status, 404);
}

#[test]
fn scep_on_a_revoked_ca_refuses_enrolment_and_still_serves_its_certificates() {
    let env = Env::new();
    let server = env.server();
    let s = setup(&env, &server, "rsa2048", &[]);
    s.env.json(&["ca", "pause", &s.issuing]);
    let out = s.env.run(&["ca", "revoke", &s.issuing, "--yes"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = s.key("k.key", "2048");
    let (cert, log) = s.enrol(
        &key,
        "CN=a.devices.example",
        &["--password", &s.challenge(&[])],
        "a.pem",
    );
    assert!(cert.is_none());
    assert!(fail_info(&log).starts_with("badRequest"), "{log}");
    let cacert = crate::support::curl("GET", &format!("{}?operation=GetCACert", s.url()), None, &[]);
    assert_eq!(cacert.status, 200);
}

#[test]
fn certmonger_enrols_by_scep() {
    let env = Env::new();
    let server = env.server();
    let s = setup(&env, &server, "rsa2048", &[]);
    let challenge = s.challenge(&[]);
    let dir = s.env.path("certmonger");
    for d in ["requests", "cas", "tmp", "local"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    // The daemon on a private session bus, its state in the test's directory.
    let script = format!(
        "certmonger -s -n > {log} 2>&1 & \
         for i in $(seq 50); do getcert list-cas -s >/dev/null 2>&1 && break; sleep 0.1; done; \
         getcert add-scep-ca -s -c cloudpki -u '{url}' && \
         for i in $(seq 100); do getcert list-cas -s -c cloudpki | grep -q 'SCEP CA certificate thumbprint' && break; sleep 0.1; done; \
         getcert request -s -c cloudpki -k {key} -f {cert} -N CN=cm1.devices.example -L {challenge} -w; \
         getcert list -s",
        log = dir.join("daemon.log").display(),
        url = s.url(),
        key = key.display(),
        cert = cert.display(),
    );
    let out = Command::new("timeout")
        .args(["120", "dbus-run-session", "--", "bash", "-c", &script])
        .env("CERTMONGER_REQUESTS_DIR", dir.join("requests"))
        .env("CERTMONGER_CAS_DIR", dir.join("cas"))
        .env("CERTMONGER_TMPDIR", dir.join("tmp"))
        .env("CERTMONGER_LOCAL_CA_DIR", dir.join("local"))
        .output()
        .expect("dbus-run-session and certmonger (Debian certmonger) must be installed");
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        log.contains("status: MONITORING"),
        "certmonger did not get its certificate: {log}"
    );
    s.check_issued(&cert, "cm1.devices.example");
    assert!(s.ocsp(&cert).contains(": good"));
    s.revoke(&cert);
}

#[test]
fn profiles_and_challenges_over_the_api_with_permissions_and_scope_tags() {
    use crate::api::{api, token, RW};
    use serde_json::json;
    let a = api();
    let (root, issuing) = a.hierarchy(&["0"]);
    let (_, hidden) = a.hierarchy(&["7"]);
    let ca_path = format!("/cloudCertificationAuthority/{issuing}");
    let ca = a.ok("GET", &ca_path, None);
    let scep_url = format!("{}/scep/{issuing}", a.server.url);
    assert_eq!(ca["scepServerUrl"], json!(scep_url));
    let root_entity = a.ok("GET", &format!("/cloudCertificationAuthority/{root}"), None);
    assert_eq!(
        root_entity["scepServerUrl"],
        serde_json::Value::Null,
        "roots enrol nobody"
    );

    let profile = a.ok(
        "POST",
        &format!("{ca_path}/enrolmentProfiles"),
        Some(
            json!({"displayName": "api laptops", "commonNameSuffixes": ["devices.example"],
            "validityInDays": 90}),
        ),
    );
    assert_eq!(profile["scepServerUrl"], json!(scep_url));
    assert_eq!(
        profile["keyTypes"],
        json!(["rsa2048", "rsa3072"]),
        "bounded by the P-256 CA"
    );
    assert_eq!(
        profile["extendedKeyUsages"],
        json!(["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"])
    );
    let pid = profile["id"].as_str().unwrap().to_owned();
    let listed = a.ok("GET", &format!("{ca_path}/enrolmentProfiles"), None);
    assert_eq!(listed["value"][0]["id"], json!(pid));
    let challenge = a.ok(
        "POST",
        &format!("{ca_path}/enrolmentProfiles/{pid}/createChallenge"),
        Some(json!({"uses": 2, "validityInSeconds": 600})),
    );
    let secret = challenge["challenge"].as_str().unwrap().to_owned();
    assert_eq!(challenge["uses"], json!(2));
    // Refused on a root, and with Any Purpose.
    let r = a.call(
        &a.admin,
        "POST",
        &format!("/cloudCertificationAuthority/{root}/enrolmentProfiles"),
        Some(json!({"displayName": "x"})),
    );
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));

    // A device enrols with the API's challenge.
    let s = scep_for(&a.env, &a.server, issuing.clone(), pid.clone());
    let key = s.key("api-device.key", "2048");
    let (cert, log) = s.enrol(&key, "CN=api1.devices.example", &["--password", &secret], "api1.pem");
    let cert = cert.unwrap_or_else(|| panic!("{log}"));
    openssl_verify(&s.pem("ca.der"), &s.pem("ca-1.der"), &cert);

    // Permissions: "Read CAs" alone cannot manage profiles; the enrolment
    // permission on tag 0 can, but not on a CA tagged 7 (not even seen).
    for (name, perms) in [
        ("reader", vec!["Read CAs"]),
        ("enroller", vec!["Read CAs", "Manage enrolment profiles and challenges"]),
    ] {
        let mut args = vec!["role", "create", "--name", name];
        for p in &perms {
            args.extend_from_slice(&["--permission", p]);
        }
        assert!(a.env.run(&args).status.success());
        let assign = [
            "role",
            "assign",
            "--principal",
            name,
            "--role",
            name,
            "--scope-tag",
            "0",
        ];
        assert!(a.env.run(&assign).status.success());
    }
    let body = || Some(json!({"displayName": "by role"}));
    let reader = token(&a.env, "reader", &[RW]);
    assert_eq!(
        a.call(&reader, "POST", &format!("{ca_path}/enrolmentProfiles"), body())
            .status,
        403
    );
    assert_eq!(
        a.call(&reader, "GET", &format!("{ca_path}/enrolmentProfiles"), None)
            .status,
        200
    );
    let enroller = token(&a.env, "enroller", &[RW]);
    assert_eq!(
        a.call(&enroller, "POST", &format!("{ca_path}/enrolmentProfiles"), body())
            .status,
        201
    );
    let hidden_path = format!("/cloudCertificationAuthority/{hidden}/enrolmentProfiles");
    assert_eq!(a.call(&enroller, "POST", &hidden_path, body()).status, 404);

    // Deleting the profile ends its challenges.
    let del = a.call(&a.admin, "DELETE", &format!("{ca_path}/enrolmentProfiles/{pid}"), None);
    assert_eq!(del.status, 204);
    let (none, log) = s.enrol(&key, "CN=api2.devices.example", &["--password", &secret], "api2.pem");
    assert!(none.is_none());
    assert!(fail_info(&log).starts_with("badRequest"), "{log}");
    let gone = a.call(
        &a.admin,
        "POST",
        &format!("{ca_path}/enrolmentProfiles/{pid}/createChallenge"),
        None,
    );
    assert_eq!(gone.status, 404);
}

/// A TLS CA and a server certificate for 127.0.0.1 (openssl), in `dir`;
/// returns (CA PEM, certificate PEM, key PEM).
fn tls_files(dir: &Path, serial: &str) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n);
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    if !p("tls-ca.pem").exists() {
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &s(&p("tls-ca.key")),
            "-subj",
            "/CN=TLS Test CA",
            "-days",
            "2",
            "-out",
            &s(&p("tls-ca.pem")),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ]);
    }
    let (cert, key, csr) = (
        p(&format!("tls-{serial}.pem")),
        p(&format!("tls-{serial}.key")),
        p("tls.csr"),
    );
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &s(&key),
        "-subj",
        "/CN=127.0.0.1",
        "-out",
        &s(&csr),
    ]);
    let ext = p("tls.ext");
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &s(&csr),
        "-CA",
        &s(&p("tls-ca.pem")),
        "-CAkey",
        &s(&p("tls-ca.key")),
        "-set_serial",
        serial,
        "-days",
        "1",
        "-extfile",
        &s(&ext),
        "-out",
        &s(&cert),
    ]);
    (p("tls-ca.pem"), cert, key)
}

/// The serial of the certificate the TLS listener presents.
fn served_serial(addr: std::net::SocketAddr, ca: &Path) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-CAfile",
            ca.to_str().unwrap(),
            "-verify_return_error",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let pem_start = text.find("-----BEGIN CERTIFICATE-----").expect("a certificate");
    let pem_end = text.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
    let path = std::env::temp_dir().join(format!("served-{}.pem", addr.port()));
    std::fs::write(&path, &text[pem_start..pem_end]).unwrap();
    crate::support::serial_of(&path)
}

#[test]
fn strongswan_enrols_and_re_enrols_by_est_over_tls() {
    let env = Env::new();
    let dir = env.path("tls");
    std::fs::create_dir_all(&dir).unwrap();
    let (tls_ca, cert, key) = tls_files(&dir, "0x1001");
    let tls_port = crate::support::free_port();
    let (cert_file, key_file) = (dir.join("server.pem"), dir.join("server.key"));
    std::fs::copy(&cert, &cert_file).unwrap();
    std::fs::copy(&key, &key_file).unwrap();
    let server = env.server_adjusted(|cfg| {
        cfg.tls = Some(cloudpki::app::TlsListen {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], tls_port)),
            cert_file: cert_file.clone(),
            key_file: key_file.clone(),
        })
    });
    let tls_addr = server.handles.tls_addr.expect("a TLS listener");
    let root = id(&env.create_ca(&["--type", "root", "--common-name", "EST Root", "--key-size", "eCP256"]));
    let issuing = id(&env.create_ca(&[
        "--type",
        "issuing",
        "--issuer",
        &root,
        "--common-name",
        "EST Issuing",
        "--key-size",
        "eCP256",
        "--eku",
        "1.3.6.1.5.5.7.3.2",
    ]));
    let profile = env.json(&[
        "profile",
        "create",
        "--ca",
        &issuing,
        "--name",
        "est",
        "--key-type",
        "eCP256",
        "--cn-suffix",
        "devices.example",
        "--renewal-days",
        "365",
    ])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let challenge = env.json(&["challenge", "create", "--profile", &profile])["challenge"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = format!("https://{tls_addr}/{issuing}");
    let pki = |args: &[&str]| Command::new("pki").args(args).output().unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_owned();

    // cacerts: the CA and its root.
    let caout = env.path("est-ca.der");
    let out = pki(&[
        "--estca",
        "--url",
        &base,
        "--cacert",
        &s(&tls_ca),
        "--caout",
        &s(&caout),
    ]);
    assert!(
        out.status.success(),
        "pki --estca: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(env.path("est-ca-1.der").exists() || caout.exists());

    // simpleenroll with the challenge as the Basic password.
    let csr = |name: &str| {
        let key = env.path(&format!("{name}.key"));
        let der = env.path(&format!("{name}.csr.der"));
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &s(&key),
            "-subj",
            "/CN=est1.devices.example",
            "-outform",
            "DER",
            "-out",
            &s(&der),
        ]);
        (key, der)
    };
    let (key1, csr1) = csr("est1");
    let userpass = format!("est1:{challenge}");
    let out = pki(&[
        "--est",
        "--url",
        &base,
        "--in",
        &s(&csr1),
        "--cacert",
        &s(&tls_ca),
        "--userpass",
        &userpass,
        "--outform",
        "pem",
    ]);
    assert!(
        out.status.success(),
        "pki --est: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cert1 = env.path("est1.pem");
    std::fs::write(&cert1, &out.stdout).unwrap();
    let root_pem = env.save(&["ca", "cert", &root], "est-root.pem");
    let issuing_pem = env.save(&["ca", "cert", &issuing], "est-issuing.pem");
    openssl_verify(&root_pem, &issuing_pem, &cert1);
    pkilint("cert", std::slice::from_ref(&cert1));
    let ocsp = |cert: &Path| {
        openssl(&[
            "ocsp",
            "-issuer",
            &s(&issuing_pem),
            "-cert",
            &s(cert),
            "-url",
            &format!("{}/ocsp", server.url),
            "-CAfile",
            &s(&root_pem),
            "-no_nonce",
        ])
    };
    assert!(ocsp(&cert1).contains(": good"));

    // The one-time challenge is spent: a second simpleenroll is refused (401).
    let (_, csr2) = csr("est2");
    let out = pki(&[
        "--est",
        "--url",
        &base,
        "--in",
        &s(&csr2),
        "--cacert",
        &s(&tls_ca),
        "--userpass",
        &userpass,
        "--maxpolltime",
        "1",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // simplereenroll with the current certificate as the TLS client certificate.
    let (_, csr3) = csr("est3");
    let out = pki(&[
        "--est",
        "--url",
        &base,
        "--in",
        &s(&csr3),
        "--cacert",
        &s(&tls_ca),
        "--cert",
        &s(&cert1),
        "--key",
        &s(&key1),
        "--outform",
        "pem",
    ]);
    assert!(
        out.status.success(),
        "pki --est (re-enrol): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cert3 = env.path("est3.pem");
    std::fs::write(&cert3, &out.stdout).unwrap();
    openssl_verify(&root_pem, &issuing_pem, &cert3);
    assert_ne!(crate::support::serial_of(&cert3), crate::support::serial_of(&cert1));

    // A revoked certificate cannot re-enrol.
    env.json(&[
        "cert",
        "revoke",
        "--serial",
        &crate::support::serial_of(&cert3),
        "--ca",
        &issuing,
    ]);
    let (_, csr4) = csr("est4");
    let key3 = env.path("est3.key");
    let out = pki(&[
        "--est",
        "--url",
        &base,
        "--in",
        &s(&csr4),
        "--cacert",
        &s(&tls_ca),
        "--cert",
        &s(&cert3),
        "--key",
        &s(&key3),
        "--maxpolltime",
        "1",
    ]);
    assert!(!out.status.success(), "a revoked certificate re-enrolled");

    // EST is not served on plain HTTP.
    let plain = crate::support::curl(
        "GET",
        &format!("{}/.well-known/est/{issuing}/cacerts", server.url),
        None,
        &[],
    );
    assert_eq!(plain.status, 404);
    assert!(String::from_utf8_lossy(&plain.body).contains("TLS listener"));

    // A profile that requires approval: 202 and Retry-After, then, once
    // approved, the same request gets its certificate.
    let held = env.json(&[
        "profile",
        "create",
        "--ca",
        &issuing,
        "--name",
        "held",
        "--key-type",
        "eCP256",
        "--requires-approval",
    ])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let held_challenge = env.json(&["challenge", "create", "--profile", &held])["challenge"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, csr5) = csr("est5");
    let body = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(&csr5).unwrap())
    };
    let post = || {
        let out = Command::new("curl")
            .args([
                "-s",
                "-i",
                "--cacert",
                &s(&tls_ca),
                "-u",
                &format!("x:{held_challenge}"),
                "-H",
                "Content-Type: application/pkcs10",
                "--data-binary",
                &body,
                &format!("https://{tls_addr}/.well-known/est/{issuing}/simpleenroll"),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = post();
    assert!(first.starts_with("HTTP/1.1 202"), "{first}");
    assert!(first.to_ascii_lowercase().contains("retry-after: 30"), "{first}");
    let again = post();
    assert!(
        again.starts_with("HTTP/1.1 202"),
        "the same request is still waiting: {again}"
    );
    let id = request_in(&env, &issuing, "est1.devices.example", "pending");
    env.json(&["enrolment", "approve", "--ca", &issuing, &id]);
    let issued = post();
    assert!(issued.starts_with("HTTP/1.1 200"), "{issued}");
    assert!(
        issued.contains("application/pkcs7-mime; smime-type=certs-only"),
        "{issued}"
    );

    // An API token instead of a challenge: its principal must manage
    // enrolment on the CA, and it names the profile.
    let admin = std::fs::read_to_string(env.data_dir().join("admin-token")).unwrap();
    let nobody = crate::api::token(&env, "nobody", &[crate::api::RW]);
    let (_, csr6) = csr("est6");
    let body6 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(&csr6).unwrap())
    };
    let with_token = |token: &str, query: &str| {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--cacert",
                &s(&tls_ca),
                "-H",
                &format!("Authorization: Bearer {}", token.trim()),
                "-H",
                "Content-Type: application/pkcs10",
                "--data-binary",
                &body6,
                &format!("https://{tls_addr}/.well-known/est/{issuing}/simpleenroll{query}"),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(with_token(&admin, ""), "400", "no profile named");
    assert_eq!(with_token("not-a-token", &format!("?profile={profile}")), "401");
    assert_eq!(with_token(&nobody, &format!("?profile={profile}")), "403");
    assert_eq!(with_token(&admin, &format!("?profile={profile}")), "200");

    // The certificate files change: the listener presents the new one.
    assert_eq!(served_serial(tls_addr, &tls_ca), "1001");
    let (_, cert2, key2) = tls_files(&dir, "0x1002");
    std::fs::copy(&key2, &key_file).unwrap();
    std::fs::copy(&cert2, &cert_file).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while served_serial(tls_addr, &tls_ca) != "1002" {
        assert!(
            std::time::Instant::now() < deadline,
            "the new TLS certificate was not picked up"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // SIGHUP reloads even when the files' times say nothing changed.
    let sh = |cmd: &str| {
        assert!(
            Command::new("sh").args(["-c", cmd]).status().unwrap().success(),
            "{cmd}"
        )
    };
    let (c, k) = (s(&cert_file), s(&key_file));
    sh(&format!("cp -p {c} {c}.ref && cp -p {k} {k}.ref"));
    let (_, cert3, key3) = tls_files(&dir, "0x1003");
    std::fs::copy(&key3, &key_file).unwrap();
    std::fs::copy(&cert3, &cert_file).unwrap();
    sh(&format!("touch -r {c}.ref {c} && touch -r {k}.ref {k}"));
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(served_serial(tls_addr, &tls_ca), "1002", "the 2 s check sees no change");
    sh(&format!("kill -HUP {}", std::process::id()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while served_serial(tls_addr, &tls_ca) != "1003" {
        assert!(
            std::time::Instant::now() < deadline,
            "SIGHUP did not reload the certificate"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Waits for the CA's first request in `state`; returns its id.
fn request_in(env: &Env, ca: &str, cn: &str, state: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let list = env.json(&["enrolment", "list", "--ca", ca]);
        if let Some(r) = list
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["commonName"] == cn && r["status"] == state)
        {
            return r["id"].as_str().unwrap().to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {state} request for {cn}: {list}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn approval_holds_scep_devices_pending_until_an_administrator_decides() {
    let env = Env::new();
    let server = env.server();
    let s = setup(&env, &server, "rsa2048", &["--requires-approval"]);
    let spawn = |name: &str, cn: &str| {
        let key = s.key(&format!("{name}.key"), "2048");
        let c = |f: &str| s.certs.join(f).to_str().unwrap().to_owned();
        Command::new("pki")
            .args([
                "--scep",
                "--url",
                &s.url(),
                "--in",
                key.to_str().unwrap(),
                "--dn",
                &format!("CN={cn}"),
                "--password",
                &s.challenge(&[]),
                "--cacert-enc",
                &c("ra.der"),
                "--cacert-sig",
                &c("ra.der"),
                "--cacert",
                &c("ca-1.der"),
                "--cacert",
                &c("ca.der"),
                "--outform",
                "pem",
                "--interval",
                "1",
                "--maxpolltime",
                "60",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Approved: the device polls (CertPoll) until the certificate is there.
    let device = spawn("held", "held.devices.example");
    let id = request_in(&env, &s.issuing, "held.devices.example", "pending");
    std::thread::sleep(std::time::Duration::from_millis(1500)); // at least one poll answered PENDING
    let approved = env.json(&["enrolment", "approve", "--ca", &s.issuing, &id]);
    assert_eq!(approved[0]["status"], "issued");
    let out = device.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("PENDING") || log.contains("pending"),
        "the device was told to wait: {log}"
    );
    let cert = env.path("held.pem");
    std::fs::write(&cert, &out.stdout).unwrap();
    s.check_issued(&cert, "held.devices.example");
    assert_eq!(
        crate::support::serial_of(&cert),
        env.json(&["cert", "show", approved[0]["leafCertificateId"].as_str().unwrap()])["serialNumber"]
            .as_str()
            .unwrap()
    );

    // Rejected: the next poll is a FAILURE.
    let device = spawn("refused", "refused.devices.example");
    let id = request_in(&env, &s.issuing, "refused.devices.example", "pending");
    env.json(&[
        "enrolment",
        "reject",
        "--ca",
        &s.issuing,
        &id,
        "--reason",
        "unknown device",
    ]);
    let out = device.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(fail_info(&log).starts_with("badRequest"), "{log}");
    // Decided once only.
    let err = env.fails(&["enrolment", "approve", "--ca", &s.issuing, &id]);
    assert!(err.contains("already decided"), "{err}");
}

#[test]
fn enrolment_is_rate_limited_per_source_and_per_challenge() {
    use cloudpki::enrol::limit::{EnrolLimits, Rate};
    let env = Env::new();
    let server = env.server_adjusted(|cfg| {
        cfg.enrol_limits = EnrolLimits {
            per_source: Rate {
                per_second: 0.01,
                burst: 4.0,
            },
            per_challenge: Rate {
                per_second: 0.01,
                burst: 1.0,
            },
        }
    });
    let s = setup(&env, &server, "rsa2048", &[]);
    // The same multi-use challenge twice: the second is refused before it is decided.
    let challenge = s.challenge(&["--uses", "5"]);
    let key = s.key("k.key", "2048");
    let (first, log) = s.enrol(&key, "CN=r1.devices.example", &["--password", &challenge], "r1.pem");
    assert!(first.is_some(), "{log}");
    let (second, log) = s.enrol(&key, "CN=r2.devices.example", &["--password", &challenge], "r2.pem");
    assert!(second.is_none());
    // (strongSwan does not print failInfoText, which names the limit.)
    assert!(fail_info(&log).starts_with("badRequest"), "{log}");
    // Another challenge of the same profile is not held back.
    let (third, log) = s.enrol(
        &key,
        "CN=r3.devices.example",
        &["--password", &s.challenge(&[])],
        "r3.pem",
    );
    assert!(third.is_some(), "{log}");
    // The source has spent its burst of 4 PKIOperations: HTTP 429 before any work.
    let url = format!("{}?operation=PKIOperation", s.url());
    let garbage = crate::support::curl("POST", &url, Some(b"\x30\x00"), &[]);
    assert_eq!(garbage.status, 400, "the 4th is still let through");
    let limited = crate::support::curl("POST", &url, Some(b"\x30\x00"), &[]);
    assert_eq!(limited.status, 429);
    assert!(limited.header("retry-after").is_some());
    // GetCACert is not limited.
    let cacert = crate::support::curl("GET", &format!("{}?operation=GetCACert", s.url()), None, &[]);
    assert_eq!(cacert.status, 200);
}

#[test]
fn a_lost_scep_reply_is_answered_again_with_the_same_certificate() {
    use cloudpki::x509::scep::{self, device, ClientRequest, ContentCipher, MessageType, RaDecryptor};
    use cloudpki::x509::{HashAlgorithm, KeyAlgorithm, SoftwareKey};
    use der::Decode;
    let env = Env::new();
    let server = env.server();
    let s = setup(&env, &server, "rsa2048", &["--key-type", "rsa2048"]);
    let ra = x509_cert::Certificate::from_der(&std::fs::read(s.certs.join("ra.der")).unwrap()).unwrap();
    let (key, pkcs8) = SoftwareKey::generate(KeyAlgorithm::Rsa2048, HashAlgorithm::Sha256).unwrap();
    let self_signed = device::self_signed(&key, "lost.devices.example").unwrap();
    let csr = device::csr(&key, "lost.devices.example", Some(&s.challenge(&[]))).unwrap();
    // The device's own key opens the reply, as it opens any CertRep.
    let mine = RaDecryptor::from_pkcs8(&pkcs8).unwrap();
    // One PKIOperation: sent, answered SUCCESS, and the reply's envelope
    // opened with the device key (its content and the cipher it used).
    let exchange = |message_type: MessageType, inner: &[u8], transaction_id: &str, nonce: u8, cipher| {
        let message = scep::client_request(&ClientRequest {
            message_type,
            inner,
            signer: &key,
            signer_cert: &self_signed,
            ra_cert: &ra,
            transaction_id,
            sender_nonce: [nonce; 16],
            cipher,
        })
        .unwrap();
        let url = format!("{}?operation=PKIOperation", s.url());
        let r = crate::support::curl(
            "POST",
            &url,
            Some(&message),
            &[("Content-Type", "application/x-pki-message")],
        );
        assert_eq!(r.status, 200);
        let rep = scep::parse(&r.body).unwrap();
        assert_eq!(scep::reply_status(&r.body).unwrap().0, "0", "SUCCESS");
        let (inner, cipher, _) = scep::open(rep.verified.as_ref().unwrap(), &[(&self_signed, &mine)]).unwrap();
        (inner, cipher)
    };
    let ask = |nonce: u8| {
        let (inner, cipher) = exchange(MessageType::PkcsReq, &csr, "LOST-REPLY-1", nonce, ContentCipher::Aes256);
        assert_eq!(cipher, ContentCipher::Aes256, "answered with the request's cipher");
        let ci = cms::content_info::ContentInfo::from_der(&inner).unwrap();
        let sd: cms::signed_data::SignedData = ci.content.decode_as().unwrap();
        let first = sd.certificates.unwrap().0.into_vec().remove(0);
        match first {
            cms::cert::CertificateChoices::Certificate(c) => c.tbs_certificate.serial_number,
            other => panic!("{other:?}"),
        }
    };
    let first = ask(1);
    let again = ask(2);
    assert_eq!(first, again, "the same certificate, not a second one");
    let leaves = env.json(&["cert", "list", "--ca", &s.issuing]);
    let n = leaves["value"].as_array().map_or(0, |a| {
        a.iter().filter(|l| l["deviceName"] == "lost.devices.example").count()
    });
    assert_eq!(n, 1, "{leaves}");

    // GetCert and GetCRL for that certificate (IssuerAndSerialNumber inside).
    use der::Encode;
    let issuing = x509_cert::Certificate::from_der(&std::fs::read(s.certs.join("ca-1.der")).unwrap()).unwrap();
    let ias = cms::cert::IssuerAndSerialNumber {
        issuer: issuing.tbs_certificate.subject.clone(),
        serial_number: first.clone(),
    }
    .to_der()
    .unwrap();
    let query = |message_type: MessageType, nonce: u8| {
        let transaction_id = format!("QUERY-{nonce}");
        let (inner, _) = exchange(message_type, &ias, &transaction_id, nonce, ContentCipher::Aes128);
        let ci = cms::content_info::ContentInfo::from_der(&inner).unwrap();
        ci.content.decode_as::<cms::signed_data::SignedData>().unwrap()
    };
    let got = query(MessageType::GetCert, 10);
    match &got.certificates.unwrap().0.as_slice()[0] {
        cms::cert::CertificateChoices::Certificate(c) => assert_eq!(c.tbs_certificate.serial_number, first),
        other => panic!("{other:?}"),
    }
    let got = query(MessageType::GetCrl, 11);
    let crls = got.crls.expect("a CRL");
    match &crls.0.as_slice()[0] {
        cms::revocation::RevocationInfoChoice::Crl(crl) => {
            assert_eq!(crl.tbs_cert_list.issuer, issuing.tbs_certificate.subject);
        }
        other => panic!("{other:?}"),
    }
}

/// A client that opens the TLS listener and never finishes its handshake
/// is cut off within the header timeout (the connection watchdog bounds the
/// handshake: nothing counts as progress before it ends).
#[test]
fn a_stalled_tls_handshake_is_cut_off() {
    use std::io::{Read, Write};
    let env = Env::new();
    let dir = env.path("tls");
    std::fs::create_dir_all(&dir).unwrap();
    let (_tls_ca, cert, key) = tls_files(&dir, "0x1002");
    let tls_port = crate::support::free_port();
    let server = env.server_adjusted(|cfg| {
        cfg.limits.header_timeout = std::time::Duration::from_millis(500);
        cfg.tls = Some(cloudpki::app::TlsListen {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], tls_port)),
            cert_file: cert.clone(),
            key_file: key.clone(),
        })
    });
    let tls_addr = server.handles.tls_addr.expect("a TLS listener");
    let mut conn = std::net::TcpStream::connect(tls_addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    // The first bytes of a ClientHello record, and nothing more.
    conn.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = conn.read_to_end(&mut buf);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "a stalled handshake held the connection for {:?}",
        started.elapsed()
    );
    assert!(buf.is_empty(), "the server answered a handshake it never got: {buf:?}");
}
