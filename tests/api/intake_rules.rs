//! Inputs from the field: typed values read exactly or refused where they stand, dates judged by
//! the window's clock, one draw per licence line per item, and a declarant's reference naming
//! one declaration.

use nsw::domain::party::Role;

use crate::helpers::{fixture, fresh_database, with_reference, TestApp};
use crate::support::{deposit, register_signer};

const LAPTOPS: &str = "valid/declaration/01-import-laptops-10-items.xml";
const LAPTOPS_IMPORTER: &str = "0301234567";
const GOLD: &str = "valid/declaration/09-import-gold-sbv-1-item-air.xml";
const GOLD_IMPORTER: &str = "0302468135";

async fn app_on(database_url: &str, today: &str) -> TestApp {
    TestApp::builder()
        .database(database_url)
        .today(today)
        .spawn()
        .await
}

fn replace(xml: &[u8], from: &str, to: &str) -> Vec<u8> {
    let s = String::from_utf8(xml.to_vec()).unwrap();
    assert!(s.contains(from), "{from}");
    s.replacen(from, to, 1).into_bytes()
}

/// The (code, path, line) of each error of a 422.
fn located(r: &crate::helpers::Resp) -> Vec<(String, String, u64)> {
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    r.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert!(e["column"].as_u64().unwrap() >= 1, "{e}");
            (
                e["code"].as_str().unwrap().to_owned(),
                e["path"].as_str().unwrap().to_owned(),
                e["line"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn gold_licence(number: &str, from: &str, to: &str, allowance: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Licence xmlns="urn:nsw:licence:1">
  <Number>{number}</Number>
  <Type>IML</Type>
  <Agency><Code>SBV</Code><Name>State Bank of Viet Nam</Name></Agency>
  <Holder><ID>{GOLD_IMPORTER}</ID><Name>Kim Long Phat</Name><Address><City>Ho Chi Minh City</City><Country>VN</Country></Address></Holder>
  <Direction>IM</Direction>
  <IssueDate>{from}</IssueDate>
  <ValidFrom>{from}</ValidFrom>
  <ValidTo>{to}</ValidTo>
  <Line><Number>1</Number><HSCode>710812</HSCode><Description>Gold</Description><QuantityAllowance unit="KGM">{allowance}</QuantityAllowance></Line>
</Licence>
"#
    )
    .into_bytes()
}

/// The gold declaration quoting `number`, issued (and invoiced) on `issued`.
fn gold_declaration(reference: &str, number: &str, issued: &str) -> Vec<u8> {
    let xml = with_reference(&fixture(GOLD), reference);
    let xml = replace(&xml, "215/GP-NHNN", number);
    let xml = replace(
        &xml,
        "<IssueDate>2026-07-14</IssueDate>",
        &format!("<IssueDate>{issued}</IssueDate>"),
    );
    let xml = replace(
        &xml,
        "<Date>2026-07-10</Date>",
        &format!("<Date>{issued}</Date>"),
    );
    // Its supporting documents are dated no later than the declaration itself.
    String::from_utf8(xml)
        .unwrap()
        .replace(
            "<IssueDate>2026-07-06</IssueDate>",
            &format!("<IssueDate>{issued}</IssueDate>"),
        )
        .replace(
            "<IssueDate>2026-07-10</IssueDate>",
            &format!("<IssueDate>{issued}</IssueDate>"),
        )
        .into_bytes()
}

async fn remaining(app: &TestApp, token: &str, number: &str) -> String {
    let r = app
        .get(
            token,
            &format!("/api/v1/licences/{}", number.replace('/', "%2F")),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["lines"][0]["remaining"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_date_beyond_year_9999_is_refused_where_it_stands_never_stored_as_1970() {
    let app = TestApp::builder().today("2026-11-30").spawn().await;
    let token = app.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await;
    let xml = fixture(LAPTOPS);

    // The field's example: a valid xs:date with a five-digit year.
    let r = app
        .submit(
            &token,
            replace(
                &xml,
                "<IssueDate>2026-03-16</IssueDate>",
                "<IssueDate>12026-03-16</IssueDate>",
            ),
        )
        .await;
    assert_eq!(
        located(&r),
        [(
            "DATE_OUT_OF_RANGE".into(),
            "/Declaration/Header/IssueDate".into(),
            7
        )]
    );
    // The same kind elsewhere: optional transport dates were silently dropped before.
    let departure = String::from_utf8(xml.clone()).unwrap();
    let start = departure.find("<DepartureDate>").unwrap() + "<DepartureDate>".len();
    let end = start + departure[start..].find('<').unwrap();
    let r = app
        .submit(
            &token,
            format!("{}10000-01-01{}", &departure[..start], &departure[end..]).into_bytes(),
        )
        .await;
    let errors = located(&r);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "DATE_OUT_OF_RANGE");
    assert_eq!(errors[0].1, "/Declaration/Transport/DepartureDate");
    assert_eq!(app.count("declarations").await, 0);

    // A time zone does not change the calendar date: stored exactly as written.
    let r = app
        .submit(
            &token,
            replace(
                &xml,
                "<IssueDate>2026-03-16</IssueDate>",
                "<IssueDate>2026-03-16+07:00</IssueDate>",
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let client = app.pool.get().await.unwrap();
    let stored: chrono::NaiveDate = client
        .query_one("SELECT issue_date FROM declarations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored.to_string(), "2026-03-16");
}

#[tokio::test]
async fn quantities_the_window_cannot_record_are_located_422s_not_500s() {
    let app = TestApp::builder().today("2026-11-30").spawn().await;
    let token = app.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await;
    let xml = fixture(LAPTOPS);
    // 18 digits: what QuantityType allows, beyond numeric(18, 3).
    let r = app
        .submit(
            &token,
            replace(
                &xml,
                r#"<Quantity unit="H87">200</Quantity>"#,
                r#"<Quantity unit="H87">999999999999999999</Quantity>"#,
            ),
        )
        .await;
    let errors = located(&r);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "QUANTITY_OUT_OF_RANGE");
    assert_eq!(errors[0].1, "/Declaration/Item[1]/Quantity");
    assert_eq!(app.count("declarations").await, 0);

    // A licence application's line, and a deposited licence's allowance.
    let enterprise = app.add_party(Role::Enterprise, "1401234568").await;
    let application = fixture("valid/licence-application/moit-export-licence-rice.xml");
    let s = String::from_utf8(application).unwrap();
    let start = s.find("<Quantity").unwrap();
    let start = start + s[start..].find('>').unwrap() + 1;
    let end = start + s[start..].find('<').unwrap();
    let big = format!("{}1000000000000000{}", &s[..start], &s[end..]);
    let r = app
        .post_xml(
            &enterprise,
            "/api/v1/licence-applications",
            big.into_bytes(),
        )
        .await;
    let errors = located(&r);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "QUANTITY_OUT_OF_RANGE");
    assert_eq!(errors[0].1, "/LicenceApplication/Line[1]/Quantity");

    let admin = app.add_party(Role::Admin, "ADMIN-1").await;
    let sbv = app
        .add_party_with_agency(Role::Ministry, "SBV-OFFICER-1", "SBV")
        .await;
    let key = register_signer(&app, &admin, "SBV").await;
    let r = deposit(
        &app,
        &sbv,
        &key,
        gold_licence("BIG-1", "2026-01-01", "2099-12-31", "1000000000000000"),
    )
    .await;
    let errors = located(&r);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "QUANTITY_OUT_OF_RANGE");
    assert_eq!(errors[0].1, "/Licence/Line/QuantityAllowance");
    assert_eq!(app.count("licences").await, 0);
}

#[tokio::test]
async fn an_issue_date_after_the_windows_date_is_refused() {
    let app = TestApp::builder().today("2026-11-30").spawn().await;
    let token = app.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await;
    let xml = fixture(LAPTOPS);
    let r = app
        .submit(
            &token,
            replace(
                &xml,
                "<IssueDate>2026-03-16</IssueDate>",
                "<IssueDate>2026-12-01</IssueDate>",
            ),
        )
        .await;
    assert_eq!(
        located(&r),
        [(
            "ISSUE_DATE_IN_FUTURE".into(),
            "/Declaration/Header/IssueDate".into(),
            7
        )]
    );
    assert_eq!(app.count("declarations").await, 0);
    // The window's own date is not the future.
    let r = app
        .submit(
            &token,
            replace(
                &xml,
                "<IssueDate>2026-03-16</IssueDate>",
                "<IssueDate>2026-11-30</IssueDate>",
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
}

#[tokio::test]
async fn a_licence_covers_a_declaration_on_the_day_the_window_accepts_it() {
    let database = fresh_database().await;
    // In June the licence is valid; the officer deposits it.
    let june = app_on(&database, "2026-06-20").await;
    let admin = june.add_party(Role::Admin, "ADMIN-1").await;
    let sbv = june
        .add_party_with_agency(Role::Ministry, "SBV-OFFICER-1", "SBV")
        .await;
    let trader = june.add_party(Role::Enterprise, GOLD_IMPORTER).await;
    let key = register_signer(&june, &admin, "SBV").await;
    let licence = gold_licence("215/GP-NHNN", "2026-01-01", "2026-06-30", "200");
    let r = deposit(&june, &sbv, &key, licence.clone()).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let r = june
        .submit(
            &trader,
            gold_declaration("KLP-JUNE", "215/GP-NHNN", "2026-06-15"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));

    // In November the same window refuses a declaration back-dated into the validity.
    let november = app_on(&database, "2026-11-30").await;
    let before = november.footprint().await;
    let r = november
        .submit(
            &trader,
            gold_declaration("KLP-BACKDATED", "215/GP-NHNN", "2026-06-15"),
        )
        .await;
    let errors = located(&r);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "LICENCE_EXPIRED");
    assert_eq!(errors[0].1, "/Declaration/Item");
    assert_eq!(november.footprint().await, before);
    assert_eq!(
        remaining(&november, &trader, "215/GP-NHNN").await,
        "150.000"
    );

    // Nor can a licence whose validity has ended be deposited.
    let r = deposit(
        &november,
        &sbv,
        &key,
        gold_licence("216/GP-NHNN", "2026-01-01", "2026-06-30", "200"),
    )
    .await;
    assert_eq!(
        located(&r),
        [(
            "LICENCE_VALIDITY_ENDED".into(),
            "/Licence/ValidTo".into(),
            10
        )]
    );
    assert_eq!(november.count("licences").await, 1);
}

#[tokio::test]
async fn an_item_quoting_one_licence_twice_is_refused_and_never_draws_twice() {
    let app = TestApp::builder().today("2026-11-30").spawn().await;
    let admin = app.add_party(Role::Admin, "ADMIN-1").await;
    let sbv = app
        .add_party_with_agency(Role::Ministry, "SBV-OFFICER-1", "SBV")
        .await;
    let trader = app.add_party(Role::Enterprise, GOLD_IMPORTER).await;
    let key = register_signer(&app, &admin, "SBV").await;
    let r = deposit(
        &app,
        &sbv,
        &key,
        gold_licence("215/GP-NHNN", "2026-01-01", "2099-12-31", "60"),
    )
    .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));

    let once = gold_declaration("KLP-TWICE", "215/GP-NHNN", "2026-11-20");
    let quoted = "    <Document>\n      <Type>LIC</Type>\n      <Reference>215/GP-NHNN</Reference>\n      <IssueDate>2026-11-20</IssueDate>\n      <Issuer>SBV</Issuer>\n    </Document>\n";
    let twice = replace(&once, quoted, &format!("{quoted}{quoted}"));
    let before = app.footprint().await;
    let r = app.submit(&trader, twice.clone()).await;
    let errors = located(&r);
    // One located error for the repeated quotation, not two balance errors for a doubled draw.
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "LICENCE_QUOTED_TWICE");
    assert_eq!(errors[0].1, "/Declaration/Item/Document[2]");
    assert_eq!(app.footprint().await, before);
    assert_eq!(remaining(&app, &trader, "215/GP-NHNN").await, "60.000");

    // The same quotation without an issuer the second time is the same licence.
    let bare = "    <Document>\n      <Type>LIC</Type>\n      <Reference>215/GP-NHNN</Reference>\n    </Document>\n";
    let r = app
        .submit(&trader, replace(&once, quoted, &format!("{quoted}{bare}")))
        .await;
    assert_eq!(located(&r)[0].0, "LICENCE_QUOTED_TWICE");

    // Quoted once, the item draws its 50 kg once.
    let r = app.submit(&trader, once).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(remaining(&app, &trader, "215/GP-NHNN").await, "10.000");
}

#[tokio::test]
async fn a_declarants_reference_names_one_declaration() {
    let app = TestApp::builder().today("2026-11-30").spawn().await;
    let token = app.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await;
    let xml = fixture(LAPTOPS);

    let first = app.submit(&token, xml.clone()).await;
    assert_eq!(first.status, 201);
    let first = first.json();
    let before = app.footprint().await;
    // The same reference again, without an Idempotency-Key (and with another body).
    let again = replace(
        &xml,
        r#"<Quantity unit="H87">200</Quantity>"#,
        r#"<Quantity unit="H87">201</Quantity>"#,
    );
    for body in [xml.clone(), again] {
        let r = app.submit(&token, body).await;
        assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));
        let p = r.json();
        assert_eq!(p["code"], "DECLARATION_REFERENCE_REUSED");
        assert_eq!(p["declaration"]["id"], first["id"]);
        assert_eq!(p["declaration"]["reference"], first["reference"]);
        assert_eq!(p["declaration"]["lrn"], "SV-IM-2026-0142");
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains(first["reference"].as_str().unwrap()),
            "{p}"
        );
        assert_eq!(app.footprint().await, before);
    }

    // An Idempotency-Key replay of the same body still answers as the first time.
    let keyed = with_reference(&xml, "SV-IM-2026-0143");
    let a = app
        .submit_with(&token, keyed.clone(), &[("idempotency-key", "k-0143")])
        .await;
    assert_eq!(a.status, 201);
    let b = app
        .submit_with(&token, keyed.clone(), &[("idempotency-key", "k-0143")])
        .await;
    assert_eq!(b.status, 201);
    assert_eq!(b.header("idempotent-replayed"), Some("true"));
    assert_eq!(a.json(), b.json());
    // Under another key the reference is taken.
    let c = app
        .submit_with(&token, keyed, &[("idempotency-key", "k-other")])
        .await;
    assert_eq!(c.status, 409);
    assert_eq!(c.json()["code"], "DECLARATION_REFERENCE_REUSED");
    assert_eq!(c.json()["declaration"]["id"], a.json()["id"]);
    assert_eq!(app.count("declarations").await, 2);
}

