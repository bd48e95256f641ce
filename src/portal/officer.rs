//! The ministry officer's pages: the agency's inbox (oldest first, with each application's
//! time limit in working time), an application as read with the decision forms, and the
//! agency's licences with their balances and downloads. An officer sees only what was routed
//! to its own agency: anything else is "not found". Decisions go through
//! `licensing::decide`, exactly as the API's decision endpoint calls it.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::fee_block::FeeBlock;
use super::forms::FieldErrors;
use super::i18n::Lang;
use super::page::{render, render_with, see_other, Page};
use super::session::Person;
use super::PortalError;
use crate::api::licence_applications::licensing_context;
use crate::api::AppState;
use crate::calendar::Calendar;
use crate::domain::party::Role;
use crate::licensing::{self, Action, Decided, Terms};
use crate::store::licensing::{self as licensing_store, AppScope, Status};
use crate::store::{desk, stats};
use crate::workflow::WorkflowError;
use crate::xml::tree::ROOT;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/inbox", web::get().to(inbox))
        .route("/inbox/{id}", web::get().to(application))
        .route("/inbox/{id}/decision", web::post().to(decide))
        .route("/agency/licences", web::get().to(licences))
        .route("/agency/licences/{number}", web::get().to(licence))
        .route(
            "/agency/licences/{number}/document",
            web::get().to(document),
        )
        .route(
            "/agency/licences/{number}/signature",
            web::get().to(signature),
        );
}

/// The officer's agency, after checking the role.
fn officer(person: &Person) -> Result<&str, PortalError> {
    person.require(&[Role::Ministry])?;
    person.agency()
}

fn parse_id(raw: &str) -> Result<Uuid, PortalError> {
    Uuid::parse_str(raw).map_err(|_| PortalError::NotFound)
}

/// A span of working time in words: "2 ngày làm việc 3 giờ", "45 phút".
pub fn working_time(lang: Lang, seconds: i64, day_minutes: u32) -> String {
    let day = i64::from(day_minutes.max(1)) * 60;
    let seconds = seconds.max(0);
    let (days, rest) = (seconds / day, seconds % day);
    let (hours, minutes) = (rest / 3600, (rest % 3600) / 60);
    let unit = |n: i64, one: &str, many: &str| {
        lang.t_args(if n == 1 { one } else { many }, &[("n", n.to_string())])
    };
    let mut parts = Vec::new();
    if days > 0 {
        parts.push(unit(days, "officer-days-one", "officer-days"));
    }
    if hours > 0 {
        parts.push(unit(hours, "officer-hours-one", "officer-hours"));
    }
    if days == 0 && (minutes > 0 || hours == 0) {
        parts.push(unit(minutes, "officer-minutes-one", "officer-minutes"));
    }
    parts.join(" ")
}

/// An application's time limit as shown: working time left, or how far past it.
pub struct TimeLimit {
    pub text: String,
    pub overdue: bool,
}

/// The time limit of an application received at `received` with `sla_minutes` working
/// minutes, counted on the window's calendar up to its decision (or now), the spans while a
/// supplement was awaited excluded (as the agency figures count them).
#[allow(clippy::too_many_arguments)]
fn time_limit(
    page: &Page,
    cal: &Calendar,
    status: &str,
    received: DateTime<Utc>,
    decided: Option<DateTime<Utc>>,
    sla_minutes: i32,
    events: &[(String, DateTime<Utc>)],
    now: DateTime<Utc>,
) -> TimeLimit {
    let end = decided.unwrap_or(now);
    let used = stats::processing_seconds(cal, received, end, events);
    let left = i64::from(sla_minutes) * 60 - used;
    let day = cal.working_day_minutes();
    let final_ = Status::parse(status).is_some_and(Status::is_final);
    if final_ {
        return if left >= 0 {
            TimeLimit {
                text: page.t("officer-limit-met"),
                overdue: false,
            }
        } else {
            TimeLimit {
                text: page.ta(
                    "officer-limit-missed",
                    &[("time", &working_time(page.lang, -left, day))],
                ),
                overdue: true,
            }
        };
    }
    let mut limit = if left >= 0 {
        TimeLimit {
            text: page.ta(
                "officer-time-left",
                &[("time", &working_time(page.lang, left, day))],
            ),
            overdue: false,
        }
    } else {
        TimeLimit {
            text: page.ta(
                "officer-overdue",
                &[("time", &working_time(page.lang, -left, day))],
            ),
            overdue: true,
        }
    };
    if status == "supplement_requested" {
        limit.text = format!("{} {}", limit.text, page.t("officer-paused"));
    }
    if status == "awaiting_payment" {
        limit.text = format!("{} {}", limit.text, page.t("officer-paused-fee"));
    }
    limit
}

