//! `nsw loadtest --exchange` end to end on a small run: two `nsw serve` windows, every
//! message delivered and stored exactly once, with and without the partner failing requests.

use crate::helpers::loadtest_report;

#[test]
fn exchange_load_test_delivers_every_message_exactly_once() {
    let report = loadtest_report(
        "nsw-test-loadtest-exchange",
        &[
            "--exchange",
            "--messages",
            "60",
            "--seconds",
            "1",
            "--fail-ratio",
            "0.3",
            "--prefill",
            "200",
        ],
    );
    let phases = report["phases"].as_array().unwrap();
    // clean, fail, then clean again after 200 messages of history were stored in each window
    assert_eq!(phases.len(), 3);
    for p in phases {
        assert_eq!(p["delivered"], 60, "{p}");
        assert_eq!(p["receiver_rows"], 60, "{p}");
        assert_eq!(p["receiver_duplicates"], 0, "{p}");
        assert_eq!(p["delivered_not_stored"], 0, "{p}");
        assert_eq!(p["exactly_once"], true, "{p}");
    }
    assert_eq!(phases[0]["attempts_per_message"], 1.0);
    assert_eq!(report["prefilled_messages"], 200, "{report}");
    assert!(report["prefilled_over_empty"].as_f64().unwrap() > 0.0);
    // 30% of SG's answers fail: some message needed more than one attempt (the chance that
    // none of 60 did is 0.7^60, about 5e-10; that one exhausts its 12 attempts, about 3e-5).
    assert!(
        phases[1]["max_attempts"].as_i64().unwrap() > 1,
        "{}",
        phases[1]
    );
    for key in [
        "baseline_cms_per_second",
        "baseline_receiver_insert_per_second",
        "baseline_sender_db_per_second",
    ] {
        assert!(report[key].as_f64().unwrap() > 0.0, "{key}: {report}");
    }
}
