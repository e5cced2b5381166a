//! The API against outside yardsticks: Graph's documented examples sent as
//! they are, schemathesis against `/openapi.json`, external OIDC tokens,
//! throttling and the admin listener.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};

use crate::api::{api, error_code, token, Api, BASE, RW};
use crate::support::{curl, repo, Env};

fn example(name: &str) -> (String, Vec<(String, String)>, String) {
    let dir = repo().join("tests/fixtures/graph-examples");
    let text = std::fs::read_to_string(dir.join(name)).unwrap();
    let (head, body) = text.split_once("\n\n").unwrap();
    let mut lines = head.lines();
    let first = lines.next().unwrap().to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    (first, headers, body.to_owned())
}

/// Every key Graph documents is present, with the documented JSON type (or null).
fn assert_shape(documented: &Value, ours: &Value, at: &str) {
    let (Some(doc), Some(got)) = (documented.as_object(), ours.as_object()) else {
        panic!("{at}: expected an object, got {ours}");
    };
    for (k, v) in doc {
        let g = got.get(k).unwrap_or_else(|| panic!("{at}: missing {k} in {ours}"));
        let kind = |v: &Value| match v {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        assert!(
            g.is_null() || kind(g) == kind(v),
            "{at}.{k}: documented {} got {}",
            kind(v),
            kind(g)
        );
        if v.is_object() && g.is_object() {
            assert_shape(v, g, &format!("{at}.{k}"));
        }
    }
}

/// Sends a documented example: the method, path, headers and body as the
/// document prints them, with only the placeholders that must name existing
/// objects (ids, a serial number) replaced. Checks status and response shape.
fn send_example(a: &Api, name: &str, substitutions: &[(&str, &str)]) -> Value {
    let (request_line, headers, mut body) = example(&format!("{name}.request.http"));
    let (method, url) = request_line.split_once(' ').unwrap();
    let mut path = url
        .strip_prefix("https://graph.microsoft.com/beta/deviceManagement")
        .unwrap()
        .to_owned();
    for (from, to) in substitutions {
        path = path.replace(from, to);
        body = body.replace(&format!("\"{from}\""), &format!("\"{to}\""));
    }
    let auth = format!("Bearer {}", a.admin);
    let mut h: Vec<(&str, &str)> = headers
        .iter()
        // curl computes the length of the body it sends.
        .filter(|(k, _)| !k.eq_ignore_ascii_case("content-length"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    h.push(("Authorization", &auth));
    let r = curl(
        method,
        &format!("{}{BASE}{path}", a.server.url),
        Some(body.as_bytes()),
        &h,
    );
    let (status_line, _, documented) = {
        let dir = repo().join("tests/fixtures/graph-examples");
        let text = std::fs::read_to_string(dir.join(format!("{name}.response.http"))).unwrap();
        let (status, body) = text.split_once("\n\n").unwrap();
        (status.to_owned(), (), body.to_owned())
    };
    let want: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    assert_eq!(r.status, want, "{name}: {}", String::from_utf8_lossy(&r.body));
    let ours: Value = serde_json::from_slice(&r.body).unwrap();
    let documented: Value = serde_json::from_str(&documented).unwrap();
    assert_shape(&documented, &ours, name);
    ours
}

#[test]
fn graph_documentation_examples_sent_as_printed() {
    let a = api();
    // Create: the body as printed, placeholders and read-only properties included.
    let created = send_example(&a, "003-createCloudCertificationAuthority", &[]);
    assert_eq!(created["displayName"], "Display Name value");
    assert_eq!(created["cloudCertificationAuthorityType"], "rootCertificationAuthority");
    assert_eq!(
        created["certificationAuthorityStatus"], "active",
        "computed, not copied"
    );
    assert_ne!(created["thumbprint"], "Thumbprint value", "read-only: computed");
    assert_ne!(created["eTag"], "ETag value");
    assert_eq!(
        created["certificationAuthorityIssuerId"],
        Value::Null,
        "a root has no issuer"
    );
    assert_eq!(
        created["countryName"],
        Value::Null,
        "a placeholder is not a country code"
    );
    assert!(created["subjectName"]
        .as_str()
        .unwrap()
        .contains("CN=Common Name value"));

    let (_, issuing) = a.hierarchy(&[]);
    let mut leaves = Vec::new();
    for i in 0..3 {
        let issued = a.ok(
            "POST",
            &format!("/cloudCertificationAuthority/{issuing}/issueLeafCertificate"),
            Some(json!({"certificateSigningRequest": a.csr(&format!("example-{i}"))})),
        );
        leaves.push(issued["value"].clone());
    }
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
    let (l0, l1, l2) = (id(&leaves[0]), id(&leaves[1]), id(&leaves[2]));
    let serial = leaves[1]["serialNumber"].as_str().unwrap().to_owned();

    let revoked = send_example(
        &a,
        "001-revokeLeafCertificate",
        &[
            ("{cloudCertificationAuthorityId}", &issuing),
            ("Leaf Certificate Id value", &l0),
        ],
    );
    assert_eq!(revoked["value"]["id"], l0.as_str());
    assert_eq!(revoked["value"]["certificateStatus"], "revoked");

    let revoked = send_example(
        &a,
        "002-revokeLeafCertificateBySerialNumber",
        &[
            ("{cloudCertificationAuthorityId}", &issuing),
            ("Certificate Serial Number value", &serial),
        ],
    );
    assert_eq!(revoked["value"]["id"], l1.as_str());
    assert_eq!(revoked["value"]["certificateStatus"], "revoked");

    // Update: every leaf property is read-only, so the body is ignored (200).
    let patched = send_example(
        &a,
        "004-updateLeafCertificate",
        &[("{cloudCertificationAuthorityLeafCertificateId}", &l2)],
    );
    assert_eq!(
        patched["deviceName"], leaves[2]["deviceName"],
        "read-only: recorded at issuance"
    );
    assert_eq!(
        patched["certificateStatus"], "active",
        "read-only: not changed by PATCH"
    );
    assert_eq!(patched["serialNumber"], leaves[2]["serialNumber"]);
}

#[test]
fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let a = api();
    let (_, issuing) = a.hierarchy(&[]);
    let issued = a.ok(
        "POST",
        &format!("/cloudCertificationAuthority/{issuing}/issueLeafCertificate"),
        Some(json!({"certificateSigningRequest": a.csr("fuzzed")})),
    );
    let leaf = issued["value"]["id"].as_str().unwrap().to_owned();
    // The document itself: every route, with its schemas.
    let doc = curl("GET", &format!("{}/openapi.json", a.server.url), None, &[]);
    assert_eq!(doc.status, 200);
    let doc: Value = serde_json::from_slice(&doc.body).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(
        doc["paths"][format!("{BASE}/cloudCertificationAuthority/{{id}}")]["patch"]["responses"]["412"].is_object()
    );

    // Known ids, so the operations under /{id} reach the domain instead of 404.
    let config = a.env.path("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            "[parameters]\n\"path.id\" = \"{issuing}\"\n\"path.leafId\" = \"{leaf}\"\n\
             [generation]\nmax-examples = 25\n"
        ),
    )
    .unwrap();
    let out = Command::new("schemathesis")
        .arg("--config-file")
        .arg(&config)
        .args(["run", &format!("{}/openapi.json", a.server.url)])
        .args(["--url", &a.server.url])
        .args(["-H", &format!("Authorization: Bearer {}", a.admin)])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
        ])
        .args(["--seed", "20261122", "--no-color", "--request-timeout", "60"])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .expect("schemathesis is installed (scripts/install-test-deps.sh)");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(out.status.success(), "schemathesis failed:\n{text}");
    assert!(text.contains("passed"), "{text}");
    assert!(!text.contains(" failed"), "{text}");
}

