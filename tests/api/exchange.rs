//! Exchange between two running windows through real HTTP: Viet Nam and a partner, each with
//! its own database, keys and partner table.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use nsw::config::Settings;
use nsw::domain::party::Role;
use nsw::exchange::envelope::{self, Header};
use nsw::exchange::keys::{self, Identity, Validity};
use nsw::exchange::signature;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{
    fixture, fresh_database, spawn_app_with, test_settings, without_jobs, TestApp,
};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One window of a test exchange.
pub struct Window {
    pub app: TestApp,
    pub admin: String,
    pub customs: String,
}

pub struct Plan {
    pub dir: tempfile::TempDir,
    pub ports: Vec<(String, u16)>,
    /// Mutual-TLS partner listener ports, when the windows talk over TLS.
    pub tls_ports: Option<Vec<(String, u16)>>,
}

impl Plan {
    /// Keys for every country and a partner table for each naming all the others.
    pub fn new(countries: &[&str]) -> Plan {
        Self::build(countries, false)
    }

    /// Windows that deliver to each other over mutual TLS.
    pub fn with_tls(countries: &[&str]) -> Plan {
        Self::build(countries, true)
    }

    fn build(countries: &[&str], tls: bool) -> Plan {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(String, u16)> = countries
            .iter()
            .map(|c| (c.to_string(), free_port()))
            .collect();
        let tls_ports: Option<Vec<(String, u16)>> = tls.then(|| {
            countries
                .iter()
                .map(|c| (c.to_string(), free_port()))
                .collect()
        });
        let endpoints = tls_ports.as_ref().unwrap_or(&ports);
        let scheme = if tls { "https" } else { "http" };
        for (c, _) in &ports {
            keys::init(&dir.path().join(c), c, &[]).unwrap();
        }
        for (c, _) in &ports {
            let mut toml = String::new();
            for (other, port) in endpoints.iter().filter(|(o, _)| o != c) {
                toml.push_str(&format!(
                    "[[partner]]\ncountry = \"{other}\"\nendpoint = \"{scheme}://127.0.0.1:{port}/exchange/v1/messages\"\nca_cert = \"{other}/ca.crt\"\ndocuments = [\"ACDD\", \"FORM_D\", \"BUSINESS_RESPONSE\"]\nprofile = \"asw\"\n\n"
                ));
            }
            std::fs::write(dir.path().join(format!("{c}-partners.toml")), toml).unwrap();
        }
        Plan {
            dir,
            ports,
            tls_ports,
        }
    }

    pub fn port(&self, country: &str) -> u16 {
        self.ports.iter().find(|(c, _)| c == country).unwrap().1
    }

    pub fn settings(&self, country: &str, database_url: &str) -> Settings {
        let mut s = test_settings(database_url);
        s.country = country.into();
        s.listen = format!("127.0.0.1:{}", self.port(country));
        s.exchange.keys_dir = Some(self.dir.path().join(country));
        s.exchange.partners_file = Some(self.dir.path().join(format!("{country}-partners.toml")));
        s.exchange.retry_base_ms = 100;
        s.exchange.retry_max_ms = 400;
        s.exchange.poll_ms = 50;
        s.exchange.lease_secs = 12;
        s.exchange.request_timeout_ms = 5_000;
        if let Some(tls) = &self.tls_ports {
            let port = tls.iter().find(|(c, _)| c == country).unwrap().1;
            s.exchange.tls_listen = Some(format!("127.0.0.1:{port}"));
        }
        s
    }

    pub async fn start(&self, country: &str) -> Window {
        let db = fresh_database().await;
        self.start_with(self.settings(country, &db)).await
    }

    /// A window with no background job running: its outbox moves only when the test runs it
    /// (`window.app.run_outbox_once()`).
    pub async fn start_without_jobs(&self, country: &str) -> Window {
        let db = fresh_database().await;
        self.start_with(without_jobs(self.settings(country, &db)))
            .await
    }

    pub async fn start_with(&self, settings: Settings) -> Window {
        let app = spawn_app_with(settings.clone()).await;
        let country = settings.country.clone();
        let admin = app
            .add_party(Role::Admin, &format!("{country}-ADMIN-{}", short()))
            .await;
        let customs = app
            .add_party(Role::Customs, &format!("{country}-CUSTOMS-{}", short()))
            .await;
        Window {
            app,
            admin,
            customs,
        }
    }
}

fn short() -> String {
    Uuid::now_v7().simple().to_string()[24..].to_owned()
}

impl Window {
    pub async fn post_json(&self, token: &str, path: &str, body: Value) -> crate::helpers::Resp {
        self.app
            .request(
                reqwest::Method::POST,
                path,
                Some(token),
                &[("content-type", "application/json")],
                Some(body.to_string().into_bytes()),
            )
            .await
    }

