//! `GET /console/payments`: the last reconciliation with the payment platform (date, outcome,
//! counts, every mismatch), the recent runs, a form to reconcile a day (`POST
//! /console/payments/reconciliations`, through the API's workflow, then shown at `GET
//! /console/payments/reconciliations/{id}`), and the payment alerts the window raised (refused
//! notifications, payments after a cancellation …).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::NaiveDate;
use serde::Deserialize;

use super::operator;
use crate::api::AppState;
use crate::payments::reconcile::{Outcome, Run};
use crate::payments::reconciliation::{Input, Reconciler};
use crate::portal::forms::FieldErrors;
use crate::portal::page::{render_with, see_other, Page};
use crate::portal::session::Person;
use crate::portal::PortalError;
use crate::store::{payments as payments_store, reconciliations as store};

/// Runs listed.
const RECENT: i64 = 20;
/// Payment alerts listed.
const ALERTS: i64 = 50;

pub struct MismatchView {
    pub kind: String,
    pub kind_code: &'static str,
    pub transaction_id: String,
    pub settled_reference: String,
    pub recorded_reference: String,
    pub settled_amount: String,
    pub recorded_amount: String,
    pub time: String,
}

pub struct RunView {
    pub id: String,
    pub date: String,
    pub ran_at: String,
    pub actor: String,
    pub source: String,
    pub outcome: String,
    pub outcome_code: &'static str,
    pub failure: Option<String>,
    pub settled: String,
    pub recorded: String,
    pub matched: i64,
    pub mismatch_count: usize,
    pub file_sha256: Option<String>,
    pub mismatches: Vec<MismatchView>,
}

pub struct AlertView {
    pub kind: String,
    pub reference: String,
    pub transaction_id: String,
    pub detail: String,
    pub first: String,
    pub last: String,
    pub occurrences: i32,
}

#[derive(Template)]
#[template(path = "console/payments.html")]
struct PaymentsPage {
    page: Page,
    /// The run shown in full: the latest, or the one asked for.
    shown: Option<RunView>,
    /// Whether `shown` is the latest run.
    shown_latest: bool,
    recent: Vec<RunView>,
    alerts: Vec<AlertView>,
    date: String,
    errors: FieldErrors,
}

fn outcome_key(o: Outcome) -> &'static str {
    match o {
        Outcome::Matched => "console-payments-outcome-matched",
        Outcome::Mismatches => "console-payments-outcome-mismatches",
        Outcome::Failed => "console-payments-outcome-failed",
    }
}

fn view(page: &Page, r: &Run) -> RunView {
    let c = &r.counts;
    let amount = |a: Option<i64>| a.map(|a| page.vnd(&a)).unwrap_or_else(|| "—".into());
    RunView {
        id: r.id.to_string(),
        date: page.date(&r.settlement_date),
        ran_at: page.datetime(&r.ran_at),
        actor: r.actor.clone(),
        source: page.t(&format!("console-payments-source-{}", r.source.as_str())),
        outcome: page.t(outcome_key(r.outcome)),
        outcome_code: r.outcome.as_str(),
        failure: r.failure.clone(),
        settled: page.ta(
            "console-payments-counts",
            &[
                ("payments", &c.settled_payments.to_string()),
                ("paid", &page.vnd(&c.settled_paid_amount)),
                ("refunds", &c.settled_refunds.to_string()),
                ("refunded", &page.vnd(&c.settled_refunded_amount)),
            ],
        ),
        recorded: page.ta(
            "console-payments-counts",
            &[
                ("payments", &c.recorded_payments.to_string()),
                ("paid", &page.vnd(&c.recorded_paid_amount)),
                ("refunds", &c.recorded_refunds.to_string()),
                ("refunded", &page.vnd(&c.recorded_refunded_amount)),
            ],
        ),
        matched: c.matched,
        mismatch_count: r.mismatches.len(),
        file_sha256: r.file_sha256.clone(),
        mismatches: r
            .mismatches
            .iter()
            .map(|m| MismatchView {
                kind: page.t(&format!(
                    "console-payments-kind-{}",
                    m.kind.as_str().replace('_', "-")
                )),
                kind_code: m.kind.as_str(),
                transaction_id: if m.transaction_id.is_empty() {
                    "—".into()
                } else {
                    m.transaction_id.clone()
                },
                settled_reference: m.settled_reference.clone().unwrap_or_else(|| "—".into()),
                recorded_reference: m.recorded_reference.clone().unwrap_or_else(|| "—".into()),
                settled_amount: amount(m.settled_amount),
                recorded_amount: amount(m.recorded_amount),
                time: page.datetime(&m.time),
            })
            .collect(),
    }
}

