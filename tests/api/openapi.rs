//! The OpenAPI document and the API reference page, through HTTP.

use crate::helpers::TestApp;
use nsw::domain::party::Role;

#[tokio::test]
async fn the_openapi_document_is_public_json_of_openapi_3_1() {
    let app = TestApp::spawn().await;
    let resp = app.get_anonymously("/api/v1/openapi.json").await;
    assert_eq!(resp.status, 200);
    assert!(resp
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json")));
    let doc = resp.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
    // What the server routes is what the document describes (the unit test walks the table;
    // here: the document served is that one).
    assert_eq!(doc, nsw::api::openapi::document());
    let submit = &doc["paths"]["/api/v1/declarations"]["post"];
    assert!(
        submit["requestBody"]["content"]["application/xml"]["example"]
            .as_str()
            .unwrap()
            .contains("urn:nsw:declaration:1")
    );
    // A token does not hurt either.
    let token = app.add_party(Role::Enterprise, "0301234567").await;
    assert_eq!(app.get(&token, "/api/v1/openapi.json").await.status, 200);
}

/// `Expect: 100-continue` treats the document as public, like /health: no 401 before the body.
#[tokio::test]
async fn expect_check_lets_the_document_through_without_credentials() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let addr = app.address.trim_start_matches("http://");
    for (path, status) in [
        ("/api/v1/openapi.json", "200"),
        ("/api/v1/declarations", "401"),
    ] {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 256];
        let n = tokio::time::timeout(std::time::Duration::from_secs(2), stream.read(&mut buf))
            .await
            .map(|r| r.unwrap())
            .unwrap_or(0);
        let first = String::from_utf8_lossy(&buf[..n]).into_owned();
        let expected = if status == "200" {
            "HTTP/1.1 100 Continue"
        } else {
            "HTTP/1.1 401 "
        };
        assert!(first.starts_with(expected), "{path}: {first}");
    }
}

#[tokio::test]
async fn the_reference_page_allows_its_own_script_and_nothing_else_does() {
    let app = TestApp::spawn().await;
    let page = app.get_anonymously("/docs/api").await;
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").unwrap().to_owned();
    assert_eq!(csp, nsw::api::openapi::REFERENCE_CSP);
    assert!(csp.contains("script-src 'self'"));
    assert!(!csp.contains("unsafe"), "{csp}");
    // the other security headers are still there
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    let html = String::from_utf8(page.body.clone()).unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "inline script: {html}");
    // every asset the page names is served, with a long cache lifetime
    let assets: Vec<&str> = html
        .split('"')
        .filter(|s| s.starts_with("/docs/api/"))
        .collect();
    assert_eq!(assets.len(), 3, "{html}");
    for a in assets {
        let resp = app.get_anonymously(a).await;
        assert_eq!(resp.status, 200, "{a}");
        assert!(resp.header("cache-control").unwrap().contains("immutable"));
    }
    assert_eq!(
        app.get_anonymously("/docs/api/swagger-ui-bundle.js")
            .await
            .status,
        404
    );
    // Every other answer keeps the site's policy: no script at all.
    for path in ["/", "/api/v1/openapi.json", "/health", "/docs/api/nope.js"] {
        let resp = app.get_anonymously(path).await;
        assert_eq!(
            resp.header("content-security-policy"),
            Some(nsw::portal::CONTENT_SECURITY_POLICY),
            "{path}"
        );
    }
}

/// A JSON string may carry U+0000 (`\u0000`), which PostgreSQL's text and jsonb refuse: such a
/// body is the client's mistake (400), never a server error.
#[tokio::test]
async fn a_nul_character_in_a_json_body_is_a_bad_request() {
    let app = TestApp::spawn().await;
    let admin = app.add_party(Role::Admin, "admin-nul").await;
    let table = app.get(&admin, "/api/v1/admin/routing-rules").await.json();
    let mut spec = serde_json::json!({"agencies": table["agencies"], "rules": table["rules"]});
    spec["agencies"][0]["name"] = serde_json::json!("Ministry\u{0}of Nothing");
    let resp = app
        .send_json(
            reqwest::Method::PUT,
            &admin,
            "/api/v1/admin/routing-rules",
            spec,
        )
        .await;
    assert_eq!(resp.status, 400, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(resp.json()["code"], "BODY_INVALID");
}

/// Nor in a query or path parameter.
#[tokio::test]
async fn a_nul_character_in_a_parameter_is_no_server_error() {
    let app = TestApp::spawn().await;
    let admin = app.add_party(Role::Admin, "admin-nul").await;
    for path in [
        "/api/v1/exchange/inbox?document_type=%00",
        "/api/v1/certificates-of-origin/%00",
        "/api/v1/certificates-of-origin/%00/document",
        "/api/v1/licences/%00",
        "/api/v1/licences/%00/document",
        "/api/v1/agencies/%00/certificates",
        "/api/v1/declarations?cursor=%00",
        "/api/v1/declarations?status=%00",
    ] {
        let resp = app.get(&admin, path).await;
        assert!(
            (400..500).contains(&resp.status),
            "{path}: {} {}",
            resp.status,
            String::from_utf8_lossy(&resp.body)
        );
    }
    let table = app.get(&admin, "/api/v1/admin/routing-rules").await.json();
    let spec = serde_json::json!({"agencies": table["agencies"], "rules": table["rules"]});
    let resp = app
        .put_json(&admin, "/api/v1/admin/routing-rules?note=a%00b", spec)
        .await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json()["code"], "QUERY_INVALID");
}
