//! `GET /console/partners`: every partner window with its endpoint, pinned CA, traffic, last
//! delivery and failure; `POST /console/partners/{country}/ping`: a signed test message
//! (`exchange::ping`), shown with its round trip or its exact failure.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::operator;
use crate::api::AppState;
use crate::console::{fingerprint, not_after};
use crate::exchange::{keys, ping};
use crate::portal::page::{render, Page};
use crate::portal::session::Person;
use crate::portal::PortalError;
use crate::store::console as store;

/// How long a ping waits for its receipt.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

pub struct PartnerView {
    pub country: String,
    pub endpoint: String,
    pub profile: String,
    pub ca_subject: String,
    pub ca_fingerprint: String,
    pub ca_expires: String,
    pub ca_expiring: bool,
    pub documents: String,
    pub sent_types: String,
    pub received_types: String,
    pub sent: i64,
    pub received: i64,
    pub waiting: i64,
    pub dead_letters: i64,
    pub last_delivery: String,
    pub last_failure: Option<(String, String)>,
}

pub struct PingView {
    pub country: String,
    pub ok: bool,
    pub text: String,
}

#[derive(Template)]
#[template(path = "console/partners.html")]
struct PartnersPage {
    page: Page,
    configured: bool,
    own_country: String,
    own_subject: String,
    own_fingerprint: String,
    own_expires: String,
    partners: Vec<PartnerView>,
    ping: Option<PingView>,
}

async fn page_for(
    req: &HttpRequest,
    person: &Person,
    state: &AppState,
    ping: Option<PingView>,
) -> Result<PartnersPage, PortalError> {
    let page = Page::new(req, state, Some(person), "console-partners-title");
    let client = state.pool.get().await?;
    let traffic = store::partner_traffic(&client).await?;
    let warn = chrono::Duration::days(i64::from(state.settings.console.certificate_warning_days));
    let now = chrono::Utc::now();
    let never = page.t("console-never");
    let Some(ex) = state.exchange.as_deref() else {
        return Ok(PartnersPage {
            page,
            configured: false,
            own_country: state.settings.country.clone(),
            own_subject: String::new(),
            own_fingerprint: String::new(),
            own_expires: String::new(),
            partners: Vec::new(),
            ping,
        });
    };
    let mut partners = Vec::new();
    for country in ex.partners.countries() {
        let Some(p) = ex.partners.get(country) else {
            continue;
        };
        let t = traffic.get(country).cloned().unwrap_or_default();
        let end = not_after(&p.ca);
        partners.push(PartnerView {
            country: country.to_owned(),
            endpoint: p.endpoint.clone(),
            profile: format!("{:?}", p.profile).to_lowercase(),
            ca_subject: keys::subject_line(&p.ca),
            ca_fingerprint: fingerprint(&p.ca),
            ca_expires: end.map(|e| page.datetime(&e)).unwrap_or_default(),
            ca_expiring: end.is_some_and(|e| e - now <= warn),
            documents: p.documents.join(", "),
            sent_types: t.sent_types.join(", "),
            received_types: t.received_types.join(", "),
            sent: t.sent,
            received: t.received,
            waiting: t.waiting,
            dead_letters: t.dead_letters,
            last_delivery: t
                .last_delivery
                .map(|d| page.datetime(&d))
                .unwrap_or_else(|| never.clone()),
            last_failure: t.last_failure.map(|(at, e)| (page.datetime(&at), e)),
        });
    }
    partners.sort_by(|a, b| a.country.cmp(&b.country));
    let own = &ex.identity.cert;
    Ok(PartnersPage {
        own_country: ex.country.clone(),
        own_subject: keys::subject_line(own),
        own_fingerprint: fingerprint(own),
        own_expires: not_after(own)
            .map(|e| page.datetime(&e))
            .unwrap_or_default(),
        page,
        configured: true,
        partners,
        ping,
    })
}

#[tracing::instrument(name = "portal.console_partners", skip_all, fields(party))]
pub async fn list(
    req: HttpRequest,
    person: Person,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    operator(&person)?;
    render(&page_for(&req, &person, &state, None).await?)
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

#[tracing::instrument(name = "portal.console_ping", skip_all, fields(party, country))]
pub async fn ping(
    req: HttpRequest,
    person: Person,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    operator(&person)?;
    person.check_csrf(&form.csrf)?;
    let country = path.into_inner();
    tracing::Span::current().record("country", country.as_str());
    let ex = state.exchange.as_deref().ok_or(PortalError::NotFound)?;
    if ex.partners.get(&country).is_none() {
        return Err(PortalError::NotFound);
    }
    let lang_page = Page::new(&req, &state, Some(&person), "console-partners-title");
    let result = ping::ping(ex, &state.validator.limits, &country, PING_TIMEOUT).await;
    let view = match &result {
        Ok(pong) => PingView {
            country: country.clone(),
            ok: true,
            text: lang_page.ta(
                "console-ping-ok",
                &[
                    ("country", &country),
                    ("ms", &pong.round_trip.as_millis().to_string()),
                    ("receipt", &pong.receipt_id.to_string()),
                ],
            ),
        },
        Err(e) => PingView {
            country: country.clone(),
            ok: false,
            text: lang_page.ta(
                "console-ping-failed",
                &[("country", &country), ("error", &e.to_string())],
            ),
        },
    };
    let client = state.pool.get().await?;
    crate::store::audit::append(
        &client,
        person.party_id(),
        "exchange.ping",
        &country,
        &match &result {
            Ok(p) => serde_json::json!({
                "message_id": p.message_id, "round_trip_ms": p.round_trip.as_millis() as u64,
            }),
            Err(e) => serde_json::json!({ "error": e.to_string() }),
        },
    )
    .await?;
    drop(client);
    render(&page_for(&req, &person, &state, Some(view)).await?)
}
