//! Inputs shaped like the ones traders, software vendors and partner windows really send:
//! byte-order marks, compressed bodies, HTTP methods as clients use them, hostile shapes that
//! cost libxml2 more than their size, code-list entries that are not real codes.

use std::io::Write;

use nsw::domain::party::Role;
use sha2::{Digest, Sha256};

use crate::helpers::{fixture, with_reference, TestApp};

const LAPTOPS: &str = "valid/declaration/01-import-laptops-10-items.xml";
const LAPTOPS_IMPORTER: &str = "0301234567";
const BOM: &[u8] = b"\xEF\xBB\xBF";

fn with_bom(xml: &[u8]) -> Vec<u8> {
    [BOM, xml].concat()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn raw_deflate(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

type Encoder = fn(&[u8]) -> Vec<u8>;

async fn importer(app: &TestApp) -> String {
    app.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await
}

#[tokio::test]
async fn a_byte_order_mark_is_accepted_and_the_stored_bytes_keep_it() {
    let app = TestApp::spawn().await;
    let token = importer(&app).await;
    let xml = with_bom(&fixture(LAPTOPS));
    let r = app.submit(&token, xml.clone()).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let receipt = r.json();
    assert_eq!(receipt["sha256"], hex::encode(Sha256::digest(&xml)));
    assert_eq!(receipt["size"], xml.len());
    let id = receipt["id"].as_str().unwrap();
    let doc = app
        .get(&token, &format!("/api/v1/declarations/{id}/document"))
        .await;
    assert_eq!(
        doc.body, xml,
        "the stored bytes are the bytes received, mark included"
    );
}

#[tokio::test]
async fn a_byte_order_mark_does_not_move_error_positions() {
    let app = TestApp::spawn().await;
    let token = importer(&app).await;
    let broken = String::from_utf8(fixture(LAPTOPS)).unwrap().replacen(
        "<ItemCount>10</ItemCount>",
        "<ItemCount>11</ItemCount>",
        1,
    );
    let plain = app.submit(&token, broken.clone().into_bytes()).await;
    let marked = app.submit(&token, with_bom(broken.as_bytes())).await;
    assert_eq!(plain.status, 422);
    assert_eq!(marked.status, 422);
    assert_eq!(plain.json()["errors"], marked.json()["errors"]);
}

#[tokio::test]
async fn a_byte_order_mark_is_accepted_on_applications_licences_and_certificates() {
    let app = TestApp::spawn().await;
    let ent = app.add_party(Role::Enterprise, "1401234568").await;
    let app_xml = with_bom(&fixture(
        "valid/licence-application/moit-export-licence-rice.xml",
    ));
    let r = app
        .post_xml(&ent, "/api/v1/licence-applications", app_xml)
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));

    let admin = app.add_party(Role::Admin, "ADMIN-1").await;
    let sbv = app
        .add_party_with_agency(Role::Ministry, "SBV-OFFICER-1", "SBV")
        .await;
    let key = crate::support::register_signer(&app, &admin, "SBV").await;
    let licence = with_bom(&fixture("valid/licence/sbv-gold-215.xml"));
    let r = crate::support::deposit(&app, &sbv, &key, licence).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));

    let exporter = app.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await;
    let form_d = with_bom(&fixture("valid/certificate-of-origin/vn-sg-form-d.xml"));
    let r = app
        .post_xml(&exporter, "/api/v1/certificates-of-origin", form_d)
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
}

