//! Prometheus metrics. Events are recorded where they happen through the `metrics` facade
//! (requests, intake outcomes, validation time, group commits, outbox and webhook deliveries)
//! into one process-wide recorder from `metrics-exporter-prometheus`; `/metrics` renders that
//! recorder, then adds the gauges computed at scrape time (database pool, outbox by status,
//! webhook backlog, audit sealing lag, certificate expiry), recorded into a recorder of the
//! scrape's own so that they describe this very application and never go stale.
//!
//! Every name is listed in docs/operations.md ("Metrics and health").

use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use ipnet::IpNet;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use openssl::x509::X509;

use crate::api::AppState;

// Recorded as things happen.
pub const HTTP_REQUESTS: &str = "nsw_http_requests_total";
pub const HTTP_DURATION: &str = "nsw_http_request_duration_seconds";
pub const INTAKE_SUBMISSIONS: &str = "nsw_intake_submissions_total";
pub const INTAKE_VIOLATIONS: &str = "nsw_intake_violations_total";
pub const VALIDATION_DURATION: &str = "nsw_validation_duration_seconds";
pub const GROUP_COMMIT_SIZE: &str = "nsw_intake_group_commit_submissions";
pub const GROUP_COMMIT_DURATION: &str = "nsw_intake_group_commit_duration_seconds";
pub const OUTBOX_ATTEMPTS: &str = "nsw_outbox_delivery_attempts_total";
pub const OUTBOX_ATTEMPT_DURATION: &str = "nsw_outbox_attempt_duration_seconds";
pub const OUTBOX_LATENCY: &str = "nsw_outbox_delivery_latency_seconds";
pub const OUTBOX_DEAD_LETTERS: &str = "nsw_outbox_dead_letters_total";
pub const WEBHOOK_DELIVERIES: &str = "nsw_webhook_deliveries_total";

// Computed at scrape time.
pub const BUILD_INFO: &str = "nsw_build_info";
pub const DATABASE_UP: &str = "nsw_database_up";
pub const POOL_CONNECTIONS: &str = "nsw_db_pool_connections";
pub const POOL_MAX: &str = "nsw_db_pool_max_connections";
pub const POOL_AVAILABLE: &str = "nsw_db_pool_available_connections";
pub const POOL_WAITING: &str = "nsw_db_pool_waiting_requests";
pub const OUTBOX_MESSAGES: &str = "nsw_outbox_messages";
pub const OUTBOX_OLDEST: &str = "nsw_outbox_oldest_unsettled_age_seconds";
pub const WEBHOOK_SUBSCRIPTIONS: &str = "nsw_webhook_subscriptions";
pub const WEBHOOK_FAILING: &str = "nsw_webhook_failing_subscriptions";
pub const WEBHOOK_BACKLOG: &str = "nsw_webhook_backlog_events";
pub const AUDIT_UNSEALED: &str = "nsw_audit_unsealed_entries";
pub const AUDIT_OLDEST: &str = "nsw_audit_oldest_unsealed_age_seconds";
pub const CERT_EXPIRY: &str = "nsw_certificate_expiry_seconds";

/// Upper bounds of the latency histograms, in seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Validation is sub-millisecond for most documents.
const VALIDATION_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0,
];
/// Submissions per group commit (`intake.max_group` is 32 by default).
const GROUP_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
/// From enqueue to the partner's receipt: seconds to a day (retries back off for hours).
const DELIVERY_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 86400.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once and returns its handle; later calls (every app a
/// test process starts, say) get the same handle. Should another recorder already be installed,
/// ours is kept aside and `/metrics` shows only the scrape-time gauges.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = builder().build_recorder();
        let handle = recorder.handle();
        match metrics::set_global_recorder(recorder) {
            Ok(()) => describe_recorded(),
            Err(_) => tracing::warn!(
                "another metrics recorder is installed; /metrics shows only scrape-time gauges"
            ),
        }
        handle
    })
}

