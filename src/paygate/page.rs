//! The payer's page: `GET /pay/{order_id}` shows the order with "Pay" and "Cancel" buttons
//! (two POST forms, no script); after either the browser is sent back (303) to the merchant's
//! `return_url?reference=…&result=paid|cancelled`. The forms carry the order's own random
//! token, so that a page elsewhere cannot pay or cancel an order whose id it learnt.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use askama::Template;
use chrono::Utc;
use serde::Deserialize;

use super::store::{self, OrderRow};
use super::{workflow, PaygateError, State};
use crate::payments::protocol::OrderStatus;

const CSS: &str = include_str!("../../templates/paygate/paygate.css");

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/assets/paygate.css", web::get().to(css))
        .route("/pay/{order_id}", web::get().to(show))
        .route("/pay/{order_id}/pay", web::post().to(pay))
        .route("/pay/{order_id}/cancel", web::post().to(cancel));
}

/// `150000` → `150.000 ₫` (Vietnamese grouping: dots between thousands).
pub fn format_vnd(amount: i64) -> String {
    let digits = amount.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('.');
        }
        out.push(c);
    }
    let sign = if amount < 0 { "-" } else { "" };
    format!("{sign}{out} ₫")
}

#[derive(Template)]
#[template(path = "paygate/pay.html")]
struct PayPage {
    title_vi: &'static str,
    title_en: &'static str,
    order_id: String,
    merchant: String,
    reference: String,
    description: String,
    amount: String,
    expires_at: String,
    status_vi: &'static str,
    status_en: &'static str,
    payable: bool,
    token: String,
}

#[derive(Template)]
#[template(path = "paygate/message.html")]
struct MessagePage {
    title_vi: &'static str,
    title_en: &'static str,
    message_vi: String,
    message_en: String,
    back: Option<String>,
}

async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(CSS)
}

fn html(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((
                header::CONTENT_SECURITY_POLICY,
                // No form-action: the forms' answers redirect to the merchant's site.
                "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'",
            ))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "rendering a payer's page failed");
            HttpResponse::InternalServerError().finish()
        }
    }
}

fn message(
    status: StatusCode,
    title: (&'static str, &'static str),
    vi: impl Into<String>,
    en: impl Into<String>,
    back: Option<String>,
) -> HttpResponse {
    html(
        status,
        &MessagePage {
            title_vi: title.0,
            title_en: title.1,
            message_vi: vi.into(),
            message_en: en.into(),
            back,
        },
    )
}

fn not_found() -> HttpResponse {
    message(
        StatusCode::NOT_FOUND,
        ("Không tìm thấy", "Not found"),
        "Không có khoản thanh toán này.",
        "There is no such payment.",
        None,
    )
}

fn status_text(s: OrderStatus) -> (&'static str, &'static str) {
    match s {
        OrderStatus::Pending => ("Chờ thanh toán", "Awaiting payment"),
        OrderStatus::Paid => ("Đã thanh toán", "Paid"),
        OrderStatus::Cancelled => ("Đã hủy", "Cancelled"),
        OrderStatus::Expired => ("Đã hết hạn", "Expired"),
        OrderStatus::Refunded => ("Đã hoàn tiền", "Refunded"),
    }
}

/// Where the browser goes back to: `return_url` with `reference` and `result` appended (with
/// `&` when it already has a query).
pub fn return_to(order: &OrderRow, result: &str) -> String {
    let query =
        serde_urlencoded::to_string([("reference", order.reference.as_str()), ("result", result)])
            .unwrap_or_default();
    let sep = if order.return_url.contains('?') {
        '&'
    } else {
        '?'
    };
    format!("{}{sep}{query}", order.return_url)
}

#[tracing::instrument(name = "paygate.page", skip_all, fields(order_id = %order_id))]
async fn show(state: web::Data<State>, order_id: web::Path<String>) -> HttpResponse {
    let order = match state.pool.get().await {
        Ok(client) => store::find_order_by_id(&client, &order_id).await,
        Err(e) => Err(e.into()),
    };
    let order = match order {
        Ok(Some(o)) => o,
        Ok(None) => return not_found(),
        Err(e) => return failed(&e),
    };
    let status = order.status_at(Utc::now());
    let (status_vi, status_en) = status_text(status);
    html(
        StatusCode::OK,
        &PayPage {
            title_vi: "Thanh toán phí",
            title_en: "Pay a fee",
            order_id: order.order_id.clone(),
            merchant: order.merchant_id.clone(),
            reference: order.reference.clone(),
            description: order.description.clone(),
            amount: format_vnd(order.amount),
            expires_at: order
                .expires_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            status_vi,
            status_en,
            payable: status == OrderStatus::Pending,
            token: order.pay_token.clone(),
        },
    )
}

