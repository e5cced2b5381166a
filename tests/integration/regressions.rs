//! Regression tests, each named after the defect it pins down (the
//! foundation issue's list): every one failed before its fix.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64ct::Encoding;
use serde_json::{json, Value};

use crate::api::{api, error_code, token, Api, BASE, RW};
use crate::support::{curl, free_port, id, openssl, Env, Http};

fn ca_path(id: &str) -> String {
    format!("/cloudCertificationAuthority/{id}")
}

fn with_header(a: &Api, method: &str, path: &str, body: Option<Value>, header: (&str, &str)) -> Http {
    let auth = format!("Bearer {}", a.admin);
    let bytes = body.map(|b| b.to_string().into_bytes());
    let mut headers = vec![("Authorization", auth.as_str()), header];
    if bytes.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    curl(
        method,
        &format!("{}{BASE}{path}", a.server.url),
        bytes.as_deref(),
        &headers,
    )
}

fn root(a: &Api, cn: &str) -> Value {
    a.ok(
        "POST",
        "/cloudCertificationAuthority",
        Some(
            json!({"displayName": cn, "cloudCertificationAuthorityType": "rootCertificationAuthority",
            "commonName": cn, "certificateKeySize": "eCP256"}),
        ),
    )
}

// ---------------------------------------------------------------- defect 1

#[test]
fn delete_ca_with_a_stale_if_match_answers_412_and_keeps_the_ca() {
    let a = api();
    let ca = root(&a, "Stale If-Match Root");
    let ca_id = id(&ca);
    let stale = ca["eTag"].as_str().unwrap().to_owned();
    let renamed = a.ok("PATCH", &ca_path(&ca_id), Some(json!({"displayName": "Renamed"})));
    let current = renamed["eTag"].as_str().unwrap().to_owned();
    assert_ne!(stale, current, "a PATCH changes the eTag");

    let r = with_header(&a, "DELETE", &ca_path(&ca_id), None, ("If-Match", &stale));
    assert_eq!((r.status, error_code(&r).as_str()), (412, "PreconditionFailed"));
    assert_eq!(
        a.call(&a.admin, "GET", &ca_path(&ca_id), None).status,
        200,
        "still there"
    );

    let r = with_header(&a, "DELETE", &ca_path(&ca_id), None, ("If-Match", &current));
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(a.call(&a.admin, "GET", &ca_path(&ca_id), None).status, 404);

    // No If-Match, or `*`: deleted as before.
    let other = id(&root(&a, "No If-Match Root"));
    assert_eq!(a.call(&a.admin, "DELETE", &ca_path(&other), None).status, 204);
    let star = id(&root(&a, "Star If-Match Root"));
    assert_eq!(
        with_header(&a, "DELETE", &ca_path(&star), None, ("If-Match", "*")).status,
        204
    );
    // The OpenAPI document says so.
    let doc: Value =
        serde_json::from_slice(&curl("GET", &format!("{}/openapi.json", a.server.url), None, &[]).body).unwrap();
    assert!(
        doc["paths"][format!("{BASE}/cloudCertificationAuthority/{{id}}")]["delete"]["responses"]["412"].is_object()
    );
}

// ---------------------------------------------------------------- defect 2