#[tokio::test]
async fn gzip_and_deflate_bodies_are_decoded_and_the_decoded_bytes_stored() {
    let app = TestApp::spawn().await;
    let token = importer(&app).await;
    let xml = fixture(LAPTOPS);
    let encoders: [(&str, Encoder); 4] = [
        ("gzip", gzip),
        ("x-gzip", gzip),
        ("deflate", zlib),
        ("deflate", raw_deflate),
    ];
    for (i, (coding, encode)) in encoders.into_iter().enumerate() {
        let doc = with_reference(&xml, &format!("GZ-{i}"));
        let r = app
            .submit_with(&token, encode(&doc), &[("content-encoding", coding)])
            .await;
        assert_eq!(
            r.status,
            201,
            "{coding}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let receipt = r.json();
        assert_eq!(receipt["sha256"], hex::encode(Sha256::digest(&doc)));
        assert_eq!(receipt["size"], doc.len());
    }
}

#[tokio::test]
async fn an_unknown_content_encoding_is_415_and_a_corrupt_one_400() {
    let app = TestApp::spawn().await;
    let token = importer(&app).await;
    let xml = fixture(LAPTOPS);
    for coding in ["br", "zstd", "compress", "gzip, gzip"] {
        let r = app
            .submit_with(&token, xml.clone(), &[("content-encoding", coding)])
            .await;
        assert_eq!(r.status, 415, "{coding}");
        assert_eq!(r.json()["code"], "CONTENT_ENCODING_UNSUPPORTED", "{coding}");
        assert_eq!(r.header("accept-encoding"), Some("gzip, deflate"));
    }
    let r = app
        .submit_with(&token, xml.clone(), &[("content-encoding", "gzip")])
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "BODY_ENCODING_INVALID");
    let mut truncated = gzip(&xml);
    truncated.truncate(truncated.len() / 2);
    let r = app
        .submit_with(&token, truncated, &[("content-encoding", "gzip")])
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "BODY_ENCODING_INVALID");
    assert_eq!(app.count("declarations").await, 0);
}

#[tokio::test]
async fn a_small_body_that_inflates_past_the_limit_is_413() {
    let app = TestApp::spawn().await;
    let token = importer(&app).await;
    // 64 MiB of spaces compress to about 64 KiB: four times the 16 MiB limit once decoded.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let block = vec![b' '; 1 << 20];
    for _ in 0..64 {
        e.write_all(&block).unwrap();
    }
    let bomb = e.finish().unwrap();
    assert!(bomb.len() < 200_000);
    let r = app
        .submit_with(&token, bomb, &[("content-encoding", "gzip")])
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["code"], "BODY_TOO_LARGE");
}

#[tokio::test]
async fn head_answers_like_get_without_a_body() {
    let app = TestApp::spawn().await;
    let token = importer(&app).await;
    let r = app.submit(&token, fixture(LAPTOPS)).await;
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/declarations/{id}/document");
    let get = app.get(&token, &path).await;
    let head = app
        .request(reqwest::Method::HEAD, &path, Some(&token), &[], None)
        .await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-type"), get.header("content-type"));
    assert_eq!(head.header("etag"), get.header("etag"));
    let health = app
        .request(reqwest::Method::HEAD, "/health", None, &[], None)
        .await;
    assert_eq!(health.status, 200);
    assert!(health.body.is_empty());
}

#[tokio::test]
async fn options_lists_the_methods_and_other_methods_are_405_with_allow() {
    let app = TestApp::spawn().await;
    let token = importer(&app).await;
    let r = app
        .request(
            reqwest::Method::OPTIONS,
            "/api/v1/declarations",
            None,
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("allow"), Some("POST, GET, HEAD, OPTIONS"));
    let r = app
        .request(
            reqwest::Method::OPTIONS,
            "/api/v1/licence-applications/0190b1c2-0000-7000-8000-000000000000/decision",
            None,
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("allow"), Some("POST, OPTIONS"));

    for (method, path, allow) in [
        (
            reqwest::Method::DELETE,
            "/api/v1/declarations",
            "POST, GET, HEAD, OPTIONS",
        ),
        (reqwest::Method::PUT, "/health", "GET, HEAD, OPTIONS"),
        (
            reqwest::Method::GET,
            "/exchange/v1/messages",
            "POST, OPTIONS",
        ),
        (
            reqwest::Method::PATCH,
            "/api/v1/admin/routing-rules",
            "GET, HEAD, PUT, OPTIONS",
        ),
    ] {
        let r = app
            .request(method.clone(), path, Some(&token), &[], None)
            .await;
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        assert_eq!(r.json()["code"], "METHOD_NOT_ALLOWED");
    }
    let r = app.get(&token, "/api/v1/no-such-thing").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["code"], "NOT_FOUND");
}