    pub async fn fault(&self, fault: Value, times: Option<u32>) {
        let r = self
            .app
            .request(
                reqwest::Method::PUT,
                "/api/v1/admin/exchange/fault",
                Some(&self.admin),
                &[("content-type", "application/json")],
                Some(
                    json!({ "fault": fault, "times": times })
                        .to_string()
                        .into_bytes(),
                ),
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }

    /// Submits an export declaration and has its ACDD enqueued; returns the enqueue answer.
    pub async fn export_acdd(&self, fixture_file: &str) -> Value {
        let xml = fixture(fixture_file);
        let token = self
            .app
            .add_party(Role::Enterprise, &declarant_of(&xml))
            .await;
        let r = self.app.submit(&token, xml).await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let id = r.json()["id"].as_str().unwrap().to_owned();
        let r = self
            .post_json(
                &self.admin,
                "/api/v1/admin/exchange/send",
                json!({ "declaration_id": id }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        r.json()
    }

    pub async fn send_form_d(&self, xml: Vec<u8>) -> Value {
        let r = self
            .app
            .request(
                reqwest::Method::POST,
                "/api/v1/admin/exchange/form-d",
                Some(&self.admin),
                &[("content-type", "application/xml")],
                Some(xml),
            )
            .await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        r.json()
    }

    pub async fn outbox(&self, message_id: &str) -> Value {
        let r = self
            .app
            .get(
                &self.admin,
                &format!("/api/v1/admin/exchange/outbox/{message_id}"),
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()
    }

    /// Polls the outbox until the message reaches `status` (or fails after a generous bound,
    /// which only limits how long a broken build hangs; nothing is asserted about timing).
    pub async fn wait_status(&self, message_id: &str, status: &str) -> Value {
        for _ in 0..600 {
            let m = self.outbox(message_id).await;
            if m["status"] == status {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "message {message_id} never became {status}: {}",
            self.outbox(message_id).await
        );
    }

    pub async fn wait_until(&self, message_id: &str, pred: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..600 {
            let m = self.outbox(message_id).await;
            if pred(&m) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "message {message_id}: condition never met: {}",
            self.outbox(message_id).await
        );
    }

    pub async fn inbox(&self) -> Vec<Value> {
        let r = self.app.get(&self.customs, "/api/v1/exchange/inbox").await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()["items"].as_array().unwrap().clone()
    }

    pub async fn inbound_count(&self) -> i64 {
        self.app.count("inbound_messages").await
    }

    /// Posts raw bytes to this window's message endpoint with a signature.
    pub async fn deliver(&self, envelope: &[u8], sig: Option<&[u8]>) -> crate::helpers::Resp {
        let b64 = sig.map(|s| base64::engine::general_purpose::STANDARD.encode(s));
        let mut headers = vec![("content-type", "application/xml")];
        if let Some(b) = b64.as_deref() {
            headers.push(("X-NSW-Signature", b));
        }
        self.app
            .request(
                reqwest::Method::POST,
                "/exchange/v1/messages",
                None,
                &headers,
                Some(envelope.to_vec()),
            )
            .await
    }
}

pub fn declarant_of(xml: &[u8]) -> String {
    let s = String::from_utf8_lossy(xml);
    let d = s.find("<Declarant>").unwrap();
    let start = d + s[d..].find("<ID>").unwrap() + 4;
    let end = start + s[start..].find("</ID>").unwrap();
    s[start..end].to_owned()
}

pub fn form_d() -> Vec<u8> {
    fixture("valid/certificate-of-origin/vn-sg-form-d.xml")
}

pub fn acdd_envelope(sender: &str, receiver: &str, payload: &[u8]) -> (Header, Vec<u8>) {
    let h = Header {
        message_id: Uuid::now_v7(),
        conversation_id: Uuid::now_v7(),
        sender: sender.into(),
        sender_party: None,
        receiver: receiver.into(),
        receiver_party: None,
        document_type: "ACDD".into(),
        function: "submit".into(),
        reference: "VNACDD-2026-000418".into(),
        previous_reference: None,
        created_at: envelope::now_rfc3339(),
    };
    let bytes = envelope::build(&h, payload);
    (h, bytes)
}

#[tokio::test]
async fn acdd_form_d_and_business_response_travel_both_ways() {
    let plan = Plan::new(&["VN", "SG"]);
    let vn = plan.start("VN").await;
    let sg = plan.start("SG").await;

    let acdd = vn
        .export_acdd("valid/declaration/23-export-garments-to-sg-sea.xml")
        .await;
    let acdd_id = acdd["message_id"].as_str().unwrap();
    let delivered = vn.wait_status(acdd_id, "delivered").await;
    assert_eq!(delivered["receiver"], "SG");
    assert!(delivered["receipt"]
        .as_str()
        .unwrap()
        .contains("<Status>accepted</Status>"));

    let form = vn.send_form_d(form_d()).await;
    let form_id = form["message_id"].as_str().unwrap();
    vn.wait_status(form_id, "delivered").await;

    let inbox = sg.inbox().await;
    assert_eq!(inbox.len(), 2);
    let got_acdd = inbox.iter().find(|m| m["document_type"] == "ACDD").unwrap();
    assert_eq!(got_acdd["message_id"], acdd["message_id"]);
    assert_eq!(got_acdd["sender"], "VN");
    assert_eq!(got_acdd["reference"], acdd["reference"]);
    let got_form = inbox
        .iter()
        .find(|m| m["document_type"] == "FORM_D")
        .unwrap();
    assert_eq!(got_form["reference"], "VN-SG-26-02-0045218");

    // The envelope is stored byte for byte as VN sent it.
    let sent = vn
        .app
        .get(
            &vn.admin,
            &format!("/api/v1/admin/exchange/outbox/{acdd_id}/envelope"),
        )
        .await
        .body;
    let stored = sg
        .app
        .get(
            &sg.customs,
            &format!(
                "/api/v1/exchange/inbox/{}/envelope",
                got_acdd["id"].as_str().unwrap()
            ),
        )
        .await
        .body;
    assert_eq!(sent, stored);

    // SG customs answers the Form D; the response travels back in the same conversation.
    let r = sg
        .post_json(
            &sg.customs,
            &format!("/api/v1/exchange/messages/{}/response", got_form["id"].as_str().unwrap()),
            json!({ "decision": "preference-not-granted",
                    "reasons": [{ "code": "ORIGIN_CRITERION_NOT_MET", "text": "RVC not substantiated",
                                  "path": "/CertificateOfOrigin/Item[2]/OriginCriterion" }] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let response_id = r.json()["message_id"].as_str().unwrap().to_owned();
    sg.wait_status(&response_id, "delivered").await;
    let back = vn.inbox().await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0]["document_type"], "BUSINESS_RESPONSE");
    assert_eq!(back[0]["function"], "response");
    assert_eq!(back[0]["previous_reference"], "VN-SG-26-02-0045218");
    assert_eq!(back[0]["conversation_id"], form["conversation_id"]);
    // The operator finds the answer from the message it answers.
    let sent = vn
        .app
        .get(
            &vn.admin,
            &format!("/api/v1/admin/exchange/outbox/{form_id}"),
        )
        .await
        .json();
    let answers = sent["answers"].as_array().unwrap();
    assert_eq!(answers.len(), 1, "{sent}");
    assert_eq!(answers[0]["message_id"], back[0]["message_id"]);
    assert_eq!(answers[0]["document_type"], "BUSINESS_RESPONSE");
    // The ACDD, not answered, lists none.
    let acdd_view = vn
        .app
        .get(
            &vn.admin,
            &format!("/api/v1/admin/exchange/outbox/{acdd_id}"),
        )
        .await
        .json();
    assert_eq!(acdd_view["answers"], json!([]));

    // Answered once only.
    let again = sg
        .post_json(
            &sg.customs,
            &format!(
                "/api/v1/exchange/messages/{}/response",
                got_form["id"].as_str().unwrap()
            ),
            json!({ "decision": "preference-granted" }),
        )
        .await;
    assert_eq!(again.status, 409);

    // Roles: an enterprise sees no inbox; customs cannot use the operator console.
    let ent = sg.app.add_party(Role::Enterprise, "SG-ENT-1").await;
    assert_eq!(sg.app.get(&ent, "/api/v1/exchange/inbox").await.status, 403);
    assert_eq!(
        sg.app
            .get(&sg.customs, "/api/v1/admin/exchange/outbox")
            .await
            .status,
        403
    );
    assert_eq!(
        sg.app
            .request(
                reqwest::Method::GET,
                "/api/v1/exchange/inbox",
                None,
                &[],
                None
            )
            .await
            .status,
        401
    );

    // Every state change is in the audit trail.
    let client = vn.app.pool.get().await.unwrap();
    let actions: Vec<String> = client
        .query(
            "SELECT action FROM audit_log WHERE subject = $1 ORDER BY id",
            &[&acdd_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        actions,
        [
            "exchange.enqueued",
            "exchange.sending",
            "exchange.delivered"
        ]
    );
}

#[tokio::test]
async fn a_partner_down_for_a_while_gets_the_message_once_when_it_comes_up() {
    let plan = Plan::new(&["VN", "SG"]);
    let vn = plan.start("VN").await;
    // SG is not running yet: connections are refused.
    let sent = vn.send_form_d(form_d()).await;
    let id = sent["message_id"].as_str().unwrap();
    let failing = vn
        .wait_until(id, |m| m["attempts"].as_i64().unwrap() >= 2)
        .await;
    assert!(
        failing["last_error"]
            .as_str()
            .unwrap()
            .starts_with("transport"),
        "{failing}"
    );
    assert_ne!(failing["status"], "delivered");

    let sg = plan.start("SG").await;
    let done = vn.wait_status(id, "delivered").await;
    assert_eq!(done["message_id"], sent["message_id"]);
    assert_eq!(sg.inbound_count().await, 1);
    let inbox = sg.inbox().await;
    assert_eq!(inbox[0]["message_id"], sent["message_id"]);
}

#[tokio::test]
async fn faults_are_retried_and_the_message_is_stored_once() {
    let plan = Plan::new(&["VN", "SG"]);
    let vn = plan.start("VN").await;
    let sg = plan.start("SG").await;

    for (fault, error) in [
        (json!({ "mode": "status", "status": 503 }), "HTTP 503"),
        (json!({ "mode": "status", "status": 500 }), "HTTP 500"),
        (json!({ "mode": "drop_connection" }), "transport"),
        (
            json!({ "mode": "bad_receipt_signature" }),
            "receipt refused: SIGNATURE_INVALID",
        ),
        (json!({ "mode": "lost_receipt" }), "transport"),
    ] {
        let before = sg.inbound_count().await;
        sg.fault(fault.clone(), Some(1)).await;
        let sent = vn.send_form_d(form_d()).await;
        let id = sent["message_id"].as_str().unwrap();
        let done = vn.wait_status(id, "delivered").await;
        assert_eq!(done["attempts"], 2, "{fault}: {done}");
        assert_eq!(sg.inbound_count().await, before + 1, "{fault}");
        // The failed attempt is in the audit trail with its reason.
        let client = vn.app.pool.get().await.unwrap();
        let err: Value = client
            .query_one(
                "SELECT details FROM audit_log WHERE subject = $1 AND action = 'exchange.retry_wait'",
                &[&id],
            )
            .await
            .unwrap()
            .get(0);
        assert!(
            err["error"].as_str().unwrap().contains(error),
            "{fault}: {err}"
        );
    }
}

#[tokio::test]
async fn a_lost_receipt_is_resent_and_the_same_receipt_comes_back() {
    let plan = Plan::new(&["VN", "SG"]);
    let vn = plan.start("VN").await;
    let sg = plan.start("SG").await;
    sg.fault(json!({ "mode": "lost_receipt" }), Some(1)).await;
    let sent = vn.send_form_d(form_d()).await;
    let id = sent["message_id"].as_str().unwrap();
    let done = vn.wait_status(id, "delivered").await;
    assert_eq!(done["attempts"], 2);
    assert_eq!(sg.inbound_count().await, 1);
    let row = &sg.inbox().await[0];
    let stored_receipt = sg
        .app
        .get(
            &sg.customs,
            &format!(
                "/api/v1/exchange/inbox/{}/receipt",
                row["id"].as_str().unwrap()
            ),
        )
        .await
        .body;
    assert_eq!(
        done["receipt"].as_str().unwrap().as_bytes(),
        &stored_receipt[..]
    );
}

#[tokio::test]
async fn duplicate_deliveries_are_stored_once() {
    let plan = Plan::new(&["VN", "SG"]);
    let vn = plan.start_without_jobs("VN").await;
    let sg = plan.start("SG").await;
    vn.fault(json!({ "mode": "duplicate_delivery" }), None)
        .await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            vn.send_form_d(form_d()).await["message_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(vn.app.run_outbox_once().await, 3);
    for id in &ids {
        let done = vn.outbox(id).await;
        assert_eq!(done["status"], "delivered", "{done}");
        assert_eq!(done["attempts"], 1);
    }
    assert_eq!(sg.inbound_count().await, 3);
}

#[tokio::test]
async fn refused_messages_leave_nothing_behind() {
    let plan = Plan::new(&["VN", "SG", "TH"]);
    let sg = plan.start("SG").await;
    let vn = plan.identity_of("VN");
    let acdd = fixture("valid/acdd/vn-th-rice-export.xml");
    let footprint = || async { (sg.inbound_count().await, sg.app.count("audit_log").await) };
    let empty = footprint().await;

    // Tampered: one byte changed after signing.
    let (_, env) = acdd_envelope("VN", "SG", &acdd);
    let sig = signature::sign(&vn, &env).unwrap();
    let mut tampered = env.clone();
    let pos = tampered
        .windows(6)
        .position(|w| w == b"250000")
        .expect("quantity in the payload");
    tampered[pos] = b'9';
    let r = sg.deliver(&tampered, Some(&sig)).await;
    assert_eq!(
        (r.status, r.json()["code"].as_str().unwrap()),
        (403, "SIGNATURE_INVALID")
    );

    // VN's own certificate and key, but a SHA-1 digest (signed with the openssl command line,
    // as a partner on another toolkit might): a valid signature, refused for its algorithm.
    let vn_dir = plan.dir.path().join("VN");
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("envelope.xml"), &env).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["cms", "-sign", "-binary", "-md", "sha1", "-outform", "DER"])
        .arg("-in")
        .arg(work.path().join("envelope.xml"))
        .arg("-signer")
        .arg(vn_dir.join(keys::SIGNING_CERT))
        .arg("-inkey")
        .arg(vn_dir.join(keys::SIGNING_KEY))
        .arg("-out")
        .arg(work.path().join("envelope.p7s"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sha1 = std::fs::read(work.path().join("envelope.p7s")).unwrap();
    let r = sg.deliver(&env, Some(&sha1)).await;
    assert_eq!(
        (r.status, r.json()["code"].as_str().unwrap()),
        (403, "SIGNATURE_ALGORITHM")
    );

    // Signed by a CA SG does not pin for VN.
    let (rogue_ca, rogue_key) = keys::make_ca("VN", 10).unwrap();
    let (cert, key) = keys::issue(
        &rogue_ca,
        &rogue_key,
        "VN",
        "rogue",
        &Validity::days_from_now(5),
    )
    .unwrap();
    let rogue = Identity {
        cert,
        key,
        ca: rogue_ca,
        country: "VN".into(),
        chain: Vec::new(),
    };
    let r = sg
        .deliver(&env, Some(&signature::sign(&rogue, &env).unwrap()))
        .await;
    assert_eq!(
        (r.status, r.json()["code"].as_str().unwrap()),
        (403, "CERTIFICATE_UNTRUSTED")
    );

    // VN's real CA, but an expired certificate.
    let ca_key = openssl::pkey::PKey::private_key_from_pem(
        &std::fs::read(plan.dir.path().join("VN/ca.key")).unwrap(),
    )
    .unwrap();
    let now = chrono::Utc::now().timestamp();
    let (cert, key) = keys::issue(
        &vn.ca,
        &ca_key,
        "VN",
        "old",
        &Validity {
            not_before: now - 30 * 86_400,
            not_after: now - 86_400,
        },
    )
    .unwrap();
    let expired = Identity {
        cert,
        key,
        ..vn.clone()
    };
    let r = sg
        .deliver(&env, Some(&signature::sign(&expired, &env).unwrap()))
        .await;
    assert_eq!(
        (r.status, r.json()["code"].as_str().unwrap()),
        (403, "CERTIFICATE_EXPIRED")
    );

    // VN's CA, but a certificate for Thailand on a message claiming to come from Viet Nam.
    let (cert, key) =
        keys::issue(&vn.ca, &ca_key, "TH", "th", &Validity::days_from_now(5)).unwrap();
    let th_cert = Identity {
        cert,
        key,
        ..vn.clone()
    };
    let r = sg
        .deliver(&env, Some(&signature::sign(&th_cert, &env).unwrap()))
        .await;
    assert_eq!(
        (r.status, r.json()["code"].as_str().unwrap()),
        (403, "SENDER_CERTIFICATE_MISMATCH")
    );

    // TH's own certificate, but the envelope claims VN.
    let th = plan.identity_of("TH");
    let r = sg
        .deliver(&env, Some(&signature::sign(&th, &env).unwrap()))
        .await;
    assert_eq!(
        (r.status, r.json()["code"].as_str().unwrap()),
        (403, "CERTIFICATE_UNTRUSTED")
    );

    // A sender that is not a partner.
    let (_, kh_env) = acdd_envelope("KH", "SG", &acdd);
    let r = sg
        .deliver(&kh_env, Some(&signature::sign(&vn, &kh_env).unwrap()))
        .await;
    assert_eq!(
        (r.status, r.json()["code"].as_str().unwrap()),
        (403, "PARTNER_UNKNOWN")
    );

    // No signature at all.
    let r = sg.deliver(&env, None).await;
    assert_eq!(
        (r.status, r.json()["code"].as_str().unwrap()),
        (400, "SIGNATURE_MISSING")
    );

    // Properly signed, but the payload breaks its schema: a signed rejected receipt.
    let bad = fixture("invalid/acdd/missing-discharge-port.xml");
    let (h, bad_env) = acdd_envelope("VN", "SG", &bad);
    let r = sg
        .deliver(&bad_env, Some(&signature::sign(&vn, &bad_env).unwrap()))
        .await;
    assert_eq!(r.status, 422);
    let receipt = String::from_utf8(r.body.clone()).unwrap();
    assert!(receipt.contains("<Status>rejected</Status>"), "{receipt}");
    assert!(receipt.contains("<Code>XSD_CONTENT</Code>"), "{receipt}");
    assert!(receipt.contains(&h.message_id.to_string()));
    let rsig = base64::engine::general_purpose::STANDARD
        .decode(r.header("x-nsw-signature").unwrap())
        .unwrap();
    signature::verify(&rsig, &r.body, &plan.identity_of("SG").ca, "SG").unwrap();

    // The envelope's DocumentType must match the payload.
    let mut h2 = h.clone();
    h2.message_id = Uuid::now_v7();
    h2.document_type = "FORM_D".into();
    let mismatch = envelope::build(&h2, &acdd);
    let r = sg
        .deliver(&mismatch, Some(&signature::sign(&vn, &mismatch).unwrap()))
        .await;
    assert_eq!(r.status, 422);
    assert!(String::from_utf8_lossy(&r.body).contains("DOCUMENT_TYPE_MISMATCH"));

    assert_eq!(
        footprint().await,
        empty,
        "a refused message left rows behind"
    );

    // Accepted once; the same id with other bytes is a conflict, and the stored one stays.
    let r = sg.deliver(&env, Some(&sig)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let first_receipt = r.body.clone();
    let r = sg.deliver(&env, Some(&sig)).await;
    assert_eq!((r.status, r.header("x-nsw-duplicate")), (200, Some("true")));
    assert_eq!(r.body, first_receipt);
    let changed = String::from_utf8(env.clone())
        .unwrap()
        .replace("<Function>submit</Function>", "<Function>amend</Function>")
        .into_bytes();
    let r = sg
        .deliver(&changed, Some(&signature::sign(&vn, &changed).unwrap()))
        .await;
    assert_eq!(
        (r.status, r.json()["code"].as_str().unwrap()),
        (409, "MESSAGE_ID_REUSED")
    );
    assert_eq!(sg.inbound_count().await, 1);
}

impl Plan {
    pub fn identity_of(&self, country: &str) -> Identity {
        keys::load(&self.dir.path().join(country), country).unwrap()
    }
}

#[tokio::test]
async fn dead_letters_are_requeued_by_an_operator_with_the_same_id() {
    let plan = Plan::new(&["VN", "SG"]);
    let db = fresh_database().await;
    let mut settings = plan.settings("VN", &db);
    settings.exchange.max_attempts = 2;
    let vn = plan.start_with(settings).await;
    let sg = plan.start("SG").await;
    sg.fault(json!({ "mode": "status", "status": 503 }), None)
        .await;

    let sent = vn.send_form_d(form_d()).await;
    let id = sent["message_id"].as_str().unwrap();
    let dead = vn.wait_status(id, "dead_letter").await;
    assert_eq!(dead["attempts"], 2);
    let listed = vn
        .app
        .get(
            &vn.admin,
            "/api/v1/admin/exchange/outbox?status=dead_letter",
        )
        .await
        .json();
    assert_eq!(listed["items"][0]["message_id"], sent["message_id"]);

    // The database refuses to deliver a failed message behind the state machine's back.
    let client = vn.app.pool.get().await.unwrap();
    let err = client
        .execute(
            "UPDATE outbox SET status = 'delivered', receipt = 'x', receipt_signature = 'x' WHERE message_id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not allowed") || format!("{err:?}").contains("not allowed"),
        "{err:?}"
    );
    assert!(client.execute("DELETE FROM outbox", &[]).await.is_err());

    sg.fault(json!({ "mode": "none" }), None).await;
    let r = vn
        .post_json(
            &vn.admin,
            &format!("/api/v1/admin/exchange/outbox/{id}/requeue"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let done = vn.wait_status(id, "delivered").await;
    assert_eq!(done["message_id"], sent["message_id"]);
    assert_eq!(sg.inbox().await[0]["message_id"], sent["message_id"]);

    // Only dead letters can be requeued.
    let r = vn
        .post_json(
            &vn.admin,
            &format!("/api/v1/admin/exchange/outbox/{id}/requeue"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 409);
    let r = vn
        .post_json(
            &vn.customs,
            &format!("/api/v1/admin/exchange/outbox/{id}/requeue"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn two_sender_instances_on_one_database_never_send_a_message_twice() {
    let plan = Plan::new(&["VN", "SG"]);
    let db = fresh_database().await;
    // Two VN instances: the second on another port, same database and keys.
    let a = plan.start_with(plan.settings("VN", &db)).await;
    let mut second = plan.settings("VN", &db);
    second.listen = "127.0.0.1:0".into();
    let b = plan.start_with(second).await;
    let sg = plan.start("SG").await;
    sg.fault(json!({ "mode": "slow", "delay_ms": 100 }), None)
        .await;

    let mut ids = Vec::new();
    for i in 0..24 {
        let w = if i % 2 == 0 { &a } else { &b };
        ids.push(
            w.send_form_d(form_d()).await["message_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for id in &ids {
        let done = a.wait_status(id, "delivered").await;
        // Claimed once, sent once: a second concurrent claim would have shown as an attempt.
        assert_eq!(done["attempts"], 1, "{done}");
    }
    assert_eq!(sg.inbound_count().await, 24);
    let _ = b;
}

#[tokio::test]
async fn a_stored_signature_verifies_with_the_openssl_command_line() {
    let plan = Plan::new(&["VN", "SG"]);
    let vn = plan.start_without_jobs("VN").await;
    let sg = plan.start("SG").await;
    let sent = vn.send_form_d(form_d()).await;
    assert_eq!(vn.app.run_outbox_once().await, 1);
    let done = vn.outbox(sent["message_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "delivered", "{done}");
    let row = &sg.inbox().await[0];
    let id = row["id"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (part, file) in [
        ("envelope", "envelope.xml"),
        ("signature", "envelope.p7s"),
        ("receipt", "receipt.xml"),
        ("receipt-signature", "receipt.p7s"),
    ] {
        let r = sg
            .app
            .get(&sg.customs, &format!("/api/v1/exchange/inbox/{id}/{part}"))
            .await;
        assert_eq!(r.status, 200);
        std::fs::write(dir.path().join(file), &r.body).unwrap();
    }
    let verify = |sig: &str, content: &str, ca: &Path| {
        std::process::Command::new("openssl")
            .args(["cms", "-verify", "-binary", "-inform", "DER", "-in"])
            .arg(dir.path().join(sig))
            .arg("-content")
            .arg(dir.path().join(content))
            .arg("-CAfile")
            .arg(ca)
            .args(["-out", "/dev/null"])
            .output()
            .unwrap()
    };
    let vn_ca = plan.dir.path().join("VN/ca.crt");
    let sg_ca = plan.dir.path().join("SG/ca.crt");
    let ok = verify("envelope.p7s", "envelope.xml", &vn_ca);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let ok = verify("receipt.p7s", "receipt.xml", &sg_ca);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // And it can fail: the envelope against the wrong CA, or the receipt's signature over the
    // envelope.
    assert!(!verify("envelope.p7s", "envelope.xml", &sg_ca)
        .status
        .success());
    assert!(!verify("receipt.p7s", "envelope.xml", &sg_ca)
        .status
        .success());
}

fn serve(config: &Path) -> std::process::Child {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nsw"))
        .args(["serve", "--config"])
        .arg(config)
        .env("NSW_LOG_FORMAT", "json")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    loop {
        let line = lines.next().expect("server exited before serving").unwrap();
        if line.contains("serving on ") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    child
}

async fn outbox_row(pool: &deadpool_postgres::Pool, id: Uuid) -> (String, i32) {
    let c = pool.get().await.unwrap();
    let r = c
        .query_one(
            "SELECT status, attempts FROM outbox WHERE message_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

#[tokio::test]
async fn a_sender_killed_mid_delivery_delivers_once_after_restart() {
    let plan = Plan::new(&["VN", "SG"]);
    let sg = plan.start("SG").await;
    // The first delivery hangs at SG long enough to kill the sender in the middle of it.
    sg.fault(json!({ "mode": "slow", "delay_ms": 1500 }), Some(1))
        .await;

    let db = fresh_database().await;
    let dir = plan.dir.path();
    let config = dir.join("vn.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndatabase_url = \"{db}\"\ncountry = \"VN\"\nworkers = 2\n\n[exchange]\nkeys_dir = \"{keys}\"\npartners_file = \"{partners}\"\nlease_secs = 5\nretry_base_ms = 100\nretry_max_ms = 400\npoll_ms = 50\nrequest_timeout_ms = 1500\n",
            port = plan.port("VN"),
            keys = dir.join("VN").display(),
            partners = dir.join("VN-partners.toml").display(),
        ),
    )
    .unwrap();
    let mut vn = serve(&config);
    let app = TestApp {
        address: format!("http://127.0.0.1:{}", plan.port("VN")),
        database_url: db.clone(),
        pool: nsw::db::pool(&db, 2).unwrap(),
        client: reqwest::Client::new(),
        jobs: None,
    };
    let admin = app.add_party(Role::Admin, "VN-ADMIN").await;
    let r = app
        .request(
            reqwest::Method::POST,
            "/api/v1/admin/exchange/form-d",
            Some(&admin),
            &[("content-type", "application/xml")],
            Some(form_d()),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let id: Uuid = r.json()["message_id"].as_str().unwrap().parse().unwrap();

    // Wait for the claim, give the request time to reach SG, then kill -9.
    for _ in 0..400 {
        if outbox_row(&app.pool, id).await.0 == "sending" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(outbox_row(&app.pool, id).await, ("sending".to_owned(), 1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    vn.kill().unwrap();
    vn.wait().unwrap();
    assert_eq!(
        outbox_row(&app.pool, id).await.0,
        "sending",
        "the killed worker still holds its lease"
    );

    let mut vn = serve(&config);
    let mut last = (String::new(), 0);
    for _ in 0..600 {
        last = outbox_row(&app.pool, id).await;
        if last.0 == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last.0, "delivered");
    assert_eq!(last.1, 2, "one attempt killed, one after the lease ran out");
    assert_eq!(sg.inbound_count().await, 1);
    assert_eq!(sg.inbox().await[0]["message_id"], id.to_string());
    vn.kill().unwrap();
    vn.wait().unwrap();
}

#[test]
fn the_demo_runs_from_scratch() {
    let data = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nsw"))
        .arg("demo")
        .env("NSW_DATA_DIR", data.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "SG received ACDD",
        "TH received ACDD",
        "SG received FORM_D",
        "receipt from TH: accepted, signed, digest matches; 2 attempt(s)",
        "issued and signed by MOIT; e-Form D -> SG enqueued in the same transaction",
        "VN received from SG: preference-granted on VN-SG-",
        "TH stored 1 message(s), each once",
        "Demo complete.",
    ] {
        assert!(
            stdout.contains(expected),
            "missing '{expected}' in:\n{stdout}"
        );
    }
    // Customs clearance, not the admin send endpoint, is what sent each ACDD, and both export
    // declarations are cleared afterwards.
    let cleared_with_acdd = stdout
        .lines()
        .filter(|l| l.contains("cleared; ACDD") && l.contains("enqueued with the clearance"))
        .count();
    assert_eq!(cleared_with_acdd, 2, "{stdout}");
    let declarations: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.contains("The export declarations stay cleared"))
        .skip(1)
        .take_while(|l| l.trim_start().starts_with("declaration "))
        .collect();
    assert_eq!(declarations.len(), 2, "{stdout}");
    for l in declarations {
        assert!(l.trim_end().ends_with(": cleared"), "{l}\n{stdout}");
    }
    let verify = data.path().join("demo/verify");
    let ok = std::process::Command::new("openssl")
        .args(["cms", "-verify", "-binary", "-inform", "DER", "-in"])
        .arg(verify.join("envelope.p7s"))
        .arg("-content")
        .arg(verify.join("envelope.xml"))
        .arg("-CAfile")
        .arg(data.path().join("demo/keys/VN/ca.crt"))
        .args(["-out", "/dev/null"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

fn tls_client(identity_dir: Option<&Path>, trust: &Path) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(trust).unwrap()).unwrap(),
        );
    if let Some(dir) = identity_dir {
        let cert = std::fs::read(dir.join(keys::TLS_CERT)).unwrap();
        let key = std::fs::read(dir.join(keys::TLS_KEY)).unwrap();
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
    keys::init(rogue.path(), "VN", &[]).unwrap();
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
        .request(
            reqwest::Method::POST,
            "/api/v1/admin/exchange/form-d",
            Some(&vn.admin),
            &[("content-type", "application/xml")],
            Some(ctc.into_bytes()),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["code"].as_str().unwrap()),
        (409, "PROFILE_UNMAPPABLE")
    );
    // Nothing was enqueued for the refused certificate.
    assert_eq!(vn.app.count("outbox").await, 1);
}

#[tokio::test]
async fn the_database_and_the_code_agree_on_the_message_state_machine() {
    use nsw::exchange::state::Status;
    let db = fresh_database().await;
    let pool = nsw::db::pool(&db, 2).unwrap();
    {
        let mut c = pool.get().await.unwrap();
        nsw::db::migrate::run(&mut c).await.unwrap();
    }
    let client = pool.get().await.unwrap();
    // Columns each state needs, so that only the trigger can say no.
    let fields = "locked_by = CASE WHEN $2 = 'sending' THEN gen_random_uuid() END,
                  locked_until = CASE WHEN $2 = 'sending' THEN now() END,
                  receipt = CASE WHEN $2 IN ('delivered', 'rejected') THEN 'r'::bytea END,
                  receipt_signature = CASE WHEN $2 IN ('delivered', 'rejected') THEN 's'::bytea END";
    for from in Status::ALL {
        for to in Status::ALL.into_iter().filter(|&t| t != from) {
            let id = Uuid::now_v7();
            // Rows are created as pending; reach `from` without the trigger in the way.
            client
                .batch_execute("ALTER TABLE outbox DISABLE TRIGGER outbox_state_machine")
                .await
                .unwrap();
            client
                .execute(
                    "INSERT INTO outbox (id, message_id, conversation_id, receiver, document_type,
                        function, reference, envelope, sha256, max_attempts, expires_at, cause)
                     VALUES ($1, $1, $1, 'SG', 'ACDD', 'submit', 'R', 'x', sha256('x'), 3, now(),
                             'operator:' || $1::uuid::text)",
                    &[&id],
                )
                .await
                .unwrap();
            client
                .execute(
                    &format!("UPDATE outbox SET status = $2, {fields} WHERE id = $1"),
                    &[&id, &from.as_str()],
                )
                .await
                .unwrap();
            client
                .batch_execute("ALTER TABLE outbox ENABLE TRIGGER outbox_state_machine")
                .await
                .unwrap();
            let db_allows = client
                .execute(
                    &format!("UPDATE outbox SET status = $2, {fields} WHERE id = $1"),
                    &[&id, &to.as_str()],
                )
                .await
                .is_ok();
            assert_eq!(
                db_allows,
                from.can_become(to),
                "{from:?} -> {to:?}: database and code disagree"
            );
        }
    }
}

#[tokio::test]
async fn a_signed_rejection_ends_the_message_without_retries() {
    let plan = Plan::new(&["VN", "SG"]);
    // SG takes only ACDDs from VN: a Form D is refused with a signed receipt.
    std::fs::write(
        plan.dir.path().join("SG-partners.toml"),
        format!(
            "[[partner]]\ncountry = \"VN\"\nendpoint = \"http://127.0.0.1:{}/exchange/v1/messages\"\nca_cert = \"VN/ca.crt\"\ndocuments = [\"ACDD\"]\nprofile = \"asw\"\n",
            plan.port("VN")
        ),
    )
    .unwrap();
    let vn = plan.start_without_jobs("VN").await;
    let sg = plan.start("SG").await;
    let sent = vn.send_form_d(form_d()).await;
    assert_eq!(vn.app.run_outbox_once().await, 1);
    let done = vn.outbox(sent["message_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "rejected", "{done}");
    assert_eq!(done["attempts"], 1);
    let receipt = done["receipt"].as_str().unwrap();
    assert!(
        receipt.contains("<Code>DOCUMENT_NOT_EXCHANGED</Code>"),
        "{receipt}"
    );
    assert_eq!(sg.inbound_count().await, 0);
    // A rejected message is final: not even an operator requeues it.
    let r = vn
        .post_json(
            &vn.admin,
            &format!(
                "/api/v1/admin/exchange/outbox/{}/requeue",
                sent["message_id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 409);
}

#[tokio::test]
async fn clearing_an_export_sends_its_acdd_in_the_same_transaction() {
    let plan = Plan::new(&["VN", "SG"]);
    let vn = plan.start("VN").await;
    let sg = plan.start("SG").await;

    let xml = fixture("valid/declaration/23-export-garments-to-sg-sea.xml");
    let exporter = vn
        .app
        .add_party(Role::Enterprise, &declarant_of(&xml))
        .await;
    let r = vn.app.submit(&exporter, xml).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let before = vn.app.count("outbox").await;

    // Holding for inspection sends nothing; clearing sends the ACDD.
    let hold = vn
        .post_json(
            &vn.customs,
            &format!("/api/v1/declarations/{id}/decision"),
            json!({"action": "hold"}),
        )
        .await;
    assert_eq!(hold.status, 200, "{}", String::from_utf8_lossy(&hold.body));
    assert!(hold.json().get("acdd").is_none());
    assert_eq!(vn.app.count("outbox").await, before);

    let clear = vn
        .post_json(
            &vn.customs,
            &format!("/api/v1/declarations/{id}/decision"),
            json!({"action": "clear"}),
        )
        .await;
    assert_eq!(
        clear.status,
        200,
        "{}",
        String::from_utf8_lossy(&clear.body)
    );
    let acdd = clear.json()["acdd"].clone();
    assert_eq!(acdd["receiver"], "SG");
    assert_eq!(vn.app.count("outbox").await, before + 1);

    let message_id = acdd["message_id"].as_str().unwrap();
    vn.wait_status(message_id, "delivered").await;
    let inbox = sg.inbox().await;
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert_eq!(sg.inbound_count().await, 1);

    // An import is cleared without any message.
    let laptops = fixture("valid/declaration/01-import-laptops-10-items.xml");
    let importer = vn
        .app
        .add_party(Role::Enterprise, &declarant_of(&laptops))
        .await;
    let r = vn.app.submit(&importer, laptops).await;
    let import_id = r.json()["id"].as_str().unwrap().to_owned();
    let clear = vn
        .post_json(
            &vn.customs,
            &format!("/api/v1/declarations/{import_id}/decision"),
            json!({"action": "clear"}),
        )
        .await;
    assert_eq!(clear.status, 200);
    assert!(clear.json().get("acdd").is_none());
    assert_eq!(vn.app.count("outbox").await, before + 1);
}
