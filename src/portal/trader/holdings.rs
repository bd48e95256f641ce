//! What the trader holds: its licences with their balances, its certificates of origin, and
//! downloads of their exact documents and detached signatures (the bytes the API serves).

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::declarations::{direction_label, Fact};
use super::{attachment, licence_path, trader};
use crate::api::AppState;
use crate::portal::{render, Page, Person, PortalError};
use crate::store::certificates::{self as certs, CertScope};
use crate::store::dossiers;
use crate::store::licensing as store;

/// A licence number from the path (`/` travels as `%2F`).
fn number_of(raw: &str) -> String {
    crate::api::json::licence_number(raw)
}

pub struct LicenceRow {
    pub href: String,
    pub number: String,
    pub kind: String,
    pub agency: String,
    pub validity: String,
    pub balances: Vec<String>,
}

#[derive(Template)]
#[template(path = "trader/licences.html")]
struct Licences {
    page: Page,
    rows: Vec<LicenceRow>,
}

/// `GET /licences`: the licences the party holds, with what remains of each line.
#[tracing::instrument(name = "portal.licences", skip_all, fields(party))]
pub async fn licences(
    person: Person,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    trader(&person)?;
    let client = state.pool.get().await?;
    let held = dossiers::licences_held(&client, person.party_id()).await?;
    let page = Page::new(&req, &state, Some(&person), "trader-licences-title");
    let rows = held
        .iter()
        .map(|l| LicenceRow {
            href: format!("/licences/{}", licence_path(&l.number)),
            number: l.number.clone(),
            kind: super::applications::type_label(&page, &l.licence_type),
            agency: l.agency.clone(),
            validity: format!("{} – {}", page.date(&l.valid_from), page.date(&l.valid_to)),
            balances: l
                .lines
                .iter()
                .map(|b| {
                    page.ta(
                        "trader-balance",
                        &[
                            ("line", &b.line.to_string()),
                            ("hs", b.hs_code.as_str()),
                            ("allowed", &page.number(&b.allowance)),
                            ("remaining", &page.number(&b.remaining)),
                            ("unit", b.unit.as_str()),
                        ],
                    )
                })
                .collect(),
        })
        .collect();
    render(&Licences { page, rows })
}

pub struct BalanceView {
    pub line: i32,
    pub hs_code: String,
    pub description: String,
    pub unit: String,
    pub allowance: String,
    pub reserved: String,
    pub committed: String,
    pub remaining: String,
}

#[derive(Template)]
#[template(path = "trader/licence.html")]
struct LicencePage {
    page: Page,
    path: String,
    facts: Vec<Fact>,
    lines: Vec<BalanceView>,
    application: Option<String>,
}

/// The licence `number` if the party holds it (the API's rule for an enterprise).
async fn held(
    person: &Person,
    state: &AppState,
    number: &str,
) -> Result<store::LicenceView, PortalError> {
    let client = state.pool.get().await?;
    store::get_licence(&client, number)
        .await?
        .filter(|v| v.holder_id == person.party_id())
        .ok_or(PortalError::NotFound)
}

/// `GET /licences/{number}`.
#[tracing::instrument(name = "portal.licence", skip_all, fields(party))]
pub async fn licence(
    person: Person,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    trader(&person)?;
    let v = held(&person, &state, &number_of(&path)).await?;
    let page =
        Page::new(&req, &state, Some(&person), "trader-licence-title").titled(v.number.clone());
    let fact = |key: &str, value: String| Fact {
        label: page.t(key),
        value,
    };
    let facts = vec![
        fact("trader-licence-number", v.number.clone()),
        fact(
            "trader-application-type",
            super::applications::type_label(&page, &v.licence_type),
        ),
        fact("trader-col-agency", v.agency.clone()),
        fact("trader-holder", v.holder_id.clone()),
        fact("trader-col-direction", direction_label(&page, &v.direction)),
        fact("trader-issue-date", page.date(&v.issue_date)),
        fact(
            "trader-validity",
            format!("{} – {}", page.date(&v.valid_from), page.date(&v.valid_to)),
        ),
        fact(
            "trader-licence-origin",
            page.t(if v.origin == "deposited" {
                "trader-licence-deposited"
            } else {
                "trader-licence-issued"
            }),
        ),
        fact("trader-sha256", v.sha256.clone()),
    ];
    let lines = v
        .lines
        .iter()
        .map(|b| BalanceView {
            line: b.line,
            hs_code: b.hs_code.clone(),
            description: b.description.clone(),
            unit: b.unit.clone(),
            allowance: page.number(&b.allowance),
            reserved: page.number(&b.reserved),
            committed: page.number(&b.committed),
            remaining: page.number(&b.remaining),
        })
        .collect();
    render(&LicencePage {
        path: licence_path(&v.number),
        application: v.application_id.map(|id| format!("/applications/{id}")),
        page,
        facts,
        lines,
    })
}

