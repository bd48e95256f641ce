//! Exchange endpoints: the partner-facing message endpoint (authenticated by signature, not
//! by token), the customs inbox and business responses, and the operator's outbox console.

use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api::body::{read_limited, require_xml};
use crate::api::AppState;
use crate::domain::party::Principal;
use crate::error::ApiError;
use crate::exchange::fault::Fault;
use crate::exchange::outbox::Cause;
use crate::exchange::{
    acdd, envelope, form_d, inbound, respond, signature, Exchange, ExchangeError, SIGNATURE_HEADER,
};
use crate::store::{inbound as inbound_store, outbox as outbox_store};
use crate::validation::Verdict;
use crate::xml::DocKind;

fn exchange(state: &AppState) -> Result<&Exchange, ApiError> {
    state
        .exchange
        .as_deref()
        .ok_or_else(|| ExchangeError::NotConfigured.into())
}

/// A response whose body fails after the headers: the client sees the connection drop.
fn dropped_connection() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/xml")
        .streaming(futures_util::stream::once(async {
            Err::<web::Bytes, std::io::Error>(std::io::Error::other(
                "fault mode: connection dropped",
            ))
        }))
}

/// POST /exchange/v1/messages: a partner window delivers a signed envelope.
#[utoipa::path(
    post,
    path = "/exchange/v1/messages",
    tag = "exchange",
    description = "A partner window delivers a signed envelope (over mutual TLS; plain HTTP only on loopback). No bearer token: the CMS signature in `X-NSW-Signature` authenticates the sender, whose certificate must chain to its pinned CA. The answer is a signed receipt, also for a refused payload. The message id is the idempotency key. See docs/exchange.md.",
    security(()),
    params(("X-NSW-Signature" = String, Header, description = "Base64 of a detached DER CMS signature over the body")),
    request_body(
        content = String,
        content_type = "application/xml",
        description = "The envelope (`urn:nsw:envelope:1`)",
        example = json!(include_str!("../../fixtures/valid/envelope/acdd-envelope.xml")),
    ),
    responses(
        (status = 200, description = "A signed receipt (`X-NSW-Signature`; `X-NSW-Duplicate: true` when the message was received before)", body = String, content_type = "application/xml",
            headers(("X-NSW-Signature" = String, description = "Base64 DER CMS signature over the receipt"),
                    ("X-NSW-Duplicate" = String, description = "`true` or `false`"))),
        (status = 400, description = "`XML_EMPTY`, `XML_ENCODING`, `XML_DOCTYPE`, `XML_TOO_DEEP`, `XML_TOO_MANY_ELEMENTS`, `XML_TOO_MANY_ATTRIBUTES`, `XML_TOO_MANY_NAMESPACES`, `XML_TOO_MANY_NAMES`, `XML_NAME_TOO_LONG`, `XML_TOO_COSTLY`, `XML_MALFORMED`, `SIGNATURE_MISSING`, `SIGNATURE_MALFORMED`"),
        (status = 403, description = "`TLS_REQUIRED`, `TLS_CLIENT_MISMATCH`, `PARTNER_UNKNOWN`, `SIGNATURE_ALGORITHM`, `CERTIFICATE_UNTRUSTED`, `CERTIFICATE_EXPIRED`, `CERTIFICATE_NOT_YET_VALID`, `CERTIFICATE_PURPOSE`, `SENDER_CERTIFICATE_MISMATCH`, `SIGNATURE_INVALID`"),
        (status = 409, description = "`EXCHANGE_NOT_CONFIGURED`: this window has no exchange keys; `MESSAGE_ID_REUSED`"),
        (status = 422, description = "`DOCUMENT_INVALID`: the envelope itself is not valid"),
    )
)]
#[tracing::instrument(name = "exchange.receive", skip_all)]
pub async fn receive(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let ex = exchange(&state)?;
    let fault = ex.fault.inbound();
    match fault {
        Fault::Slow { delay_ms } => {
            tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await
        }
        Fault::Status { status: 503 } => {
            return Err(ApiError::Unavailable("fault mode 503".into()))
        }
        Fault::Status { .. } => return Err(ApiError::Internal("fault mode 500".into())),
        Fault::FailRatio { ratio } if crate::exchange::fault::FaultSwitch::roll(ratio) => {
            return Err(ApiError::Unavailable("fault mode fail_ratio: 503".into()))
        }
        Fault::DropConnection => return Ok(dropped_connection()),
        _ => {}
    }
    // Partners come over mutual TLS; plain HTTP only from this machine (tests, the demo).
    let peer_country = req
        .conn_data::<crate::exchange::tls::PeerCountry>()
        .map(|p| p.0.clone());
    let loopback = req.peer_addr().is_some_and(|a| a.ip().is_loopback());
    if peer_country.is_none() && !loopback {
        return Err(ApiError::forbidden(
            "TLS_REQUIRED",
            "partner windows deliver over mutual TLS; plain HTTP is accepted only on loopback",
        ));
    }
    require_xml(&req)?;
    let body = read_limited(&req, payload, state.validator.limits.max_bytes).await?;
    let sig = req
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    let answer = inbound::receive(
        ex,
        &state.pool,
        &state.validator,
        &body,
        sig,
        peer_country.as_ref().map(|c| c.as_deref()),
        req.app_data::<web::Data<super::Inbound>>()
            .and_then(|i| i.0.as_ref()),
    )
    .await?;
    let mut receipt_sig = answer.signature;
    match fault {
        Fault::LostReceipt => return Ok(dropped_connection()),
        Fault::BadReceiptSignature => {
            // A real signature by our key, but over other bytes than the receipt sent.
            let mut other = answer.receipt.clone();
            other.extend_from_slice(b"<!-- -->");
            receipt_sig = signature::sign(&ex.identity, &other).map_err(ExchangeError::from)?;
        }
        _ => {}
    }
    let status = actix_web::http::StatusCode::from_u16(answer.status)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::build(status)
        .content_type("application/xml")
        .insert_header((
            SIGNATURE_HEADER,
            base64::engine::general_purpose::STANDARD.encode(&receipt_sig),
        ))
        .insert_header((
            "X-NSW-Duplicate",
            if answer.duplicate { "true" } else { "false" },
        ))
        .body(answer.receipt))
}