fn failed(e: &PaygateError) -> HttpResponse {
    tracing::error!(error = %crate::error::cause_chain(e), "payer's page failed");
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        ("Tạm thời gián đoạn", "Temporarily unavailable"),
        "Cổng thanh toán đang gặp sự cố; vui lòng thử lại sau.",
        "The payment platform has a problem; please try again later.",
        None,
    )
}

#[derive(Deserialize)]
struct Form {
    token: String,
}

#[derive(Clone, Copy)]
enum Action {
    Pay,
    Cancel,
}

#[tracing::instrument(name = "paygate.pay", skip_all, fields(order_id = %order_id))]
async fn pay(
    state: web::Data<State>,
    order_id: web::Path<String>,
    form: web::Form<Form>,
) -> HttpResponse {
    act(&state, &order_id, &form.token, Action::Pay).await
}

#[tracing::instrument(name = "paygate.cancel", skip_all, fields(order_id = %order_id))]
async fn cancel(
    state: web::Data<State>,
    order_id: web::Path<String>,
    form: web::Form<Form>,
) -> HttpResponse {
    act(&state, &order_id, &form.token, Action::Cancel).await
}

async fn act(state: &State, order_id: &str, token: &str, action: Action) -> HttpResponse {
    let order = match state.pool.get().await {
        Ok(client) => store::find_order_by_id(&client, order_id).await,
        Err(e) => Err(e.into()),
    };
    let order = match order {
        Ok(Some(o)) => o,
        Ok(None) => return not_found(),
        Err(e) => return failed(&e),
    };
    let expected = order.pay_token.as_bytes();
    if token.len() != expected.len() || !openssl::memcmp::eq(token.as_bytes(), expected) {
        return message(
            StatusCode::FORBIDDEN,
            ("Yêu cầu không hợp lệ", "Invalid request"),
            "Biểu mẫu này không thuộc khoản thanh toán này; hãy mở lại trang thanh toán.",
            "This form does not belong to this payment; open the payment page again.",
            None,
        );
    }
    let (done, result) = match action {
        Action::Pay => (workflow::pay(state, order_id).await, "paid"),
        Action::Cancel => (workflow::cancel(state, order_id).await, "cancelled"),
    };
    match done {
        Ok((order, _)) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, return_to(&order, result)))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish(),
        Err(PaygateError::Refused { code, .. }) => refused_page(&order, code),
        Err(e) => failed(&e),
    }
}

/// The page for an order that cannot be paid or cancelled (409): nothing was changed.
fn refused_page(order: &OrderRow, code: &str) -> HttpResponse {
    let (vi, en, back) = match code {
        "ORDER_EXPIRED" => (
            "Khoản thanh toán này đã hết hạn; không có khoản tiền nào bị trừ.",
            "This payment has expired; nothing was taken.",
            "cancelled",
        ),
        "ORDER_CANCELLED" => (
            "Khoản thanh toán này đã bị hủy; không có khoản tiền nào bị trừ.",
            "This payment was cancelled; nothing was taken.",
            "cancelled",
        ),
        "ORDER_PAID" => (
            "Khoản thanh toán này đã được thanh toán; không thể hủy.",
            "This payment is already paid; it cannot be cancelled.",
            "paid",
        ),
        _ => return not_found(),
    };
    message(
        StatusCode::CONFLICT,
        ("Không thể thực hiện", "Cannot be done"),
        vi,
        en,
        Some(return_to(order, back)),
    )
}

#[cfg(test)]
mod tests {
    use super::format_vnd;

    #[test]
    fn amounts_are_grouped_with_dots() {
        assert_eq!(format_vnd(150_000), "150.000 ₫");
        assert_eq!(format_vnd(1_000), "1.000 ₫");
        assert_eq!(format_vnd(999), "999 ₫");
        assert_eq!(format_vnd(12_345_678), "12.345.678 ₫");
        assert_eq!(format_vnd(0), "0 ₫");
    }
}
