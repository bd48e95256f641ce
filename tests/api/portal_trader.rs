//! The trader's portal pages through HTTP, as a browser uses them: log in with a password,
//! upload declarations (accepted, and refused with each error beside its numbered line), apply
//! for a licence with the form, answer an officer's request for a supplement, download a
//! licence's signature; other traders get 404 and forms without their token 403.

use std::collections::HashMap;

use nsw::domain::party::Role;
use serde_json::json;

use crate::helpers::{fixture, TestApp};

const LAPTOPS: &str = "valid/declaration/01-import-laptops-10-items.xml";
const LAPTOPS_IMPORTER: &str = "0301234567";
const HS_UNKNOWN: &str = "invalid/declaration/hs-unknown-6-digit.xml";
const RICE_EXPORTER: &str = "1401234568";
pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// A browser: keeps its cookies, follows no redirect (also used by the portal's fee tests).
pub(crate) struct Browser {
    address: String,
    client: reqwest::Client,
    cookies: HashMap<String, String>,
}

pub(crate) struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Page {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The value of the first hidden `csrf` input.
    pub fn csrf(&self) -> String {
        let t = self.text();
        let marker = "name=\"csrf\" value=\"";
        let start = t.find(marker).expect("a csrf field") + marker.len();
        let end = start + t[start..].find('"').unwrap();
        t[start..end].to_owned()
    }

    /// A response header's value ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl Browser {
    /// A browser with no session yet.
    pub fn new(app: &TestApp) -> Browser {
        Browser {
            address: app.address.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub async fn send(&mut self, rb: reqwest::RequestBuilder) -> Page {
        let rb = if self.cookies.is_empty() {
            rb
        } else {
            rb.header("cookie", self.cookie_header())
        };
        let r = rb.send().await.expect("request");
        for v in r.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || v.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page {
            status: r.status().as_u16(),
            location: r
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned()),
            headers: r.headers().clone(),
            body: r.bytes().await.unwrap().to_vec(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let rb = self.client.get(format!("{}{}", self.address, path));
        self.send(rb).await
    }

    pub async fn post_form(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let body = serde_urlencoded::to_string(form).unwrap();
        let rb = self
            .client
            .post(format!("{}{}", self.address, path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(rb).await
    }

    /// A multipart/form-data POST: text fields, then the file `document`.
    async fn upload(&mut self, path: &str, csrf: Option<&str>, file: &[u8]) -> Page {
        let boundary = "----nswportaltestboundary7MA4YWxkTrZu0gW";
        let mut body = Vec::new();
        if let Some(c) = csrf {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{c}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"document\"; \
                 filename=\"declaration.xml\"\r\nContent-Type: application/xml\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(file);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let rb = self
            .client
            .post(format!("{}{}", self.address, path))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body);
        self.send(rb).await
    }

    /// Logs in as `party` through the log-in form.
    pub async fn login(app: &TestApp, party: &str) -> Browser {
        let mut b = Browser::new(app);
        let form = b.get("/login").await;
        assert_eq!(form.status, 200);
        let csrf = form.csrf();
        let r = b
            .post_form(
                "/login",
                &[
                    ("party_id", party),
                    ("password", PASSWORD),
                    ("csrf", &csrf),
                    ("next", "/"),
                ],
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.text());
        assert!(b.cookies.contains_key("nsw_session"));
        b
    }
}

/// An enterprise with an API token, a password and (optionally) an address in its profile.
async fn trader(app: &TestApp, id: &str, with_address: bool) -> String {
    let token = app.add_party(Role::Enterprise, id).await;
    let mut client = app.pool.get().await.unwrap();
    let phc = nsw::passwords::hash(PASSWORD).unwrap();
    nsw::store::parties::set_password(&mut client, id, &phc, "test")
        .await
        .unwrap();
    if with_address {
        nsw::store::sessions::update_profile(
            &mut client,
            &nsw::store::sessions::Profile {
                id: id.into(),
                name: "Công ty Cổ phần Lương thực Đồng Tháp Mười".into(),
                street: Some("Số 12 Quốc lộ 30, Phường 11".into()),
                city: Some("Cao Lãnh, Đồng Tháp".into()),
                post_code: Some("870000".into()),
                country: Some("VN".into()),
            },
            "test",
        )
        .await
        .unwrap();
    }
    token
}

/// The text from `from` on, for asserting that something comes right after it.
fn after<'a>(text: &'a str, from: &str) -> &'a str {
    let i = text
        .find(from)
        .unwrap_or_else(|| panic!("{from} not in the page"));
    &text[i..]
}

#[tokio::test]
async fn a_trader_uploads_declarations_sees_them_and_withdraws_one() {
    let app = TestApp::spawn().await;
    let token = trader(&app, LAPTOPS_IMPORTER, false).await;
    trader(&app, "0309999999", false).await;
    let mut b = Browser::login(&app, LAPTOPS_IMPORTER).await;

    let form = b.get("/declarations/new").await;
    assert_eq!(form.status, 200);
    assert!(form.text().contains("<label for=\"document\">"));
    let csrf = form.csrf();

    // Without the form's token nothing is read.
    let refused = b.upload("/declarations/new", None, &fixture(LAPTOPS)).await;
    assert_eq!(refused.status, 403);
    let refused = b
        .upload(
            "/declarations/new",
            Some("not-the-token"),
            &fixture(LAPTOPS),
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(app.count("declarations").await, 0);

    // Accepted: to the declaration's page.
    let xml = fixture(LAPTOPS);
    let r = b.upload("/declarations/new", Some(&csrf), &xml).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let location = r.location.unwrap();
    let id = location.strip_prefix("/declarations/").unwrap().to_owned();
    let api = app
        .get(&token, &format!("/api/v1/declarations/{id}"))
        .await
        .json();
    let reference = api["reference"].as_str().unwrap().to_owned();

    let page = b.get(&location).await;
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(text.contains(&reference));
    assert!(text.contains("SV-IM-2026-0142"));
    assert!(text.contains("Đã tiếp nhận"), "status in Vietnamese");
    assert!(text.contains(&format!("/declarations/{id}/withdraw")));

    // The list shows it; the search finds it by a piece of the LRN in any case; a status
    // filter that does not match shows the empty state.
    let list = b.get("/declarations").await;
    assert_eq!(list.status, 200);
    assert!(list.text().contains(&reference));
    let found = b.get("/declarations?q=sv-im-2026").await.text();
    assert!(found.contains(&reference));
    let none = b.get("/declarations?q=NOPE").await.text();
    assert!(!none.contains(&reference));
    let cleared = b.get("/declarations?status=cleared").await.text();
    assert!(!cleared.contains(&reference));
    assert!(cleared.contains("Không có tờ khai nào phù hợp"));

    // The exact bytes, as an attachment.
    let doc = b.get(&format!("/declarations/{id}/document")).await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.body, xml);
    assert_eq!(
        doc.headers.get("content-disposition").unwrap(),
        &format!("attachment; filename=\"{reference}.xml\"")
    );

    // Refused: 422, the document as numbered lines, the error code right after its line.
    let bad = fixture(HS_UNKNOWN);
    let api_refusal = app.submit(&token, bad.clone()).await;
    assert_eq!(api_refusal.status, 422);
    let line = api_refusal.json()["errors"][0]["line"].as_u64().unwrap();
    let r = b.upload("/declarations/new", Some(&csrf), &bad).await;
    assert_eq!(r.status, 422);
    let text = r.text();
    assert!(text.contains("role=\"alert\""));
    assert!(text.contains("class=\"source\""));
    let row = after(
        &text,
        &format!("<tr id=\"line-{line}\" class=\"bad\"><td class=\"ln\">{line}</td>"),
    );
    let next_row_end = row.find("</tr>").unwrap();
    let message_row = &row[next_row_end..];
    assert!(
        message_row
            .trim_start_matches("</tr>")
            .trim_start()
            .starts_with("<tr class=\"msg\">"),
        "a message row follows the line"
    );
    let message_row = &message_row[..message_row[5..].find("</tr>").unwrap() + 5];
    assert!(message_row.contains("HS_UNKNOWN"), "{message_row}");
    assert!(message_row.contains("/Declaration/Item[3]/HSCode"));

    // Malformed XML: its line too.
    let r = b
        .upload(
            "/declarations/new",
            Some(&csrf),
            b"<?xml version=\"1.0\"?>\n<Declaration>\n<Header>\n</Declaration>\n",
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("XML_MALFORMED"));

    // Another trader: 404 everywhere.
    let mut other = Browser::login(&app, "0309999999").await;
    assert_eq!(other.get(&location).await.status, 404);
    assert_eq!(
        other
            .get(&format!("/declarations/{id}/document"))
            .await
            .status,
        404
    );
    let other_csrf = other.get("/declarations").await.csrf();
    assert_eq!(
        other
            .post_form(
                &format!("/declarations/{id}/withdraw"),
                &[("csrf", &other_csrf)]
            )
            .await
            .status,
        404
    );
    assert!(!other.get("/declarations").await.text().contains(&reference));

    // Withdrawal: without the token 403, with it the status moves.
    let w = b
        .post_form(&format!("/declarations/{id}/withdraw"), &[])
        .await;
    assert_eq!(w.status, 403);
    let w = b
        .post_form(&format!("/declarations/{id}/withdraw"), &[("csrf", &csrf)])
        .await;
    assert_eq!(w.status, 303);
    let page = b.get(&location).await.text();
    assert!(page.contains("Đã rút"));
    assert!(!page.contains(&format!("/declarations/{id}/withdraw")));
    let api = app
        .get(&token, &format!("/api/v1/declarations/{id}"))
        .await
        .json();
    assert_eq!(api["status"], "withdrawn");
}

/// The rice export application as the form posts it.
fn rice_form<'a>(csrf: &'a str, hs: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("application_type", "EXL"),
        ("direction", "EX"),
        ("agency", "MOIT"),
        ("reference", "EXL-APP-2026-0152"),
        ("cp_id", "PH-NFA-2026-0091"),
        ("cp_name", "Luzon Rice Importers Corporation"),
        ("cp_street", "1850 Roxas Boulevard, Malate"),
        ("cp_city", "Manila"),
        ("cp_post_code", "1004"),
        ("cp_country", "PH"),
        ("export_country", "VN"),
        ("import_country", "PH"),
        ("valid_from", "2026-12-01"),
        ("valid_to", "2027-05-31"),
        ("line_0_hs_code", hs),
        ("line_0_description", "Gạo trắng hạt dài 5% tấm, bao 50 kg"),
        ("line_0_quantity", "12000"),
        ("line_0_unit", "TNE"),
        ("line_0_value", "6180000.00"),
        ("line_0_currency", "USD"),
        ("attachment_0_type", "OTH"),
        ("attachment_0_reference", "DTM-LRIC-2026-007"),
        ("attachment_0_issue_date", "2026-11-12"),
        ("action", "submit"),
    ]
}

#[tokio::test]
async fn a_trader_applies_with_the_form_answers_a_supplement_and_downloads_the_licence() {
    let app = TestApp::builder().today("2026-11-30").spawn().await;
    let token = trader(&app, RICE_EXPORTER, true).await;
    trader(&app, "0309999999", false).await;
    let moit = app
        .add_party_with_agency(Role::Ministry, "MOIT-OFFICER-1", "MOIT")
        .await;
    let mut b = Browser::login(&app, RICE_EXPORTER).await;

    let form = b.get("/applications/new").await;
    assert_eq!(form.status, 200);
    let text = form.text();
    assert!(text.contains("<label for=\"line_0_hs_code\">"));
    assert!(text.contains("<input type=\"date\"") || text.contains("type=\"date\""));
    let csrf = form.csrf();

    // A line is added without script, the values kept.
    let mut add = rice_form(&csrf, "10063099");
    add.retain(|(k, _)| *k != "action");
    add.push(("action", "add_line"));
    let r = b.post_form("/applications/new", &add).await;
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.contains("id=\"line_1_hs_code\""));
    assert!(text.contains("value=\"PH-NFA-2026-0091\""));
    assert!(text.contains("value=\"remove_line_1\""));

    // Without the token: 403, nothing filed.
    let mut no_csrf = rice_form("", "10063099");
    no_csrf.retain(|(k, _)| *k != "csrf");
    assert_eq!(b.post_form("/applications/new", &no_csrf).await.status, 403);
    assert_eq!(app.count("licence_applications").await, 0);

    // An HS code that is no tariff line: 422, the message beside that line's HS code field.
    let r = b
        .post_form("/applications/new", &rice_form(&csrf, "99999999"))
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    let text = r.text();
    let beside = after(
        &text,
        "<p class=\"field-error\" id=\"line_0_hs_code-error\">",
    );
    assert!(beside[..beside.find("</p>").unwrap()].contains("HS_UNKNOWN"));
    assert!(text.contains("aria-describedby=\"line_0_hs_code-hint line_0_hs_code-error\""));
    assert!(
        text.contains("value=\"99999999\""),
        "the form keeps what was typed"
    );
    assert_eq!(app.count("licence_applications").await, 0);

    // Correct: filed through the API's workflow, routed to MOIT.
    let r = b
        .post_form("/applications/new", &rice_form(&csrf, "10063099"))
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let location = r.location.unwrap();
    let id = location.strip_prefix("/applications/").unwrap().to_owned();
    let api = app
        .get(&token, &format!("/api/v1/licence-applications/{id}"))
        .await
        .json();
    assert_eq!(api["status"], "received");
    assert_eq!(api["agency"], "MOIT");
    assert_eq!(api["lrn"], "EXL-APP-2026-0152");
    let page = b.get(&location).await;
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(text.contains("MOIT-EXL-RICE"));
    assert!(text.contains("Luzon Rice Importers Corporation"));
    assert!(text.contains("DTM-LRIC-2026-007"));
    assert!(b
        .get("/applications")
        .await
        .text()
        .contains("EXL-APP-2026-0152"));

    // Another trader: 404.
    let mut other = Browser::login(&app, "0309999999").await;
    assert_eq!(other.get(&location).await.status, 404);

    // The officer asks for a supplement through the API; the trader answers on the page.
    let r = app
        .post_json(
            &moit,
            &format!("/api/v1/licence-applications/{id}/decision"),
            json!({"action": "request_supplement", "reason": "Send the sales contract with the buyer"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let text = b.get(&location).await.text();
    assert!(text.contains("Send the sales contract with the buyer"));
    assert!(text.contains("<label for=\"note\">"));
    let other_csrf = other.get("/applications").await.csrf();
    assert_eq!(
        other
            .post_form(
                &format!("/applications/{id}/supplement"),
                &[("csrf", &other_csrf), ("note", "not mine")]
            )
            .await
            .status,
        404
    );
    assert_eq!(
        b.post_form(&format!("/applications/{id}/supplement"), &[("note", "x")])
            .await
            .status,
        403,
        "a form without its token is refused"
    );
    let r = b
        .post_form(
            &format!("/applications/{id}/supplement"),
            &[("csrf", "stale"), ("note", "x")],
        )
        .await;
    assert_eq!(r.status, 403);
    let r = b
        .post_form(
            &format!("/applications/{id}/supplement"),
            &[("csrf", &csrf), ("note", "   ")],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("id=\"note-error\""));
    let r = b
        .post_form(
            &format!("/applications/{id}/supplement"),
            &[
                ("csrf", &csrf),
                ("note", "Contract DTM-LRIC-2026-007 attached"),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    let api = app
        .get(&token, &format!("/api/v1/licence-applications/{id}"))
        .await
        .json();
    assert_eq!(api["status"], "supplemented");
    assert!(b.get(&location).await.text().contains("Đã bổ sung"));

    // Issued: the licence is listed with its balance, and its signature is the API's bytes.
    for body in [
        json!({"action": "review"}),
        json!({"action": "issue", "valid_from": "2026-12-01", "valid_until": "2027-05-31"}),
    ] {
        let r = app
            .post_json(
                &moit,
                &format!("/api/v1/licence-applications/{id}/decision"),
                body,
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let number = app
        .get(&token, &format!("/api/v1/licence-applications/{id}"))
        .await
        .json()["licence_number"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(b
        .get(&location)
        .await
        .text()
        .contains(&format!("/licences/{number}")));
    let list = b.get("/licences").await.text();
    assert!(list.contains(&number));
    assert!(list.contains("12.000"), "allowance shown: {list}");
    let page = b.get(&format!("/licences/{number}")).await;
    assert_eq!(page.status, 200);
    let sig = b.get(&format!("/licences/{number}/signature")).await;
    assert_eq!(sig.status, 200);
    assert_eq!(
        sig.headers.get("content-type").unwrap(),
        "application/pkcs7-signature"
    );
    assert_eq!(
        sig.headers.get("content-disposition").unwrap(),
        &format!("attachment; filename=\"{number}.p7s\"")
    );
    let api_sig = app
        .get(&token, &format!("/api/v1/licences/{number}/signature"))
        .await;
    assert_eq!(api_sig.status, 200);
    assert_eq!(sig.body, api_sig.body);
    let doc = b.get(&format!("/licences/{number}/document")).await;
    let api_doc = app
        .get(&token, &format!("/api/v1/licences/{number}/document"))
        .await;
    assert_eq!(doc.body, api_doc.body);
    assert_eq!(other.get(&format!("/licences/{number}")).await.status, 404);
    assert_eq!(
        other
            .get(&format!("/licences/{number}/signature"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn the_form_asks_for_an_address_first_and_other_roles_are_refused() {
    let app = TestApp::spawn().await;
    trader(&app, RICE_EXPORTER, false).await;
    let mut b = Browser::login(&app, RICE_EXPORTER).await;
    let form = b.get("/applications/new").await;
    assert_eq!(form.status, 200);
    let text = form.text();
    assert!(text.contains("href=\"/profile\""));
    assert!(!text.contains("name=\"line_0_hs_code\""));
    for path in [
        "/declarations",
        "/applications",
        "/licences",
        "/certificates",
    ] {
        let p = b.get(path).await;
        assert_eq!(p.status, 200, "{path}");
    }
    assert_eq!(b.get("/declarations/not-a-uuid").await.status, 404);
    assert_eq!(b.get("/licences/NOPE-2026-000001").await.status, 404);
    assert_eq!(b.get("/certificates/NOPE").await.status, 404);

    // A customs officer with a password may not open the trader's pages.
    app.add_party(Role::Customs, "CUSTOMS-HCM-1").await;
    let mut client = app.pool.get().await.unwrap();
    let phc = nsw::passwords::hash(PASSWORD).unwrap();
    nsw::store::parties::set_password(&mut client, "CUSTOMS-HCM-1", &phc, "test")
        .await
        .unwrap();
    let mut c = Browser::login(&app, "CUSTOMS-HCM-1").await;
    assert_eq!(c.get("/declarations").await.status, 403);
    // Nobody logged in: to the log-in page.
    let mut nobody = Browser::new(&app);
    let r = nobody.get("/applications").await;
    assert_eq!(r.status, 303);
    assert!(r.location.unwrap().starts_with("/login"));
}

#[tokio::test]
async fn the_lists_page_by_twenty_keeping_their_filters() {
    let app = TestApp::spawn().await;
    let token = trader(&app, LAPTOPS_IMPORTER, false).await;
    for i in 0..21 {
        let xml = crate::helpers::with_reference(&fixture(LAPTOPS), &format!("PAGE-TEST-{i:02}"));
        assert_eq!(app.submit(&token, xml).await.status, 201);
    }
    let mut b = Browser::login(&app, LAPTOPS_IMPORTER).await;
    let first = b
        .get("/declarations?status=accepted&q=page-test")
        .await
        .text();
    assert!(first.contains("PAGE-TEST-20"), "newest first");
    assert!(!first.contains("PAGE-TEST-00"));
    assert!(first.contains("21 kết quả"));
    assert!(first.contains("href=\"/declarations?status=accepted&#38;q=page-test&#38;page=2\""));
    let second = b
        .get("/declarations?status=accepted&q=page-test&page=2")
        .await
        .text();
    assert!(second.contains("PAGE-TEST-00"));
    assert!(!second.contains("PAGE-TEST-01<"));
    assert!(second.contains("rel=\"prev\""));
    assert!(!second.contains("rel=\"next\""));
}

#[tokio::test]
async fn a_certificate_of_origin_is_listed_with_the_api_s_document_and_signature() {
    let app = TestApp::spawn().await;
    let token = trader(&app, LAPTOPS_IMPORTER, false).await;
    let moit = app
        .add_party_with_agency(Role::Ministry, "MOIT-OFFICER-1", "MOIT")
        .await;
    let form_d = String::from_utf8(fixture("valid/certificate-of-origin/vn-sg-form-d.xml"))
        .unwrap()
        .replacen("<ImportCountry>SG", "<ImportCountry>BN", 1)
        .into_bytes();
    let r = app
        .post_xml(&token, "/api/v1/certificates-of-origin", form_d)
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["id"].as_str().unwrap().to_owned();
    for action in ["review", "issue"] {
        let r = app
            .post_json(
                &moit,
                &format!("/api/v1/licence-applications/{id}/decision"),
                json!({ "action": action }),
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let mut b = Browser::login(&app, LAPTOPS_IMPORTER).await;
    let list = b.get("/certificates").await.text();
    let reference = after(&list, "VN-BN-")
        .split(['<', '"'])
        .next()
        .unwrap()
        .to_owned();
    let page = b.get(&format!("/certificates/{reference}")).await;
    assert_eq!(page.status, 200);
    let app_page = b.get(&format!("/applications/{id}")).await.text();
    assert!(app_page.contains(&format!("href=\"/certificates/{reference}\"")));
    assert!(app_page.contains("(COO)"));
    for part in ["document", "signature"] {
        let mine = b.get(&format!("/certificates/{reference}/{part}")).await;
        assert_eq!(mine.status, 200);
        let api = app
            .get(
                &token,
                &format!("/api/v1/certificates-of-origin/{reference}/{part}"),
            )
            .await;
        assert_eq!(api.status, 200);
        assert_eq!(mine.body, api.body, "{part}");
    }
    trader(&app, "0309999999", false).await;
    let mut other = Browser::login(&app, "0309999999").await;
    assert_eq!(
        other
            .get(&format!("/certificates/{reference}"))
            .await
            .status,
        404
    );
    assert_eq!(
        other
            .get(&format!("/certificates/{reference}/signature"))
            .await
            .status,
        404
    );
}