/// Which declaration's ACDD to send.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"declaration_id": "0195a3c2-7d1e-7b2a-9c44-1f0e2d3c4b5a"}))]
pub struct SendDeclaration {
    declaration_id: Uuid,
}

/// A message written to the outbox.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Enqueued {
    message_id: Uuid,
    conversation_id: Uuid,
    /// The partner's country.
    receiver: String,
    document_type: String,
    reference: String,
    /// For an ACDD: the declaration's reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    declaration_reference: Option<String>,
}

/// POST /api/v1/admin/exchange/send: the ACDD of an export declaration, built and enqueued in
/// one transaction (the path customs clearance takes).
#[utoipa::path(
    post,
    path = "/api/v1/admin/exchange/send",
    tag = "exchange",
    description = "Builds the ACDD of a cleared export declaration and enqueues it for the destination's window (as clearance does). Role: admin.",
    request_body(content = SendDeclaration, content_type = "application/json"),
    responses(
        (status = 201, description = "Enqueued", body = Enqueued),
        (status = 403, description = "`ROLE_FORBIDDEN`"),
        (status = 404, description = "`NOT_FOUND`"),
        (status = 409, description = "`EXCHANGE_NOT_CONFIGURED`: this window has no exchange keys; `NO_PARTNER`, `NOT_AN_EXPORT`, `NOT_TO_ASEAN`, `DECLARATION_STATE`, `DECLARATION_UNREADABLE`, `CONFLICT`"),
    )
)]
#[tracing::instrument(name = "exchange.send_acdd", skip_all, fields(party = %p.party_id))]
pub async fn send_acdd(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: SendDeclaration = crate::api::json::read(&req, payload).await?;
    let ex = exchange(&state)?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let queued =
        acdd::enqueue_for_declaration(&tx, ex, &state.settings, body.declaration_id, &p.party_id)
            .await?
            .ok_or_else(|| ExchangeError::Refused {
                code: "NO_PARTNER",
                detail:
                    "ACDDs for this declaration's destination are not exchanged with any partner"
                        .into(),
            })?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(Enqueued {
        message_id: queued.message_id,
        conversation_id: queued.conversation_id,
        receiver: queued.receiver,
        document_type: "ACDD".into(),
        reference: queued.reference,
        declaration_reference: Some(queued.declaration_reference),
    }))
}

