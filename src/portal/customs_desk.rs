//! The customs officer's pages: declarations to decide (oldest first, filtered and searched),
//! a declaration with the licences each item drew on and the agencies it was held to, the
//! decision forms (through `customs::decide`, as the API calls it), and the documents received
//! from partner windows with the business responses sent back (through
//! `exchange::respond::respond`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use super::forms::FieldErrors;
use super::officer::Choice;
use super::page::{render, render_with, see_other, Page};
use super::session::Person;
use super::PortalError;
use crate::api::AppState;
use crate::customs::{self, Action, Status};
use crate::domain::party::Role;
use crate::exchange::{envelope, respond, ExchangeError};
use crate::store::declarations::{self, Scope};
use crate::store::desk::{self, DeclarationFilter};
use crate::store::inbound;
use crate::workflow::WorkflowError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/customs/declarations", web::get().to(declarations_list))
        .route("/customs/declarations/{id}", web::get().to(declaration))
        .route(
            "/customs/declarations/{id}/decision",
            web::post().to(decide),
        )
        .route(
            "/customs/partner-documents",
            web::get().to(partner_documents),
        )
        .route(
            "/customs/partner-documents/{id}",
            web::get().to(partner_document),
        )
        .route(
            "/customs/partner-documents/{id}/response",
            web::post().to(respond_to),
        );
}

fn parse_id(raw: &str) -> Result<Uuid, PortalError> {
    Uuid::parse_str(raw).map_err(|_| PortalError::NotFound)
}

fn direction(page: &Page, d: &str) -> String {
    page.t(&format!("officer-direction-{}", d.to_ascii_lowercase()))
}

struct Fact {
    label: String,
    value: String,
}

struct HistoryView {
    status: String,
    at: String,
    actor: String,
    note: String,
}

// ---------------------------------------------------------------------------------------
// GET /customs/declarations

struct DeclarationItem {
    id: String,
    reference: String,
    lrn: String,
    declarant: String,
    direction: String,
    submitted: String,
    status: String,
}

#[derive(Template)]
#[template(path = "customs/declarations.html")]
struct DeclarationsPage {
    page: Page,
    items: Vec<DeclarationItem>,
    filters: Vec<Choice>,
    q: String,
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    q: Option<String>,
}

#[tracing::instrument(name = "portal.customs_declarations", skip_all, fields(party))]
async fn declarations_list(
    req: HttpRequest,
    person: Person,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    person.require(&[Role::Customs])?;
    let filter = match query.status.as_deref().filter(|s| !s.is_empty()) {
        None => DeclarationFilter::Open,
        Some(s) => DeclarationFilter::parse(s)
            .ok_or_else(|| PortalError::BadRequest(format!("unknown filter {s}")))?,
    };
    let q = query.q.as_deref().map(str::trim).unwrap_or_default();
    let q: String = q.chars().take(100).collect();
    let client = state.pool.get().await?;
    let rows =
        desk::customs_declarations(&client, filter, (!q.is_empty()).then_some(q.as_str()), 500)
            .await?;
    let page = Page::new(&req, &state, Some(&person), "customs-declarations-title");
    let items = rows
        .iter()
        .map(|r| DeclarationItem {
            id: r.id.to_string(),
            reference: r.reference.clone(),
            lrn: r.lrn.clone(),
            declarant: r.declarant_id.clone(),
            direction: direction(&page, &r.direction),
            submitted: page.datetime(&r.received_at),
            status: page.status(&r.status),
        })
        .collect();
    let filters = DeclarationFilter::ALL
        .iter()
        .map(|f| Choice {
            value: f.as_str().to_owned(),
            label: page.t(&format!("customs-filter-{}", f.as_str())),
            selected: *f == filter,
        })
        .collect();
    render(&DeclarationsPage {
        page,
        items,
        filters,
        q,
    })
}

// ---------------------------------------------------------------------------------------
// GET /customs/declarations/{id}, POST …/decision

struct DrawView {
    licence: String,
    line: i32,
    quantity: String,
    state: String,
}

struct ItemView {
    line: i32,
    hs_code: String,
    description: String,
    origin: String,
    quantity: String,
    value: String,
    draws: Vec<DrawView>,
    agencies: Vec<String>,
}

#[derive(Template)]
#[template(path = "customs/declaration.html")]
struct DeclarationPage {
    page: Page,
    id: String,
    status: String,
    facts: Vec<Fact>,
    items: Vec<ItemView>,
    history: Vec<HistoryView>,
    done: Option<String>,
    can_clear: bool,
    can_hold: bool,
    can_reject: bool,
    action: String,
    reason: String,
    errors: FieldErrors,
}

