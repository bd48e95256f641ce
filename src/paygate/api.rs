//! The platform's server-to-server API: orders, status queries, refunds, settlement files,
//! faults and health. Every answer body (errors included) is signed by the platform's key
//! over its exact bytes, in `x-payment-signature`, with its certificate's fingerprint in
//! `x-payment-key`.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{Duration, FixedOffset, NaiveDate, TimeZone, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::merchants::Lookup;
use super::{store, workflow, Faults, PaygateError, State};
use crate::payments::protocol::{
    write_settlement, OrderRequest, PlatformError, RefundRequest, SettlementRow, SettlementStatus,
    StatusQuery, KEY_HEADER, SIGNATURE_HEADER,
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/api/orders", web::post().to(create_order))
        .route("/api/orders/query", web::post().to(query_order))
        .route("/api/refunds", web::post().to(refund))
        .route("/api/settlements/{file}", web::get().to(settlement))
        .route("/api/faults", web::put().to(put_faults))
        .route("/api/faults", web::get().to(get_faults));
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

/// A body signed with the platform's key.
fn signed(state: &State, status: StatusCode, content_type: &str, body: Vec<u8>) -> HttpResponse {
    match state.signer.sign(&body) {
        Ok(sig) => HttpResponse::build(status)
            .content_type(content_type)
            .insert_header((SIGNATURE_HEADER, sig))
            .insert_header((KEY_HEADER, state.signer.fingerprint()))
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "signing an answer failed");
            HttpResponse::InternalServerError().finish()
        }
    }
}

