//! Fees paid online (docs/payments.md): an enterprise's fee notices, an application's fee, an
//! order to pay it at the platform, the e-receipt and its signature, the e-receipt certificate,
//! and the platform's signed notifications (public: the signature authenticates them).

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{body, json, AppState};
use crate::domain::party::{Principal, Role};
use crate::error::ApiError;
use crate::payments::{self, protocol};
use crate::store::licensing::AppScope;
use crate::store::payments as store;

/// Who may see an application's fee: the applicant, officers of its agency, administrators.
fn scope(p: &Principal) -> Option<AppScope<'_>> {
    match p.role {
        Role::Enterprise => Some(AppScope::Applicant(&p.party_id)),
        Role::Ministry => p.agency.as_deref().map(AppScope::Agency),
        Role::Admin => Some(AppScope::All),
        Role::Customs | Role::Partner => None,
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeeQuery {
    /// Only notices in this status.
    #[param(value_type = Option<crate::domain::fee_state::Status>)]
    status: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

/// One page of the caller's fee notices, newest first.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = FeePage)]
pub struct Page {
    items: Vec<store::NoticeView>,
    /// Pass back as `cursor` for the next page; null on the last page.
    next_cursor: Option<Uuid>,
}

const FEE_STATUSES: [&str; 5] = ["due", "paid", "cancelled", "refund_requested", "refunded"];

#[utoipa::path(
    get,
    path = "/api/v1/fees",
    tag = "payments",
    description = "The caller's fee notices, newest first, each with its latest order, e-receipt and refund. Pages never skip or repeat a notice. Role: enterprise.",
    params(FeeQuery),
    responses(
        (status = 200, description = "A page", body = Page),
        (status = 400, description = "`STATUS_INVALID`, `CURSOR_INVALID`, `LIMIT_INVALID`, `QUERY_INVALID`"),
        (status = 403, description = "`ROLE_FORBIDDEN`"),
    )
)]
#[tracing::instrument(name = "fee.list", skip_all, fields(party = %principal.party_id))]
pub async fn list(
    query: web::Query<FeeQuery>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request(
            "LIMIT_INVALID",
            "limit must be 1 to 200",
        ));
    }
    if let Some(s) = query
        .status
        .as_deref()
        .filter(|s| !FEE_STATUSES.contains(s))
    {
        return Err(ApiError::bad_request(
            "STATUS_INVALID",
            format!("unknown status '{s}'; one of {}", FEE_STATUSES.join(", ")),
        ));
    }
    let before = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(Uuid::parse_str(c).map_err(|_| {
            ApiError::bad_request("CURSOR_INVALID", "cursor is not one this API returned")
        })?),
    };
    let client = state.pool.get().await?;
    let (items, next_cursor) = store::list_notices(
        &client,
        &principal.party_id,
        query.status.as_deref(),
        before,
        limit,
    )
    .await?;
    Ok(HttpResponse::Ok().json(Page { items, next_cursor }))
}

