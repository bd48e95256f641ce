//! `nsw demo`: Viet Nam's window and two partner windows (Singapore, Thailand) on loopback,
//! each with its own database in one embedded PostgreSQL cluster and its own keys. An export
//! declaration is submitted, its ACDD and an e-Form D (applied for by the exporter, issued by
//! Industry and Trade) go to the partners, their signed receipts come back, and the partners'
//! customs answer with business responses.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use crate::app::{Application, Database};
use crate::config::Settings;
use crate::db::embedded::EmbeddedCluster;
use crate::domain::party::Role;
use crate::exchange::keys;
use crate::store::parties;

type DemoResult<T> = Result<T, Box<dyn std::error::Error>>;

const DECLARATION_TO_SG: &[u8] =
    include_bytes!("../fixtures/valid/declaration/23-export-garments-to-sg-sea.xml");
const DECLARATION_TO_TH: &[u8] =
    include_bytes!("../fixtures/valid/declaration/16-export-fresh-fruit-to-th-road.xml");
const FORM_D_TO_SG: &[u8] =
    include_bytes!("../fixtures/valid/certificate-of-origin/vn-sg-form-d.xml");
/// The exporter named in that Form D: only they may apply for it.
const FORM_D_EXPORTER: &str = "0301234567";

struct Window {
    country: &'static str,
    base: String,
    admin: String,
    customs: String,
    handle: actix_web::dev::ServerHandle,
    running: tokio::task::JoinHandle<std::io::Result<()>>,
}

fn free_port() -> DemoResult<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn recreate_database(cluster: &EmbeddedCluster, name: &str) -> DemoResult<()> {
    let (client, conn) = tokio_postgres::connect(
        &cluster.connection_string("postgres"),
        tokio_postgres::NoTls,
    )
    .await?;
    let task = tokio::spawn(conn);
    // Names are our own constants, not input.
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    drop(client);
    let _ = task.await;
    Ok(())
}

fn partner_table(dir: &Path, me: &str, ports: &[(&str, u16)]) -> DemoResult<PathBuf> {
    let mut toml = String::new();
    for (c, port) in ports.iter().filter(|(c, _)| *c != me) {
        toml.push_str(&format!(
            "[[partner]]\ncountry = \"{c}\"\nendpoint = \"http://127.0.0.1:{port}/exchange/v1/messages\"\nca_cert = \"keys/{c}/{}\"\ndocuments = [\"ACDD\", \"FORM_D\", \"BUSINESS_RESPONSE\"]\nprofile = \"asw\"\n\n",
            keys::CA_CERT
        ));
    }
    let path = dir.join(format!("{me}-partners.toml"));
    std::fs::write(&path, toml)?;
    Ok(path)
}

fn declarant_of(xml: &[u8]) -> String {
    let s = String::from_utf8_lossy(xml);
    let from = s.find("<Declarant>").unwrap_or(0);
    let id = s[from..]
        .split_once("<ID>")
        .and_then(|(_, rest)| rest.split_once("</ID>"))
        .map(|(id, _)| id.to_owned());
    id.unwrap_or_default()
}

struct Http(reqwest::Client);

impl Http {
    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        token: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> DemoResult<(u16, Vec<u8>)> {
        let mut rb = self.0.request(method, url).bearer_auth(token);
        if let Some((ct, b)) = body {
            rb = rb.header("content-type", ct).body(b);
        }
        let r = rb.send().await?;
        let status = r.status().as_u16();
        Ok((status, r.bytes().await?.to_vec()))
    }

    async fn json(
        &self,
        method: reqwest::Method,
        url: &str,
        token: &str,
        body: Option<Value>,
    ) -> DemoResult<Value> {
        let (status, bytes) = self
            .call(
                method,
                url,
                token,
                body.map(|b| ("application/json", b.to_string().into_bytes())),
            )
            .await?;
        if !(200..300).contains(&status) {
            return Err(
                format!("{url}: HTTP {status}: {}", String::from_utf8_lossy(&bytes)).into(),
            );
        }
        Ok(serde_json::from_slice(&bytes)?)
    }
}

