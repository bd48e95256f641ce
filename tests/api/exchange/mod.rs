//! Exchange between running windows through real HTTP: Viet Nam and its partners, each with
//! its own database, keys and partner table. The harness is here: a [`Plan`] of countries (keys
//! and partner tables) and the [`Window`] each runs; the tests are in one module per workflow.

use std::time::Duration;

use base64::Engine;
use nsw::config::Settings;
use nsw::domain::party::Role;
use nsw::exchange::envelope::{self, Header};
use nsw::exchange::keys::{self, Identity};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{fixture, test_settings, Resp, TestApp, TestAppBuilder};

mod binary;
mod delivery;
mod inbound;
mod korea;
mod retries;
mod tally;
mod tls;

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
            keys::init(&keys::KeyDir::at(&dir.path().join(c)), c, &[]).unwrap();
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

    pub fn identity_of(&self, country: &str) -> Identity {
        keys::load(&keys::KeyDir::at(&self.dir.path().join(country)), country).unwrap()
    }

    /// What makes an app this country's window: its port, keys and partner table, and retries
    /// and polls fast enough for a test to watch them happen.
    fn configure(&self, country: &str) -> impl FnOnce(&mut Settings) + Send + 'static {
        let listen = format!("127.0.0.1:{}", self.port(country));
        let keys_dir = self.dir.path().join(country);
        let partners = self.dir.path().join(format!("{country}-partners.toml"));
        let tls_listen = self.tls_ports.as_ref().map(|tls| {
            let port = tls.iter().find(|(c, _)| c == country).unwrap().1;
            format!("127.0.0.1:{port}")
        });
        let country = country.to_owned();
        move |s| {
            s.country = country;
            s.listen = listen;
            s.exchange.keys_dir = Some(keys_dir);
            s.exchange.partners_file = Some(partners);
            s.exchange.retry_base_ms = 100;
            s.exchange.retry_max_ms = 400;
            s.exchange.poll_ms = 50;
            s.exchange.lease_secs = 12;
            s.exchange.request_timeout_ms = 5_000;
            if tls_listen.is_some() {
                s.exchange.tls_listen = tls_listen;
            }
        }
    }

    /// This country's window's settings on `database_url`, for an app built by hand.
    pub fn settings(&self, country: &str, database_url: &str) -> Settings {
        let mut s = test_settings(database_url);
        self.configure(country)(&mut s);
        s
    }

    /// One window to start: `plan.window("VN").without_jobs().start().await`.
    pub fn window(&self, country: &str) -> WindowBuilder {
        WindowBuilder {
            country: country.to_owned(),
            app: TestApp::builder().settings(self.configure(country)),
        }
    }

    /// This country's window on a fresh database, with all its background jobs.
    pub async fn start(&self, country: &str) -> Window {
        self.window(country).start().await
    }
}

/// A window of a plan, built as [`TestApp::builder`] builds an app.
#[must_use = "a builder does nothing until started"]
pub struct WindowBuilder {
    country: String,
    app: TestAppBuilder,
}

impl WindowBuilder {
    /// No background job: its outbox moves only when the test runs it
    /// (`window.app.run_outbox_once()`).
    pub fn without_jobs(mut self) -> Self {
        self.app = self.app.without_jobs();
        self
    }

    pub fn database(mut self, url: &str) -> Self {
        self.app = self.app.database(url);
        self
    }

    /// Any other setting, after the plan's own.
    pub fn settings(mut self, tweak: impl FnOnce(&mut Settings) + Send + 'static) -> Self {
        self.app = self.app.settings(tweak);
        self
    }

    pub async fn start(self) -> Window {
        let app = self.app.spawn().await;
        let country = self.country;
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
    pub async fn post_json(&self, token: &str, path: &str, body: Value) -> Resp {
        self.app.post_json(token, path, body).await
    }

    pub async fn fault(&self, fault: Value, times: Option<u32>) {
        let r = self
            .app
            .put_json(
                &self.admin,
                "/api/v1/admin/exchange/fault",
                json!({ "fault": fault, "times": times }),
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
            .post_xml(&self.admin, "/api/v1/admin/exchange/form-d", xml)
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
    pub async fn deliver(&self, envelope: &[u8], sig: Option<&[u8]>) -> Resp {
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
