//! Certificate chains, purposes and dates, through HTTP: partner messages (plain and mutual
//! TLS) and licences deposited by agencies are held to the same rules (docs/exchange.md,
//! "Certificates"): chains through carried intermediates to the pinned anchor, a pinned
//! intermediate as anchor, a signer's key usages, notBefore with clock-skew tolerance.

use std::path::Path;

use base64::Engine;
use nsw::domain::party::Role;
use nsw::exchange::keys;
use nsw::exchange::signature;
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage};
use openssl::x509::{X509Name, X509};

use crate::exchange::{acdd_envelope, Plan, Window};
use crate::helpers::{fixture, TestApp};
use crate::ministries::licence_xml;

/// id-kp-documentSigning (RFC 9336).
const DOCUMENT_SIGNING: &str = "1.3.6.1.5.5.7.3.36";

/// What a test certificate says about itself.
struct Spec<'a> {
    country: &'a str,
    cn: &'a str,
    ca: bool,
    key_usage: Option<&'a [&'a str]>,
    eku: Option<&'a [&'a str]>,
    /// Seconds from now.
    not_before: i64,
    not_after: i64,
}

impl<'a> Spec<'a> {
    fn ca(country: &'a str, cn: &'a str) -> Spec<'a> {
        Spec {
            country,
            cn,
            ca: true,
            key_usage: Some(&["keyCertSign", "cRLSign"]),
            eku: None,
            not_before: -3600,
            not_after: 30 * 86_400,
        }
    }

    fn signer(country: &'a str, cn: &'a str) -> Spec<'a> {
        Spec {
            country,
            cn,
            ca: false,
            key_usage: Some(&["digitalSignature", "nonRepudiation"]),
            eku: None,
            not_before: -3600,
            not_after: 30 * 86_400,
        }
    }
}

type Pair = (X509, PKey<Private>);

/// A certificate for `spec`, issued by `issuer`, self-signed without one.
fn make(spec: &Spec, issuer: Option<&Pair>) -> Pair {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut name = X509Name::builder().unwrap();
    name.append_entry_by_text("C", spec.country).unwrap();
    name.append_entry_by_text("O", "Test PKI").unwrap();
    name.append_entry_by_text("CN", spec.cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(127, MsbOption::MAYBE_ZERO, false).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&name, |(c, _)| c.subject_name()))
        .unwrap();
    b.set_pubkey(&key).unwrap();
    let now = chrono::Utc::now().timestamp();
    b.set_not_before(&Asn1Time::from_unix(now + spec.not_before).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(now + spec.not_after).unwrap())
        .unwrap();
    let mut bc = BasicConstraints::new();
    bc.critical();
    if spec.ca {
        bc.ca();
    }
    b.append_extension(bc.build().unwrap()).unwrap();
    if let Some(usages) = spec.key_usage {
        let mut ku = KeyUsage::new();
        ku.critical();
        for u in usages {
            match *u {
                "digitalSignature" => ku.digital_signature(),
                "nonRepudiation" => ku.non_repudiation(),
                "keyCertSign" => ku.key_cert_sign(),
                "cRLSign" => ku.crl_sign(),
                other => panic!("{other}"),
            };
        }
        b.append_extension(ku.build().unwrap()).unwrap();
    }
    if let Some(purposes) = spec.eku {
        let mut eku = ExtendedKeyUsage::new();
        for p in purposes {
            eku.other(p);
        }
        b.append_extension(eku.build().unwrap()).unwrap();
    }
    b.sign(issuer.map_or(&key, |(_, k)| k), MessageDigest::sha256())
        .unwrap();
    (b.build(), key)
}

