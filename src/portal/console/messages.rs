//! `GET /console/messages`: outbox and inbound messages searched by status, partner, document
//! type, reference and date range, 50 a page; a message's page with its attempts, errors,
//! receipt and answers; `POST …/requeue` retries a dead letter through `store::outbox::requeue`,
//! as `POST /api/v1/admin/exchange/outbox/{id}/requeue` does.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use super::{day_start, operator, opt, status_name, Choice, Pager};
use crate::api::AppState;
use crate::portal::page::{render, see_other, Page};
use crate::portal::session::Person;
use crate::portal::PortalError;
use crate::store::console::{self as store, MessageFilter};
use crate::store::{inbound as inbound_store, outbox as outbox_store};

const PAGE_SIZE: i64 = 50;
const DOCUMENT_TYPES: [&str; 5] = [
    "ACDD",
    "FORM_D",
    "BUSINESS_RESPONSE",
    "CERTIFICATE_OF_ORIGIN_KR",
    "PING",
];
const INBOUND_STATUSES: [&str; 2] = ["received", "answered"];

#[derive(Deserialize, Default)]
pub struct SearchQuery {
    direction: Option<String>,
    status: Option<String>,
    partner: Option<String>,
    document_type: Option<String>,
    reference: Option<String>,
    from: Option<String>,
    to: Option<String>,
    page: Option<i64>,
}

pub struct Row {
    pub href: String,
    pub message_id: String,
    pub partner: String,
    pub document_type: String,
    pub function: String,
    pub reference: String,
    pub status: String,
    pub attempts: i32,
    pub last_error: String,
    pub at: String,
}

#[derive(Template)]
#[template(path = "console/messages.html")]
struct SearchPage {
    page: Page,
    outgoing: bool,
    directions: Vec<Choice>,
    statuses: Vec<Choice>,
    partners: Vec<Choice>,
    types: Vec<Choice>,
    reference: String,
    from: String,
    to: String,
    date_error: bool,
    rows: Vec<Row>,
    pager: Pager,
}

fn pick<'a>(value: Option<&'a str>, allowed: &[&str]) -> Result<Option<&'a str>, PortalError> {
    match value {
        Some(v) if !allowed.contains(&v) => {
            Err(PortalError::BadRequest(format!("unknown value {v}")))
        }
        v => Ok(v),
    }
}

