//! `GET /console/parties`: parties listed and searched; `POST /console/parties` adds one and
//! shows its first bearer token once; a party's page lists its tokens (by id prefix and
//! creation time, never the secret), sets its password, issues and revokes tokens, and
//! deactivates it (its tokens stop, its sessions end at once, its dossiers stay). Every change
//! is audited by the store function that makes it. After a revocation or deactivation this
//! instance's token cache is cleared, so the API refuses the token at once here (another
//! instance within the cache's 30 s).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{operator, opt, Choice, Pager};
use crate::api::AppState;
use crate::domain::party::Role;
use crate::passwords;
use crate::portal::forms::FieldErrors;
use crate::portal::page::{render, render_with, role_key, see_other, Page};
use crate::portal::session::Person;
use crate::portal::PortalError;
use crate::store::console::{self as store, NewParty, PartyRow};
use crate::store::{parties as parties_store, StoreError};

const PAGE_SIZE: i64 = 50;
const ROLES: [&str; 5] = ["enterprise", "ministry", "customs", "partner", "admin"];

pub struct PartyView {
    pub id: String,
    pub role: String,
    pub name: String,
    pub agency: String,
    pub address: String,
    pub password: bool,
    pub created: String,
    pub deactivated: Option<String>,
}

fn view(page: &Page, p: &PartyRow) -> PartyView {
    let address = [&p.street, &p.city, &p.post_code, &p.country]
        .iter()
        .filter_map(|x| x.as_deref())
        .collect::<Vec<_>>()
        .join(", ");
    PartyView {
        id: p.id.clone(),
        role: Role::parse(&p.role)
            .map(|r| page.t(role_key(r)))
            .unwrap_or_else(|| p.role.clone()),
        name: p.name.clone(),
        agency: p.agency.clone().unwrap_or_default(),
        address,
        password: p.has_password,
        created: page.datetime(&p.created_at),
        deactivated: p.deactivated_at.map(|d| page.datetime(&d)),
    }
}

#[derive(Deserialize, Default, Clone)]
pub struct AddForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    agency: String,
    #[serde(default)]
    street: String,
    #[serde(default)]
    city: String,
    #[serde(default)]
    post_code: String,
    #[serde(default)]
    country: String,
}

#[derive(Template)]
#[template(path = "console/parties.html")]
struct ListPage {
    page: Page,
    q: String,
    roles: Vec<Choice>,
    new_roles: Vec<Choice>,
    parties: Vec<PartyView>,
    pager: Pager,
    form: AddForm,
    errors: FieldErrors,
    /// A party just added and its token, shown this once.
    added: Option<(String, String)>,
}

#[derive(Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    role: Option<String>,
    page: Option<i64>,
}

async fn list_page(
    req: &HttpRequest,
    person: &Person,
    state: &AppState,
    q: Option<&str>,
    role: Option<&str>,
    page_no: i64,
) -> Result<ListPage, PortalError> {
    let page = Page::new(req, state, Some(person), "console-parties-title");
    if role.is_some_and(|r| !ROLES.contains(&r)) {
        return Err(PortalError::BadRequest("unknown role".into()));
    }
    let client = state.pool.get().await?;
    let mut rows = store::parties(&client, q, role, (page_no - 1) * PAGE_SIZE, PAGE_SIZE).await?;
    let has_next = rows.len() as i64 > PAGE_SIZE;
    rows.truncate(PAGE_SIZE as usize);
    let params: Vec<(&str, &str)> = [("q", q.unwrap_or("")), ("role", role.unwrap_or(""))]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let base = format!(
        "/console/parties?{}&",
        serde_urlencoded::to_string(params).unwrap_or_default()
    );
    let lang = page.lang;
    let role_label = |r: &str| {
        Role::parse(r)
            .map(|r| lang.t(role_key(r)))
            .unwrap_or_default()
    };
    let mut roles = Choice::list(&ROLES, role, role_label);
    roles.insert(
        0,
        Choice {
            value: String::new(),
            label: page.t("console-any"),
            selected: role.is_none(),
        },
    );
    Ok(ListPage {
        q: q.unwrap_or("").to_owned(),
        roles,
        new_roles: Choice::list(&ROLES, Some("enterprise"), role_label),
        parties: rows.iter().map(|p| view(&page, p)).collect(),
        pager: Pager::new(&base, page_no, has_next),
        form: AddForm {
            country: state.settings.country.clone(),
            ..AddForm::default()
        },
        errors: FieldErrors::new(),
        added: None,
        page,
    })
}