/// A detached DER CMS signature over `data` by `signer`, carrying `extra` (intermediates)
/// besides the signer's own certificate.
fn sign(signer: &Pair, extra: &[&X509], data: &[u8]) -> Vec<u8> {
    let mut certs = Stack::new().unwrap();
    for c in extra {
        certs.push((*c).clone()).unwrap();
    }
    CmsContentInfo::sign(
        Some(&signer.0),
        Some(&signer.1),
        Some(&certs),
        Some(data),
        CMSOptions::DETACHED | CMSOptions::BINARY,
    )
    .unwrap()
    .to_der()
    .unwrap()
}

/// VN's root as the plan made it: the CA SG pins for VN.
fn vn_root(plan: &Plan) -> Pair {
    let dir = plan.dir.path().join("VN");
    let key = keys::KeyDir::at(&dir).private_key(keys::CA_KEY).unwrap();
    (plan.identity_of("VN").ca, key)
}

/// A fresh ACDD envelope from VN to SG signed by `signer`: (status, code or "").
async fn send(sg: &Window, signer: &Pair, extra: &[&X509]) -> (u16, String) {
    let (_, env) = acdd_envelope("VN", "SG", &fixture("valid/acdd/vn-th-rice-export.xml"));
    let r = sg.deliver(&env, Some(&sign(signer, extra, &env))).await;
    let code = if r.status == 200 {
        String::new()
    } else {
        r.json()["code"].as_str().unwrap_or("?").to_owned()
    };
    (r.status, code)
}

fn refused(code: &str) -> (u16, String) {
    (403, code.to_owned())
}

fn accepted() -> (u16, String) {
    (200, String::new())
}

