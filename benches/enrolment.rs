//! SCEP enrolment on one core: a device's PKCSReq answered end to end
//! (`enrol::operate`: parse and verify the CMS, open the envelope with the
//! RA's RSA key, decide against the profile and challenge, issue and
//! pre-sign the leaf's OCSP answers, commit to SQLite (synchronous=FULL),
//! and build the enveloped, RA-signed CertRep), for an RSA-2048 and a P-256
//! issuing CA; and each stage alone, to show where the time goes.
//!
//! Run: `cargo bench --bench enrolment` (time per enrolment; enrolments/s
//! is its reciprocal). Devices' own work (their key, CSR and signature)
//! happens in the untimed setup of each iteration.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};

use cloudpki::config::{self, OpenOptions};
use cloudpki::domain::{CaType, EnrolRequest, HashAlgorithm, KeyAlgorithm, NewCa, NewChallenge, NewProfile, Pki};
use cloudpki::enrol::limit::{EnrolLimits, Rate};
use cloudpki::enrol::{Enrolment, Operated};
use cloudpki::x509::names::SubjectParts;
use cloudpki::x509::scep::{self, device, ClientRequest, ContentCipher, MessageType};
use cloudpki::x509::SoftwareKey;

struct Fixture {
    _dir: tempfile::TempDir,
    pki: Arc<Pki>,
    scep: Enrolment,
    issuing: String,
    challenge: String,
    device_key: SoftwareKey,
    device_cert: x509_cert::Certificate,
    ra_cert: x509_cert::Certificate,
}

fn fixture(key: KeyAlgorithm) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(config::open(&OpenOptions::new(dir.path().join("data"))).unwrap());
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
        .unwrap()
        .id;
    let profile = pki
        .create_profile(&NewProfile {
            ca_id: issuing.clone(),
            name: "bench".into(),
            key_types: vec![KeyAlgorithm::Rsa2048],
            cn_suffixes: vec![],
            dns_suffixes: vec![],
            ekus: vec![],
            validity_days: 365,
            renewal_days: 30,
            requires_approval: false,
            key_usages: vec![],
        })
        .unwrap();
    let challenge = pki
        .create_challenge(&NewChallenge {
            profile_id: profile.id,
            uses: 1_000_000,
            valid_for: Duration::from_secs(86_400),
            device_id: None,
            subject: None,
        })
        .unwrap()
        .secret;
    let ras = pki.scep_ra(&issuing).unwrap().unwrap();
    let ra = ras.current().unwrap();
    let (device_key, _) = SoftwareKey::generate(KeyAlgorithm::Rsa2048, HashAlgorithm::Sha256).unwrap();
    let device_cert = device::self_signed(&device_key, "bench-device").unwrap();
    // Unlimited: the bench is one source and one challenge.
    let off = Rate {
        per_second: 0.0,
        burst: 1.0,
    };
    let scep = Enrolment::new(
        pki.clone(),
        EnrolLimits {
            per_source: off,
            per_challenge: off,
        },
    );
    Fixture {
        _dir: dir,
        pki,
        scep,
        issuing,
        challenge,
        device_key,
        device_cert,
        ra_cert: ra.cert.clone(),
    }
}

impl Fixture {
    /// A fresh PKCSReq (a new transaction and nonce: replays are refused).
    fn message(&self, n: u64) -> Vec<u8> {
        let csr = device::csr(&self.device_key, "bench-device", Some(&self.challenge)).unwrap();
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&n.to_be_bytes());
        nonce[8..].copy_from_slice(&std::process::id().to_be_bytes().repeat(2));
        scep::client_request(&ClientRequest {
            message_type: MessageType::PkcsReq,
            inner: &csr,
            signer: &self.device_key,
            signer_cert: &self.device_cert,
            ra_cert: &self.ra_cert,
            transaction_id: &format!("T{n}"),
            sender_nonce: nonce,
            cipher: ContentCipher::Aes128,
        })
        .unwrap()
    }
}

fn enrolment(c: &mut Criterion) {
    let mut g = c.benchmark_group("scep");
    g.sample_size(30).measurement_time(Duration::from_secs(8));
    for (label, key) in [("rsa2048-ca", KeyAlgorithm::Rsa2048), ("p256-ca", KeyAlgorithm::EcP256)] {
        let f = fixture(key);
        let mut n = 0u64;
        g.bench_function(format!("enrol/{label}"), |b| {
            b.iter_batched(
                || {
                    n += 1;
                    f.message(n)
                },
                |m| match f.scep.operate(&f.issuing, &m).unwrap() {
                    Operated::CertRep(rep) => assert_eq!(scep::reply_status(&rep).unwrap().0, "0"),
                    other => panic!("{other:?}"),
                },
                BatchSize::SmallInput,
            )
        });
        if key != KeyAlgorithm::Rsa2048 {
            continue;
        }
        // The stages of one enrolment (RSA-2048 CA).
        let ras = f.pki.scep_ra(&f.issuing).unwrap().unwrap();
        let ra = ras.current().unwrap();
        let keys = [(&ra.cert, &ra.decryptor)];
        let sample = f.message(u64::MAX);
        g.bench_function("stage/parse-and-verify", |b| b.iter(|| scep::parse(&sample).unwrap()));
        let parsed = scep::parse(&sample).unwrap();
        let content = parsed.verified.clone().unwrap();
        g.bench_function("stage/open-envelope", |b| {
            b.iter(|| scep::open(&content, &keys).unwrap())
        });
        let (csr, _, _) = scep::open(&content, &keys).unwrap();
        g.bench_function(format!("stage/decide-issue-commit/{label}"), |b| {
            b.iter_batched(
                || {
                    n += 1;
                    EnrolRequest {
                        csr: csr.to_vec(),
                        renewing: None,
                        challenge: None,
                        authorised_profile: None,
                        transaction_id: format!("S{n}"),
                        nonce: Some(n.to_be_bytes().repeat(2)),
                        protocol: "scep",
                    }
                },
                |r| match f.pki.enrol(&f.issuing, &r).unwrap() {
                    cloudpki::domain::EnrolOutcome::Issued(done) => done,
                    other => panic!("{other:?}"),
                },
                BatchSize::SmallInput,
            )
        });
        let issued = vec![der::Encode::to_der(&f.device_cert).unwrap()];
        g.bench_function("stage/cert-rep", |b| {
            b.iter(|| {
                scep::cert_rep(
                    &ra.key,
                    &ra.cert,
                    &parsed.header,
                    scep::Reply::Success {
                        certs: &issued,
                        cipher: ContentCipher::Aes128,
                    },
                    f.pki.now(),
                )
                .unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, enrolment);
criterion_main!(benches);
