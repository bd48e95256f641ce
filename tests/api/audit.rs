//! The audit trail is append-only and hash-chained; `nsw audit verify` finds a broken link.

use std::process::Command;

use nsw::domain::party::Role;

use crate::helpers::{fixture, with_reference, TestApp};

fn verify(database_url: &str) -> (Option<i32>, String) {
    verify_with(database_url, &[])
}

fn verify_with(database_url: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nsw"))
        .args(["audit", "verify"])
        .args(args)
        .env("NSW_DATABASE_URL", database_url)
        .env("NSW_LOG_FORMAT", "pretty")
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn chain_verifies_refuses_edits_and_names_the_first_tampered_entry() {
    let app = TestApp::spawn().await;
    let token = app.add_party(Role::Enterprise, "0301234567").await;
    let xml = fixture("valid/declaration/01-import-laptops-10-items.xml");
    for i in 0..3 {
        let r = app
            .submit(&token, with_reference(&xml, &format!("AUD-{i}")))
            .await;
        assert_eq!(r.status, 201);
    }
    let (code, out) = verify(&app.database_url);
    assert_eq!(code, Some(0), "{out}");
    // Three declarations and a party, plus whatever the service records at first start (the
    // routing table it installs).
    let entries = app.count("audit_log").await;
    assert!(entries >= 4);
    assert!(
        out.contains(&format!("intact: {entries} entries chained")),
        "{out}"
    );
    let anchor = out
        .lines()
        .find_map(|l| l.strip_prefix("head (keep as --anchor): "))
        .unwrap_or_else(|| panic!("no head printed: {out}"))
        .trim()
        .to_owned();
    assert!(anchor.starts_with(&format!("{entries}:")), "{anchor}");
    let (code, out) = verify_with(&app.database_url, &["--anchor", &anchor]);
    assert_eq!(code, Some(0), "{out}");
    let (code, _) = verify_with(&app.database_url, &["--anchor", "nonsense"]);
    assert_eq!(code, Some(2));

    let client = app.pool.get().await.unwrap();
    let err = client
        .execute("UPDATE audit_log SET actor = 'mallory' WHERE id = 2", &[])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only") || format!("{err:?}").contains("append-only"));
    assert!(client.execute("DELETE FROM audit_log", &[]).await.is_err());
    assert!(client
        .execute("DELETE FROM dossier_events", &[])
        .await
        .is_err());
    assert!(client
        .execute("UPDATE documents SET body = 'x'", &[])
        .await
        .is_err());

    // Someone with the power to switch the guard off edits history: verify must notice.
    client
        .batch_execute(
            "ALTER TABLE audit_log DISABLE TRIGGER audit_append_only;
             UPDATE audit_log SET details = details || '{\"size\": 1}' WHERE chain_pos = 3;
             ALTER TABLE audit_log ENABLE TRIGGER audit_append_only;",
        )
        .await
        .unwrap();
    let (code, out) = verify(&app.database_url);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("BROKEN at chain position 3"), "{out}");
}

#[tokio::test]
async fn an_anchor_from_an_earlier_run_reveals_a_cut_history() {
    let app = TestApp::spawn().await;
    let token = app.add_party(Role::Enterprise, "0301234567").await;
    let xml = fixture("valid/declaration/01-import-laptops-10-items.xml");
    for i in 0..2 {
        let r = app
            .submit(&token, with_reference(&xml, &format!("CUT-{i}")))
            .await;
        assert_eq!(r.status, 201);
    }
    let (code, out) = verify(&app.database_url);
    assert_eq!(code, Some(0), "{out}");
    let anchor = out
        .lines()
        .find_map(|l| l.strip_prefix("head (keep as --anchor): "))
        .unwrap()
        .trim()
        .to_owned();
    let head: i64 = anchor.split(':').next().unwrap().parse().unwrap();

    // The newest entry removed by someone able to switch the guard off: what is left still
    // recomputes, so only the anchor can tell.
    let client = app.pool.get().await.unwrap();
    client
        .batch_execute(&format!(
            "ALTER TABLE audit_log DISABLE TRIGGER audit_no_delete;
             DELETE FROM audit_log WHERE chain_pos = {head};
             ALTER TABLE audit_log ENABLE TRIGGER audit_no_delete;"
        ))
        .await
        .unwrap();
    let (code, out) = verify(&app.database_url);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = verify_with(&app.database_url, &["--anchor", &anchor]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("entries were removed"), "{out}");
}
