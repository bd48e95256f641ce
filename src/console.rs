//! What an operator must look at now: the alerts of the operator console (`/console`).
//!
//! [`alerts`] computes them from the database and the exchange's keys and partner table; it
//! knows no HTTP and no language, so the console's page renders them and a metrics exporter can
//! count them by [`AlertKind::as_str`] (e.g. a gauge `nsw_console_alerts{kind="dead_letter"}`).
//! The rules (docs/portal.md, "Operator console"):
//!
//! - a certificate expires within `console.certificate_warning_days` (30): our signing
//!   certificate and CA, our TLS certificate, every partner's pinned CA, every agency
//!   certificate registered in the database (already expired ones too);
//! - a message is a dead letter (outbox status `dead_letter`);
//! - a partner is failing: its last delivery attempt failed, and nothing was delivered to it
//!   since a message started failing at least `console.partner_failing_minutes` (30) ago;
//! - an application is past its time limit in working time (time awaiting a supplement not
//!   counted), as the officer's inbox computes it;
//! - the latest reconciliation of a day (of the last [`RECONCILIATION_DAYS`]) with the payment
//!   platform's settlement file found mismatches, or failed: the alert ends when a later run
//!   of that day matches.

use chrono::{DateTime, Duration, Utc};
use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::x509::{X509Ref, X509};

use crate::api::AppState;
use crate::exchange::keys;
use crate::store::{console as store, stats, StoreError};

/// Most applications, dead letters read for the alert list.
const LIMIT: i64 = 1000;
/// How many days back a day whose reconciliation did not match stays an alert.
pub const RECONCILIATION_DAYS: u64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertKind {
    CertificateExpiring,
    DeadLetter,
    PartnerFailing,
    ReconciliationFailed,
    ReconciliationMismatches,
    ApplicationOverdue,
}

impl AlertKind {
    /// A stable name (metric label, catalogue key suffix).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::CertificateExpiring => "certificate_expiring",
            AlertKind::DeadLetter => "dead_letter",
            AlertKind::PartnerFailing => "partner_failing",
            AlertKind::ReconciliationFailed => "reconciliation_failed",
            AlertKind::ReconciliationMismatches => "reconciliation_mismatches",
            AlertKind::ApplicationOverdue => "application_overdue",
        }
    }
}

/// One alert; which fields are set depends on the kind.
#[derive(Debug, Clone)]
pub struct Alert {
    pub kind: AlertKind,
    /// What it is about: a certificate's owner and subject, a message id, a partner country,
    /// an application's reference, a reconciled day (`YYYY-MM-DD`).
    pub subject: String,
    /// When: a certificate's expiry, a dead letter's last attempt, since when a partner fails,
    /// when an application was received, when the reconciliation ran.
    pub at: DateTime<Utc>,
    /// More: the certificate's owner, the last error, the application's agency, the number of
    /// mismatches or why the reconciliation failed.
    pub detail: String,
    /// Seconds of working time past the limit (overdue applications).
    pub overdue_secs: Option<i64>,
    /// Where the console shows it.
    pub link: Option<String>,
}

/// A certificate's notAfter as a time.
pub fn not_after(cert: &X509Ref) -> Option<DateTime<Utc>> {
    asn1_time(cert.not_after())
}

fn asn1_time(t: &Asn1TimeRef) -> Option<DateTime<Utc>> {
    let epoch = Asn1Time::from_unix(0).ok()?;
    let d = epoch.diff(t).ok()?;
    DateTime::from_timestamp(i64::from(d.days) * 86_400 + i64::from(d.secs), 0)
}

/// SHA-256 fingerprint of a certificate, as `AB:CD:…`.
pub fn fingerprint(cert: &X509Ref) -> String {
    cert.digest(openssl::hash::MessageDigest::sha256())
        .map(|d| {
            d.iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":")
        })
        .unwrap_or_default()
}

