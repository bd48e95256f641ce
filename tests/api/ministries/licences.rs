//! Licences deposited by agencies: verified against the agency's registered certificate, and
//! each licence problem refusing the declaration that quotes it.

use base64::Engine;
use nsw::domain::party::Role;

use super::{licence_xml, replace, FAR_AHEAD, GOLD_DECLARATION};
use crate::helpers::{fixture, with_reference, TestApp};
use crate::support::{deposit, register_signer};

#[tokio::test]
async fn deposits_are_verified_against_the_agencys_registered_certificate() {
    let app = TestApp::spawn().await;
    let admin = app.add_party(Role::Admin, "ADMIN-1").await;
    let sbv = app
        .add_party_with_agency(Role::Ministry, "SBV-OFFICER-1", "SBV")
        .await;
    let moit = app
        .add_party_with_agency(Role::Ministry, "MOIT-OFFICER-1", "MOIT")
        .await;
    let key = register_signer(&app, &admin, "SBV").await;
    let xml = licence_xml(
        "DEP-1",
        "SBV",
        "0302468135",
        "IM",
        "2026-07-01",
        FAR_AHEAD,
        "71081210",
        "KGM",
        "50",
    );

    // Signed by a key nobody registered: the signature matches the bytes, but its
    // certificate does not chain to anything registered for SBV.
    let rogue = nsw::licensing::signing::generate("SBV", "VN").unwrap();
    let before = app.count("licences").await;
    let r = deposit(&app, &sbv, &rogue, xml.clone()).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["code"], "CERTIFICATE_UNTRUSTED");
    // The registered key, but other bytes than it signed: the signature does not match.
    let sig = nsw::licensing::signing::sign_detached(
        &key.private_key_pem,
        &key.certificate_pem,
        b"<Licence/>",
    )
    .unwrap();
    let r = app
        .request(
            reqwest::Method::POST,
            "/api/v1/licences",
            Some(&sbv),
            &[
                ("content-type", "application/xml"),
                (
                    "x-signature",
                    &base64::engine::general_purpose::STANDARD.encode(sig),
                ),
            ],
            Some(xml.clone()),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.error_codes()[0].0, "SIGNATURE_INVALID");
    // No signature at all.
    let r = app.post_xml(&sbv, "/api/v1/licences", xml.clone()).await;
    assert_eq!(r.json()["code"], "SIGNATURE_MISSING");
    // Another agency's officer may not deposit SBV's licence.
    let r = deposit(&app, &moit, &key, xml.clone()).await;
    assert_eq!(r.status, 403);
    assert_eq!(app.count("licences").await, before);

    let r = deposit(&app, &sbv, &key, xml.clone()).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["origin"], "deposited");
    assert_eq!(r.json()["lines"][0]["remaining"], "50.000");
    // Same number again: conflict, nothing stored twice.
    let r = deposit(&app, &sbv, &key, xml).await;
    assert_eq!(r.status, 409);
    // The stored bytes and signature come back exactly.
    let doc = app.get(&sbv, "/api/v1/licences/DEP-1/document").await;
    let sig = app.get(&sbv, "/api/v1/licences/DEP-1/signature").await;
    nsw::licensing::signing::verify_detached(
        &sig.body,
        &doc.body,
        std::slice::from_ref(&key.certificate_pem),
        "SBV",
        &Default::default(),
    )
    .unwrap();
}

