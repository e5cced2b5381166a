//! Responder hot path and snapshot maintenance:
//! - the per-request path: `GET /ocsp/…` decoded, the request read and the
//!   answer found, at 10k and 1M certificates in one CA (10M with
//!   `CLOUDPKI_BENCH_10M=1`: ~2 GB and a minute to build), on the
//!   allocation-free path every plain request takes and on the general one;
//! - one revocation applied to a 1M-certificate snapshot: the persistent map
//!   we use (imbl) against copying a std HashMap, the alternative it replaced;
//! - CRL signing at 10k / 100k / 1M entries.
//!
//! Run: `cargo bench --bench responder`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use der::Encode;

use cloudpki::snapshot::{AiaDocument, CaState, CertState, SerialKey, Snapshot};
use cloudpki::x509::crl::{self, CrlEntries};
use cloudpki::x509::names::SubjectParts;
use cloudpki::x509::ocsp::{self, CertIdHash, IssuerHashes, Status};
use cloudpki::x509::{cert, HashAlgorithm, KeyAlgorithm, SoftwareKey};

const N: u32 = 1_000_000;

fn serial(i: u32) -> [u8; 16] {
    let mut s = [0x5au8; 16];
    s[12..].copy_from_slice(&i.to_be_bytes());
    s
}

fn state(i: u32) -> CertState {
    // ~300-byte bodies like a P-256 response; content is irrelevant to lookup cost.
    state_with(&Bytes::from(vec![i as u8; 300]))
}

fn state_with(body: &Bytes) -> CertState {
    // Both answers ready, as after a SHA-256 question was first answered.
    CertState::new(Status::Good, 0, 1, body, Some(body.clone()))
}

/// A snapshot with one CA holding `n` certificates, and that CA's certificate.
fn snapshot(n: u32) -> (Snapshot, x509_cert::Certificate, SoftwareKey) {
    let (key, _) = SoftwareKey::generate(KeyAlgorithm::EcP256, HashAlgorithm::Sha256).unwrap();
    let name = SubjectParts {
        common_name: "Bench CA".into(),
        ..Default::default()
    }
    .to_name()
    .unwrap();
    let now = time::OffsetDateTime::now_utc();
    let der = cert::issue(
        &cert::CertRequest {
            serial: vec![1],
            subject: name.clone(),
            issuer: name,
            issuer_key_id: cert::key_identifier(cloudpki::x509::Signer::public_key(&key)),
            public_key: cloudpki::x509::Signer::public_key(&key).clone(),
            not_before: now,
            not_after: now + time::Duration::days(365),
            role: cert::CertRole::Ca { path_len: Some(0) },
            key_usage: cert::ca_key_usage(),
            ekus: vec![],
            pointers: None,
            subject_alt_name: None,
        },
        &key,
    )
    .unwrap();
    let ca_cert: x509_cert::Certificate = der::Decode::from_der(&der).unwrap();
    // One shared SHA-256 body; each state holds its own SHA-1 copy, as served.
    let body = Bytes::from(vec![0x30; 300]);
    let certs = cloudpki::snapshot::CertMap::from_entries(
        (0..n)
            .map(|i| (SerialKey::new(&serial(i)).unwrap(), state_with(&body)))
            .collect(),
    );
    let hashes: Vec<IssuerHashes> = CertIdHash::ALL
        .iter()
        .map(|h| IssuerHashes::of(&ca_cert, *h).unwrap())
        .collect();
    let id: Arc<str> = "bench".into();
    let mut issuers = cloudpki::snapshot::Issuers::default();
    for h in &hashes {
        issuers.insert(h.key_hash.clone(), id.clone());
    }
    let ca = CaState {
        id: id.clone(),
        version: 1,
        status: cloudpki::domain::CaStatus::Active,
        cert_der: AiaDocument::new(Bytes::from(der)),
        cert_pem: AiaDocument::new(Bytes::new()),
        chain_p7c: AiaDocument::new(Bytes::new()),
        hashes,
        crls: Default::default(),
        crl_partitions: 0,
        delta_crls: false,
        partitions_json: AiaDocument::new(Bytes::from_static(b"[]")),
        certs,
        responder: None,
    };
    let mut snap = Snapshot::empty();
    snap.cas.insert(id, Arc::new(ca));
    snap.issuers = Arc::new(issuers);
    snap.ready = true;
    (snap, ca_cert, key)
}