#[tokio::test]
async fn partner_signatures_chain_through_intermediates_and_need_a_signing_purpose() {
    let plan = Plan::new(&["VN", "SG"]);
    let sg = plan.start("SG").await;
    let root = vn_root(&plan);
    let inter = make(&Spec::ca("VN", "VN issuing CA"), Some(&root));
    let via_inter = make(&Spec::signer("VN", "VN signing (issuing CA)"), Some(&inter));

    // Signed by a certificate an intermediate issued, the intermediate carried in the CMS
    // certificates: accepted, as `openssl cms -verify -CAfile ca.crt` accepts it.
    assert_eq!(send(&sg, &via_inter, &[&inter.0]).await, accepted());
    // The intermediate missing: no chain to the pinned root.
    assert_eq!(
        send(&sg, &via_inter, &[]).await,
        refused("CERTIFICATE_UNTRUSTED")
    );
    // The bytes changed after signing: the only case for SIGNATURE_INVALID.
    let (_, env) = acdd_envelope("VN", "SG", &fixture("valid/acdd/vn-th-rice-export.xml"));
    let sig = sign(&via_inter, &[&inter.0], &env);
    let mut tampered = env.clone();
    let pos = tampered.windows(6).position(|w| w == b"250000").unwrap();
    tampered[pos] = b'9';
    let r = sg.deliver(&tampered, Some(&sig)).await;
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (403, "SIGNATURE_INVALID".into())
    );

    // Extended key usage documentSigning (RFC 9336): a signing purpose, accepted.
    let document_signer = make(
        &Spec {
            eku: Some(&[DOCUMENT_SIGNING]),
            ..Spec::signer("VN", "VN document signing")
        },
        Some(&root),
    );
    assert_eq!(send(&sg, &document_signer, &[]).await, accepted());
    // And through the intermediate.
    let document_signer = make(
        &Spec {
            eku: Some(&[DOCUMENT_SIGNING]),
            ..Spec::signer("VN", "VN document signing 2")
        },
        Some(&inter),
    );
    assert_eq!(send(&sg, &document_signer, &[&inter.0]).await, accepted());
    // A key for certificates only: a purpose problem, not a chain or signature one.
    let cert_signer = make(
        &Spec {
            key_usage: Some(&["keyCertSign"]),
            ..Spec::signer("VN", "VN cert signer")
        },
        Some(&root),
    );
    assert_eq!(
        send(&sg, &cert_signer, &[]).await,
        refused("CERTIFICATE_PURPOSE")
    );
    // VN's genuine TLS certificate (serverAuth, clientAuth) does not sign documents.
    let dir = plan.dir.path().join("VN");
    let tls = (
        X509::from_pem(&std::fs::read(dir.join(keys::TLS_CERT)).unwrap()).unwrap(),
        keys::KeyDir::at(&dir).private_key(keys::TLS_KEY).unwrap(),
    );
    assert_eq!(send(&sg, &tls, &[]).await, refused("CERTIFICATE_PURPOSE"));

    // Issued a moment "in the future" by a partner whose clock runs ahead: within the
    // five-minute tolerance, accepted; an hour ahead, not yet valid.
    let soon = make(
        &Spec {
            not_before: 120,
            ..Spec::signer("VN", "VN signing (fresh)")
        },
        Some(&inter),
    );
    assert_eq!(send(&sg, &soon, &[&inter.0]).await, accepted());
    let later = make(
        &Spec {
            not_before: 3600,
            ..Spec::signer("VN", "VN signing (next hour)")
        },
        Some(&inter),
    );
    assert_eq!(
        send(&sg, &later, &[&inter.0]).await,
        refused("CERTIFICATE_NOT_YET_VALID")
    );
    // An expired intermediate makes the chain expired.
    let old_inter = make(
        &Spec {
            not_before: -86_400,
            not_after: -60,
            ..Spec::ca("VN", "VN old issuing CA")
        },
        Some(&root),
    );
    let under_old = make(&Spec::signer("VN", "VN signing (old CA)"), Some(&old_inter));
    assert_eq!(
        send(&sg, &under_old, &[&old_inter.0]).await,
        refused("CERTIFICATE_EXPIRED")
    );
    assert_eq!(sg.inbound_count().await, 4);

    // The stored message through the intermediate verifies with the openssl command line
    // against VN's root alone.
    let inbox = sg.inbox().await;
    let first = inbox.last().unwrap()["id"].as_str().unwrap().to_owned();
    let get = |what: &str| {
        let path = format!("/api/v1/exchange/inbox/{first}/{what}");
        let app = &sg.app;
        let token = sg.customs.clone();
        async move { app.get(&token, &path).await.body }
    };
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("envelope.xml"), get("envelope").await).unwrap();
    std::fs::write(work.path().join("envelope.p7s"), get("signature").await).unwrap();
    let out = std::process::Command::new("openssl")
        .current_dir(work.path())
        .args(["cms", "-verify", "-binary", "-inform", "DER"])
        .args([
            "-in",
            "envelope.p7s",
            "-content",
            "envelope.xml",
            "-out",
            "/dev/null",
        ])
        .arg("-CAfile")
        .arg(plan.dir.path().join("VN").join(keys::CA_CERT))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_partner_may_pin_an_intermediate() {
    let plan = Plan::new(&["VN", "SG"]);
    let root = vn_root(&plan);
    let inter = make(&Spec::ca("VN", "VN issuing CA"), Some(&root));
    let signer = make(&Spec::signer("VN", "VN signing (issuing CA)"), Some(&inter));
    // SG pins VN's intermediate, not its root.
    let pinned = plan.dir.path().join("vn-issuing-ca.crt");
    std::fs::write(&pinned, inter.0.to_pem().unwrap()).unwrap();
    let partners = plan.dir.path().join("SG-pins-intermediate.toml");
    std::fs::write(
        &partners,
        format!(
            "[[partner]]\ncountry = \"VN\"\nendpoint = \"http://127.0.0.1:{}/exchange/v1/messages\"\nca_cert = \"{}\"\ndocuments = [\"ACDD\", \"FORM_D\", \"BUSINESS_RESPONSE\"]\nprofile = \"asw\"\n",
            plan.port("VN"),
            pinned.display()
        ),
    )
    .unwrap();
    let sg = plan
        .window("SG")
        .settings(|s| s.exchange.partners_file = Some(partners))
        .start()
        .await;

    // A partial chain ending at the pinned intermediate: with or without it carried.
    assert_eq!(send(&sg, &signer, &[]).await, accepted());
    assert_eq!(send(&sg, &signer, &[&inter.0]).await, accepted());
    // VN's signing certificate issued by the root directly is outside what SG trusts.
    let vn = plan.identity_of("VN");
    assert_eq!(
        send(&sg, &(vn.cert.clone(), vn.key.clone()), &[]).await,
        refused("CERTIFICATE_UNTRUSTED")
    );
    // So is a sibling intermediate's certificate, even carrying its issuer.
    let sibling = make(&Spec::ca("VN", "VN other issuing CA"), Some(&root));
    let other = make(&Spec::signer("VN", "VN signing (other CA)"), Some(&sibling));
    assert_eq!(
        send(&sg, &other, &[&sibling.0]).await,
        refused("CERTIFICATE_UNTRUSTED")
    );
    assert_eq!(sg.inbound_count().await, 2);
}

