//! Licence applications (certificates of origin included): the trader's list, an application's
//! page (rendered from the document it was made with), the answer to an officer's request for
//! a supplement, and the withdrawal.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::declarations::{EventView, Fact};
use super::{
    licence_path, parse_id, time_limit, trader, CsrfOnly, ListQuery, Opt, Pager, PAGE_SIZE,
};
use crate::api::AppState;
use crate::domain::application_state::Status;
use crate::licensing;
use crate::portal::fee_block::{self, FeeBlock};
use crate::portal::forms::FieldErrors;
use crate::portal::{render, render_with, see_other, Page, Person, PortalError};
use crate::store::dossiers;
use crate::store::licensing::{self as store, AppScope};
use crate::store::payments;
use crate::workflow::WorkflowError;
use crate::xml::tree::ROOT;
use crate::xml::Tree;

const STATUSES: [&str; 10] = [
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

pub struct Row {
    pub href: String,
    pub reference: String,
    pub lrn: String,
    pub kind: String,
    pub agency: String,
    pub procedure: String,
    pub submitted: String,
    pub status: String,
    pub fee: String,
    pub time_limit: String,
}

#[derive(Template)]
#[template(path = "trader/applications.html")]
struct List {
    page: Page,
    rows: Vec<Row>,
    statuses: Vec<Opt>,
    search: String,
    pager: Pager,
}

/// The name of an application type (`IML`, `COO` …) in the page's language.
pub fn type_label(page: &Page, code: &str) -> String {
    let key = format!("trader-apptype-{}", code.to_ascii_lowercase());
    let label = page.t(&key);
    if label == key {
        code.to_owned()
    } else {
        format!("{label} ({code})")
    }
}

/// `GET /applications`: the party's applications, newest first, filtered and paged.
#[tracing::instrument(name = "portal.applications", skip_all, fields(party))]
pub async fn list(
    person: Person,
    req: HttpRequest,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    trader(&person)?;
    let status = query.status_in(&STATUSES);
    let search = query.search();
    let page_no = query.page();
    let client = state.pool.get().await?;
    let found = dossiers::applications(
        &client,
        person.party_id(),
        status.as_deref(),
        Some(&search),
        (page_no - 1) * PAGE_SIZE,
        PAGE_SIZE,
    )
    .await?;
    let page = Page::new(&req, &state, Some(&person), "trader-applications-title");
    let statuses = Opt::status_filter(&page, &STATUSES, status.as_deref(), |s| page.status(s));
    let day = state.calendar.working_day_minutes();
    let rows = found
        .items
        .iter()
        .map(|r| Row {
            href: format!("/applications/{}", r.id),
            reference: r.reference.clone(),
            lrn: r.lrn.clone(),
            kind: type_label(&page, &r.application_type),
            agency: r.agency.clone(),
            procedure: r.procedure_code.clone(),
            submitted: page.datetime(&r.received_at),
            status: page.status(&r.status),
            fee: page.vnd(&r.fee_vnd),
            time_limit: time_limit(&page, r.sla_minutes, day),
        })
        .collect();
    let pager = Pager::new(
        "/applications",
        status.as_deref(),
        &search,
        page_no,
        found.total,
    );
    render(&List {
        page,
        rows,
        statuses,
        search,
        pager,
    })
}

/// A party block of the application document.
pub struct PartyView {
    pub id: String,
    pub name: String,
    pub address: String,
}

pub struct LineView {
    pub number: String,
    pub hs_code: String,
    pub description: String,
    pub quantity: String,
    pub value: String,
}

pub struct AttachmentView {
    pub kind: String,
    pub reference: String,
    pub issue_date: String,
}

/// What the page shows of the document an application was made with.
#[derive(Default)]
pub struct DocumentView {
    pub facts: Vec<Fact>,
    pub applicant: Option<PartyView>,
    pub counterparty: Option<PartyView>,
    pub lines: Vec<LineView>,
    pub attachments: Vec<AttachmentView>,
}

fn party_of(tree: &Tree, node: Option<usize>) -> Option<PartyView> {
    let n = node?;
    let t = |chain: &str| tree.at(n, chain).map(|x| tree.text(x)).unwrap_or("");
    let address = [
        t("Address/Street"),
        t("Address/City"),
        t("Address/PostCode"),
        t("Address/Country"),
    ]
    .iter()
    .filter(|s| !s.is_empty())
    .copied()
    .collect::<Vec<_>>()
    .join(", ");
    Some(PartyView {
        id: t("ID").to_owned(),
        name: t("Name").to_owned(),
        address,
    })
}

/// Reads a licence-application document for display (it passed its schema when it was filed).
fn document_view(page: &Page, bytes: &[u8], state: &AppState) -> DocumentView {
    let Ok(tree) = Tree::parse(bytes, &state.validator.limits) else {
        return DocumentView::default();
    };
    let t = |n: usize, chain: &str| tree.at(n, chain).map(|x| tree.text(x)).unwrap_or("");
    let fact = |key: &str, value: String| Fact {
        label: page.t(key),
        value,
    };
    let date = |raw: &str| {
        chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .map(|d| page.date(&d))
            .unwrap_or_else(|_| raw.to_owned())
    };
    let mut facts = vec![
        fact(
            "trader-col-direction",
            super::declarations::direction_label(page, t(ROOT, "Header/Direction")),
        ),
        fact("trader-export-country", t(ROOT, "ExportCountry").to_owned()),
        fact("trader-import-country", t(ROOT, "ImportCountry").to_owned()),
        fact(
            "trader-validity",
            format!(
                "{} – {}",
                date(t(ROOT, "Validity/From")),
                date(t(ROOT, "Validity/To"))
            ),
        ),
        fact(
            "trader-submission-date",
            date(t(ROOT, "Header/SubmissionDate")),
        ),
    ];
    let procedure = t(ROOT, "Header/ProcedureCode");
    if !procedure.is_empty() {
        facts.push(fact("trader-customs-procedure", procedure.to_owned()));
    }
    let number = |raw: &str| {
        raw.parse::<rust_decimal::Decimal>()
            .map(|d| page.number(&d))
            .unwrap_or_else(|_| raw.to_owned())
    };
    let lines = tree
        .children(ROOT, "Line")
        .map(|n| {
            let q = tree.at(n, "Quantity");
            let v = tree.at(n, "Value");
            LineView {
                number: t(n, "Number").to_owned(),
                hs_code: t(n, "HSCode").to_owned(),
                description: t(n, "Description").to_owned(),
                quantity: q
                    .map(|q| {
                        format!(
                            "{} {}",
                            number(tree.text(q)),
                            tree.attr(q, "unit").unwrap_or("")
                        )
                    })
                    .unwrap_or_default(),
                value: v
                    .map(|v| {
                        let currency = tree.attr(v, "currency").unwrap_or("");
                        match tree.text(v).parse::<rust_decimal::Decimal>() {
                            Ok(d) => page.money(&d, currency),
                            Err(_) => format!("{} {currency}", tree.text(v)),
                        }
                    })
                    .unwrap_or_default(),
            }
        })
        .collect();
    let attachments = tree
        .children(ROOT, "Attachment")
        .map(|n| AttachmentView {
            kind: attachment_label(page, t(n, "Type")),
            reference: t(n, "Reference").to_owned(),
            issue_date: {
                let d = t(n, "IssueDate");
                if d.is_empty() {
                    String::new()
                } else {
                    date(d)
                }
            },
        })
        .collect();
    DocumentView {
        facts,
        applicant: party_of(&tree, tree.child(ROOT, "Applicant")),
        counterparty: party_of(&tree, tree.child(ROOT, "Counterparty")),
        lines,
        attachments,
    }
}

/// The name of a supporting document's type in the page's language.
pub fn attachment_label(page: &Page, code: &str) -> String {
    let key = format!("trader-doctype-{}", code.to_ascii_lowercase());
    let label = page.t(&key);
    if label == key {
        code.to_owned()
    } else {
        label
    }
}

#[derive(Template)]
#[template(path = "trader/application.html")]
struct Detail {
    page: Page,
    id: String,
    status: String,
    summary: Vec<Fact>,
    doc: DocumentView,
    history: Vec<EventView>,
    supplements: Vec<(String, String)>,
    /// The officer's reason for asking a supplement, while one is asked.
    asked: Option<String>,
    supplement_open: bool,
    note: String,
    errors: FieldErrors,
    withdrawable: bool,
    /// Link and label of the licence or certificate issued on it.
    issued: Option<(String, String)>,
    /// Its fee notice, when the fee is collected online.
    fee: Option<FeeBlock>,
}

/// The application's page; `pay_error` is why the last "Pay now" failed, shown beside the
/// button. The page may hold the "Pay now" form, so its policy lets forms go to the platform.
#[allow(clippy::too_many_arguments)]
pub(super) async fn detail_page(
    person: &Person,
    req: &HttpRequest,
    state: &AppState,
    id: uuid::Uuid,
    note: String,
    errors: FieldErrors,
    pay_error: Option<String>,
    status_code: StatusCode,
) -> Result<HttpResponse, PortalError> {
    let client = state.pool.get().await?;
    let d = store::get_application(&client, &AppScope::Applicant(person.party_id()), id)
        .await?
        .ok_or(PortalError::NotFound)?;
    let s = &d.summary;
    let page =
        Page::new(req, state, Some(person), "trader-application-title").titled(s.reference.clone());
    let doc = match dossiers::application_document(&client, person.party_id(), id).await? {
        Some((kind, bytes)) if kind == "licence-application" => document_view(&page, &bytes, state),
        _ => DocumentView::default(),
    };
    let fact = |key: &str, value: String| Fact {
        label: page.t(key),
        value,
    };
    let day = state.calendar.working_day_minutes();
    let mut summary = vec![
        fact("trader-col-reference", s.reference.clone()),
        fact("trader-your-reference", s.lrn.clone()),
        fact(
            "trader-application-type",
            type_label(&page, &s.application_type),
        ),
        fact("trader-col-agency", s.agency.clone()),
        fact("trader-col-procedure", s.procedure_code.clone()),
        fact("trader-col-status", page.status(&s.status)),
        fact("trader-col-submitted", page.datetime(&s.received_at)),
        fact("trader-col-fee", page.vnd(&s.fee_vnd)),
        fact(
            "trader-col-time-limit",
            time_limit(&page, s.sla_minutes, day),
        ),
    ];
    if let Some(at) = &s.decided_at {
        summary.push(fact("trader-decided-at", page.datetime(at)));
    }
    let status = Status::parse(&s.status);
    if let (Some(reason), Some(Status::Refused)) = (&s.decision_reason, status) {
        summary.push(fact("trader-decision-reason", reason.clone()));
    }
    let supplement_open = status == Some(Status::SupplementRequested);
    let asked = if supplement_open {
        d.history
            .iter()
            .rev()
            .find(|e| e.status == "supplement_requested")
            .and_then(|e| e.note.clone())
            .or_else(|| s.decision_reason.clone())
    } else {
        None
    };
    let issued = match (&d.licence_number, status) {
        (Some(n), _) => Some((
            format!("/licences/{}", licence_path(n)),
            page.ta("trader-see-licence", &[("number", n.as_str())]),
        )),
        (None, Some(Status::Issued)) => {
            dossiers::certificate_of_application(&client, person.party_id(), id)
                .await?
                .map(|r| {
                    (
                        format!("/certificates/{r}"),
                        page.ta("trader-see-certificate", &[("reference", r.as_str())]),
                    )
                })
        }
        _ => None,
    };
    let history = d
        .history
        .iter()
        .map(|e| EventView {
            status: page.status(&e.status),
            at: page.datetime(&e.at),
            actor: e.actor.clone(),
            note: e.note.clone().unwrap_or_default(),
        })
        .collect();
    let supplements = d
        .supplements
        .iter()
        .map(|v| {
            let at = v["at"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| page.datetime(&t.with_timezone(&chrono::Utc)))
                .unwrap_or_default();
            (at, v["note"].as_str().unwrap_or("").to_owned())
        })
        .collect();
    let withdrawable = status.is_some_and(|st| st.can_become(Status::Withdrawn));
    let notice =
        payments::notice_view(&client, &AppScope::Applicant(person.party_id()), id).await?;
    let pay_url = notice
        .as_ref()
        .and_then(|n| n.order.as_ref())
        .map(|o| o.pay_url.clone());
    let fee = notice.map(|n| {
        let mut block = FeeBlock::new(&page, &n, true);
        block.pay_error = pay_error;
        block
    });
    let resp = render_with(
        status_code,
        &Detail {
            id: id.to_string(),
            status: page.status(&s.status),
            page,
            summary,
            doc,
            history,
            supplements,
            asked,
            supplement_open,
            note,
            errors,
            withdrawable,
            issued,
            fee,
        },
    )?;
    Ok(fee_block::allow_platform_form(
        resp,
        &state.settings.payments,
        pay_url.as_deref(),
    ))
}

/// `GET /applications/{id}`.
#[tracing::instrument(name = "portal.application", skip_all, fields(party))]
pub async fn detail(
    person: Person,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    trader(&person)?;
    let id = parse_id(&path)?;
    detail_page(
        &person,
        &req,
        &state,
        id,
        String::new(),
        FieldErrors::new(),
        None,
        StatusCode::OK,
    )
    .await
}

#[derive(Deserialize)]
pub struct SupplementForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    note: String,
}