fn history_events(h: &[licensing_store::HistoryEntry]) -> Vec<(String, DateTime<Utc>)> {
    h.iter().map(|e| (e.status.clone(), e.at)).collect()
}

/// A select option.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

// ---------------------------------------------------------------------------------------
// GET /inbox

const INBOX_STATUSES: [&str; 10] = [
    "submitted",
    "awaiting_payment",
    "received",
    "supplement_requested",
    "supplemented",
    "under_review",
    "issued",
    "refused",
    "withdrawn",
    "cancelled",
];

struct InboxItem {
    id: String,
    reference: String,
    applicant: String,
    applicant_id: String,
    procedure: String,
    received: String,
    status: String,
    limit: String,
    overdue: bool,
}

#[derive(Template)]
#[template(path = "officer/inbox.html")]
struct InboxPage {
    page: Page,
    agency: String,
    items: Vec<InboxItem>,
    statuses: Vec<Choice>,
}

#[derive(Deserialize)]
struct InboxQuery {
    status: Option<String>,
}

#[tracing::instrument(name = "portal.inbox", skip_all, fields(party))]
async fn inbox(
    req: HttpRequest,
    person: Person,
    q: web::Query<InboxQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    let agency = officer(&person)?.to_owned();
    let status = q
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            INBOX_STATUSES
                .iter()
                .find(|x| **x == s)
                .copied()
                .ok_or_else(|| PortalError::BadRequest(format!("unknown status {s}")))
        })
        .transpose()?;
    let client = state.pool.get().await?;
    let rows = desk::inbox(&client, &agency, status, 500).await?;
    let page = Page::new(&req, &state, Some(&person), "officer-inbox-title");
    let now = Utc::now();
    let items = rows
        .iter()
        .map(|r| {
            let limit = time_limit(
                &page,
                &state.calendar,
                &r.status,
                r.received_at,
                r.decided_at,
                r.sla_minutes,
                &r.events,
                now,
            );
            InboxItem {
                id: r.id.to_string(),
                reference: r.reference.clone(),
                applicant: r.applicant_name.clone(),
                applicant_id: r.applicant_id.clone(),
                procedure: format!("{} ({})", r.procedure_code, r.application_type),
                received: page.datetime(&r.received_at),
                status: page.status(&r.status),
                limit: limit.text,
                overdue: limit.overdue,
            }
        })
        .collect();
    let mut statuses = vec![Choice {
        value: String::new(),
        label: page.t("officer-filter-pending"),
        selected: status.is_none(),
    }];
    statuses.extend(INBOX_STATUSES.iter().map(|s| Choice {
        value: (*s).to_owned(),
        label: page.status(s),
        selected: status == Some(*s),
    }));
    render(&InboxPage {
        page,
        agency,
        items,
        statuses,
    })
}

// ---------------------------------------------------------------------------------------
// GET /inbox/{id}, POST /inbox/{id}/decision

struct LineView {
    number: i32,
    hs_code: String,
    description: String,
    quantity: String,
    value: String,
}

struct AttachmentView {
    kind: String,
    reference: String,
    date: String,
}

struct HistoryView {
    status: String,
    at: String,
    actor: String,
    note: String,
}

struct Fact {
    label: String,
    value: String,
}

/// What the officer typed, given back when a form is shown again.
#[derive(Default)]
struct DecisionValues {
    action: String,
    reason: String,
    conditions: String,
    valid_from: String,
    valid_until: String,
}

impl DecisionValues {
    fn reason_for(&self, action: &str) -> &str {
        if self.action == action {
            &self.reason
        } else {
            ""
        }
    }
}

