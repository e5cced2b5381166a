//! Security regressions: authorization per role assignment, scope tags,
//! token revocation, bounded request bodies, and validators that never let
//! a cache keep stale revocation data.
//!
//! Each test is named after the hole it closes and failed before the fix.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::api::{api, error_code, token, Api, RW};
use crate::support::{curl, openssl, Env};

/// Creates a custom role.
fn role(a: &Api, name: &str, perms: &[&str]) {
    let mut args = vec!["role", "create", "--name", name];
    for p in perms {
        args.extend_from_slice(&["--permission", p]);
    }
    let out = a.env.run(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Assigns `role` to `principal` on `tags`.
fn assign(a: &Api, principal: &str, role: &str, tags: &[&str]) {
    let mut args = vec!["role", "assign", "--principal", principal, "--role", role];
    for t in tags {
        args.extend_from_slice(&["--scope-tag", t]);
    }
    let out = a.env.run(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

const READ: &str = "Read CAs";
const CREATE: &str = "Create certificate authorities";
const PAUSE: &str = "Disable and reenable CAs";
const REVOKE: &str = "Revoke issued leaf certificates";

/// The model the server must follow, written independently of it: a
/// permission applies on the scope tags of the assignment that grants it.
struct Oracle<'a> {
    grants: &'a [(&'a [&'a str], &'a [&'a str])],
}

impl Oracle<'_> {
    fn allows(&self, perm: &str, tags: &[&str]) -> bool {
        self.grants
            .iter()
            .any(|(perms, on)| perms.contains(&perm) && tags.iter().any(|t| on.contains(t)))
    }

    /// Expected status of an operation needing `perms` on a CA tagged `tags`.
    fn expect(&self, perms: &[&str], tags: &[&str], ok: u16) -> u16 {
        if !self.allows(READ, tags) {
            // Hidden by scope tags: exactly like a CA that does not exist...
            // unless the caller holds some permission nowhere at all (403 before any lookup).
            let holds_all = perms.iter().all(|p| self.grants.iter().any(|(ps, _)| ps.contains(p)));
            return if holds_all { 404 } else { 403 };
        }
        if perms.iter().all(|p| self.allows(p, tags)) {
            ok
        } else {
            403
        }
    }
}

fn issue_leaf(a: &Api, ca: &str, name: &str) -> String {
    a.ok(
        "POST",
        &format!("/cloudCertificationAuthority/{ca}/issueLeafCertificate"),
        Some(json!({"certificateSigningRequest": a.csr(name)})),
    )["value"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn leaf_status(a: &Api, leaf: &str) -> String {
    a.ok(
        "GET",
        &format!("/cloudCertificationAuthorityLeafCertificate/{leaf}"),
        None,
    )["certificateStatus"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn role_assignments_are_merged_across_scope_tags() {
    let a = api();
    // Issuing CAs on tag 0, tag 7, and on both.
    let (_, ca0) = a.hierarchy(&["0"]);
    let (_, ca7) = a.hierarchy(&["7"]);
    let (_, ca07) = a.hierarchy(&["0", "7"]);
    let cas: [(&str, &[&str]); 3] = [(&ca0, &["0"]), (&ca7, &["7"]), (&ca07, &["0", "7"])];
    for (name, perms) in [
        ("R", &[READ][..]),
        ("V", &[REVOKE][..]),
        ("RV", &[READ, REVOKE][..]),
        ("RP", &[READ, PAUSE][..]),
        ("RC", &[READ, CREATE][..]),
    ] {
        role(&a, name, perms);
    }
    // Principals holding several assignments; the first is the issue's reproduction.
    type Grants<'a> = &'a [(&'a str, &'a [&'a str], &'a [&'a str])];
    let principals: [(&str, Grants<'_>); 4] = [
        ("split", &[("R", &[READ], &["7"]), ("V", &[REVOKE], &["0"])]),
        (
            "two",
            &[("RV", &[READ, REVOKE], &["0"]), ("RP", &[READ, PAUSE], &["7"])],
        ),
        ("creator7", &[("RC", &[READ, CREATE], &["7"]), ("R", &[READ], &["0"])]),
        ("pauser0", &[("RP", &[READ, PAUSE], &["0"]), ("V", &[REVOKE], &["7"])]),
    ];
    let mut checked = 0;
    for (who, grants) in principals {
        for (role, _, tags) in grants {
            assign(&a, who, role, tags);
        }
        let model: Vec<(&[&str], &[&str])> = grants.iter().map(|(_, p, t)| (*p, *t)).collect();
        let oracle = Oracle { grants: &model };
        let t = token(&a.env, who, &[RW]);
        for (ca, tags) in cas {
            let path = format!("/cloudCertificationAuthority/{ca}");
            // Read.
            let r = a.call(&t, "GET", &path, None);
            let want = oracle.expect(&[READ], tags, 200);
            assert_eq!(
                r.status,
                want,
                "{who} GET {tags:?}: {}",
                String::from_utf8_lossy(&r.body)
            );
            if want == 200 {
                assert_eq!(serde_json::from_slice::<Value>(&r.body).unwrap()["id"], ca);
            } else {
                assert!(
                    !String::from_utf8_lossy(&r.body).contains("scope tags"),
                    "no hint of existence"
                );
            }
            // Revoke a leaf by id: on success it is revoked; otherwise it stays good.
            let leaf = issue_leaf(&a, ca, &format!("{who}-{checked}"));
            let r = a.call(
                &t,
                "POST",
                &format!("{path}/revokeLeafCertificate"),
                Some(json!({"leafCertificateId": leaf})),
            );
            let want = oracle.expect(&[READ, REVOKE], tags, 200);
            assert_eq!(
                r.status,
                want,
                "{who} revoke on {tags:?}: {}",
                String::from_utf8_lossy(&r.body)
            );
            let expected_status = if want == 200 { "revoked" } else { "active" };
            assert_eq!(leaf_status(&a, &leaf), expected_status, "{who} revoke on {tags:?}");
            // Pause, then the administrator resumes.
            let r = a.call(
                &t,
                "POST",
                &format!("{path}/changeCloudCertificationAuthorityStatus"),
                Some(json!({"certificationAuthorityStatus": "paused"})),
            );
            let want = oracle.expect(&[READ, PAUSE], tags, 200);
            assert_eq!(r.status, want, "{who} pause on {tags:?}");
            let status = a.ok("GET", &path, None)["certificationAuthorityStatus"].clone();
            assert_eq!(
                status,
                if want == 200 { "paused" } else { "active" },
                "{who} pause on {tags:?}"
            );
            if want == 200 {
                a.ok(
                    "POST",
                    &format!("{path}/changeCloudCertificationAuthorityStatus"),
                    Some(json!({"certificationAuthorityStatus": "active"})),
                );
            }
            // Issue a leaf (Read + Create).
            let r = a.call(
                &t,
                "POST",
                &format!("{path}/issueLeafCertificate"),
                Some(json!({"certificateSigningRequest": a.csr(&format!("{who}-issue-{checked}"))})),
            );
            assert_eq!(
                r.status,
                oracle.expect(&[READ, CREATE], tags, 201),
                "{who} issue on {tags:?}"
            );
            checked += 4;
        }
    }
    assert_eq!(checked, 4 * 3 * 4);
}

#[test]
fn an_issuing_ca_cannot_be_anchored_to_a_root_the_caller_cannot_see() {
    let a = api();
    let (root7, _) = a.hierarchy(&["7"]);
    role(&a, "RC", &[READ, CREATE]);
    role(&a, "R", &[READ]);
    role(&a, "RC2", &[READ, CREATE]);
    assign(&a, "c0", "RC", &["0"]);
    assign(&a, "c0r7", "RC", &["0"]);
    assign(&a, "c0r7", "R", &["7"]);
    assign(&a, "c07", "RC", &["0"]);
    assign(&a, "c07", "RC2", &["7"]);
    let body = |cn: &str| {
        json!({"cloudCertificationAuthorityType": "issuingCertificationAuthority", "certificationAuthorityIssuerId": root7,
            "commonName": cn, "certificateKeySize": "eCP256", "roleScopeTagIds": ["0"]})
    };
    let count = || a.ok("GET", "/cloudCertificationAuthority?$count=true", None)["@odata.count"].clone();
    let before = count();
    // Cannot see the root: 404, as for a root that does not exist.
    let r = a.call(
        &token(&a.env, "c0", &[RW]),
        "POST",
        "/cloudCertificationAuthority",
        Some(body("Hidden Anchor")),
    );
    assert_eq!((r.status, error_code(&r).as_str()), (404, "ResourceNotFound"));
    let r = a.call(
        &token(&a.env, "c0", &[RW]),
        "POST",
        "/cloudCertificationAuthority",
        Some(
            body("Nowhere")
                .as_object()
                .cloned()
                .map(|mut o| {
                    o.insert("certificationAuthorityIssuerId".into(), json!("no-such-root"));
                    Value::Object(o)
                })
                .unwrap(),
        ),
    );
    assert_eq!(r.status, 404, "an invisible root and a missing one look the same");
    // Sees the root but may not create on its tags: 403.
    let r = a.call(
        &token(&a.env, "c0r7", &[RW]),
        "POST",
        "/cloudCertificationAuthority",
        Some(body("Read Only Anchor")),
    );
    assert_eq!((r.status, error_code(&r).as_str()), (403, "Forbidden"));
    assert_eq!(count(), before, "nothing was created");
    // Create on both tags: allowed, and it chains to the root.
    let r = a.call(
        &token(&a.env, "c07", &[RW]),
        "POST",
        "/cloudCertificationAuthority",
        Some(body("Allowed Anchor")),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let ca: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(ca["certificationAuthorityIssuerId"], json!(root7));
}

#[test]
fn scope_tags_cannot_be_emptied_and_audit_events_are_read_by_scope() {
    let a = api();
    let (root0, ca0) = a.hierarchy(&["0"]);
    let (root7, ca7) = a.hierarchy(&["7"]);
    role(&a, "RC", &[READ, CREATE]);
    assign(&a, "seven", "RC", &["7"]);
    let seven = token(&a.env, "seven", &[RW]);
    // An empty list would move the CA to tag 0, which "seven" does not hold.
    let r = a.call(
        &seven,
        "PATCH",
        &format!("/cloudCertificationAuthority/{ca7}"),
        Some(json!({"roleScopeTagIds": []})),
    );
    assert_eq!((r.status, error_code(&r).as_str()), (400, "BadRequest"));
    assert_eq!(
        a.ok("GET", &format!("/cloudCertificationAuthority/{ca7}"), None)["roleScopeTagIds"],
        json!(["7"])
    );
    // Nor can it hand out tag 0.
    let r = a.call(
        &seven,
        "PATCH",
        &format!("/cloudCertificationAuthority/{ca7}"),
        Some(json!({"roleScopeTagIds": ["0", "7"]})),
    );
    assert_eq!(r.status, 403);
    // Hidden resources answer 404, not 403.
    let r = a.call(&seven, "GET", &format!("/cloudCertificationAuthority/{ca0}"), None);
    assert_eq!((r.status, error_code(&r).as_str()), (404, "ResourceNotFound"));
    let r = a.call(
        &seven,
        "PATCH",
        &format!("/cloudCertificationAuthority/{ca0}"),
        Some(json!({"displayName": "x"})),
    );
    assert_eq!(r.status, 404);
    // A refused change on a tag-7 CA is an event "seven" reads.
    let r = a.call(
        &seven,
        "POST",
        &format!("/cloudCertificationAuthority/{ca7}/revokeLeafCertificate"),
        Some(json!({"leafCertificateId": "nope"})),
    );
    assert_eq!(r.status, 403);
    // Audit events: "seven" reads those about its CAs only; the administrator all.
    let targets = |t: &str| -> BTreeSet<String> {
        let r = a.call(t, "GET", "/auditEvents?$top=999", None);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        v["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resources"][0]["resourceId"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = targets(&a.admin);
    assert!([&root0, &ca0, &root7, &ca7].iter().all(|c| all.contains(*c)), "{all:?}");
    let mine = targets(&seven);
    assert!(mine.contains(&root7) && mine.contains(&ca7), "{mine:?}");
    assert!(
        !mine.contains(&root0) && !mine.contains(&ca0),
        "events outside tag 7 leaked: {mine:?}"
    );
    // Paging stays consistent with the filter: one event per page, same set.
    let mut paged = BTreeSet::new();
    let mut next = Some(format!("{}{}/auditEvents?$top=1", a.server.url, crate::api::BASE));
    let mut pages = 0;
    while let Some(url) = next {
        let r = curl("GET", &url, None, &[("Authorization", &format!("Bearer {seven}"))]);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        for e in v["value"].as_array().unwrap() {
            paged.insert(e["resources"][0]["resourceId"].as_str().unwrap().to_owned());
        }
        next = v["@odata.nextLink"].as_str().map(str::to_owned);
        pages += 1;
        assert!(pages < 50);
    }
    assert_eq!(paged, mine);
}

fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64ct::Base64UrlUnpadded::decode_vec(payload).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

use base64ct::Encoding as _;

#[test]
fn api_tokens_can_be_revoked_before_they_expire() {
    let a = api();
    let bob = token(&a.env, "alice", &[RW]);
    let jti = jwt_claims(&bob)["jti"].as_str().unwrap().to_owned();
    assert_eq!(a.call(&bob, "GET", "/cloudCertificationAuthority", None).status, 200);
    // Listed by the CLI and the API (never the token itself).
    let listed = a.env.json(&["token", "list"]);
    assert!(
        listed.as_array().unwrap().iter().any(|t| t["id"] == json!(jti)),
        "{listed}"
    );
    let api_list = a.ok("GET", "/cloudPkiApiTokens", None);
    assert!(api_list["value"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["id"] == json!(jti)));
    assert!(!api_list.to_string().contains(&bob), "a listing never returns a token");
    // Revoked by the CLI: the running server refuses it at once.
    let out = a.env.run(&["token", "revoke", &jti]);
    assert!(out.status.success());
    let r = a.call(&bob, "GET", "/cloudCertificationAuthority", None);
    assert_eq!((r.status, error_code(&r).as_str()), (401, "InvalidAuthenticationToken"));
    assert!(String::from_utf8_lossy(&r.body).contains("revoked"));
    // Revoked through the API by an administrator; others may not manage tokens.
    let carol = token(&a.env, "alice", &[RW]);
    let carol_jti = jwt_claims(&carol)["jti"].as_str().unwrap().to_owned();
    role(&a, "R", &[READ]);
    assign(&a, "reader", "R", &["0"]);
    let reader = token(&a.env, "reader", &[RW]);
    let r = a.call(&reader, "POST", &format!("/cloudPkiApiTokens/{carol_jti}/revoke"), None);
    assert_eq!(r.status, 403);
    assert_eq!(a.call(&reader, "GET", "/cloudPkiApiTokens", None).status, 403);
    assert_eq!(a.call(&carol, "GET", "/cloudCertificationAuthority", None).status, 200);
    a.ok("POST", &format!("/cloudPkiApiTokens/{carol_jti}/revoke"), None);
    assert_eq!(a.call(&carol, "GET", "/cloudCertificationAuthority", None).status, 401);
    let listed = a.env.json(&["token", "list"]);
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == json!(carol_jti))
        .unwrap()
        .clone();
    assert_eq!(row["revokedBy"], json!("alice"));
    // Other tokens of the same principal keep working.
    assert_eq!(
        a.call(&a.admin, "GET", "/cloudCertificationAuthority", None).status,
        200
    );
}

#[test]
fn the_first_administrator_token_lives_a_day_in_a_private_file() {
    let env = Env::new();
    let server = env.server();
    let file = env.data_dir().join("admin-token");
    wait_until("the administrator token file", || file.exists());
    let token = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let c = jwt_claims(&token);
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 24 * 3600);
    assert_eq!(c["sub"], json!("admin"));
    let r = curl(
        "GET",
        &format!("{}{}/cloudCertificationAuthority", server.url, crate::api::BASE),
        None,
        &[("Authorization", &format!("Bearer {token}"))],
    );
    assert_eq!(r.status, 200, "the first token works with its role assignment");
    let jti = c["jti"].as_str().unwrap();
    assert!(env.run(&["token", "revoke", jti]).status.success());
    let r = curl(
        "GET",
        &format!("{}{}/cloudCertificationAuthority", server.url, crate::api::BASE),
        None,
        &[("Authorization", &format!("Bearer {token}"))],
    );
    assert_eq!(r.status, 401);
}

#[test]
fn bearer_scheme_is_case_insensitive_and_401_bodies_do_not_echo_jwt_internals() {
    let a = api();
    let url = format!("{}{}/cloudCertificationAuthority", a.server.url, crate::api::BASE);
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let r = curl(
            "GET",
            &url,
            None,
            &[("Authorization", &format!("{scheme} {}", a.admin))],
        );
        assert_eq!(r.status, 200, "{scheme}");
    }
    let mut tampered = a.admin.clone();
    tampered.truncate(tampered.len() - 4);
    tampered.push_str("AAAA");
    let probes = [
        format!("Bearer {tampered}"),
        "Bearer not.a.jwt".to_owned(),
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.".to_owned(),
        "Basic YWxpY2U6cHc=".to_owned(),
        "Bearer".to_owned(),
    ];
    for auth in &probes {
        let r = curl("GET", &url, None, &[("Authorization", auth)]);
        assert_eq!(r.status, 401, "{auth}");
        let text = String::from_utf8_lossy(&r.body).to_string();
        for internal in [
            "InvalidSignature",
            "Base64",
            "InvalidToken",
            "Json",
            "ErrorKind",
            "Utf8",
            "kind:",
        ] {
            assert!(!text.contains(internal), "401 body echoes {internal}: {text}");
        }
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert!(v["error"]["message"].as_str().unwrap().starts_with("the bearer token") || text.contains("required"));
    }
}

#[test]
fn string_properties_have_length_limits() {
    let a = api();
    let long = "x".repeat(cloudpki::api::MAX_DISPLAY_NAME + 1);
    let r = a.call(
        &a.admin,
        "POST",
        "/cloudCertificationAuthority",
        Some(
            json!({"cloudCertificationAuthorityType": "rootCertificationAuthority", "commonName": "Long",
            "certificateKeySize": "eCP256", "displayName": long}),
        ),
    );
    assert_eq!((r.status, error_code(&r).as_str()), (400, "BadRequest"));
    assert!(String::from_utf8_lossy(&r.body).contains("displayName"));
    let (_, ca) = a.hierarchy(&[]);
    let r = a.call(
        &a.admin,
        "PATCH",
        &format!("/cloudCertificationAuthority/{ca}"),
        Some(json!({"description": "d".repeat(cloudpki::api::MAX_DESCRIPTION + 1)})),
    );
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("description"));
    let ok = "y".repeat(cloudpki::api::MAX_DISPLAY_NAME);
    let r = a.call(
        &a.admin,
        "PATCH",
        &format!("/cloudCertificationAuthority/{ca}"),
        Some(json!({"displayName": ok})),
    );
    assert_eq!(r.status, 200);
}

/// One hostile connection kind that holds a slot if the server lets it.
#[derive(Clone, Copy, Debug)]
enum Hostile {
    /// `Content-Length: 100`, then nothing.
    StalledBody,
    /// A body trickled one byte every 400 ms.
    TrickledBody,
    /// Headers that never end.
    HeaderFlood,
    /// A stalled body on the API, without a token: refused before any read.
    StalledApiBody,
}

fn hostile(port: u16, kind: Hostile) -> Option<std::thread::JoinHandle<(Duration, String)>> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    Some(std::thread::spawn(move || {
        let started = Instant::now();
        let head: &[u8] = match kind {
            Hostile::StalledBody | Hostile::TrickledBody => {
                b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\nContent-Length: 100\r\n\r\n"
            }
            Hostile::HeaderFlood => b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n",
            Hostile::StalledApiBody => {
                b"POST /beta/deviceManagement/cloudCertificationAuthority HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            }
        };
        let _ = s.write_all(head);
        if let Hostile::TrickledBody = kind {
            let _ = s.set_nonblocking(false);
            for _ in 0..100 {
                if s.write_all(b"0").is_err() {
                    break;
                }
                // Stop trickling once the server answered.
                s.set_read_timeout(Some(Duration::from_millis(400))).ok();
                let mut peek = [0u8; 1];
                match s.peek(&mut peek) {
                    Ok(_) => break,
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => break,
                }
            }
            s.set_read_timeout(Some(Duration::from_secs(60))).ok();
        }
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        (
            started.elapsed(),
            String::from_utf8_lossy(&out).lines().next().unwrap_or("").to_owned(),
        )
    }))
}

/// Time until a well-behaved client gets `/healthz` answered.
fn time_to_serve(port: u16, give_up: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < give_up {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(2))).ok();
            if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .is_ok()
            {
                let mut out = Vec::new();
                let _ = s.read_to_end(&mut out);
                if out.starts_with(b"HTTP/1.1 200") {
                    return Some(started.elapsed());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn stalled_and_trickled_bodies_cannot_hold_the_connection_limit() {
    let env = Env::new();
    // The issue's reproduction: 50 connections; default body limits
    // (20 s total, 1 KiB/s over 5 s windows), a short header timeout.
    let server = env.server_adjusted(|cfg| {
        cfg.limits.max_connections = 50;
        cfg.limits.header_timeout = Duration::from_secs(3);
    });
    let port: u16 = server.url.rsplit(':').next().unwrap().parse().unwrap();
    let kinds = [
        Hostile::StalledBody,
        Hostile::TrickledBody,
        Hostile::HeaderFlood,
        Hostile::StalledApiBody,
    ];
    let mut held = Vec::new();
    for i in 0..50 {
        let kind = kinds[i % kinds.len()];
        held.push((kind, hostile(port, kind).expect("connect")));
    }
    std::thread::sleep(Duration::from_millis(300));
    // The slots are full now; a good client gets in once they are freed.
    let waited = time_to_serve(port, Duration::from_secs(30)).expect("a good client was never served");
    eprintln!("a good client was served after {waited:?} with 50 hostile connections holding the limit");
    assert!(waited < Duration::from_secs(10), "served only after {waited:?}");
    for (kind, h) in held {
        let (took, first_line) = h.join().unwrap();
        eprintln!("{kind:?}: closed after {took:?}: {first_line:?}");
        assert!(took < Duration::from_secs(30), "{kind:?} held its slot {took:?}");
        match kind {
            Hostile::StalledBody | Hostile::TrickledBody => {
                assert!(took < Duration::from_secs(8), "{kind:?}: {took:?}");
                assert!(
                    first_line.is_empty() || first_line.starts_with("HTTP/1.1 408"),
                    "{kind:?}: {first_line}"
                );
            }
            Hostile::StalledApiBody => {
                // Refused without reading the body, then closed.
                assert!(first_line.starts_with("HTTP/1.1 401"), "{first_line}");
                assert!(took < Duration::from_secs(2), "{took:?}");
            }
            Hostile::HeaderFlood => assert!(took < Duration::from_secs(5), "{took:?}"),
        }
    }
    // All 50 slots held by stalled bodies alone: a good client waits for the
    // minimum-rate window (5 s), not forever.
    let held: Vec<_> = (0..50)
        .map(|_| hostile(port, Hostile::StalledBody).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let waited = time_to_serve(port, Duration::from_secs(30)).expect("a good client was never served");
    eprintln!("50 stalled bodies at the limit: a good client was served after {waited:?}");
    assert!(waited < Duration::from_secs(8), "served only after {waited:?}");
    for h in held {
        let (took, _) = h.join().unwrap();
        assert!(took < Duration::from_secs(8), "{took:?}");
    }
    // Latency for a normal client once the flood is gone.
    let mut samples: Vec<Duration> = (0..50)
        .map(|_| time_to_serve(port, Duration::from_secs(5)).unwrap())
        .collect();
    samples.sort();
    eprintln!("after the flood: p50 {:?}, max {:?}", samples[25], samples[49]);
    assert!(samples[49] < Duration::from_millis(500));
}

#[test]
fn an_unread_body_closes_its_connection() {
    let env = Env::new();
    let server = env.server();
    let port: u16 = server.url.rsplit(':').next().unwrap().parse().unwrap();
    // A GET with a body that never comes: answered, then the connection
    // is closed (the next request could not be found after it).
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.to_ascii_lowercase().contains("connection: close"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

/// A leaf with its issuing CA, behind a server.
struct Served {
    env: Env,
    server: crate::support::TestServer,
    issuing: String,
    issuing_pem: std::path::PathBuf,
}

fn served() -> Served {
    let env = Env::new();
    let server = env.server();
    // Unpartitioned: every leaf on the one current.crl these tests fetch.
    let (_, issuing) = env.ec_hierarchy_with("V", &["--crl-partitions", "0"]);
    let issuing_pem = env.save(&["ca", "cert", &issuing], "issuing.pem");
    // The CLI is another process: wait until the server follows its commits.
    let aia = format!("{}/cacerts/{issuing}_v1/cert.cer", server.url);
    wait_until("the issuing CA in the snapshot", || {
        curl("GET", &aia, None, &[]).status == 200
    });
    Served {
        env,
        server,
        issuing,
        issuing_pem,
    }
}

fn new_leaf(s: &Served, name: &str) -> (std::path::PathBuf, String) {
    let csr = s.env.openssl_csr(
        name,
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        &format!("/CN={name}"),
    );
    s.env.issue_pem(&s.issuing, &csr, &format!("{name}.pem"))
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn second_granularity_validators_never_serve_stale_revocation_data() {
    let s = served();
    let crl_url = format!("{}/crls/{}_v1/current.crl", s.server.url, s.issuing);
    let (_, first) = new_leaf(&s, "one");
    let (_, second) = new_leaf(&s, "two");
    s.env.json(&["cert", "revoke", "--serial", &first]);
    let has = |body: &[u8], serial: &str| {
        let f = s.env.path("v.crl");
        std::fs::write(&f, body).unwrap();
        openssl(&["crl", "-inform", "DER", "-in", f.to_str().unwrap(), "-noout", "-text"]).contains(serial)
    };
    let mut old = curl("GET", &crl_url, None, &[]);
    wait_until("the first revocation on the CRL", || {
        old = curl("GET", &crl_url, None, &[]);
        has(&old.body, &first)
    });
    // The second revocation, most likely within the same second.
    s.env.json(&["cert", "revoke", "--serial", &second]);
    let mut new = curl("GET", &crl_url, None, &[]);
    wait_until("the second revocation on the CRL", || {
        new = curl("GET", &crl_url, None, &[]);
        has(&new.body, &second)
    });
    let old_lm = old.header("last-modified").unwrap().to_owned();
    let old_etag = old.header("etag").unwrap().to_owned();
    eprintln!(
        "CRL Last-Modified before {old_lm}, after {}",
        new.header("last-modified").unwrap()
    );
    assert_ne!(Some(old_etag.as_str()), new.header("etag"));
    // A cache holding the older CRL revalidates: never a 304.
    for headers in [
        vec![("If-Modified-Since", old_lm.as_str())],
        vec![("If-None-Match", old_etag.as_str())],
        vec![
            ("If-None-Match", old_etag.as_str()),
            ("If-Modified-Since", old_lm.as_str()),
        ],
    ] {
        let r = curl("GET", &crl_url, None, &headers);
        assert_eq!(r.status, 200, "{headers:?}");
        assert!(
            has(&r.body, &second),
            "{headers:?}: the answer lists the second revocation"
        );
    }
    // The current copy revalidates by its ETag.
    let r = curl("GET", &crl_url, None, &[("If-None-Match", new.header("etag").unwrap())]);
    assert_eq!(r.status, 304);

    // OCSP GET: a leaf issued and revoked within a second.
    let (pem, serial) = new_leaf(&s, "quick");
    let req = s.env.path("quick.req");
    openssl(&[
        "ocsp",
        "-issuer",
        s.issuing_pem.to_str().unwrap(),
        "-sha1",
        "-no_nonce",
        "-cert",
        pem.to_str().unwrap(),
        "-reqout",
        req.to_str().unwrap(),
    ]);
    let get = format!(
        "{}/ocsp/{}",
        s.server.url,
        base64ct::Base64::encode_string(&std::fs::read(&req).unwrap())
    );
    // The CLI is another process: wait until the server serves the leaf's
    // pre-signed answer (until then it is an on-demand `unknown`, no dates).
    let mut good = curl("GET", &get, None, &[]);
    wait_until("the pre-signed good answer", || {
        good = curl("GET", &get, None, &[]);
        good.header("last-modified").is_some()
    });
    assert_eq!(good.status, 200);
    s.env.json(&["cert", "revoke", "--serial", &serial]);
    let mut revoked = curl("GET", &get, None, &[]);
    wait_until("the OCSP answer to change", || {
        revoked = curl("GET", &get, None, &[]);
        revoked.header("etag") != good.header("etag")
    });
    let r = curl(
        "GET",
        &get,
        None,
        &[("If-Modified-Since", good.header("last-modified").unwrap())],
    );
    assert_eq!(
        r.status, 200,
        "a 304 here would keep a revoked certificate good in a cache"
    );
    assert_eq!(r.body, revoked.body);
}

#[test]
fn aia_validators_come_from_the_bytes_served() {
    let s = served();
    let base = format!("{}/cacerts/{}_v1", s.server.url, s.issuing);
    let mut etags = BTreeSet::new();
    for file in ["cert.cer", "cert.pem", "chain.p7c"] {
        let url = format!("{base}/{file}");
        let r = curl("GET", &url, None, &[]);
        assert_eq!(r.status, 200);
        assert!(r.header("last-modified").is_none());
        let etag = r.header("etag").unwrap().to_owned();
        assert!(etags.insert(etag.clone()), "{file} shares an ETag: {etag}");
        // No Last-Modified was sent: If-Modified-Since cannot make a 304.
        let r = curl(
            "GET",
            &url,
            None,
            &[("If-Modified-Since", "Fri, 01 Jan 2100 00:00:00 GMT")],
        );
        assert_eq!((r.status, r.body.is_empty()), (200, false), "{file}");
        let r = curl("GET", &url, None, &[("If-None-Match", &etag)]);
        assert_eq!(r.status, 304, "{file}");
    }
}

#[test]
fn ocsp_requests_with_unknown_critical_extensions_are_malformed() {
    let s = served();
    let (pem, _) = new_leaf(&s, "crit");
    let req = s.env.path("crit.req");
    openssl(&[
        "ocsp",
        "-issuer",
        s.issuing_pem.to_str().unwrap(),
        "-cert",
        pem.to_str().unwrap(),
        "-reqout",
        req.to_str().unwrap(),
    ]);
    let der = std::fs::read(&req).unwrap();
    let url = format!("{}/ocsp", s.server.url);
    let post = |body: &[u8]| {
        curl(
            "POST",
            &url,
            Some(body),
            &[("Content-Type", "application/ocsp-request")],
        )
    };
    // As sent (a nonce): successful.
    assert_eq!(response_status(&post(&der).body), 0, "successful");
    for variant in [
        with_request_extension(&der, "1.2.3.4.5", true),
        with_single_extension(&der, "1.2.3.4.6", true),
        with_duplicate_nonce(&der),
    ] {
        let r = post(&variant);
        assert_eq!(r.body, [0x30, 0x03, 0x0a, 0x01, 0x01], "malformedRequest");
    }
    // A non-critical unknown extension is ignored.
    assert_eq!(
        response_status(&post(&with_request_extension(&der, "1.2.3.4.5", false)).body),
        0
    );
}

/// The responseStatus of a DER OCSPResponse.
fn response_status(der: &[u8]) -> u8 {
    assert_eq!(der[0], 0x30);
    let skip = if der[1] < 0x80 {
        2
    } else {
        2 + usize::from(der[1] & 0x7f)
    };
    assert_eq!(&der[skip..skip + 2], &[0x0a, 0x01]);
    der[skip + 2]
}

fn extension(oid: &str, critical: bool, value: &[u8]) -> x509_cert::ext::Extension {
    x509_cert::ext::Extension {
        extn_id: der::asn1::ObjectIdentifier::new_unwrap(oid),
        critical,
        extn_value: der::asn1::OctetString::new(value).unwrap(),
    }
}

fn with_request_extension(der_bytes: &[u8], oid: &str, critical: bool) -> Vec<u8> {
    use der::{Decode, Encode};
    let mut req = x509_ocsp::OcspRequest::from_der(der_bytes).unwrap();
    req.tbs_request
        .request_extensions
        .get_or_insert_with(Vec::new)
        .push(extension(oid, critical, &[0x05, 0x00]));
    req.to_der().unwrap()
}

fn with_single_extension(der_bytes: &[u8], oid: &str, critical: bool) -> Vec<u8> {
    use der::{Decode, Encode};
    let mut req = x509_ocsp::OcspRequest::from_der(der_bytes).unwrap();
    req.tbs_request.request_list[0]
        .single_request_extensions
        .get_or_insert_with(Vec::new)
        .push(extension(oid, critical, &[0x05, 0x00]));
    req.to_der().unwrap()
}

fn with_duplicate_nonce(der_bytes: &[u8]) -> Vec<u8> {
    use der::{Decode, Encode};
    let mut req = x509_ocsp::OcspRequest::from_der(der_bytes).unwrap();
    let nonce = extension("1.3.6.1.5.5.7.48.1.2", false, &[0x04, 0x02, 0xaa, 0xbb]);
    let exts = req.tbs_request.request_extensions.get_or_insert_with(Vec::new);
    exts.push(nonce.clone());
    exts.push(nonce);
    req.to_der().unwrap()
}
