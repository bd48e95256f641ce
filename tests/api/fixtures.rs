//! Every fixture in fixtures/expectations.toml submitted through HTTP, with its exact outcome.

use std::collections::BTreeSet;

use nsw::domain::party::Role;
use serde::Deserialize;

use crate::helpers::{fixture, repo_root, TestApp};

#[derive(Deserialize)]
struct Expectations {
    fixture: Vec<Expectation>,
}

#[derive(Deserialize)]
pub struct Expectation {
    pub file: String,
    pub status: u16,
    pub code: Option<String>,
    pub path: Option<String>,
    pub submitter: Option<String>,
}

pub fn expectations() -> Vec<Expectation> {
    let text = std::fs::read_to_string(repo_root().join("fixtures/expectations.toml")).unwrap();
    toml::from_str::<Expectations>(&text).unwrap().fixture
}

#[tokio::test]
async fn every_declaration_fixture_has_its_exact_outcome() {
    let app = TestApp::spawn().await;
    let expectations = expectations();
    let submitters: BTreeSet<String> = expectations
        .iter()
        .filter_map(|e| e.submitter.clone())
        .collect();
    let mut tokens = std::collections::HashMap::new();
    for s in &submitters {
        tokens.insert(s.clone(), app.add_party(Role::Enterprise, s).await);
    }
    let fallback = app.add_party(Role::Enterprise, "FALLBACK-1").await;
    // Declarations are held to the routing table: the licences the valid fixtures quote are
    // deposited first, signed, through the API.
    assert!(crate::support::deposit_fixture_licences(&app).await >= 12);
    let mut failures = Vec::new();
    let mut created = 0;
    for e in &expectations {
        let token = e
            .submitter
            .as_ref()
            .and_then(|s| tokens.get(s))
            .unwrap_or(&fallback);
        let before = app.footprint().await;
        let resp = app.submit(token, fixture(&e.file)).await;
        let mut problems = Vec::new();
        if resp.status != e.status {
            problems.push(format!(
                "status {} (expected {}): {}",
                resp.status,
                e.status,
                String::from_utf8_lossy(&resp.body)
            ));
        }
        if resp.status == 201 {
            created += 1;
            let body = resp.json();
            assert_eq!(body["status"], "accepted");
            assert_eq!(
                body["sha256"].as_str().unwrap(),
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(fixture(&e.file)))
            );
        } else {
            assert_eq!(
                resp.header("content-type"),
                Some("application/problem+json"),
                "{}",
                e.file
            );
            if app.footprint().await != before {
                problems.push("a refused document changed the database".into());
            }
            let body = resp.json();
            if let Some(code) = &e.code {
                if resp.status == 422 {
                    // Each invalid fixture breaks one named rule: the first error is that rule
                    // at that place, and nothing else is reported.
                    let errors = resp.error_codes();
                    let first_ok = errors.first().is_some_and(|(c, p)| {
                        c == code && e.path.as_ref().is_none_or(|want| want == p)
                    });
                    if !first_ok || errors.iter().any(|(c, _)| c != code) {
                        problems.push(format!(
                            "expected only {code}, first at {:?}, got {errors:?}",
                            e.path
                        ));
                    }
                    for err in body["errors"].as_array().unwrap() {
                        assert!(err["line"].as_u64().unwrap() >= 1, "{err}");
                        assert!(err["column"].as_u64().unwrap() >= 1, "{err}");
                        assert!(!err["message"].as_str().unwrap().is_empty());
                    }
                } else if body["code"] != code.as_str() {
                    problems.push(format!("expected code {code}, got {}", body["code"]));
                } else if code != "XML_EMPTY" {
                    // Unusable XML is answered with where the reader stopped.
                    let at = (body["line"].as_u64(), body["column"].as_u64());
                    if !matches!(at, (Some(l), Some(c)) if l >= 1 && c >= 1) {
                        problems.push(format!("{code} without line and column: {body}"));
                    }
                }
            }
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}", e.file, problems.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) off:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        created >= 12,
        "at least 12 valid declarations, got {created}"
    );
    assert_eq!(app.count("declarations").await, created as i64);
}

#[tokio::test]
async fn every_fixture_file_is_listed_in_expectations_or_is_another_document_kind() {
    let listed: BTreeSet<String> = expectations().into_iter().map(|e| e.file).collect();
    let mut missing = Vec::new();
    for dir in ["valid/declaration", "invalid/declaration", "hostile"] {
        for entry in std::fs::read_dir(repo_root().join("fixtures").join(dir)).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.ends_with(".xml") && !listed.contains(&format!("{dir}/{name}")) {
                missing.push(format!("{dir}/{name}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "fixtures without expectations: {missing:?}"
    );
    let invalid = listed.iter().filter(|f| f.starts_with("invalid/")).count();
    assert!(
        invalid >= 40,
        "at least 40 invalid declarations, got {invalid}"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_a_flood_of_elements_is_refused() {
    let app = TestApp::spawn().await;
    let token = app.add_party(Role::Enterprise, "0301234567").await;
    let before = app.footprint().await;

    let mut big = b"<Declaration xmlns=\"urn:nsw:declaration:1\">".to_vec();
    big.resize(17 * 1024 * 1024, b' ');
    big.extend_from_slice(b"</Declaration>");
    let resp = app.submit(&token, big).await;
    assert_eq!(resp.status, 413);
    assert_eq!(resp.json()["code"], "BODY_TOO_LARGE");

    let mut flood = b"<Declaration xmlns=\"urn:nsw:declaration:1\">".to_vec();
    for _ in 0..600_000 {
        flood.extend_from_slice(b"<a/>");
    }
    flood.extend_from_slice(b"</Declaration>");
    let resp = app.submit(&token, flood).await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json()["code"], "XML_TOO_MANY_ELEMENTS");

    assert_eq!(app.footprint().await, before);
    // the server is unaffected
    let ok = app
        .submit(
            &token,
            fixture("valid/declaration/01-import-laptops-10-items.xml"),
        )
        .await;
    assert_eq!(ok.status, 201);
}
