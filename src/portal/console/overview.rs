//! `GET /console`: the alerts (`crate::console::alerts`) and links to the console's pages.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::operator;
use crate::api::AppState;
use crate::console::{self, AlertKind};
use crate::portal::officer::working_time;
use crate::portal::page::{render, Page};
use crate::portal::session::Person;
use crate::portal::PortalError;

pub struct Shown {
    pub kind: &'static str,
    pub title: String,
    pub subject: String,
    pub text: String,
    pub link: Option<String>,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct Overview {
    page: Page,
    alerts: Vec<Shown>,
}

#[tracing::instrument(name = "portal.console", skip_all, fields(party))]
pub async fn overview(
    req: HttpRequest,
    person: Person,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    operator(&person)?;
    let page = Page::new(&req, &state, Some(&person), "console-title");
    let day = state.calendar.working_day_minutes();
    let alerts = console::alerts(&state)
        .await?
        .into_iter()
        .map(|a| {
            let when = page.datetime(&a.at);
            let text = match a.kind {
                AlertKind::CertificateExpiring => page.ta(
                    "console-alert-certificate-text",
                    &[("owner", &a.detail), ("date", &when)],
                ),
                AlertKind::DeadLetter => page.ta(
                    "console-alert-dead-letter-text",
                    &[("detail", &a.detail), ("date", &when)],
                ),
                AlertKind::PartnerFailing => page.ta(
                    "console-alert-partner-text",
                    &[("error", &a.detail), ("date", &when)],
                ),
                AlertKind::ReconciliationFailed => page.ta(
                    "console-alert-reconciliation-failed-text",
                    &[("error", &a.detail), ("date", &when)],
                ),
                AlertKind::ReconciliationMismatches => page.ta(
                    "console-alert-reconciliation-mismatches-text",
                    &[("count", &a.detail), ("date", &when)],
                ),
                AlertKind::ApplicationOverdue => page.ta(
                    "console-alert-overdue-text",
                    &[
                        ("agency", &a.detail),
                        (
                            "time",
                            &working_time(page.lang, a.overdue_secs.unwrap_or(0), day),
                        ),
                        ("date", &when),
                    ],
                ),
            };
            Shown {
                kind: a.kind.as_str(),
                title: page.t(&format!(
                    "console-alert-{}",
                    a.kind.as_str().replace('_', "-")
                )),
                subject: a.subject,
                text,
                link: a.link,
            }
        })
        .collect();
    render(&Overview { page, alerts })
}
