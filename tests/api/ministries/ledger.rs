//! The licence ledger: concurrent draws on one line, customs decisions settling it once, and the
//! database moving balances only through it.

use nsw::domain::party::Role;
use serde_json::json;

use super::{balance, customs, licence_xml, replace, sqlstate, FAR_AHEAD, GOLD_DECLARATION};
use crate::helpers::{fixture, with_reference, TestApp};
use crate::support::{deposit, register_signer};

#[tokio::test]
async fn one_hundred_concurrent_declarations_draw_exactly_fifty_from_one_line() {
    let app = TestApp::spawn().await;
    let admin = app.add_party(Role::Admin, "ADMIN-1").await;
    let sbv = app
        .add_party_with_agency(Role::Ministry, "SBV-OFFICER-1", "SBV")
        .await;
    let trader = app.add_party(Role::Enterprise, "0302468135").await;
    let key = register_signer(&app, &admin, "SBV").await;
    // 50 declarations of 50 KGM each exhaust it exactly.
    let lic = licence_xml(
        "RACE-1",
        "SBV",
        "0302468135",
        "IM",
        "2026-07-01",
        FAR_AHEAD,
        "71081210",
        "KGM",
        "2500",
    );
    assert_eq!(deposit(&app, &sbv, &key, lic).await.status, 201);
    let decl = replace(&fixture(GOLD_DECLARATION), "215/GP-NHNN", "RACE-1");
    let requests = (0..100).map(|i| {
        let xml = with_reference(&decl, &format!("RACE-{i:03}"));
        let (app, trader) = (&app, &trader);
        async move { app.submit(trader, xml).await }
    });
    let results = futures_util::future::join_all(requests).await;
    let accepted = results.iter().filter(|r| r.status == 201).count();
    let short = results
        .iter()
        .filter(|r| {
            r.status == 422
                && r.error_codes()
                    .first()
                    .is_some_and(|(c, _)| c == "LICENCE_BALANCE_INSUFFICIENT")
        })
        .count();
    let others: Vec<String> = results
        .iter()
        .filter(|r| r.status != 201 && r.status != 422)
        .map(|r| format!("{} {}", r.status, String::from_utf8_lossy(&r.body)))
        .collect();
    assert!(others.is_empty(), "{others:?}");
    assert_eq!(accepted, 50);
    assert_eq!(short, 50);
    let line = balance(&app, &trader, "RACE-1", 0).await;
    assert_eq!(line["remaining"], "0.000");
    assert_eq!(line["reserved"], "2500.000");
    assert_eq!(app.count("licence_ledger").await, 50);
    assert_eq!(app.count("declarations").await, 50);
}

