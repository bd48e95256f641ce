//! Per-document costs of the intake pipeline and of signing, by document size:
//! `cargo bench --bench pipeline`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::x509::{X509Builder, X509NameBuilder};

use nsw::loadtest::docgen;
use nsw::validation::Validator;
use nsw::xml::{self, schema, DocKind, Limits, Tree};

fn sizes() -> Vec<(usize, Vec<u8>)> {
    [1, 10, 50, 200]
        .into_iter()
        .map(|n| (n, docgen::declaration(n, n as u64)))
        .collect()
}

fn stages(c: &mut Criterion) {
    let limits = Limits::default();
    let validator = Validator::new(limits.clone(), "VN");
    schema::preload().expect("schemas");
    let mut g = c.benchmark_group("intake");
    for (items, doc) in sizes() {
        g.throughput(Throughput::Bytes(doc.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("tree (quick-xml, limits)", items),
            &doc,
            |b, d| b.iter(|| Tree::parse(d, &limits).expect("tree")),
        );
        g.bench_with_input(
            BenchmarkId::new("libxml2 parse+XSD alone", items),
            &doc,
            |b, d| b.iter(|| schema::libxml2_only(DocKind::Declaration, d).expect("xsd")),
        );
        g.bench_with_input(
            BenchmarkId::new("xml stages (checks, tree, XSD)", items),
            &doc,
            |b, d| b.iter(|| matches!(xml::check(d, &limits, None), Ok(Ok(_)))),
        );
        let tree = Tree::parse(&doc, &limits).expect("tree");
        let today = nsw::calendar::Clock::default().today();
        g.bench_with_input(BenchmarkId::new("business rules", items), &tree, |b, t| {
            b.iter(|| nsw::rules::declaration::check(t, "VN", today).is_ok())
        });
        g.bench_with_input(BenchmarkId::new("whole pipeline", items), &doc, |b, d| {
            b.iter(|| validator.validate(d, Some(DocKind::Declaration)))
        });
    }
    g.finish();
}

fn signing(c: &mut Criterion) {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("C", "VN").unwrap();
    name.append_entry_by_text("CN", "bench signer").unwrap();
    let name = name.build();
    let mut cert = X509Builder::new().unwrap();
    cert.set_version(2).unwrap();
    cert.set_subject_name(&name).unwrap();
    cert.set_issuer_name(&name).unwrap();
    cert.set_pubkey(&key).unwrap();
    cert.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    cert.set_not_after(&openssl::asn1::Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    cert.sign(&key, MessageDigest::sha256()).unwrap();
    let cert = cert.build();
    let mut g = c.benchmark_group("signing (CMS detached, ECDSA P-256)");
    for (items, doc) in sizes() {
        g.throughput(Throughput::Bytes(doc.len() as u64));
        g.bench_with_input(BenchmarkId::new("sign", items), &doc, |b, d| {
            b.iter(|| {
                CmsContentInfo::sign(
                    Some(&cert),
                    Some(&key),
                    None,
                    Some(d),
                    CMSOptions::DETACHED | CMSOptions::BINARY,
                )
                .and_then(|cms| cms.to_der())
                .expect("sign")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, stages, signing);
criterion_main!(benches);