/// The certificates the window holds, with whose they are: ours, partners' pinned CAs,
/// agencies' (from the database).
pub async fn certificates(state: &AppState) -> Result<Vec<(String, X509)>, StoreError> {
    let mut certs = Vec::new();
    if let Some(ex) = state.exchange.as_deref() {
        certs.push((format!("{} signing", ex.country), ex.identity.cert.clone()));
        certs.push((format!("{} CA", ex.country), ex.identity.ca.clone()));
        for c in &ex.identity.chain {
            certs.push((format!("{} intermediate", ex.country), c.clone()));
        }
        if let Some(tls) = &ex.tls {
            if let Ok(c) = X509::from_pem(&tls.cert_pem) {
                certs.push((format!("{} TLS", ex.country), c));
            }
        }
        for country in ex.partners.countries() {
            if let Some(p) = ex.partners.get(country) {
                certs.push((format!("{country} partner CA"), p.ca.clone()));
            }
        }
    }
    let client = state.pool.get().await?;
    for (agency, pem) in store::agency_certificates(&client).await? {
        if let Ok(c) = X509::from_pem(pem.as_bytes()) {
            certs.push((format!("{agency} agency"), c));
        }
    }
    Ok(certs)
}

/// Every alert now, most urgent kind first, then by time.
pub async fn alerts(state: &AppState) -> Result<Vec<Alert>, StoreError> {
    let now = Utc::now();
    let mut out = Vec::new();
    let warn = Duration::days(i64::from(state.settings.console.certificate_warning_days));
    for (owner, cert) in certificates(state).await? {
        let Some(end) = not_after(&cert) else {
            continue;
        };
        if end - now <= warn {
            out.push(Alert {
                kind: AlertKind::CertificateExpiring,
                subject: keys::subject_line(&cert),
                at: end,
                detail: owner,
                overdue_secs: None,
                link: Some("/console/partners".into()),
            });
        }
    }
    let client = state.pool.get().await?;
    let (_, dead) = store::dead_letters(&client, LIMIT).await?;
    out.extend(dead.into_iter().map(|d| Alert {
        kind: AlertKind::DeadLetter,
        subject: d.message_id.to_string(),
        at: d.at,
        detail: format!(
            "{} {} → {}: {}",
            d.document_type,
            d.reference,
            d.receiver,
            d.last_error.unwrap_or_default()
        ),
        overdue_secs: None,
        link: Some(format!("/console/messages/out/{}", d.message_id)),
    }));
    let failing = Duration::minutes(i64::from(state.settings.console.partner_failing_minutes));
    for (country, t) in store::partner_traffic(&client).await? {
        if let (Some(since), Some((_, error))) = (t.failing_since, &t.last_failure) {
            if now - since >= failing {
                out.push(Alert {
                    kind: AlertKind::PartnerFailing,
                    subject: country,
                    at: since,
                    detail: error.clone(),
                    overdue_secs: None,
                    link: Some("/console/partners".into()),
                });
            }
        }
    }
    let since = state
        .today()
        .checked_sub_days(chrono::Days::new(RECONCILIATION_DAYS))
        .unwrap_or(chrono::NaiveDate::MIN);
    for run in crate::store::reconciliations::unsettled_days(&client, since).await? {
        let (kind, detail) = match &run.failure {
            Some(why) => (AlertKind::ReconciliationFailed, why.clone()),
            None => (
                AlertKind::ReconciliationMismatches,
                run.mismatches.len().to_string(),
            ),
        };
        out.push(Alert {
            kind,
            subject: run.settlement_date.to_string(),
            at: run.ran_at,
            detail,
            overdue_secs: None,
            link: Some(format!("/console/payments/reconciliations/{}", run.id)),
        });
    }
    for a in store::open_applications(&client, LIMIT).await? {
        let used = stats::processing_seconds(&state.calendar, a.received_at, now, &a.events);
        let left = i64::from(a.sla_minutes) * 60 - used;
        if left < 0 {
            out.push(Alert {
                kind: AlertKind::ApplicationOverdue,
                subject: a.reference,
                at: a.received_at,
                detail: a.agency,
                overdue_secs: Some(-left),
                link: None,
            });
        }
    }
    out.sort_by(|a, b| a.kind.cmp(&b.kind).then(a.at.cmp(&b.at)));
    Ok(out)
}

/// How a rule differs between two routing table versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Removed,
    Changed,
}

/// One line of a routing difference: a rule added or removed (with its fields in `after` or
/// `before`), or one field of a rule that changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleChange {
    pub rule: String,
    pub change: Change,
    /// The field that changed (`Changed` only).
    pub field: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
}

