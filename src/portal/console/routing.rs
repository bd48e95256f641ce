//! `GET /console/routing`: the routing table's versions, the difference between two of them
//! (`console::routing_diff`); `POST /console/routing` (a TOML text) and `POST
//! /console/routing/file` (a TOML file): a new version, read and validated by
//! `TableSpec::from_toml` (the checks of `PUT /api/v1/admin/routing-rules`) and stored by
//! `store::routing::replace`; every problem is shown beside the rule it names.

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use futures_util::StreamExt;
use serde::Deserialize;

use super::operator;
use crate::api::AppState;
use crate::console::{routing_diff, Change};
use crate::portal::forms::FieldErrors;
use crate::portal::page::{render, render_with, see_other, Page};
use crate::portal::session::Person;
use crate::portal::PortalError;
use crate::routing::{RoutingError, TableSpec};
use crate::store::routing as store;

/// Largest routing table accepted from the form (the shipped one is about 10 KB).
const MAX_TABLE: usize = 1024 * 1024;

pub struct VersionView {
    pub version: i32,
    pub rules: i32,
    pub at: String,
    pub by: String,
    pub note: String,
    pub current: bool,
}

pub struct DiffRow {
    pub rule: String,
    pub change: String,
    pub field: String,
    pub before: String,
    pub after: String,
}

pub struct RuleProblem {
    pub rule: String,
    pub message: String,
}

#[derive(Template)]
#[template(path = "console/routing.html")]
struct RoutingPage {
    page: Page,
    versions: Vec<VersionView>,
    a: i32,
    b: i32,
    diff: Option<Vec<DiffRow>>,
    toml: String,
    note: String,
    errors: FieldErrors,
    problems: Vec<RuleProblem>,
    saved: Option<i32>,
}

#[derive(Deserialize)]
pub struct Query {
    a: Option<i32>,
    b: Option<i32>,
    saved: Option<i32>,
}

async fn page_for(
    req: &HttpRequest,
    person: &Person,
    state: &AppState,
    a: Option<i32>,
    b: Option<i32>,
) -> Result<RoutingPage, PortalError> {
    let page = Page::new(req, state, Some(person), "console-routing-title");
    let client = state.pool.get().await?;
    let versions = store::versions(&client).await?;
    let latest = versions.first().map(|v| v.version).unwrap_or(0);
    let (a, b) = match (a, b) {
        (Some(a), Some(b)) => (a, b),
        _ => (latest.saturating_sub(1).max(1), latest),
    };
    let diff = if a != b {
        match (
            store::load(&client, a).await?,
            store::load(&client, b).await?,
        ) {
            (Some(x), Some(y)) => Some(
                routing_diff(&x.spec, &y.spec)
                    .into_iter()
                    .map(|c| DiffRow {
                        rule: c.rule,
                        change: page.t(match c.change {
                            Change::Added => "console-routing-added",
                            Change::Removed => "console-routing-removed",
                            Change::Changed => "console-routing-changed",
                        }),
                        field: c.field.unwrap_or_default(),
                        before: c.before.unwrap_or_default(),
                        after: c.after.unwrap_or_default(),
                    })
                    .collect(),
            ),
            _ => return Err(PortalError::NotFound),
        }
    } else {
        None
    };
    Ok(RoutingPage {
        versions: versions
            .iter()
            .map(|v| VersionView {
                version: v.version,
                rules: v.rule_count,
                at: page.datetime(&v.created_at),
                by: v.created_by.clone(),
                note: v.note.clone().unwrap_or_default(),
                current: v.version == latest,
            })
            .collect(),
        page,
        a,
        b,
        diff,
        toml: String::new(),
        note: String::new(),
        errors: FieldErrors::new(),
        problems: Vec::new(),
        saved: None,
    })
}

