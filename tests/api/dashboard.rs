//! The public performance dashboard: figures per agency over a period, the same as the API's
//! statistics, in both languages, as CSV and as charts; nobody named; bad periods refused beside
//! their field.

use nsw::domain::party::Role;
use serde_json::Value;

use crate::helpers::TestApp;
use crate::portal::Browser;

const APPLICANT: &str = "1401234568";

/// Stores an application of `agency`'s procedure `procedure` received at `received` (RFC 3339,
/// local time) that went through `steps`, with the events an officer's actions would write.
/// The time limit is one working day (480 minutes).
async fn stored_application(
    client: &deadpool_postgres::Object,
    n: u32,
    agency: &str,
    procedure: &str,
    received: &str,
    steps: &[(&str, &str)],
) {
    let received: chrono::DateTime<chrono::Utc> = received.parse().unwrap();
    // A UUIDv7 of the moment it was received, as the window makes them.
    let ms = received.timestamp_millis() as u64;
    let id = format!("{:08x}-{:04x}-7000-8000-{n:012}", ms >> 16, ms & 0xffff);
    let doc = format!("00000000-0000-7001-8000-{n:012}");
    client
        .execute(
            "INSERT INTO documents (id, kind, sha256, size, body, received_at)
             VALUES ($1::text::uuid, 'licence-application', sha256('x'), 1, 'x', $2)",
            &[&doc, &received],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO licence_applications (id, reference, document_id, applicant_id, lrn,
                details, application_type, direction, country, valid_from, valid_to, agency,
                procedure_code, document_type, rule_id, routing_version, sla_minutes, fee_vnd,
                status, received_at, updated_at)
             VALUES ($1::text::uuid, 'VN-LA-DASH-' || $3::text, $2::text::uuid, $4, 'LRN',
                '{}', 'EXL', 'EX', 'PH', '2026-09-01', '2026-12-31', $5, $6, 'LIC',
                'dash', 1, 480, 0, 'submitted', $7, $7)",
            &[
                &id,
                &doc,
                &n.to_string(),
                &APPLICANT,
                &agency,
                &procedure,
                &received,
            ],
        )
        .await
        .unwrap();
    for (status, at) in [("submitted", received), ("received", received)]
        .into_iter()
        .chain(steps.iter().map(|(s, t)| (*s, t.parse().unwrap())))
    {
        let decided = matches!(status, "issued" | "refused");
        client
            .execute(
                "UPDATE licence_applications SET status = $2, updated_at = $3,
                        decided_at = CASE WHEN $4 THEN $3::timestamptz END,
                        decision_reason = CASE WHEN $2 = 'refused' THEN 'incomplete' END
                  WHERE id = $1::text::uuid AND status <> $2",
                &[&id, &status, &at, &decided],
            )
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO dossier_events (dossier_id, status, at, actor, note)
                 VALUES ($1::text::uuid, $2, $3, 'test', NULL)",
                &[&id, &status, &at],
            )
            .await
            .unwrap();
    }
}

/// Messages to and from partner windows, at `at`, with UUIDv7 ids of that moment as the window
/// makes them.
async fn stored_messages(client: &deadpool_postgres::Object, at: &str) {
    let at: chrono::DateTime<chrono::Utc> = at.parse().unwrap();
    for (receiver, doc_type) in [("TH", "ACDD"), ("TH", "ACDD"), ("SG", "FORM_D")] {
        client
            .execute(
                "INSERT INTO outbox (id, message_id, conversation_id, receiver, document_type,
                    function, reference, envelope, sha256, max_attempts, expires_at, created_at, cause)
                 VALUES ($4, gen_random_uuid(), gen_random_uuid(), $1, $2,
                    'submit', 'REF', 'x', sha256('x'), 5, $3::timestamptz + interval '1 day', $3,
                    'test:' || gen_random_uuid()::text)",
                &[&receiver, &doc_type, &at, &v7(at)],
            )
            .await
            .unwrap();
    }
    client
        .execute(
            "INSERT INTO inbound_messages (id, sender, message_id, conversation_id, document_type,
                function, reference, envelope, sha256, signature, signer_subject, receipt,
                receipt_signature, received_at)
             VALUES ($2, 'TH', gen_random_uuid(), gen_random_uuid(), 'ACDD',
                'submit', 'TH-REF', 'y', sha256('y'), 's', 'CN=th', 'r', 'rs', $1)",
            &[&at, &v7(at)],
        )
        .await
        .unwrap();
}