fn fields(rule: &crate::routing::Rule) -> Vec<(String, String)> {
    match serde_json::to_value(rule) {
        Ok(serde_json::Value::Object(m)) => m
            .into_iter()
            .filter(|(k, _)| k != "id")
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, v)
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn summary(rule: &crate::routing::Rule) -> String {
    fields(rule)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rules added, removed and changed (field by field) from version `a` to version `b`,
/// by rule id; agencies are compared the same way under the id `agency:<code>`.
pub fn routing_diff(
    a: &crate::routing::TableSpec,
    b: &crate::routing::TableSpec,
) -> Vec<RuleChange> {
    use std::collections::BTreeMap;
    let before: BTreeMap<&str, &crate::routing::Rule> =
        a.rules.iter().map(|r| (r.id.as_str(), r)).collect();
    let after: BTreeMap<&str, &crate::routing::Rule> =
        b.rules.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut out = Vec::new();
    let ids: std::collections::BTreeSet<&str> =
        before.keys().chain(after.keys()).copied().collect();
    for id in ids {
        match (before.get(id), after.get(id)) {
            (None, Some(r)) => out.push(RuleChange {
                rule: id.to_owned(),
                change: Change::Added,
                field: None,
                before: None,
                after: Some(summary(r)),
            }),
            (Some(r), None) => out.push(RuleChange {
                rule: id.to_owned(),
                change: Change::Removed,
                field: None,
                before: Some(summary(r)),
                after: None,
            }),
            (Some(x), Some(y)) if x != y => {
                let (fx, fy): (BTreeMap<_, _>, BTreeMap<_, _>) = (
                    fields(x).into_iter().collect(),
                    fields(y).into_iter().collect(),
                );
                let names: std::collections::BTreeSet<&String> =
                    fx.keys().chain(fy.keys()).collect();
                for name in names {
                    let (vx, vy) = (fx.get(name), fy.get(name));
                    if vx != vy {
                        out.push(RuleChange {
                            rule: id.to_owned(),
                            change: Change::Changed,
                            field: Some(name.clone()),
                            before: vx.cloned(),
                            after: vy.cloned(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    let agencies = |t: &crate::routing::TableSpec| -> BTreeMap<String, String> {
        t.agencies
            .iter()
            .map(|g| (g.code.clone(), format!("{} ({})", g.name, g.ministry)))
            .collect()
    };
    let (ga, gb) = (agencies(a), agencies(b));
    let codes: std::collections::BTreeSet<&String> = ga.keys().chain(gb.keys()).collect();
    for code in codes {
        let (x, y) = (ga.get(code), gb.get(code));
        let change = match (x, y) {
            (None, Some(_)) => Change::Added,
            (Some(_), None) => Change::Removed,
            (Some(x), Some(y)) if x != y => Change::Changed,
            _ => continue,
        };
        out.push(RuleChange {
            rule: format!("agency:{code}"),
            change,
            field: (change == Change::Changed).then(|| "name".to_owned()),
            before: x.cloned(),
            after: y.cloned(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::TableSpec;

    #[test]
    fn a_routing_difference_names_rules_added_removed_and_fields_changed() {
        let a = TableSpec::from_toml(crate::routing::DEFAULT_TABLE).unwrap();
        let mut b = a.clone();
        let removed = b.rules.remove(0);
        b.rules[0].fee_vnd += 1000;
        let changed = b.rules[0].id.clone();
        let mut added = b.rules[1].clone();
        added.id = "NEW-RULE".into();
        b.rules.push(added);
        let d = routing_diff(&a, &b);
        assert!(d
            .iter()
            .any(|c| c.rule == removed.id && c.change == Change::Removed));
        assert!(d
            .iter()
            .any(|c| c.rule == "NEW-RULE" && c.change == Change::Added));
        let fee: Vec<_> = d.iter().filter(|c| c.change == Change::Changed).collect();
        assert_eq!(fee.len(), 1, "{d:?}");
        assert_eq!(fee[0].rule, changed);
        assert_eq!(fee[0].field.as_deref(), Some("fee_vnd"));
        assert_eq!(d.len(), 3);
        assert!(routing_diff(&a, &a).is_empty());
    }

    #[test]
    fn a_certificates_end_is_read_as_a_time() {
        let (ca, _) = keys::make_ca("VN", 10).unwrap();
        let end = not_after(&ca).unwrap();
        let days = (end - Utc::now()).num_days();
        assert!((9..=10).contains(&days), "{days}");
        assert_eq!(fingerprint(&ca).len(), 32 * 3 - 1);
    }
}