#[tokio::test]
async fn a_reused_reference_in_a_commit_group_fails_only_itself() {
    let app = TestApp::builder()
        .today("2026-11-30")
        .settings(|s| {
            s.intake.group_commit = true;
            s.intake.committers = 1;
        })
        .spawn()
        .await;
    let token = app.add_party(Role::Enterprise, LAPTOPS_IMPORTER).await;
    let xml = fixture(LAPTOPS);
    // 20 distinct declarations and 5 copies of one reference, all at once: the committer groups
    // them; exactly one copy is stored, every other member commits.
    let mut bodies: Vec<Vec<u8>> = (0..20)
        .map(|n| with_reference(&xml, &format!("GR-{n}")))
        .collect();
    for n in 0..5 {
        bodies.push(replace(
            &with_reference(&xml, "GR-SAME"),
            r#"<Quantity unit="H87">200</Quantity>"#,
            &format!(r#"<Quantity unit="H87">{}</Quantity>"#, 200 + n),
        ));
    }
    let answers =
        futures_util::future::join_all(bodies.iter().map(|body| app.submit(&token, body.clone())))
            .await;
    for a in &answers[..20] {
        assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
    }
    let same: Vec<_> = answers[20..].iter().collect();
    let stored: Vec<_> = same.iter().filter(|a| a.status == 201).collect();
    assert_eq!(stored.len(), 1);
    let first_id = stored[0].json()["id"].clone();
    for a in same.iter().filter(|a| a.status != 201) {
        assert_eq!(a.status, 409, "{}", String::from_utf8_lossy(&a.body));
        assert_eq!(a.json()["code"], "DECLARATION_REFERENCE_REUSED");
        assert_eq!(a.json()["declaration"]["id"], first_id);
    }
    assert_eq!(app.count("declarations").await, 21);
}