/// A UUIDv7 made at `at`.
fn v7(at: chrono::DateTime<chrono::Utc>) -> uuid::Uuid {
    uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        at.timestamp() as u64,
        at.timestamp_subsec_nanos(),
    ))
}

/// September 2026 (UTC+7, 08:00-16:00, 2026-09-02 a holiday), one working day per application:
/// MOIT decides two on schedule and one late and has one open; MOH decides one on schedule.
/// One MOIT application came in August and is still open.
async fn seeded() -> TestApp {
    seeded_with(|_| {}).await
}

/// `seeded`, with settings of the test's own.
async fn seeded_with(tweak: impl FnOnce(&mut nsw::config::Settings) + Send + 'static) -> TestApp {
    let app = TestApp::builder()
        .today("2026-09-30")
        .without_jobs()
        .settings(tweak)
        .spawn()
        .await;
    app.add_party(Role::Enterprise, APPLICANT).await;
    let c = app.pool.get().await.unwrap();
    // 4 working hours: on schedule
    stored_application(
        &c,
        1,
        "MOIT",
        "P-RICE",
        "2026-09-04T14:00:00+07:00",
        &[
            ("under_review", "2026-09-07T08:30:00+07:00"),
            ("issued", "2026-09-07T10:00:00+07:00"),
        ],
    )
    .await;
    // 2.5 working hours over the holiday: on schedule
    stored_application(
        &c,
        2,
        "MOIT",
        "P-RICE",
        "2026-09-01T15:00:00+07:00",
        &[
            ("under_review", "2026-09-03T09:00:00+07:00"),
            ("refused", "2026-09-03T09:30:00+07:00"),
        ],
    )
    .await;
    // 12 working hours (the supplement's 15 hours excluded): late
    stored_application(
        &c,
        3,
        "MOIT",
        "P-CHEM",
        "2026-09-07T09:00:00+07:00",
        &[
            ("supplement_requested", "2026-09-07T11:00:00+07:00"),
            ("supplemented", "2026-09-09T10:00:00+07:00"),
            ("under_review", "2026-09-09T11:00:00+07:00"),
            ("issued", "2026-09-10T12:00:00+07:00"),
        ],
    )
    .await;
    stored_application(&c, 4, "MOIT", "P-RICE", "2026-09-08T09:00:00+07:00", &[]).await;
    // 2 working hours: on schedule
    stored_application(
        &c,
        5,
        "MOH",
        "P-FOOD",
        "2026-09-15T09:00:00+07:00",
        &[
            ("under_review", "2026-09-15T10:00:00+07:00"),
            ("issued", "2026-09-15T11:00:00+07:00"),
        ],
    )
    .await;
    stored_application(&c, 6, "MOIT", "P-RICE", "2026-08-20T09:00:00+07:00", &[]).await;
    stored_messages(&c, "2026-09-10T10:00:00+07:00").await;
    app
}

