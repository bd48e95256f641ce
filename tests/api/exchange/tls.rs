//! Partners over mutual TLS: the connection must be the sender, and the client checks the
//! server.

use std::path::Path;

use base64::Engine;
use nsw::exchange::keys;
use nsw::exchange::signature;
use serde_json::{json, Value};

use super::{acdd_envelope, form_d, Plan};
use crate::helpers::fixture;

fn tls_client(identity_dir: Option<&Path>, trust: &Path) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(trust).unwrap()).unwrap(),
        );
    if let Some(dir) = identity_dir {
        let cert = std::fs::read(dir.join(keys::TLS_CERT)).unwrap();
        let key = keys::KeyDir::at(dir)
            .private_key_pem(keys::TLS_KEY)
            .unwrap();
        b = b.identity(reqwest::Identity::from_pkcs8_pem(&cert, &key).unwrap());
    }
    b.build().unwrap()
}

#[tokio::test]
async fn partners_talk_over_mutual_tls() {
    let plan = Plan::with_tls(&["VN", "SG", "TH"]);
    let vn = plan.start("VN").await;
    let sg = plan.start("SG").await;

    let sent = vn.send_form_d(form_d()).await;
    vn.wait_status(sent["message_id"].as_str().unwrap(), "delivered")
        .await;
    let got = &sg.inbox().await[0];
    assert_eq!(got["message_id"], sent["message_id"]);
    let r = sg
        .post_json(
            &sg.customs,
            &format!(
                "/api/v1/exchange/messages/{}/response",
                got["id"].as_str().unwrap()
            ),
            json!({ "decision": "preference-granted" }),
        )
        .await;
    assert_eq!(r.status, 201);
    sg.wait_status(r.json()["message_id"].as_str().unwrap(), "delivered")
        .await;
    assert_eq!(
        vn.inbox().await[0]["previous_reference"],
        "VN-SG-26-02-0045218"
    );

    let sg_tls = plan
        .tls_ports
        .as_ref()
        .unwrap()
        .iter()
        .find(|(c, _)| c == "SG")
        .unwrap()
        .1;
    let url = format!("https://127.0.0.1:{sg_tls}/exchange/v1/messages");
    let dir = plan.dir.path();
    let sg_ca = dir.join("SG").join(keys::CA_CERT);
    let vn_id = plan.identity_of("VN");
    let (_, env) = acdd_envelope("VN", "SG", &fixture("valid/acdd/vn-th-rice-export.xml"));
    let sig =
        base64::engine::general_purpose::STANDARD.encode(signature::sign(&vn_id, &env).unwrap());
    let post = |client: reqwest::Client| {
        let (url, env, sig) = (url.clone(), env.clone(), sig.clone());
        async move {
            client
                .post(url)
                .header("content-type", "application/xml")
                .header("X-NSW-Signature", sig)
                .body(env)
                .send()
                .await
        }
    };

    // No client certificate: the handshake fails.
    assert!(post(tls_client(None, &sg_ca)).await.is_err());
    // A client certificate from a CA SG does not pin: refused too.
    let rogue = tempfile::tempdir().unwrap();
    keys::init(&keys::KeyDir::at(rogue.path()), "VN", &[]).unwrap();
    assert!(post(tls_client(Some(rogue.path()), &sg_ca)).await.is_err());
    // TH's genuine TLS certificate carrying a message signed by VN: the connection is not
    // the sender.
    let r = post(tls_client(Some(&dir.join("TH")), &sg_ca))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "TLS_CLIENT_MISMATCH");
    // VN's own certificate: accepted.
    let r = post(tls_client(Some(&dir.join("VN")), &sg_ca))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // And the client checks the server: a window that is not SG cannot pose as SG.
    let th_ca = dir.join("TH").join(keys::CA_CERT);
    assert!(post(tls_client(Some(&dir.join("VN")), &th_ca))
        .await
        .is_err());
    assert_eq!(sg.inbound_count().await, 2);
}