/// `POST /applications/{id}/supplement`: the applicant's answer (workflow
/// `licensing::supplement`); a note the workflow refuses is shown beside the field (422).
#[tracing::instrument(name = "portal.application_supplement", skip_all, fields(party))]
pub async fn supplement(
    person: Person,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<SupplementForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    trader(&person)?;
    person.check_csrf(&form.csrf)?;
    let id = parse_id(&path)?;
    {
        let client = state.pool.get().await?;
        store::get_application(&client, &AppScope::Applicant(person.party_id()), id)
            .await?
            .ok_or(PortalError::NotFound)?;
    }
    match licensing::supplement(&state.pool, id, person.party_id(), &form.note).await {
        Ok(_) => Ok(see_other(&format!("/applications/{id}"))),
        Err(WorkflowError::BadRequest { code, detail }) => {
            let page = Page::new(&req, &state, Some(&person), "trader-application-title");
            let mut errors = FieldErrors::new();
            let message = match code {
                "NOTE_INVALID" => page.t("trader-note-invalid"),
                _ => detail,
            };
            errors.add("note", message);
            detail_page(
                &person,
                &req,
                &state,
                id,
                form.into_inner().note,
                errors,
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /applications/{id}/withdraw` (workflow `licensing::withdraw`).
#[tracing::instrument(name = "portal.application_withdraw", skip_all, fields(party))]
pub async fn withdraw(
    person: Person,
    path: web::Path<String>,
    form: web::Form<CsrfOnly>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    trader(&person)?;
    person.check_csrf(&form.csrf)?;
    let id = parse_id(&path)?;
    {
        let client = state.pool.get().await?;
        store::get_application(&client, &AppScope::Applicant(person.party_id()), id)
            .await?
            .ok_or(PortalError::NotFound)?;
    }
    licensing::withdraw(
        &crate::api::licence_applications::licensing_context(&state),
        id,
        person.party_id(),
    )
    .await?;
    Ok(see_other(&format!("/applications/{id}")))
}