fn signed_json<T: Serialize>(state: &State, status: StatusCode, value: &T) -> HttpResponse {
    match serde_json::to_vec(value) {
        Ok(body) => signed(state, status, "application/json", body),
        Err(e) => {
            tracing::error!(error = %e, "serialising an answer failed");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// Every error the API answers: a signed `PlatformError`, its status and code from
/// [`PaygateError::public`]; internal causes are logged, not shown.
fn failure(state: &State, e: &PaygateError) -> HttpResponse {
    let (status, code, message) = e.public();
    if status >= 500 {
        tracing::error!(error = %crate::error::cause_chain(e), code, "request failed");
    } else {
        tracing::info!(code, detail = %message, "request refused");
    }
    signed_json(
        state,
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &PlatformError {
            code: code.into(),
            message,
        },
    )
}

fn answer<T: Serialize>(
    state: &State,
    result: Result<(StatusCode, T), PaygateError>,
) -> HttpResponse {
    match result {
        Ok((status, value)) => signed_json(state, status, &value),
        Err(e) => failure(state, &e),
    }
}

fn malformed(message: impl Into<String>) -> PaygateError {
    PaygateError::refused(400, "MALFORMED_REQUEST", message)
}

/// Checks a merchant's signed request: `merchant_id` in the body names a configured merchant
/// whose certificate verifies the signature over the exact bytes; then parses it as `T`.
/// Errors: 400 `MALFORMED_REQUEST`; 401 `MERCHANT_UNKNOWN`, `MERCHANT_CERTIFICATE_MISSING`,
/// `MERCHANT_CERTIFICATE_INVALID`, `SIGNATURE_INVALID`.
fn open_signed<T: DeserializeOwned>(
    state: &State,
    req: &HttpRequest,
    body: &[u8],
) -> Result<T, PaygateError> {
    #[derive(Deserialize)]
    struct Who {
        merchant_id: String,
    }
    let who: Who = serde_json::from_slice(body).map_err(|e| {
        malformed(format!(
            "the body is not a JSON object with merchant_id: {e}"
        ))
    })?;
    let verifier = match state.merchants.lookup(&who.merchant_id) {
        Lookup::Found(v) => v,
        Lookup::Unknown => {
            return Err(PaygateError::refused(
                401,
                "MERCHANT_UNKNOWN",
                format!("{} is not a merchant of this platform", who.merchant_id),
            ))
        }
        Lookup::Missing => {
            return Err(PaygateError::refused(
                401,
                "MERCHANT_CERTIFICATE_MISSING",
                format!(
                    "the platform has no certificate for merchant {} yet",
                    who.merchant_id
                ),
            ))
        }
        Lookup::Invalid(why) => {
            tracing::warn!(merchant = %who.merchant_id, %why, "merchant certificate unreadable");
            return Err(PaygateError::refused(
                401,
                "MERCHANT_CERTIFICATE_INVALID",
                format!(
                    "the platform cannot read merchant {}'s certificate",
                    who.merchant_id
                ),
            ));
        }
    };
    let signature = req
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    verifier
        .verify(body, signature)
        .map_err(|e| PaygateError::refused(401, "SIGNATURE_INVALID", format!("{e}")))?;
    serde_json::from_slice(body)
        .map_err(|e| malformed(format!("the body is not the expected message: {e}")))
}

#[tracing::instrument(name = "paygate.create_order", skip_all)]
async fn create_order(state: web::Data<State>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    // A platform that is down looks at nothing.
    if state.faults().create_down {
        return failure(
            &state,
            &PaygateError::refused(
                503,
                "PLATFORM_UNAVAILABLE",
                "the payment platform is unavailable; try again later",
            ),
        );
    }
    let result = async {
        let order_req: OrderRequest = open_signed(&state, &req, &body)?;
        let (order, created) = workflow::create_order(&state, &order_req).await?;
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((status, order.to_order(&state.public_url, Utc::now())))
    }
    .await;
    answer(&state, result)
}

#[tracing::instrument(name = "paygate.query_order", skip_all)]
async fn query_order(state: web::Data<State>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let result = async {
        let q: StatusQuery = open_signed(&state, &req, &body)?;
        let order = workflow::query(&state, &q).await?;
        Ok((
            StatusCode::OK,
            order.to_order(&state.public_url, Utc::now()),
        ))
    }
    .await;
    answer(&state, result)
}

#[tracing::instrument(name = "paygate.refund", skip_all)]
async fn refund(state: web::Data<State>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let result = async {
        let r: RefundRequest = open_signed(&state, &req, &body)?;
        let (refund, created) = workflow::refund(&state, &r).await?;
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((
            status,
            crate::payments::protocol::Refund {
                merchant_id: refund.merchant_id,
                reference: refund.reference,
                refund_reference: refund.refund_reference,
                amount: refund.amount,
                currency: crate::payments::protocol::CURRENCY.into(),
                status: crate::payments::protocol::RefundStatus::Refunded,
                transaction_id: Some(refund.transaction_id),
            },
        ))
    }
    .await;
    answer(&state, result)
}

#[derive(Deserialize)]
struct SettlementQuery {
    merchant_id: Option<String>,
}

/// The settlement day `[00:00, 24:00)` local time at `offset_minutes` east of UTC, in UTC.
pub fn day_bounds(
    day: NaiveDate,
    offset_minutes: i32,
) -> Option<(chrono::DateTime<Utc>, chrono::DateTime<Utc>)> {
    let offset = FixedOffset::east_opt(offset_minutes.checked_mul(60)?)?;
    let start = offset
        .from_local_datetime(&day.and_hms_opt(0, 0, 0)?)
        .single()?
        .with_timezone(&Utc);
    Some((start, start + Duration::days(1)))
}

/// `GET /api/settlements/{YYYY-MM-DD}.csv?merchant_id=…`: the merchant's payments paid and
/// refunds paid back that day, with the settlement faults applied. Errors: 400
/// `MALFORMED_REQUEST` (no merchant_id), 404 `DATE_INVALID`, 401 `MERCHANT_UNKNOWN`.
#[tracing::instrument(name = "paygate.settlement", skip_all, fields(file = %path))]
async fn settlement(
    state: web::Data<State>,
    path: web::Path<String>,
    query: web::Query<SettlementQuery>,
) -> HttpResponse {
    let result = async {
        let day = path
            .strip_suffix(".csv")
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .ok_or_else(|| {
                PaygateError::refused(404, "DATE_INVALID", "the file is named YYYY-MM-DD.csv")
            })?;
        let merchant = query
            .merchant_id
            .as_deref()
            .ok_or_else(|| malformed("merchant_id is required"))?;
        if !state.merchants.is_known(merchant) {
            return Err(PaygateError::refused(
                401,
                "MERCHANT_UNKNOWN",
                format!("{merchant} is not a merchant of this platform"),
            ));
        }
        let (from, to) = day_bounds(day, state.utc_offset_minutes)
            .ok_or_else(|| PaygateError::Config("bad settlement offset".into()))?;
        let client = state.pool.get().await?;
        let lines = store::settlement(&client, merchant, from, to).await?;
        let faults = state.faults();
        let rows: Vec<SettlementRow> = lines
            .into_iter()
            .filter(|l| !faults.settlement_omit.contains(&l.reference))
            .map(|l| SettlementRow {
                amount: match faults.settlement_amounts.get(&l.reference) {
                    Some(a) if !l.refund => *a,
                    _ => l.amount,
                },
                transaction_id: l.transaction_id,
                reference: l.reference,
                time: l.time,
                status: if l.refund {
                    SettlementStatus::Refunded
                } else {
                    SettlementStatus::Paid
                },
            })
            .collect();
        Ok(write_settlement(&rows))
    }
    .await;
    match result {
        Ok(csv) => signed(&state, StatusCode::OK, "text/csv; charset=utf-8", csv),
        Err(e) => failure(&state, &e),
    }
}

/// The control token's check: 404 when faults are off (the endpoint does not exist), 401
/// `UNAUTHORIZED` without the right bearer token (compared in constant time).
fn control(state: &State, req: &HttpRequest) -> Result<(), PaygateError> {
    let Some(token) = state.control_token.as_deref() else {
        return Err(PaygateError::refused(404, "NOT_FOUND", "no such endpoint"));
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if given.len() == token.len() && openssl::memcmp::eq(given.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(PaygateError::refused(
            401,
            "UNAUTHORIZED",
            "the control token is required (Authorization: Bearer …)",
        ))
    }
}

#[tracing::instrument(name = "paygate.put_faults", skip_all)]
async fn put_faults(state: web::Data<State>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let result = control(&state, &req).and_then(|()| {
        let faults: Faults = serde_json::from_slice(&body)
            .map_err(|e| malformed(format!("the body is not Faults JSON: {e}")))?;
        if let Ok(mut f) = state.faults.write() {
            *f = faults.clone();
        }
        tracing::info!(?faults, "faults set");
        Ok((StatusCode::OK, faults))
    });
    answer(&state, result)
}

#[tracing::instrument(name = "paygate.get_faults", skip_all)]
async fn get_faults(state: web::Data<State>, req: HttpRequest) -> HttpResponse {
    let result = control(&state, &req).map(|()| (StatusCode::OK, state.faults()));
    answer(&state, result)
}

#[cfg(test)]
mod tests {
    use super::day_bounds;
    use chrono::NaiveDate;

    #[test]
    fn a_settlement_day_is_local_midnight_to_midnight() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let (from, to) = day_bounds(day, 420).unwrap();
        assert_eq!(from.to_rfc3339(), "2026-11-29T17:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2026-11-30T17:00:00+00:00");
        let (from, _) = day_bounds(day, 0).unwrap();
        assert_eq!(from.to_rfc3339(), "2026-11-30T00:00:00+00:00");
        assert!(day_bounds(day, 24 * 60).is_none(), "not a UTC offset");
    }
}