/// `GET /licences/{number}/document`: the licence's exact bytes.
#[tracing::instrument(name = "portal.licence_document", skip_all, fields(party))]
pub async fn licence_document(
    person: Person,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    trader(&person)?;
    let v = held(&person, &state, &number_of(&path)).await?;
    let client = state.pool.get().await?;
    let (bytes, _) = store::licence_document(&client, &v.number)
        .await?
        .ok_or(PortalError::NotFound)?;
    Ok(attachment(
        bytes,
        "application/xml",
        &format!("{}.xml", v.number),
    ))
}

/// `GET /licences/{number}/signature`: the agency's detached DER CMS signature over it.
#[tracing::instrument(name = "portal.licence_signature", skip_all, fields(party))]
pub async fn licence_signature(
    person: Person,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    trader(&person)?;
    let v = held(&person, &state, &number_of(&path)).await?;
    let client = state.pool.get().await?;
    let (_, signature) = store::licence_document(&client, &v.number)
        .await?
        .ok_or(PortalError::NotFound)?;
    Ok(attachment(
        signature,
        "application/pkcs7-signature",
        &format!("{}.p7s", v.number),
    ))
}

pub struct CertificateRow {
    pub href: String,
    pub reference: String,
    pub agency: String,
    pub route: String,
    pub issue_date: String,
}

#[derive(Template)]
#[template(path = "trader/certificates.html")]
struct Certificates {
    page: Page,
    rows: Vec<CertificateRow>,
}

/// `GET /certificates`: the party's certificates of origin.
#[tracing::instrument(name = "portal.certificates", skip_all, fields(party))]
pub async fn certificates(
    person: Person,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    trader(&person)?;
    let client = state.pool.get().await?;
    let found = dossiers::certificates_held(&client, person.party_id()).await?;
    let page = Page::new(&req, &state, Some(&person), "trader-certificates-title");
    let rows = found
        .iter()
        .map(|c| CertificateRow {
            href: format!("/certificates/{}", c.reference),
            reference: c.reference.clone(),
            agency: c.agency.clone(),
            route: format!("{} → {}", c.export_country, c.import_country),
            issue_date: page.date(&c.issue_date),
        })
        .collect();
    render(&Certificates { page, rows })
}

#[derive(Template)]
#[template(path = "trader/certificate.html")]
struct CertificatePage {
    page: Page,
    reference: String,
    facts: Vec<Fact>,
    application: String,
}

async fn own_certificate(
    person: &Person,
    state: &AppState,
    reference: &str,
) -> Result<(certs::Certificate, Vec<u8>, Vec<u8>), PortalError> {
    let client = state.pool.get().await?;
    certs::get(&client, &CertScope::Exporter(person.party_id()), reference)
        .await?
        .ok_or(PortalError::NotFound)
}

/// `GET /certificates/{reference}`.
#[tracing::instrument(name = "portal.certificate", skip_all, fields(party))]
pub async fn certificate(
    person: Person,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    trader(&person)?;
    let (c, _, _) = own_certificate(&person, &state, &path).await?;
    let page = Page::new(&req, &state, Some(&person), "trader-certificate-title")
        .titled(c.reference.clone());
    let fact = |key: &str, value: String| Fact {
        label: page.t(key),
        value,
    };
    let facts = vec![
        fact("trader-col-reference", c.reference.clone()),
        fact("trader-col-agency", c.agency.clone()),
        fact("trader-exporter", c.exporter_id.clone()),
        fact("trader-export-country", c.export_country.clone()),
        fact("trader-import-country", c.import_country.clone()),
        fact("trader-issue-date", page.date(&c.issue_date)),
        fact(
            "trader-e-form-d",
            page.t(if c.outbox_message.is_some() {
                "trader-e-form-d-sent"
            } else {
                "trader-e-form-d-none"
            }),
        ),
        fact("trader-sha256", c.sha256.clone()),
    ];
    render(&CertificatePage {
        reference: c.reference.clone(),
        application: format!("/applications/{}", c.application_id),
        page,
        facts,
    })
}

/// `GET /certificates/{reference}/document`.
#[tracing::instrument(name = "portal.certificate_document", skip_all, fields(party))]
pub async fn certificate_document(
    person: Person,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    trader(&person)?;
    let (c, bytes, _) = own_certificate(&person, &state, &path).await?;
    Ok(attachment(
        bytes,
        "application/xml",
        &format!("{}.xml", c.reference),
    ))
}

/// `GET /certificates/{reference}/signature`.
#[tracing::instrument(name = "portal.certificate_signature", skip_all, fields(party))]
pub async fn certificate_signature(
    person: Person,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    trader(&person)?;
    let (c, _, signature) = own_certificate(&person, &state, &path).await?;
    Ok(attachment(
        signature,
        "application/pkcs7-signature",
        &format!("{}.p7s", c.reference),
    ))
}
