//! The trader's pages (role `Enterprise`): declarations (list, upload, detail, withdrawal),
//! licence applications (list, the application form, detail, supplement, withdrawal), fees
//! (list, "Pay now", the return from the payment platform, e-receipts), the
//! licences it holds and its certificates of origin, with downloads of the exact documents and
//! signatures. An enterprise sees only its own dossiers, with the API's scope; any other id is
//! answered 404. Every action calls the workflow the API calls.

mod applications;
mod apply;
mod declarations;
mod fees;
mod holdings;
mod source;

use actix_web::web;
use serde::Deserialize;

use super::page::{attachment, Page};
use super::{Person, PortalError};
use crate::domain::party::Role;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/declarations", web::get().to(declarations::list))
        .route("/declarations/new", web::get().to(declarations::new_form))
        .route("/declarations/new", web::post().to(declarations::upload))
        .route("/declarations/{id}", web::get().to(declarations::detail))
        .route(
            "/declarations/{id}/document",
            web::get().to(declarations::document),
        )
        .route(
            "/declarations/{id}/withdraw",
            web::post().to(declarations::withdraw),
        )
        .route("/applications", web::get().to(applications::list))
        .route("/applications/new", web::get().to(apply::form))
        .route("/applications/new", web::post().to(apply::post))
        .route("/applications/{id}", web::get().to(applications::detail))
        .route(
            "/applications/{id}/supplement",
            web::post().to(applications::supplement),
        )
        .route(
            "/applications/{id}/withdraw",
            web::post().to(applications::withdraw),
        )
        .route("/applications/{id}/pay", web::post().to(fees::pay))
        .route("/fees", web::get().to(fees::list))
        .route(
            "/fees/receipt-certificate.pem",
            web::get().to(fees::receipt_certificate),
        )
        .route(
            "/fees/{reference}/receipt.xml",
            web::get().to(fees::receipt),
        )
        .route(
            "/fees/{reference}/receipt.p7s",
            web::get().to(fees::receipt_signature),
        )
        .route("/payments/return", web::get().to(fees::payment_return))
        .route("/licences", web::get().to(holdings::licences))
        .route("/licences/{number}", web::get().to(holdings::licence))
        .route(
            "/licences/{number}/document",
            web::get().to(holdings::licence_document),
        )
        .route(
            "/licences/{number}/signature",
            web::get().to(holdings::licence_signature),
        )
        .route("/certificates", web::get().to(holdings::certificates))
        .route(
            "/certificates/{reference}",
            web::get().to(holdings::certificate),
        )
        .route(
            "/certificates/{reference}/document",
            web::get().to(holdings::certificate_document),
        )
        .route(
            "/certificates/{reference}/signature",
            web::get().to(holdings::certificate_signature),
        );
}

/// Rows per page of the lists.
pub const PAGE_SIZE: i64 = 20;

/// The person, if it is an enterprise.
fn trader(person: &Person) -> Result<(), PortalError> {
    person.require(&[Role::Enterprise])
}

/// A dossier id from the path: a malformed one names nothing, the same answer as an unknown one.
fn parse_id(raw: &str) -> Result<uuid::Uuid, PortalError> {
    uuid::Uuid::parse_str(raw).map_err(|_| PortalError::NotFound)
}

/// A form that carries nothing but its CSRF token.
#[derive(Deserialize)]
pub struct CsrfOnly {
    /// Missing is refused as a wrong token (403), not as a malformed form.
    #[serde(default)]
    pub csrf: String,
}

/// The query of a list page: status filter, search and page number.
#[derive(Deserialize, Default)]
pub struct ListQuery {
    pub status: Option<String>,
    pub q: Option<String>,
    pub page: Option<i64>,
}

impl ListQuery {
    /// The status filter, if it names one of `known` (anything else is no filter).
    pub fn status_in(&self, known: &[&str]) -> Option<String> {
        self.status
            .as_deref()
            .filter(|s| known.contains(s))
            .map(str::to_owned)
    }

    pub fn search(&self) -> String {
        self.q
            .as_deref()
            .unwrap_or("")
            .trim()
            .chars()
            .take(100)
            .collect()
    }

    pub fn page(&self) -> i64 {
        self.page.unwrap_or(1).clamp(1, 1_000_000)
    }
}

/// An option of a `<select>`.
pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

impl Opt {
    pub fn new(value: impl Into<String>, label: impl Into<String>, current: &str) -> Opt {
        let value = value.into();
        Opt {
            selected: value == current,
            label: label.into(),
            value,
        }
    }

    /// A list's status filter: "all" first, then each of `statuses` named by `label`, the
    /// one in force (`current`, none for all) selected.
    pub fn status_filter(
        page: &Page,
        statuses: &[&str],
        current: Option<&str>,
        label: impl Fn(&str) -> String,
    ) -> Vec<Opt> {
        let current = current.unwrap_or_default();
        std::iter::once(Opt::new("", page.t("trader-filter-all"), current))
            .chain(statuses.iter().map(|s| Opt::new(*s, label(s), current)))
            .collect()
    }
}

/// The previous/next links of a list, keeping its filters.
pub struct Pager {
    pub page: i64,
    pub pages: i64,
    pub total: i64,
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl Pager {
    pub fn new(base: &str, status: Option<&str>, search: &str, page: i64, total: i64) -> Pager {
        let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
        let link = |p: i64| {
            let mut q: Vec<(&str, String)> = Vec::new();
            if let Some(s) = status {
                q.push(("status", s.to_owned()));
            }
            if !search.is_empty() {
                q.push(("q", search.to_owned()));
            }
            q.push(("page", p.to_string()));
            format!(
                "{base}?{}",
                serde_urlencoded::to_string(&q).unwrap_or_default()
            )
        };
        Pager {
            page,
            pages,
            total,
            prev: (page > 1).then(|| link((page - 1).min(pages))),
            next: (page < pages).then(|| link(page + 1)),
        }
    }
}

/// A working-time limit in the page's words: working days and hours of the window's calendar.
fn time_limit(page: &super::Page, minutes: i32, day_minutes: u32) -> String {
    let day = i64::from(day_minutes.max(1));
    let m = i64::from(minutes.max(0));
    let (days, hours) = (m / day, (m % day) / 60);
    if hours == 0 {
        page.ta("trader-time-limit-days", &[("days", &days.to_string())])
    } else {
        page.ta(
            "trader-time-limit-days-hours",
            &[("days", &days.to_string()), ("hours", &hours.to_string())],
        )
    }
}

/// A licence number as it travels in a path segment (`/` encoded).
pub fn licence_path(number: &str) -> String {
    number.replace('/', "%2F")
}
