//! Declarations: the trader's list, the upload form (a refused document is shown again as
//! numbered lines with every error beside its line), a declaration's page, its exact bytes and
//! its withdrawal.

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use futures_util::StreamExt;

use super::source::{self, Listing, Shown};
use super::{attachment, parse_id, trader, CsrfOnly, ListQuery, Opt, Pager, PAGE_SIZE};
use crate::api::{AppState, Intake};
use crate::domain::declaration_state::Status;
use crate::intake::{self, SubmitError};
use crate::portal::{render, render_with, see_other, Page, Person, PortalError};
use crate::store::declarations::{self as store, Scope};
use crate::store::{dossiers, StoreError};
use crate::xml::Tree;

const STATUSES: [&str; 5] = [
    "accepted",
    "under_inspection",
    "cleared",
    "rejected",
    "withdrawn",
];

pub fn direction_label(page: &Page, direction: &str) -> String {
    match direction {
        "IM" => page.t("trader-direction-import"),
        "EX" => page.t("trader-direction-export"),
        "TR" => page.t("trader-direction-transit"),
        other => other.to_owned(),
    }
}

pub struct Row {
    pub href: String,
    pub reference: String,
    pub lrn: String,
    pub direction: String,
    pub submitted: String,
    pub status: String,
}

#[derive(Template)]
#[template(path = "trader/declarations.html")]
struct List {
    page: Page,
    rows: Vec<Row>,
    statuses: Vec<Opt>,
    search: String,
    pager: Pager,
}

/// `GET /declarations`: the party's declarations, newest first, filtered and paged.
#[tracing::instrument(name = "portal.declarations", skip_all, fields(party))]
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
    let found = dossiers::declarations(
        &client,
        person.party_id(),
        status.as_deref(),
        Some(&search),
        (page_no - 1) * PAGE_SIZE,
        PAGE_SIZE,
    )
    .await?;
    let page = Page::new(&req, &state, Some(&person), "trader-declarations-title");
    let statuses = Opt::status_filter(&page, &STATUSES, status.as_deref(), |s| page.status(s));
    let rows = found
        .items
        .iter()
        .map(|r| Row {
            href: format!("/declarations/{}", r.id),
            reference: r.reference.clone(),
            lrn: r.lrn.clone(),
            direction: direction_label(&page, &r.direction),
            submitted: page.datetime(&r.received_at),
            status: page.status(&r.status),
        })
        .collect();
    let pager = Pager::new(
        "/declarations",
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

/// A refused upload as the form shows it.
pub struct Refusal {
    pub filename: String,
    pub listing: Listing,
    pub count: usize,
}

#[derive(Template)]
#[template(path = "trader/declaration_new.html")]
struct Upload {
    page: Page,
    refusal: Option<Refusal>,
    /// A refusal of the request rather than of the document (too large, no file chosen).
    problem: Option<String>,
}

/// `GET /declarations/new`: the upload form.
#[tracing::instrument(name = "portal.declaration_form", skip_all, fields(party))]
pub async fn new_form(
    person: Person,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    trader(&person)?;
    let page = Page::new(&req, &state, Some(&person), "trader-upload-title");
    render(&Upload {
        page,
        refusal: None,
        problem: None,
    })
}

/// Largest size of a form field other than the document (the CSRF token).
const SMALL_FIELD: usize = 1024;
/// Fields the upload form has, with room to spare; more is no form of ours.
const MAX_FIELDS: usize = 8;

enum Read {
    Done(Vec<u8>),
    TooLarge,
}

async fn read_field(field: &mut actix_multipart::Field, limit: usize) -> Result<Read, PortalError> {
    let mut buf = Vec::new();
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(|e| PortalError::BadRequest(e.to_string()))?;
        if buf.len() + chunk.len() > limit {
            return Ok(Read::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Read::Done(buf))
}

/// `POST /declarations/new` (multipart/form-data: `csrf`, then the file `document`): the same
/// submission as the API's. Accepted: to the declaration's page. Refused: the form again (422)
/// with the document as numbered lines and every error beside its line.
#[tracing::instrument(name = "portal.declaration_upload", skip_all, fields(party, reference))]
pub async fn upload(
    person: Person,
    req: HttpRequest,
    mut payload: Multipart,
    state: web::Data<AppState>,
    intake_data: web::Data<Intake>,
) -> Result<HttpResponse, PortalError> {
    trader(&person)?;
    let limit = state.validator.limits.max_bytes;
    let mut csrf_ok = false;
    let mut document: Option<(String, Vec<u8>)> = None;
    let mut too_large = false;
    let mut fields = 0;
    while let Some(field) = payload.next().await {
        fields += 1;
        if fields > MAX_FIELDS {
            return Err(PortalError::BadRequest("too many form fields".into()));
        }
        let mut field = field.map_err(|e| PortalError::BadRequest(e.to_string()))?;
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "csrf" => match read_field(&mut field, SMALL_FIELD).await? {
                Read::Done(v) => {
                    person.check_csrf(&String::from_utf8_lossy(&v))?;
                    csrf_ok = true;
                }
                Read::TooLarge => return Err(PortalError::Csrf),
            },
            "document" => {
                // The token comes first in the form: no file is read without it.
                if !csrf_ok {
                    return Err(PortalError::Csrf);
                }
                let filename = field
                    .content_disposition()
                    .and_then(|cd| cd.get_filename())
                    .unwrap_or("")
                    .to_owned();
                match read_field(&mut field, limit).await? {
                    Read::Done(v) => document = Some((filename, v)),
                    Read::TooLarge => {
                        too_large = true;
                        break;
                    }
                }
            }
            _ => {
                if let Read::TooLarge = read_field(&mut field, SMALL_FIELD).await? {
                    return Err(PortalError::BadRequest("unexpected large field".into()));
                }
            }
        }
    }
    if !csrf_ok {
        return Err(PortalError::Csrf);
    }
    let page = Page::new(&req, &state, Some(&person), "trader-upload-title");
    if too_large {
        let problem = page.ta(
            "trader-upload-too-large",
            &[("limit", &(limit / 1024).to_string())],
        );
        return render_with(
            StatusCode::PAYLOAD_TOO_LARGE,
            &Upload {
                page,
                refusal: None,
                problem: Some(problem),
            },
        );
    }
    let Some((filename, bytes)) = document.filter(|(_, b)| !b.is_empty()) else {
        let problem = page.t("trader-upload-no-file");
        return render_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            &Upload {
                page,
                refusal: None,
                problem: Some(problem),
            },
        );
    };
    let body = bytes::Bytes::from(bytes);
    let result =
        intake::submit_declaration(&state, &intake_data, person.principal(), body.clone(), None)
            .await;
    let errors: Vec<(Option<u32>, Shown)> = match result {
        Ok(s) => {
            tracing::Span::current().record("reference", s.receipt.reference.as_str());
            return Ok(see_other(&format!("/declarations/{}", s.receipt.id)));
        }
        Err(e) => refusal_errors(e, &body, &state)?,
    };
    let count = errors.len();
    let listing = source::listing(&body, &errors);
    render_with(
        StatusCode::UNPROCESSABLE_ENTITY,
        &Upload {
            page,
            refusal: Some(Refusal {
                filename,
                listing,
                count,
            }),
            problem: None,
        },
    )
}