fn write_jwks(env: &Env, kid: &str) -> (jsonwebtoken::EncodingKey, PathBuf) {
    let key_pem = env.path(&format!("{kid}.pem"));
    let out = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&key_pem)
        .output()
        .unwrap();
    assert!(out.status.success());
    let key = jsonwebtoken::EncodingKey::from_ec_pem(&std::fs::read(&key_pem).unwrap()).unwrap();
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::ES256).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    let jwks = env.path(&format!("{kid}.jwks.json"));
    std::fs::write(&jwks, serde_json::to_vec(&json!({"keys": [jwk]})).unwrap()).unwrap();
    (key, jwks)
}

#[test]
fn external_oidc_tokens_verified_by_jwks() {
    const ISS: &str = "https://login.example.test/tenant-1/v2.0";
    const AUD: &str = "api://cloudpki";
    let env = Env::new();
    let (key, jwks) = write_jwks(&env, "entra-key-1");
    let (other_key, _) = write_jwks(&env, "not-trusted");
    let server = env.server_adjusted(|cfg| {
        cfg.oidc = vec![cloudpki::auth::OidcIssuerConfig {
            issuer: ISS.into(),
            audience: AUD.into(),
            jwks_file: jwks.clone(),
            principal_claim: Some("oid".into()),
        }];
    });
    let out = env.run(&[
        "role",
        "assign",
        "--principal",
        "entra-oid-42",
        "--role",
        "Intune Administrator",
    ]);
    assert!(out.status.success());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let sign = |claims: Value, kid: &str, key: &jsonwebtoken::EncodingKey| {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        h.kid = Some(kid.into());
        jsonwebtoken::encode(&h, &claims, key).unwrap()
    };
    let good = json!({"iss": ISS, "aud": AUD, "exp": now + 600, "nbf": now - 10, "iat": now,
        "oid": "entra-oid-42", "sub": "pairwise-sub", "scp": RW});
    let list = |t: &str| {
        curl(
            "GET",
            &format!("{}{BASE}/cloudCertificationAuthority", server.url),
            None,
            &[("Authorization", &format!("Bearer {t}"))],
        )
    };
    let r = list(&sign(good.clone(), "entra-key-1", &key));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // Keycloak's shape: `aud` as an array, scopes in `scope`.
    let mut kc = good.clone();
    kc["aud"] = json!(["account", AUD]);
    kc["scope"] = json!(format!("openid profile {RW}"));
    kc.as_object_mut().unwrap().remove("scp");
    assert_eq!(list(&sign(kc, "entra-key-1", &key)).status, 200);
    // Audit names the principal from the configured claim.
    let changed = curl(
        "POST",
        &format!("{}{BASE}/cloudCertificationAuthority", server.url),
        Some(
            json!({"displayName": "OIDC root", "cloudCertificationAuthorityType": "rootCertificationAuthority",
                "commonName": "OIDC Root", "certificateKeySize": "eCP256"})
            .to_string()
            .as_bytes(),
        ),
        &[
            (
                "Authorization",
                &format!("Bearer {}", sign(good.clone(), "entra-key-1", &key)),
            ),
            ("Content-Type", "application/json"),
        ],
    );
    assert_eq!(changed.status, 201);
    let audit = curl(
        "GET",
        &format!("{}{BASE}/auditEvents", server.url),
        None,
        &[(
            "Authorization",
            &format!("Bearer {}", sign(good.clone(), "entra-key-1", &key)),
        )],
    );
    let audit: Value = serde_json::from_slice(&audit.body).unwrap();
    assert!(audit["value"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["actor"]["userPrincipalName"] == "entra-oid-42"));

    let refused = |claims: Value, kid: &str, key: &jsonwebtoken::EncodingKey, why: &str| {
        let r = list(&sign(claims, kid, key));
        assert_eq!(r.status, 401, "{why}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(error_code(&r), "InvalidAuthenticationToken", "{why}");
    };
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    refused(with("aud", json!("api://other")), "entra-key-1", &key, "wrong audience");
    refused(with("exp", json!(now - 3600)), "entra-key-1", &key, "expired");
    refused(with("nbf", json!(now + 3600)), "entra-key-1", &key, "not yet valid");
    refused(
        with("iss", json!("https://evil.test/")),
        "entra-key-1",
        &key,
        "untrusted issuer",
    );
    refused(good.clone(), "not-trusted", &other_key, "unknown kid");
    refused(good.clone(), "entra-key-1", &other_key, "signed by another key");
    let mut no_oid = good.clone();
    no_oid.as_object_mut().unwrap().remove("oid");
    refused(no_oid, "entra-key-1", &key, "no principal claim");
    // An HMAC token "signed" with the public JWKS as secret: never accepted.
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &good,
        &jsonwebtoken::EncodingKey::from_secret(&std::fs::read(&jwks).unwrap()),
    )
    .unwrap();
    assert_eq!(list(&hs).status, 401);
    // Our own tokens still work beside the external issuer.
    let own = token(&env, "entra-oid-42", &[RW]);
    assert_eq!(list(&own).status, 200);
}