fn request(ca_cert: &x509_cert::Certificate, i: u32) -> Vec<u8> {
    let id = IssuerHashes::of(ca_cert, CertIdHash::Sha1)
        .unwrap()
        .cert_id(&serial(i))
        .unwrap();
    x509_ocsp::OcspRequest {
        tbs_request: x509_ocsp::TbsRequest {
            version: x509_ocsp::Version::V1,
            requestor_name: None,
            request_list: vec![x509_ocsp::Request {
                req_cert: id,
                single_request_extensions: None,
            }],
            request_extensions: None,
        },
        optional_signature: None,
    }
    .to_der()
    .unwrap()
}

fn ocsp_lookup(c: &mut Criterion) {
    let mut sizes = vec![(10_000u32, "10k"), (N, "1m")];
    if std::env::var("CLOUDPKI_BENCH_10M").is_ok() {
        sizes.push((10_000_000, "10m"));
    }
    let mut g = c.benchmark_group("ocsp");
    g.throughput(Throughput::Elements(1))
        .measurement_time(Duration::from_secs(5));
    for (n, label) in sizes {
        let (snap, ca_cert, _) = snapshot(n);
        let reqs: Vec<Vec<u8>> = (0..1024).map(|i| request(&ca_cert, (i * 977) % n)).collect();
        let paths: Vec<String> = reqs
            .iter()
            .map(|r| <base64ct::Base64 as base64ct::Encoding>::encode_string(r).replace('/', "%2F"))
            .collect();
        let mut i = 0;
        // The decoder alone, on paths escaped as clients send them (OpenSSL
        // and curl escape `+`, `/` and `=`).
        let escaped: Vec<String> = reqs
            .iter()
            .map(|r| {
                <base64ct::Base64 as base64ct::Encoding>::encode_string(r)
                    .replace('+', "%2B")
                    .replace('/', "%2F")
                    .replace('=', "%3D")
            })
            .collect();
        g.bench_function(BenchmarkId::new("get_path_decode", label), |b| {
            b.iter(|| {
                i = (i + 1) % escaped.len();
                let mut buf = [0u8; 1024];
                cloudpki::http::responder::decode_get_path_into(&escaped[i], &mut buf)
                    .unwrap()
                    .len()
            })
        });
        // What every plain GET costs us before hyper writes the answer.
        g.bench_function(BenchmarkId::new("get_path_decode_lookup", label), |b| {
            b.iter(|| {
                i = (i + 1) % paths.len();
                let mut buf = [0u8; 1024];
                let der = cloudpki::http::responder::decode_get_path_into(&paths[i], &mut buf).unwrap();
                let q = ocsp::parse_simple(der).unwrap();
                snap.answer_simple(&q, 0).unwrap().0.len()
            })
        });
        g.bench_function(BenchmarkId::new("post_decode_lookup", label), |b| {
            b.iter(|| {
                i = (i + 1) % reqs.len();
                let q = ocsp::parse_simple(&reqs[i]).unwrap();
                snap.answer_simple(&q, 0).unwrap().0.len()
            })
        });
        // The general path (nonces, several CertIDs, unknown serials).
        g.bench_function(BenchmarkId::new("general_decode_lookup", label), |b| {
            b.iter(|| {
                i = (i + 1) % reqs.len();
                let parsed = ocsp::parse_request(&reqs[i]).unwrap();
                match snap.answer_ocsp(&parsed, 0) {
                    cloudpki::snapshot::OcspDecision::Ready { body, .. } => body.len(),
                    other => panic!("expected a pre-signed answer, got {other:?}"),
                }
            })
        });
    }
    g.finish();
}