/// POST /api/v1/admin/exchange/form-d: an issued Form D (XML body) for the partner of its
/// import country, in that partner's format profile.
#[utoipa::path(
    post,
    path = "/api/v1/admin/exchange/form-d",
    tag = "exchange",
    description = "Sends an issued Form D to the window of its import country, in that partner's format. Role: admin.",
    request_body(
        content = String,
        content_type = "application/xml",
        description = "The Form D (`urn:nsw:certificate-of-origin:1`)",
        example = json!(include_str!("../../fixtures/valid/certificate-of-origin/vn-sg-form-d.xml")),
    ),
    responses(
        (status = 201, description = "Enqueued", body = Enqueued),
        (status = 400, description = "`XML_EMPTY`, `XML_ENCODING`, `XML_DOCTYPE`, `XML_TOO_DEEP`, `XML_TOO_MANY_ELEMENTS`, `XML_TOO_MANY_ATTRIBUTES`, `XML_TOO_MANY_NAMESPACES`, `XML_TOO_MANY_NAMES`, `XML_NAME_TOO_LONG`, `XML_TOO_COSTLY`, `XML_MALFORMED`"),
        (status = 403, description = "`ROLE_FORBIDDEN`"),
        (status = 409, description = "`EXCHANGE_NOT_CONFIGURED`: this window has no exchange keys; `NO_PARTNER`, `CONFLICT`"),
        (status = 422, description = "`DOCUMENT_INVALID`"),
    )
)]
#[tracing::instrument(name = "exchange.send_form_d", skip_all, fields(party = %p.party_id))]
pub async fn send_form_d(
    p: Principal,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let ex = exchange(&state)?;
    require_xml(&req)?;
    let body = read_limited(&req, payload, state.validator.limits.max_bytes).await?;
    match state
        .validator
        .validate(&body, Some(DocKind::CertificateOfOrigin))
    {
        Verdict::Valid(_) => {}
        Verdict::Unusable(e) => return Err(ApiError::Xml(e)),
        Verdict::Invalid { violations, .. } => return Err(ApiError::Invalid { violations }),
    }
    let prepared = form_d::prepare(&body, &ex.partners)?;
    let (receiver, document_type, reference) = (
        prepared.receiver.clone(),
        prepared.document_type,
        prepared.reference.clone(),
    );
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    // An operator's send is its own cause: the same Form D may be sent again by hand.
    let cause = Cause::Operator(Uuid::now_v7());
    let queued = form_d::enqueue(
        &tx,
        &state.settings,
        &ex.identity,
        prepared,
        cause,
        &p.party_id,
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(Enqueued {
        message_id: queued.message_id,
        conversation_id: queued.conversation_id,
        receiver,
        document_type: document_type.to_string(),
        reference,
        declaration_reference: None,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Outbox: only messages in this status (`pending`, `sending`, `delivered`,
    /// `dead_letter`, …).
    status: Option<String>,
    /// Inbox: only documents of this type (e.g. `ACDD`, `FORM_D`).
    document_type: Option<String>,
    /// At most this many (clamped to 1 to 1000; default 100).
    limit: Option<i64>,
}

/// Outbox messages, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OutboxList {
    items: Vec<outbox_store::OutboxRow>,
}

/// An outbox message and the partner's answers to it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OutboxDetail {
    #[serde(flatten)]
    message: outbox_store::OutboxRow,
    /// Business responses received for it.
    answers: Vec<inbound_store::InboundRow>,
}

/// Messages received from partner windows.
#[derive(Serialize, utoipa::ToSchema)]
pub struct InboundList {
    items: Vec<inbound_store::InboundRow>,
}

/// GET /api/v1/admin/exchange/outbox?status=dead_letter
#[utoipa::path(
    get,
    path = "/api/v1/admin/exchange/outbox",
    tag = "exchange",
    description = "Messages to partner windows and their delivery state. Role: admin.",
    params(ListQuery),
    responses(
        (status = 200, description = "The messages", body = OutboxList),
        (status = 400, description = "`STATUS_UNKNOWN`, `QUERY_INVALID`"),
        (status = 403, description = "`ROLE_FORBIDDEN`"),
    )
)]
#[tracing::instrument(name = "exchange.outbox_list", skip_all, fields(party = %p.party_id))]
pub async fn outbox_list(
    p: Principal,
    state: web::Data<AppState>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    if let Some(s) = q
        .status
        .as_deref()
        .filter(|s| !outbox_store::STATUSES.contains(s))
    {
        return Err(ApiError::bad_request(
            "STATUS_UNKNOWN",
            format!("'{s}' is not one of {}", outbox_store::STATUSES.join(", ")),
        ));
    }
    let client = state.pool.get().await?;
    let rows = outbox_store::list(
        &client,
        q.status.as_deref(),
        q.limit.unwrap_or(100).clamp(1, 1000),
    )
    .await?;
    Ok(HttpResponse::Ok().json(OutboxList { items: rows }))
}

