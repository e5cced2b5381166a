//! CA engine throughput on a real (file-backed, synchronous=FULL) store:
//! leaf issuance per second for P-256 and RSA-2048 CAs, and durable
//! revocations per second, one per transaction and batched.
//!
//! Partitioned CRLs at 1M certificates with 100k revoked, over the default
//! 16 partitions (6,250 entries each): re-signing the one partition a
//! revocation touches, rebuilding all 16, and the bytes each entry costs.
//!
//! Run: `cargo bench --bench engine` (criterion prints time per element;
//! elements/s is its reciprocal, shown as "thrpt").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use cloudpki::config::{self, OpenOptions};
use cloudpki::domain::{CaType, HashAlgorithm, KeyAlgorithm, NewCa, NewLeaf, Pki, RevocationReason};
use cloudpki::x509::names::SubjectParts;
use cloudpki::x509::{csr, oids, SoftwareKey};

struct Fixture {
    _dir: tempfile::TempDir,
    pki: Pki,
    issuing: String,
    request: NewLeaf,
}

fn fixture(key: KeyAlgorithm) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let pki = config::open(&OpenOptions::new(dir.path().join("data"))).unwrap();
    let ca = |ca_type, cn: &str, issuer: Option<String>| NewCa {
        ca_type,
        display_name: None,
        description: None,
        subject: SubjectParts {
            common_name: cn.into(),
            ..Default::default()
        },
        issuer_id: issuer,
        key_size: key,
        hash: HashAlgorithm::Sha256,
        // The issuing CA must end before its root; created a moment later, it would not.
        validity_years: if ca_type == CaType::RootCertificationAuthority {
            10
        } else {
            5
        },
        ekus: vec![],
        role_scope_tag_ids: vec![],
        crl_partitions: None,
        delta_crls: false,
    };
    let root = pki
        .create_ca(ca(CaType::RootCertificationAuthority, "Bench Root", None))
        .unwrap();
    let issuing = pki
        .create_ca(ca(
            CaType::IssuingCertificationAuthority,
            "Bench Issuing",
            Some(root.id),
        ))
        .unwrap();
    let (device_key, _) = SoftwareKey::generate(KeyAlgorithm::EcP256, HashAlgorithm::Sha256).unwrap();
    let subject = SubjectParts {
        common_name: "bench-device".into(),
        ..Default::default()
    }
    .to_name()
    .unwrap();
    let request = NewLeaf {
        csr: csr::build_ca_request(&subject, &device_key, &[oids::KP_CLIENT_AUTH]).unwrap(),
        ..Default::default()
    };
    Fixture {
        _dir: dir,
        pki,
        issuing: issuing.id,
        request,
    }
}

fn issuance(c: &mut Criterion) {
    let mut g = c.benchmark_group("issue_leaf");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(1));
    for key in [KeyAlgorithm::EcP256, KeyAlgorithm::Rsa2048] {
        let f = fixture(key);
        // One leaf per durable transaction: CSR check, signature, fsync.
        g.bench_function(BenchmarkId::new("durable_each", key.name()), |b| {
            b.iter(|| f.pki.issue_leaf(&f.issuing, &f.request).unwrap())
        });
    }
    g.finish();
    let mut g = c.benchmark_group("issue_leaf_bulk");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(1000));
    for key in [KeyAlgorithm::EcP256, KeyAlgorithm::Rsa2048] {
        let f = fixture(key);
        // 1000 leaves committed in one transaction: signing-bound.
        g.bench_function(BenchmarkId::new("batch_1000", key.name()), |b| {
            b.iter(|| {
                f.pki
                    .issue_leaves_bulk(&f.issuing, &f.request, 1000, 1000, &mut |_| {})
                    .unwrap()
            })
        });
    }
    g.finish();
}

/// Ids of active leaves to revoke, topped up outside the timed region.
struct Pool {
    f: Fixture,
    ids: Vec<String>,
}

