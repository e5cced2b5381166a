//! The Graph-shaped management API over HTTP (curl), with tokens from
//! `cloudpki token create` and roles from `cloudpki role …`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{cdp_url, curl, openssl, Env, Http, TestServer};

pub const BASE: &str = "/beta/deviceManagement";
pub const RW: &str = "DeviceManagementCloudCA.ReadWrite.All";
pub const RO: &str = "DeviceManagementCloudCA.Read.All";

pub struct Api {
    pub env: Env,
    pub server: TestServer,
    pub admin: String,
}

pub fn api() -> Api {
    let env = Env::new();
    let server = env.server();
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
    Api { env, server, admin }
}

pub fn token(env: &Env, principal: &str, scopes: &[&str]) -> String {
    let mut args = vec!["token", "create", "--principal", principal];
    for s in scopes {
        args.extend_from_slice(&["--scope", s]);
    }
    let out = env.run(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

impl Api {
    pub fn call(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> Http {
        let auth = format!("Bearer {token}");
        let mut headers = vec![
            ("Authorization", auth.as_str()),
            ("client-request-id", "test-client-id"),
        ];
        let bytes = body.map(|b| b.to_string().into_bytes());
        if bytes.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        curl(
            method,
            &format!("{}{BASE}{path}", self.server.url),
            bytes.as_deref(),
            &headers,
        )
    }

    pub fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let r = self.call(&self.admin, method, path, body);
        assert!(
            (200..300).contains(&r.status),
            "{method} {path}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        if r.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&r.body).unwrap()
        }
    }

    pub fn csr(&self, name: &str) -> String {
        let csr = self.env.openssl_csr(
            name,
            &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            &format!("/CN={name}"),
        );
        std::fs::read_to_string(csr).unwrap()
    }

    pub fn hierarchy(&self, tags: &[&str]) -> (String, String) {
        let n = uuid_like();
        let root = self.ok(
            "POST",
            "/cloudCertificationAuthority",
            Some(
                json!({"displayName": "Root", "cloudCertificationAuthorityType": "rootCertificationAuthority",
                "commonName": format!("API Root {n}"), "certificateKeySize": "eCP256", "validityPeriodInYears": 10,
                "roleScopeTagIds": tags}),
            ),
        );
        let issuing = self.ok(
            "POST",
            "/cloudCertificationAuthority",
            Some(
                json!({"displayName": "Issuing", "cloudCertificationAuthorityType": "issuingCertificationAuthority",
                "certificationAuthorityIssuerId": root["id"], "commonName": format!("API Issuing {n}"),
                "certificateKeySize": "eCP256", "validityPeriodInYears": 4, "roleScopeTagIds": tags}),
            ),
        );
        (
            root["id"].as_str().unwrap().to_owned(),
            issuing["id"].as_str().unwrap().to_owned(),
        )
    }
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

pub fn error_code(r: &Http) -> String {
    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    assert!(
        v["error"]["innerError"]["request-id"].is_string(),
        "Graph error body: {}",
        String::from_utf8_lossy(&r.body)
    );
    v["error"]["code"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn the_main_flows_over_the_api() {
    let a = api();
    let (root, issuing) = a.hierarchy(&[]);
    let ca = a.ok("GET", &format!("/cloudCertificationAuthority/{issuing}"), None);
    assert_eq!(ca["@odata.type"], "#microsoft.graph.cloudCertificationAuthority");
    assert_eq!(ca["certificationAuthorityIssuerId"], root.as_str());
    assert_eq!(ca["roleScopeTagIds"], json!(["0"]));
    let list = a.ok("GET", "/cloudCertificationAuthority", None);
    assert!(list["@odata.context"]
        .as_str()
        .unwrap()
        .contains("$metadata#deviceManagement/cloudCertificationAuthority"));
    assert_eq!(list["value"].as_array().unwrap().len(), 2);

    // Issue (our extension) and find by serial in any case, with or without 00.
    let issued = a.ok(
        "POST",
        &format!("/cloudCertificationAuthority/{issuing}/issueLeafCertificate"),
        Some(json!({"certificateSigningRequest": a.csr("api-device"), "deviceName": "api-device", "devicePlatform": "iOS"})),
    );
    let leaf = &issued["value"];
    assert_eq!(leaf["deviceName"], "api-device");
    assert_eq!(leaf["devicePlatform"], "iOS");
    assert!(leaf["certificate"].as_str().unwrap().len() > 100);
    let serial = leaf["serialNumber"].as_str().unwrap();
    let found = a.ok(
        "POST",
        &format!(
            "/cloudCertificationAuthority/{issuing}/searchCloudCertificationAuthorityLeafCertificateBySerialNumber"
        ),
        Some(json!({"certificateSerialNumber": format!("00{}", serial.to_lowercase())})),
    );
    assert_eq!(found["value"]["id"], leaf["id"]);
    let count = a.call(
        &a.admin,
        "GET",
        &format!("/cloudCertificationAuthority/{issuing}/cloudCertificationAuthorityLeafCertificate/$count"),
        None,
    );
    assert_eq!(String::from_utf8(count.body).unwrap(), "1");
    let leaf_id = leaf["id"].as_str().unwrap();
    let got = a.ok(
        "GET",
        &format!("/cloudCertificationAuthorityLeafCertificate/{leaf_id}"),
        None,
    );
    assert_eq!(got["serialNumber"], serial);
    let patched = a.ok(
        "PATCH",
        &format!("/cloudCertificationAuthorityLeafCertificate/{leaf_id}"),
        Some(json!({"userPrincipalName": "bob@contoso.com", "thumbprint": "ignored"})),
    );
    assert_eq!(
        patched["userPrincipalName"], leaf["userPrincipalName"],
        "read-only: recorded at issuance"
    );
    assert_eq!(patched["thumbprint"], leaf["thumbprint"]);

    // PATCH with eTag: a stale one is refused.
    let etag = ca["eTag"].as_str().unwrap().to_owned();
    let r = a.call(
        &a.admin,
        "PATCH",
        &format!("/cloudCertificationAuthority/{issuing}"),
        Some(json!({"displayName": "Renamed"})),
    );
    assert_eq!(r.status, 200);
    let stale = curl(
        "PATCH",
        &format!("{}{BASE}/cloudCertificationAuthority/{issuing}", a.server.url),
        Some(json!({"displayName": "Again"}).to_string().as_bytes()),
        &[
            ("Authorization", &format!("Bearer {}", a.admin)),
            ("Content-Type", "application/json"),
            ("If-Match", &etag),
        ],
    );
    assert_eq!((stale.status, error_code(&stale).as_str()), (412, "PreconditionFailed"));

    // Lifecycle: revoke needs pause and no active leaf; each refusal is a 409 naming the rule.
    let revoke = format!("/cloudCertificationAuthority/{issuing}/revokeCloudCertificationAuthorityCertificate");
    let r = a.call(
        &a.admin,
        "POST",
        &revoke,
        Some(json!({"certificationAuthorityVersion": 1})),
    );
    assert_eq!((r.status, error_code(&r).as_str()), (409, "Conflict"));
    assert!(String::from_utf8_lossy(&r.body).contains("pause the CA before revoking it"));
    let paused = a.ok(
        "POST",
        &format!("/cloudCertificationAuthority/{issuing}/changeCloudCertificationAuthorityStatus"),
        Some(json!({"certificationAuthorityStatus": "paused", "certificationAuthorityVersion": 1})),
    );
    assert_eq!(paused["value"]["certificationAuthorityStatus"], "paused");
    let r = a.call(
        &a.admin,
        "POST",
        &revoke,
        Some(json!({"certificationAuthorityVersion": 1})),
    );
    assert!(String::from_utf8_lossy(&r.body).contains("active leaf certificate(s) remain"));
    let by_serial = a.ok(
        "POST",
        &format!("/cloudCertificationAuthority/{issuing}/revokeLeafCertificateBySerialNumber"),
        Some(json!({"certificateSerialNumber": serial})),
    );
    assert_eq!(by_serial["value"]["certificateStatus"], "revoked");
    let again = a.call(
        &a.admin,
        "POST",
        &format!("/cloudCertificationAuthority/{issuing}/revokeLeafCertificate"),
        Some(json!({"leafCertificateId": leaf_id})),
    );
    assert_eq!(again.status, 409);
    let n = a.ok(
        "POST",
        &format!("/cloudCertificationAuthority/{issuing}/revokeAllLeafCertificates"),
        Some(json!({})),
    );
    assert_eq!(n["value"], 0);
    let revoked = a.ok("POST", &revoke, Some(json!({"certificationAuthorityVersion": 1})));
    assert_eq!(revoked["value"]["certificationAuthorityStatus"], "revoked");
    let r = a.call(
        &a.admin,
        "DELETE",
        &format!("/cloudCertificationAuthority/{root}"),
        None,
    );
    assert_eq!(r.status, 409);
    assert_eq!(
        a.call(
            &a.admin,
            "DELETE",
            &format!("/cloudCertificationAuthority/{issuing}"),
            None
        )
        .status,
        204
    );
    assert_eq!(
        a.call(
            &a.admin,
            "DELETE",
            &format!("/cloudCertificationAuthority/{root}"),
            None
        )
        .status,
        204
    );
    let gone = a.call(&a.admin, "GET", &format!("/cloudCertificationAuthority/{root}"), None);
    assert_eq!((gone.status, error_code(&gone).as_str()), (404, "ResourceNotFound"));
    assert_eq!(gone.header("client-request-id"), Some("test-client-id"));
    assert!(gone.header("request-id").is_some());

    // Every change is in the audit log, with its actor; refusals too.
    let events = |activity: &str| -> Vec<Value> {
        let q = format!("activityType eq '{activity}'")
            .replace(' ', "%20")
            .replace('\'', "%27");
        a.ok("GET", &format!("/auditEvents?$filter={q}"), None)["value"]
            .as_array()
            .unwrap()
            .clone()
    };
    let revoke_ca = events("RevokeCloudCertificationAuthorityCertificateAsync CloudCertificationAuthority");
    let results: Vec<&str> = revoke_ca
        .iter()
        .map(|e| e["activityResult"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["failure", "failure", "success"], "{revoke_ca:?}");
    assert_eq!(revoke_ca[2]["actor"]["userPrincipalName"], "alice");
    assert_eq!(revoke_ca[2]["resources"][0]["resourceId"], issuing.as_str());
    assert!(revoke_ca[0]["activityResultDetail"]
        .as_str()
        .unwrap()
        .contains("pause the CA"));
    assert_eq!(revoke_ca[0]["activity"], "Revoke certification authority certificate");
    for (activity, n) in [
        ("Create CloudCertificationAuthority", 2),
        ("Delete CloudCertificationAuthority", 3),
        ("Patch CloudCertificationAuthority", 2),
        (
            "ChangeCloudCertificationAuthorityStatusAsync CloudCertificationAuthority",
            1,
        ),
        ("RevokeLeafCertAsync CloudCertificationAuthorityLeafCertificate", 2),
        ("IssueLeafCertificate CloudCertificationAuthorityLeafCertificate", 1),
    ] {
        assert_eq!(events(activity).len(), n, "{activity}");
    }
    let all = a.ok("GET", "/auditEvents?$top=5", None);
    assert_eq!(all["value"].as_array().unwrap().len(), 5);
    assert!(all["@odata.nextLink"].as_str().unwrap().contains("$skiptoken="));
    // Append-only, even for someone with the database file.
    let db = rusqlite::Connection::open(a.env.data_dir().join("cloudpki.db")).unwrap();
    assert!(db.execute("UPDATE audit_events SET actor = 'mallory'", []).is_err());
    assert!(db.execute("DELETE FROM audit_events", []).is_err());
}

#[test]
fn errors_are_graph_errors_with_the_right_status() {
    let a = api();
    let url = format!("{}{BASE}/cloudCertificationAuthority", a.server.url);
    let r = curl("GET", &url, None, &[]);
    assert_eq!((r.status, error_code(&r).as_str()), (401, "InvalidAuthenticationToken"));
    let mut tampered = a.admin.clone();
    tampered.pop();
    tampered.push('A');
    let r = curl("GET", &url, None, &[("Authorization", &format!("Bearer {tampered}x"))]);
    assert_eq!(r.status, 401);
    // A token without any Cloud PKI scope, and a read-only token writing.
    let none = token(&a.env, "alice", &["User.Read"]);
    assert_eq!(a.call(&none, "GET", "/cloudCertificationAuthority", None).status, 403);
    let ro = token(&a.env, "alice", &[RO]);
    assert_eq!(a.call(&ro, "GET", "/cloudCertificationAuthority", None).status, 200);
    let r = a.call(&ro, "POST", "/cloudCertificationAuthority", Some(json!({})));
    assert_eq!((r.status, error_code(&r).as_str()), (403, "Forbidden"));
    // Bad bodies and methods.
    let r = curl(
        "POST",
        &url,
        Some(b"{}"),
        &[
            ("Authorization", &format!("Bearer {}", a.admin)),
            ("Content-Type", "text/plain"),
        ],
    );
    assert_eq!(r.status, 415);
    let r = curl(
        "POST",
        &url,
        Some(b"{not json"),
        &[
            ("Authorization", &format!("Bearer {}", a.admin)),
            ("Content-Type", "application/json"),
        ],
    );
    assert_eq!((r.status, error_code(&r).as_str()), (400, "BadRequest"));
    let r = a.call(&a.admin, "POST", "/cloudCertificationAuthority", Some(json!({"cloudCertificationAuthorityType": "rootCertificationAuthority", "commonName": "X", "countryName": "France"})));
    assert_eq!(r.status, 400);
    assert_eq!(
        a.call(&a.admin, "PUT", "/cloudCertificationAuthority", Some(json!({})))
            .status,
        405
    );
    assert_eq!(a.call(&a.admin, "GET", "/nothingHere", None).status, 404);
    let r = a.call(&a.admin, "GET", "/cloudCertificationAuthority?$expand=versions", None);
    assert_eq!(r.status, 400, "unsupported query options are refused, not ignored");
    let big = vec![b'x'; 2 * 1024 * 1024];
    let r = curl(
        "POST",
        &url,
        Some(&big),
        &[
            ("Authorization", &format!("Bearer {}", a.admin)),
            ("Content-Type", "application/json"),
        ],
    );
    assert_eq!(r.status, 413);
    // Duplicate commonName: 409.
    let body = json!({"cloudCertificationAuthorityType": "rootCertificationAuthority", "commonName": "Dup", "certificateKeySize": "eCP256"});
    assert_eq!(
        a.call(&a.admin, "POST", "/cloudCertificationAuthority", Some(body.clone()))
            .status,
        201
    );
    assert_eq!(
        a.call(&a.admin, "POST", "/cloudCertificationAuthority", Some(body))
            .status,
        409
    );
}

#[test]
fn permission_matrix_and_scope_tags() {
    let a = api();
    let (_, issuing) = a.hierarchy(&["0"]);
    let (_, other) = a.hierarchy(&["7"]);
    let leaf = a.ok(
        "POST",
        &format!("/cloudCertificationAuthority/{issuing}/issueLeafCertificate"),
        Some(json!({"certificateSigningRequest": a.csr("matrix")})),
    )["value"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let roles: &[(&str, &[&str])] = &[
        ("reader", &["Read CAs"]),
        ("creator", &["Create certificate authorities"]),
        ("pauser", &["Read CAs", "Disable and reenable CAs"]),
        ("revoker", &["Read CAs", "Revoke issued leaf certificates"]),
    ];
    for (name, perms) in roles {
        let mut args = vec!["role", "create", "--name", name];
        for p in *perms {
            args.extend_from_slice(&["--permission", p]);
        }
        assert!(a.env.run(&args).status.success());
        assert!(a
            .env
            .run(&[
                "role",
                "assign",
                "--principal",
                name,
                "--role",
                name,
                "--scope-tag",
                "0"
            ])
            .status
            .success());
    }
    let op = |who: &str, method: &str, path: String, body: Option<Value>| {
        let t = token(&a.env, who, &[RW]);
        a.call(&t, method, &path, body).status
    };
    let ca = format!("/cloudCertificationAuthority/{issuing}");
    // (role, read, create, pause, revoke leaf)
    let expected = [
        ("reader", true, false, false, false),
        ("creator", false, true, false, false),
        ("pauser", true, false, true, false),
        ("revoker", true, false, false, true),
    ];
    for (who, read, create, pause, revoke) in expected {
        let got_read = op(who, "GET", ca.clone(), None) == 200;
        let status = op(
            who,
            "POST",
            "/cloudCertificationAuthority".into(),
            Some(
                json!({"cloudCertificationAuthorityType": "rootCertificationAuthority", "commonName": format!("{who} root"), "certificateKeySize": "eCP256"}),
            ),
        );
        let got_create = status == 201;
        let got_pause = op(
            who,
            "POST",
            format!("{ca}/changeCloudCertificationAuthorityStatus"),
            Some(json!({"certificationAuthorityStatus": "paused"})),
        ) == 200;
        if got_pause {
            op(
                who,
                "POST",
                format!("{ca}/changeCloudCertificationAuthorityStatus"),
                Some(json!({"certificationAuthorityStatus": "active"})),
            );
        }
        let got_revoke = op(
            who,
            "POST",
            format!("{ca}/revokeLeafCertificate"),
            Some(json!({"leafCertificateId": leaf})),
        ) != 403;
        assert_eq!(
            (got_read, got_create, got_pause, got_revoke),
            (read, create, pause, revoke),
            "{who}"
        );
    }
    // Scope tags: a reader on tag 0 neither sees nor reaches the CA tagged 7.
    let reader = token(&a.env, "reader", &[RW]);
    let list: Value =
        serde_json::from_slice(&a.call(&reader, "GET", "/cloudCertificationAuthority", None).body).unwrap();
    let ids: Vec<&str> = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&issuing.as_str()) && !ids.contains(&other.as_str()),
        "{ids:?}"
    );
    // Hidden by scope: 404, exactly as for a CA that does not exist.
    assert_eq!(
        a.call(&reader, "GET", &format!("/cloudCertificationAuthority/{other}"), None)
            .status,
        404
    );
    // A principal with no role assignment: 403 on everything.
    let nobody = token(&a.env, "nobody", &[RW]);
    assert_eq!(a.call(&nobody, "GET", "/cloudCertificationAuthority", None).status, 403);
}

/// Follows `@odata.nextLink` from `first` to the end; returns ids in order and the page count.
fn page_all(a: &Api, first: String) -> (Vec<String>, usize) {
    let mut next = Some(first);
    let (mut ids, mut pages) = (Vec::new(), 0);
    while let Some(url) = next {
        let r = curl("GET", &url, None, &[("Authorization", &format!("Bearer {}", a.admin))]);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        ids.extend(
            v["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["id"].as_str().unwrap().to_owned()),
        );
        next = v["@odata.nextLink"].as_str().map(str::to_owned);
        pages += 1;
    }
    (ids, pages)
}

#[test]
fn paging_through_100k_leaves_with_concurrent_inserts() {
    const BULK: usize = 100_000;
    const DURING: usize = 10;
    const EACH: usize = 100;
    let a = api();
    let (_, issuing) = a.hierarchy(&[]);
    let csr = a
        .env
        .openssl_csr("bulk", &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"], "/CN=bulk");
    let csr = csr.to_str().unwrap().to_owned();
    let bulk = BULK.to_string();
    a.env
        .json(&["cert", "issue-bulk", "--ca", &issuing, "--csr", &csr, "--count", &bulk]);
    let first = format!(
        "{}{BASE}/cloudCertificationAuthority/{issuing}/cloudCertificationAuthorityLeafCertificate?$top=999",
        a.server.url
    );
    // Another writer inserts while the first pass pages.
    let inserter = {
        let (dir, issuing, csr) = (a.env.data_dir(), issuing.clone(), csr.clone());
        std::thread::spawn(move || {
            for _ in 0..DURING {
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_cloudpki"))
                    .arg("--data-dir")
                    .arg(&dir)
                    .args(["cert", "issue-bulk", "--ca", &issuing, "--csr", &csr, "--count"])
                    .arg(EACH.to_string())
                    .env_remove("CLOUDPKI_KEK")
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let (during, pages) = page_all(&a, first.clone());
    inserter.join().unwrap();
    let (after, _) = page_all(&a, first);

    let unique: std::collections::HashSet<&String> = during.iter().collect();
    assert_eq!(unique.len(), during.len(), "no duplicate across pages");
    assert!(during.len() >= BULK, "every leaf present when paging began is seen");
    assert!(pages >= BULK / 999, "{pages} pages");
    // No gap: the pass under inserts is a prefix of the quiet pass, in the same order.
    assert_eq!(after.len(), BULK + DURING * EACH);
    assert_eq!(&after[..during.len()], &during[..]);
    let count = a.call(
        &a.admin,
        "GET",
        &format!("/cloudCertificationAuthority/{issuing}/cloudCertificationAuthorityLeafCertificate/$count"),
        None,
    );
    assert_eq!(String::from_utf8_lossy(&count.body), after.len().to_string());
}

#[test]
fn a_revocation_through_the_api_reaches_ocsp_and_crl() {
    let a = api();
    let (_, issuing) = a.hierarchy(&[]);
    let issued = a.ok(
        "POST",
        &format!("/cloudCertificationAuthority/{issuing}/issueLeafCertificate"),
        Some(json!({"certificateSigningRequest": a.csr("visible")})),
    );
    let leaf = &issued["value"];
    let der = <base64ct::Base64 as base64ct::Encoding>::decode_vec(leaf["certificate"].as_str().unwrap()).unwrap();
    let leaf_pem = a.env.path("visible.pem");
    std::fs::write(&leaf_pem, cloudpki::x509::pem::encode("CERTIFICATE", &der).unwrap()).unwrap();
    assert_eq!(
        leaf["crlDistributionPointUrl"].as_str(),
        Some(cdp_url(&leaf_pem).as_str()),
        "the entity shows the CRL its certificate names"
    );
    let issuing_pem = a.env.save(&["ca", "cert", &issuing], "issuing.pem");
    a.ok(
        "POST",
        &format!("/cloudCertificationAuthority/{issuing}/revokeLeafCertificate"),
        Some(json!({"leafCertificateId": leaf["id"]})),
    );
    let revoked_at = Instant::now();
    let url = format!("{}/ocsp", a.server.url);
    loop {
        let out = openssl(&[
            "ocsp",
            "-issuer",
            issuing_pem.to_str().unwrap(),
            "-cert",
            leaf_pem.to_str().unwrap(),
            "-url",
            &url,
            "-noverify",
            "-no_nonce",
        ]);
        if out.contains(": revoked") {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "not revoked at OCSP: {out}"
        );
    }
    let path = a.env.path("visible.crl");
    loop {
        // The partition the certificate names, as the entity shows it.
        let crl = curl("GET", leaf["crlDistributionPointUrl"].as_str().unwrap(), None, &[]);
        std::fs::write(&path, &crl.body).unwrap();
        let text = openssl(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            path.to_str().unwrap(),
            "-noout",
            "-text",
        ]);
        if text.contains(leaf["serialNumber"].as_str().unwrap()) {
            break;
        }
        assert!(revoked_at.elapsed() < Duration::from_secs(1), "not on the CRL: {text}");
    }
}

#[test]
fn odata_query_options() {
    let a = api();
    let (root_a, issuing_a) = a.hierarchy(&[]);
    let (_, issuing_b) = a.hierarchy(&[]);
    a.ok(
        "POST",
        &format!("/cloudCertificationAuthority/{issuing_b}/changeCloudCertificationAuthorityStatus"),
        Some(json!({"certificationAuthorityStatus": "paused"})),
    );
    let q = |query: &str| -> Value { a.ok("GET", &format!("/cloudCertificationAuthority?{query}"), None) };
    let ids = |v: &Value| -> Vec<String> {
        v["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let paused = q("$filter=certificationAuthorityStatus%20eq%20'paused'");
    assert_eq!(ids(&paused), vec![issuing_b.clone()]);
    let v = q("$filter=certificationAuthorityStatus%20ne%20'paused'%20and%20(cloudCertificationAuthorityType%20eq%20'rootCertificationAuthority'%20or%20cloudCertificationAuthorityType%20eq%20'issuingCertificationAuthority')&$count=true");
    assert_eq!(v["@odata.count"], 3);
    let v = q("$orderby=displayName%20desc,validityStartDateTime&$select=displayName,thumbprint&$top=2");
    let first = &v["value"][0];
    assert_eq!(first["displayName"], "Root");
    assert!(first.get("thumbprint").is_some() && first.get("commonName").is_none() && first.get("id").is_some());
    assert!(v["@odata.nextLink"].as_str().unwrap().contains("$skip=2"));
    let rest: Value = serde_json::from_slice(
        &curl(
            "GET",
            v["@odata.nextLink"].as_str().unwrap(),
            None,
            &[("Authorization", &format!("Bearer {}", a.admin))],
        )
        .body,
    )
    .unwrap();
    assert_eq!(rest["value"].as_array().unwrap().len(), 2);
    assert!(ids(&q("$skip=1&$top=1")).len() == 1);
    for bad in [
        "$filter=displayName%20eq%20'x'",
        "$orderby=thumbprint",
        "$select=keyPlatform",
        "$filter=certificationAuthorityStatus%20gt%20'x'",
        "$search=x",
    ] {
        assert_eq!(
            a.call(&a.admin, "GET", &format!("/cloudCertificationAuthority?{bad}"), None)
                .status,
            400,
            "{bad}"
        );
    }
    let _ = root_a;
    // Leaves: status filter, count, order.
    for name in ["l1", "l2", "l3"] {
        a.ok(
            "POST",
            &format!("/cloudCertificationAuthority/{issuing_a}/issueLeafCertificate"),
            Some(json!({"certificateSigningRequest": a.csr(name)})),
        );
    }
    let leaves = a.ok("GET", &format!("/cloudCertificationAuthority/{issuing_a}/cloudCertificationAuthorityLeafCertificate?$orderby=subjectName%20desc"), None);
    let names: Vec<&str> = leaves["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["subjectName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["CN=l3", "CN=l2", "CN=l1"]);
    let first_id = leaves["value"][2]["id"].as_str().unwrap().to_owned();
    a.ok(
        "POST",
        &format!("/cloudCertificationAuthority/{issuing_a}/revokeLeafCertificate"),
        Some(json!({"leafCertificateId": first_id})),
    );
    let active = a.ok("GET", &format!("/cloudCertificationAuthority/{issuing_a}/cloudCertificationAuthorityLeafCertificate?$filter=certificateStatus%20eq%20'active'&$select=serialNumber"), None);
    assert_eq!(active["value"].as_array().unwrap().len(), 2);
    assert!(active["value"][0].get("deviceName").is_none());
    let count = a.call(&a.admin, "GET", &format!("/cloudCertificationAuthority/{issuing_a}/cloudCertificationAuthorityLeafCertificate/$count?$filter=certificateStatus%20eq%20'revoked'"), None);
    assert_eq!(String::from_utf8(count.body).unwrap(), "1");
}

/// Follows `@odata.nextLink` from `first` to the end; returns the entities.
fn page_values(a: &Api, first: &str) -> Vec<Value> {
    let mut next = Some(first.to_owned());
    let mut out = Vec::new();
    while let Some(url) = next {
        let r = curl("GET", &url, None, &[("Authorization", &format!("Bearer {}", a.admin))]);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        out.extend(v["value"].as_array().unwrap().iter().cloned());
        next = v["@odata.nextLink"].as_str().map(str::to_owned);
    }
    out
}

/// Every documented `$orderby` pages by key through nextLinks: every leaf
/// once, in order; `$skip` is capped with a pointer to nextLink; a token only
/// works for the order it came from; getAll… streams the whole CA.
#[test]
fn leaf_orderby_pages_by_key_and_get_all_streams() {
    const BULK: usize = 1_500;
    let a = api();
    let (_, issuing) = a.hierarchy(&[]);
    let csr = a
        .env
        .openssl_csr("bulk", &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"], "/CN=bulk");
    a.env.json(&[
        "cert",
        "issue-bulk",
        "--ca",
        &issuing,
        "--csr",
        csr.to_str().unwrap(),
        "--count",
        &BULK.to_string(),
    ]);
    let mut named = Vec::new();
    for name in ["Zulu", "alpha", "Mike", "bravo"] {
        let v = a.ok(
            "POST",
            &format!("/cloudCertificationAuthority/{issuing}/issueLeafCertificate"),
            Some(json!({"certificateSigningRequest": a.csr(name)})),
        );
        named.push(v["value"]["id"].as_str().unwrap().to_owned());
    }
    for id in &named[1..3] {
        a.ok(
            "POST",
            &format!("/cloudCertificationAuthority/{issuing}/revokeLeafCertificate"),
            Some(json!({"leafCertificateId": id})),
        );
    }
    let total = BULK + named.len();
    let base = format!(
        "{}{BASE}/cloudCertificationAuthority/{issuing}/cloudCertificationAuthorityLeafCertificate",
        a.server.url
    );
    for (orderby, key) in [
        ("subjectName", "subjectName"),
        ("subjectName%20desc", "subjectName"),
        ("certificateStatus", "certificateStatus"),
        ("certificateStatus%20desc", "certificateStatus"),
        ("validityStartDateTime", "validityStartDateTime"),
        ("validityEndDateTime%20desc", "validityEndDateTime"),
    ] {
        let all = page_values(&a, &format!("{base}?$top=400&$orderby={orderby}"));
        let ids: std::collections::HashSet<&str> = all.iter().map(|v| v["id"].as_str().unwrap()).collect();
        assert_eq!((all.len(), ids.len()), (total, total), "{orderby}: every leaf once");
        let keys: Vec<String> = all
            .iter()
            .map(|v| v[key].as_str().unwrap().to_ascii_lowercase())
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        if orderby.ends_with("desc") {
            sorted.reverse();
        }
        assert_eq!(keys, sorted, "{orderby}");
    }
    // Names sort case-insensitively; a status filter and $count go along.
    let first = a.ok(
        "GET",
        &format!("/cloudCertificationAuthority/{issuing}/cloudCertificationAuthorityLeafCertificate?$orderby=subjectName&$top=3&$count=true&$filter=certificateStatus%20eq%20'active'"),
        None,
    );
    let names: Vec<&str> = first["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["subjectName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["CN=bravo", "CN=bulk", "CN=bulk"]);
    assert_eq!(first["@odata.count"], total - 2);
    let revoked = page_values(
        &a,
        &format!("{base}?$orderby=certificateStatus%20desc&$filter=certificateStatus%20eq%20'revoked'"),
    );
    let mut revoked_ids: Vec<&str> = revoked.iter().map(|v| v["id"].as_str().unwrap()).collect();
    revoked_ids.sort();
    let mut want: Vec<&str> = named[1..3].iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(revoked_ids, want);

    // $skip is for short jumps; the refusal says what to do instead.
    let deep = a.call(
        &a.admin,
        "GET",
        &format!("/cloudCertificationAuthority/{issuing}/cloudCertificationAuthorityLeafCertificate?$orderby=subjectName&$skip=10001"),
        None,
    );
    assert_eq!(deep.status, 400);
    assert!(String::from_utf8_lossy(&deep.body).contains("@odata.nextLink"));
    let skipped = a.ok(
        "GET",
        &format!("/cloudCertificationAuthority/{issuing}/cloudCertificationAuthorityLeafCertificate?$orderby=subjectName&$skip=2&$top=1"),
        None,
    );
    assert_eq!(skipped["value"][0]["subjectName"], "CN=bulk");
    // A token belongs to its order.
    let next = first["@odata.nextLink"].as_str().unwrap();
    let token = next.split("$skiptoken=").nth(1).unwrap().split('&').next().unwrap();
    for (query, why) in [
        (
            format!("$orderby=validityEndDateTime&$skiptoken={token}"),
            "another order",
        ),
        ("$orderby=subjectName&$skiptoken=not-a-token".to_owned(), "garbage"),
    ] {
        let r = a.call(
            &a.admin,
            "GET",
            &format!("/cloudCertificationAuthority/{issuing}/cloudCertificationAuthorityLeafCertificate?{query}"),
            None,
        );
        assert_eq!((r.status, error_code(&r).as_str()), (400, "BadRequest"), "{why}");
    }

    // getAll…: one answer, streamed (no Content-Length), every leaf in it.
    let r = a.call(
        &a.admin,
        "POST",
        &format!("/cloudCertificationAuthority/{issuing}/getAllCloudCertificationAuthorityLeafCertificates"),
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), None);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let all = v["value"].as_array().unwrap();
    assert_eq!(all.len(), total);
    assert_eq!(all[total - 1]["id"], named[3].as_str());
    assert_eq!(all[total - 2]["certificateStatus"], "revoked");
}

/// Regression (found by the Graph documentation examples once scope tags
/// were stored as a list): the docs' placeholder tag "Role Scope Tag Ids
/// value" is no tag; a real tag with a space stays one tag.
#[test]
fn graph_placeholder_scope_tag_is_no_tag() {
    let a = api();
    let root = a.ok(
        "POST",
        "/cloudCertificationAuthority",
        Some(json!({"cloudCertificationAuthorityType": "rootCertificationAuthority",
            "commonName": format!("Placeholder Root {}", uuid_like()), "certificateKeySize": "eCP256",
            "validityPeriodInYears": 10, "roleScopeTagIds": ["Role Scope Tag Ids value"]})),
    );
    assert_eq!(root["roleScopeTagIds"], json!(["0"]));
    let path = format!("/cloudCertificationAuthority/{}", root["id"].as_str().unwrap());
    a.ok("PATCH", &path, Some(json!({"roleScopeTagIds": ["0", "7"]})));
    // Only the placeholder: nothing asked for, the tags stay.
    a.ok(
        "PATCH",
        &path,
        Some(json!({"roleScopeTagIds": ["Role Scope Tag Ids value"]})),
    );
    assert_eq!(a.ok("GET", &path, None)["roleScopeTagIds"], json!(["0", "7"]));
    a.ok("PATCH", &path, Some(json!({"roleScopeTagIds": ["0", "tag a"]})));
    assert_eq!(a.ok("GET", &path, None)["roleScopeTagIds"], json!(["0", "tag a"]));
}
