//! Helpers for the ministries and customs tests: agency officers, signing keys registered
//! through the admin API, deposits of signed licences.

use std::collections::HashMap;

use base64::Engine;
use nsw::domain::party::Role;
use nsw::licensing::signing::{self, KeyPair};

use crate::helpers::{fixture, repo_root, Resp, TestApp};

/// An agency's own signing key (outside the window), its certificate registered by an admin.
pub async fn register_signer(app: &TestApp, admin: &str, agency: &str) -> KeyPair {
    let key = signing::generate(agency, "VN").unwrap();
    let resp = app
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/agencies/{agency}/certificates"),
            Some(admin),
            &[("content-type", "application/x-pem-file")],
            Some(key.certificate_pem.clone().into_bytes()),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", String::from_utf8_lossy(&resp.body));
    key
}

pub async fn deposit(app: &TestApp, officer: &str, key: &KeyPair, xml: Vec<u8>) -> Resp {
    let sig = signing::sign_detached(&key.private_key_pem, &key.certificate_pem, &xml).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(sig);
    app.request(
        reqwest::Method::POST,
        "/api/v1/licences",
        Some(officer),
        &[("content-type", "application/xml"), ("x-signature", &b64)],
        Some(xml),
    )
    .await
}

/// The agency code in a licence document.
fn agency_of(xml: &[u8]) -> String {
    let s = String::from_utf8_lossy(xml);
    let start = s.find("<Code>").unwrap() + "<Code>".len();
    let end = start + s[start..].find("</Code>").unwrap();
    s[start..end].to_owned()
}

/// Deposits every licence of fixtures/valid/licence/ as an officer of its issuing agency.
pub async fn deposit_fixture_licences(app: &TestApp) -> usize {
    let admin = app.add_party(Role::Admin, "ADMIN-FIXTURES").await;
    let mut officers: HashMap<String, (String, KeyPair)> = HashMap::new();
    let mut files: Vec<_> = std::fs::read_dir(repo_root().join("fixtures/valid/licence"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".xml"))
        .collect();
    files.sort();
    for f in &files {
        let xml = fixture(&format!("valid/licence/{f}"));
        let agency = agency_of(&xml);
        if !officers.contains_key(&agency) {
            let token = app
                .add_party_with_agency(Role::Ministry, &format!("OFF-{agency}"), &agency)
                .await;
            let key = register_signer(app, &admin, &agency).await;
            officers.insert(agency.clone(), (token, key));
        }
        let (token, key) = &officers[&agency];
        let resp = deposit(app, token, key, xml).await;
        assert_eq!(
            resp.status,
            201,
            "{f}: {}",
            String::from_utf8_lossy(&resp.body)
        );
    }
    files.len()
}