#[tokio::test]
async fn malformed_json_and_wrong_media_types_are_problem_json_on_every_json_route() {
    let app = TestApp::spawn().await;
    let admin = app.add_party(Role::Admin, "ADMIN-1").await;
    for (method, path) in [
        (reqwest::Method::PUT, "/api/v1/admin/exchange/fault"),
        (reqwest::Method::POST, "/api/v1/admin/exchange/send"),
        (reqwest::Method::PUT, "/api/v1/admin/routing-rules"),
        (reqwest::Method::POST, "/api/v1/webhooks"),
    ] {
        let r = app
            .request(
                method.clone(),
                path,
                Some(&admin),
                &[("content-type", "application/json")],
                Some(b"{not json".to_vec()),
            )
            .await;
        // A route the admin may not use answers 403 before reading the body; every other
        // answer is a problem+json 400 (or 409 where exchange is not configured).
        assert_eq!(
            r.header("content-type"),
            Some("application/problem+json"),
            "{method} {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(
            [400, 403, 409].contains(&r.status),
            "{method} {path}: {}",
            r.status
        );
        let r = app
            .request(
                method.clone(),
                path,
                Some(&admin),
                &[("content-type", "text/plain")],
                Some(b"{}".to_vec()),
            )
            .await;
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
    }
    let r = app
        .post_json(
            &admin,
            "/api/v1/admin/exchange/send",
            serde_json::json!({"declaration_id": 7}),
        )
        .await;
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
}

/// A declaration whose root element carries `extra` inside its start tag.
fn laptops_with_root_extra(extra: &str) -> Vec<u8> {
    let xml = String::from_utf8(fixture(LAPTOPS)).unwrap();
    let at = xml.find("<Declaration").unwrap() + "<Declaration".len();
    format!("{} {extra}{}", &xml[..at], &xml[at..]).into_bytes()
}

#[tokio::test]
async fn shapes_that_cost_libxml2_more_than_their_size_are_refused_first() {
    let app = TestApp::spawn().await;
    let token = importer(&app).await;
    let attrs: String = (0..200_000).map(|i| format!("a{i}=\"x\" ")).collect();
    let namespaces: String = (0..1_000)
        .map(|i| format!("xmlns:p{i}=\"urn:x:{i}\" "))
        .collect();
    let long_name = format!("{}=\"x\"", "a".repeat(100_000));
    let xml = String::from_utf8(fixture(LAPTOPS)).unwrap();
    let end_line = xml[..xml.find("</Declaration>").unwrap()].lines().count() as u64 + 1;
    let many_names = {
        let at = xml.find("</Declaration>").unwrap();
        let filler: String = (0..5_000)
            .map(|i| format!("<x:n{i} xmlns:x=\"urn:f\"/>"))
            .collect();
        format!("{}{filler}{}", &xml[..at], &xml[at..]).into_bytes()
    };
    for (body, code, line) in [
        (
            laptops_with_root_extra(&attrs),
            "XML_TOO_MANY_ATTRIBUTES",
            2,
        ),
        (
            laptops_with_root_extra(&namespaces),
            "XML_TOO_MANY_NAMESPACES",
            2,
        ),
        (laptops_with_root_extra(&long_name), "XML_NAME_TOO_LONG", 2),
        (many_names, "XML_TOO_MANY_NAMES", end_line),
    ] {
        let r = app.submit(&token, body).await;
        assert_eq!(
            r.status,
            400,
            "{code}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let p = r.json();
        assert_eq!(p["code"], code);
        assert_eq!(
            p["line"], line,
            "{code}: located at the element that breaks the limit"
        );
    }
    assert_eq!(app.count("declarations").await, 0);
}

#[tokio::test]
async fn codes_that_are_not_real_codes_are_refused() {
    let app = TestApp::spawn().await;
    let token = importer(&app).await;
    let xml = String::from_utf8(fixture(LAPTOPS)).unwrap();
    let start = xml.find("<HSCode>").unwrap() + "<HSCode>".len();
    let end = start + xml[start..].find("</HSCode>").unwrap();
    for hs in ["999999", "99999999"] {
        let mut doc = xml.clone();
        doc.replace_range(start..end, hs);
        let r = app.submit(&token, doc.into_bytes()).await;
        assert_eq!(r.status, 422, "{hs}");
        assert_eq!(
            r.error_codes()[0],
            ("HS_UNKNOWN".into(), "/Declaration/Item[1]/HSCode".into()),
            "{hs}"
        );
    }
    let currency = xml
        .find("currency=\"")
        .map(|i| &xml[i + 10..i + 13])
        .unwrap()
        .to_owned();
    for not_money in ["XTS", "XXX", "XAU", "XDR"] {
        let doc = xml.replace(
            &format!("currency=\"{currency}\""),
            &format!("currency=\"{not_money}\""),
        );
        let doc = doc.replace(
            &format!("<Currency>{currency}</Currency>"),
            &format!("<Currency>{not_money}</Currency>"),
        );
        let r = app.submit(&token, doc.into_bytes()).await;
        assert_eq!(r.status, 422, "{not_money}");
        assert!(
            r.error_codes().iter().all(|(c, _)| c == "CURRENCY_UNKNOWN"),
            "{not_money}: {:?}",
            r.error_codes()
        );
    }
}

/// Sends `head` (request line and headers, no body) on a fresh connection and returns what
/// the server answers within two seconds, without sending any body.
async fn answer_to_headers(app: &TestApp, head: &str) -> (String, tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(2), stream.read(&mut buf))
        .await
        .map(|r| r.unwrap())
        .unwrap_or(0);
    (String::from_utf8_lossy(&buf[..n]).into_owned(), stream)
}

