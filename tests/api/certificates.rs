//! Certificates of origin through real HTTP: an exporter applies with a Form D, Industry and
//! Trade issues it, the e-Form D reaches the partner window, and an importer quotes a received
//! e-Form D as proof of origin.

use nsw::domain::party::Role;
use serde_json::{json, Value};

use crate::exchange::{declarant_of, Plan, Window};
use crate::helpers::fixture;
use crate::support::deposit_fixture_licences;

const FORM_D: &str = "valid/certificate-of-origin/vn-sg-form-d.xml";
const EXPORTER: &str = "0301234567";
const BOOKS_FROM_SG: &str = "valid/declaration/07-import-books-mic-air-sgd.xml";

fn replace(xml: &[u8], from: &str, to: &str) -> Vec<u8> {
    let s = String::from_utf8(xml.to_vec()).unwrap();
    assert!(s.contains(from), "{from} not in document");
    s.replacen(from, to, 1).into_bytes()
}

async fn decide(w: &Window, officer: &str, id: &str, action: &str) -> crate::helpers::Resp {
    w.post_json(
        officer,
        &format!("/api/v1/licence-applications/{id}/decision"),
        json!({ "action": action }),
    )
    .await
}

fn openssl_verify(dir: &std::path::Path, content: &str) -> std::process::Output {
    std::process::Command::new("openssl")
        .args([
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            "sig.der",
            "-content",
            content,
            "-CAfile",
            "agency.pem",
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ])
        .current_dir(dir)
        .output()
        .unwrap()
}