impl DeclarationPage {
    fn reason_for(&self, action: &str) -> &str {
        if self.action == action {
            &self.reason
        } else {
            ""
        }
    }
}

#[derive(Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

const DONE: [&str; 3] = ["cleared", "under_inspection", "rejected"];

#[allow(clippy::too_many_arguments)]
async fn declaration_page(
    req: &HttpRequest,
    state: &AppState,
    person: &Person,
    id: Uuid,
    done: Option<&str>,
    action: String,
    reason: String,
    errors: FieldErrors,
) -> Result<DeclarationPage, PortalError> {
    let client = state.pool.get().await?;
    let d = declarations::get(&client, &Scope::All, id)
        .await?
        .ok_or(PortalError::NotFound)?;
    let items = desk::declaration_items(&client, id).await?;
    let s = &d.summary;
    let page = Page::new(req, state, Some(person), "customs-declaration-title")
        .titled(s.reference.clone());
    let fact = |key: &str, value: String| Fact {
        label: page.t(key),
        value,
    };
    let facts = vec![
        fact("customs-reference", s.reference.clone()),
        fact("customs-lrn", s.lrn.clone()),
        fact("customs-declarant", s.declarant_id.clone()),
        fact("customs-trader", s.trader_id.clone()),
        fact("customs-direction", direction(&page, &s.direction)),
        fact("customs-export-country", s.export_country.clone()),
        fact("customs-destination-country", s.destination_country.clone()),
        fact(
            "customs-total-value",
            page.money(&s.total_value, &s.currency),
        ),
        fact("customs-item-count", s.item_count.to_string()),
        fact("customs-submitted", page.datetime(&s.received_at)),
        fact("customs-sha256", d.sha256.clone()),
    ];
    let items = items
        .iter()
        .map(|it| ItemView {
            line: it.line,
            hs_code: it.hs_code.clone(),
            description: it.description.clone(),
            origin: it.origin.clone(),
            quantity: format!("{} {}", page.number(&it.quantity), it.unit),
            value: page.money(&it.customs_value, &s.currency),
            draws: it
                .draws
                .iter()
                .map(|x| DrawView {
                    licence: x.licence_number.clone(),
                    line: x.line,
                    quantity: format!("{} {}", page.number(&x.quantity), it.unit),
                    state: page.t(&format!("customs-draw-{}", x.state)),
                })
                .collect(),
            agencies: it
                .requirements
                .iter()
                .map(|r| format!("{} · {} ({})", r.agency, r.procedure_code, r.document_type))
                .collect(),
        })
        .collect();
    let history = d
        .history
        .iter()
        .map(|h| HistoryView {
            status: page.status(&h.status),
            at: page.datetime(&h.at),
            actor: h.actor.clone(),
            note: h.note.clone().unwrap_or_default(),
        })
        .collect();
    let current = Status::parse(&s.status);
    let can = |to: Status| current.is_some_and(|c| c.can_become(to));
    let done = done
        .filter(|x| DONE.contains(x))
        .map(|x| page.t(&format!("customs-done-{}", x.replace('_', "-"))));
    Ok(DeclarationPage {
        id: id.to_string(),
        status: page.status(&s.status),
        facts,
        items,
        history,
        done,
        can_clear: can(Status::Cleared),
        can_hold: can(Status::UnderInspection),
        can_reject: can(Status::Rejected),
        action,
        reason,
        errors,
        page,
    })
}