#[tokio::test]
async fn a_declaration_is_refused_for_each_licence_problem() {
    let app = TestApp::spawn().await;
    let admin = app.add_party(Role::Admin, "ADMIN-1").await;
    let sbv = app
        .add_party_with_agency(Role::Ministry, "SBV-OFFICER-1", "SBV")
        .await;
    let trader = app.add_party(Role::Enterprise, "0302468135").await;
    let key = register_signer(&app, &admin, "SBV").await;
    let good = |n: &str| {
        licence_xml(
            n,
            "SBV",
            "0302468135",
            "IM",
            "2026-07-01",
            FAR_AHEAD,
            "71081210",
            "KGM",
            "50",
        )
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            // Not valid on the window's date (a licence whose validity has already ended cannot
            // be deposited; intake_rules has one that ended after its deposit).
            "EXPIRED-1",
            // Issued in the past, valid only from 2099 on.
            String::from_utf8(licence_xml(
                "EXPIRED-1",
                "SBV",
                "0302468135",
                "IM",
                "2099-01-01",
                FAR_AHEAD,
                "71081210",
                "KGM",
                "50",
            ))
            .unwrap()
            .replace(
                "<IssueDate>2099-01-01</IssueDate>",
                "<IssueDate>2026-07-01</IssueDate>",
            )
            .into_bytes(),
            "LICENCE_EXPIRED",
        ),
        (
            "OTHERS-1",
            licence_xml(
                "OTHERS-1",
                "SBV",
                "0300000001",
                "IM",
                "2026-07-01",
                FAR_AHEAD,
                "71081210",
                "KGM",
                "50",
            ),
            "LICENCE_NOT_HOLDER",
        ),
        (
            "HS-1",
            licence_xml(
                "HS-1",
                "SBV",
                "0302468135",
                "IM",
                "2026-07-01",
                FAR_AHEAD,
                "710813",
                "KGM",
                "50",
            ),
            "LICENCE_HS_MISMATCH",
        ),
        (
            "UNIT-1",
            licence_xml(
                "UNIT-1",
                "SBV",
                "0302468135",
                "IM",
                "2026-07-01",
                FAR_AHEAD,
                "710812",
                "GRM",
                "50000",
            ),
            "LICENCE_UNIT_MISMATCH",
        ),
        (
            "DIR-1",
            licence_xml(
                "DIR-1",
                "SBV",
                "0302468135",
                "EX",
                "2026-07-01",
                FAR_AHEAD,
                "71081210",
                "KGM",
                "50",
            ),
            "LICENCE_DIRECTION_MISMATCH",
        ),
        (
            "SHORT-1",
            licence_xml(
                "SHORT-1",
                "SBV",
                "0302468135",
                "IM",
                "2026-07-01",
                FAR_AHEAD,
                "71081210",
                "KGM",
                "49.999",
            ),
            "LICENCE_BALANCE_INSUFFICIENT",
        ),
        ("NOWHERE-1", Vec::new(), "LICENCE_NOT_FOUND"),
    ];
    let decl = fixture(GOLD_DECLARATION);
    for (number, lic, _) in &cases {
        if !lic.is_empty() {
            let r = deposit(&app, &sbv, &key, lic.clone()).await;
            assert_eq!(
                r.status,
                201,
                "{number}: {}",
                String::from_utf8_lossy(&r.body)
            );
        }
    }
    let before = app.footprint().await;
    let ledger_before = app.count("licence_ledger").await;
    for (number, _, code) in &cases {
        let xml = replace(&decl, "215/GP-NHNN", number);
        let r = app.submit(&trader, xml).await;
        assert_eq!(
            r.status,
            422,
            "{number}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let body = r.json();
        let err = &body["errors"][0];
        assert_eq!(err["code"], *code, "{number}: {body}");
        assert_eq!(err["path"], "/Declaration/Item");
        assert_eq!(err["line"], 62);
        let msg = err["message"].as_str().unwrap();
        assert!(
            msg.contains("SBV") && msg.contains("SBV-GOLD") && msg.contains("item 1"),
            "{msg}"
        );
    }
    // The licence left out entirely.
    let s = String::from_utf8(decl.clone()).unwrap();
    let start = s.find("    <Document>").unwrap();
    let end = s.find("    </Document>").unwrap() + "    </Document>\n".len();
    let without = format!("{}{}", &s[..start], &s[end..]);
    let r = app.submit(&trader, without.into_bytes()).await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.error_codes(),
        vec![("LICENCE_MISSING".to_owned(), "/Declaration/Item".to_owned())]
    );
    assert_eq!(
        app.footprint().await,
        before,
        "a refused declaration left something behind"
    );
    assert_eq!(app.count("licence_ledger").await, ledger_before);

    // The fitting licence is accepted, and exactly once per balance.
    let r = deposit(&app, &sbv, &key, good("GOOD-1")).await;
    assert_eq!(r.status, 201);
    let ok = app
        .submit(
            &trader,
            with_reference(&replace(&decl, "215/GP-NHNN", "GOOD-1"), "GOLD-A"),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", String::from_utf8_lossy(&ok.body));
    let again = app
        .submit(
            &trader,
            with_reference(&replace(&decl, "215/GP-NHNN", "GOOD-1"), "GOLD-B"),
        )
        .await;
    assert_eq!(again.status, 422);
    assert_eq!(again.error_codes()[0].0, "LICENCE_BALANCE_INSUFFICIENT");
}