/// A client for SG's TLS listener presenting `chain` (leaf first) and `key`.
fn tls_client(chain: &[&X509], key: &PKey<Private>, trust: &Path) -> reqwest::Client {
    let pem: Vec<u8> = chain.iter().flat_map(|c| c.to_pem().unwrap()).collect();
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(trust).unwrap()).unwrap(),
        )
        .identity(
            reqwest::Identity::from_pkcs8_pem(&pem, &key.private_key_to_pem_pkcs8().unwrap())
                .unwrap(),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_tls_client_certificate_chains_through_the_intermediates_it_sends() {
    let plan = Plan::with_tls(&["VN", "SG"]);
    let sg = plan.start("SG").await;
    let sg_tls = plan.tls_ports.as_ref().unwrap()[1].1;
    let url = format!("https://127.0.0.1:{sg_tls}/exchange/v1/messages");
    let sg_ca = plan.dir.path().join("SG").join(keys::CA_CERT);
    let root = vn_root(&plan);
    let inter = make(&Spec::ca("VN", "VN issuing CA"), Some(&root));
    let client_cert = |cn: &str, not_before: i64| {
        make(
            &Spec {
                key_usage: Some(&["digitalSignature"]),
                eku: Some(&["clientAuth"]),
                not_before,
                ..Spec::signer("VN", cn)
            },
            Some(&inter),
        )
    };
    let vn = plan.identity_of("VN");
    let post = |client: reqwest::Client| {
        let url = url.clone();
        let (_, env) = acdd_envelope("VN", "SG", &fixture("valid/acdd/vn-th-rice-export.xml"));
        let sig =
            base64::engine::general_purpose::STANDARD.encode(signature::sign(&vn, &env).unwrap());
        async move {
            client
                .post(url)
                .header("content-type", "application/xml")
                .header("X-NSW-Signature", sig)
                .body(env)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    };

    let leaf = client_cert("VN TLS (issuing CA)", -3600);
    // The intermediate sent after the leaf: the chain reaches VN's pinned root.
    let with_chain = tls_client(&[&leaf.0, &inter.0], &leaf.1, &sg_ca);
    assert_eq!(post(with_chain).await.unwrap(), 200);
    // The leaf alone: no chain, the handshake fails.
    let alone = tls_client(&[&leaf.0], &leaf.1, &sg_ca);
    assert!(post(alone).await.is_err());
    // A certificate issued a couple of minutes ahead of SG's clock: within the tolerance.
    let fresh = client_cert("VN TLS (fresh)", 120);
    assert_eq!(
        post(tls_client(&[&fresh.0, &inter.0], &fresh.1, &sg_ca))
            .await
            .unwrap(),
        200
    );
    // An hour ahead: refused at the handshake.
    let later = client_cert("VN TLS (next hour)", 3600);
    assert!(post(tls_client(&[&later.0, &inter.0], &later.1, &sg_ca))
        .await
        .is_err());
    assert_eq!(sg.inbound_count().await, 2);
}

/// An admin registers `cert` for `agency`.
async fn register(app: &TestApp, admin: &str, agency: &str, cert: &X509) {
    let r = app
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/agencies/{agency}/certificates"),
            Some(admin),
            &[("content-type", "application/x-pem-file")],
            Some(cert.to_pem().unwrap()),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
}

/// Deposits licence `number` of SBV signed by `signer` carrying `extra`: (status, code).
async fn deposit(
    app: &TestApp,
    officer: &str,
    number: &str,
    signer: &Pair,
    extra: &[&X509],
) -> (u16, String) {
    let xml = licence_xml(
        number,
        "SBV",
        "0302468135",
        "IM",
        "2026-07-01",
        "2099-12-31",
        "71081210",
        "KGM",
        "50",
    );
    let sig = base64::engine::general_purpose::STANDARD.encode(sign(signer, extra, &xml));
    let r = app
        .request(
            reqwest::Method::POST,
            "/api/v1/licences",
            Some(officer),
            &[("content-type", "application/xml"), ("x-signature", &sig)],
            Some(xml),
        )
        .await;
    let code = match r.status {
        201 => String::new(),
        422 => r.error_codes()[0].0.clone(),
        _ => r.json()["code"].as_str().unwrap_or("?").to_owned(),
    };
    (r.status, code)
}

#[tokio::test]
async fn deposited_licences_follow_the_same_certificate_rules() {
    let app = TestApp::spawn().await;
    let admin = app.add_party(Role::Admin, "ADMIN-1").await;
    let sbv = app
        .add_party_with_agency(Role::Ministry, "SBV-OFFICER-1", "SBV")
        .await;
    // The agency's own PKI: a root registered with the window, an issuing CA under it.
    let root = make(&Spec::ca("VN", "SBV root CA"), None);
    register(&app, &admin, "SBV", &root.0).await;
    let inter = make(&Spec::ca("VN", "SBV issuing CA"), Some(&root));
    let signer = make(&Spec::signer("VN", "SBV licence signing"), Some(&inter));

    // Signed through the intermediate, carried in the signature: accepted.
    assert_eq!(
        deposit(&app, &sbv, "CHAIN-1", &signer, &[&inter.0]).await,
        (201, String::new())
    );
    // Without the intermediate: no chain to a registered certificate.
    assert_eq!(
        deposit(&app, &sbv, "CHAIN-2", &signer, &[]).await,
        (403, "CERTIFICATE_UNTRUSTED".into())
    );
    // A key registered by nobody.
    let rogue = make(&Spec::signer("VN", "SBV rogue"), None);
    assert_eq!(
        deposit(&app, &sbv, "CHAIN-2", &rogue, &[]).await,
        (403, "CERTIFICATE_UNTRUSTED".into())
    );
    // keyCertSign alone does not sign licences.
    let cert_signer = make(
        &Spec {
            key_usage: Some(&["keyCertSign"]),
            ..Spec::signer("VN", "SBV cert signer")
        },
        Some(&inter),
    );
    assert_eq!(
        deposit(&app, &sbv, "CHAIN-2", &cert_signer, &[&inter.0]).await,
        (403, "CERTIFICATE_PURPOSE".into())
    );
    // documentSigning does.
    let document_signer = make(
        &Spec {
            eku: Some(&[DOCUMENT_SIGNING]),
            ..Spec::signer("VN", "SBV document signing")
        },
        Some(&inter),
    );
    assert_eq!(
        deposit(&app, &sbv, "CHAIN-2", &document_signer, &[&inter.0]).await,
        (201, String::new())
    );
    // Dates: an hour ahead is not yet valid; expired is expired.
    let later = make(
        &Spec {
            not_before: 3600,
            ..Spec::signer("VN", "SBV next hour")
        },
        Some(&inter),
    );
    assert_eq!(
        deposit(&app, &sbv, "CHAIN-3", &later, &[&inter.0]).await,
        (403, "CERTIFICATE_NOT_YET_VALID".into())
    );
    let expired = make(
        &Spec {
            not_before: -86_400,
            not_after: -60,
            ..Spec::signer("VN", "SBV expired")
        },
        Some(&inter),
    );
    assert_eq!(
        deposit(&app, &sbv, "CHAIN-3", &expired, &[&inter.0]).await,
        (403, "CERTIFICATE_EXPIRED".into())
    );
    // An agency that registered its issuing CA rather than its root: a partial chain.
    let mof = app
        .add_party_with_agency(Role::Ministry, "SBV-OFFICER-2", "SBV")
        .await;
    let other_root = make(&Spec::ca("VN", "SBV second root"), None);
    let other_inter = make(&Spec::ca("VN", "SBV second issuing CA"), Some(&other_root));
    register(&app, &admin, "SBV", &other_inter.0).await;
    let other_signer = make(
        &Spec::signer("VN", "SBV second signing"),
        Some(&other_inter),
    );
    assert_eq!(
        deposit(&app, &mof, "CHAIN-3", &other_signer, &[]).await,
        (201, String::new())
    );
    // The stored bytes still verify through the library against the registered root.
    let doc = app.get(&sbv, "/api/v1/licences/CHAIN-1/document").await;
    let sig = app.get(&sbv, "/api/v1/licences/CHAIN-1/signature").await;
    let pem = String::from_utf8(root.0.to_pem().unwrap()).unwrap();
    nsw::licensing::signing::verify_detached(
        &sig.body,
        &doc.body,
        &[pem],
        "SBV",
        &Default::default(),
    )
    .unwrap();
}

/// Replaces `country`'s signing certificate in the plan by one its issuing intermediate
/// issued, `signing.crt` holding the certificate followed by the intermediate.
fn sign_through_an_intermediate(plan: &Plan, country: &str) {
    let dir = plan.dir.path().join(country);
    let root = (
        plan.identity_of(country).ca,
        keys::KeyDir::at(&dir).private_key(keys::CA_KEY).unwrap(),
    );
    let cn = format!("{country} issuing CA");
    let inter = make(&Spec::ca(country, &cn), Some(&root));
    let cn = format!("{country} Single Window signing");
    let signer = make(
        &Spec {
            eku: Some(&[DOCUMENT_SIGNING]),
            ..Spec::signer(country, &cn)
        },
        Some(&inter),
    );
    let mut pem = signer.0.to_pem().unwrap();
    pem.extend(inter.0.to_pem().unwrap());
    std::fs::write(dir.join(keys::SIGNING_CERT), pem).unwrap();
    std::fs::write(
        dir.join(keys::SIGNING_KEY),
        signer.1.private_key_to_pem_pkcs8().unwrap(),
    )
    .unwrap();
}

#[tokio::test]
async fn receipts_and_messages_signed_through_an_intermediate_travel_both_ways() {
    let plan = Plan::new(&["VN", "SG"]);
    // Both windows sign with a documentSigning certificate from an intermediate, which
    // their signatures carry; partners still pin the roots.
    sign_through_an_intermediate(&plan, "VN");
    sign_through_an_intermediate(&plan, "SG");
    assert_eq!(plan.identity_of("SG").chain.len(), 1);
    let vn = plan.start("VN").await;
    let sg = plan.start("SG").await;

    // VN's message is accepted by SG, and SG's receipt by VN: delivered.
    let sent = vn.send_form_d(crate::exchange::form_d()).await;
    let m = vn
        .wait_status(sent["message_id"].as_str().unwrap(), "delivered")
        .await;
    assert_eq!(m["status"], "delivered", "{m}");
    assert_eq!(sg.inbound_count().await, 1);
}
