//! Exchange endpoints: the partner-facing message endpoint (authenticated by signature, not
//! by token), the customs inbox and business responses, and the operator's outbox console.

use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use serde::Deserialize;
use uuid::Uuid;

use crate::api::auth::require;
use crate::api::body::{read_limited, require_xml};
use crate::api::AppState;
use crate::domain::party::{Principal, Role};
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

#[derive(Deserialize)]
pub struct SendDeclaration {
    declaration_id: Uuid,
}

/// POST /api/v1/admin/exchange/send: the ACDD of an export declaration, built and enqueued in
/// one transaction (the path customs clearance takes).
#[tracing::instrument(name = "exchange.send_acdd", skip_all, fields(party = %p.party_id))]
pub async fn send_acdd(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    require(&p, &[Role::Admin])?;
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
    Ok(HttpResponse::Created().json(serde_json::json!({
        "message_id": queued.message_id,
        "conversation_id": queued.conversation_id,
        "receiver": queued.receiver,
        "document_type": "ACDD",
        "reference": queued.reference,
        "declaration_reference": queued.declaration_reference,
    })))
}

/// POST /api/v1/admin/exchange/form-d: an issued Form D (XML body) for the partner of its
/// import country, in that partner's format profile.
#[tracing::instrument(name = "exchange.send_form_d", skip_all, fields(party = %p.party_id))]
pub async fn send_form_d(
    p: Principal,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require(&p, &[Role::Admin])?;
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
    let queued = form_d::enqueue(&tx, &state.settings, prepared, cause, &p.party_id).await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(serde_json::json!({
        "message_id": queued.message_id,
        "conversation_id": queued.conversation_id,
        "receiver": receiver,
        "document_type": document_type,
        "reference": reference,
    })))
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    document_type: Option<String>,
    limit: Option<i64>,
}

/// GET /api/v1/admin/exchange/outbox?status=dead_letter
#[tracing::instrument(name = "exchange.outbox_list", skip_all)]
pub async fn outbox_list(
    p: Principal,
    state: web::Data<AppState>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    require(&p, &[Role::Admin])?;
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
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": rows })))
}

/// GET /api/v1/admin/exchange/outbox/{message_id}
#[tracing::instrument(name = "exchange.outbox_get", skip_all)]
pub async fn outbox_get(
    p: Principal,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    require(&p, &[Role::Admin])?;
    let client = state.pool.get().await?;
    let row = outbox_store::get(&client, path.into_inner())
        .await?
        .ok_or(ApiError::NotFound)?;
    let answers = inbound_store::answers_to(&client, &row.receiver, &row.reference).await?;
    let mut body = serde_json::to_value(&row).map_err(|e| ApiError::Internal(e.to_string()))?;
    body["answers"] =
        serde_json::to_value(answers).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok().json(body))
}

/// GET /api/v1/admin/exchange/outbox/{message_id}/{envelope|signature}: the stored bytes.
#[tracing::instrument(name = "exchange.outbox_raw", skip_all)]
pub async fn outbox_raw(
    p: Principal,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, String)>,
) -> Result<HttpResponse, ApiError> {
    require(&p, &[Role::Admin])?;
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
#[tracing::instrument(name = "exchange.requeue", skip_all, fields(party = %p.party_id))]
pub async fn requeue(
    p: Principal,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    require(&p, &[Role::Admin])?;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetFault {
    fault: Fault,
    /// Apply to the next `times` uses only.
    times: Option<u32>,
}

/// PUT /api/v1/admin/exchange/fault: the fault this window shows (testing, demonstrations).
#[tracing::instrument(name = "exchange.fault", skip_all, fields(party = %p.party_id))]
pub async fn set_fault(
    p: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    require(&p, &[Role::Admin])?;
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
    Ok(HttpResponse::Ok().json(serde_json::json!({ "fault": fault, "times": times })))
}

/// GET /api/v1/exchange/inbox: documents and responses received from partner windows.
#[tracing::instrument(name = "exchange.inbox", skip_all)]
pub async fn inbox(
    p: Principal,
    state: web::Data<AppState>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    require(&p, &[Role::Customs, Role::Admin])?;
    let client = state.pool.get().await?;
    let rows = inbound_store::list(
        &client,
        q.document_type.as_deref(),
        q.limit.unwrap_or(100).clamp(1, 1000),
    )
    .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": rows })))
}

/// GET /api/v1/exchange/inbox/{id}
#[tracing::instrument(name = "exchange.inbox_get", skip_all)]
pub async fn inbox_get(
    p: Principal,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    require(&p, &[Role::Customs, Role::Admin])?;
    let client = state.pool.get().await?;
    let row = inbound_store::get(&client, path.into_inner())
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(row))
}

/// GET /api/v1/exchange/inbox/{id}/{envelope|signature|receipt|receipt-signature}: as stored.
#[tracing::instrument(name = "exchange.inbox_raw", skip_all)]
pub async fn inbox_raw(
    p: Principal,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, String)>,
) -> Result<HttpResponse, ApiError> {
    require(&p, &[Role::Customs, Role::Admin])?;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessDecision {
    decision: String,
    #[serde(default)]
    reasons: Vec<respond::Reason>,
}

/// POST /api/v1/exchange/messages/{id}/response: customs' decision on a received document,
/// sent back to its sender as a business response in the same conversation.
#[tracing::instrument(name = "exchange.respond", skip_all, fields(party = %p.party_id))]
pub async fn respond(
    p: Principal,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    require(&p, &[Role::Customs])?;
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