/// The errors a refusal shows, each with its line when it has one; refusals that are not the
/// document's fault (database down, a bug) are errors of the page.
fn refusal_errors(
    e: SubmitError,
    body: &[u8],
    state: &AppState,
) -> Result<Vec<(Option<u32>, Shown)>, PortalError> {
    let code = e.code();
    Ok(match e {
        SubmitError::Invalid(violations) => violations
            .iter()
            .map(|v| ((v.line > 0).then_some(v.line), Shown::from(v)))
            .collect(),
        SubmitError::Xml(x) => {
            let pos = x.position();
            vec![(
                pos.map(|p| p.line),
                Shown {
                    code: code.to_owned(),
                    message: x.to_string(),
                    path: String::new(),
                    column: pos.map_or(0, |p| p.column),
                },
            )]
        }
        SubmitError::PartyMismatch { detail } => vec![(
            None,
            Shown {
                code: code.to_owned(),
                message: detail,
                path: String::new(),
                column: 0,
            },
        )],
        SubmitError::Store(s @ StoreError::ReferenceReused { .. }) => {
            // the declarant's reference is the header's
            let path = "/Declaration/Header/Reference";
            let line = Tree::parse(body, &state.validator.limits)
                .ok()
                .and_then(|t| t.find(path).map(|n| t.position(n)));
            vec![(
                line.map(|p| p.line),
                Shown {
                    code: code.to_owned(),
                    message: s.to_string(),
                    path: path.to_owned(),
                    column: line.map_or(0, |p| p.column),
                },
            )]
        }
        SubmitError::Store(s) => return Err(s.into()),
        SubmitError::Internal(m) => return Err(PortalError::Internal(m)),
    })
}

pub struct Fact {
    pub label: String,
    pub value: String,
}

pub struct ItemView {
    pub line: i32,
    pub hs_code: String,
    pub description: String,
    pub origin: String,
    pub quantity: String,
    pub value: String,
    pub licences: Vec<(String, String)>,
}