/// The cells of the table row whose header cell is `header`, text only.
fn row_cells(body: &str, table_id: &str, header: &str) -> Vec<String> {
    let table = &body[body
        .find(&format!("<table id=\"{table_id}\""))
        .expect(table_id)..];
    let table = &table[..table.find("</table>").unwrap()];
    let marker = format!("<th scope=\"row\">{header}</th>");
    let start = table
        .find(&marker)
        .unwrap_or_else(|| panic!("row {header} in {table}"));
    let row = &table[start..];
    let row = &row[..row.find("</tr>").unwrap()];
    row.split("<td")
        .skip(1)
        .map(|c| {
            let c = &c[c.find('>').unwrap() + 1..];
            c[..c.find("</td>").unwrap()].trim().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn the_public_page_shows_each_agency_in_both_languages_without_naming_anyone() {
    let app = seeded().await;
    let mut b = Browser::new(&app);
    b.accept_language = Some("vi".into());
    // anonymous; the default period is September 2026 so far
    let vi = b.get("/dashboard").await;
    assert_eq!(vi.status, 200, "{}", vi.body);
    assert!(vi.body.contains("value=\"2026-09-01\""), "{}", vi.body);
    // received, decided, issued, refused, withdrawn, pending, on schedule, median, p90, online
    let moit = row_cells(&vi.body, "agency-figures", "MOIT");
    assert_eq!(&moit[..7], ["4", "3", "2", "1", "0", "1", "66,7\u{a0}%"]);
    assert_eq!(moit[7], "4 giờ (0,5 ngày làm việc)");
    assert_eq!(moit[8], "12 giờ (1,5 ngày làm việc)");
    let moh = row_cells(&vi.body, "agency-figures", "MOH");
    assert_eq!(&moh[..2], ["1", "1"]);
    assert_eq!(moh[6], "100,0\u{a0}%");
    // two working hours are a quarter of a day, rounded half away from zero
    assert_eq!(moh[7], "2 giờ (0,3 ngày làm việc)");
    // per procedure
    let chem = row_cells(&vi.body, "procedure-figures", "P-CHEM");
    assert_eq!(&chem[..2], ["1", "1"]);
    assert_eq!(chem[6], "0,0\u{a0}%");
    // exchange per partner: two sent to TH, one received from it
    let th = row_cells(&vi.body, "exchange-figures", "TH");
    assert_eq!(th, ["ACDD", "2", "0", "0", "1"]);
    // charts as images with alt text, in the page's language
    assert!(vi.body.contains(
        "src=\"/dashboard/charts/on-schedule.svg?from=2026-09-01&#38;to=2026-09-30&#38;lang=vi\""
    ), "{}", vi.body);
    assert!(vi
        .body
        .contains("alt=\"Biểu đồ cột: tỷ lệ quyết định đúng hạn"));
    // nobody named: neither the applicant's id nor its name
    assert!(
        !vi.body.contains(APPLICANT),
        "a party id on the public page"
    );
    assert!(!vi.body.contains("test party"));

    b.accept_language = Some("en".into());
    let en = b.get("/dashboard").await;
    assert_eq!(en.status, 200);
    assert!(en.body.contains("<html lang=\"en\">"));
    let moit = row_cells(&en.body, "agency-figures", "MOIT");
    assert_eq!(&moit[..7], ["4", "3", "2", "1", "0", "1", "66.7%"]);
    assert_eq!(moit[7], "4 h (0.5 working days)");
    assert!(!en.body.contains(APPLICANT));

    // August holds only the open application received then
    let aug = b.get("/dashboard?from=2026-08-01&to=2026-08-31").await;
    let moit = row_cells(&aug.body, "agency-figures", "MOIT");
    assert_eq!(&moit[..2], ["1", "0"]);
    assert_eq!(moit[6], "—");
    assert!(!aug.body.contains("exchange-figures"));

    // everyone reaches it: from the log-in page and every page's footer
    let login = b.get("/login").await;
    assert!(login.body.contains("href=\"/dashboard\""));
}

#[tokio::test]
async fn the_csv_and_the_api_give_the_same_figures() {
    let app = seeded().await;
    let admin = app.add_party(Role::Admin, "ADMIN-1").await;
    let mut b = Browser::new(&app);
    // August and September: everything stored, as the API counts
    let csv = b.get("/dashboard.csv?from=2026-08-01&to=2026-09-30").await;
    assert_eq!(csv.status, 200);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    assert!(csv
        .header("content-disposition")
        .unwrap()
        .starts_with("attachment;"));
    let mut r = csv::Reader::from_reader(csv.body.as_bytes());
    let head = r.headers().unwrap().clone();
    let rows: Vec<std::collections::HashMap<String, String>> = r
        .records()
        .map(|rec| {
            head.iter()
                .zip(rec.unwrap().iter())
                .map(|(h, v)| (h.to_owned(), v.to_owned()))
                .collect()
        })
        .collect();
    let find = |level: &str, agency: &str, code: &str| {
        rows.iter()
            .find(|r| r["level"] == level && r["agency"] == agency && r["procedure_code"] == code)
            .unwrap_or_else(|| panic!("{level} {agency} {code} in {rows:?}"))
            .clone()
    };
    let moit = find("agency", "MOIT", "");
    assert_eq!(moit["received"], "5");
    assert_eq!(moit["decided"], "3");
    assert_eq!(moit["on_schedule_percent"], "66.7");
    assert_eq!(moit["median_working_hours"], "4.00");
    assert_eq!(moit["p90_working_hours"], "12.00");
    assert!(!csv.body.contains(APPLICANT));

    let stats: Value = app.get(&admin, "/api/v1/stats").await.json();
    let procedures = stats["procedures"].as_array().unwrap();
    assert_eq!(procedures.len(), 3);
    for p in procedures {
        let (agency, code) = (
            p["agency"].as_str().unwrap(),
            p["procedure_code"].as_str().unwrap(),
        );
        let row = find("procedure", agency, code);
        for field in [
            "received",
            "decided",
            "issued",
            "refused",
            "withdrawn",
            "pending",
        ] {
            assert_eq!(row[field], p[field].to_string(), "{agency} {code} {field}");
        }
        let rate = p["on_schedule_rate"]
            .as_f64()
            .map(|r| format!("{:.1}", r * 100.0));
        assert_eq!(
            row["on_schedule_percent"],
            rate.unwrap_or_default(),
            "{agency} {code}"
        );
        let median = p["median_hours"].as_f64().map(|h| format!("{h:.2}"));
        assert_eq!(row["median_working_hours"], median.unwrap_or_default());
    }
    // per agency, the API's procedures summed
    for agency in ["MOIT", "MOH"] {
        let of: Vec<&Value> = procedures
            .iter()
            .filter(|p| p["agency"] == agency)
            .collect();
        let sum = |f: &str| {
            of.iter()
                .map(|p| p[f].as_i64().unwrap())
                .sum::<i64>()
                .to_string()
        };
        let row = find("agency", agency, "");
        assert_eq!(row["received"], sum("received"));
        assert_eq!(row["decided"], sum("decided"));
    }

    let ex = b
        .get("/dashboard/exchange.csv?from=2026-09-01&to=2026-09-30")
        .await;
    assert_eq!(ex.status, 200);
    let lines: Vec<&str> = ex.body.lines().collect();
    assert_eq!(
        lines,
        [
            "period_from,period_to,partner,document_type,sent,delivered,failed,received",
            "2026-09-01,2026-09-30,SG,FORM_D,1,0,0,0",
            "2026-09-01,2026-09-30,TH,ACDD,2,0,0,1",
        ]
    );
}

#[tokio::test]
async fn charts_are_svg_with_a_title_in_the_language_asked() {
    let app = seeded().await;
    let mut b = Browser::new(&app);
    for name in ["on-schedule", "processing", "daily", "exchange"] {
        let svg = b
            .get(&format!(
                "/dashboard/charts/{name}.svg?from=2026-09-01&to=2026-09-30&lang=en"
            ))
            .await;
        assert_eq!(svg.status, 200, "{name}");
        assert_eq!(
            svg.header("content-type"),
            Some("image/svg+xml; charset=utf-8")
        );
        // well-formed XML whose root is an accessible <svg> with a <title> and a <desc>
        let mut reader = quick_xml::Reader::from_str(&svg.body);
        let mut elements = Vec::new();
        let mut title = String::new();
        let mut in_title = false;
        loop {
            match reader
                .read_event()
                .unwrap_or_else(|e| panic!("{name}: {e}"))
            {
                quick_xml::events::Event::Start(e) => {
                    let tag = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                    in_title = tag == "title";
                    elements.push(tag);
                }
                quick_xml::events::Event::Empty(e) => {
                    elements.push(String::from_utf8(e.name().as_ref().to_vec()).unwrap());
                }
                quick_xml::events::Event::Text(t) if in_title => {
                    title.push_str(&String::from_utf8_lossy(t.as_ref()));
                }
                quick_xml::events::Event::End(_) => in_title = false,
                quick_xml::events::Event::Eof => break,
                _ => {}
            }
        }
        assert_eq!(elements[0], "svg", "{name}");
        assert_eq!(elements[1], "title", "{name}");
        assert_eq!(elements[2], "desc", "{name}");
        assert!(title.contains("1 Sep 2026"), "{name}: {title}");
        assert!(svg.body.contains("role=\"img\""));
        assert!(!svg.body.contains("style="), "{name}: inline style");
    }
    let on = b
        .get("/dashboard/charts/on-schedule.svg?from=2026-09-01&to=2026-09-30&lang=vi")
        .await;
    assert!(on.body.contains("Tỷ lệ giải quyết đúng hạn theo cơ quan"));
    assert!(
        on.body.contains("MOH: 100,0\u{a0}%; MOIT: 66,7\u{a0}%"),
        "{}",
        on.body
    );
    let nothing = b.get("/dashboard/charts/other.svg").await;
    assert_eq!(nothing.status, 404);
}

#[tokio::test]
async fn a_bad_period_shows_the_form_again_with_the_message_beside_the_field() {
    let app = seeded().await;
    let mut b = Browser::new(&app);
    b.accept_language = Some("en".into());
    let bad = b.get("/dashboard?from=2026-09-30&to=2026-09-01").await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains(
        "<p class=\"field-error\" id=\"to-error\">The end date must be on or after the start date.</p>"
    ), "{}", bad.body);
    assert!(bad.body.contains("aria-describedby=\"to-error\""));
    assert!(!bad.body.contains("agency-figures"));

    let long = b.get("/dashboard?from=2025-01-01&to=2026-09-01").await;
    assert_eq!(long.status, 422);
    assert!(long.body.contains("at most 366 days"));

    b.accept_language = Some("vi".into());
    let garbled = b.get("/dashboard?from=31%2F09%2F2026").await;
    assert_eq!(garbled.status, 422);
    assert!(garbled.body.contains(
        "<p class=\"field-error\" id=\"from-error\">Nhập ngày theo ngày, tháng, năm.</p>"
    ));
    // downloads refuse it too
    let csv = b.get("/dashboard.csv?from=2026-09-30&to=2026-09-01").await;
    assert_eq!(csv.status, 400);
}

/// A period's figures are computed once and shared for a while (a page and its charts, a
/// refresh), and the requests for other periods wait a bounded time for their turn instead of
/// piling work onto the database.
#[tokio::test]
async fn a_period_s_figures_are_computed_once_and_computations_do_not_pile_up() {
    let app = seeded_with(|s| s.portal.dashboard_computations = 1).await;
    let mut b = Browser::new(&app);
    b.accept_language = Some("en".into());
    let september = "/dashboard?from=2026-09-01&to=2026-09-30";
    let first = b.get(september).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(row_cells(&first.body, "agency-figures", "MOIT")[0], "4");

    // One more MOIT application in September: the kept figures of the period stand until
    // they expire; another period computes afresh and counts it.
    let c = app.pool.get().await.unwrap();
    stored_application(&c, 7, "MOIT", "P-RICE", "2026-09-21T09:00:00+07:00", &[]).await;
    let again = b.get(september).await;
    assert_eq!(row_cells(&again.body, "agency-figures", "MOIT")[0], "4");
    let fresh = b.get("/dashboard?from=2026-09-01&to=2026-09-29").await;
    assert_eq!(row_cells(&fresh.body, "agency-figures", "MOIT")[0], "5");

    // The database is held up: August's computation takes the only slot and waits on the
    // lock; July's request waits its bounded time for a slot and is answered 503, instead of
    // queueing behind it without end. The lock is let go once July is answered; the whole
    // exchange is bounded, so a regression fails the test instead of hanging it.
    let locker = app.pool.get().await.unwrap();
    locker
        .batch_execute("BEGIN; LOCK TABLE licence_applications IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    // Outside the locker's transaction: pg_stat_activity is read afresh by each statement.
    let watcher = app.pool.get().await.unwrap();
    let mut august_browser = Browser::new(&app);
    let mut july_browser = Browser::new(&app);
    let july_then_release = async {
        // July only once August's computation holds the slot and waits on the lock.
        let mut blocked = false;
        for _ in 0..200 {
            let waiting: i64 = watcher
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                      WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if waiting > 0 {
                blocked = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let asked = std::time::Instant::now();
        let july = july_browser
            .get("/dashboard?from=2026-07-01&to=2026-07-31")
            .await;
        let waited = asked.elapsed();
        locker.batch_execute("ROLLBACK").await.unwrap();
        (blocked, july, waited)
    };
    let (august, (blocked, july, waited)) =
        tokio::time::timeout(std::time::Duration::from_secs(40), async {
            tokio::join!(
                august_browser.get("/dashboard?from=2026-08-01&to=2026-08-31"),
                july_then_release
            )
        })
        .await
        .expect("the dashboard's requests ended");
    assert!(blocked, "August's computation never waited on the lock");
    assert_eq!(july.status, 503, "{}", july.body);
    assert!(july.body.contains("UNAVAILABLE"), "{}", july.body);
    assert_eq!(
        july.headers.get("retry-after").map(|v| v.to_str().unwrap()),
        Some("5")
    );
    // It waited for a slot (5 s); it was not refused at once.
    assert!(
        waited >= std::time::Duration::from_millis(4_500),
        "answered after {waited:?}"
    );
    assert_eq!(august.status, 200, "{}", august.body);
    assert_eq!(row_cells(&august.body, "agency-figures", "MOIT")[0], "1");
    // Nothing was kept of the refused request: July computes once the slot is free.
    let july = b.get("/dashboard?from=2026-07-01&to=2026-07-31").await;
    assert_eq!(july.status, 200, "{}", july.body);
}