#[derive(Template)]
#[template(path = "officer/application.html")]
struct ApplicationPage {
    page: Page,
    id: String,
    status: String,
    facts: Vec<Fact>,
    overdue: bool,
    limit: String,
    lines: Vec<LineView>,
    attachments: Vec<AttachmentView>,
    supplements: Vec<(String, String)>,
    history: Vec<HistoryView>,
    done: Option<String>,
    licence_number: Option<String>,
    can_review: bool,
    can_supplement: bool,
    can_decide: bool,
    /// The fee is not paid yet: the application cannot be decided.
    unpaid: bool,
    /// The application's fee notice, when its fee is collected online.
    fee: Option<FeeBlock>,
    /// Why the last decision was refused, when no field explains it (e.g. the fee is unpaid).
    refusal: Option<String>,
    values: DecisionValues,
    errors: FieldErrors,
}

/// What the stored document says beyond the fields kept in columns: the counterparty, each
/// line's value, the attachments.
#[derive(Default)]
struct AsRead {
    counterparty: Option<String>,
    values: Vec<String>,
    attachments: Vec<(String, String, Option<NaiveDate>)>,
}

fn read_document(bytes: &[u8], limits: &crate::xml::Limits, page: &Page) -> AsRead {
    let Ok(tree) = crate::xml::Tree::parse(bytes, limits) else {
        return AsRead::default();
    };
    let text = |node: usize, chain: &str| {
        tree.at(node, chain)
            .map(|n| tree.text(n).to_owned())
            .unwrap_or_default()
    };
    let counterparty = ["Counterparty", "Consignee", "Importer"]
        .iter()
        .find_map(|name| tree.child(ROOT, name))
        .map(|n| {
            let mut s = text(n, "Name");
            let id = text(n, "ID");
            let country = text(n, "Address/Country");
            if !id.is_empty() {
                s = format!("{s} ({id})");
            }
            if !country.is_empty() {
                s = format!("{s}, {country}");
            }
            s
        });
    let values = tree
        .children(ROOT, "Line")
        .map(|l| match tree.at(l, "Value") {
            Some(v) => {
                let currency = tree.attr(v, "currency").unwrap_or_default();
                match tree.text(v).parse::<rust_decimal::Decimal>() {
                    Ok(d) if !currency.is_empty() => page.money(&d, currency),
                    Ok(d) => page.number(&d),
                    Err(_) => tree.text(v).to_owned(),
                }
            }
            None => String::new(),
        })
        .collect();
    let attachments = tree
        .children(ROOT, "Attachment")
        .map(|a| {
            (
                text(a, "Type"),
                text(a, "Reference"),
                text(a, "IssueDate").parse().ok(),
            )
        })
        .collect();
    AsRead {
        counterparty,
        values,
        attachments,
    }
}

#[derive(Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

const DONE: [&str; 5] = [
    "under_review",
    "supplement_requested",
    "issued",
    "refused",
    "certificate",
];

