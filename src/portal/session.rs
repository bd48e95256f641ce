//! Who is on a portal page: the `Person` extractor (a live session from the `nsw_session`
//! cookie), its CSRF check, and the cookies the portal sets.

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;

use super::PortalError;
use crate::api::AppState;
use crate::domain::party::{Principal, Role};
use crate::store::sessions::{self, Session};

/// Name of the session cookie: 32 random bytes, base64url; the server keeps only its SHA-256.
pub const COOKIE: &str = "nsw_session";
/// Name of the cookie that carries the log-in form's CSRF token (double submit: there is no
/// session yet to keep it in).
pub const LOGIN_CSRF_COOKIE: &str = "nsw_login_csrf";

/// A person with a live session.
#[derive(Debug, Clone)]
pub struct Person {
    pub session: Session,
}

impl Person {
    pub fn principal(&self) -> &Principal {
        &self.session.principal
    }

    pub fn party_id(&self) -> &str {
        &self.session.principal.party_id
    }

    pub fn role(&self) -> Role {
        self.session.principal.role
    }

    /// The agency of a ministry officer.
    pub fn agency(&self) -> Result<&str, PortalError> {
        self.session
            .principal
            .agency
            .as_deref()
            .ok_or(PortalError::Forbidden)
    }

    /// Refuses a person whose role is not among `allowed`.
    pub fn require(&self, allowed: &[Role]) -> Result<(), PortalError> {
        if allowed.contains(&self.role()) {
            Ok(())
        } else {
            Err(PortalError::Forbidden)
        }
    }

    /// Refuses a form whose `csrf` field is not this session's token (constant-time compare).
    pub fn check_csrf(&self, given: &str) -> Result<(), PortalError> {
        if same_secret(given, &self.session.csrf) {
            Ok(())
        } else {
            Err(PortalError::Csrf)
        }
    }
}

/// Constant-time equality of two secrets.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && !a.is_empty() && openssl::memcmp::eq(a.as_bytes(), b.as_bytes())
}

/// Where a login should send the person back to: this request's path and query, if it is a
/// page (a form's POST goes back to the page instead).
fn next_of(req: &HttpRequest) -> String {
    if req.method() == actix_web::http::Method::GET {
        req.uri()
            .path_and_query()
            .map_or("/".into(), |p| p.as_str().to_owned())
    } else {
        "/".into()
    }
}

/// A local path to go back to after a log-in or a language switch; anything else is `/`, so
/// no link can send a person to another site.
pub fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && !p.chars().any(char::is_control) =>
        {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// The client's address as the socket gives it (a forwarded-for header is not trusted: any
/// client can write one).
pub fn address_of(req: &HttpRequest) -> String {
    req.peer_addr()
        .map_or_else(|| "unknown".into(), |a| a.ip().to_string())
}

/// The live session of a request, if any.
pub async fn current(req: &HttpRequest, state: &AppState) -> Result<Option<Person>, PortalError> {
    let Some(cookie) = req.cookie(COOKIE) else {
        return Ok(None);
    };
    let client = state.pool.get().await?;
    let found = sessions::find(
        &client,
        cookie.value(),
        state.settings.portal.session_idle_minutes,
    )
    .await?;
    Ok(found.map(|session| Person { session }))
}

impl FromRequest for Person {
    type Error = PortalError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| PortalError::Internal("no app state".into()))?;
            let person =
                current(&req, &state)
                    .await?
                    .ok_or_else(|| PortalError::LoginRequired {
                        next: next_of(&req),
                    })?;
            tracing::Span::current().record("party", person.party_id());
            Ok(person)
        })
    }
}

/// The session cookie: `HttpOnly`, `SameSite=Strict`, path `/`, `Secure` when configured;
/// no `Max-Age`, so it ends with the browser too (the server ends it when idle).
pub fn session_cookie(secret: String, secure: bool) -> Cookie<'static> {
    Cookie::build(COOKIE, secret)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .finish()
}

/// A cookie that tells the browser to forget `name`.
pub fn removal(name: &'static str, secure: bool) -> Cookie<'static> {
    Cookie::build(name, "")
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(CookieDuration::ZERO)
        .finish()
}

/// The log-in form's CSRF cookie (lives for one hour).
pub fn login_csrf_cookie(token: String, secure: bool) -> Cookie<'static> {
    Cookie::build(LOGIN_CSRF_COOKIE, token)
        .path("/login")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(CookieDuration::hours(1))
        .finish()
}
