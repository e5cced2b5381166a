//! The server as an operator runs it: graceful shutdown with requests in
//! flight, SIGTERM, slow clients.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{free_port, Env};

/// A data directory initialised for a server on a free port.
fn initialised() -> (Env, u16) {
    let env = Env::new();
    let port = free_port();
    assert!(env
        .run(&["--public-url", &format!("http://127.0.0.1:{port}"), "init"])
        .status
        .success());
    (env, port)
}

#[test]
fn shutdown_finishes_requests_in_flight() {
    let (env, port) = initialised();
    let server = env.start_server(port);
    // A request whose body is still arriving when shutdown starts.
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = b"not an OCSP request, but a complete body";
    write!(
        conn,
        "POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    conn.write_all(&body[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let stopping = std::thread::spawn(move || server.stop());
    std::thread::sleep(Duration::from_millis(300));
    // New connections are refused once the listener is closed...
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "listener still accepting during shutdown"
    );
    // ...but the request in flight completes.
    conn.write_all(&body[10..]).unwrap();
    let mut response = Vec::new();
    let _ = conn.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        response.ends_with(&[0x30, 0x03, 0x0a, 0x01, 0x01]),
        "malformedRequest answer: {text}"
    );
    stopping.join().unwrap();
}

/// A connection that has not sent a whole head has no request to finish,
/// so shutdown does not wait for it (regression: the first head read ahead
/// of hyper held a graceful-shutdown watcher until the header timeout).
#[test]
fn connections_without_a_request_do_not_hold_shutdown() {
    let (env, port) = initialised();
    let server = env.start_server(port);
    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut partial = TcpStream::connect(("127.0.0.1", port)).unwrap();
    partial.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    server.stop();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown waited {:?} for connections without a request",
        started.elapsed()
    );
    for conn in [&mut silent, &mut partial] {
        conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut got = Vec::new();
        let _ = conn.read_to_end(&mut got);
        assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    }
}

#[test]
fn sigterm_stops_the_binary_cleanly() {
    let env = Env::new();
    let port = free_port();
    let child = env
        .command()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "exit status {:?}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("listening on http://127.0.0.1:{port}")),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("shutting down"));
}

#[test]
fn slow_headers_are_cut_off() {
    let (env, port) = initialised();
    let limits = cloudpki::http::Limits {
        header_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let server = env.start_server_with(port, limits);
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap(); // never finished
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = conn.read_to_end(&mut buf);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a slow client held the connection for {:?}",
        started.elapsed()
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    // An idle keep-alive connection is closed as well.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut first = [0u8; 512];
    let n = idle.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = idle.read_to_end(&mut rest);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "an idle connection stayed open {:?}",
        started.elapsed()
    );
    server.stop();
}