#[tracing::instrument(name = "portal.console_messages", skip_all, fields(party))]
pub async fn search(
    req: HttpRequest,
    person: Person,
    q: web::Query<SearchQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    operator(&person)?;
    let page = Page::new(&req, &state, Some(&person), "console-messages-title");
    let outgoing = opt(&q.direction) != Some("in");
    let statuses: &[&str] = if outgoing {
        &outbox_store::STATUSES
    } else {
        &INBOUND_STATUSES
    };
    let status = pick(opt(&q.status), statuses)?;
    let document_type = pick(opt(&q.document_type), &DOCUMENT_TYPES)?;
    let mut countries: Vec<String> = state
        .exchange
        .as_deref()
        .map(|ex| {
            ex.partners
                .countries()
                .iter()
                .map(|c| (*c).to_owned())
                .collect()
        })
        .unwrap_or_default();
    countries.sort();
    let partner = opt(&q.partner).map(str::to_ascii_uppercase);
    if partner
        .as_deref()
        .is_some_and(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_uppercase()))
    {
        return Err(PortalError::BadRequest(
            "a partner is a country code".into(),
        ));
    }
    let offset = page.offset;
    let (from, to) = (opt(&q.from), opt(&q.to));
    let from_t = from.map(|d| day_start(d, offset));
    // The range's last day is included: up to the start of the day after it.
    let to_t = to.map(|d| day_start(d, offset).map(|t| t + chrono::Duration::days(1)));
    let date_error = matches!(from_t, Some(None)) || matches!(to_t, Some(None));
    let filter = MessageFilter {
        status: status.map(str::to_owned),
        partner: partner.clone(),
        document_type: document_type.map(str::to_owned),
        reference: opt(&q.reference).map(str::to_owned),
        from: from_t.flatten(),
        to: to_t.flatten(),
    };
    let page_no = q.page.unwrap_or(1).clamp(1, 100_000);
    let client = state.pool.get().await?;
    let mut found = if date_error {
        Vec::new()
    } else if outgoing {
        store::outbox_search(&client, &filter, (page_no - 1) * PAGE_SIZE, PAGE_SIZE).await?
    } else {
        store::inbound_search(&client, &filter, (page_no - 1) * PAGE_SIZE, PAGE_SIZE).await?
    };
    let has_next = found.len() as i64 > PAGE_SIZE;
    found.truncate(PAGE_SIZE as usize);
    let rows = found
        .into_iter()
        .map(|m| Row {
            href: if outgoing {
                format!("/console/messages/out/{}", m.message_id)
            } else {
                format!("/console/messages/in/{}", m.id)
            },
            message_id: m.message_id.to_string(),
            partner: m.partner,
            document_type: m.document_type,
            function: m.function,
            reference: m.reference,
            status: status_name(page.lang, &m.status),
            attempts: m.attempts,
            last_error: m.last_error.unwrap_or_default(),
            at: page.datetime(&m.at),
        })
        .collect();
    let base = {
        let params: Vec<(&str, &str)> = [
            ("direction", if outgoing { "out" } else { "in" }),
            ("status", status.unwrap_or("")),
            ("partner", partner.as_deref().unwrap_or("")),
            ("document_type", document_type.unwrap_or("")),
            ("reference", opt(&q.reference).unwrap_or("")),
            ("from", from.unwrap_or("")),
            ("to", to.unwrap_or("")),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
        format!(
            "/console/messages?{}&",
            serde_urlencoded::to_string(params).unwrap_or_default()
        )
    };
    let any = page.t("console-any");
    let with_any = |mut v: Vec<Choice>, none_selected: bool| {
        v.insert(
            0,
            Choice {
                value: String::new(),
                label: any.clone(),
                selected: none_selected,
            },
        );
        v
    };
    let lang = page.lang;
    let directions = vec![
        Choice {
            value: "out".into(),
            label: page.t("console-direction-out"),
            selected: outgoing,
        },
        Choice {
            value: "in".into(),
            label: page.t("console-direction-in"),
            selected: !outgoing,
        },
    ];
    let country_refs: Vec<&str> = countries.iter().map(String::as_str).collect();
    render(&SearchPage {
        directions,
        statuses: with_any(
            Choice::list(statuses, status, |s| status_name(lang, s)),
            status.is_none(),
        ),
        partners: with_any(
            Choice::list(&country_refs, partner.as_deref(), str::to_owned),
            partner.is_none(),
        ),
        types: with_any(
            Choice::list(&DOCUMENT_TYPES, document_type, str::to_owned),
            document_type.is_none(),
        ),
        reference: opt(&q.reference).unwrap_or("").to_owned(),
        from: from.unwrap_or("").to_owned(),
        to: to.unwrap_or("").to_owned(),
        date_error,
        rows,
        pager: Pager::new(&base, page_no, has_next),
        outgoing,
        page,
    })
}

pub struct HistoryView {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub attempts: String,
    pub error: String,
}

pub struct AnswerView {
    pub href: String,
    pub document_type: String,
    pub reference: String,
    pub at: String,
}

#[derive(Template)]
#[template(path = "console/message.html")]
struct MessagePage {
    page: Page,
    outgoing: bool,
    facts: Vec<(String, String)>,
    dead_letter: bool,
    requeue_action: String,
    receipt: Option<String>,
    history: Vec<HistoryView>,
    answers: Vec<AnswerView>,
}

fn parse_id(raw: &str) -> Result<Uuid, PortalError> {
    Uuid::parse_str(raw).map_err(|_| PortalError::NotFound)
}

async fn history(
    client: &deadpool_postgres::Object,
    page: &Page,
    message_id: Uuid,
) -> Result<Vec<HistoryView>, PortalError> {
    Ok(store::message_history(client, message_id)
        .await?
        .into_iter()
        .map(|h| HistoryView {
            at: page.datetime(&h.at),
            actor: h.actor,
            action: h.action,
            attempts: h.attempts.map(|a| a.to_string()).unwrap_or_default(),
            error: h.error.unwrap_or_default(),
        })
        .collect())
}