#[test]
fn leaf_patch_leaves_the_read_only_device_and_user_as_issued() {
    let a = api();
    let (_, issuing) = a.hierarchy(&[]);
    let issued = a.ok(
        "POST",
        &format!("{}/issueLeafCertificate", ca_path(&issuing)),
        Some(
            json!({"certificateSigningRequest": a.csr("readonly-leaf"), "deviceName": "issued-device",
            "userPrincipalName": "issued@contoso.com", "deviceId": "device-1", "userId": "user-1",
            "devicePlatform": "iOS"}),
        ),
    )["value"]
        .clone();
    let leaf = id(&issued);
    let as_issued = |v: &Value| {
        assert_eq!(v["deviceName"], "issued-device", "{v}");
        assert_eq!(v["userPrincipalName"], "issued@contoso.com", "{v}");
        assert_eq!(v["deviceId"], "device-1", "{v}");
        assert_eq!(v["userId"], "user-1", "{v}");
        assert_eq!(v["devicePlatform"], "iOS", "{v}");
    };
    let new_values = json!({"deviceName": "renamed", "userPrincipalName": "mallory@contoso.com",
        "deviceId": "device-2", "userId": "user-2", "devicePlatform": "Android", "thumbprint": "ignored"});
    for path in [
        format!("/cloudCertificationAuthorityLeafCertificate/{leaf}"),
        format!(
            "{}/cloudCertificationAuthorityLeafCertificate/{leaf}",
            ca_path(&issuing)
        ),
    ] {
        let patched = a.ok("PATCH", &path, Some(new_values.clone()));
        as_issued(&patched);
        as_issued(&a.ok("GET", &path, None));
    }
    assert_eq!(
        a.ok(
            "GET",
            &format!("/cloudCertificationAuthorityLeafCertificate/{leaf}"),
            None
        )["thumbprint"],
        issued["thumbprint"]
    );
}

// ---------------------------------------------------------------- defect 3