#[tracing::instrument(name = "portal.console_parties", skip_all, fields(party))]
pub async fn list(
    req: HttpRequest,
    person: Person,
    q: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    operator(&person)?;
    let page_no = q.page.unwrap_or(1).clamp(1, 100_000);
    render(&list_page(&req, &person, &state, opt(&q.q), opt(&q.role), page_no).await?)
}

fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    (1..=35).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

#[tracing::instrument(name = "portal.console_party_add", skip_all, fields(party))]
pub async fn add(
    req: HttpRequest,
    person: Person,
    form: web::Form<AddForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    operator(&person)?;
    person.check_csrf(&form.csrf)?;
    let f = form.into_inner();
    let mut p = list_page(&req, &person, &state, None, None, 1).await?;
    let t = |k: &str| p.page.t(k);
    let mut errors = FieldErrors::new();
    let role = Role::parse(f.role.trim());
    if role.is_none() {
        errors.add("role", t("console-party-role-invalid"));
    }
    let id = f.id.trim();
    if !valid_id(id) {
        errors.add("id", t("console-party-id-invalid"));
    }
    let name = f.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        errors.add("name", t("console-party-name-invalid"));
    }
    let agency = f.agency.trim();
    if role == Some(Role::Ministry) && agency.is_empty() {
        errors.add("agency", t("console-party-agency-required"));
    }
    let country = f.country.trim().to_ascii_uppercase();
    if !country.is_empty()
        && (country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()))
    {
        errors.add("country", t("console-party-country-invalid"));
    }
    for (field, value, max) in [
        ("street", f.street.trim(), 200),
        ("city", f.city.trim(), 100),
        ("post_code", f.post_code.trim(), 20),
    ] {
        if value.chars().count() > max {
            errors.add(field, t("console-party-too-long"));
        }
    }
    let none_if_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let (street, city, post_code) = (
        none_if_empty(f.street.trim()),
        none_if_empty(f.city.trim()),
        none_if_empty(f.post_code.trim()),
    );
    if let (Some(role), true) = (role, errors.is_empty()) {
        let mut client = state.pool.get().await?;
        let added = store::add_party(
            &mut client,
            &NewParty {
                id,
                role,
                name,
                agency: (!agency.is_empty()).then_some(agency),
                street: street.as_deref(),
                city: city.as_deref(),
                post_code: post_code.as_deref(),
                country: (!country.is_empty()).then_some(country.as_str()),
            },
            person.party_id(),
        )
        .await;
        match added {
            Ok(token) => {
                drop(client);
                let mut p = list_page(&req, &person, &state, None, None, 1).await?;
                p.added = Some((id.to_owned(), token));
                return render(&p);
            }
            Err(StoreError::Conflict(_)) => errors.add("id", t("console-party-id-taken")),
            Err(e) => return Err(e.into()),
        }
    }
    p.new_roles = Choice::list(&ROLES, role.map(|r| r.as_str()), |r| {
        Role::parse(r)
            .map(|r| p.page.t(role_key(r)))
            .unwrap_or_default()
    });
    p.form = f;
    p.errors = errors;
    render_with(StatusCode::UNPROCESSABLE_ENTITY, &p)
}

pub struct TokenView {
    pub id: String,
    pub created: String,
    pub revoked: Option<String>,
    pub action: String,
}

#[derive(Template)]
#[template(path = "console/party.html")]
struct PartyPage {
    page: Page,
    party: PartyView,
    tokens: Vec<TokenView>,
    password_errors: FieldErrors,
    /// A token just issued, shown this once.
    issued: Option<String>,
    notice: Option<String>,
}

#[derive(Deserialize)]
pub struct ShowQuery {
    done: Option<String>,
}