#[tokio::test]
async fn customs_decisions_settle_the_ledger_once() {
    let app = TestApp::spawn().await;
    let admin = app.add_party(Role::Admin, "ADMIN-1").await;
    let sbv = app
        .add_party_with_agency(Role::Ministry, "SBV-OFFICER-1", "SBV")
        .await;
    let trader = app.add_party(Role::Enterprise, "0302468135").await;
    let officer = app.add_party(Role::Customs, "CUSTOMS-1").await;
    let key = register_signer(&app, &admin, "SBV").await;
    let lic = licence_xml(
        "LEDGER-1",
        "SBV",
        "0302468135",
        "IM",
        "2026-07-01",
        FAR_AHEAD,
        "71081210",
        "KGM",
        "200",
    );
    assert_eq!(deposit(&app, &sbv, &key, lic).await.status, 201);
    let decl = replace(&fixture(GOLD_DECLARATION), "215/GP-NHNN", "LEDGER-1");
    let mut ids = Vec::new();
    for i in 0..4 {
        let r = app
            .submit(&trader, with_reference(&decl, &format!("LEDGER-{i}")))
            .await;
        assert_eq!(r.status, 201);
        ids.push(r.json()["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        balance(&app, &trader, "LEDGER-1", 0).await["remaining"],
        "0.000"
    );

    // rejected: released; withdrawn: released; held then cleared: committed.
    let r = customs(&app, &officer, &ids[0], json!({"action": "reject"})).await;
    assert_eq!(r.json()["code"], "REASON_REQUIRED");
    let r = customs(
        &app,
        &officer,
        &ids[0],
        json!({"action": "reject", "reason": "undervalued"}),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = app
        .post_json(
            &trader,
            &format!("/api/v1/declarations/{}/withdrawal", ids[1]),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        customs(&app, &officer, &ids[2], json!({"action": "hold"}))
            .await
            .json()["status"],
        "under_inspection"
    );
    assert_eq!(
        customs(&app, &officer, &ids[2], json!({"action": "clear"}))
            .await
            .json()["status"],
        "cleared"
    );
    let line = balance(&app, &trader, "LEDGER-1", 0).await;
    assert_eq!(line["remaining"], "100.000");
    assert_eq!(line["reserved"], "50.000");
    assert_eq!(line["committed"], "50.000");

    // Forbidden moves of the customs state machine.
    for (id, body) in [
        (&ids[2], json!({"action": "reject", "reason": "too late"})),
        (&ids[2], json!({"action": "hold"})),
        (&ids[0], json!({"action": "clear"})),
        (&ids[1], json!({"action": "clear"})),
    ] {
        let r = customs(&app, &officer, id, body).await;
        assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["code"], "TRANSITION_FORBIDDEN");
    }
    let r = app
        .post_json(
            &trader,
            &format!("/api/v1/declarations/{}/withdrawal", ids[2]),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 409);
    // Only customs decides; the trader cannot withdraw someone else's.
    assert_eq!(
        customs(&app, &trader, &ids[3], json!({"action": "clear"}))
            .await
            .status,
        403
    );
    let other = app.add_party(Role::Enterprise, "0300000009").await;
    let r = app
        .post_json(
            &other,
            &format!("/api/v1/declarations/{}/withdrawal", ids[3]),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 404);

    // Settling again changes nothing (idempotent per declaration, item and line); the ledger
    // cannot be rewritten; the balance can never go below zero.
    let client = app.pool.get().await.unwrap();
    let entries = app.count("licence_ledger").await;
    let tx_sql = format!(
        "INSERT INTO licence_ledger (licence_id, line, declaration_id, item, kind, quantity)
         SELECT licence_id, line, declaration_id, item, 'commit', quantity FROM licence_ledger
          WHERE declaration_id = '{}' AND kind = 'reserve'",
        ids[2]
    );
    client.execute(tx_sql.as_str(), &[]).await.unwrap();
    assert_eq!(app.count("licence_ledger").await, entries);
    assert!(client
        .execute("UPDATE licence_ledger SET quantity = 1", &[])
        .await
        .is_err());
    assert!(client
        .execute("UPDATE licence_lines SET remaining = -1", &[])
        .await
        .is_err());
    let release_committed = format!(
        "INSERT INTO licence_ledger (licence_id, line, declaration_id, item, kind, quantity)
         SELECT licence_id, line, declaration_id, item, 'release', quantity FROM licence_ledger
          WHERE declaration_id = '{}' AND kind = 'reserve'",
        ids[2]
    );
    assert!(
        client
            .execute(release_committed.as_str(), &[])
            .await
            .is_err(),
        "a committed reservation cannot be released"
    );
    assert_eq!(
        balance(&app, &trader, "LEDGER-1", 0).await["remaining"],
        "100.000"
    );
}

#[tokio::test]
async fn the_database_moves_balances_only_through_the_ledger() {
    let app = TestApp::spawn().await;
    let admin = app.add_party(Role::Admin, "ADMIN-1").await;
    let sbv = app
        .add_party_with_agency(Role::Ministry, "SBV-OFFICER-1", "SBV")
        .await;
    let trader = app.add_party(Role::Enterprise, "0302468135").await;
    let key = register_signer(&app, &admin, "SBV").await;
    let lic = licence_xml(
        "GUARD-1",
        "SBV",
        "0302468135",
        "IM",
        "2026-07-01",
        FAR_AHEAD,
        "71081210",
        "KGM",
        "200",
    );
    assert_eq!(deposit(&app, &sbv, &key, lic).await.status, 201);
    let decl = replace(&fixture(GOLD_DECLARATION), "215/GP-NHNN", "GUARD-1");
    let r = app.submit(&trader, with_reference(&decl, "GUARD-A")).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let decl_id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        balance(&app, &trader, "GUARD-1", 0).await["remaining"],
        "150.000"
    );

    let mut client = app.pool.get().await.unwrap();
    // A direct change of the balance, even one the CHECK would allow, is refused.
    assert_eq!(
        sqlstate(
            client
                .execute("UPDATE licence_lines SET remaining = remaining + 1", &[])
                .await
        ),
        "42501"
    );
    // Raising the flag the ledger trigger raises does not help from outside a trigger.
    {
        let tx = client.transaction().await.unwrap();
        tx.execute("SELECT set_config('nsw.ledger', 'on', true)", &[])
            .await
            .unwrap();
        assert_eq!(
            sqlstate(
                tx.execute("UPDATE licence_lines SET remaining = allowance", &[])
                    .await
            ),
            "42501"
        );
    }
    // Nor does a ledger entry earlier in the same transaction leave the door open.
    {
        let tx = client.transaction().await.unwrap();
        let released = tx
            .execute(
                "INSERT INTO licence_ledger (licence_id, line, declaration_id, item, kind, quantity)
                 SELECT licence_id, line, declaration_id, item, 'release', quantity
                   FROM licence_ledger WHERE declaration_id = $1::text::uuid AND kind = 'reserve'",
                &[&decl_id],
            )
            .await
            .unwrap();
        assert_eq!(released, 1, "the ledger itself still moves the balance");
        assert_eq!(
            sqlstate(
                tx.execute("UPDATE licence_lines SET remaining = remaining - 1", &[])
                    .await
            ),
            "42501"
        );
    }
    // The rest of a line is as immutable as its licence, and a line cannot be born drawn.
    for sql in [
        "UPDATE licence_lines SET allowance = allowance + 1",
        "UPDATE licence_lines SET hs_code = '710812'",
        "DELETE FROM licence_lines",
        "INSERT INTO licence_lines (licence_id, line, hs_code, description, unit, allowance,
            remaining)
         SELECT licence_id, 2, hs_code, description, unit, allowance, 0 FROM licence_lines",
    ] {
        assert_eq!(sqlstate(client.execute(sql, &[]).await), "42501", "{sql}");
    }
    // Both rolled-back transactions left the balance as the reservation set it.
    let line = balance(&app, &trader, "GUARD-1", 0).await;
    assert_eq!(line["remaining"], "150.000");
    assert_eq!(line["reserved"], "50.000");
}