fn snapshot_update(c: &mut Criterion) {
    let (snap, _, _) = snapshot(N);
    let std_map: HashMap<SerialKey, CertState> = (0..N)
        .map(|i| (SerialKey::new(&serial(i)).unwrap(), state(i)))
        .collect();
    let mut g = c.benchmark_group("snapshot_update_1m");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    let revoked = CertState::new(
        Status::Revoked {
            at: time::OffsetDateTime::now_utc(),
            reason: cloudpki::x509::RevocationReason::KeyCompromise,
        },
        0,
        1,
        state(7).sha1(),
        None,
    );
    // What the maintainer does per revocation: copy the CA state, insert, publish a new snapshot.
    g.bench_function("persistent_map_imbl", |b| {
        b.iter_batched(
            || snap.clone(),
            |mut s| {
                let ca = s.cas.get("bench").unwrap();
                let mut ca = CaState::clone(ca);
                ca.certs.insert(SerialKey::new(&serial(7)).unwrap(), revoked.clone());
                s.cas.insert(ca.id.clone(), Arc::new(ca));
                Arc::new(s)
            },
            BatchSize::SmallInput,
        )
    });
    // The change that folds the tree of recent changes into a new packed
    // array (one in N/8 at most): O(n), on the maintainer's thread.
    g.sample_size(10);
    // States allocated in random serial order, as issuance makes them (the
    // bench's own snapshot allocates them in serial order: the fold then
    // reads memory in sequence, which real maps do not).
    let shuffled = {
        let mut order: Vec<u32> = (0..N).collect();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for i in (1..order.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        cloudpki::snapshot::CertMap::from_entries(
            order
                .into_iter()
                .map(|i| (SerialKey::new(&serial(i)).unwrap(), state(i)))
                .collect(),
        )
    };
    g.bench_function("certmap_fold_random_allocation", |b| {
        b.iter_batched(
            || {
                let mut certs = shuffled.clone();
                for i in 0..N / 8 {
                    certs.insert(SerialKey::new(&serial(i * 8)).unwrap(), revoked.clone());
                }
                certs
            },
            |mut certs| {
                certs.fold();
                certs
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("certmap_fold", |b| {
        b.iter_batched(
            || {
                let mut certs = snap.cas.get("bench").unwrap().certs.clone();
                for i in 0..N / 8 - 1 {
                    certs.insert(SerialKey::new(&serial(i * 8)).unwrap(), revoked.clone());
                }
                certs
            },
            |mut certs| {
                certs.insert(SerialKey::new(&serial(7)).unwrap(), revoked.clone());
                certs.fold();
                certs
            },
            BatchSize::PerIteration,
        )
    });
    g.sample_size(20);
    // The alternative: copy-on-write of a plain HashMap, O(n) per change.
    g.bench_function("std_hashmap_copy", |b| {
        b.iter(|| {
            let mut m = std_map.clone();
            m.insert(SerialKey::new(&serial(7)).unwrap(), revoked.clone());
            Arc::new(m)
        })
    });
    g.finish();
}

fn crl_build(c: &mut Criterion) {
    let (_, ca_cert, key) = snapshot(1);
    let now = time::OffsetDateTime::now_utc();
    let params = |number| crl::CrlParams {
        issuer: &ca_cert.tbs_certificate.subject,
        issuer_key_id: &[1; 20],
        number,
        this_update: now,
        next_update: now + time::Duration::days(7),
        distribution_point: "http://127.0.0.1:8180/crls/bench_v1/current.crl",
        only_ca_certs: false,
        delta_base: None,
        freshest_crl: None,
    };
    let mut g = c.benchmark_group("crl_sign");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for n in [10_000u32, 100_000, 1_000_000] {
        let mut entries = CrlEntries::new();
        for i in 0..n {
            entries
                .push(&serial(i), now, cloudpki::x509::RevocationReason::KeyCompromise)
                .unwrap();
        }
        g.throughput(Throughput::Elements(u64::from(n)));
        g.bench_with_input(BenchmarkId::from_parameter(n), &entries, |b, entries| {
            b.iter(|| crl::sign_crl(&params(1), entries, &key).unwrap().len())
        });
    }
    g.finish();
    // The check before publication: parse back, verify, compare entries.
    let mut g = c.benchmark_group("crl_check");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for n in [10_000u32, 100_000] {
        let mut entries = CrlEntries::new();
        for i in 0..n {
            entries
                .push(&serial(i), now, cloudpki::x509::RevocationReason::KeyCompromise)
                .unwrap();
        }
        let params = params(2);
        let der = crl::sign_crl(&params, &entries, &key).unwrap();
        g.throughput(Throughput::Elements(u64::from(n)));
        g.bench_with_input(BenchmarkId::from_parameter(n), &der, |b, der| {
            b.iter(|| {
                crl::check_crl(
                    der,
                    &crl::CrlExpectation {
                        params: &params,
                        issuer_key: cloudpki::x509::Signer::public_key(&key),
                        entries: &entries,
                        newest_published: Some(1),
                    },
                )
                .unwrap()
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("crl_entry_append");
    g.throughput(Throughput::Elements(1));
    let mut entries = CrlEntries::new();
    let mut i = 0u32;
    g.bench_function("push", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            entries
                .push(&serial(i), now, cloudpki::x509::RevocationReason::KeyCompromise)
                .unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, ocsp_lookup, snapshot_update, crl_build);
criterion_main!(benches);