fn wait_for_port(port: u16, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("serve exited early: {status:?}");
        }
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(child: std::process::Child) -> (String, String) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "exit status {:?}", out.status);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn serve_listen_on_a_fresh_data_dir_takes_its_public_url_from_the_listen_address() {
    let env = Env::new();
    let port = free_port();
    let mut child = env
        .command()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_port(port, &mut child);
    let ca = env.create_ca(&["--type", "root", "--common-name", "Listen Root", "--key-size", "eCP256"]);
    let cert_url = ca["certificateDownloadUrl"].as_str().unwrap().to_owned();
    assert!(
        cert_url.starts_with(&format!("http://127.0.0.1:{port}/")),
        "certificates point at the port serve listens on: {cert_url}"
    );
    // The URL a certificate carries answers.
    let deadline = Instant::now() + Duration::from_secs(10);
    while curl("GET", &cert_url, None, &[]).status != 200 {
        assert!(Instant::now() < deadline, "{cert_url} does not answer");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (stdout, stderr) = stop(child);
    assert!(
        stdout.contains(&format!("public URL:     http://127.0.0.1:{port}")),
        "{stdout}"
    );
    assert!(!stderr.contains("WARN"), "{stderr}");

    // Later, on another port: the stored URL stays (certificates embed it), loudly.
    let other = free_port();
    let mut child = env
        .command()
        .args(["serve", "--listen", &format!("127.0.0.1:{other}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_port(other, &mut child);
    let (stdout, stderr) = stop(child);
    assert!(
        stdout.contains(&format!("public URL:     http://127.0.0.1:{port}")),
        "{stdout}"
    );
    let warning = stderr
        .lines()
        .find(|l| l.contains("WARN") && l.contains("public URL"))
        .unwrap_or_else(|| panic!("no warning about the public URL's port: {stderr}"));
    assert!(
        warning.contains(&port.to_string()) && warning.contains(&other.to_string()),
        "{warning}"
    );
}

// ---------------------------------------------------------------- defect 4

#[test]
fn hardware_security_module_key_platform_is_refused_not_turned_into_software() {
    let a = api();
    let body = |cn: &str, platform: Option<&str>| {
        let mut b = json!({"cloudCertificationAuthorityType": "rootCertificationAuthority", "commonName": cn,
            "certificateKeySize": "eCP256"});
        if let Some(p) = platform {
            b["keyPlatform"] = json!(p);
        }
        b
    };
    let r = a.call(
        &a.admin,
        "POST",
        "/cloudCertificationAuthority",
        Some(body("HSM Root", Some("hardwareSecurityModule"))),
    );
    assert_eq!((r.status, error_code(&r).as_str()), (400, "BadRequest"));
    assert!(
        String::from_utf8_lossy(&r.body).contains("keyPlatform"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let list = a.ok("GET", "/cloudCertificationAuthority", None);
    assert_eq!(list["value"].as_array().unwrap().len(), 0, "nothing was created");

    for (cn, platform) in [("Software Root", Some("software")), ("Default Root", None)] {
        let r = a.call(
            &a.admin,
            "POST",
            "/cloudCertificationAuthority",
            Some(body(cn, platform)),
        );
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let ca: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(ca["keyPlatform"], "software");
    }
    // The OpenAPI document offers only what is accepted.
    let doc: Value =
        serde_json::from_slice(&curl("GET", &format!("{}/openapi.json", a.server.url), None, &[]).body).unwrap();
    let schema = &doc["components"]["schemas"]["CreateCaBody"]["properties"]["keyPlatform"];
    assert!(schema.is_object(), "keyPlatform is documented: {schema}");
    let text = schema.to_string();
    assert!(
        text.contains("software") && !text.contains("\"hardwareSecurityModule\""),
        "{text}"
    );
}

// ---------------------------------------------------------------- defect 5

#[test]
fn select_applies_to_single_entity_gets() {
    let a = api();
    let (_, issuing) = a.hierarchy(&[]);
    let leaf = id(&a.ok(
        "POST",
        &format!("{}/issueLeafCertificate", ca_path(&issuing)),
        Some(json!({"certificateSigningRequest": a.csr("selected"), "deviceName": "selected-device"})),
    )["value"]);
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let ca = a.ok(
        "GET",
        &format!("{}?$select=displayName,thumbprint", ca_path(&issuing)),
        None,
    );
    assert_eq!(keys(&ca), ["@odata.type", "displayName", "id", "thumbprint"], "{ca}");
    for path in [
        format!("/cloudCertificationAuthorityLeafCertificate/{leaf}"),
        format!(
            "{}/cloudCertificationAuthorityLeafCertificate/{leaf}",
            ca_path(&issuing)
        ),
    ] {
        let l = a.ok("GET", &format!("{path}?$select=deviceName,serialNumber"), None);
        assert_eq!(keys(&l), ["@odata.type", "deviceName", "id", "serialNumber"], "{l}");
        assert_eq!(l["deviceName"], "selected-device");
        // Same rules as the collections: unknown properties and other options are 400.
        for bad in [
            "$select=keyUsages",
            "$filter=certificateStatus%20eq%20'active'",
            "$top=1",
        ] {
            let r = a.call(&a.admin, "GET", &format!("{path}?{bad}"), None);
            assert_eq!((r.status, error_code(&r).as_str()), (400, "BadRequest"), "{path}?{bad}");
        }
    }
    let r = a.call(
        &a.admin,
        "GET",
        &format!("{}?$select=keyPlatform", ca_path(&issuing)),
        None,
    );
    assert_eq!(r.status, 400);
}

/// Entity types and their property names, as Python's XML parser reads them.
fn csdl_entities(xml: &[u8], dir: &Path) -> Value {
    let file = dir.join("metadata.xml");
    std::fs::write(&file, xml).unwrap();
    let script = r#"
import json, sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
edmx = "{http://docs.oasis-open.org/odata/ns/edmx}"
edm = "{http://docs.oasis-open.org/odata/ns/edm}"
assert root.tag == edmx + "Edmx", root.tag
out = {"entities": {}, "complex": {}, "enums": {}, "actions": [], "singletons": {}}
for schema in root.iter(edm + "Schema"):
    for e in schema.findall(edm + "EntityType"):
        out["entities"][e.get("Name")] = {
            "properties": {p.get("Name"): p.get("Type") for p in e.findall(edm + "Property")},
            "navigation": {p.get("Name"): p.get("Type") for p in e.findall(edm + "NavigationProperty")},
            "key": [k.get("Name") for k in e.iter(edm + "PropertyRef")],
        }
    for c in schema.findall(edm + "ComplexType"):
        out["complex"][c.get("Name")] = [p.get("Name") for p in c.findall(edm + "Property")]
    for en in schema.findall(edm + "EnumType"):
        out["enums"][en.get("Name")] = [m.get("Name") for m in en.findall(edm + "Member")]
    for a in schema.findall(edm + "Action"):
        out["actions"].append(a.get("Name"))
    for c in schema.findall(edm + "EntityContainer"):
        for s in c.findall(edm + "Singleton"):
            out["singletons"][s.get("Name")] = s.get("Type")
print(json.dumps(out))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "$metadata does not parse: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn odata_context_points_at_a_served_metadata_document() {
    let a = api();
    let (_, issuing) = a.hierarchy(&[]);
    a.ok(
        "POST",
        &format!("{}/issueLeafCertificate", ca_path(&issuing)),
        Some(json!({"certificateSigningRequest": a.csr("context")})),
    );
    // Public, like /openapi.json.
    let md = curl("GET", &format!("{}/beta/$metadata", a.server.url), None, &[]);
    assert_eq!(md.status, 200, "{}", String::from_utf8_lossy(&md.body));
    assert!(md.header("content-type").unwrap().starts_with("application/xml"));
    let csdl = csdl_entities(&md.body, a.env.dir.path());
    let ca = &csdl["entities"]["cloudCertificationAuthority"];
    let leaf = &csdl["entities"]["cloudCertificationAuthorityLeafCertificate"];
    for p in [
        "id",
        "displayName",
        "certificationAuthorityStatus",
        "keyPlatform",
        "validityEndDateTime",
        "extendedKeyUsages",
    ] {
        assert!(ca["properties"][p].is_string(), "CA property {p}: {ca}");
    }
    assert_eq!(
        ca["properties"]["certificationAuthorityStatus"],
        "microsoft.graph.cloudCertificationAuthorityStatus"
    );
    assert_eq!(ca["properties"]["validityEndDateTime"], "Edm.DateTimeOffset");
    assert_eq!(
        ca["properties"]["extendedKeyUsages"],
        "Collection(microsoft.graph.extendedKeyUsage)"
    );
    assert_eq!(ca["key"], json!(["id"]));
    for p in [
        "id",
        "subjectName",
        "deviceName",
        "userPrincipalName",
        "certificateStatus",
        "revocationDateTime",
    ] {
        assert!(leaf["properties"][p].is_string(), "leaf property {p}: {leaf}");
    }
    assert!(csdl["complex"]["extendedKeyUsage"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "objectIdentifier"));
    assert!(csdl["enums"]["cloudCertificationAuthorityKeyPlatformType"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m == "software"));
    for action in [
        "changeCloudCertificationAuthorityStatus",
        "revokeLeafCertificate",
        "revokeCloudCertificationAuthorityCertificate",
    ] {
        assert!(
            csdl["actions"].as_array().unwrap().iter().any(|x| x == action),
            "{action}"
        );
    }

    // Every @odata.context the API emits points at it, at something it declares.
    let tokens = a.ok("GET", "/cloudPkiApiTokens", None);
    let emitted = [
        a.ok("GET", "/cloudCertificationAuthority", None),
        a.ok(
            "GET",
            &format!("{}/cloudCertificationAuthorityLeafCertificate", ca_path(&issuing)),
            None,
        ),
        a.ok("GET", "/auditEvents", None),
        tokens,
    ];
    let metadata = format!("{}/beta/$metadata#", a.server.url);
    let device_management = &csdl["entities"]["deviceManagement"]["navigation"];
    assert_eq!(
        csdl["singletons"]["deviceManagement"],
        "microsoft.graph.deviceManagement"
    );
    for v in emitted {
        let context = v["@odata.context"].as_str().unwrap();
        let fragment = context.strip_prefix(&metadata).unwrap_or_else(|| panic!("{context}"));
        let mut segments = fragment.split('/');
        assert_eq!(segments.next(), Some("deviceManagement"), "{context}");
        let set = segments.next().unwrap();
        let set = set.split('(').next().unwrap();
        assert!(device_management[set].is_string(), "{context}: {set} is not declared");
        if let Some(nav) = segments.next() {
            assert!(ca["navigation"][nav].is_string(), "{context}: {nav}");
        }
    }
}

// ---------------------------------------------------------------- defect 6

/// Headers of `curl -I` (a real HEAD: curl reads no body after it).
fn head(url: &str) -> (u16, Vec<(String, String)>) {
    let out = Command::new("curl").args(["-s", "-g", "-I", url]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        })
        .collect();
    (status, headers)
}

#[test]
fn head_carries_the_headers_and_content_length_of_get() {
    let env = Env::new();
    let server = env.server();
    let (_, issuing) = env.ec_hierarchy("HEAD");
    let csr = env.openssl_csr("head", &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"], "/CN=head");
    let (leaf, _) = env.issue_pem(&issuing, &csr, "head.pem");
    let issuing_pem = env.save(&["ca", "cert", &issuing], "issuing.pem");
    let req = env.path("head.req");
    openssl(&[
        "ocsp",
        "-issuer",
        issuing_pem.to_str().unwrap(),
        "-cert",
        leaf.to_str().unwrap(),
        "-no_nonce",
        "-reqout",
        req.to_str().unwrap(),
    ]);
    let b64 = base64ct::Base64::encode_string(&std::fs::read(&req).unwrap());
    let ocsp = b64.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D");
    let urls = [
        ("crl", format!("{}/crls/{issuing}_v1/current.crl", server.url)),
        ("aia", format!("{}/cacerts/{issuing}_v1/cert.cer", server.url)),
        ("ocsp", format!("{}/ocsp/{ocsp}", server.url)),
    ];
    for (kind, url) in urls {
        let deadline = Instant::now() + Duration::from_secs(10);
        let get = loop {
            let r = curl("GET", &url, None, &[]);
            if r.status == 200 {
                break r;
            }
            assert!(Instant::now() < deadline, "{kind}: {} on GET {url}", r.status);
            std::thread::sleep(Duration::from_millis(100));
        };
        let (status, headers) = head(&url);
        assert_eq!(status, 200, "{kind}");
        let h = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        assert_eq!(
            h("content-length"),
            Some(get.body.len().to_string().as_str()),
            "{kind}: {headers:?}"
        );
        for name in ["content-type", "etag", "cache-control", "last-modified"] {
            assert_eq!(h(name), get.header(name), "{kind}: {name}");
        }
    }
}

// ---------------------------------------------------------------- defect 7

#[test]
fn audit_events_carry_a_readable_activity_for_every_kind() {
    let env = Env::new();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    assert!(env.run(&["--public-url", &url, "init"]).status.success());
    let new_kek = env.path("next.kek");
    std::fs::write(
        &new_kek,
        cloudpki::secrets::Kek::generate().unwrap().to_base64().as_bytes(),
    )
    .unwrap();
    let mut cfg = env.serve_config(port);
    cfg.open.next_kek_files = vec![new_kek.clone()];
    let server = env.start_server_cfg(cfg);
    assert!(env
        .run(&[
            "role",
            "assign",
            "--principal",
            "alice",
            "--role",
            "Intune Administrator"
        ])
        .status
        .success());
    let a = Api {
        admin: token(&env, "alice", &[RW]),
        env,
        server,
    };
    let (_, issuing) = a.hierarchy(&[]);
    a.ok("PATCH", &ca_path(&issuing), Some(json!({"description": "audited"})));
    let leaf = id(&a.ok(
        "POST",
        &format!("{}/issueLeafCertificate", ca_path(&issuing)),
        Some(json!({"certificateSigningRequest": a.csr("audited")})),
    )["value"]);
    a.ok(
        "PATCH",
        &format!("/cloudCertificationAuthorityLeafCertificate/{leaf}"),
        Some(json!({"deviceName": "x"})),
    );
    let status = format!("{}/changeCloudCertificationAuthorityStatus", ca_path(&issuing));
    a.ok("POST", &status, Some(json!({"certificationAuthorityStatus": "paused"})));
    // A refusal: active leaves remain.
    let revoke_ca = format!("{}/revokeCloudCertificationAuthorityCertificate", ca_path(&issuing));
    assert_eq!(a.call(&a.admin, "POST", &revoke_ca, Some(json!({}))).status, 409);
    a.ok(
        "POST",
        &format!("{}/revokeLeafCertificate", ca_path(&issuing)),
        Some(json!({"leafCertificateId": leaf})),
    );
    a.ok("POST", &revoke_ca, Some(json!({})));
    a.ok("DELETE", &ca_path(&issuing), None);
    // The external-root flow's upload, refused (not a certificate).
    let external = a.ok(
        "POST",
        "/cloudCertificationAuthority",
        Some(
            json!({"cloudCertificationAuthorityType": "issuingCertificationAuthorityWithExternalRoot",
            "commonName": "Audited External", "certificateKeySize": "eCP256"}),
        ),
    );
    let r = a.call(
        &a.admin,
        "POST",
        &format!(
            "{}/uploadExternallySignedCertificationAuthorityCertificate",
            ca_path(&id(&external))
        ),
        Some(json!({"signedCertificate": "not a certificate"})),
    );
    assert_eq!(r.status, 400);
    // KEK rotation (every signer holds the new KEK).
    let out = a
        .env
        .run(&["kek", "rotate", "--new-kek-file", new_kek.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let events = a.ok("GET", "/auditEvents?$top=999", None)["value"]
        .as_array()
        .unwrap()
        .clone();
    let mut seen = std::collections::BTreeMap::new();
    for e in &events {
        let kind = e["activityType"].as_str().unwrap();
        let activity = e["activity"].as_str().unwrap_or("");
        assert!(!activity.is_empty(), "empty activity: {e}");
        assert_ne!(
            activity, kind,
            "the activity is a readable name, not the type again: {e}"
        );
        assert!(
            activity.chars().next().unwrap().is_uppercase()
                && activity.split(' ').count() >= 2
                && activity.chars().all(|c| c.is_alphanumeric() || " -".contains(c)),
            "not readable: {activity:?}"
        );
        seen.insert(kind.to_owned(), activity.to_owned());
    }
    for (kind, want) in [
        ("Create CloudCertificationAuthority", "Create certification authority"),
        ("Patch CloudCertificationAuthority", "Update certification authority"),
        ("Delete CloudCertificationAuthority", "Delete certification authority"),
        (
            "ChangeCloudCertificationAuthorityStatusAsync CloudCertificationAuthority",
            "Change certification authority status",
        ),
        (
            "RevokeCloudCertificationAuthorityCertificateAsync CloudCertificationAuthority",
            "Revoke certification authority certificate",
        ),
        (
            "UploadExternallySignedCertificationAuthorityCertificateAsync CloudCertificationAuthority",
            "Upload externally signed certification authority certificate",
        ),
        (
            "RevokeLeafCertAsync CloudCertificationAuthorityLeafCertificate",
            "Revoke leaf certificate",
        ),
        (
            "IssueLeafCertificate CloudCertificationAuthorityLeafCertificate",
            "Issue leaf certificate",
        ),
        (
            "Patch CloudCertificationAuthorityLeafCertificate",
            "Update leaf certificate",
        ),
        ("kekRotationStarted", "Start key-encryption key rotation"),
        ("kekRotationCompleted", "Complete key-encryption key rotation"),
    ] {
        assert_eq!(seen.get(kind).map(String::as_str), Some(want), "{kind}: {seen:?}");
    }
    // Why a change was refused is kept beside the result.
    let refused = events
        .iter()
        .find(|e| e["activityResult"] == "failure" && e["activityType"].as_str().unwrap().starts_with("RevokeCloud"))
        .unwrap();
    assert!(
        refused["activityResultDetail"]
            .as_str()
            .unwrap()
            .contains("active leaf"),
        "{refused}"
    );
}

// ---------------------------------------------------------------- defect 8

/// Runs the CLI on a pseudo-terminal (stdin, stdout and stderr), answering
/// `answer` to a `[y/N]` prompt if one appears; returns (exit code, output).
fn on_terminal(env: &Env, args: &[&str], answer: &str) -> (i32, String) {
    let script = r#"
import os, pty, sys
answer, argv = sys.argv[1], sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
out, sent = b"", False
while True:
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    out += data
    if not sent and b"[y/N]" in out:
        os.write(fd, (answer + "\n").encode())
        sent = True
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(answer)
        .arg(crate::support::BIN)
        .arg("--data-dir")
        .arg(env.data_dir())
        .args(args)
        .env_remove("CLOUDPKI_KEK")
        .env_remove("CLOUDPKI_PUBLIC_URL")
        .env_remove("CLOUDPKI_DATA_DIR")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn status_of(env: &Env, ca: &str) -> String {
    env.json(&["ca", "show", ca])["certificationAuthorityStatus"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn irreversible_cli_commands_ask_for_confirmation_on_a_terminal() {
    let env = Env::new();
    let (root, issuing) = env.ec_hierarchy("Prompt");
    // Pause says what keeps working.
    let out = env.run(&["ca", "pause", &issuing]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for what in ["CRL", "AIA", "OCSP", "issu"] {
        assert!(text.contains(what), "pause output names {what}: {text}");
    }

    // ca revoke: "n" changes nothing, "y" revokes.
    let (code, text) = on_terminal(&env, &["ca", "revoke", &issuing], "n");
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains("[y/N]") && text.contains("Prompt Issuing") && text.contains("irreversible"),
        "{text}"
    );
    assert_eq!(status_of(&env, &issuing), "paused");
    let (code, text) = on_terminal(&env, &["ca", "revoke", &issuing], "y");
    assert_eq!(code, 0, "{text}");
    assert_eq!(status_of(&env, &issuing), "revoked");

    // ca delete: "n" keeps it, --yes skips the question.
    let (code, text) = on_terminal(&env, &["ca", "delete", &issuing], "n");
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("[y/N]"), "{text}");
    assert_eq!(status_of(&env, &issuing), "revoked");
    let (code, text) = on_terminal(&env, &["ca", "delete", "--yes", &issuing], "n");
    assert_eq!(code, 0, "{text}");
    assert!(!text.contains("[y/N]"), "{text}");
    assert!(!env.run(&["ca", "show", &issuing]).status.success(), "deleted");

    // cert revoke-all: "n" revokes nothing, "y" revokes every leaf.
    let other = id(&env.create_ca(&[
        "--type",
        "issuing",
        "--issuer",
        &root,
        "--common-name",
        "Prompt Issuing 2",
        "--key-size",
        "eCP256",
    ]));
    let csr = env.openssl_csr("prompt", &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"], "/CN=prompt");
    for _ in 0..2 {
        env.json(&["cert", "issue", "--ca", &other, "--csr", csr.to_str().unwrap()]);
    }
    let active = |env: &Env| {
        env.json(&["cert", "list", "--ca", &other, "--status", "active"])["value"]
            .as_array()
            .unwrap()
            .len()
    };
    let (code, text) = on_terminal(&env, &["cert", "revoke-all", "--ca", &other], "n");
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("[y/N]") && text.contains('2'), "{text}");
    assert_eq!(active(&env), 2);
    let (code, text) = on_terminal(&env, &["cert", "revoke-all", "--ca", &other], "y");
    assert_eq!(code, 0, "{text}");
    assert_eq!(active(&env), 0);

    // Scripts (no terminal) are unchanged: no question, it happens.
    env.json(&["ca", "pause", &other]);
    let out = env.run(&["ca", "revoke", &other]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("[y/N]"));
    assert!(env.run(&["ca", "delete", &other]).status.success());
    assert!(env.run(&["ca", "delete", &root]).status.success());
}
