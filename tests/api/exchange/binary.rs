//! The `nsw` binary itself: a sender killed mid-delivery, and the demo from scratch.

use std::path::Path;
use std::time::Duration;

use nsw::domain::party::Role;
use serde_json::json;
use uuid::Uuid;

use super::{form_d, Plan};
use crate::helpers::{fresh_database, TestApp};

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
        .post_xml(&admin, "/api/v1/admin/exchange/form-d", form_d())
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