fn builder() -> PrometheusBuilder {
    const CONSTANT: &str = "bucket lists are constants, never empty";
    // Every histogram gets buckets (a true Prometheus histogram, which aggregates across
    // instances, rather than a summary); these have buckets of their own.
    let own: [(&str, &[f64]); 6] = [
        (HTTP_DURATION, &LATENCY_BUCKETS),
        (VALIDATION_DURATION, &VALIDATION_BUCKETS),
        (GROUP_COMMIT_SIZE, &GROUP_BUCKETS),
        (GROUP_COMMIT_DURATION, &LATENCY_BUCKETS),
        (OUTBOX_ATTEMPT_DURATION, &LATENCY_BUCKETS),
        (OUTBOX_LATENCY, &DELIVERY_BUCKETS),
    ];
    let mut b = PrometheusBuilder::new()
        .set_buckets(&LATENCY_BUCKETS)
        .expect(CONSTANT);
    for (name, values) in own {
        b = b
            .set_buckets_for_metric(Matcher::Full(name.to_owned()), values)
            .expect(CONSTANT);
    }
    b
}

fn describe_recorded() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method, route pattern and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        "Time from a request's arrival to its response headers, by method, route pattern and status"
    );
    describe_counter!(
        INTAKE_SUBMISSIONS,
        "Documents submitted, by document and outcome (accepted, replayed, or the problem code)"
    );
    describe_counter!(
        INTAKE_VIOLATIONS,
        "Violations in refused documents, by document and violation code"
    );
    describe_histogram!(
        VALIDATION_DURATION,
        "Time to parse, schema-validate and rule-check one document, by kind and verdict"
    );
    describe_histogram!(
        GROUP_COMMIT_SIZE,
        "Declarations committed together in one transaction"
    );
    describe_histogram!(
        GROUP_COMMIT_DURATION,
        "Time to write and commit one group of declarations"
    );
    describe_counter!(
        OUTBOX_ATTEMPTS,
        "Delivery attempts to partner windows, by partner and outcome (delivered, rejected, failed)"
    );
    describe_histogram!(
        OUTBOX_ATTEMPT_DURATION,
        "Time of one delivery attempt (sign, post, verify the receipt), by partner and outcome"
    );
    describe_histogram!(
        OUTBOX_LATENCY,
        "Time from enqueue to the final outcome of an outbox message, by partner and final status"
    );
    describe_counter!(
        OUTBOX_DEAD_LETTERS,
        "Outbox messages that ran out of attempts or time, by partner"
    );
    describe_counter!(
        WEBHOOK_DELIVERIES,
        "Webhook delivery attempts, by outcome (delivered, failed)"
    );
}

fn describe_scraped() {
    describe_gauge!(BUILD_INFO, "Always 1; the version of nsw serving");
    describe_gauge!(
        DATABASE_UP,
        "1 when the scrape's database queries succeeded, else 0"
    );
    describe_gauge!(POOL_CONNECTIONS, "Connections open in the service pool");
    describe_gauge!(POOL_MAX, "Most connections the service pool may open");
    describe_gauge!(POOL_AVAILABLE, "Idle connections in the service pool");
    describe_gauge!(
        POOL_WAITING,
        "Requests waiting for a connection from the service pool"
    );
    describe_gauge!(OUTBOX_MESSAGES, "Outbox messages, by partner and status");
    describe_gauge!(
        OUTBOX_OLDEST,
        "Age of the oldest message not yet settled (pending, sending, retry_wait), by partner"
    );
    describe_gauge!(WEBHOOK_SUBSCRIPTIONS, "Webhook subscriptions in force");
    describe_gauge!(
        WEBHOOK_FAILING,
        "Webhook subscriptions whose last attempt failed"
    );
    describe_gauge!(
        WEBHOOK_BACKLOG,
        "Events not yet delivered to their webhook subscriptions, at most 10000 counted per subscription, summed"
    );
    describe_gauge!(
        AUDIT_UNSEALED,
        "Audit entries not yet linked into the hash chain"
    );
    describe_gauge!(
        AUDIT_OLDEST,
        "Age of the oldest audit entry not yet sealed (0 when all are)"
    );
    describe_gauge!(
        CERT_EXPIRY,
        "Time until a certificate's notAfter (negative once expired), by kind, owner, subject and serial"
    );
}

