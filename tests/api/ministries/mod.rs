//! Ministries and customs through HTTP against real PostgreSQL: routing, licence applications
//! and their state machine, issued and deposited licences, the ledger, customs decisions. The
//! shared setup is here; the tests are in one module per workflow.

mod applications;
mod customs;
mod ledger;
mod licences;
mod routing;
mod stats;

use crate::helpers::{fixture, TestApp};

/// The end of validity of licences made by these tests: ahead of the window's date, whatever
/// year the tests run in.
const FAR_AHEAD: &str = "2099-12-31";
const RICE_APPLICATION: &str = "valid/licence-application/moit-export-licence-rice.xml";
const MAIZE_APPLICATION: &str = "valid/licence-application/mard-plant-quarantine-maize.xml";
const TRANSIT_APPLICATION: &str =
    "valid/licence-application/gdvc-transit-notification-gasoil-sg-to-la.xml";
const DURIAN_TO_TH_APPLICATION: &str =
    "valid/licence-application/mard-phytosanitary-durian-export-to-th.xml";
const RICE_DECLARATION: &str = "valid/declaration/02-export-rice-to-ph-moit-licence.xml";
const GOLD_DECLARATION: &str = "valid/declaration/09-import-gold-sbv-1-item-air.xml";

fn replace(xml: &[u8], from: &str, to: &str) -> Vec<u8> {
    let s = String::from_utf8(xml.to_vec()).unwrap();
    assert!(s.contains(from), "{from} not in document");
    s.replace(from, to).into_bytes()
}

fn enc(number: &str) -> String {
    number.replace('/', "%2F")
}

async fn apply(app: &TestApp, token: &str, file: &str) -> serde_json::Value {
    let resp = app
        .post_xml(token, "/api/v1/licence-applications", fixture(file))
        .await;
    assert_eq!(resp.status, 201, "{}", String::from_utf8_lossy(&resp.body));
    resp.json()
}

async fn decide(
    app: &TestApp,
    token: &str,
    id: &str,
    body: serde_json::Value,
) -> crate::helpers::Resp {
    app.post_json(
        token,
        &format!("/api/v1/licence-applications/{id}/decision"),
        body,
    )
    .await
}

async fn customs(
    app: &TestApp,
    token: &str,
    id: &str,
    body: serde_json::Value,
) -> crate::helpers::Resp {
    app.post_json(token, &format!("/api/v1/declarations/{id}/decision"), body)
        .await
}

/// A licence document for the ledger tests, valid against licence.xsd.
#[allow(clippy::too_many_arguments)]
pub fn licence_xml(
    number: &str,
    agency: &str,
    holder: &str,
    direction: &str,
    from: &str,
    to: &str,
    hs: &str,
    unit: &str,
    qty: &str,
) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Licence xmlns="urn:nsw:licence:1">
  <Number>{number}</Number>
  <Type>IML</Type>
  <Agency><Code>{agency}</Code><Name>{agency} licensing</Name></Agency>
  <Holder><ID>{holder}</ID><Name>Holder {holder}</Name><Address><City>Hà Nội</City><Country>VN</Country></Address></Holder>
  <Direction>{direction}</Direction>
  <IssueDate>{from}</IssueDate>
  <ValidFrom>{from}</ValidFrom>
  <ValidTo>{to}</ValidTo>
  <Line><Number>1</Number><HSCode>{hs}</HSCode><Description>Gold</Description><QuantityAllowance unit="{unit}">{qty}</QuantityAllowance></Line>
</Licence>
"#
    )
    .into_bytes()
}

async fn balance(app: &TestApp, token: &str, number: &str, line: usize) -> serde_json::Value {
    let resp = app
        .get(token, &format!("/api/v1/licences/{}", enc(number)))
        .await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    resp.json()["lines"][line].clone()
}

/// The SQLSTATE of a refused statement.
fn sqlstate(r: Result<u64, tokio_postgres::Error>) -> String {
    r.expect_err("the database accepted it")
        .as_db_error()
        .expect("a database error")
        .code()
        .code()
        .to_owned()
}
