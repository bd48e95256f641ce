//! Accepted documents survive the server being killed and started again, byte for byte.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use nsw::domain::party::Role;

use crate::helpers::{fixture, fresh_database, TestApp};

fn start(database_url: &str) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nsw"))
        .arg("serve")
        .env("NSW_DATABASE_URL", database_url)
        .env("NSW_LISTEN", "127.0.0.1:0")
        .env("NSW_LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let address = loop {
        let line = lines.next().expect("server exited before serving").unwrap();
        if let Some(rest) = line.split("serving on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // keep draining the pipe so the server never blocks on a full stderr
    std::thread::spawn(move || for _ in lines {});
    (child, address)
}

#[tokio::test]
async fn documents_survive_a_kill_and_restart() {
    let db = fresh_database().await;
    let (mut server, address) = start(&db);
    let app = TestApp::external(&address, &db);
    // Fixture 09 quotes an SBV licence: deposit the fixture licences first.
    crate::support::deposit_fixture_licences(&app).await;
    let files = [
        (
            "valid/declaration/01-import-laptops-10-items.xml",
            "0301234567",
        ),
        (
            "valid/declaration/14-export-assorted-goods-to-id-50-items.xml",
            "",
        ),
        ("valid/declaration/09-import-gold-sbv-1-item-air.xml", ""),
    ];
    let mut accepted = Vec::new();
    for (file, _) in files {
        let xml = fixture(file);
        let declarant = declarant_of(&xml);
        let token = app.add_party(Role::Enterprise, &declarant).await;
        let r = app.submit(&token, xml.clone()).await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        accepted.push((token, r.json()["id"].as_str().unwrap().to_owned(), xml));
    }
    // No graceful shutdown: the 201s alone must mean the rows are committed.
    server.kill().unwrap();
    server.wait().unwrap();

    let (mut server, address) = start(&db);
    let app = TestApp { address, ..app };
    for (token, id, xml) in &accepted {
        let r = app
            .get(token, &format!("/api/v1/declarations/{id}/document"))
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(&r.body, xml, "document {id} changed across the restart");
        let d = app
            .get(token, &format!("/api/v1/declarations/{id}"))
            .await
            .json();
        assert_eq!(d["status"], "accepted");
    }
    server.kill().unwrap();
    server.wait().unwrap();
}

fn declarant_of(xml: &[u8]) -> String {
    let s = String::from_utf8_lossy(xml);
    let d = s.find("<Declarant>").unwrap();
    let start = d + s[d..].find("<ID>").unwrap() + 4;
    let end = start + s[start..].find("</ID>").unwrap();
    s[start..end].to_owned()
}