/// The route label: the matched pattern, never the raw path (ids would make a series each).
const UNMATCHED: &str = "unmatched";

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Counts every request and times it to its response headers, by method, route pattern and
/// status.
pub async fn track_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    let res = next.call(req).await;
    let (status, route) = match &res {
        Ok(r) => (r.status(), r.request().match_pattern()),
        Err(e) => (e.as_response_error().status_code(), None),
    };
    let route = route.unwrap_or_else(|| UNMATCHED.to_owned());
    let status = status.as_str().to_owned();
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", status),
    ];
    counter!(HTTP_REQUESTS, &labels).increment(1);
    histogram!(HTTP_DURATION, &labels).record(started.elapsed().as_secs_f64());
    res
}

/// One submitted document's outcome: `accepted`, `replayed`, or the problem code it was refused
/// with; for `DOCUMENT_INVALID`, each violation's code as well.
pub fn intake_outcome<'a>(
    document: &'static str,
    outcome: &str,
    violations: impl IntoIterator<Item = &'a str>,
) {
    counter!(INTAKE_SUBMISSIONS, "document" => document, "outcome" => outcome.to_owned())
        .increment(1);
    for code in violations {
        counter!(INTAKE_VIOLATIONS, "document" => document, "code" => code.to_owned()).increment(1);
    }
}

/// How long one validation took, by document kind (`unknown` when unreadable) and verdict.
pub fn validation_time(kind: &'static str, verdict: &'static str, took: Duration) {
    histogram!(VALIDATION_DURATION, "kind" => kind, "verdict" => verdict)
        .record(took.as_secs_f64());
}

/// A group commit of `size` declarations that took `took`.
pub fn group_commit(size: usize, took: Duration) {
    histogram!(GROUP_COMMIT_SIZE).record(size as f64);
    histogram!(GROUP_COMMIT_DURATION).record(took.as_secs_f64());
}

/// One delivery attempt to `partner`: `delivered`, `rejected` (a receipt refusing it) or
/// `failed`.
pub fn outbox_attempt(partner: &str, outcome: &'static str, took: Duration) {
    let p = partner.to_owned();
    counter!(OUTBOX_ATTEMPTS, "partner" => p.clone(), "outcome" => outcome).increment(1);
    histogram!(OUTBOX_ATTEMPT_DURATION, "partner" => p, "outcome" => outcome)
        .record(took.as_secs_f64());
}

/// A message that reached its final status (`delivered`, `rejected`, `dead_letter`)
/// `latency_secs` after it was enqueued.
pub fn outbox_settled(partner: &str, status: &'static str, latency_secs: f64) {
    let p = partner.to_owned();
    histogram!(OUTBOX_LATENCY, "partner" => p.clone(), "status" => status)
        .record(latency_secs.max(0.0));
    if status == "dead_letter" {
        counter!(OUTBOX_DEAD_LETTERS, "partner" => p).increment(1);
    }
}

/// One webhook delivery attempt: `delivered` or `failed`.
pub fn webhook_delivery(outcome: &'static str) {
    counter!(WEBHOOK_DELIVERIES, "outcome" => outcome).increment(1);
}

/// The `metrics.allow_from` entries (addresses or CIDR blocks) as networks.
pub fn parse_allow_list(entries: &[String]) -> Result<Vec<IpNet>, String> {
    entries
        .iter()
        .map(|e| {
            let e = e.trim();
            e.parse::<IpNet>()
                .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("'{e}' is neither an IP address nor a CIDR block"))
        })
        .collect()
}