/// GET /api/v1/admin/exchange/outbox/{message_id}
#[utoipa::path(
    get,
    path = "/api/v1/admin/exchange/outbox/{id}",
    tag = "exchange",
    description = "One outbox message with the business responses received for it. Role: admin.",
    params(("id" = String, Path, description = "The message id")),
    responses(
        (status = 200, description = "The message", body = OutboxDetail),
        (status = 403, description = "`ROLE_FORBIDDEN`"),
        (status = 404, description = "`NOT_FOUND`"),
    )
)]
#[tracing::instrument(name = "exchange.outbox_get", skip_all, fields(party = %p.party_id))]
pub async fn outbox_get(
    p: Principal,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let row = outbox_store::get(&client, path.into_inner())
        .await?
        .ok_or(ApiError::NotFound)?;
    let answers = inbound_store::answers_to(&client, &row.receiver, &row.reference).await?;
    Ok(HttpResponse::Ok().json(OutboxDetail {
        message: row,
        answers,
    }))
}

/// GET /api/v1/admin/exchange/outbox/{message_id}/{envelope|signature}: the stored bytes.
#[utoipa::path(
    get,
    path = "/api/v1/admin/exchange/outbox/{id}/{part}",
    tag = "exchange",
    description = "The stored envelope or its signature. Role: admin.",
    params(
        ("id" = String, Path, description = "The message id"),
        ("part" = String, Path, description = "`envelope` or `signature`", pattern = "^(envelope|signature)$"),
    ),
    responses(
        (status = 200, description = "The bytes", content(
            (String = "application/xml"),
            (String = "application/pkcs7-signature"),
        )),
        (status = 403, description = "`ROLE_FORBIDDEN`"),
        (status = 404, description = "`NOT_FOUND`"),
    )
)]
#[tracing::instrument(name = "exchange.outbox_raw", skip_all, fields(party = %p.party_id))]
pub async fn outbox_raw(
    p: Principal,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, part) = path.into_inner();
    let client = state.pool.get().await?;
    let (env, sig) = outbox_store::envelope(&client, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    match part.as_str() {
        "envelope" => Ok(HttpResponse::Ok().content_type("application/xml").body(env)),
        "signature" => Ok(HttpResponse::Ok()
            .content_type("application/pkcs7-signature")
            .body(sig.ok_or(ApiError::NotFound)?)),
        _ => Err(ApiError::NotFound),
    }
}

/// POST /api/v1/admin/exchange/outbox/{message_id}/requeue: retry a dead letter, same id.
#[utoipa::path(
    post,
    path = "/api/v1/admin/exchange/outbox/{id}/requeue",
    tag = "exchange",
    description = "Retries a dead letter under the same message id. Role: admin.",
    params(("id" = String, Path, description = "The message id")),
    responses(
        (status = 200, description = "Pending again", body = crate::store::outbox::OutboxRow),
        (status = 403, description = "`ROLE_FORBIDDEN`"),
        (status = 404, description = "`NOT_FOUND`"),
        (status = 409, description = "`TRANSITION_FORBIDDEN`: not a dead letter, `CONFLICT`"),
    )
)]
#[tracing::instrument(name = "exchange.requeue", skip_all, fields(party = %p.party_id))]
pub async fn requeue(
    p: Principal,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let mut client = state.pool.get().await?;
    outbox_store::requeue(
        &mut client,
        id,
        state.settings.exchange.ttl_secs as f64,
        &p.party_id,
    )
    .await?;
    let row = outbox_store::get(&client, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(row))
}

/// The fault this window is to show.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"fault": {"mode": "status", "status": 503}, "times": 2}))]
pub struct SetFault {
    fault: Fault,
    /// Apply to the next `times` uses only.
    times: Option<u32>,
}