#[utoipa::path(
    get,
    path = "/api/v1/licence-applications/{id}/fee",
    tag = "payments",
    description = "The application's fee notice: amount, due date, status, its latest order at the platform, e-receipt and refund. The applicant, officers of the agency it was routed to, admin; others (and applications without a fee collected online) get 404.",
    params(("id" = String, Path, description = "The application's id")),
    responses(
        (status = 200, description = "The fee notice", body = store::NoticeView),
        (status = 404, description = "`NOT_FOUND`"),
    )
)]
#[tracing::instrument(name = "fee.get", skip_all, fields(party = %principal.party_id))]
pub async fn get(
    path: web::Path<String>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = json::parse_id(&path)?;
    let scope = scope(&principal).ok_or(ApiError::NotFound)?;
    let client = state.pool.get().await?;
    let view = store::notice_view(&client, &scope, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(
    post,
    path = "/api/v1/licence-applications/{id}/fee/payment",
    tag = "payments",
    description = "The applicant starts paying the fee: an order at the payment platform (signed request, signed answer checked), or the pending order made before while it has not expired. Send the payer's browser to `pay_url`; only the platform's signed notification (or a signed status answer) marks the fee paid, never the browser's return. Role: enterprise (the applicant).",
    params(("id" = String, Path, description = "The application's id")),
    responses(
        (status = 201, description = "An order was created", body = payments::orders::Started),
        (status = 200, description = "The pending order made before, still payable", body = payments::orders::Started),
        (status = 403, description = "`ROLE_FORBIDDEN`"),
        (status = 404, description = "`NOT_FOUND`: no such application of the caller, or no fee to pay online"),
        (status = 409, description = "`FEE_NOT_DUE` (paid, cancelled or refunded), `FEE_OVERDUE` (past its due date)"),
        (status = 502, description = "`PAYMENT_PLATFORM_REFUSED`, `PAYMENT_PLATFORM_INVALID` (an answer that does not verify or does not match the request; an alert is raised)"),
        (status = 503, description = "`PAYMENT_PLATFORM_UNAVAILABLE`: the platform did not answer (or its certificate is not configured); nothing was stored; retry after `Retry-After` seconds",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
#[tracing::instrument(name = "fee.pay", skip_all, fields(party = %principal.party_id))]
pub async fn pay(
    path: web::Path<String>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = json::parse_id(&path)?;
    let started = payments::start_payment(&state.payments, &principal.party_id, id).await?;
    Ok(if started.created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    }
    .json(started))
}

async fn receipt_of(
    reference: &str,
    principal: &Principal,
    state: &AppState,
) -> Result<store::ReceiptDocument, ApiError> {
    let reference = json::path_name(reference)?;
    let client = state.pool.get().await?;
    let doc = store::receipt_document(&client, reference)
        .await?
        .ok_or(ApiError::NotFound)?;
    let visible = match principal.role {
        Role::Enterprise => principal.party_id == doc.applicant_id,
        Role::Ministry => principal.agency.as_deref() == Some(doc.agency.as_str()),
        Role::Admin => true,
        Role::Customs | Role::Partner => false,
    };
    if visible {
        Ok(doc)
    } else {
        Err(ApiError::NotFound)
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/fees/{reference}/receipt",
    tag = "payments",
    description = "The e-receipt of a paid fee (`urn:nsw:e-receipt:1`), byte for byte as issued and signed. The applicant, officers of the agency, admin; others get 404.",
    params(("reference" = String, Path, description = "The fee notice's payment reference, e.g. `FEE-2026-000001`")),
    responses(
        (status = 200, description = "The e-receipt", body = String, content_type = "application/xml"),
        (status = 404, description = "`NOT_FOUND`: no such fee, not paid (yet), or not the caller's"),
    )
)]
#[tracing::instrument(name = "fee.receipt", skip_all, fields(party = %principal.party_id))]
pub async fn receipt(
    path: web::Path<String>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let doc = receipt_of(&path, &principal, &state).await?;
    Ok(receipt_file(
        &doc.number,
        "xml",
        "application/xml",
        doc.body,
    ))
}

/// A receipt's file to download, named after the receipt's number (`RCPT-2026-000001.xml`).
fn receipt_file(
    number: &str,
    extension: &str,
    content_type: &'static str,
    body: Vec<u8>,
) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{number}.{extension}\""),
        ))
        .body(body)
}

#[utoipa::path(
    get,
    path = "/api/v1/fees/{reference}/receipt.p7s",
    tag = "payments",
    description = "The window's detached DER CMS signature over the e-receipt's bytes; it verifies with `openssl cms -verify -binary -inform DER -in receipt.p7s -content receipt.xml -CAfile receipt-certificate.pem -purpose any`. The applicant, officers of the agency, admin; others get 404.",
    params(("reference" = String, Path, description = "The fee notice's payment reference")),
    responses(
        (status = 200, description = "The signature", body = String, content_type = "application/pkcs7-signature"),
        (status = 404, description = "`NOT_FOUND`"),
    )
)]
#[tracing::instrument(name = "fee.receipt_signature", skip_all, fields(party = %principal.party_id))]
pub async fn receipt_signature(
    path: web::Path<String>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let doc = receipt_of(&path, &principal, &state).await?;
    Ok(receipt_file(
        &doc.number,
        "p7s",
        "application/pkcs7-signature",
        doc.signature,
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/payments/receipt-certificate",
    tag = "payments",
    description = "The certificate (PEM) e-receipts are signed with: the trust anchor for `openssl cms -verify`. Any authenticated caller.",
    responses(
        (status = 200, description = "The PEM certificate", body = String, content_type = "application/x-pem-file"),
    )
)]
#[tracing::instrument(name = "payments.receipt_certificate", skip_all, fields(party = %principal.party_id))]
pub async fn receipt_certificate(
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let _ = &principal;
    let pem = payments::keys::receipt_certificate(&state.pool, &state.settings).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/x-pem-file"))
        .body(pem))
}