#[tokio::test]
async fn moit_issues_a_form_d_that_reaches_the_partner_window_signed() {
    let plan = Plan::new(&["VN", "SG"]);
    let vn = plan.start("VN").await;
    let sg = plan.start("SG").await;
    let exporter = vn.app.add_party(Role::Enterprise, EXPORTER).await;
    let moit = vn
        .app
        .add_party_with_agency(Role::Ministry, "VN-MOIT-OFFICER-1", "MOIT")
        .await;
    let mard = vn
        .app
        .add_party_with_agency(Role::Ministry, "VN-MARD-OFFICER-1", "MARD-PPD")
        .await;
    let other = vn.app.add_party(Role::Enterprise, "0309999999").await;

    // Only the exporter named in the Form D may apply.
    let r = vn
        .app
        .post_xml(&other, "/api/v1/certificates-of-origin", fixture(FORM_D))
        .await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["code"], "PARTY_MISMATCH");
    // An export from another country is not this window's to certify.
    let foreign = replace(&fixture(FORM_D), "<ExportCountry>VN", "<ExportCountry>TH");
    let r = vn
        .app
        .post_xml(&exporter, "/api/v1/certificates-of-origin", foreign)
        .await;
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["errors"][0]["code"], "ORIGIN_EXPORT_COUNTRY");
    assert_eq!(
        r.json()["errors"][0]["path"],
        "/CertificateOfOrigin/ExportCountry"
    );

    let r = vn
        .app
        .post_xml(&exporter, "/api/v1/certificates-of-origin", fixture(FORM_D))
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let receipt = r.json();
    assert_eq!(receipt["agency"], "MOIT");
    assert_eq!(receipt["procedure_code"], "MOIT-COO-FORM-D");
    let id = receipt["id"].as_str().unwrap().to_owned();

    // It sits in MOIT's inbox, not in MARD's; MARD cannot act on it at all.
    let inbox = vn.app.get(&moit, "/api/v1/inbox").await.json();
    assert_eq!(inbox["items"].as_array().unwrap().len(), 1);
    let inbox = vn.app.get(&mard, "/api/v1/inbox").await.json();
    assert!(inbox["items"].as_array().unwrap().is_empty());
    assert_eq!(decide(&vn, &mard, &id, "review").await.status, 404);
    assert_eq!(decide(&vn, &moit, &id, "review").await.status, 200);
    let r = decide(&vn, &mard, &id, "issue").await;
    assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(vn.app.count("certificates_of_origin").await, 0);

    let r = decide(&vn, &moit, &id, "issue").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let issued = r.json();
    assert_eq!(issued["application"]["status"], "issued");
    let reference = issued["certificate_reference"].as_str().unwrap().to_owned();
    assert!(reference.starts_with("VN-SG-"), "{reference}");
    assert_eq!(issued["e_form_d"]["receiver"], "SG");
    assert_eq!(issued["e_form_d"]["document_type"], "FORM_D");
    let message_id = issued["e_form_d"]["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Issuing twice is a forbidden transition and leaves one certificate.
    assert_eq!(decide(&vn, &moit, &id, "issue").await.status, 409);
    assert_eq!(vn.app.count("certificates_of_origin").await, 1);

    // The certificate as issued: the window's reference, date and authority, valid against the
    // schema (xmllint), and MOIT's signature verifies with the openssl command line.
    let path = format!("/api/v1/certificates-of-origin/{reference}");
    let meta = vn.app.get(&exporter, &path).await;
    assert_eq!(meta.status, 200, "{}", String::from_utf8_lossy(&meta.body));
    assert_eq!(meta.json()["outbox_message"], message_id.as_str());
    let doc = vn
        .app
        .get(&exporter, &format!("{path}/document"))
        .await
        .body;
    let text = String::from_utf8(doc.clone()).unwrap();
    assert!(text.contains(&format!("<ReferenceNumber>{reference}</ReferenceNumber>")));
    assert!(text.contains("<Code>MOIT</Code>"));
    assert!(!text.contains("VN-SG-26-02-0045218"));
    let sig = vn
        .app
        .get(&exporter, &format!("{path}/signature"))
        .await
        .body;
    let cert = vn
        .app
        .get(&exporter, "/api/v1/agencies/MOIT/certificates")
        .await;
    assert_eq!(cert.status, 200);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("form-d.xml"), &doc).unwrap();
    std::fs::write(dir.path().join("sig.der"), &sig).unwrap();
    std::fs::write(dir.path().join("agency.pem"), &cert.body).unwrap();
    let ok = openssl_verify(dir.path(), "form-d.xml");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let mut tampered = doc.clone();
    let at = text.find("<Remarks>").unwrap() + 9;
    tampered[at] ^= 0x01;
    std::fs::write(dir.path().join("tampered.xml"), &tampered).unwrap();
    assert!(!openssl_verify(dir.path(), "tampered.xml").status.success());
    let lint = std::process::Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(
            crate::helpers::repo_root()
                .join("schemas/certificate-of-origin/1/certificate-of-origin.xsd"),
        )
        .arg(dir.path().join("form-d.xml"))
        .output()
        .unwrap();
    assert!(
        lint.status.success(),
        "{}",
        String::from_utf8_lossy(&lint.stderr)
    );

    // Nobody else sees it: another exporter, another agency's officer.
    assert_eq!(vn.app.get(&other, &path).await.status, 404);
    assert_eq!(
        vn.app.get(&mard, &format!("{path}/document")).await.status,
        404
    );
    assert_eq!(vn.app.get(&moit, &path).await.status, 200);

    // The e-Form D reaches SG once, with a signed receipt, carrying the issued bytes.
    let delivered = vn.wait_status(&message_id, "delivered").await;
    assert!(delivered["receipt"]
        .as_str()
        .unwrap()
        .contains("<Status>accepted</Status>"));
    let inbox = sg.inbox().await;
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0]["document_type"], "FORM_D");
    assert_eq!(inbox[0]["sender"], "VN");
    assert_eq!(inbox[0]["reference"], reference.as_str());
    assert_eq!(sg.inbound_count().await, 1);
    let inbound = inbox[0]["id"].as_str().unwrap();
    let receipt_sig = sg
        .app
        .get(
            &sg.customs,
            &format!("/api/v1/exchange/inbox/{inbound}/receipt-signature"),
        )
        .await;
    assert_eq!(receipt_sig.status, 200);
    assert!(!receipt_sig.body.is_empty());
    let carried = sg
        .app
        .get(
            &sg.customs,
            &format!("/api/v1/exchange/inbox/{inbound}/document"),
        )
        .await
        .body;
    let carried = String::from_utf8(carried).unwrap();
    let body_of = |s: &str| {
        s[s.find("<CertificateOfOrigin").unwrap()..]
            .trim_end()
            .to_owned()
    };
    assert_eq!(body_of(&carried), body_of(&text));

    // One transaction wrote all of it: the event, the audit entries, the outbox row.
    let client = vn.app.pool.get().await.unwrap();
    let events: Vec<String> = client
        .query(
            "SELECT status FROM dossier_events WHERE dossier_id = $1::text::uuid ORDER BY at, id",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(events.last().map(String::as_str), Some("issued"));
    let actions: Vec<String> = client
        .query(
            "SELECT action FROM audit_log WHERE subject IN ($1, $2) ORDER BY id",
            &[&reference, &message_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        actions[..2],
        ["exchange.enqueued", "certificate_of_origin.issued"]
    );
    // Certificates are immutable.
    let refused = client
        .execute(
            "UPDATE certificates_of_origin SET issue_date = issue_date + 1",
            &[],
        )
        .await;
    assert!(refused.is_err());
}

#[tokio::test]
async fn a_certificate_for_a_country_without_a_partner_window_is_issued_without_a_message() {
    let plan = Plan::new(&["VN", "SG"]);
    let vn = plan.start("VN").await;
    let exporter = vn.app.add_party(Role::Enterprise, EXPORTER).await;
    let moit = vn
        .app
        .add_party_with_agency(Role::Ministry, "VN-MOIT-OFFICER-2", "MOIT")
        .await;
    let to_brunei = replace(&fixture(FORM_D), "<ImportCountry>SG", "<ImportCountry>BN");
    let r = vn
        .app
        .post_xml(&exporter, "/api/v1/certificates-of-origin", to_brunei)
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(decide(&vn, &moit, &id, "review").await.status, 200);
    let r = decide(&vn, &moit, &id, "issue").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["e_form_d"], Value::Null);
    assert!(r.json()["certificate_reference"]
        .as_str()
        .unwrap()
        .starts_with("VN-BN-"));
    assert_eq!(vn.app.count("outbox").await, 0);
    assert_eq!(vn.app.count("certificates_of_origin").await, 1);
}

