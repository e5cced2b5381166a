//! Enrolment load generator for `load-tests/enrolment.sh`: devices enrolling
//! by SCEP (PKCSReq over POST) or EST (simpleenroll over TLS) against a
//! running server, `--concurrency` at a time on keep-alive connections.
//!
//! The devices' own work (key, self-signed certificate, CSR, the SCEP
//! envelope and signature) is done before the clock starts, so the run
//! measures the server. Prints one JSON line: count, seconds, per second,
//! latency percentiles, failures.
//!
//!   cargo run --release --example enrol_load -- scep URL RA.der CHALLENGE COUNT CONCURRENCY
//!   cargo run --release --example enrol_load -- est URL TLS-CA.pem CHALLENGE COUNT CONCURRENCY
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use der::Decode;
use http_body_util::{BodyExt, Full};

use cloudpki::x509::scep::{self, device, ClientRequest, ContentCipher, MessageType};
use cloudpki::x509::{HashAlgorithm, KeyAlgorithm, SoftwareKey};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (kind, url, trust, challenge, count, concurrency, est_key) = match &args[..] {
        [k, u, t, c, n, p] => (k, u, t, c, n, p, "ec"),
        [k, u, t, c, n, p, key] => (k, u, t, c, n, p, key.as_str()),
        _ => {
            eprintln!("usage: enrol_load scep|est URL RA.der|TLS-CA.pem CHALLENGE COUNT CONCURRENCY [rsa|ec]");
            std::process::exit(2);
        }
    };
    let (count, concurrency): (usize, usize) = (count.parse().unwrap(), concurrency.parse().unwrap());
    let est = match kind.as_str() {
        "scep" => false,
        "est" => true,
        _ => panic!("scep or est"),
    };
    let started = Instant::now();
    let bodies = prepare(est, est_key == "rsa", trust, challenge, count);
    eprintln!("{count} requests prepared in {:.1} s", started.elapsed().as_secs_f64());

    let url: http::Uri = url.parse().unwrap();
    let host = format!("{}:{}", url.host().unwrap(), url.port_u16().unwrap());
    let path = if est {
        format!("{}/.well-known/est/simpleenroll", url.path())
    } else {
        format!("{}?operation=PKIOperation", url.path())
    };
    let tls = est.then(|| tls_connector(trust));
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("load:{challenge}"))
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let bodies = Arc::new(bodies);
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(count)));
    let failures = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (next, bodies, latencies, failures) =
                (next.clone(), bodies.clone(), latencies.clone(), failures.clone());
            let (host, path, auth, tls) = (host.clone(), path.clone(), auth.clone(), tls.clone());
            tasks.push(tokio::spawn(async move {
                let tcp = tokio::net::TcpStream::connect(&host).await.unwrap();
                tcp.set_nodelay(true).unwrap();
                let is_est = tls.is_some();
                let mut sender = match tls {
                    None => handshake(tcp).await,
                    Some(c) => {
                        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
                        handshake(c.connect(name, tcp).await.unwrap()).await
                    }
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= bodies.len() {
                        break;
                    }
                    let mut req = http::Request::post(&path).header(http::header::HOST, &host).header(
                        http::header::CONTENT_TYPE,
                        if is_est {
                            "application/pkcs10"
                        } else {
                            "application/x-pki-message"
                        },
                    );
                    if is_est {
                        req = req.header(http::header::AUTHORIZATION, &auth);
                    }
                    let req = req.body(Full::new(Bytes::from(bodies[i].clone()))).unwrap();
                    let sent = Instant::now();
                    let resp = sender.send_request(req).await.unwrap();
                    let status = resp.status();
                    let body = resp.into_body().collect().await.unwrap().to_bytes();
                    let ok =
                        status == 200 && (is_est || scep::reply_status(&body).map(|(s, _)| s == "0").unwrap_or(false));
                    if ok {
                        latencies.lock().unwrap().push(sent.elapsed());
                    } else {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let seconds = t0.elapsed().as_secs_f64();
    let mut l = latencies.lock().unwrap().clone();
    l.sort();
    let pct = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{{\"kind\":\"{kind}\",\"ok\":{},\"failures\":{},\"seconds\":{seconds:.3},\"per_second\":{:.1},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2}}}",
        l.len(),
        failures.load(Ordering::Relaxed),
        l.len() as f64 / seconds,
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(pct(1.0)),
    );
}

async fn handshake<S>(io: S) -> hyper::client::conn::http1::SendRequest<Full<Bytes>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

fn tls_connector(ca_pem: &str) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ca_pem).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// The request bodies: a PKCSReq per device (SCEP: one RSA device key,
/// each request its own transaction, nonce and subject), or a base64 CSR
/// (EST: one P-256 key, or RSA-2048 where the CA's key is no stronger,
/// each request its own subject). The server's work does not depend on
/// whether devices share a key.
fn prepare(est: bool, est_rsa: bool, trust: &str, challenge: &str, count: usize) -> Vec<Vec<u8>> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let ra = (!est).then(|| x509_cert::Certificate::from_der(&std::fs::read(trust).unwrap()).unwrap());
    let (rsa, _) = SoftwareKey::generate(KeyAlgorithm::Rsa2048, HashAlgorithm::Sha256).unwrap();
    let rsa = Arc::new(rsa);
    let est_key = if est_rsa {
        rsa.clone()
    } else {
        Arc::new(
            SoftwareKey::generate(KeyAlgorithm::EcP256, HashAlgorithm::Sha256)
                .unwrap()
                .0,
        )
    };
    let chunks: Vec<Vec<usize>> = (0..threads).map(|t| (t..count).step_by(threads).collect()).collect();
    let out: Vec<Vec<(usize, Vec<u8>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|idx| {
                let (ra, rsa, est_key) = (ra.clone(), rsa.clone(), est_key.clone());
                s.spawn(move || {
                    idx.into_iter()
                        .map(|i| {
                            let cn = format!("load-{i}.devices.example");
                            let body = match &ra {
                                Some(ra) => {
                                    let cert = device::self_signed(&rsa, &cn).unwrap();
                                    let csr = device::csr(&rsa, &cn, Some(challenge)).unwrap();
                                    let mut nonce = [0u8; 16];
                                    nonce[..8].copy_from_slice(&(i as u64).to_be_bytes());
                                    nonce[8..].copy_from_slice(&std::process::id().to_be_bytes().repeat(2));
                                    scep::client_request(&ClientRequest {
                                        message_type: MessageType::PkcsReq,
                                        inner: &csr,
                                        signer: &rsa,
                                        signer_cert: &cert,
                                        ra_cert: ra,
                                        transaction_id: &format!("LOAD-{}-{i}", std::process::id()),
                                        sender_nonce: nonce,
                                        cipher: ContentCipher::Aes128,
                                    })
                                    .unwrap()
                                }
                                None => {
                                    let csr = device::csr(&est_key, &cn, None).unwrap();
                                    base64::engine::general_purpose::STANDARD.encode(csr).into_bytes()
                                }
                            };
                            (i, body)
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all: Vec<(usize, Vec<u8>)> = out.into_iter().flatten().collect();
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, b)| b).collect()
}