#[tracing::instrument(name = "portal.customs_declaration", skip_all, fields(party))]
async fn declaration(
    req: HttpRequest,
    person: Person,
    path: web::Path<String>,
    q: web::Query<DoneQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    person.require(&[Role::Customs])?;
    let id = parse_id(&path)?;
    let page = declaration_page(
        &req,
        &state,
        &person,
        id,
        q.done.as_deref(),
        String::new(),
        String::new(),
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
}

#[tracing::instrument(name = "portal.customs_decide", skip_all, fields(party, action))]
async fn decide(
    req: HttpRequest,
    person: Person,
    path: web::Path<String>,
    form: web::Form<DecisionForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    person.require(&[Role::Customs])?;
    person.check_csrf(&form.csrf)?;
    let id = parse_id(&path)?;
    let form = form.into_inner();
    tracing::Span::current().record("action", form.action.as_str());
    let action = Action::parse(&form.action)
        .ok_or_else(|| PortalError::BadRequest(format!("unknown action {}", form.action)))?;
    let decided = customs::decide(
        &state.pool,
        state.exchange.as_deref(),
        &state.settings,
        id,
        person.party_id(),
        action,
        form.reason.as_deref(),
    )
    .await;
    let lang = super::i18n::negotiate(&req, super::page::default_lang(&state));
    let mut errors = FieldErrors::new();
    let field = format!("{}-reason", action.as_str());
    match decided {
        Ok(d) => {
            return Ok(see_other(&format!(
                "/customs/declarations/{id}?done={}",
                d.declaration.status
            )))
        }
        Err(WorkflowError::BadRequest {
            code: "REASON_REQUIRED",
            ..
        }) => errors.add(field, lang.t("customs-reason-required")),
        Err(WorkflowError::BadRequest {
            code: "REASON_TOO_LONG",
            ..
        }) => errors.add(field, lang.t("customs-reason-too-long")),
        Err(e) => return Err(e.into()),
    }
    let page = declaration_page(
        &req,
        &state,
        &person,
        id,
        None,
        form.action,
        form.reason.unwrap_or_default(),
        errors,
    )
    .await?;
    render_with(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

// ---------------------------------------------------------------------------------------
// GET /customs/partner-documents[/{id}], POST …/{id}/response

const DOCUMENT_TYPES: [&str; 4] = [
    "ACDD",
    "FORM_D",
    "CERTIFICATE_OF_ORIGIN_KR",
    "BUSINESS_RESPONSE",
];

struct PartnerItem {
    id: String,
    partner: String,
    document_type: String,
    reference: String,
    received: String,
    status: String,
}

#[derive(Template)]
#[template(path = "customs/partner_documents.html")]
struct PartnerDocumentsPage {
    page: Page,
    items: Vec<PartnerItem>,
    types: Vec<Choice>,
}

#[derive(Deserialize)]
struct TypeQuery {
    document_type: Option<String>,
}

fn answer_status(page: &Page, status: &str) -> String {
    page.t(&format!("customs-answer-{status}"))
}

#[tracing::instrument(name = "portal.partner_documents", skip_all, fields(party))]
async fn partner_documents(
    req: HttpRequest,
    person: Person,
    q: web::Query<TypeQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    person.require(&[Role::Customs])?;
    let kind = match q.document_type.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(t) => Some(
            DOCUMENT_TYPES
                .iter()
                .copied()
                .find(|x| *x == t)
                .ok_or_else(|| PortalError::BadRequest(format!("unknown document type {t}")))?,
        ),
    };
    let client = state.pool.get().await?;
    let rows = inbound::list(&client, kind, 500).await?;
    let page = Page::new(&req, &state, Some(&person), "customs-partner-title");
    let items = rows
        .iter()
        .map(|r| PartnerItem {
            id: r.id.to_string(),
            partner: r.sender.clone(),
            document_type: r.document_type.clone(),
            reference: r.reference.clone(),
            received: page.datetime(&r.received_at),
            status: answer_status(&page, &r.status),
        })
        .collect();
    let mut types = vec![Choice {
        value: String::new(),
        label: page.t("customs-type-all"),
        selected: kind.is_none(),
    }];
    types.extend(DOCUMENT_TYPES.iter().map(|t| Choice {
        value: (*t).to_owned(),
        label: (*t).to_owned(),
        selected: kind == Some(*t),
    }));
    render(&PartnerDocumentsPage { page, items, types })
}

struct SentView {
    reference: String,
    decision: String,
    status: String,
    created: String,
    delivered: String,
}

#[derive(Template)]
#[template(path = "customs/partner_document.html")]
struct PartnerDocumentPage {
    page: Page,
    id: String,
    facts: Vec<Fact>,
    document: String,
    sent: Vec<SentView>,
    /// The decisions the form offers (empty: no form).
    decisions: Vec<Choice>,
    reason: String,
    done: bool,
    errors: FieldErrors,
}

/// The text of the root's child `name` of an XML document, if present.
fn child_text(xml: &[u8], name: &str, limits: &crate::xml::Limits) -> Option<String> {
    let tree = crate::xml::Tree::parse(xml, limits).ok()?;
    tree.child(crate::xml::tree::ROOT, name)
        .map(|n| tree.text(n).to_owned())
}

#[allow(clippy::too_many_arguments)]
async fn partner_page(
    req: &HttpRequest,
    state: &AppState,
    person: &Person,
    id: Uuid,
    done: bool,
    decision: &str,
    reason: String,
    errors: FieldErrors,
) -> Result<PartnerDocumentPage, PortalError> {
    let client = state.pool.get().await?;
    let msg = inbound::get(&client, id)
        .await?
        .ok_or(PortalError::NotFound)?;
    let [env, ..] = inbound::raw(&client, id)
        .await?
        .ok_or(PortalError::NotFound)?;
    let sent = desk::responses_sent(&client, &msg.sender, &msg.reference).await?;
    let page = Page::new(req, state, Some(person), "customs-partner-document-title")
        .titled(format!("{} {}", msg.document_type, msg.reference));
    let limits = &state.validator.limits;
    let document = envelope::payload(&env)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    let fact = |key: &str, value: String| Fact {
        label: page.t(key),
        value,
    };
    let facts = vec![
        fact("customs-partner", msg.sender.clone()),
        fact("customs-document-type", msg.document_type.clone()),
        fact("customs-function", msg.function.clone()),
        fact("customs-reference", msg.reference.clone()),
        fact(
            "customs-previous-reference",
            msg.previous_reference.clone().unwrap_or_default(),
        ),
        fact("customs-message-id", msg.message_id.to_string()),
        fact("customs-conversation-id", msg.conversation_id.to_string()),
        fact("customs-received", page.datetime(&msg.received_at)),
        fact("customs-signer", msg.signer.clone()),
        fact("customs-sha256", msg.sha256.clone()),
        fact("customs-answer", answer_status(&page, &msg.status)),
    ];
    let sent = sent
        .iter()
        .map(|r| SentView {
            reference: r.reference.clone(),
            decision: envelope::payload(&r.envelope)
                .and_then(|p| child_text(p, "Decision", limits))
                .unwrap_or_default(),
            status: r.status.clone(),
            created: page.datetime(&r.created_at),
            delivered: r
                .delivered_at
                .map(|t| page.datetime(&t))
                .unwrap_or_default(),
        })
        .collect();
    let answerable = state.exchange.is_some() && msg.status == "received";
    let decisions = respond::decisions_for(&msg.document_type)
        .filter(|_| answerable)
        .map(|ds| {
            ds.iter()
                .map(|d| Choice {
                    value: (*d).to_owned(),
                    label: page.t(&format!("customs-decision-{d}")),
                    selected: *d == decision,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(PartnerDocumentPage {
        id: id.to_string(),
        facts,
        document,
        sent,
        decisions,
        reason,
        done,
        errors,
        page,
    })
}

#[tracing::instrument(name = "portal.partner_document", skip_all, fields(party))]
async fn partner_document(
    req: HttpRequest,
    person: Person,
    path: web::Path<String>,
    q: web::Query<DoneQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    person.require(&[Role::Customs])?;
    let id = parse_id(&path)?;
    let page = partner_page(
        &req,
        &state,
        &person,
        id,
        q.done.as_deref() == Some("answered"),
        "",
        String::new(),
        FieldErrors::new(),
    )
    .await?;
    render(&page)
}

#[derive(Deserialize)]
struct RespondForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
    reason: Option<String>,
}

#[tracing::instrument(name = "portal.partner_respond", skip_all, fields(party))]
async fn respond_to(
    req: HttpRequest,
    person: Person,
    path: web::Path<String>,
    form: web::Form<RespondForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    person.require(&[Role::Customs])?;
    person.check_csrf(&form.csrf)?;
    let id = parse_id(&path)?;
    let form = form.into_inner();
    let ex = state.exchange.as_deref().ok_or(PortalError::Conflict {
        code: "EXCHANGE_NOT_CONFIGURED",
        detail: "this window does not exchange with partner windows".into(),
    })?;
    let reason = form.reason.as_deref().map(str::trim).unwrap_or_default();
    let reasons: Vec<respond::Reason> = if reason.is_empty() {
        Vec::new()
    } else {
        vec![respond::Reason {
            code: "CUSTOMS".into(),
            text: reason.to_owned(),
            path: None,
        }]
    };
    let lang = super::i18n::negotiate(&req, super::page::default_lang(&state));
    let mut errors = FieldErrors::new();
    match respond::respond(
        &state.pool,
        ex,
        &state.settings,
        id,
        person.party_id(),
        &form.decision,
        &reasons,
    )
    .await
    {
        Ok(_) => {
            return Ok(see_other(&format!(
                "/customs/partner-documents/{id}?done=answered"
            )))
        }
        Err(WorkflowError::BadRequest {
            code: "REASON_REQUIRED",
            ..
        }) => errors.add("reason", lang.t("customs-reason-required")),
        Err(WorkflowError::BadRequest {
            code: "DECISION_UNKNOWN",
            ..
        }) => errors.add("decision", lang.t("customs-decision-unknown")),
        Err(WorkflowError::Exchange(ExchangeError::Refused { .. })) => {
            errors.add("decision", lang.t("customs-no-partner"))
        }
        Err(e) => return Err(e.into()),
    }
    let page = partner_page(
        &req,
        &state,
        &person,
        id,
        false,
        &form.decision,
        reason.to_owned(),
        errors,
    )
    .await?;
    render_with(StatusCode::UNPROCESSABLE_ENTITY, &page)
}
