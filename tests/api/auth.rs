//! Authentication and request shape: 401, 415, 413, 404 in problem+json.

use nsw::domain::party::Role;

use crate::helpers::{fixture, TestApp};

const LAPTOPS: &str = "valid/declaration/01-import-laptops-10-items.xml";

#[tokio::test]
async fn missing_or_unknown_tokens_are_401_everywhere() {
    let app = TestApp::spawn().await;
    let xml = fixture(LAPTOPS);
    for (method, path) in [
        (reqwest::Method::POST, "/api/v1/declarations"),
        (reqwest::Method::GET, "/api/v1/declarations"),
        (
            reqwest::Method::GET,
            "/api/v1/declarations/0195f7c0-0000-7000-8000-000000000000",
        ),
    ] {
        for token in [None, Some("nsw_not-a-real-token")] {
            let r = app
                .request(
                    method.clone(),
                    path,
                    token,
                    &[("content-type", "application/xml")],
                    Some(xml.clone()),
                )
                .await;
            assert_eq!(r.status, 401, "{method} {path} with {token:?}");
            assert_eq!(r.header("content-type"), Some("application/problem+json"));
            assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"nsw\""));
            assert_eq!(r.json()["code"], "UNAUTHORIZED");
        }
    }
    let r = app
        .request(
            reqwest::Method::GET,
            "/api/v1/declarations",
            None,
            &[("authorization", "Basic dXNlcjpwYXNz")],
            None,
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(app.count("declarations").await, 0);
}

#[tokio::test]
async fn wrong_media_type_is_415() {
    let app = TestApp::spawn().await;
    let token = app.add_party(Role::Enterprise, "0301234567").await;
    for ct in [
        "application/json",
        "text/plain",
        "",
        "application/xml; charset=iso-8859-1",
    ] {
        let headers: Vec<(&str, &str)> = if ct.is_empty() {
            vec![]
        } else {
            vec![("content-type", ct)]
        };
        let r = app
            .request(
                reqwest::Method::POST,
                "/api/v1/declarations",
                Some(&token),
                &headers,
                Some(fixture(LAPTOPS)),
            )
            .await;
        assert_eq!(r.status, 415, "content type {ct:?}");
        assert_eq!(r.json()["code"], "UNSUPPORTED_MEDIA_TYPE");
    }
    for ct in [
        "text/xml",
        "application/xml; charset=UTF-8",
        "application/vnd.nsw.declaration+xml",
    ] {
        let r = app
            .request(
                reqwest::Method::POST,
                "/api/v1/declarations",
                Some(&token),
                &[("content-type", ct)],
                Some(crate::helpers::with_reference(
                    &fixture(LAPTOPS),
                    &format!("R-{}", ct.len()),
                )),
            )
            .await;
        assert_eq!(r.status, 201, "content type {ct:?}");
    }
}

#[tokio::test]
async fn unknown_routes_answer_problem_json_404() {
    let app = TestApp::spawn().await;
    let token = app.add_party(Role::Enterprise, "0301234567").await;
    let r = app.get(&token, "/api/v1/nothing-here").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
}

#[tokio::test]
async fn documents_of_other_kinds_are_refused_by_the_declaration_endpoint() {
    let app = TestApp::spawn().await;
    let token = app.add_party(Role::Enterprise, "0301234567").await;
    let r = app
        .submit(&token, fixture("valid/licence/moit-import-licence.xml"))
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.error_codes()[0].0, "DOCUMENT_TYPE_MISMATCH");
}