async fn party_page(
    req: &HttpRequest,
    person: &Person,
    state: &AppState,
    id: &str,
) -> Result<PartyPage, PortalError> {
    let client = state.pool.get().await?;
    let p = store::party(&client, id)
        .await?
        .ok_or(PortalError::NotFound)?;
    let page = Page::new(req, state, Some(person), "console-party-title")
        .titled(format!("{} ({})", p.name, p.id));
    let tokens = store::tokens(&client, id)
        .await?
        .into_iter()
        .map(|t| TokenView {
            action: format!("/console/parties/{}/tokens/{}/revoke", p.id, t.id),
            id: t.id,
            created: page.datetime(&t.created_at),
            revoked: t.revoked_at.map(|r| page.datetime(&r)),
        })
        .collect();
    Ok(PartyPage {
        party: view(&page, &p),
        tokens,
        password_errors: FieldErrors::new(),
        issued: None,
        notice: None,
        page,
    })
}

const NOTICES: [&str; 3] = ["password", "revoked", "deactivated"];

#[tracing::instrument(name = "portal.console_party", skip_all, fields(party))]
pub async fn show(
    req: HttpRequest,
    person: Person,
    path: web::Path<String>,
    q: web::Query<ShowQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    operator(&person)?;
    let mut p = party_page(&req, &person, &state, &path).await?;
    p.notice = opt(&q.done)
        .filter(|d| NOTICES.contains(d))
        .map(|d| p.page.t(&format!("console-party-done-{d}")));
    render(&p)
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
}

#[tracing::instrument(name = "portal.console_party_password", skip_all, fields(party))]
pub async fn password(
    req: HttpRequest,
    person: Person,
    path: web::Path<String>,
    form: web::Form<PasswordForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    operator(&person)?;
    person.check_csrf(&form.csrf)?;
    let id = path.into_inner();
    match passwords::hash(&form.password) {
        Ok(phc) => {
            let mut client = state.pool.get().await?;
            parties_store::set_password(&mut client, &id, &phc, person.party_id()).await?;
            Ok(see_other(&format!("/console/parties/{id}?done=password")))
        }
        Err(e) => {
            let mut p = party_page(&req, &person, &state, &id).await?;
            let message = p.page.ta(
                "console-party-password-invalid",
                &[("min", &passwords::MIN_CHARS.to_string())],
            );
            tracing::debug!(code = e.code(), "password refused");
            p.password_errors.add("password", message);
            render_with(StatusCode::UNPROCESSABLE_ENTITY, &p)
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

#[tracing::instrument(name = "portal.console_token_issue", skip_all, fields(party))]
pub async fn issue(
    req: HttpRequest,
    person: Person,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    operator(&person)?;
    person.check_csrf(&form.csrf)?;
    let id = path.into_inner();
    let mut client = state.pool.get().await?;
    let token = store::issue_token(&mut client, &id, person.party_id()).await?;
    drop(client);
    let mut p = party_page(&req, &person, &state, &id).await?;
    p.issued = Some(token);
    render(&p)
}

#[tracing::instrument(name = "portal.console_token_revoke", skip_all, fields(party))]
pub async fn revoke(
    person: Person,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    operator(&person)?;
    person.check_csrf(&form.csrf)?;
    let (id, token) = path.into_inner();
    let mut client = state.pool.get().await?;
    store::revoke_token(&mut client, &id, &token, person.party_id()).await?;
    state.tokens.clear();
    Ok(see_other(&format!("/console/parties/{id}?done=revoked")))
}

#[tracing::instrument(name = "portal.console_party_deactivate", skip_all, fields(party))]
pub async fn deactivate(
    person: Person,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    operator(&person)?;
    person.check_csrf(&form.csrf)?;
    let id = path.into_inner();
    if id == person.party_id() {
        return Err(PortalError::Conflict {
            code: "SELF_DEACTIVATION",
            detail: "an operator cannot deactivate their own party".into(),
        });
    }
    let mut client = state.pool.get().await?;
    store::deactivate(&mut client, &id, person.party_id()).await?;
    state.tokens.clear();
    Ok(see_other(&format!(
        "/console/parties/{id}?done=deactivated"
    )))
}