#[tokio::test]
async fn expect_100_continue_is_answered_from_the_headers_when_they_decide() {
    let app = TestApp::spawn().await;
    let token = importer(&app).await;
    let head = |auth: &str, ctype: &str, length: usize| {
        format!(
            "POST /api/v1/declarations HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: {ctype}\r\n\
             Content-Length: {length}\r\nExpect: 100-continue\r\n\r\n"
        )
    };
    let bearer = format!("Authorization: Bearer {token}\r\n");
    let customs = app.add_party(Role::Customs, "CUS-EXPECT").await;
    let customs = format!("Authorization: Bearer {customs}\r\n");
    for (head, status) in [
        // A role the endpoint does not take: 403 before the media type is looked at.
        (head(&customs, "application/json", 7000), "403"),
        (head(&bearer, "application/xml", 20 << 20), "413"),
        (head("", "application/xml", 7000), "401"),
        (
            head(
                "Authorization: Bearer not-a-token\r\n",
                "application/xml",
                7000,
            ),
            "401",
        ),
        (head(&bearer, "application/json", 7000), "415"),
        (
            head(&bearer, "application/xml", 7000)
                .replace("POST /api/v1/declarations", "PUT /api/v1/declarations"),
            "405",
        ),
        (
            head(&bearer, "application/xml", 7000)
                .replace("POST /api/v1/declarations", "POST /api/v1/nope"),
            "404",
        ),
        (
            head(&bearer, "application/xml", 7000)
                .replace("Expect:", "Content-Encoding: br\r\nExpect:"),
            "415",
        ),
    ] {
        let (answer, _) = answer_to_headers(&app, &head).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "expected {status} at once, got: {answer}"
        );
        assert!(!answer.contains("100 Continue"), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("\r\nx-request-id: "),
            "{answer}"
        );
    }
    // Headers that do not decide: 100 Continue, then the body, then the receipt.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let xml = fixture(LAPTOPS);
    let (answer, mut stream) =
        answer_to_headers(&app, &head(&bearer, "application/xml", xml.len())).await;
    assert!(answer.starts_with("HTTP/1.1 100 Continue"), "{answer}");
    stream.write_all(&xml).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 201 "), "{answer}");
}

