//! Log-in, log-out, the language switch, the home page and the trader's profile (name and
//! address, which documents the portal writes for the trader carry).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::forms::FieldErrors;
use super::i18n::{self, Lang};
use super::page::{render, render_with, see_other, Page};
use super::session::{self, Person};
use super::PortalError;
use crate::api::AppState;
use crate::domain::party::Role;
use crate::store::sessions;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home))
        .route("/login", web::get().to(login_form))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
        .route("/language/{lang}", web::get().to(language))
        .route("/profile", web::get().to(profile_form))
        .route("/profile", web::post().to(profile_save));
}

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    page: Page,
    role: Role,
}

/// `GET /`: the person's starting page (the log-in page for nobody).
#[tracing::instrument(name = "portal.home", skip_all, fields(party))]
async fn home(
    person: Person,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    let page = Page::new(&req, &state, Some(&person), "home-title");
    render(&Home {
        page,
        role: person.role(),
    })
}

#[derive(Template)]
#[template(path = "login.html")]
struct Login {
    page: Page,
    login_csrf: String,
    party_id: String,
    next: String,
    error: Option<String>,
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

fn new_login_csrf() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn login_page(
    req: &HttpRequest,
    state: &AppState,
    status: StatusCode,
    party_id: String,
    next: String,
    error: Option<String>,
) -> Result<HttpResponse, PortalError> {
    let token = new_login_csrf();
    let page = Page::new(req, state, None, "login-title");
    let mut resp = render_with(
        status,
        &Login {
            page,
            login_csrf: token.clone(),
            party_id,
            next,
            error,
        },
    )?;
    resp.add_cookie(&session::login_csrf_cookie(
        token,
        state.settings.portal.secure_cookies,
    ))
    .map_err(|e| PortalError::Internal(e.to_string()))?;
    Ok(resp)
}

/// `GET /login`: the log-in form (a person already logged in goes home).
#[tracing::instrument(name = "portal.login_form", skip_all)]
async fn login_form(
    req: HttpRequest,
    q: web::Query<NextQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    if session::current(&req, &state).await?.is_some() {
        return Ok(see_other(&session::local_path(q.next.as_deref())));
    }
    login_page(
        &req,
        &state,
        StatusCode::OK,
        String::new(),
        session::local_path(q.next.as_deref()),
        None,
    )
}

#[derive(Deserialize)]
struct LoginForm {
    party_id: String,
    password: String,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

/// `POST /login`: checks the password (argon2id) and opens a new session. Failures are
/// recorded and audited; past the configured number per party id or per address within the
/// window, attempts are refused with 429 before the password is looked at.
#[tracing::instrument(name = "portal.login", skip_all, fields(party = %form.party_id))]
async fn login(
    req: HttpRequest,
    form: web::Form<LoginForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    let form = form.into_inner();
    let expected = req.cookie(session::LOGIN_CSRF_COOKIE);
    if !expected.is_some_and(|c| session::same_secret(&form.csrf, c.value())) {
        return Err(PortalError::Csrf);
    }
    let next = session::local_path(form.next.as_deref());
    let party_id = form.party_id.trim().to_owned();
    let lang = i18n::negotiate(&req, super::page::default_lang(&state));
    if party_id.is_empty() || form.password.is_empty() || party_id.len() > 100 {
        return login_page(
            &req,
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
            party_id,
            next,
            Some(lang.t("login-missing")),
        );
    }
    let address = session::address_of(&req);
    let settings = &state.settings.portal;
    let mut client = state.pool.get().await?;
    let (by_party, by_address) =
        sessions::recent_failures(&client, &party_id, &address, settings.login_window_minutes)
            .await?;
    if by_party >= i64::from(settings.max_login_failures_per_party)
        || by_address >= i64::from(settings.max_login_failures_per_address)
    {
        crate::store::audit::append(
            &client,
            "portal",
            "portal.login_throttled",
            &party_id,
            &serde_json::json!({ "address": address }),
        )
        .await?;
        return Err(PortalError::Throttled {
            retry_after: u64::from(settings.login_window_minutes) * 60,
        });
    }
    let stored = crate::store::parties::password_of(&client, &party_id).await?;
    let password = form.password;
    // Verified on the blocking pool (argon2id takes tens of milliseconds of CPU). An unknown
    // party costs the same as a wrong password, so timing does not tell which ids exist.
    let (principal, ok) = web::block(move || match stored {
        Some((principal, phc)) => {
            let ok = crate::passwords::verify(&phc, &password);
            (Some(principal), ok)
        }
        None => {
            crate::passwords::verify(crate::passwords::dummy_hash(), &password);
            (None, false)
        }
    })
    .await
    .map_err(|e| PortalError::Internal(e.to_string()))?;
    let principal = match principal {
        Some(p) if ok && p.role != Role::Partner => p,
        _ => {
            sessions::record_failure(&mut client, &party_id, &address, "bad_credentials").await?;
            return login_page(
                &req,
                &state,
                StatusCode::UNAUTHORIZED,
                party_id,
                next,
                Some(lang.t("login-failed")),
            );
        }
    };
    let opened = sessions::open(&mut client, &principal, &address).await?;
    let mut resp = see_other(&next);
    resp.add_cookie(&session::session_cookie(
        opened.secret,
        settings.secure_cookies,
    ))
    .map_err(|e| PortalError::Internal(e.to_string()))?;
    resp.add_removal_cookie(&session::removal(
        session::LOGIN_CSRF_COOKIE,
        settings.secure_cookies,
    ))
    .ok();
    Ok(resp)
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`: ends the session (server side) and clears the cookie.
#[tracing::instrument(name = "portal.logout", skip_all, fields(party))]
async fn logout(
    req: HttpRequest,
    person: Person,
    form: web::Form<CsrfOnly>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    person.check_csrf(&form.csrf)?;
    let mut client = state.pool.get().await?;
    sessions::close(&mut client, &person.session, &session::address_of(&req)).await?;
    let mut resp = see_other("/login");
    resp.add_cookie(&session::removal(
        session::COOKIE,
        state.settings.portal.secure_cookies,
    ))
    .map_err(|e| PortalError::Internal(e.to_string()))?;
    Ok(resp)
}

/// `GET /language/{vi|en}?next=/path`: remembers the choice in a cookie (a year) and goes
/// back. Changes nothing but the reader's own display, so it needs no CSRF token.
async fn language(
    path: web::Path<String>,
    q: web::Query<NextQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    let lang = Lang::parse(&path).ok_or(PortalError::NotFound)?;
    let mut resp = see_other(&session::local_path(q.next.as_deref()));
    let cookie = actix_web::cookie::Cookie::build(i18n::COOKIE, lang.code())
        .path("/")
        .same_site(actix_web::cookie::SameSite::Lax)
        .secure(state.settings.portal.secure_cookies)
        .max_age(actix_web::cookie::time::Duration::days(365))
        .finish();
    resp.add_cookie(&cookie)
        .map_err(|e| PortalError::Internal(e.to_string()))?;
    Ok(resp)
}

#[derive(Template)]
#[template(path = "profile.html")]
struct ProfilePage {
    page: Page,
    form: ProfileForm,
    errors: FieldErrors,
    saved: bool,
}

#[derive(Deserialize, Default)]
struct ProfileForm {
    #[serde(default)]
    csrf: String,
    name: String,
    street: String,
    city: String,
    post_code: String,
    country: String,
}

#[derive(Deserialize)]
struct SavedQuery {
    saved: Option<String>,
}

/// `GET /profile`: the trader's name and address, as documents written for them carry them.
#[tracing::instrument(name = "portal.profile", skip_all, fields(party))]
async fn profile_form(
    req: HttpRequest,
    person: Person,
    q: web::Query<SavedQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    person.require(&[Role::Enterprise])?;
    let client = state.pool.get().await?;
    let p = sessions::profile(&client, person.party_id())
        .await?
        .ok_or(PortalError::NotFound)?;
    let page = Page::new(&req, &state, Some(&person), "profile-title");
    render(&ProfilePage {
        page,
        form: ProfileForm {
            csrf: String::new(),
            name: p.name,
            street: p.street.unwrap_or_default(),
            city: p.city.unwrap_or_default(),
            post_code: p.post_code.unwrap_or_default(),
            country: p.country.unwrap_or_default(),
        },
        errors: FieldErrors::new(),
        saved: q.saved.is_some(),
    })
}

/// `POST /profile`: saves name and address after checking each field.
#[tracing::instrument(name = "portal.profile_save", skip_all, fields(party))]
async fn profile_save(
    req: HttpRequest,
    person: Person,
    form: web::Form<ProfileForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    person.require(&[Role::Enterprise])?;
    person.check_csrf(&form.csrf)?;
    let mut form = form.into_inner();
    let page = Page::new(&req, &state, Some(&person), "profile-title");
    for v in [
        &mut form.name,
        &mut form.street,
        &mut form.city,
        &mut form.post_code,
        &mut form.country,
    ] {
        *v = v.trim().to_owned();
    }
    form.country = form.country.to_ascii_uppercase();
    let mut errors = FieldErrors::new();
    for (field, value, max) in [
        ("name", &form.name, 200),
        ("street", &form.street, 200),
        ("city", &form.city, 100),
        ("post_code", &form.post_code, 20),
    ] {
        if value.is_empty() {
            errors.add(field, page.t("field-required"));
        } else if value.chars().count() > max {
            errors.add(
                field,
                page.ta("field-too-long", &[("max", &max.to_string())]),
            );
        }
    }
    if !crate::codelists::CodeLists::get().country_known(&form.country) {
        errors.add("country", page.t("field-country-invalid"));
    }
    if !errors.is_empty() {
        return render_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            &ProfilePage {
                page,
                form,
                errors,
                saved: false,
            },
        );
    }
    let mut client = state.pool.get().await?;
    sessions::update_profile(
        &mut client,
        &sessions::Profile {
            id: person.party_id().to_owned(),
            name: form.name,
            street: Some(form.street),
            city: Some(form.city),
            post_code: Some(form.post_code),
            country: Some(form.country),
        },
        person.party_id(),
    )
    .await?;
    Ok(see_other("/profile?saved=1"))
}
