//! Signature verification throughput (criterion): `cargo bench --bench dsig`.
//!
//! Packages of about 20 KB, 200 KB and 5 MB (one PDF-like attachment each), signed by the
//! test PKI's RSA-2048 signer (agency 000.00.00.G12) with Exclusive C14N and SHA-256,
//! verified end to end as the hub does: edXML parse and validation, canonicalization and
//! digest of the whole document, RSA verification of SignedInfo, path validation to the root
//! with the issuing CA's CRL, and the signer's binding to the sender in the agency directory.
//! Also canonicalization alone, and path validation alone.

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use truc::directory::Directory;
use truc::dsig::c14n::{Canonicalizer, Method, NodeSet};
use truc::dsig::{Keys, SelfCheck, Signer, verify_package};
use truc::edxml::build::{self, NewAttachment};
use truc::edxml::{self, AgencyId, Options, Package};
use truc::pki::{Certificate, CrlStore, Purpose, RevocationPolicy, TrustStore};
use truc::xml::{Document, Limits};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn certs(name: &str) -> Vec<Certificate> {
    Certificate::load(&root().join(format!("certs-test/{name}.pem"))).unwrap()
}

fn package(size: usize, options: &Options) -> Vec<u8> {
    let base =
        std::fs::read(root().join("tests/fixtures/valid/edoc_new_2recipients.edxml")).unwrap();
    let Package::Edoc(e) = edxml::parse(&base, options).unwrap().into_package() else {
        panic!("fixture is an edoc")
    };
    // Incompressible-looking payload: base64 of it is 4/3 of its size.
    let mut data = b"%PDF-1.7\n".to_vec();
    let mut x: u32 = 0x1234_5678;
    while data.len() < size * 3 / 4 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data.extend_from_slice(&x.to_le_bytes());
    }
    let att = NewAttachment {
        content_id: None,
        name: "attachment.pdf".into(),
        description: None,
        content_type: "application/pdf".into(),
        data,
    };
    let mut header = e.header.clone();
    header.from.id = AgencyId::parse("000.00.00.G12").unwrap();
    let built = build::edoc(&header, &e.trace, &[att], options.today).unwrap();
    // The signer's file carries its chain.
    let chain = certs("agencies/000.00.00.G12/sign");
    let key = std::fs::read(root().join("certs-test/agencies/000.00.00.G12/sign.key")).unwrap();
    Signer::from_pem(&key, chain)
        .unwrap()
        .sign_package(&built.bytes, options)
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let today = jiff::civil::date(2026, 11, 23);
    let now: jiff::Timestamp = "2026-11-23T12:00:00Z".parse().unwrap();
    let options = Options::strict(today);
    let crls = CrlStore::open(vec![root().join("certs-test/crl")]).unwrap();
    let trust = TrustStore::new(certs("root-ca"), Vec::new())
        .with_revocation(Arc::new(crls), RevocationPolicy::default());
    let directory = Directory::load(&root().join("certs-test/directory.toml")).unwrap();
    let keys = Keys {
        trust: trust.clone(),
        directory: Some(Arc::new(directory)),
        ..Keys::default()
    };
    let sizes = [("20k", 20_000), ("200k", 200_000), ("5m", 5_000_000)];
    let packages: Vec<(&str, Vec<u8>)> = sizes
        .iter()
        .map(|&(label, size)| (label, package(size, &options)))
        .collect();
    // The whole acceptance check: edXML parse and validation (attachments decoded and
    // hashed) plus the signature under the package policy.
    let mut g = c.benchmark_group("verify_package");
    for (label, bytes) in &packages {
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.sample_size(if bytes.len() > 1_000_000 { 20 } else { 100 });
        g.bench_with_input(BenchmarkId::from_parameter(label), bytes, |b, bytes| {
            b.iter(|| verify_package(bytes, &options, &keys, false, now).unwrap())
        });
    }
    g.finish();
    // Parsing and validating alone (attachments decoded and hashed), no signature check.
    let mut g = c.benchmark_group("parse");
    for (label, bytes) in &packages {
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.sample_size(if bytes.len() > 1_000_000 { 20 } else { 100 });
        g.bench_with_input(BenchmarkId::from_parameter(label), bytes, |b, bytes| {
            b.iter(|| edxml::parse(bytes, &options).unwrap())
        });
    }
    g.finish();
    // The acceptance receipt as the hub signs one per package: build, sign with the hub's
    // ECDSA P-256 key (exclusive c14n, SHA-256), check the profile. `acceptance_sign` is the
    // hub's signer (`SelfCheck::Canonical`); `acceptance_sign_verified` the default self-check,
    // which verifies the new signature as well.
    let mut g = c.benchmark_group("receipt");
    let key = std::fs::read(root().join("certs-test/hub/receipt.key")).unwrap();
    let (_, small) = &packages[0];
    let verified = verify_package(small, &options, &keys, false, now).unwrap();
    let verdict = truc::receipt::VerdictSummary::from_report(verified.report());
    for (name, check) in [
        ("acceptance_sign", SelfCheck::Canonical),
        ("acceptance_sign_verified", SelfCheck::Verify),
    ] {
        let receipt_signer = Signer::from_pem(&key, certs("hub/receipt"))
            .unwrap()
            .with_self_check(check);
        g.bench_function(name, |b| {
            b.iter(|| {
                let r = truc::hub::receipts::acceptance(
                    "truc-bench",
                    truc::store::MessageId(0x0123_4567_89ab_cdef),
                    "000.00.00.G12",
                    vec!["000.00.00.H29".into(), "000.00.00.H41".into()],
                    Some("000.00.00.G12,2026/11/23,1/BENCH".into()),
                    truc::edxml::model::Sha256::of(small),
                    verdict.clone(),
                    now,
                );
                truc::receipt::sign(&r, &receipt_signer).unwrap()
            })
        });
    }
    g.finish();
    // The signature alone (`truc dsig verify --strict`): XML parse, c14n, digest, RSA, chain.
    let mut g = c.benchmark_group("verify_signature");
    for (label, bytes) in &packages {
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.sample_size(if bytes.len() > 1_000_000 { 20 } else { 100 });
        g.bench_with_input(BenchmarkId::from_parameter(label), bytes, |b, bytes| {
            b.iter(|| {
                let v = truc::dsig::verify(bytes, &keys, &truc::dsig::Policy::strict(), now);
                assert!(v.report().is_some());
            })
        });
    }
    g.finish();

    // Path validation alone, as each acceptance pays it: links cached after the first
    // package, validity, constraints and the CRL lookup on every call.
    let mut g = c.benchmark_group("trust");
    let chain = certs("agencies/000.00.00.G12/sign");
    g.bench_function("validate_signer_with_crl", |b| {
        b.iter(|| {
            trust
                .validate(&chain[0], &chain[1..], Purpose::Signer, false, now)
                .unwrap()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("c14n_exclusive_document");
    let (label, bytes) = &packages[1];
    let doc = Document::parse(bytes, &Limits::default()).unwrap();
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function(*label, |b| {
        b.iter(|| {
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            Canonicalizer::new(Method::Exclusive).canonicalize(
                &doc,
                &NodeSet::document(),
                &mut ctx,
            );
            ctx.finish()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
