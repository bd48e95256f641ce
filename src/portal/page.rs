//! What every portal page shows around its content: language, title, the person and their
//! navigation, the CSRF token for its forms; and rendering a template into a response.

use actix_web::{http::header, HttpRequest, HttpResponse};
use askama::Template;

use super::i18n::Lang;
use super::session::Person;
use super::PortalError;
use crate::api::AppState;
use crate::domain::party::Role;

/// A link of the navigation bar.
pub struct NavItem {
    pub href: &'static str,
    pub label: String,
    /// This page is under the link (`aria-current="page"`).
    pub current: bool,
}

/// The person shown in the header.
pub struct User {
    pub name: String,
    pub party_id: String,
    /// The role's name in the page's language.
    pub role: String,
}

/// The frame of a page; every page template has it as its `page` field.
pub struct Page {
    pub lang: Lang,
    /// The page's own title, already in `lang`.
    pub title: String,
    pub user: Option<User>,
    /// The session's CSRF token (empty without a session).
    pub csrf: String,
    /// This page's path and query, for the language switch to come back to.
    pub here: String,
    pub nav: Vec<NavItem>,
    /// The window's time zone, for times shown.
    pub offset: chrono::FixedOffset,
    /// The stylesheet's address (content-hashed).
    pub css: &'static str,
}

/// The default language of this window.
pub fn default_lang(state: &AppState) -> Lang {
    match state.settings.portal.default_language.as_deref() {
        Some(l) => Lang::parse(l).unwrap_or(Lang::Vi),
        None if state.settings.country == "VN" => Lang::Vi,
        None => Lang::En,
    }
}

fn nav_for(role: Role) -> &'static [(&'static str, &'static str)] {
    match role {
        Role::Enterprise => &[
            ("/", "nav-home"),
            ("/declarations", "nav-declarations"),
            ("/applications", "nav-applications"),
            ("/fees", "fees-nav"),
            ("/licences", "nav-licences"),
            ("/certificates", "nav-certificates"),
            ("/profile", "nav-profile"),
        ],
        Role::Ministry => &[
            ("/", "nav-home"),
            ("/inbox", "nav-inbox"),
            ("/agency/licences", "nav-agency-licences"),
        ],
        Role::Customs => &[
            ("/", "nav-home"),
            ("/customs/declarations", "nav-customs-declarations"),
            ("/customs/partner-documents", "nav-partner-documents"),
        ],
        Role::Admin => &[
            ("/", "nav-home"),
            ("/console", "console-nav-overview"),
            ("/console/partners", "console-nav-partners"),
            ("/console/messages", "console-nav-messages"),
            ("/console/routing", "console-nav-routing"),
            ("/console/parties", "console-nav-parties"),
            ("/console/audit", "console-nav-audit"),
            ("/console/payments", "console-nav-payments"),
        ],
        Role::Partner => &[("/", "nav-home")],
    }
}

pub fn role_key(role: Role) -> &'static str {
    match role {
        Role::Enterprise => "role-enterprise",
        Role::Ministry => "role-ministry",
        Role::Customs => "role-customs",
        Role::Partner => "role-partner",
        Role::Admin => "role-admin",
    }
}

impl Page {
    /// A page for `person` (or nobody) titled by the message `title_key`.
    pub fn new(
        req: &HttpRequest,
        state: &AppState,
        person: Option<&Person>,
        title_key: &str,
    ) -> Page {
        let lang = super::i18n::negotiate(req, default_lang(state));
        let path = req.path();
        let nav = person
            .map(|p| {
                nav_for(p.role())
                    .iter()
                    .map(|(href, key)| NavItem {
                        href,
                        label: lang.t(key),
                        // A section's start page is current only on itself.
                        current: if *href == "/" || *href == "/console" {
                            path == *href
                        } else {
                            path == *href || path.starts_with(&format!("{href}/"))
                        },
                    })
                    .collect()
            })
            .unwrap_or_default();
        Page {
            lang,
            title: lang.t(title_key),
            user: person.map(|p| User {
                name: p.session.name.clone(),
                party_id: p.party_id().to_owned(),
                role: lang.t(role_key(p.role())),
            }),
            csrf: person.map(|p| p.session.csrf.clone()).unwrap_or_default(),
            here: req
                .uri()
                .path_and_query()
                .map_or("/".into(), |p| p.as_str().to_owned()),
            nav,
            offset: state.calendar_offset(),
            css: super::assets::stylesheet(),
        }
    }

    /// Replaces the title (e.g. with the dossier's reference).
    pub fn titled(mut self, title: impl Into<String>) -> Page {
        self.title = title.into();
        self
    }

    pub fn t(&self, key: &str) -> String {
        self.lang.t(key)
    }

    /// `t` with arguments: `page.ta("key", &[("n", "3")])`.
    pub fn ta(&self, key: &str, args: &[(&str, &str)]) -> String {
        let args: Vec<(&str, String)> = args.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        self.lang.t_args(key, &args)
    }

    pub fn date(&self, d: &chrono::NaiveDate) -> String {
        self.lang.date(*d)
    }

    pub fn datetime(&self, t: &chrono::DateTime<chrono::Utc>) -> String {
        self.lang.datetime(*t, self.offset)
    }

    pub fn number(&self, n: &rust_decimal::Decimal) -> String {
        self.lang.number(n)
    }

    pub fn vnd(&self, amount: &i64) -> String {
        self.lang.vnd(*amount)
    }

    pub fn money(&self, amount: &rust_decimal::Decimal, currency: &str) -> String {
        self.lang.money(amount, currency)
    }

    /// The name of a status in the page's language (`status-<status>` in the catalogues).
    pub fn status(&self, status: &str) -> String {
        self.lang.t(&format!("status-{}", status.replace('_', "-")))
    }
}

/// A rendered page: `200`, HTML, never cached (pages show people's dossiers).
pub fn render<T: Template>(t: &T) -> Result<HttpResponse, PortalError> {
    render_with(actix_web::http::StatusCode::OK, t)
}

/// A rendered page with another status (a form shown again with its errors is `422`).
pub fn render_with<T: Template>(
    status: actix_web::http::StatusCode,
    t: &T,
) -> Result<HttpResponse, PortalError> {
    let body = t
        .render()
        .map_err(|e| PortalError::Internal(format!("template: {e}")))?;
    Ok(HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
}

/// `303 See Other` to `to`: where a form's POST goes when it succeeded.
pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

/// A document to download: its exact bytes, as an attachment named `filename`.
pub fn attachment(bytes: Vec<u8>, content_type: &'static str, filename: &str) -> HttpResponse {
    // references and numbers are [A-Za-z0-9/._-]: keep only what is safe in a quoted name
    let safe: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{safe}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(bytes)
}