async fn page_for(
    req: &HttpRequest,
    person: &Person,
    state: &AppState,
    shown: Option<Run>,
    date: String,
    errors: FieldErrors,
) -> Result<PaymentsPage, PortalError> {
    let page = Page::new(req, state, Some(person), "console-payments-title");
    let client = state.pool.get().await?;
    let mut recent = store::recent(&client, 0, RECENT).await?;
    recent.truncate(RECENT as usize);
    let latest_id = recent.first().map(|r| r.id);
    let shown = shown.or_else(|| recent.first().cloned());
    let alerts = payments_store::alerts(&client, ALERTS).await?;
    Ok(PaymentsPage {
        shown_latest: shown.as_ref().map(|r| r.id) == latest_id,
        shown: shown.as_ref().map(|r| view(&page, r)),
        recent: recent.iter().map(|r| view(&page, r)).collect(),
        alerts: alerts
            .into_iter()
            .map(|a| AlertView {
                kind: a.kind,
                reference: a.reference,
                transaction_id: a.transaction_id,
                detail: a.detail,
                first: page.datetime(&a.first_at),
                last: page.datetime(&a.last_at),
                occurrences: a.occurrences,
            })
            .collect(),
        date,
        errors,
        page,
    })
}

/// The form's default day: yesterday, what the daily job reconciles.
fn yesterday(state: &AppState) -> String {
    state
        .today()
        .pred_opt()
        .map(|d| d.to_string())
        .unwrap_or_default()
}

#[tracing::instrument(name = "portal.console_payments", skip_all, fields(party))]
pub async fn overview(
    req: HttpRequest,
    person: Person,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    operator(&person)?;
    let p = page_for(
        &req,
        &person,
        &state,
        None,
        yesterday(&state),
        FieldErrors::new(),
    )
    .await?;
    render_with(StatusCode::OK, &p)
}

#[tracing::instrument(name = "portal.console_reconciliation", skip_all, fields(party))]
pub async fn show(
    req: HttpRequest,
    person: Person,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    operator(&person)?;
    let id = uuid::Uuid::parse_str(&path).map_err(|_| PortalError::NotFound)?;
    let run = store::get(&state.pool.get().await?, id)
        .await?
        .ok_or(PortalError::NotFound)?;
    let date = run.settlement_date.to_string();
    let p = page_for(&req, &person, &state, Some(run), date, FieldErrors::new()).await?;
    render_with(StatusCode::OK, &p)
}

#[derive(Deserialize)]
pub struct RunForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    date: String,
}

#[tracing::instrument(name = "portal.console_reconcile", skip_all, fields(party, date))]
pub async fn run(
    req: HttpRequest,
    person: Person,
    form: web::Form<RunForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    operator(&person)?;
    person.check_csrf(&form.csrf)?;
    let text = form.date.trim().to_owned();
    tracing::Span::current().record("date", text.as_str());
    let mut errors = FieldErrors::new();
    let reconciler = Reconciler::from_settings(state.pool.clone(), &state.settings)
        .map_err(PortalError::Internal)?;
    let date = NaiveDate::parse_from_str(&text, "%Y-%m-%d")
        .ok()
        .filter(|d| reconciler.check_date(*d).is_ok());
    if let Some(date) = date {
        let run = reconciler
            .run(date, Input::Platform, person.party_id())
            .await?;
        return Ok(see_other(&format!(
            "/console/payments/reconciliations/{}",
            run.id
        )));
    }
    let lang = crate::portal::i18n::negotiate(&req, crate::portal::page::default_lang(&state));
    errors.add("date", lang.t("console-payments-date-invalid"));
    let p = page_for(&req, &person, &state, None, text, errors).await?;
    render_with(StatusCode::UNPROCESSABLE_ENTITY, &p)
}