/// A connection's first head is read before hyper takes the connection
/// (`http::early`): whatever way it arrives, in pieces, pipelined, with bare
/// LFs or with a body behind it, hyper gets every byte, in order.
#[test]
fn a_first_head_read_ahead_reaches_hyper_whole() {
    let (env, port) = initialised();
    let server = env.start_server_with(port, cloudpki::http::Limits::default());
    let exchange = |pieces: &[&[u8]], answers: usize| -> String {
        let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        for piece in pieces {
            conn.write_all(piece).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut got = String::new();
        let mut buf = [0u8; 4096];
        while got.matches("HTTP/1.1 ").count() < answers || !got.ends_with("ok\n") {
            let n = conn.read(&mut buf).unwrap();
            assert!(n > 0, "closed after {got:?}");
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        got
    };
    // A byte at a time, the empty line split over two writes.
    let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let bytes: Vec<&[u8]> = head.chunks(1).collect();
    let one = exchange(&bytes, 1);
    assert!(
        one.starts_with("HTTP/1.1 200 OK\r\n") && one.ends_with("\r\n\r\nok\n"),
        "{one}"
    );
    // Two requests in one write: both answered, in order.
    let two = exchange(
        &[b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"],
        2,
    );
    assert_eq!(two.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{two}");
    // Bare LFs end a head as httparse reads them.
    let lf = exchange(&[b"GET /healthz HTTP/1.1\nHost: x\n\n"], 1);
    assert!(lf.starts_with("HTTP/1.1 200 OK\r\n"), "{lf}");
    // A body behind the head, split where the head ends: an OCSP POST of
    // garbage is answered malformedRequest, so hyper read the body whole.
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(
        b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\nContent-Length: 4\r\n\r\nab",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    conn.write_all(b"cd").unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.ends_with(&[0x30, 0x03, 0x0a, 0x01, 0x01]) {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200 OK\r\n"));
    server.stop();
}

/// Bad PostgreSQL TLS settings stop `serve` before it binds a port, with a
/// message that names the setting and never the URL's password.
#[test]
fn serve_refuses_an_unreadable_sslrootcert_before_binding() {
    let env = Env::new();
    let port = free_port();
    let url = "postgres://cloudpki:s3cret@127.0.0.1:1/pki?sslmode=verify-full&sslrootcert=/nonexistent/root.pem";
    let out = env
        .command()
        .args(["serve", "--role", "responder", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--database", url])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "a configuration error: {stderr}");
    assert!(
        stderr.contains("invalid database settings: sslrootcert /nonexistent/root.pem: cannot read it"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).is_empty(), "it listened");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

/// A configuration that names a file it cannot use serves nothing: exit 2,
/// a clear message, no port bound, nothing printed as listening.
#[test]
fn configuration_is_validated_before_any_port_is_bound() {
    let (env, port) = initialised();
    let config = env.path("serve.toml");
    std::fs::write(
        &config,
        "[[oidc_issuers]]\nissuer = \"https://login.example/t\"\naudience = \"api://cloudpki\"\njwks_file = \"/nonexistent/jwks.json\"\n",
    )
    .unwrap();
    let out = env
        .command()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/nonexistent/jwks.json"), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening"),
        "it listened"
    );
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    // A wrong key-encryption key: exit 2 as well.
    let out = env
        .command()
        .env("CLOUDPKI_KEK", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// glibc keeps the pages a burst of connections freed (the soak's RSS grew
/// +146 % after its attack minutes); the allocator-trim thread gives them
/// back. Measured by the binary's own RSS, as an operator sees it.
#[test]
fn memory_of_a_burst_of_connections_is_given_back() {
    let (env, port) = initialised();
    let config = env.path("serve.toml");
    std::fs::write(&config, "allocator_trim_seconds = 1\n").unwrap();
    let mut child = env
        .command()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let get = |path: &str, pad: usize| -> (TcpStream, String) {
        let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let padding = "p".repeat(pad);
        write!(conn, "GET {path} HTTP/1.1\r\nHost: x\r\nX-Pad: {padding}\r\n\r\n").unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut text = String::new();
        // Health answers fit one read; /metrics is read until its end.
        loop {
            let n = conn.read(&mut buf).unwrap_or(0);
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            if n == 0 || path != "/metrics" || text.contains("allocator_trim_duration_seconds_count") {
                break;
            }
        }
        (conn, text)
    };
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "the server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = child.id();
    std::thread::sleep(Duration::from_millis(2500));
    let before = rss_kb(pid);
    // 1,500 clients, each with a request whose headers grow hyper's read
    // buffer, all held open at once.
    let held: Vec<TcpStream> = (0..1500)
        .map(|_| {
            let (conn, text) = get("/healthz", 12_000);
            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
            conn
        })
        .collect();
    let peak = rss_kb(pid);
    drop(held);
    std::thread::sleep(Duration::from_millis(3500));
    let after = rss_kb(pid);
    eprintln!("RSS {before} kB before the burst, {peak} kB during, {after} kB after");
    let (_, metrics) = get("/metrics", 0);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        peak > before + 6 * 1024,
        "the burst did not grow the server (RSS {before} -> {peak} kB): the test shows nothing"
    );
    assert!(
        after < before + (peak - before) / 3,
        "RSS {before} kB before the burst, {peak} kB during, {after} kB after: not given back"
    );
    let released = metrics
        .lines()
        .find(|l| l.starts_with("cloudpki_allocator_trims_total{released=\"true\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(released.is_some_and(|n| n >= 1), "{metrics}");
}