#[test]
fn throttled_principals_get_429_with_retry_after() {
    let env = Env::new();
    let server = env.server_adjusted(|cfg| cfg.api_rate_limit = 2);
    for p in ["hasty", "patient"] {
        assert!(env
            .run(&["role", "assign", "--principal", p, "--role", "Intune Administrator"])
            .status
            .success());
    }
    let (hasty, patient) = (token(&env, "hasty", &[RW]), token(&env, "patient", &[RW]));
    let get = |t: &str| {
        curl(
            "GET",
            &format!("{}{BASE}/cloudCertificationAuthority", server.url),
            None,
            &[("Authorization", &format!("Bearer {t}"))],
        )
    };
    let statuses: Vec<_> = (0..12).map(|_| get(&hasty)).collect();
    let throttled = statuses
        .iter()
        .find(|r| r.status == 429)
        .expect("a burst of 12 at 2/s is throttled");
    assert_eq!(error_code(throttled), "TooManyRequests");
    let retry: u64 = throttled.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry));
    assert!(
        statuses.iter().take(4).all(|r| r.status == 200),
        "the burst allowance is 2x the rate"
    );
    // Another principal is not slowed by the first.
    assert_eq!(get(&patient).status, 200);
    std::thread::sleep(std::time::Duration::from_millis(1100 * retry));
    assert_eq!(get(&hasty).status, 200, "the bucket refills");
}

