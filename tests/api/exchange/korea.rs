//! Korea's own certificate of origin format, there and back.

use serde_json::json;

use super::{form_d, Plan};

#[tokio::test]
async fn korea_gets_certificates_in_its_own_format_and_back() {
    let plan = Plan::new(&["VN", "KR"]);
    let dir = plan.dir.path();
    let table = |country: &str, profile: &str| {
        format!(
            "[[partner]]\ncountry = \"{country}\"\nendpoint = \"http://127.0.0.1:{}/exchange/v1/messages\"\nca_cert = \"{country}/ca.crt\"\ndocuments = [\"CERTIFICATE_OF_ORIGIN_KR\", \"BUSINESS_RESPONSE\"]\nprofile = \"{profile}\"\n",
            plan.port(country)
        )
    };
    std::fs::write(dir.join("VN-partners.toml"), table("KR", "kr")).unwrap();
    std::fs::write(dir.join("KR-partners.toml"), table("VN", "asw")).unwrap();
    let vn = plan.start("VN").await;
    let kr = plan.start("KR").await;

    let to_korea = String::from_utf8(form_d()).unwrap().replace(
        "<ImportCountry>SG</ImportCountry>",
        "<ImportCountry>KR</ImportCountry>",
    );
    let sent = vn.send_form_d(to_korea.clone().into_bytes()).await;
    assert_eq!(sent["document_type"], "CERTIFICATE_OF_ORIGIN_KR");
    vn.wait_status(sent["message_id"].as_str().unwrap(), "delivered")
        .await;

    let got = &kr.inbox().await[0];
    assert_eq!(got["document_type"], "CERTIFICATE_OF_ORIGIN_KR");
    let id = got["id"].as_str().unwrap();
    let env = kr
        .app
        .get(
            &kr.customs,
            &format!("/api/v1/exchange/inbox/{id}/envelope"),
        )
        .await;
    let env = String::from_utf8(env.body).unwrap();
    assert!(env.contains("<KoreaCertificateOfOrigin xmlns=\"urn:nsw:partner:kr:coo:1\">"));
    assert!(env.contains("<CertificateNo>VN-SG-26-02-0045218</CertificateNo>"));
    // Mapped back into our own certificate of origin for the inbox.
    let doc = kr
        .app
        .get(
            &kr.customs,
            &format!("/api/v1/exchange/inbox/{id}/document"),
        )
        .await;
    assert_eq!(doc.status, 200);
    let doc = String::from_utf8(doc.body).unwrap();
    assert!(doc.contains("<CertificateOfOrigin xmlns=\"urn:nsw:certificate-of-origin:1\">"));
    assert!(doc.contains("<OriginCriterion>RVC 42%</OriginCriterion>"));

    // The received certificate is found by its reference, as proof of origin.
    let client = kr.app.pool.get().await.unwrap();
    let found = nsw::store::inbound::certificate_of_origin(&client, "VN-SG-26-02-0045218")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        found.message_id.to_string(),
        sent["message_id"].as_str().unwrap()
    );

    // Korea answers; the response comes back in the same conversation.
    let r = kr
        .post_json(
            &kr.customs,
            &format!("/api/v1/exchange/messages/{id}/response"),
            json!({ "decision": "preference-granted" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    kr.wait_status(r.json()["message_id"].as_str().unwrap(), "delivered")
        .await;
    let back = &vn.inbox().await[0];
    assert_eq!(back["document_type"], "BUSINESS_RESPONSE");
    assert_eq!(back["conversation_id"], sent["conversation_id"]);

    // What Korea's format cannot say is refused, not sent as something else.
    let ctc = to_korea.replace(
        "<OriginCriterion>WO</OriginCriterion>",
        "<OriginCriterion>CTC</OriginCriterion>",
    );
    let r = vn
        .app
        .post_xml(&vn.admin, "/api/v1/admin/exchange/form-d", ctc.into_bytes())
        .await;
    assert_eq!(
        (r.status, r.json()["code"].as_str().unwrap()),
        (409, "PROFILE_UNMAPPABLE")
    );
    // Nothing was enqueued for the refused certificate.
    assert_eq!(vn.app.count("outbox").await, 1);
}