#[allow(clippy::too_many_arguments)]
async fn application_page(
    req: &HttpRequest,
    state: &AppState,
    person: &Person,
    agency: &str,
    id: Uuid,
    done: Option<&str>,
    values: DecisionValues,
    errors: FieldErrors,
) -> Result<ApplicationPage, PortalError> {
    let client = state.pool.get().await?;
    let detail = licensing_store::get_application(&client, &AppScope::Agency(agency), id)
        .await?
        .ok_or(PortalError::NotFound)?;
    let bytes = desk::application_document(&client, agency, id)
        .await?
        .unwrap_or_default();
    let s = &detail.summary;
    let page = Page::new(req, state, Some(person), "officer-application-title")
        .titled(s.reference.clone());
    let app: Option<crate::domain::licence::Application> =
        serde_json::from_value(detail.application.clone()).ok();
    let read = read_document(&bytes, &state.validator.limits, &page);
    let events = history_events(&detail.history);
    let limit = time_limit(
        &page,
        &state.calendar,
        &s.status,
        s.received_at,
        s.decided_at,
        s.sla_minutes,
        &events,
        Utc::now(),
    );
    let fact = |key: &str, value: String| Fact {
        label: page.t(key),
        value,
    };
    let mut facts = vec![
        fact("officer-reference", s.reference.clone()),
        fact("officer-lrn", s.lrn.clone()),
        fact("officer-procedure", s.procedure_code.clone()),
        fact("officer-application-type", s.application_type.clone()),
        fact("officer-direction", page.t(&direction_key(&s.direction))),
    ];
    if let Some(a) = &app {
        let addr = &a.applicant.address;
        let address = [
            addr.street.clone().unwrap_or_default(),
            addr.city.clone(),
            addr.post_code.clone().unwrap_or_default(),
            addr.country.clone(),
        ]
        .into_iter()
        .filter(|x| !x.is_empty())
        .collect::<Vec<_>>()
        .join(", ");
        facts.push(fact(
            "officer-applicant",
            format!("{} ({}), {address}", a.applicant.name, a.applicant.id),
        ));
    } else {
        facts.push(fact("officer-applicant", s.applicant_id.clone()));
    }
    if let Some(c) = &read.counterparty {
        facts.push(fact("officer-counterparty", c.clone()));
    }
    if let Some(a) = &app {
        facts.push(fact("officer-export-country", a.export_country.clone()));
        facts.push(fact("officer-import-country", a.import_country.clone()));
        facts.push(fact(
            "officer-validity",
            page.ta(
                "officer-validity-range",
                &[
                    ("from", &page.date(&a.valid_from)),
                    ("to", &page.date(&a.valid_to)),
                ],
            ),
        ));
    }
    facts.push(fact("officer-fee", page.vnd(&s.fee_vnd)));
    facts.push(fact("officer-received", page.datetime(&s.received_at)));
    if let Some(reason) = &s.decision_reason {
        facts.push(fact("officer-decision-reason", reason.clone()));
    }
    let lines = app
        .as_ref()
        .map(|a| {
            a.lines
                .iter()
                .enumerate()
                .map(|(i, l)| LineView {
                    number: l.number,
                    hs_code: l.hs_code.clone(),
                    description: l.description.clone(),
                    quantity: format!("{} {}", page.number(&l.quantity), l.unit),
                    value: read.values.get(i).cloned().unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    let attachments = read
        .attachments
        .iter()
        .map(|(kind, reference, date)| AttachmentView {
            kind: kind.clone(),
            reference: reference.clone(),
            date: date.map(|d| page.date(&d)).unwrap_or_default(),
        })
        .collect();
    let supplements = detail
        .supplements
        .iter()
        .map(|v| {
            let note = v["note"].as_str().unwrap_or_default().to_owned();
            let at = v["at"]
                .as_str()
                .and_then(|t| t.parse::<DateTime<Utc>>().ok())
                .map(|t| page.datetime(&t))
                .unwrap_or_default();
            (note, at)
        })
        .collect();
    let history = detail
        .history
        .iter()
        .map(|h| HistoryView {
            status: page.status(&h.status),
            at: page.datetime(&h.at),
            actor: h.actor.clone(),
            note: h.note.clone().unwrap_or_default(),
        })
        .collect();
    let fee = crate::store::payments::notice_view(&client, &AppScope::Agency(agency), id)
        .await?
        .map(|n| FeeBlock::new(&page, &n, false));
    let current = Status::parse(&s.status);
    let can = |to: Status| current.is_some_and(|c| c.can_become(to));
    let done = done.filter(|d| DONE.contains(d)).map(|d| match d {
        "issued" => page.ta(
            "officer-done-issued",
            &[("number", detail.licence_number.as_deref().unwrap_or("-"))],
        ),
        other => page.t(&format!("officer-done-{}", other.replace('_', "-"))),
    });
    Ok(ApplicationPage {
        id: id.to_string(),
        status: page.status(&s.status),
        facts,
        overdue: limit.overdue,
        limit: limit.text,
        lines,
        attachments,
        supplements,
        history,
        done,
        licence_number: detail.licence_number.clone(),
        can_review: can(Status::UnderReview),
        can_supplement: can(Status::SupplementRequested),
        can_decide: can(Status::Issued),
        unpaid: current == Some(Status::AwaitingPayment),
        fee,
        refusal: None,
        values,
        errors,
        page,
    })
}

fn direction_key(direction: &str) -> String {
    format!("officer-direction-{}", direction.to_ascii_lowercase())
}

#[tracing::instrument(name = "portal.application", skip_all, fields(party))]
async fn application(
    req: HttpRequest,
    person: Person,
    path: web::Path<String>,
    q: web::Query<DoneQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    let agency = officer(&person)?.to_owned();
    let id = parse_id(&path)?;
    let page = application_page(
        &req,
        &state,
        &person,
        &agency,
        id,
        q.done.as_deref(),
        DecisionValues::default(),
        FieldErrors::new(),
    )
    .await?;
    render(&page)
}

#[derive(Deserialize)]
struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action: String,
    reason: Option<String>,
    conditions: Option<String>,
    valid_from: Option<String>,
    valid_until: Option<String>,
}

/// The id of the field that holds the reason of `action` on the page.
fn reason_field(action: Action) -> &'static str {
    match action {
        Action::Refuse => "refuse-reason",
        _ => "supplement-reason",
    }
}

#[tracing::instrument(name = "portal.decide", skip_all, fields(party, action))]
async fn decide(
    req: HttpRequest,
    person: Person,
    path: web::Path<String>,
    form: web::Form<DecisionForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    let agency = officer(&person)?.to_owned();
    person.check_csrf(&form.csrf)?;
    let id = parse_id(&path)?;
    let form = form.into_inner();
    tracing::Span::current().record("action", form.action.as_str());
    let action = Action::parse(&form.action)
        .ok_or_else(|| PortalError::BadRequest(format!("unknown action {}", form.action)))?;
    let lang = super::i18n::negotiate(&req, super::page::default_lang(&state));
    let mut errors = FieldErrors::new();
    let date = |raw: &Option<String>, field: &str, errors: &mut FieldErrors| match raw
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(s) => match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                errors.add(field, lang.t("officer-date-invalid"));
                None
            }
        },
    };
    let (valid_from, valid_until) = if action == Action::Issue {
        (
            date(&form.valid_from, "issue-valid-from", &mut errors),
            date(&form.valid_until, "issue-valid-until", &mut errors),
        )
    } else {
        (None, None)
    };
    let values = DecisionValues {
        action: form.action.clone(),
        reason: form.reason.clone().unwrap_or_default(),
        conditions: form.conditions.clone().unwrap_or_default(),
        valid_from: form.valid_from.clone().unwrap_or_default(),
        valid_until: form.valid_until.clone().unwrap_or_default(),
    };
    if errors.is_empty() {
        let terms = Terms {
            reason: form.reason.as_deref(),
            conditions: form.conditions.as_deref().filter(|c| !c.trim().is_empty()),
            valid_from,
            valid_until,
        };
        let decided = licensing::decide(
            &licensing_context(&state),
            &agency,
            person.party_id(),
            id,
            action,
            &terms,
        )
        .await;
        match decided {
            Ok(d) => {
                let done = match d {
                    Decided::Licence { .. } => "issued".to_owned(),
                    Decided::Certificate { .. } => "certificate".to_owned(),
                    Decided::Moved(s) => s.status,
                };
                return Ok(see_other(&format!("/inbox/{id}?done={done}")));
            }
            Err(WorkflowError::BadRequest { code, .. })
                if matches!(code, "REASON_REQUIRED" | "REASON_TOO_LONG") =>
            {
                let key = if code == "REASON_REQUIRED" {
                    "officer-reason-required"
                } else {
                    "officer-reason-too-long"
                };
                errors.add(reason_field(action), lang.t(key));
            }
            Err(WorkflowError::BadRequest {
                code: "CONDITIONS_TOO_LONG",
                ..
            }) => errors.add("issue-conditions", lang.t("officer-conditions-too-long")),
            Err(WorkflowError::BadRequest {
                code: "VALIDITY_INVALID",
                ..
            }) => errors.add("issue-valid-until", lang.t("officer-validity-invalid")),
            Err(WorkflowError::Conflict {
                code: "LICENCE_VALIDITY_ENDED",
                ..
            }) => errors.add("issue-valid-until", lang.t("officer-validity-ended")),
            Err(WorkflowError::Conflict {
                code: "FEE_UNPAID", ..
            }) => {
                // A form for an unpaid application is not on its page: this one was kept
                // from before, or forged. Say why on the page, as the API says 409.
                let mut page =
                    application_page(&req, &state, &person, &agency, id, None, values, errors)
                        .await?;
                page.refusal = Some(lang.t("fees-officer-unpaid"));
                return render_with(StatusCode::CONFLICT, &page);
            }
            Err(e) => return Err(e.into()),
        }
    }
    let page = application_page(&req, &state, &person, &agency, id, None, values, errors).await?;
    render_with(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

// ---------------------------------------------------------------------------------------
// GET /agency/licences, /agency/licences/{number}[/document|/signature]

const PAGE_SIZE: i64 = 25;

struct BalanceView {
    line: i32,
    hs_code: String,
    allowed: String,
    remaining: String,
}

struct LicenceItem {
    number: String,
    href: String,
    holder: String,
    kind: String,
    validity: String,
    issued: String,
    origin: String,
    lines: Vec<BalanceView>,
}

#[derive(Template)]
#[template(path = "officer/licences.html")]
struct LicencesPage {
    page: Page,
    items: Vec<LicenceItem>,
    prev: Option<String>,
    next: Option<String>,
    page_no: i64,
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<i64>,
}

fn licence_href(number: &str) -> String {
    format!("/agency/licences/{}", number.replace('/', "%2F"))
}

#[tracing::instrument(name = "portal.agency_licences", skip_all, fields(party))]
async fn licences(
    req: HttpRequest,
    person: Person,
    q: web::Query<PageQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    let agency = officer(&person)?.to_owned();
    let page_no = q.page.unwrap_or(1).clamp(1, 100_000);
    let client = state.pool.get().await?;
    let (rows, more) =
        desk::agency_licences(&client, &agency, (page_no - 1) * PAGE_SIZE, PAGE_SIZE).await?;
    let page = Page::new(&req, &state, Some(&person), "officer-licences-title");
    let items = rows
        .iter()
        .map(|l| LicenceItem {
            number: l.number.clone(),
            href: licence_href(&l.number),
            holder: l.holder_id.clone(),
            kind: format!(
                "{} · {}",
                l.licence_type,
                page.t(&direction_key(&l.direction))
            ),
            validity: page.ta(
                "officer-validity-range",
                &[
                    ("from", &page.date(&l.valid_from)),
                    ("to", &page.date(&l.valid_to)),
                ],
            ),
            issued: page.date(&l.issue_date),
            origin: page.t(&format!("officer-origin-{}", l.origin)),
            lines: l
                .lines
                .iter()
                .map(|x| BalanceView {
                    line: x.line,
                    hs_code: x.hs_code.clone(),
                    allowed: format!("{} {}", page.number(&x.allowance), x.unit),
                    remaining: format!("{} {}", page.number(&x.remaining), x.unit),
                })
                .collect(),
        })
        .collect();
    render(&LicencesPage {
        page,
        items,
        prev: (page_no > 1).then(|| format!("/agency/licences?page={}", page_no - 1)),
        next: more.then(|| format!("/agency/licences?page={}", page_no + 1)),
        page_no,
    })
}

struct LicenceLineView {
    line: i32,
    hs_code: String,
    description: String,
    allowed: String,
    reserved: String,
    committed: String,
    remaining: String,
}

#[derive(Template)]
#[template(path = "officer/licence.html")]
struct LicencePage {
    page: Page,
    facts: Vec<Fact>,
    lines: Vec<LicenceLineView>,
    href: String,
    application: Option<String>,
}

async fn agency_licence(
    state: &AppState,
    agency: &str,
    raw: &str,
) -> Result<licensing_store::LicenceView, PortalError> {
    let number = crate::api::json::licence_number(raw);
    let client = state.pool.get().await?;
    licensing_store::get_licence(&client, &number)
        .await?
        .filter(|v| v.agency == agency)
        .ok_or(PortalError::NotFound)
}

#[tracing::instrument(name = "portal.agency_licence", skip_all, fields(party))]
async fn licence(
    req: HttpRequest,
    person: Person,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    let agency = officer(&person)?.to_owned();
    let v = agency_licence(&state, &agency, &path).await?;
    let page =
        Page::new(&req, &state, Some(&person), "officer-licence-title").titled(v.number.clone());
    let fact = |key: &str, value: String| Fact {
        label: page.t(key),
        value,
    };
    let facts = vec![
        fact("officer-licence-number", v.number.clone()),
        fact("officer-licence-type", v.licence_type.clone()),
        fact("officer-holder", v.holder_id.clone()),
        fact("officer-direction", page.t(&direction_key(&v.direction))),
        fact("officer-issue-date", page.date(&v.issue_date)),
        fact(
            "officer-validity",
            page.ta(
                "officer-validity-range",
                &[
                    ("from", &page.date(&v.valid_from)),
                    ("to", &page.date(&v.valid_to)),
                ],
            ),
        ),
        fact(
            "officer-origin",
            page.t(&format!("officer-origin-{}", v.origin)),
        ),
        fact("officer-sha256", v.sha256.clone()),
    ];
    let lines = v
        .lines
        .iter()
        .map(|l| LicenceLineView {
            line: l.line,
            hs_code: l.hs_code.clone(),
            description: l.description.clone(),
            allowed: format!("{} {}", page.number(&l.allowance), l.unit),
            reserved: format!("{} {}", page.number(&l.reserved), l.unit),
            committed: format!("{} {}", page.number(&l.committed), l.unit),
            remaining: format!("{} {}", page.number(&l.remaining), l.unit),
        })
        .collect();
    render(&LicencePage {
        page,
        facts,
        lines,
        href: licence_href(&v.number),
        application: v.application_id.map(|a| format!("/inbox/{a}")),
    })
}

/// A file name safe in a Content-Disposition header.
fn file_name(number: &str, ext: &str) -> String {
    let stem: String = number
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{stem}.{ext}")
}

async fn download(
    person: &Person,
    raw: &str,
    state: &AppState,
    signature: bool,
) -> Result<HttpResponse, PortalError> {
    let agency = officer(person)?.to_owned();
    let v = agency_licence(state, &agency, raw).await?;
    let client = state.pool.get().await?;
    let (body, sig) = licensing_store::licence_document(&client, &v.number)
        .await?
        .ok_or(PortalError::NotFound)?;
    let (bytes, ct, ext) = if signature {
        (sig, "application/pkcs7-signature", "p7s")
    } else {
        (body, "application/xml", "xml")
    };
    Ok(super::page::attachment(
        bytes,
        ct,
        &file_name(&v.number, ext),
    ))
}

#[tracing::instrument(name = "portal.agency_licence_document", skip_all, fields(party))]
async fn document(
    person: Person,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    download(&person, &path, &state, false).await
}

#[tracing::instrument(name = "portal.agency_licence_signature", skip_all, fields(party))]
async fn signature(
    person: Person,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    download(&person, &path, &state, true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_time_reads_in_days_hours_and_minutes() {
        let day = 8 * 60;
        let t = |lang, secs| working_time(lang, secs, day);
        assert_eq!(t(Lang::Vi, (2 * 8 + 3) * 3600), "2 ngày làm việc 3 giờ");
        assert_eq!(t(Lang::Vi, 4 * 3600 + 59), "4 giờ");
        assert_eq!(t(Lang::Vi, 45 * 60), "45 phút");
        assert_eq!(t(Lang::Vi, 0), "0 phút");
        assert_eq!(t(Lang::En, 8 * 3600 + 3600 + 60), "1 working day 1 hour");
        assert_eq!(t(Lang::En, 3 * 3600 + 30 * 60), "3 hours 30 minutes");
    }

    #[test]
    fn file_names_keep_only_safe_characters() {
        assert_eq!(file_name("MOIT-2026-000001", "xml"), "MOIT-2026-000001.xml");
        assert_eq!(file_name("12/GP-BCT \"x\"", "p7s"), "12_GP-BCT__x_.p7s");
    }
}
