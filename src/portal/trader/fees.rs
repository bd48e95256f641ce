//! The trader's fees: the list of its fee notices, "Pay now" (the workflow
//! `payments::start_payment`, then off to the platform's page), the page the platform sends the
//! payer back to, and the e-receipt's downloads. The return page never believes the `result`
//! the browser brings back: it shows what the window recorded from the platform's signed
//! notifications, and may ask the platform itself (a signed status answer) while an order is
//! pending. Only the applicant sees its fees; anything else is 404.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{attachment, parse_id, trader, CsrfOnly, ListQuery, Opt, Pager, PAGE_SIZE};
use crate::api::AppState;
use crate::domain::fee_state::{OrderStatus, Status};
use crate::payments::orders::{settle, RETRY_AFTER_SECS};
use crate::portal::fee_block::{self, FeeBlock, ReceiptLinks};
use crate::portal::forms::FieldErrors;
use crate::portal::{render, see_other, session, Page, Person, PortalError};
use crate::store::fees;
use crate::store::licensing::AppScope;
use crate::store::payments as pay_store;
use crate::workflow::WorkflowError;

/// The statuses of a fee notice, in the order the filter offers them.
const STATUSES: [&str; 5] = ["due", "paid", "cancelled", "refund_requested", "refunded"];

pub struct Row {
    pub reference: String,
    pub application_href: String,
    pub application_reference: String,
    pub amount: String,
    pub due_date: String,
    pub status: String,
    /// "paid on …" for a paid fee.
    pub paid: Option<String>,
    pub receipt: Option<ReceiptLinks>,
}

#[derive(Template)]
#[template(path = "fees/list.html")]
struct List {
    page: Page,
    rows: Vec<Row>,
    statuses: Vec<Opt>,
    search: String,
    pager: Pager,
}

/// `GET /fees`: the party's fee notices, newest first, filtered and paged.
#[tracing::instrument(name = "portal.fees", skip_all, fields(party))]
pub async fn list(
    person: Person,
    req: HttpRequest,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    trader(&person)?;
    let status = query.status_in(&STATUSES);
    let search = query.search();
    let page_no = query.page();
    let client = state.pool.get().await?;
    let found = fees::list(
        &client,
        person.party_id(),
        status.as_deref(),
        Some(&search),
        (page_no - 1) * PAGE_SIZE,
        PAGE_SIZE,
    )
    .await?;
    let page = Page::new(&req, &state, Some(&person), "fees-title");
    let statuses = Opt::status_filter(&page, &STATUSES, status.as_deref(), |s| {
        fee_block::status_label(&page, s)
    });
    let rows = found
        .items
        .iter()
        .map(|f| Row {
            reference: f.reference.clone(),
            application_href: format!("/applications/{}", f.application_id),
            application_reference: f.application_reference.clone(),
            amount: page.vnd(&f.amount),
            due_date: page.date(&f.due_date),
            status: fee_block::status_label(&page, &f.status),
            paid: f
                .paid_at
                .as_ref()
                .map(|at| page.ta("fees-paid-on", &[("at", &page.datetime(at))])),
            receipt: f.receipt.as_ref().map(|number| {
                let (xml, p7s) = fee_block::receipt_paths(&f.reference);
                ReceiptLinks {
                    number: number.clone(),
                    xml,
                    p7s,
                }
            }),
        })
        .collect();
    let pager = Pager::new("/fees", status.as_deref(), &search, page_no, found.total);
    render(&List {
        page,
        rows,
        statuses,
        search,
        pager,
    })
}