/// The fault now shown.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FaultShown {
    fault: Fault,
    /// Uses left, when limited.
    times: Option<u32>,
}

/// PUT /api/v1/admin/exchange/fault: the fault this window shows (testing, demonstrations).
#[utoipa::path(
    put,
    path = "/api/v1/admin/exchange/fault",
    tag = "exchange",
    description = "Sets the fault this window shows to partners (testing and demonstrations: slow answers, 500/503, dropped connections, bad receipt signatures). Role: admin.",
    request_body(content = SetFault, content_type = "application/json"),
    responses(
        (status = 200, description = "The fault now shown", body = FaultShown),
        (status = 400, description = "`FAULT_STATUS`, `FAULT_RATIO`"),
        (status = 403, description = "`ROLE_FORBIDDEN`"),
        (status = 409, description = "`EXCHANGE_NOT_CONFIGURED`: this window has no exchange keys"),
    )
)]
#[tracing::instrument(name = "exchange.fault", skip_all, fields(party = %p.party_id))]
pub async fn set_fault(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: SetFault = crate::api::json::read(&req, payload).await?;
    let ex = exchange(&state)?;
    if let Err(message) = crate::exchange::fault::FaultSwitch::check(&body.fault) {
        let code = match body.fault {
            Fault::FailRatio { .. } => "FAULT_RATIO",
            _ => "FAULT_STATUS",
        };
        return Err(ApiError::bad_request(code, message));
    }
    ex.fault.set(body.fault.clone(), body.times);
    let client = state.pool.get().await?;
    crate::store::audit::append(
        &client,
        &p.party_id,
        "exchange.fault_set",
        "exchange",
        &serde_json::json!({ "fault": body.fault, "times": body.times }),
    )
    .await?;
    let (fault, times) = ex.fault.current();
    Ok(HttpResponse::Ok().json(FaultShown { fault, times }))
}

/// GET /api/v1/exchange/inbox: documents and responses received from partner windows.
#[utoipa::path(
    get,
    path = "/api/v1/exchange/inbox",
    tag = "exchange",
    description = "Documents and responses received from partner windows, newest first. Roles: customs, admin.",
    params(ListQuery),
    responses(
        (status = 200, description = "The messages", body = InboundList),
        (status = 400, description = "`QUERY_INVALID`"),
        (status = 403, description = "`ROLE_FORBIDDEN`"),
    )
)]
#[tracing::instrument(name = "exchange.inbox", skip_all, fields(party = %p.party_id))]
pub async fn inbox(
    p: Principal,
    state: web::Data<AppState>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let document_type = crate::api::json::query_text("document_type", q.document_type.as_deref())?;
    let client = state.pool.get().await?;
    let rows = inbound_store::list(
        &client,
        document_type,
        q.limit.unwrap_or(100).clamp(1, 1000),
    )
    .await?;
    Ok(HttpResponse::Ok().json(InboundList { items: rows }))
}

/// GET /api/v1/exchange/inbox/{id}
#[utoipa::path(
    get,
    path = "/api/v1/exchange/inbox/{id}",
    tag = "exchange",
    description = "One received message. Roles: customs, admin.",
    params(("id" = String, Path, description = "The received message's id")),
    responses(
        (status = 200, description = "The message", body = crate::store::inbound::InboundRow),
        (status = 403, description = "`ROLE_FORBIDDEN`"),
        (status = 404, description = "`NOT_FOUND`"),
    )
)]
#[tracing::instrument(name = "exchange.inbox_get", skip_all, fields(party = %p.party_id))]
pub async fn inbox_get(
    p: Principal,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let row = inbound_store::get(&client, path.into_inner())
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(row))
}