/// Whether `ip` (an IPv4 client reaching a dual-stack socket counts as its IPv4 address) is in
/// one of the `allowed` networks.
pub fn allowed(allowed: &[IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    allowed.iter().any(|n| n.contains(&ip))
}

/// Longest a scrape waits for the database before showing what it has.
const SCRAPE_DB_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything the database says at scrape time.
#[derive(Default)]
struct FromDatabase {
    outbox: Vec<crate::store::metrics::OutboxCount>,
    webhooks: crate::store::metrics::WebhookBacklog,
    audit: crate::store::metrics::AuditLag,
    agency_certificates: Vec<(String, String)>,
}

async fn from_database(state: &AppState) -> Result<FromDatabase, String> {
    use crate::store::metrics as store;
    let client = state.pool.get().await.map_err(|e| e.to_string())?;
    let e = |e: crate::store::StoreError| e.to_string();
    Ok(FromDatabase {
        outbox: store::outbox(&client).await.map_err(e)?,
        webhooks: store::webhook_backlog(&client).await.map_err(e)?,
        audit: store::audit_lag(&client).await.map_err(e)?,
        agency_certificates: store::agency_certificates(&client).await.map_err(e)?,
    })
}

/// One certificate's expiry gauge: labels and seconds left.
struct CertExpiry {
    kind: &'static str,
    owner: String,
    subject: String,
    serial: String,
    secs: f64,
}

fn cert_expiry(kind: &'static str, owner: &str, cert: &X509) -> Option<CertExpiry> {
    let now = openssl::asn1::Asn1Time::days_from_now(0).ok()?;
    let diff = now.diff(cert.not_after()).ok()?;
    let subject = cert
        .subject_name()
        .entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let value = e.data().to_string().unwrap_or_default();
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ");
    let serial = cert
        .serial_number()
        .to_bn()
        .ok()
        .and_then(|bn| bn.to_hex_str().ok().map(|s| s.to_string()))
        .unwrap_or_default();
    Some(CertExpiry {
        kind,
        owner: owner.to_owned(),
        subject,
        serial,
        secs: f64::from(diff.days) * 86_400.0 + f64::from(diff.secs),
    })
}

/// The window's own exchange certificates, the partners' pinned CAs and the agencies'
/// registered certificates.
fn certificates(state: &AppState, agency: &[(String, String)]) -> Vec<CertExpiry> {
    let mut out = Vec::new();
    if let Some(ex) = &state.exchange {
        let id = &ex.identity;
        out.extend(cert_expiry("window_ca", &ex.country, &id.ca));
        out.extend(cert_expiry("window_signing", &ex.country, &id.cert));
        for c in &id.chain {
            out.extend(cert_expiry("window_chain", &ex.country, c));
        }
        if let Some(tls) = &ex.tls {
            if let Ok(c) = X509::from_pem(&tls.cert_pem) {
                out.extend(cert_expiry("window_tls", &ex.country, &c));
            }
        }
        for country in ex.partners.countries() {
            if let Some(p) = ex.partners.get(country) {
                out.extend(cert_expiry("partner_ca", country, &p.ca));
            }
        }
    }
    for (code, pem) in agency {
        match X509::from_pem(pem.as_bytes()) {
            Ok(c) => out.extend(cert_expiry("agency", code, &c)),
            Err(e) => {
                tracing::warn!(agency = %code, error = %e, "metrics: unreadable agency certificate")
            }
        }
    }
    // One series per label set: the same certificate listed twice (a chain that repeats the
    // CA, an agency that registered it twice) counts once.
    out.sort_by(|a, b| {
        (a.kind, &a.owner, &a.subject, &a.serial).cmp(&(b.kind, &b.owner, &b.subject, &b.serial))
    });
    out.dedup_by(|a, b| {
        (a.kind, &a.owner, &a.subject, &a.serial) == (b.kind, &b.owner, &b.subject, &b.serial)
    });
    out
}

/// The `/metrics` body: everything recorded so far, then this application's scrape-time gauges.
pub async fn render(state: &AppState) -> String {
    let handle = install();
    handle.run_upkeep();
    let mut text = handle.render();

    let db = match tokio::time::timeout(SCRAPE_DB_TIMEOUT, from_database(state)).await {
        Ok(Ok(db)) => Some(db),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "metrics: database gauges unavailable");
            None
        }
        Err(_) => {
            tracing::warn!("metrics: database gauges timed out");
            None
        }
    };
    let pool = state.pool.status();
    let certs = certificates(
        state,
        db.as_ref()
            .map(|d| d.agency_certificates.as_slice())
            .unwrap_or_default(),
    );
    let partners: Vec<String> = state
        .exchange
        .as_ref()
        .map(|ex| {
            ex.partners
                .countries()
                .into_iter()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();

    let local = PrometheusBuilder::new().build_recorder();
    let scraped = local.handle();
    metrics::with_local_recorder(&local, || {
        describe_scraped();
        gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        gauge!(POOL_CONNECTIONS).set(pool.size as f64);
        gauge!(POOL_MAX).set(pool.max_size as f64);
        gauge!(POOL_AVAILABLE).set(pool.available as f64);
        gauge!(POOL_WAITING).set(pool.waiting as f64);
        gauge!(DATABASE_UP).set(if db.is_some() { 1.0 } else { 0.0 });
        for c in &certs {
            gauge!(CERT_EXPIRY,
                "kind" => c.kind, "owner" => c.owner.clone(),
                "subject" => c.subject.clone(), "serial" => c.serial.clone())
            .set(c.secs);
        }
        let Some(db) = &db else { return };
        // Every configured partner shows every status, 0 included, so an alert can tell "none"
        // from "not reported".
        let mut seen: Vec<String> = partners.clone();
        for row in &db.outbox {
            if !seen.contains(&row.partner) {
                seen.push(row.partner.clone());
            }
        }
        for partner in &seen {
            let mut oldest: f64 = 0.0;
            for status in crate::exchange::state::Status::ALL {
                let row = db
                    .outbox
                    .iter()
                    .find(|r| &r.partner == partner && r.status == status.as_str());
                let n = row.map_or(0, |r| r.messages);
                gauge!(OUTBOX_MESSAGES, "partner" => partner.clone(), "status" => status.as_str())
                    .set(n as f64);
                if matches!(status.as_str(), "pending" | "sending" | "retry_wait") {
                    oldest = oldest.max(row.map_or(0.0, |r| r.oldest_age_secs));
                }
            }
            gauge!(OUTBOX_OLDEST, "partner" => partner.clone()).set(oldest);
        }
        gauge!(WEBHOOK_SUBSCRIPTIONS).set(db.webhooks.subscriptions as f64);
        gauge!(WEBHOOK_FAILING).set(db.webhooks.failing as f64);
        gauge!(WEBHOOK_BACKLOG).set(db.webhooks.events as f64);
        gauge!(AUDIT_UNSEALED).set(db.audit.unsealed as f64);
        gauge!(AUDIT_OLDEST).set(db.audit.oldest_age_secs);
    });
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&scraped.render());
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allow_list_takes_addresses_and_blocks() {
        let list =
            parse_allow_list(&["127.0.0.1".into(), " 10.0.0.0/8".into(), "::1".into()]).unwrap();
        assert!(allowed(&list, "127.0.0.1".parse().unwrap()));
        assert!(allowed(&list, "10.20.30.40".parse().unwrap()));
        assert!(allowed(&list, "::1".parse().unwrap()));
        // An IPv4 client on a dual-stack socket.
        assert!(allowed(&list, "::ffff:10.1.2.3".parse().unwrap()));
        assert!(!allowed(&list, "127.0.0.2".parse().unwrap()));
        assert!(!allowed(&list, "192.0.2.1".parse().unwrap()));
        assert!(!allowed(&[], "127.0.0.1".parse().unwrap()));
        let err = parse_allow_list(&["10.0.0.0/33".into()]).unwrap_err();
        assert!(err.contains("10.0.0.0/33"), "{err}");
        assert!(parse_allow_list(&["localhost".into()]).is_err());
    }

    #[test]
    fn certificate_expiry_counts_the_time_left() {
        use crate::exchange::keys;
        let (ca, ca_key) = keys::make_ca("VN", 365).unwrap();
        let (cert, _) = keys::issue(
            &ca,
            &ca_key,
            "VN",
            "signer",
            &keys::Validity::days_from_now(10),
        )
        .unwrap();
        let e = cert_expiry("window_signing", "VN", &cert).unwrap();
        assert!(
            e.secs > 9.0 * 86_400.0 && e.secs <= 10.0 * 86_400.0,
            "{}",
            e.secs
        );
        assert!(e.subject.contains("CN=signer"), "{}", e.subject);
        assert!(!e.serial.is_empty());
        let (old, _) = keys::issue(
            &ca,
            &ca_key,
            "VN",
            "old",
            &keys::Validity {
                not_before: chrono::Utc::now().timestamp() - 10 * 86_400,
                not_after: chrono::Utc::now().timestamp() - 86_400,
            },
        )
        .unwrap();
        assert!(cert_expiry("agency", "X", &old).unwrap().secs < 0.0);
    }
}
