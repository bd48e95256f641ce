//! The operator console (`/console`, role `admin`): alerts, partner windows and ping, message
//! search and dead-letter requeue, routing table versions, parties and tokens, the audit
//! chain check, payments (reconciliation with the payment platform, payment alerts).
//! Server-rendered like every portal page; each change goes through the store or workflow
//! function its API endpoint uses (or, where the API has none, one in `store::console`),
//! audited. See docs/portal.md, "Operator console".

pub mod audit;
pub mod messages;
pub mod overview;
pub mod parties;
pub mod partners;
pub mod payments;
pub mod routing;

use actix_web::web;
use chrono::{DateTime, NaiveDate, Utc};

use super::i18n::Lang;
use super::session::Person;
use super::PortalError;
use crate::domain::party::Role;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/console", web::get().to(overview::overview))
        .route("/console/partners", web::get().to(partners::list))
        .route(
            "/console/partners/{country}/ping",
            web::post().to(partners::ping),
        )
        .route("/console/messages", web::get().to(messages::search))
        .route(
            "/console/messages/out/{id}",
            web::get().to(messages::outgoing),
        )
        .route(
            "/console/messages/out/{id}/requeue",
            web::post().to(messages::requeue),
        )
        .route(
            "/console/messages/in/{id}",
            web::get().to(messages::incoming),
        )
        .route("/console/routing", web::get().to(routing::versions))
        .route("/console/routing", web::post().to(routing::upload_text))
        .route(
            "/console/routing/file",
            web::post().to(routing::upload_file),
        )
        .route("/console/parties", web::get().to(parties::list))
        .route("/console/parties", web::post().to(parties::add))
        .route("/console/parties/{id}", web::get().to(parties::show))
        .route(
            "/console/parties/{id}/password",
            web::post().to(parties::password),
        )
        .route(
            "/console/parties/{id}/tokens",
            web::post().to(parties::issue),
        )
        .route(
            "/console/parties/{id}/tokens/{token}/revoke",
            web::post().to(parties::revoke),
        )
        .route(
            "/console/parties/{id}/deactivate",
            web::post().to(parties::deactivate),
        )
        .route("/console/audit", web::get().to(audit::audit))
        .route("/console/payments", web::get().to(payments::overview))
        .route(
            "/console/payments/reconciliations",
            web::post().to(payments::run),
        )
        .route(
            "/console/payments/reconciliations/{id}",
            web::get().to(payments::show),
        );
}

/// Refuses anyone but an operator.
pub fn operator(person: &Person) -> Result<(), PortalError> {
    person.require(&[Role::Admin])
}

/// A select option.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

impl Choice {
    pub fn list(
        values: &[&str],
        selected: Option<&str>,
        label: impl Fn(&str) -> String,
    ) -> Vec<Choice> {
        values
            .iter()
            .map(|v| Choice {
                value: (*v).to_owned(),
                label: label(v),
                selected: selected == Some(*v),
            })
            .collect()
    }
}

/// Previous and next links of a list.
pub struct Pager {
    pub page: i64,
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl Pager {
    /// `base` is the list's path with its filters (`?` included), without `page`.
    pub fn new(base: &str, page: i64, has_next: bool) -> Pager {
        let link = |p: i64| format!("{base}page={p}");
        Pager {
            page,
            prev: (page > 1).then(|| link(page - 1)),
            next: has_next.then(|| link(page + 1)),
        }
    }
}

/// A form's optional text: trimmed, empty as none.
pub fn opt(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A local date of the window (`2026-11-30`) as the UTC instant its day starts.
pub fn day_start(s: &str, offset: chrono::FixedOffset) -> Option<DateTime<Utc>> {
    let d = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()?;
    let local = d
        .and_hms_opt(0, 0, 0)?
        .and_local_timezone(offset)
        .single()?;
    Some(local.with_timezone(&Utc))
}

/// A message status in the page's language (`console-status-<status>`).
pub fn status_name(lang: Lang, status: &str) -> String {
    lang.t(&format!("console-status-{}", status.replace('_', "-")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_starts_at_local_midnight() {
        let hcm = chrono::FixedOffset::east_opt(7 * 3600).unwrap();
        let t = day_start("2026-11-30", hcm).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-29T17:00:00+00:00");
        assert!(day_start("30/11/2026", hcm).is_none());
    }

    #[test]
    fn the_pager_links_keep_the_filters() {
        let p = Pager::new("/console/messages?status=dead_letter&", 2, true);
        assert_eq!(
            p.prev.as_deref(),
            Some("/console/messages?status=dead_letter&page=1")
        );
        assert_eq!(
            p.next.as_deref(),
            Some("/console/messages?status=dead_letter&page=3")
        );
        assert!(Pager::new("/x?", 1, false).prev.is_none());
    }
}