#[tokio::test]
async fn a_partner_envelope_with_a_byte_order_mark_is_received_and_kept_as_sent() {
    use nsw::exchange::signature;
    let plan = crate::exchange::Plan::new(&["VN", "SG"]);
    let sg = plan.start("SG").await;
    let vn = plan.identity_of("VN");
    let acdd = fixture("valid/acdd/vn-th-rice-export.xml");
    let (header, env) = crate::exchange::acdd_envelope("VN", "SG", &acdd);
    let env = with_bom(&env);
    let sig = signature::sign(&vn, &env).unwrap();
    let r = sg.deliver(&env, Some(&sig)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let client = sg.app.pool.get().await.unwrap();
    let stored: Vec<u8> = client
        .query_one(
            "SELECT envelope FROM inbound_messages WHERE message_id = $1",
            &[&header.message_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        stored, env,
        "the envelope is kept as received, mark included"
    );
}

#[tokio::test]
async fn a_second_byte_order_mark_is_text_before_the_root_and_refused() {
    let app = TestApp::spawn().await;
    let token = importer(&app).await;
    for marks in [2, 3] {
        let mut doc = BOM.repeat(marks);
        doc.extend(fixture(LAPTOPS));
        let r = app.submit(&token, doc).await;
        assert_eq!(
            r.status,
            400,
            "{marks} marks: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["code"], "XML_MALFORMED");
    }
    assert_eq!(app.count("declarations").await, 0);
}

#[tokio::test]
async fn a_form_d_sent_with_a_byte_order_mark_is_issued() {
    let app = TestApp::spawn().await;
    let exporter = importer(&app).await;
    let moit = app
        .add_party_with_agency(Role::Ministry, "MOIT-OFFICER-1", "MOIT")
        .await;
    let form_d = with_bom(&fixture("valid/certificate-of-origin/vn-sg-form-d.xml"));
    let r = app
        .post_xml(&exporter, "/api/v1/certificates-of-origin", form_d)
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/licence-applications/{id}/decision");
    for action in ["review", "issue"] {
        let r = app
            .post_json(&moit, &path, serde_json::json!({ "action": action }))
            .await;
        assert_eq!(
            r.status,
            200,
            "{action}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
}

#[tokio::test]
async fn supporting_documents_and_deposited_licences_dated_after_today_are_refused() {
    let app = TestApp::spawn().await;
    let token = importer(&app).await;
    let xml = String::from_utf8(fixture(LAPTOPS)).unwrap();
    let doc = xml.replacen(
        "      <IssueDate>2026-03-06</IssueDate>",
        "      <IssueDate>2099-03-06</IssueDate>",
        1,
    );
    assert_ne!(doc, xml);
    let r = app.submit(&token, doc.into_bytes()).await;
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    let (code, path) = &r.error_codes()[0];
    assert_eq!(code, "ISSUE_DATE_IN_FUTURE");
    assert!(
        path.ends_with("/Document/IssueDate") || path.contains("/Document["),
        "{path}"
    );

    let admin = app.add_party(Role::Admin, "ADMIN-1").await;
    let sbv = app
        .add_party_with_agency(Role::Ministry, "SBV-OFFICER-1", "SBV")
        .await;
    let key = crate::support::register_signer(&app, &admin, "SBV").await;
    let licence = String::from_utf8(fixture("valid/licence/sbv-gold-215.xml"))
        .unwrap()
        .replace(
            "<IssueDate>2026-07-01</IssueDate>",
            "<IssueDate>2099-01-25</IssueDate>",
        );
    let r = crate::support::deposit(&app, &sbv, &key, licence.into_bytes()).await;
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.error_codes()[0],
        ("ISSUE_DATE_IN_FUTURE".into(), "/Licence/IssueDate".into())
    );
}

#[tokio::test]
async fn a_document_full_of_rule_errors_reports_at_most_500() {
    let app = TestApp::spawn().await;
    let token = importer(&app).await;
    let xml = String::from_utf8(fixture(LAPTOPS)).unwrap();
    // Every item quotes the same licence many times: one violation per repeat.
    let repeats: String = (0..90)
        .map(|_| "<Document><Type>LIC</Type><Reference>SAME-1</Reference></Document>")
        .collect();
    let doc = xml.replace("</Item>", &format!("{repeats}</Item>"));
    let r = app.submit(&token, doc.into_bytes()).await;
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    let errors = r.json()["errors"].as_array().unwrap().len();
    assert_eq!(errors, nsw::rules::MAX_VIOLATIONS);
}

#[tokio::test]
async fn a_partner_signature_that_is_not_cms_is_400_before_the_envelope_is_read() {
    let plan = crate::exchange::Plan::new(&["VN", "SG"]);
    let sg = plan.start("SG").await;
    let acdd = fixture("valid/acdd/vn-th-rice-export.xml");
    let (_, env) = crate::exchange::acdd_envelope("VN", "SG", &acdd);
    // Valid base64, not DER; and a broken envelope, which is never looked at.
    for body in [env.clone(), b"<not-even-xml".to_vec()] {
        let r = sg.deliver(&body, Some(b"\x00\x00\x00")).await;
        assert_eq!(
            (r.status, r.json()["code"].as_str().unwrap()),
            (400, "SIGNATURE_MALFORMED")
        );
    }
    assert_eq!(sg.inbound_count().await, 0);
}

#[tokio::test]
async fn a_negative_event_cursor_is_refused_not_read_from_the_start() {
    let app = TestApp::spawn().await;
    let token = importer(&app).await;
    let r = app.get(&token, "/api/v1/events?after=-1").await;
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (400, "AFTER_INVALID".into())
    );
}
