//! `nsw validate FILE...`: the service's validation engine, offline.
//! Exit status: 0 all valid, 1 some invalid, 2 some input unusable (unreadable or not XML).

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;

use nsw::validation::{Valid, Validator, Verdict};
use nsw::xml::Limits;

pub fn run(files: &[PathBuf], as_json: bool, country: &str) -> ExitCode {
    // The window's date for the rules that compare with it: the system's (UTC+07:00), or
    // calendar.today from the environment (NSW_CALENDAR__TODAY or NSW_CLOCK_TODAY) as the
    // service takes it.
    let clock = nsw::config::env::value_of("calendar.today")
        .and_then(|d| chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").ok())
        .map(|d| nsw::calendar::Clock::fixed(nsw::calendar::Clock::default().offset(), d))
        .unwrap_or_default();
    let validator = Validator::new(Limits::default(), country).with_clock(clock);
    let mut worst = 0u8;
    let mut reports = Vec::new();
    for file in files {
        let name = file.display().to_string();
        let (status, report) = match std::fs::read(file) {
            Err(e) => (
                2,
                json!({"file": name, "valid": false, "usable": false, "code": "FILE_UNREADABLE",
                       "message": e.to_string()}),
            ),
            Ok(bytes) => match validator.validate(&bytes, None) {
                Verdict::Valid(v) => (
                    0,
                    json!({"file": name, "valid": true, "kind": v.kind().name(),
                           "items": match &v { Valid::Declaration(d) => Some(d.items.len()), _ => None }}),
                ),
                Verdict::Invalid {
                    kind,
                    stage,
                    violations,
                } => (
                    1,
                    json!({"file": name, "valid": false, "usable": true,
                           "kind": kind.map(|k| k.name()), "stage": stage, "errors": violations}),
                ),
                Verdict::Unusable(e) => {
                    let pos = e.position();
                    (
                        2,
                        json!({"file": name, "valid": false, "usable": false, "code": e.code(),
                               "message": e.to_string(), "line": pos.map(|p| p.line),
                               "column": pos.map(|p| p.column)}),
                    )
                }
            },
        };
        worst = worst.max(status);
        if !as_json {
            print_human(&report);
        }
        reports.push(report);
    }
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&reports).unwrap_or_default()
        );
    }
    ExitCode::from(worst)
}

fn print_human(r: &serde_json::Value) {
    let file = r["file"].as_str().unwrap_or("?");
    if r["valid"].as_bool() == Some(true) {
        println!("{file}: valid {}", r["kind"].as_str().unwrap_or(""));
        return;
    }
    if r["usable"].as_bool() == Some(false) {
        let at = match (r["line"].as_u64(), r["column"].as_u64()) {
            (Some(l), Some(c)) => format!(" at {l}:{c}"),
            _ => String::new(),
        };
        println!(
            "{file}: unusable{at}: {} {}",
            r["code"].as_str().unwrap_or(""),
            r["message"].as_str().unwrap_or("")
        );
        return;
    }
    let errors = r["errors"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    println!(
        "{file}: invalid {} ({} problem(s), {} stage)",
        r["kind"].as_str().unwrap_or("document"),
        errors.len(),
        r["stage"].as_str().unwrap_or("")
    );
    for e in errors {
        println!(
            "  {}:{} {} {}: {}",
            e["line"],
            e["column"],
            e["path"].as_str().unwrap_or(""),
            e["code"].as_str().unwrap_or(""),
            e["message"].as_str().unwrap_or("")
        );
    }
}