#[tracing::instrument(name = "portal.console_message_out", skip_all, fields(party))]
pub async fn outgoing(
    req: HttpRequest,
    person: Person,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    operator(&person)?;
    let id = parse_id(&path)?;
    let client = state.pool.get().await?;
    let m = outbox_store::get(&client, id)
        .await?
        .ok_or(PortalError::NotFound)?;
    let page = Page::new(&req, &state, Some(&person), "console-message-title")
        .titled(format!("{} {}", m.document_type, m.reference));
    let answers = inbound_store::answers_to(&client, &m.receiver, &m.reference)
        .await?
        .into_iter()
        .map(|a| AnswerView {
            href: format!("/console/messages/in/{}", a.id),
            document_type: a.document_type,
            reference: a.reference,
            at: page.datetime(&a.received_at),
        })
        .collect();
    let history = history(&client, &page, m.message_id).await?;
    let t = |k: &str| page.t(k);
    let facts = vec![
        (t("console-message-id"), m.message_id.to_string()),
        (t("console-conversation"), m.conversation_id.to_string()),
        (t("console-partner"), m.receiver.clone()),
        (t("console-document-type"), m.document_type.clone()),
        (t("console-function"), m.function.clone()),
        (t("console-reference"), m.reference.clone()),
        (
            t("console-previous-reference"),
            m.previous_reference.clone().unwrap_or_default(),
        ),
        (t("console-status"), status_name(page.lang, &m.status)),
        (
            t("console-attempts"),
            format!("{} / {}", m.attempts, m.max_attempts),
        ),
        (t("console-created"), page.datetime(&m.created_at)),
        (t("console-next-attempt"), page.datetime(&m.available_at)),
        (t("console-expires"), page.datetime(&m.expires_at)),
        (
            t("console-delivered"),
            m.delivered_at
                .map(|d| page.datetime(&d))
                .unwrap_or_default(),
        ),
        (
            t("console-last-error"),
            m.last_error.clone().unwrap_or_default(),
        ),
        (t("console-sha256"), m.sha256.clone()),
    ];
    render(&MessagePage {
        outgoing: true,
        dead_letter: m.status == "dead_letter",
        requeue_action: format!("/console/messages/out/{}/requeue", m.message_id),
        receipt: m.receipt.clone(),
        facts,
        history,
        answers,
        page,
    })
}

#[tracing::instrument(name = "portal.console_message_in", skip_all, fields(party))]
pub async fn incoming(
    req: HttpRequest,
    person: Person,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    operator(&person)?;
    let id = parse_id(&path)?;
    let client = state.pool.get().await?;
    let m = inbound_store::get(&client, id)
        .await?
        .ok_or(PortalError::NotFound)?;
    let [_, _, receipt, _] = inbound_store::raw(&client, id)
        .await?
        .ok_or(PortalError::NotFound)?;
    let page = Page::new(&req, &state, Some(&person), "console-message-title")
        .titled(format!("{} {}", m.document_type, m.reference));
    let history = history(&client, &page, m.message_id).await?;
    let t = |k: &str| page.t(k);
    let facts = vec![
        (t("console-message-id"), m.message_id.to_string()),
        (t("console-conversation"), m.conversation_id.to_string()),
        (t("console-partner"), m.sender.clone()),
        (t("console-document-type"), m.document_type.clone()),
        (t("console-function"), m.function.clone()),
        (t("console-reference"), m.reference.clone()),
        (
            t("console-previous-reference"),
            m.previous_reference.clone().unwrap_or_default(),
        ),
        (t("console-status"), status_name(page.lang, &m.status)),
        (t("console-received"), page.datetime(&m.received_at)),
        (t("console-signer"), m.signer.clone()),
        (t("console-sha256"), m.sha256.clone()),
    ];
    render(&MessagePage {
        outgoing: false,
        dead_letter: false,
        requeue_action: String::new(),
        receipt: Some(String::from_utf8_lossy(&receipt).into_owned()),
        facts,
        history,
        answers: Vec::new(),
        page,
    })
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

#[tracing::instrument(name = "portal.console_requeue", skip_all, fields(party))]
pub async fn requeue(
    person: Person,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    operator(&person)?;
    person.check_csrf(&form.csrf)?;
    let id = parse_id(&path)?;
    let mut client = state.pool.get().await?;
    outbox_store::requeue(
        &mut client,
        id,
        state.settings.exchange.ttl_secs as f64,
        person.party_id(),
    )
    .await?;
    Ok(see_other(&format!("/console/messages/out/{id}")))
}