#[test]
fn metrics_can_move_to_an_admin_listener() {
    let env = Env::new();
    let admin_port = crate::support::free_port();
    let server = env.server_adjusted(|cfg| {
        cfg.admin_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], admin_port)));
    });
    let admin = format!("http://127.0.0.1:{admin_port}");
    assert_eq!(server.handles.admin_addr.map(|a| a.port()), Some(admin_port));
    let m = curl("GET", &format!("{admin}/metrics"), None, &[]);
    assert_eq!(m.status, 200);
    assert!(String::from_utf8_lossy(&m.body).contains("cloudpki_http_requests_total"));
    assert_eq!(curl("GET", &format!("{admin}/healthz"), None, &[]).status, 200);
    assert_eq!(curl("GET", &format!("{admin}/readyz"), None, &[]).status, 200);
    // The admin listener serves nothing else; the public one no metrics.
    assert_eq!(curl("GET", &format!("{admin}/openapi.json"), None, &[]).status, 404);
    assert_eq!(
        curl("GET", &format!("{admin}/crls/x_v1/current.crl"), None, &[]).status,
        404
    );
    assert_eq!(curl("GET", &format!("{}/metrics", server.url), None, &[]).status, 404);
    assert_eq!(curl("GET", &format!("{}/healthz", server.url), None, &[]).status, 200);
    assert_eq!(
        curl("GET", &format!("{}/openapi.json", server.url), None, &[]).status,
        200
    );
}