/// Who the caller is comes first: on every registered route, whatever the path, query and body
/// (a malformed id, a wrong media type, garbage), an unknown or missing token is 401 in
/// problem+json. Walks the router's own table, so a route added later is walked too.
#[tokio::test]
async fn every_route_answers_401_to_an_unknown_token_before_looking_at_the_request() {
    let app = TestApp::spawn().await;
    let mut walked = 0;
    for e in nsw::api::endpoints() {
        if e.access == nsw::api::Access::Public {
            continue;
        }
        let path = e
            .path
            .split('/')
            .map(|s| if s.starts_with('{') { "not-a-uuid" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let method = reqwest::Method::from_bytes(e.method.as_str().as_bytes()).unwrap();
        for token in [None, Some("nsw_not-a-real-token")] {
            let r = app
                .request(
                    method.clone(),
                    &format!("{path}?limit=abc&after=-1"),
                    token,
                    &[("content-type", "text/plain")],
                    Some(b"\x00 not a document".to_vec()),
                )
                .await;
            assert_eq!(r.status, 401, "{} {} with {token:?}", e.method, e.path);
            assert_eq!(
                r.header("content-type"),
                Some("application/problem+json"),
                "{} {}",
                e.method,
                e.path
            );
            assert_eq!(r.json()["code"], "UNAUTHORIZED");
        }
        walked += 1;
    }
    assert!(walked > 40, "walked {walked} routes");
}

/// What the caller may do comes second: on every registered route gated by role, a valid
/// token of each role the route does not take is 403 `ROLE_FORBIDDEN` in problem+json,
/// whatever the path, query and body (a malformed id, a wrong media type, garbage), and the
/// request changes nothing. Walks the router's own table, so a route added later is walked too;
/// routes open to every party are skipped.
#[tokio::test]
async fn every_route_answers_403_to_a_role_it_does_not_take_before_looking_at_the_request() {
    let app = TestApp::spawn().await;
    let mut tokens = Vec::new();
    for (role, id) in [
        (Role::Enterprise, "0301234567"),
        (Role::Customs, "CUS-1"),
        (Role::Partner, "PARTNER-SG"),
        (Role::Admin, "ADMIN-1"),
    ] {
        tokens.push((role, app.add_party(role, id).await));
    }
    let ministry = app
        .add_party_with_agency(Role::Ministry, "MOIT-OFFICER-1", "MOIT")
        .await;
    tokens.push((Role::Ministry, ministry));
    let mut walked = 0;
    for e in nsw::api::endpoints() {
        let nsw::api::Access::Roles(allowed) = e.access else {
            continue;
        };
        let path = e
            .path
            .split('/')
            .map(|s| if s.starts_with('{') { "not-a-uuid" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let method = reqwest::Method::from_bytes(e.method.as_str().as_bytes()).unwrap();
        for (role, token) in tokens.iter().filter(|(r, _)| !allowed.contains(r)) {
            let r = app
                .request(
                    method.clone(),
                    &format!("{path}?limit=abc&after=-1"),
                    Some(token),
                    &[("content-type", "text/plain")],
                    Some(b"\x00 not a document".to_vec()),
                )
                .await;
            let what = format!("{} {} as {}", e.method, e.path, role.as_str());
            assert_eq!(
                r.status,
                403,
                "{what}: {}",
                String::from_utf8_lossy(&r.body)
            );
            assert_eq!(
                r.header("content-type"),
                Some("application/problem+json"),
                "{what}"
            );
            assert_eq!(r.json()["code"], "ROLE_FORBIDDEN", "{what}");
        }
        walked += 1;
    }
    assert!(walked > 25, "walked {walked} routes");
    assert_eq!(app.count("declarations").await, 0);
}

/// The examples that were answered before the token was looked at.
#[tokio::test]
async fn a_malformed_path_or_body_does_not_come_before_the_token() {
    let app = TestApp::spawn().await;
    let r = app
        .get("nsw_not-a-real-token", "/api/v1/exchange/inbox/not-a-uuid")
        .await;
    assert_eq!(r.status, 401);
    let r = app
        .request(
            reqwest::Method::PUT,
            "/api/v1/admin/exchange/fault",
            Some("nsw_not-a-real-token"),
            &[("content-type", "text/plain")],
            Some(b"mode=down".to_vec()),
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
}

/// An agency certificate only for an agency the routing table knows.
#[tokio::test]
async fn an_agency_certificate_needs_an_agency_the_routing_table_knows() {
    let app = TestApp::spawn().await;
    let admin = app.add_party(Role::Admin, "ADMIN-1").await;
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args([
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=MOTI",
            "-keyout",
            "/dev/null",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let pem = out.stdout;
    let r = app
        .request(
            reqwest::Method::POST,
            "/api/v1/agencies/MOTI/certificates",
            Some(&admin),
            &[("content-type", "application/x-pem-file")],
            Some(pem),
        )
        .await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["code"], "AGENCY_UNKNOWN");
}

/// With `tokens.max_age_days`, a token older than that is refused.
#[tokio::test]
async fn tokens_expire_when_configured() {
    let app = TestApp::builder()
        .settings(|s| s.tokens.max_age_days = Some(90))
        .spawn()
        .await;
    let old = app.add_party(Role::Customs, "CUS-OLD").await;
    let young = app.add_party(Role::Customs, "CUS-NEW").await;
    let client = app.pool.get().await.unwrap();
    client
        .execute(
            "UPDATE tokens SET created_at = now() - interval '91 days' WHERE party_id = 'CUS-OLD'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(app.get(&old, "/api/v1/declarations").await.status, 401);
    assert_eq!(app.get(&young, "/api/v1/declarations").await.status, 200);
}
