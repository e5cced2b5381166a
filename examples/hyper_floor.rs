//! The floor of the OCSP path through hyper, for `load-tests/ocsp-vs-nginx.sh`:
//! a server with cloudpki's hyper configuration (http1 builder, no hyper
//! timer, each connection's first head read before hyper takes it, the
//! connection watchdog for header read and idle timeouts, `TCP_NODELAY`,
//! one worker) that does no OCSP work at all. A GET is answered by one hash
//! lookup of its path in the answers that cloudpki gave for the same
//! requests; a POST's body is read and the one canned answer sent back, as
//! nginx does. Whatever this server cannot beat nginx by, cloudpki cannot
//! either while it keeps hyper: the measured distance between the two is
//! all that our own code costs.
//!
//!   cargo run --release --example hyper_floor -- ADDR GETLIST STATIC_DIR
//!
//! GETLIST is the fixture's reqs/get.txt (URL suffixes after /ocsp/);
//! STATIC_DIR the tree `load-tests/lib/fetch_static.py` wrote (expect/NNNN.der
//! answers request NNNN, ocsp-post.der every POST).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cloudpki::http::{early, watchdog};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

struct Answers {
    get: HashMap<String, Bytes>,
    post: Bytes,
}

async fn answer(answers: Arc<Answers>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = if req.method() == Method::POST {
        // Read the request as cloudpki must, then answer without looking at it.
        let _ = req.into_body().collect().await;
        Some(answers.post.clone())
    } else {
        answers.get.get(req.uri().path()).cloned()
    };
    let response = match body {
        Some(b) => Response::builder()
            .header("content-type", "application/ocsp-response")
            .body(Full::new(b)),
        None => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::new())),
    };
    Ok(response.expect("static response"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, getlist, dir] = &args[..] else {
        eprintln!("usage: hyper_floor ADDR GETLIST STATIC_DIR");
        std::process::exit(2);
    };
    let mut get = HashMap::new();
    for (n, suffix) in std::fs::read_to_string(getlist).unwrap().split_whitespace().enumerate() {
        let body = std::fs::read(format!("{dir}/expect/{n:04}.der")).unwrap();
        get.insert(format!("/ocsp/{suffix}"), Bytes::from(body));
    }
    let post = Bytes::from(std::fs::read(format!("{dir}/ocsp-post.der")).unwrap());
    let answers = Arc::new(Answers { get, post });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr.as_str()).await.unwrap();
        eprintln!("hyper_floor on {addr}: {} GET answers", answers.get.len());
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .header_read_timeout(None)
            .max_buf_size(64 * 1024)
            .keep_alive(true);
        let timeout = Duration::from_secs(10);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let answers = answers.clone();
            let activity = watchdog::Activity::new();
            let (watched, activity_conn) = (activity.clone(), activity.clone());
            let builder = builder.clone();
            let connection = async move {
                // As cloudpki: hyper gets the connection once a head is in.
                let mut stream = stream;
                let Some(early) = early::read_head(&mut stream).await else {
                    return;
                };
                let io = TokioIo::new(watchdog::Watched::new(stream, early, activity_conn));
                let conn = builder.serve_connection(
                    io,
                    service_fn(move |req: Request<Incoming>| {
                        watched.advance();
                        // cloudpki's POSTs are answered later, under a busy mark.
                        let busy = (req.method() == Method::POST).then(|| watched.busy());
                        let answers = answers.clone();
                        async move {
                            let answered = answer(answers, req).await;
                            drop(busy);
                            answered
                        }
                    }),
                );
                let _ = conn.await;
            };
            watchdog::spawn(
                connection,
                activity,
                timeout / 8, // within the first quarter, as cloudpki's first ticks
                timeout,
            );
        }
    });
}