impl Pool {
    fn take(&mut self, n: usize) -> Vec<String> {
        while self.ids.len() < n {
            let mut fresh = Vec::new();
            self.f
                .pki
                .issue_leaves_bulk(&self.f.issuing, &self.f.request, 5000, 5000, &mut |done| {
                    fresh.extend(done.iter().map(|l| l.id.clone()))
                })
                .unwrap();
            self.ids.extend(fresh);
        }
        self.ids.split_off(self.ids.len() - n)
    }
}

fn revocation(c: &mut Criterion) {
    let mut pool = Pool {
        f: fixture(KeyAlgorithm::EcP256),
        ids: Vec::new(),
    };
    let mut g = c.benchmark_group("revoke_leaf");
    g.sample_size(20).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(1));
    g.bench_function("durable_each", |b| {
        b.iter_custom(|iters| {
            let ids = pool.take(iters as usize);
            let start = Instant::now();
            for id in &ids {
                pool.f
                    .pki
                    .revoke_leaf(id, None, RevocationReason::KeyCompromise)
                    .unwrap();
            }
            start.elapsed()
        })
    });
    const BATCH: usize = 100;
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("durable_batch_100", |b| {
        b.iter_custom(|iters| {
            let ids = pool.take(iters as usize * BATCH);
            let start = Instant::now();
            for chunk in ids.chunks(BATCH) {
                pool.f
                    .pki
                    .revoke_leaves(chunk, RevocationReason::KeyCompromise)
                    .unwrap();
            }
            start.elapsed()
        })
    });
    g.finish();
}

/// A partition's CRL as the CRL owner publishes it: through `Pki::sign_crl`
/// (the CA and its numbers read from the store, the number from the
/// reserved block, signed, checked before publication).
fn crl_partitions(c: &mut Criterion) {
    use cloudpki::store::CrlScopeKey;
    use cloudpki::x509::crl::CrlEntries;

    const REVOKED: u32 = 100_000;
    const PARTITIONS: u32 = 16;
    let f = fixture(KeyAlgorithm::EcP256);
    let now = time::OffsetDateTime::now_utc();
    // 16-byte serials like the issued ones (top bit clear), spread as the
    // serial-derived partition spreads them.
    let serial = |i: u32| {
        let mut s = [0x5au8; 16];
        s[0] = 0x3c;
        s[12..].copy_from_slice(&i.to_be_bytes());
        s
    };
    let mut partitions = vec![CrlEntries::new(); PARTITIONS as usize];
    for i in 0..REVOKED {
        let p = cloudpki::domain::crl_partition_of(&serial(i), PARTITIONS);
        partitions[(p - 1) as usize]
            .push(&serial(i), now, RevocationReason::KeyCompromise)
            .unwrap();
    }
    let one = &partitions[0];
    let sign = |p: u32, entries: &CrlEntries| {
        f.pki
            .sign_crl(&f.issuing, CrlScopeKey::complete(p), None, entries, None)
            .unwrap()
    };
    // Bytes per entry: the CRL with its entries minus the same CRL empty.
    let full = sign(1, one).der.len();
    let empty = sign(1, &CrlEntries::new()).der.len();
    eprintln!(
        "crl_partitions: {} entries in partition 1 of {PARTITIONS}; {} bytes per entry with a reason code; {} KB",
        one.len(),
        (full - empty) as f64 / one.len() as f64,
        full / 1024
    );
    let mut g = c.benchmark_group("crl_partitions_1m_100k_revoked");
    g.sample_size(20).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(1));
    g.bench_function("resign_one_partition", |b| b.iter(|| sign(1, one).der.len()));
    g.throughput(Throughput::Elements(u64::from(PARTITIONS)));
    g.bench_function("rebuild_all_partitions", |b| {
        b.iter(|| {
            (1..=PARTITIONS)
                .map(|p| sign(p, &partitions[(p - 1) as usize]).der.len())
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, issuance, revocation, crl_partitions);
criterion_main!(benches);
