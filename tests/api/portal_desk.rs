//! The officers' desks of the portal through HTTP, logged in like a browser: the ministry
//! officer's inbox (oldest first, with time limits), decisions with their messages beside the
//! fields, issuing, another agency's dossier not found; customs deciding a declaration through
//! its page, a repeated decision refused, forms without their CSRF token refused.

use std::collections::BTreeMap;
use std::sync::Mutex;

use nsw::domain::party::Role;
use reqwest::header::{HeaderMap, CONTENT_TYPE, LOCATION, SET_COOKIE};

use crate::helpers::{fixture, TestApp};

const RICE_APPLICATION: &str = "valid/licence-application/moit-export-licence-rice.xml";
const RICE_DECLARATION: &str = "valid/declaration/02-export-rice-to-ph-moit-licence.xml";
const LAPTOPS: &str = "valid/declaration/01-import-laptops-10-items.xml";
const PASSWORD: &str = "một mật khẩu đủ dài 2026";

/// A browser: cookies kept by hand, redirects not followed (the tests look at them).
struct Browser {
    base: String,
    client: reqwest::Client,
    cookies: Mutex<BTreeMap<String, String>>,
}

struct Page {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The value of the first hidden `csrf` input.
    fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let at = self.body.find(marker).expect("a form with a csrf field") + marker.len();
        let rest = &self.body[at..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

impl Browser {
    fn new(app: &TestApp) -> Browser {
        Browser {
            base: app.address.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Mutex::new(BTreeMap::new()),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Page {
        let rb = rb.header("cookie", self.cookie_header());
        let r = rb.send().await.expect("request");
        for c in r.headers().get_all(SET_COOKIE) {
            let c = c.to_str().unwrap();
            let (pair, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (name, value) = pair.split_once('=').unwrap();
            let mut jar = self.cookies.lock().unwrap();
            if attrs.to_ascii_lowercase().contains("max-age=0") {
                jar.remove(name.trim());
            } else {
                jar.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
        Page {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            body: r.text().await.expect("body"),
        }
    }

    async fn get(&self, path: &str) -> Page {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = serde_urlencoded::to_string(fields).unwrap();
        self.send(
            self.client
                .post(format!("{}{path}", self.base))
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body),
        )
        .await
    }

    /// Logs in through the form, as a person would.
    async fn login(app: &TestApp, party_id: &str) -> Browser {
        let b = Browser::new(app);
        let form = b.get("/login").await;
        assert_eq!(form.status, 200);
        let csrf = form.csrf();
        let done = b
            .post(
                "/login",
                &[
                    ("party_id", party_id),
                    ("password", PASSWORD),
                    ("csrf", &csrf),
                    ("next", "/"),
                ],
            )
            .await;
        assert_eq!(done.status, 303, "{}", done.body);
        assert!(b.cookies.lock().unwrap().contains_key("nsw_session"));
        b
    }
}

async fn set_password(app: &TestApp, id: &str) {
    let mut client = app.pool.get().await.unwrap();
    let phc = nsw::passwords::hash(PASSWORD).unwrap();
    nsw::store::parties::set_password(&mut client, id, &phc, "test")
        .await
        .unwrap();
}

async fn apply(app: &TestApp, token: &str, xml: Vec<u8>) -> String {
    let r = app
        .post_xml(token, "/api/v1/licence-applications", xml)
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()["id"].as_str().unwrap().to_owned()
}

async fn application_status(app: &TestApp, token: &str, id: &str) -> serde_json::Value {
    app.get(token, &format!("/api/v1/licence-applications/{id}"))
        .await
        .json()
}

fn replace(xml: &[u8], from: &str, to: &str) -> Vec<u8> {
    let s = String::from_utf8(xml.to_vec()).unwrap();
    assert!(s.contains(from), "{from} not in document");
    s.replace(from, to).into_bytes()
}

/// The field `id`'s message follows the field itself, close by.
fn message_beside(body: &str, field: &str, message: &str) {
    let at_field = body
        .find(&format!("id=\"{field}\""))
        .unwrap_or_else(|| panic!("no field {field}"));
    let at_error = body[at_field..]
        .find(&format!("id=\"{field}-error\""))
        .unwrap_or_else(|| panic!("no message beside {field}"))
        + at_field;
    assert!(at_error - at_field < 800, "the message is far from {field}");
    let shown = &body[at_error..];
    let shown = &shown[..shown.find("</p>").unwrap()];
    assert!(shown.contains(message), "{shown}");
    assert!(body[at_field..at_error].contains("aria-invalid=\"true\""));
}

#[tokio::test]
async fn an_officer_works_the_inbox_and_decides_through_the_pages() {
    let app = TestApp::builder().today("2026-11-30").spawn().await;
    let enterprise = app.add_party(Role::Enterprise, "1401234568").await;
    let moit = app
        .add_party_with_agency(Role::Ministry, "MOIT-OFFICER-1", "MOIT")
        .await;
    app.add_party_with_agency(Role::Ministry, "PPD-OFFICER-1", "MARD-PPD")
        .await;
    let customs_token = app.add_party(Role::Customs, "CUSTOMS-HCM-1").await;
    for id in [
        "1401234568",
        "MOIT-OFFICER-1",
        "PPD-OFFICER-1",
        "CUSTOMS-HCM-1",
    ] {
        set_password(&app, id).await;
    }
    let first = apply(&app, &enterprise, fixture(RICE_APPLICATION)).await;
    let second = apply(
        &app,
        &enterprise,
        replace(
            &fixture(RICE_APPLICATION),
            "EXL-APP-2026-0152",
            "EXL-APP-2026-0153",
        ),
    )
    .await;
    let reference = |id: &str| {
        let app = &app;
        let enterprise = enterprise.clone();
        let id = id.to_owned();
        async move {
            application_status(app, &enterprise, &id).await["reference"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let (first_ref, second_ref) = (reference(&first).await, reference(&second).await);

    // The inbox lists both, oldest first, each with its time limit in working time.
    let officer = Browser::login(&app, "MOIT-OFFICER-1").await;
    let inbox = officer.get("/inbox").await;
    assert_eq!(inbox.status, 200, "{}", inbox.body);
    let (a, b) = (
        inbox.body.find(&first_ref).expect("first listed"),
        inbox.body.find(&second_ref).expect("second listed"),
    );
    assert!(a < b, "oldest first");
    assert!(inbox.body.contains("ngày làm việc"), "{}", inbox.body);
    assert!(inbox
        .body
        .contains("Công ty Cổ phần Lương thực Đồng Tháp Mười"));

    // The application as read: counterparty, lines, values, attachments.
    let page = officer.get(&format!("/inbox/{first}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for shown in [
        "Luzon Rice Importers Corporation",
        "10063099",
        "DTM-LRIC-2026-007",
        "Gạo nếp",
    ] {
        assert!(page.body.contains(shown), "{shown} not shown");
    }
    let csrf = page.csrf();

    // A supplement request without a reason: the message beside the field, nothing changed.
    let refused = officer
        .post(
            &format!("/inbox/{first}/decision"),
            &[
                ("csrf", &csrf),
                ("action", "request_supplement"),
                ("reason", "  "),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    message_beside(&refused.body, "supplement-reason", "Hãy nhập lý do.");
    assert!(refused.body.contains("role=\"alert\""));
    assert_eq!(
        application_status(&app, &moit, &first).await["status"],
        "received"
    );

    // With a reason the application waits for the applicant.
    let done = officer
        .post(
            &format!("/inbox/{first}/decision"),
            &[
                ("csrf", &csrf),
                ("action", "request_supplement"),
                ("reason", "Thiếu hợp đồng mua bán"),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(
        done.location(),
        format!("/inbox/{first}?done=supplement_requested")
    );
    assert_eq!(
        application_status(&app, &moit, &first).await["status"],
        "supplement_requested"
    );
    let shown = officer.get(done.location()).await;
    assert!(
        shown.body.contains("Đã gửi yêu cầu bổ sung"),
        "{}",
        shown.body
    );

    // The applicant supplements through the API; the officer reviews and issues.
    let r = app
        .post_json(
            &enterprise,
            &format!("/api/v1/licence-applications/{first}/supplement"),
            serde_json::json!({"note": "Hợp đồng số DTM-LRIC-2026-007 kèm theo"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let review = officer
        .post(
            &format!("/inbox/{first}/decision"),
            &[("csrf", &csrf), ("action", "review")],
        )
        .await;
    assert_eq!(review.status, 303, "{}", review.body);
    // Dates out of order: shown beside the validity, nothing issued.
    let bad = officer
        .post(
            &format!("/inbox/{first}/decision"),
            &[
                ("csrf", &csrf),
                ("action", "issue"),
                ("valid_from", "2026-12-01"),
                ("valid_until", "2026-11-30"),
            ],
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    message_beside(
        &bad.body,
        "issue-valid-until",
        "Thời hạn hiệu lực không hợp lệ",
    );
    assert_eq!(app.count("licences").await, 0);
    let issued = officer
        .post(
            &format!("/inbox/{first}/decision"),
            &[
                ("csrf", &csrf),
                ("action", "issue"),
                ("conditions", "Chỉ xuất khẩu sang Philippines"),
                ("valid_from", "2026-11-30"),
                ("valid_until", "2027-11-29"),
            ],
        )
        .await;
    assert_eq!(issued.status, 303, "{}", issued.body);
    assert_eq!(issued.location(), format!("/inbox/{first}?done=issued"));
    let detail = application_status(&app, &moit, &first).await;
    assert_eq!(detail["status"], "issued");
    let number = detail["licence_number"].as_str().unwrap().to_owned();
    let shown = officer.get(issued.location()).await;
    assert!(
        shown
            .body
            .contains(&format!("Đã cấp giấy phép số {number}")),
        "{}",
        shown.body
    );

    // Issuing again: the state machine refuses, as an error page.
    let again = officer
        .post(
            &format!("/inbox/{first}/decision"),
            &[("csrf", &csrf), ("action", "issue")],
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(again.body.contains("TRANSITION_FORBIDDEN"));

    // A form without its token is refused, and changes nothing.
    let forged = officer
        .post(
            &format!("/inbox/{second}/decision"),
            &[("action", "review")],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert_eq!(
        application_status(&app, &moit, &second).await["status"],
        "received"
    );

    // An application received long ago is overdue: said in words, not by colour alone.
    let client = app.pool.get().await.unwrap();
    client
        .execute(
            "UPDATE licence_applications SET received_at = received_at - interval '30 days'
              WHERE id = $1::text::uuid",
            &[&second],
        )
        .await
        .unwrap();
    let inbox = officer.get("/inbox").await;
    let row = &inbox.body[inbox.body.find(&second_ref).unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("class=\"overdue\">quá hạn "), "{row}");

    // The agency's licences, with balances and the exact stored bytes to download.
    let licences = officer.get("/agency/licences").await;
    assert_eq!(licences.status, 200, "{}", licences.body);
    assert!(licences.body.contains(&number));
    let licence = officer.get(&format!("/agency/licences/{number}")).await;
    assert_eq!(licence.status, 200, "{}", licence.body);
    assert!(licence.body.contains("12.000 TNE"), "{}", licence.body);
    let doc = officer
        .get(&format!("/agency/licences/{number}/document"))
        .await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.headers[CONTENT_TYPE], "application/xml");
    assert!(doc.headers["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    let api_doc = app
        .get(
            &moit,
            &format!("/api/v1/licences/{}/document", number.replace('/', "%2F")),
        )
        .await;
    assert_eq!(doc.body.as_bytes(), api_doc.body.as_slice());

    // An officer of another agency sees none of it.
    let other = Browser::login(&app, "PPD-OFFICER-1").await;
    assert_eq!(other.get(&format!("/inbox/{first}")).await.status, 404);
    assert_eq!(other.get(&format!("/inbox/{second}")).await.status, 404);
    assert!(!other.get("/inbox").await.body.contains(&second_ref));
    assert_eq!(
        other
            .get(&format!("/agency/licences/{number}"))
            .await
            .status,
        404
    );

    // A trader may not open the officers' pages.
    let trader = Browser::login(&app, "1401234568").await;
    assert_eq!(trader.get("/inbox").await.status, 403);
    assert_eq!(trader.get("/customs/declarations").await.status, 403);

    // The declaration quoting the licence: customs sees the licence each item drew on and
    // the agencies it was held to.
    let declaration = replace(&fixture(RICE_DECLARATION), "045/GCN-XKG", &number);
    let r = app.submit(&enterprise, declaration).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let decl_id = r.json()["id"].as_str().unwrap().to_owned();
    let customs = Browser::login(&app, "CUSTOMS-HCM-1").await;
    let page = customs
        .get(&format!("/customs/declarations/{decl_id}"))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(&number));
    assert!(page.body.contains("MOIT"));
    assert!(page.body.contains("MARD-PPD"));
    assert!(page.body.contains("đang giữ chỗ"), "{}", page.body);
    let cleared = customs
        .post(
            &format!("/customs/declarations/{decl_id}/decision"),
            &[("csrf", &page.csrf()), ("action", "clear")],
        )
        .await;
    assert_eq!(cleared.status, 303, "{}", cleared.body);
    let after = app
        .get(&customs_token, &format!("/api/v1/declarations/{decl_id}"))
        .await
        .json();
    assert_eq!(after["status"], "cleared");
    let page = customs.get(cleared.location()).await;
    assert!(page.body.contains("đã trừ"), "{}", page.body);
}

#[tokio::test]
async fn customs_decides_a_declaration_through_its_page() {
    let app = TestApp::spawn().await;
    let trader = app.add_party(Role::Enterprise, "0301234567").await;
    let token = app.add_party(Role::Customs, "CUSTOMS-HCM-1").await;
    set_password(&app, "CUSTOMS-HCM-1").await;
    let r = app.submit(&trader, fixture(LAPTOPS)).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let reference = r.json()["reference"].as_str().unwrap().to_owned();
    let other = app
        .submit(
            &trader,
            crate::helpers::with_reference(&fixture(LAPTOPS), "LAPTOPS-SECOND"),
        )
        .await;
    assert_eq!(
        other.status,
        201,
        "{}",
        String::from_utf8_lossy(&other.body)
    );
    let other_ref = other.json()["reference"].as_str().unwrap().to_owned();

    let customs = Browser::login(&app, "CUSTOMS-HCM-1").await;
    let list = customs.get("/customs/declarations").await;
    assert_eq!(list.status, 200, "{}", list.body);
    let (a, b) = (
        list.body.find(&reference).unwrap(),
        list.body.find(&other_ref).unwrap(),
    );
    assert!(a < b, "oldest first");
    // Search by reference.
    let found = customs
        .get(&format!("/customs/declarations?q={reference}&status=all"))
        .await;
    assert_eq!(found.status, 200);
    assert!(found.body.contains(&reference));
    assert!(!found.body.contains(&other_ref));

    let page = customs.get(&format!("/customs/declarations/{id}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = page.csrf();
    // A rejection needs its reason, shown beside the field.
    let refused = customs
        .post(
            &format!("/customs/declarations/{id}/decision"),
            &[("csrf", &csrf), ("action", "reject"), ("reason", "")],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    message_beside(&refused.body, "reject-reason", "Hãy nhập lý do.");
    // Without the token: refused.
    let forged = customs
        .post(
            &format!("/customs/declarations/{id}/decision"),
            &[("action", "clear")],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert_eq!(
        app.get(&token, &format!("/api/v1/declarations/{id}"))
            .await
            .json()["status"],
        "accepted"
    );

    let cleared = customs
        .post(
            &format!("/customs/declarations/{id}/decision"),
            &[("csrf", &csrf), ("action", "clear")],
        )
        .await;
    assert_eq!(cleared.status, 303, "{}", cleared.body);
    assert_eq!(
        cleared.location(),
        format!("/customs/declarations/{id}?done=cleared")
    );
    assert_eq!(
        app.get(&token, &format!("/api/v1/declarations/{id}"))
            .await
            .json()["status"],
        "cleared"
    );
    let shown = customs.get(cleared.location()).await;
    assert!(shown.body.contains("Tờ khai đã được thông quan."));
    // The list of pending declarations no longer shows it.
    assert!(!customs
        .get("/customs/declarations")
        .await
        .body
        .contains(&format!(">{reference}<")));

    // Clearing again is refused by the state machine.
    let again = customs
        .post(
            &format!("/customs/declarations/{id}/decision"),
            &[("csrf", &csrf), ("action", "clear")],
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.body);

    // The same pages in English, after the language switch.
    let switched = customs
        .get(&format!("/language/en?next=/customs/declarations/{id}"))
        .await;
    assert_eq!(switched.status, 303);
    let english = customs.get(switched.location()).await;
    assert_eq!(english.status, 200);
    assert!(
        english.body.contains("<html lang=\"en\">"),
        "{}",
        english.body
    );
    assert!(english.body.contains("Customs value"));
    assert!(english.body.contains("Agencies held to"));

    // The partner documents page opens (nothing received yet).
    let partner = customs.get("/customs/partner-documents").await;
    assert_eq!(partner.status, 200, "{}", partner.body);
    assert_eq!(
        customs
            .get("/customs/partner-documents/00000000-0000-7000-8000-000000000000")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn customs_answers_a_partner_document_through_its_page() {
    let plan = crate::exchange::Plan::new(&["VN", "SG"]);
    let vn = plan.start("VN").await;
    let sg = plan.start("SG").await;
    let form = vn.send_form_d(crate::exchange::form_d()).await;
    vn.wait_status(form["message_id"].as_str().unwrap(), "delivered")
        .await;
    sg.app.add_party(Role::Customs, "SG-CUSTOMS-DESK").await;
    set_password(&sg.app, "SG-CUSTOMS-DESK").await;

    let customs = Browser::login(&sg.app, "SG-CUSTOMS-DESK").await;
    let list = customs.get("/customs/partner-documents").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains("VN-SG-26-02-0045218"), "{}", list.body);
    let id = sg.inbox().await[0]["id"].as_str().unwrap().to_owned();
    let page = customs
        .get(&format!("/customs/partner-documents/{id}"))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    // Singapore's window speaks English. The document is shown as text, escaped.
    assert!(page.body.contains("<html lang=\"en\">"));
    assert!(
        page.body.contains("&#60;CertificateOfOrigin"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<CertificateOfOrigin"));
    assert!(page.body.contains("value=\"preference-granted\""));
    let csrf = page.csrf();

    // A refusal needs its reason, beside the field.
    let refused = customs
        .post(
            &format!("/customs/partner-documents/{id}/response"),
            &[
                ("csrf", &csrf),
                ("decision", "preference-not-granted"),
                ("reason", ""),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    message_beside(&refused.body, "reason", "Enter a reason.");
    assert_eq!(sg.inbox().await[0]["status"], "received");

    let answered = customs
        .post(
            &format!("/customs/partner-documents/{id}/response"),
            &[
                ("csrf", &csrf),
                ("decision", "preference-not-granted"),
                ("reason", "RVC not substantiated"),
            ],
        )
        .await;
    assert_eq!(answered.status, 303, "{}", answered.body);
    assert_eq!(sg.inbox().await[0]["status"], "answered");
    let shown = customs.get(answered.location()).await;
    assert!(shown
        .body
        .contains("The business response was sent to the partner."));
    assert!(
        shown.body.contains("<td>preference-not-granted</td>"),
        "{}",
        shown.body
    );
    // Answered once only: a second answer is refused as a conflict.
    let again = customs
        .post(
            &format!("/customs/partner-documents/{id}/response"),
            &[("csrf", &csrf), ("decision", "preference-granted")],
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
}