/// `POST /applications/{id}/pay`: "Pay now" (workflow `payments::start_payment`, as
/// `POST /api/v1/licence-applications/{id}/fee/payment`), then `303` to the platform's page.
/// When the platform cannot be reached, or refuses, the application page comes back with the
/// reason beside the button (503, 502 or 409) and nothing was stored: pressing again retries.
#[tracing::instrument(name = "portal.fee_pay", skip_all, fields(party))]
pub async fn pay(
    person: Person,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<CsrfOnly>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    trader(&person)?;
    person.check_csrf(&form.csrf)?;
    let id = parse_id(&path)?;
    let lang = crate::portal::i18n::negotiate(&req, crate::portal::page::default_lang(&state));
    let (status, message) =
        match crate::payments::start_payment(&state.payments, person.party_id(), id).await {
            Ok(started) if started.status == Status::Due.as_str() => {
                return Ok(see_other(&started.pay_url))
            }
            // The platform had it paid already (an earlier answer was lost): it is recorded now.
            Ok(_) => return Ok(see_other(&format!("/applications/{id}"))),
            Err(WorkflowError::Unavailable { .. }) => (
                StatusCode::SERVICE_UNAVAILABLE,
                lang.t("fees-platform-unavailable"),
            ),
            Err(WorkflowError::BadGateway { .. }) => {
                (StatusCode::BAD_GATEWAY, lang.t("fees-platform-invalid"))
            }
            Err(WorkflowError::Conflict { code, .. }) => (
                StatusCode::CONFLICT,
                lang.t(if code == "FEE_OVERDUE" {
                    "fees-overdue"
                } else {
                    "fees-not-due"
                }),
            ),
            Err(e) => return Err(e.into()),
        };
    let mut resp = super::applications::detail_page(
        &person,
        &req,
        &state,
        id,
        String::new(),
        FieldErrors::new(),
        Some(message),
        status,
    )
    .await?;
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from(RETRY_AFTER_SECS),
        );
    }
    Ok(resp)
}

#[derive(Deserialize)]
pub struct ReturnQuery {
    #[serde(default)]
    reference: String,
    /// What the platform told the browser; shown nowhere and believed never.
    result: Option<String>,
}

/// What the return page says, from what the window recorded.
#[derive(PartialEq, Eq)]
enum Outcome {
    /// The platform's signed word that it was paid is recorded (or it was refunded since).
    Paid,
    /// An order is pending: no signed word yet.
    Waiting,
    /// The last order was cancelled or expired; the fee is still due.
    NotPaid,
    /// The notice was cancelled (unpaid after its due date, or the application withdrawn).
    Closed,
}

#[derive(Template)]
#[template(path = "fees/return.html")]
struct ReturnPage {
    page: Page,
    outcome: Outcome,
    fee: Option<FeeBlock>,
    application_href: String,
    application_reference: String,
    /// This page again (the refresh link).
    here: String,
    /// Without a session cookie: the link that comes back here with it.
    continue_href: Option<String>,
}

/// A payment reference as the platform sends it back: `[A-Za-z0-9_-]{1,40}`, else nothing.
fn valid_reference(s: &str) -> bool {
    (1..=40).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `GET /payments/return?reference=…&result=…`: where the platform sends the payer back. Shows
/// the fee as recorded; while its order is pending the platform is asked (signed status query,
/// the payments job's own function), so a payment whose notification is late shows at once,
/// and one the browser only claims does not.
///
/// The session cookie is `SameSite=Strict`, so a browser coming back from a platform on
/// another site arrives without it: the page then offers a link to itself, which the browser
/// follows with the cookie.
#[tracing::instrument(
    name = "portal.fee_return",
    skip_all,
    fields(party, reference, claimed)
)]
pub async fn payment_return(
    req: HttpRequest,
    query: web::Query<ReturnQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    let span = tracing::Span::current();
    span.record("reference", query.reference.as_str());
    if let Some(r) = &query.result {
        span.record("claimed", r.as_str());
    }
    let here = req
        .uri()
        .path_and_query()
        .map_or("/payments/return".into(), |p| p.as_str().to_owned());
    let Some(person) = session::current(&req, &state).await? else {
        let page = Page::new(&req, &state, None, "fees-return-title");
        return render(&ReturnPage {
            page,
            outcome: Outcome::Waiting,
            fee: None,
            application_href: String::new(),
            application_reference: String::new(),
            continue_href: Some(session::local_path(Some(&here))),
            here,
        });
    };
    span.record("party", person.party_id());
    trader(&person)?;
    if !valid_reference(&query.reference) {
        return Err(PortalError::NotFound);
    }
    let scope = AppScope::Applicant(person.party_id());
    let (application_id, order) = {
        let client = state.pool.get().await?;
        let id = fees::application_of_reference(&client, person.party_id(), &query.reference)
            .await?
            .ok_or(PortalError::NotFound)?;
        let order = pay_store::order_by_platform_reference(&client, &query.reference).await?;
        (id, order)
    };
    // An order still pending here: ask the platform, whose answer is signed (the browser's
    // `result` is not). Its failure leaves the page saying "waiting".
    if let Some(o) = order.filter(|o| o.status == OrderStatus::Pending) {
        let settled = settle(&state.payments, &o).await;
        tracing::debug!(?settled, "asked the platform on the payer's return");
    }
    let client = state.pool.get().await?;
    let view = pay_store::notice_view(&client, &scope, application_id)
        .await?
        .ok_or(PortalError::NotFound)?;
    let outcome = match Status::parse(&view.status) {
        Some(Status::Paid | Status::RefundRequested | Status::Refunded) => Outcome::Paid,
        Some(Status::Cancelled) => Outcome::Closed,
        _ => match view.order.as_ref().map(|o| o.status.as_str()) {
            Some("cancelled" | "expired") => Outcome::NotPaid,
            _ => Outcome::Waiting,
        },
    };
    let page = Page::new(&req, &state, Some(&person), "fees-return-title");
    let fee = FeeBlock::new(&page, &view, true);
    let pay_url = view.order.as_ref().map(|o| o.pay_url.clone());
    let resp = render(&ReturnPage {
        page,
        outcome,
        application_href: format!("/applications/{application_id}"),
        application_reference: view.application_reference.clone(),
        fee: Some(fee),
        continue_href: None,
        here,
    })?;
    Ok(fee_block::allow_platform_form(
        resp,
        &state.settings.payments,
        pay_url.as_deref(),
    ))
}

