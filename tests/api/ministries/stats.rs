//! Working time: limits in days counted in the configured working day, and the statistics'
//! working hours and on-schedule rate.

use nsw::domain::party::Role;

use super::{apply, RICE_APPLICATION};
use crate::helpers::TestApp;

#[tokio::test]
async fn a_limit_in_days_counts_the_configured_working_day() {
    let app = TestApp::builder()
        .settings(|s| {
            s.calendar.day_start = "07:30".into();
            s.calendar.day_end = "17:00".into();
        })
        .spawn()
        .await;
    let enterprise = app.add_party(Role::Enterprise, "1401234568").await;
    // moit-rice-export: sla_days = 5, so five days of 9.5 working hours
    let receipt = apply(&app, &enterprise, RICE_APPLICATION).await;
    let client = app.pool.get().await.unwrap();
    let minutes: i32 = client
        .query_one(
            "SELECT sla_minutes FROM licence_applications WHERE id = $1::text::uuid",
            &[&receipt["id"].as_str().unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(minutes, 5 * (9 * 60 + 30));
}

/// Stores an application of MOIT procedure `P-STATS` received at `received` (RFC 3339) that went
/// through `steps` (status, time), with the events an officer's actions would have written.
async fn stored_application(
    client: &deadpool_postgres::Object,
    applicant: &str,
    n: u32,
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
             VALUES ($1::text::uuid, 'VN-LA-STATS-' || $3::text, $2::text::uuid, $4, 'LRN',
                '{}', 'EXL', 'EX', 'PH', '2026-09-01', '2026-12-31', 'MOIT', 'P-STATS', 'LIC',
                'stats', 1, 480, 0, 'submitted', $5, $5)",
            &[&id, &doc, &n.to_string(), &applicant, &received],
        )
        .await
        .unwrap();
    for (status, at) in [("submitted", received), ("received", received)]
        .into_iter()
        .chain(steps.iter().map(|(s, t)| (*s, t.parse().unwrap())))
    {
        let decided = matches!(status, "issued" | "refused");
        // The row is inserted as submitted; a status never "moves" to itself.
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

#[tokio::test]
async fn stats_count_working_hours_and_the_on_schedule_rate_exactly() {
    let app = TestApp::spawn().await;
    app.add_party(Role::Enterprise, "1401234568").await;
    let admin = app.add_party(Role::Admin, "ADMIN-1").await;
    let client = app.pool.get().await.unwrap();
    // Times in UTC+7, the default calendar (08:00-16:00, 2026-09-02 a public holiday).
    // Friday 14:00 to Monday 10:00: 4 working hours.
    stored_application(
        &client,
        "1401234568",
        1,
        "2026-09-04T14:00:00+07:00",
        &[
            ("under_review", "2026-09-07T08:30:00+07:00"),
            ("issued", "2026-09-07T10:00:00+07:00"),
        ],
    )
    .await;
    // Tuesday 15:00, over the holiday, to Thursday 09:30: 2.5 hours.
    stored_application(
        &client,
        "1401234568",
        2,
        "2026-09-01T15:00:00+07:00",
        &[
            ("under_review", "2026-09-03T09:00:00+07:00"),
            ("refused", "2026-09-03T09:30:00+07:00"),
        ],
    )
    .await;
    // Monday 09:00 to Thursday 12:00 (27 hours) less the supplement owed from Monday 11:00 to
    // Wednesday 10:00 (15 hours): 12 hours, late for an 8-hour limit.
    stored_application(
        &client,
        "1401234568",
        3,
        "2026-09-07T09:00:00+07:00",
        &[
            ("supplement_requested", "2026-09-07T11:00:00+07:00"),
            ("supplemented", "2026-09-09T10:00:00+07:00"),
            ("under_review", "2026-09-09T11:00:00+07:00"),
            ("issued", "2026-09-10T12:00:00+07:00"),
        ],
    )
    .await;
    // Still with the agency.
    stored_application(&client, "1401234568", 4, "2026-09-08T09:00:00+07:00", &[]).await;

    let stats = app.get(&admin, "/api/v1/stats").await.json();
    let row = stats["procedures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["procedure_code"] == "P-STATS")
        .cloned()
        .unwrap();
    assert_eq!(row["received"], 4);
    assert_eq!(row["decided"], 3);
    assert_eq!(row["issued"], 2);
    assert_eq!(row["refused"], 1);
    assert_eq!(row["pending"], 1);
    // nearest rank over [2.5, 4, 12]
    assert_eq!(row["median_hours"], 4.0);
    assert_eq!(row["p90_hours"], 12.0);
    assert_eq!(row["on_schedule_rate"], 2.0 / 3.0);
}