pub struct EventView {
    pub status: String,
    pub at: String,
    pub actor: String,
    pub note: String,
}

#[derive(Template)]
#[template(path = "trader/declaration.html")]
struct Detail {
    page: Page,
    id: String,
    status: String,
    facts: Vec<Fact>,
    items: Vec<ItemView>,
    history: Vec<EventView>,
    withdrawable: bool,
}

/// `GET /declarations/{id}`: facts, items (with the licence lines they drew on), history,
/// download and withdrawal.
#[tracing::instrument(name = "portal.declaration", skip_all, fields(party))]
pub async fn detail(
    person: Person,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    trader(&person)?;
    let id = parse_id(&path)?;
    let client = state.pool.get().await?;
    let d = store::get(&client, &Scope::of(person.principal()), id)
        .await?
        .ok_or(PortalError::NotFound)?;
    let (facts, items) = dossiers::declaration_items(&client, id)
        .await?
        .ok_or(PortalError::NotFound)?;
    let s = &d.summary;
    let page = Page::new(&req, &state, Some(&person), "trader-declaration-title")
        .titled(s.reference.clone());
    let fact = |key: &str, value: String| Fact {
        label: page.t(key),
        value,
    };
    let facts = vec![
        fact("trader-col-reference", s.reference.clone()),
        fact("trader-col-lrn", s.lrn.clone()),
        fact("trader-col-direction", direction_label(&page, &s.direction)),
        fact("trader-col-status", page.status(&s.status)),
        fact("trader-declarant", s.declarant_id.clone()),
        fact("trader-exporter", facts.exporter_id.clone()),
        fact("trader-importer", facts.importer_id.clone()),
        fact("trader-export-country", s.export_country.trim().to_owned()),
        fact(
            "trader-destination-country",
            s.destination_country.trim().to_owned(),
        ),
        fact("trader-customs-office", facts.customs_office.clone()),
        fact("trader-declaration-date", page.date(&facts.issue_date)),
        fact(
            "trader-total-value",
            page.money(&s.total_value, s.currency.trim()),
        ),
        fact(
            "trader-total-gross-mass",
            format!("{} kg", page.number(&facts.total_gross_mass)),
        ),
        fact("trader-item-count", s.item_count.to_string()),
        fact("trader-col-submitted", page.datetime(&s.received_at)),
    ];
    let currency = s.currency.trim().to_owned();
    let items = items
        .iter()
        .map(|it| ItemView {
            line: it.line,
            hs_code: it.hs_code.clone(),
            description: it.description.clone(),
            origin: it.origin.clone(),
            quantity: format!("{} {}", page.number(&it.quantity), it.unit),
            value: page.money(&it.customs_value, &currency),
            licences: it
                .drawings
                .iter()
                .map(|dr| {
                    (
                        format!("/licences/{}", super::licence_path(&dr.licence_number)),
                        page.ta(
                            "trader-drawn",
                            &[
                                ("number", dr.licence_number.as_str()),
                                ("line", &dr.licence_line.to_string()),
                                ("quantity", &page.number(&dr.quantity)),
                            ],
                        ),
                    )
                })
                .collect(),
        })
        .collect();
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
    let withdrawable = Status::parse(&s.status).is_some_and(|st| st.can_become(Status::Withdrawn));
    render(&Detail {
        id: id.to_string(),
        status: page.status(&s.status),
        page,
        facts,
        items,
        history,
        withdrawable,
    })
}

/// `GET /declarations/{id}/document`: the exact bytes received.
#[tracing::instrument(name = "portal.declaration_document", skip_all, fields(party))]
pub async fn document(
    person: Person,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    trader(&person)?;
    let id = parse_id(&path)?;
    let scope = Scope::of(person.principal());
    let client = state.pool.get().await?;
    let d = store::get(&client, &scope, id)
        .await?
        .ok_or(PortalError::NotFound)?;
    let (bytes, _) = store::document(&client, &scope, id)
        .await?
        .ok_or(PortalError::NotFound)?;
    Ok(attachment(
        bytes,
        "application/xml",
        &format!("{}.xml", d.summary.reference),
    ))
}

/// `POST /declarations/{id}/withdraw`: the submitter withdraws a declaration customs has not
/// decided yet (workflow `customs::withdraw`).
#[tracing::instrument(name = "portal.declaration_withdraw", skip_all, fields(party))]
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
        store::get(&client, &Scope::of(person.principal()), id)
            .await?
            .ok_or(PortalError::NotFound)?;
    }
    crate::customs::withdraw(&state.pool, id, person.party_id()).await?;
    Ok(see_other(&format!("/declarations/{id}")))
}