/// A Form D issued in Singapore for books exported to Viet Nam (item HS 4901.99).
fn sg_form_d(reference: &str) -> Vec<u8> {
    let x = fixture(FORM_D);
    let x = replace(&x, "VN-SG-26-02-0045218", reference);
    let x = replace(&x, "<ExportCountry>VN", "<ExportCountry>SG");
    let x = replace(&x, "<ImportCountry>SG", "<ImportCountry>VN");
    let x = replace(&x, "<HSCode>100630", "<HSCode>490199");
    replace(&x, "<HSCode>190219", "<HSCode>490199")
}

/// Declaration 07 (books from SG) with a certificate of origin quoted on item `item`.
fn books_quoting(reference: &str, item: u32) -> Vec<u8> {
    let xml = String::from_utf8(fixture(BOOKS_FROM_SG)).unwrap();
    let start = xml.find(&format!("<Number>{item}</Number>")).unwrap();
    let at = start + xml[start..].find("</Document>").unwrap() + "</Document>".len();
    let coo = format!(
        "\n    <Document>\n      <Type>COO</Type>\n      <Reference>{reference}</Reference>\n      <IssueDate>2026-05-12</IssueDate>\n    </Document>"
    );
    let mut out = xml;
    out.insert_str(at, &coo);
    out.into_bytes()
}

#[tokio::test]
async fn an_import_quoting_a_received_e_form_d_is_held_to_it() {
    let plan = Plan::new(&["VN", "SG"]);
    let vn = plan.start("VN").await;
    let sg = plan.start("SG").await;
    deposit_fixture_licences(&vn.app).await;
    let sent = sg.send_form_d(sg_form_d("SG-VN-26-0000777")).await;
    sg.wait_status(sent["message_id"].as_str().unwrap(), "delivered")
        .await;
    let importer = vn
        .app
        .add_party(Role::Enterprise, &declarant_of(&fixture(BOOKS_FROM_SG)))
        .await;

    // An e-Form D nobody sent: refused, naming the item, nothing stored.
    let before = vn.app.footprint().await;
    let r = vn
        .app
        .submit(&importer, books_quoting("SG-VN-26-0000999", 1))
        .await;
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    let err = &r.json()["errors"][0];
    assert_eq!(err["code"], "ORIGIN_CERTIFICATE_NOT_FOUND");
    assert_eq!(err["path"], "/Declaration/Item[1]");
    assert!(err["line"].as_u64().unwrap() > 0);
    assert_eq!(vn.app.footprint().await, before);

    // Quoted on item 2 (HS 4901.91), which the certificate does not cover.
    let r = vn
        .app
        .submit(&importer, books_quoting("SG-VN-26-0000777", 2))
        .await;
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    let errors = r.json()["errors"].as_array().unwrap().clone();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["code"], "ORIGIN_CERTIFICATE_MISMATCH");
    assert_eq!(errors[0]["path"], "/Declaration/Item[2]");
    assert!(errors[0]["message"].as_str().unwrap().contains("490191"));
    assert_eq!(vn.app.footprint().await, before);

    // Quoted on item 1 (HS 4901.99), which it covers: accepted (the licence's quantities
    // allow one such declaration, so this comes last).
    let r = vn
        .app
        .submit(&importer, books_quoting("SG-VN-26-0000777", 1))
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
}

#[tokio::test]
async fn an_e_form_d_from_another_window_is_not_proof_for_this_export_country() {
    let plan = Plan::new(&["VN", "SG", "TH"]);
    let vn = plan.start("VN").await;
    let th = plan.start("TH").await;
    deposit_fixture_licences(&vn.app).await;
    // Thailand sends a Form D; an import from Singapore quotes it.
    let x = replace(
        &sg_form_d("TH-VN-26-0000001"),
        "<ExportCountry>SG",
        "<ExportCountry>TH",
    );
    let sent = th.send_form_d(x).await;
    th.wait_status(sent["message_id"].as_str().unwrap(), "delivered")
        .await;
    let importer = vn
        .app
        .add_party(Role::Enterprise, &declarant_of(&fixture(BOOKS_FROM_SG)))
        .await;
    let r = vn
        .app
        .submit(&importer, books_quoting("TH-VN-26-0000001", 1))
        .await;
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    let err = &r.json()["errors"][0];
    assert_eq!(err["code"], "ORIGIN_CERTIFICATE_MISMATCH");
    assert!(err["message"]
        .as_str()
        .unwrap()
        .contains("received from TH"));
}