#[tracing::instrument(name = "portal.console_routing", skip_all, fields(party))]
pub async fn versions(
    req: HttpRequest,
    person: Person,
    q: web::Query<Query>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    operator(&person)?;
    let mut p = page_for(&req, &person, &state, q.a, q.b).await?;
    p.saved = q.saved;
    render(&p)
}

#[derive(Deserialize)]
pub struct TextForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    toml: String,
    #[serde(default)]
    note: String,
}

#[tracing::instrument(name = "portal.console_routing_upload", skip_all, fields(party))]
pub async fn upload_text(
    req: HttpRequest,
    person: Person,
    form: web::Form<TextForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    operator(&person)?;
    person.check_csrf(&form.csrf)?;
    let form = form.into_inner();
    install(&req, &person, &state, form.toml, form.note).await
}

#[tracing::instrument(name = "portal.console_routing_file", skip_all, fields(party))]
pub async fn upload_file(
    req: HttpRequest,
    person: Person,
    mut payload: Multipart,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    operator(&person)?;
    let (mut csrf_ok, mut text, mut note) = (false, None, String::new());
    let mut fields = 0;
    while let Some(field) = payload.next().await {
        fields += 1;
        if fields > 8 {
            return Err(PortalError::BadRequest("too many form fields".into()));
        }
        let mut field = field.map_err(|e| PortalError::BadRequest(e.to_string()))?;
        let name = field.name().unwrap_or_default().to_owned();
        let mut buf = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|e| PortalError::BadRequest(e.to_string()))?;
            if buf.len() + chunk.len() > MAX_TABLE {
                return Err(PortalError::BadRequest("the table is too large".into()));
            }
            buf.extend_from_slice(&chunk);
        }
        match name.as_str() {
            "csrf" => {
                person.check_csrf(&String::from_utf8_lossy(&buf))?;
                csrf_ok = true;
            }
            // The token comes first in the form: no file is used without it.
            "file" if csrf_ok => text = Some(buf),
            "note" => note = String::from_utf8_lossy(&buf).into_owned(),
            _ => {}
        }
    }
    if !csrf_ok {
        return Err(PortalError::Csrf);
    }
    let text = match text.map(String::from_utf8) {
        Some(Ok(t)) => t,
        Some(Err(_)) => "\u{FFFD}".into(),
        None => String::new(),
    };
    install(&req, &person, &state, text, note).await
}

async fn install(
    req: &HttpRequest,
    person: &Person,
    state: &AppState,
    text: String,
    note: String,
) -> Result<HttpResponse, PortalError> {
    let mut errors = FieldErrors::new();
    let mut problems = Vec::new();
    let spec = if text.trim().is_empty() {
        errors.add(
            "toml",
            Page::new(req, state, Some(person), "console-routing-title").t("console-routing-empty"),
        );
        None
    } else {
        match TableSpec::from_toml(&text) {
            Ok(spec) => Some(spec),
            Err(RoutingError::Syntax(m)) => {
                errors.add("toml", m);
                None
            }
            Err(RoutingError::Invalid(list)) => {
                let n = list.len();
                problems = list
                    .into_iter()
                    .map(|r| RuleProblem {
                        rule: r.rule.unwrap_or_else(|| "—".into()),
                        message: r.message,
                    })
                    .collect();
                errors.add(
                    "toml",
                    Page::new(req, state, Some(person), "console-routing-title")
                        .ta("console-routing-invalid", &[("count", &n.to_string())]),
                );
                None
            }
        }
    };
    let Some(spec) = spec else {
        let mut p = page_for(req, person, state, None, None).await?;
        p.toml = text;
        p.note = note;
        p.errors = errors;
        p.problems = problems;
        return render_with(StatusCode::UNPROCESSABLE_ENTITY, &p);
    };
    let note = note.trim();
    let mut client = state.pool.get().await?;
    let version = store::replace(
        &mut client,
        &spec,
        person.party_id(),
        (!note.is_empty()).then_some(note),
    )
    .await?;
    Ok(see_other(&format!("/console/routing?saved={version}")))
}