/// The platform's notification as it travels (`payments::protocol::Notification`; described
/// here for the API document only).
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = PaymentNotification, example = json!({
    "notification_id": "0195b0c4-5f1e-7c3a-9d2e-1f0a2b3c4d5e", "kind": "paid",
    "merchant_id": "NSW-VN", "reference": "FEE-2026-000001", "order_id": "ORD-0195b0c4",
    "transaction_id": "TXN-0195b0c5", "amount": 350000, "currency": "VND",
    "refund_reference": null, "at": "2026-11-30T03:04:05Z"}))]
#[allow(dead_code)]
pub struct NotificationBody {
    /// Unique per sending (a retry has a new one); for logs only.
    notification_id: String,
    /// `paid`, `cancelled` or `refunded`.
    #[schema(pattern = "^(paid|cancelled|refunded)$")]
    kind: String,
    merchant_id: String,
    /// The order's platform reference (the fee notice's reference, or `<reference>-<n>`).
    reference: String,
    order_id: String,
    /// The platform's transaction: the payment, the refund, or the cancelled order's id.
    transaction_id: String,
    /// Whole đồng.
    amount: i64,
    /// `VND`.
    currency: String,
    /// The refund's reference (`refunded` only).
    refund_reference: Option<String>,
    /// When it took effect at the platform.
    at: chrono::DateTime<chrono::Utc>,
}

#[utoipa::path(
    post,
    path = "/api/v1/payments/notifications",
    tag = "payments",
    security(()),
    description = "The payment platform's notification of a payment, a cancellation or a refund (`protocol::Notification`), signed over its exact bytes (`x-payment-signature`: base64 DER ECDSA P-256/SHA-256; `x-payment-key`: the certificate's SHA-256). No bearer token: the signature, checked against the pinned platform certificate, authenticates it. Applied exactly once per platform transaction; a repeat is answered 200 again and changes nothing. Every notification is logged with its bytes; every refusal raises an alert. Body at most 64 KiB. Public (the platform).",
    request_body(content = NotificationBody, content_type = "application/json"),
    params(
        ("x-payment-signature" = String, Header, description = "Base64 of the DER ECDSA signature over the body's bytes"),
        ("x-payment-key" = Option<String>, Header, description = "SHA-256 fingerprint (hex) of the signing certificate"),
    ),
    responses(
        (status = 200, description = "Applied now (`ACKNOWLEDGED`) or before (`ALREADY_APPLIED`): stop sending it", body = payments::notifications::Ack),
        (status = 400, description = "`BODY_INVALID`: signed, but not a notification"),
        (status = 401, description = "`PAYMENT_SIGNATURE_INVALID`: no signature, or one that does not verify with the platform's certificate",
            headers(("WWW-Authenticate" = String, description = "`PaymentSignature realm=\"nsw\"`"))),
        (status = 422, description = "`PAYMENT_MERCHANT_MISMATCH`, `PAYMENT_CURRENCY_MISMATCH`, `PAYMENT_TRANSACTION_INVALID`, `PAYMENT_REFERENCE_UNKNOWN`, `PAYMENT_ORDER_MISMATCH`, `PAYMENT_AMOUNT_MISMATCH`, `PAYMENT_REFUND_UNKNOWN`, `PAYMENT_REFUND_MISMATCH`"),
        (status = 503, description = "`PAYMENT_PLATFORM_UNTRUSTED`: the window has no platform certificate to check the signature with; send again later",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
#[tracing::instrument(name = "payments.notification", skip_all)]
pub async fn notification(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    body::require_json(&req)?;
    let bytes = body::read_limited(&req, payload, payments::notifications::BODY_LIMIT).await?;
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let signature = header(protocol::SIGNATURE_HEADER);
    let key = header(protocol::KEY_HEADER);
    let ack = payments::notifications::receive(
        &state.payments,
        &bytes,
        signature.as_deref(),
        key.as_deref(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(ack))
}