/// The applicant's e-receipt of the notice `reference` (404 for anyone else, and before it is
/// paid).
async fn receipt_of(
    person: &Person,
    state: &AppState,
    reference: &str,
) -> Result<pay_store::ReceiptDocument, PortalError> {
    trader(person)?;
    if !valid_reference(reference) {
        return Err(PortalError::NotFound);
    }
    let client = state.pool.get().await?;
    pay_store::receipt_document(&client, reference)
        .await?
        .filter(|d| d.applicant_id == person.party_id())
        .ok_or(PortalError::NotFound)
}

/// `GET /fees/{reference}/receipt.xml`: the e-receipt, byte for byte as issued and signed.
#[tracing::instrument(name = "portal.fee_receipt", skip_all, fields(party))]
pub async fn receipt(
    person: Person,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    let doc = receipt_of(&person, &state, &path).await?;
    Ok(attachment(
        doc.body,
        "application/xml",
        &format!("{}.xml", doc.number),
    ))
}

/// `GET /fees/{reference}/receipt.p7s`: the window's detached DER CMS signature over it.
#[tracing::instrument(name = "portal.fee_receipt_signature", skip_all, fields(party))]
pub async fn receipt_signature(
    person: Person,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    let doc = receipt_of(&person, &state, &path).await?;
    Ok(attachment(
        doc.signature,
        "application/pkcs7-signature",
        &format!("{}.p7s", doc.number),
    ))
}

/// `GET /fees/receipt-certificate.pem`: the certificate e-receipts are signed with (the trust
/// anchor of `openssl cms -verify`), as `GET /api/v1/payments/receipt-certificate` serves it.
#[tracing::instrument(name = "portal.fee_receipt_certificate", skip_all, fields(party))]
pub async fn receipt_certificate(
    person: Person,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    trader(&person)?;
    let pem = crate::payments::keys::receipt_certificate(&state.pool, &state.settings).await?;
    Ok(attachment(
        pem.into_bytes(),
        "application/x-pem-file",
        "receipt-certificate.pem",
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn references_are_what_the_window_issues() {
        assert!(super::valid_reference("FEE-2026-000001"));
        assert!(super::valid_reference("FEE-2026-000001-2"));
        assert!(!super::valid_reference(""));
        assert!(!super::valid_reference("FEE/../x"));
        assert!(!super::valid_reference(&"A".repeat(41)));
    }
}