/// GET /api/v1/exchange/inbox/{id}/{envelope|signature|receipt|receipt-signature}: as stored.
#[utoipa::path(
    get,
    path = "/api/v1/exchange/inbox/{id}/{part}",
    tag = "exchange",
    description = "A received message's envelope, signature, our receipt and its signature as stored, or the carried document in our own format (`document`, mapped from a partner's format). Roles: customs, admin.",
    params(
        ("id" = String, Path, description = "The received message's id"),
        ("part" = String, Path, description = "`envelope`, `signature`, `receipt`, `receipt-signature` or `document`",
            pattern = "^(envelope|signature|receipt|receipt-signature|document)$"),
    ),
    responses(
        (status = 200, description = "The bytes", content(
            (String = "application/xml"),
            (String = "application/pkcs7-signature"),
        )),
        (status = 400, description = "`XML_EMPTY`, `XML_ENCODING`, `XML_DOCTYPE`, `XML_TOO_DEEP`, `XML_TOO_MANY_ELEMENTS`, `XML_TOO_MANY_ATTRIBUTES`, `XML_TOO_MANY_NAMESPACES`, `XML_TOO_MANY_NAMES`, `XML_NAME_TOO_LONG`, `XML_TOO_COSTLY`, `XML_MALFORMED`: a stored payload that cannot be read as XML"),
        (status = 403, description = "`ROLE_FORBIDDEN`"),
        (status = 404, description = "`NOT_FOUND`"),
    )
)]
#[tracing::instrument(name = "exchange.inbox_raw", skip_all, fields(party = %p.party_id))]
pub async fn inbox_raw(
    p: Principal,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, part) = path.into_inner();
    let client = state.pool.get().await?;
    let [env, sig, receipt, receipt_sig] = inbound_store::raw(&client, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let (body, ct) = match part.as_str() {
        "envelope" => (env, "application/xml"),
        "signature" => (sig, "application/pkcs7-signature"),
        "receipt" => (receipt, "application/xml"),
        "receipt-signature" => (receipt_sig, "application/pkcs7-signature"),
        // The carried document in our own format: as received, or mapped back from a
        // partner's format (Korea's certificate of origin → ours).
        "document" => (document(&env, &state.validator.limits)?, "application/xml"),
        _ => return Err(ApiError::NotFound),
    };
    Ok(HttpResponse::Ok().content_type(ct).body(body))
}

/// Customs' decision on a received document.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"decision": "rejected", "reasons": [{"code": "HS_MISMATCH", "text": "Item 2: HS code does not match", "path": "/Declaration/Item[2]/HSCode"}]}))]
pub struct BusinessDecision {
    /// `accepted`, `rejected`, and for certificates of origin `preference-granted` or
    /// `preference-not-granted`.
    decision: String,
    #[serde(default)]
    reasons: Vec<respond::Reason>,
}

/// POST /api/v1/exchange/messages/{id}/response: customs' decision on a received document,
/// sent back to its sender as a business response in the same conversation.
#[utoipa::path(
    post,
    path = "/api/v1/exchange/messages/{id}/response",
    tag = "exchange",
    description = "Customs' decision on a received document, sent back to its sender as a business response in the same conversation. Takes effect once. Role: customs.",
    params(("id" = String, Path, description = "The received message's id")),
    request_body(content = BusinessDecision, content_type = "application/json"),
    responses(
        (status = 201, description = "The response, enqueued", body = crate::exchange::respond::Responded),
        (status = 400, description = "`DECISION_UNKNOWN`, `REASON_REQUIRED`"),
        (status = 403, description = "`ROLE_FORBIDDEN`"),
        (status = 404, description = "`NOT_FOUND`"),
        (status = 409, description = "`EXCHANGE_NOT_CONFIGURED`: this window has no exchange keys; `NO_PARTNER`, `NOT_ANSWERABLE`, `TRANSITION_FORBIDDEN`, `CONFLICT`"),
    )
)]
#[tracing::instrument(name = "exchange.respond", skip_all, fields(party = %p.party_id))]
pub async fn respond(
    p: Principal,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: BusinessDecision = crate::api::json::read(&req, payload).await?;
    let ex = exchange(&state)?;
    let responded = respond::respond(
        &state.pool,
        ex,
        &state.settings,
        path.into_inner(),
        &p.party_id,
        &body.decision,
        &body.reasons,
    )
    .await?;
    Ok(HttpResponse::Created().json(responded))
}

fn document(envelope_bytes: &[u8], limits: &crate::xml::Limits) -> Result<Vec<u8>, ApiError> {
    let payload = envelope::payload(envelope_bytes)
        .ok_or_else(|| ApiError::Internal("a stored envelope has no payload".into()))?;
    let tree = crate::xml::Tree::parse(payload, limits).map_err(ApiError::Xml)?;
    if tree.root_ns == DocKind::KrCoo.namespace() {
        Ok(form_d::from_korea(&tree)?)
    } else {
        Ok(payload.to_vec())
    }
}
