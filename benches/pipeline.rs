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

/// Documents of about `target` bytes in the shapes that cost libxml2 more than their size,
/// each at its limit, so that each must still cost in proportion to its size.
fn hostile_shapes(limits: &Limits, target: usize) -> Vec<(&'static str, Vec<u8>)> {
    let ns = "urn:nsw:declaration:1";
    let fill = |piece: &dyn Fn(usize) -> String| {
        let mut body = String::new();
        let mut i = 0;
        while body.len() < target {
            body.push_str(&piece(i));
            i += 1;
        }
        format!("<Declaration xmlns=\"{ns}\">{body}</Declaration>").into_bytes()
    };
    let attrs: String = (0..limits.max_attributes)
        .map(|i| format!(" a{i}=\"x\""))
        .collect();
    let decls: String = (0..limits.max_namespaces - 1)
        .map(|i| format!(" xmlns:p{i}=\"urn:p:{i}\""))
        .collect();
    let long = "n".repeat(limits.max_name_bytes);
    let depth = limits.max_depth - 2;
    // A valid declaration whose every item quotes one licence many times: a business-rule
    // violation per quotation, more than the 500 reported.
    let quoted = "<Document><Type>LIC</Type><Reference>SAME-1</Reference></Document>";
    let plain = String::from_utf8(docgen::declaration(999, 7)).expect("UTF-8");
    let per_item = (target.saturating_sub(plain.len()) / 999 / quoted.len()).clamp(2, 99);
    let rule_errors = plain
        .replace("</Item>", &format!("{}</Item>", quoted.repeat(per_item)))
        .into_bytes();
    vec![
        ("rule violations", rule_errors),
        ("attributes per element", fill(&|_| format!("<e{attrs}/>"))),
        (
            "namespaces in scope",
            fill(&|_| format!("<e{decls}><p0:x/></e>")),
        ),
        (
            "distinct names",
            fill(&|i| format!("<n{}/>", i % (limits.max_names - 10))),
        ),
        ("name length", fill(&|_| format!("<{long}/>"))),
        (
            "nesting depth",
            fill(&|_| format!("{}{}", "<d>".repeat(depth), "</d>".repeat(depth))),
        ),
    ]
}

/// Hostile shapes at their limits against a valid declaration of the same size, measured in
/// the same run: time per byte as a ratio to the plain document's (1.0 = as cheap).
fn hostile(_c: &mut Criterion) {
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"hostile".contains(a.as_str()))
    {
        return;
    }
    let limits = Limits::default();
    let validator = Validator::new(limits.clone(), "VN");
    schema::preload().expect("schemas");
    let per_byte = |doc: &[u8]| {
        let reps = 5;
        let start = std::time::Instant::now();
        for _ in 0..reps {
            std::hint::black_box(validator.validate(doc, Some(DocKind::Declaration)));
        }
        start.elapsed().as_secs_f64() / reps as f64 / doc.len() as f64
    };
    let plain = docgen::declaration(999, 7);
    let target = plain.len() * 2;
    let base = per_byte(&plain);
    println!(
        "\nhostile shapes at their limits (about {target} bytes each), cost per byte against a valid 999-item declaration of {} bytes ({:.1} ns/byte):",
        plain.len(),
        base * 1e9
    );
    println!(
        "{:<26} {:>10} {:>12} {:>8}",
        "shape", "bytes", "ns/byte", "ratio"
    );
    for (name, doc) in hostile_shapes(&limits, target) {
        let cost = per_byte(&doc);
        println!(
            "{name:<26} {:>10} {:>12.1} {:>8.2}",
            doc.len(),
            cost * 1e9,
            cost / base
        );
    }
}

criterion_group!(benches, stages, signing, hostile);
criterion_main!(benches);