async fn wait_delivered(http: &Http, w: &Window, message_id: &str) -> DemoResult<Value> {
    for _ in 0..400 {
        let m = http
            .json(
                reqwest::Method::GET,
                &format!("{}/api/v1/admin/exchange/outbox/{message_id}", w.base),
                &w.admin,
                None,
            )
            .await?;
        if m["status"] == "delivered" || m["status"] == "rejected" || m["status"] == "dead_letter" {
            return Ok(m);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!(
        "message {message_id} from {} was not delivered in time",
        w.country
    )
    .into())
}

fn show_receipt(m: &Value) {
    let receipt = m["receipt"].as_str().unwrap_or("");
    let status = receipt
        .split_once("<Status>")
        .and_then(|(_, r)| r.split_once("</Status>"))
        .map_or("?", |(s, _)| s);
    println!(
        "      receipt from {}: {status}, signed, digest matches; {} attempt(s); message id {}",
        m["receiver"].as_str().unwrap_or("?"),
        m["attempts"],
        m["message_id"].as_str().unwrap_or("?")
    );
}

async fn start_window(
    country: &'static str,
    port: u16,
    cluster: &EmbeddedCluster,
    dir: &Path,
    ports: &[(&str, u16)],
) -> DemoResult<(Window, deadpool_postgres::Pool)> {
    let dbname = format!("nsw_demo_{}", country.to_ascii_lowercase());
    recreate_database(cluster, &dbname).await?;
    let keys_dir = dir.join("keys").join(country);
    let mut settings = Settings {
        listen: format!("127.0.0.1:{port}"),
        database_url: Some(cluster.connection_string(&dbname).into()),
        country: country.into(),
        pool_size: 8,
        workers: Some(1),
        ..Settings::default()
    };
    settings.exchange.keys_dir = Some(keys_dir);
    settings.exchange.partners_file = Some(partner_table(dir, country, ports)?);
    settings.exchange.retry_base_ms = 200;
    settings.exchange.retry_max_ms = 2_000;
    settings.exchange.poll_ms = 100;
    let database = crate::app::connect(&settings).await?;
    let pool = database.pool.clone();
    let app = Application::with_database(
        settings,
        Database {
            pool: database.pool.clone(),
            url: database.url.clone(),
            cluster: None,
            connections: database.connections.clone(),
        },
    )
    .await?;
    let handle = app.handle();
    let running = tokio::spawn(app.run_until_stopped());
    let mut client = pool.get().await?;
    let admin = parties::add(
        &mut client,
        &format!("{country}-OPERATOR"),
        Role::Admin,
        &format!("{country} window operator"),
        None,
    )
    .await?;
    let customs = parties::add(
        &mut client,
        &format!("{country}-CUSTOMS"),
        Role::Customs,
        &format!("{country} customs"),
        None,
    )
    .await?;
    Ok((
        Window {
            country,
            base: format!("http://127.0.0.1:{port}"),
            admin,
            customs,
            handle,
            running,
        },
        pool,
    ))
}

/// Runs the whole demonstration; `data_dir` holds the cluster, keys and partner tables.
pub async fn run(data_dir: &Path) -> DemoResult<()> {
    let dir = data_dir.join("demo");
    std::fs::create_dir_all(&dir)?;
    let root = dir.join("postgres");
    let cluster = tokio::task::spawn_blocking(move || EmbeddedCluster::start(&root)).await??;
    let result = scenario(&cluster, &dir).await;
    if cluster.started_here() {
        cluster.stop()?;
    }
    result
}

async fn scenario(cluster: &EmbeddedCluster, dir: &Path) -> DemoResult<()> {
    let ports = [
        ("VN", free_port()?),
        ("SG", free_port()?),
        ("TH", free_port()?),
    ];
    println!("== Partner windows on loopback (one database each, own keys and partner table)");
    for (c, _) in ports {
        let keys_dir = dir.join("keys").join(c);
        if !keys_dir.join(keys::SIGNING_KEY).exists() {
            keys::init(&keys::KeyDir::at(&keys_dir), c, &[])?;
        }
    }
    let mut windows = Vec::new();
    let mut vn_pool = None;
    for (c, port) in ports {
        let (w, pool) = start_window(c, port, cluster, dir, &ports).await?;
        println!(
            "   {c}: {}  (CA pinned by the others: {})",
            w.base,
            dir.join("keys").join(c).join(keys::CA_CERT).display()
        );
        if c == "VN" {
            vn_pool = Some(pool);
        }
        windows.push(w);
    }
    let [vn, sg, th] = [&windows[0], &windows[1], &windows[2]];
    let http = Http(reqwest::Client::new());

    println!("\n== Viet Nam: exporters submit export declarations");
    let pool = vn_pool.ok_or("no VN database")?;
    let mut declarations = Vec::new();
    for xml in [DECLARATION_TO_SG, DECLARATION_TO_TH] {
        let declarant = declarant_of(xml);
        let token = {
            let mut client = pool.get().await?;
            parties::add(
                &mut client,
                &declarant,
                Role::Enterprise,
                &format!("exporter {declarant}"),
                None,
            )
            .await?
        };
        let (status, body) = http
            .call(
                reqwest::Method::POST,
                &format!("{}/api/v1/declarations", vn.base),
                &token,
                Some(("application/xml", xml.to_vec())),
            )
            .await?;
        let d: Value = serde_json::from_slice(&body)?;
        if status != 201 {
            return Err(format!("declaration refused: {d}").into());
        }
        println!(
            "   declaration {} accepted (declarant {declarant})",
            d["reference"].as_str().unwrap_or("?")
        );
        declarations.push(d);
    }

    // Thailand loses its first receipt: Viet Nam must resend the same message and get the same
    // receipt back, and Thailand must store it once.
    http.json(
        reqwest::Method::PUT,
        &format!("{}/api/v1/admin/exchange/fault", th.base),
        &th.admin,
        Some(json!({ "fault": { "mode": "lost_receipt" }, "times": 1 })),
    )
    .await?;
    println!("\n== Viet Nam customs clears the exports: ACDDs go to SG and TH (TH will lose its first receipt)");
    let mut sent = Vec::new();
    for d in &declarations {
        // The clearance writes the ACDD to the outbox in its own transaction; the answer names
        // the queued message, which is the one followed below.
        let r = http
            .json(
                reqwest::Method::POST,
                &format!(
                    "{}/api/v1/declarations/{}/decision",
                    vn.base,
                    d["id"].as_str().unwrap_or("")
                ),
                &vn.customs,
                Some(json!({ "action": "clear" })),
            )
            .await?;
        let reference = r["reference"].as_str().unwrap_or("?");
        if r["status"] != "cleared" {
            return Err(format!("declaration {reference} was not cleared: {r}").into());
        }
        let acdd = r["acdd"].clone();
        if acdd.is_null() {
            return Err(format!("declaration {reference} was cleared without an ACDD").into());
        }
        println!(
            "   declaration {reference} cleared; ACDD {} -> {} enqueued with the clearance",
            acdd["reference"].as_str().unwrap_or("?"),
            acdd["receiver"].as_str().unwrap_or("?")
        );
        sent.push(acdd);
    }
    println!("\n== The exporter applies for a Form D; Industry and Trade issues it");
    let (exporter, officer) = {
        let mut client = pool.get().await?;
        let exporter = parties::add(
            &mut client,
            FORM_D_EXPORTER,
            Role::Enterprise,
            "exporter of the rice to Singapore",
            None,
        )
        .await?;
        let officer = parties::add(
            &mut client,
            "VN-MOIT-OFFICER",
            Role::Ministry,
            "certificate of origin officer",
            Some("MOIT"),
        )
        .await?;
        (exporter, officer)
    };
    let (status, body) = http
        .call(
            reqwest::Method::POST,
            &format!("{}/api/v1/certificates-of-origin", vn.base),
            &exporter,
            Some(("application/xml", FORM_D_TO_SG.to_vec())),
        )
        .await?;
    let application: Value = serde_json::from_slice(&body)?;
    if status != 201 {
        return Err(format!("Form D application refused: {application}").into());
    }
    println!(
        "   application {} routed to {} ({})",
        application["reference"].as_str().unwrap_or("?"),
        application["agency"].as_str().unwrap_or("?"),
        application["procedure_code"].as_str().unwrap_or("?")
    );
    let decision = format!(
        "{}/api/v1/licence-applications/{}/decision",
        vn.base,
        application["id"].as_str().unwrap_or("")
    );
    for action in ["review", "issue"] {
        let r = http
            .json(
                reqwest::Method::POST,
                &decision,
                &officer,
                Some(json!({ "action": action })),
            )
            .await?;
        if action == "issue" {
            let form = r["e_form_d"].clone();
            if form.is_null() {
                return Err("the Form D was issued without an e-Form D for SG".into());
            }
            println!(
                "   certificate {} issued and signed by MOIT; e-Form D -> {} enqueued in the same transaction",
                r["certificate_reference"].as_str().unwrap_or("?"),
                form["receiver"].as_str().unwrap_or("?")
            );
            sent.push(form);
        }
    }

    println!("\n== Signed receipts come back");
    for s in &sent {
        let m = wait_delivered(&http, vn, s["message_id"].as_str().unwrap_or("")).await?;
        println!(
            "   {} {}:",
            m["document_type"].as_str().unwrap_or("?"),
            m["reference"].as_str().unwrap_or("?")
        );
        show_receipt(&m);
    }

    println!("\n== The export declarations stay cleared in Viet Nam");
    for d in &declarations {
        let now = http
            .json(
                reqwest::Method::GET,
                &format!(
                    "{}/api/v1/declarations/{}",
                    vn.base,
                    d["id"].as_str().unwrap_or("")
                ),
                &vn.customs,
                None,
            )
            .await?;
        println!(
            "   declaration {}: {}",
            now["reference"].as_str().unwrap_or("?"),
            now["status"].as_str().unwrap_or("?")
        );
    }

    println!("\n== The documents arrive in the partners' customs inboxes");
    let mut answered = Vec::new();
    for w in [sg, th] {
        let inbox = http
            .json(
                reqwest::Method::GET,
                &format!("{}/api/v1/exchange/inbox", w.base),
                &w.customs,
                None,
            )
            .await?;
        for m in inbox["items"].as_array().cloned().unwrap_or_default() {
            println!(
                "   {} received {} {} from {} (signer: {})",
                w.country,
                m["document_type"].as_str().unwrap_or("?"),
                m["reference"].as_str().unwrap_or("?"),
                m["sender"].as_str().unwrap_or("?"),
                m["signer"].as_str().unwrap_or("?")
            );
            let decision = if m["document_type"] == "FORM_D" {
                "preference-granted"
            } else {
                "accepted"
            };
            let r = http
                .json(
                    reqwest::Method::POST,
                    &format!(
                        "{}/api/v1/exchange/messages/{}/response",
                        w.base,
                        m["id"].as_str().unwrap_or("")
                    ),
                    &w.customs,
                    Some(json!({ "decision": decision })),
                )
                .await?;
            answered.push((w, r));
        }
        let count = inbox["items"].as_array().map_or(0, |a| a.len());
        println!("   {} stored {count} message(s), each once", w.country);
    }

    println!("\n== Business responses travel back to Viet Nam");
    for (w, r) in &answered {
        wait_delivered(&http, w, r["message_id"].as_str().unwrap_or("")).await?;
    }
    let inbox = http
        .json(
            reqwest::Method::GET,
            &format!("{}/api/v1/exchange/inbox", vn.base),
            &vn.customs,
            None,
        )
        .await?;
    for m in inbox["items"].as_array().cloned().unwrap_or_default() {
        let env = http
            .call(
                reqwest::Method::GET,
                &format!(
                    "{}/api/v1/exchange/inbox/{}/envelope",
                    vn.base,
                    m["id"].as_str().unwrap_or("")
                ),
                &vn.customs,
                None,
            )
            .await?
            .1;
        let text = String::from_utf8_lossy(&env);
        let decision = text
            .split_once("<Decision>")
            .and_then(|(_, r)| r.split_once("</Decision>"))
            .map_or("?", |(d, _)| d);
        println!(
            "   VN received from {}: {decision} on {}",
            m["sender"].as_str().unwrap_or("?"),
            m["previous_reference"].as_str().unwrap_or("?")
        );
    }

    // Leave one stored message and its signature on disk for `openssl cms -verify`.
    let verify = dir.join("verify");
    std::fs::create_dir_all(&verify)?;
    let sg_inbox = http
        .json(
            reqwest::Method::GET,
            &format!("{}/api/v1/exchange/inbox", sg.base),
            &sg.customs,
            None,
        )
        .await?;
    if let Some(id) = sg_inbox["items"][0]["id"].as_str() {
        for (part, file) in [("envelope", "envelope.xml"), ("signature", "envelope.p7s")] {
            let (_, bytes) = http
                .call(
                    reqwest::Method::GET,
                    &format!("{}/api/v1/exchange/inbox/{id}/{part}", sg.base),
                    &sg.customs,
                    None,
                )
                .await?;
            std::fs::write(verify.join(file), bytes)?;
        }
        let b64 = base64::engine::general_purpose::STANDARD
            .encode(std::fs::read(verify.join("envelope.p7s"))?);
        println!(
            "\n== A message as SG stored it, with VN's signature ({} base64 characters):",
            b64.len()
        );
        println!(
            "   openssl cms -verify -binary -inform DER -in {} -content {} -CAfile {} -out /dev/null",
            verify.join("envelope.p7s").display(),
            verify.join("envelope.xml").display(),
            dir.join("keys/VN").join(keys::CA_CERT).display()
        );
    }

    for w in windows {
        w.handle.stop(true).await;
        // Its background jobs end with it, before the database goes away.
        let _ = w.running.await;
    }
    println!("\nDemo complete.");
    Ok(())
}
