//! An application's fee as the portal shows it (`templates/fees/block.html`), on the trader's
//! application page, the return page from the payment platform and the officer's application
//! page: amount, payment reference, due date, status (due / paid on … with the platform's
//! transaction / cancelled / refund requested / refunded), the e-receipt's downloads for the
//! applicant, and the "Pay now" form while the fee is due. Everything shown is what the window
//! recorded (`store::payments::NoticeView`), never what a browser said.

use actix_web::http::header::{self, HeaderValue};
use actix_web::HttpResponse;

use super::Page;
use crate::config::PaymentSettings;
use crate::store::payments::NoticeView;

/// The e-receipt's downloads (the applicant's portal paths, same bytes as the API's).
pub struct ReceiptLinks {
    /// `RCPT-2026-000001`.
    pub number: String,
    /// `/fees/{reference}/receipt.xml`.
    pub xml: String,
    /// `/fees/{reference}/receipt.p7s`.
    pub p7s: String,
}

/// The fee block of a page.
pub struct FeeBlock {
    /// The payment reference, e.g. `FEE-2026-000001`.
    pub reference: String,
    /// `due`, `paid`, `cancelled`, `refund_requested` or `refunded`.
    pub status: String,
    /// Label and value pairs, in the page's language.
    pub facts: Vec<(String, String)>,
    /// The e-receipt, once paid, for those who may download it.
    pub receipt: Option<ReceiptLinks>,
    /// Where the "Pay now" form posts (`/applications/{id}/pay`), while the fee is due and the
    /// page is the applicant's.
    pub pay_action: Option<String>,
    /// Why the last "Pay now" did not reach the platform, shown beside the button.
    pub pay_error: Option<String>,
}

/// The name of a fee notice's status in the page's language (`fees-status-<status>`).
pub fn status_label(page: &Page, status: &str) -> String {
    page.t(&format!("fees-status-{}", status.replace('_', "-")))
}

/// The portal paths of a notice's e-receipt and its signature.
pub fn receipt_paths(reference: &str) -> (String, String) {
    (
        format!("/fees/{reference}/receipt.xml"),
        format!("/fees/{reference}/receipt.p7s"),
    )
}

impl FeeBlock {
    /// The block of `v`. `applicant`: the page is the applicant's own (receipt downloads, and
    /// the "Pay now" form while the fee is due).
    pub fn new(page: &Page, v: &NoticeView, applicant: bool) -> FeeBlock {
        let mut facts = vec![
            (page.t("fees-col-amount"), page.vnd(&v.amount)),
            (page.t("fees-col-reference"), v.reference.clone()),
            (page.t("fees-col-due-date"), page.date(&v.due_date)),
            (page.t("fees-col-status"), status_label(page, &v.status)),
        ];
        if let Some(at) = &v.paid_at {
            facts.push((page.t("fees-paid-at"), page.datetime(at)));
        }
        if let Some(r) = &v.receipt {
            facts.push((page.t("fees-transaction"), r.transaction_id.clone()));
            facts.push((page.t("fees-receipt-number"), r.number.clone()));
        }
        if let Some(r) = &v.refund {
            let value = match &r.refunded_at {
                Some(at) => page.ta(
                    "fees-refund-done",
                    &[("amount", &page.vnd(&r.amount)), ("at", &page.datetime(at))],
                ),
                None => page.ta(
                    "fees-refund-pending",
                    &[
                        ("amount", &page.vnd(&r.amount)),
                        ("at", &page.datetime(&r.requested_at)),
                    ],
                ),
            };
            facts.push((page.t("fees-refund"), value));
        }
        let receipt = v.receipt.as_ref().filter(|_| applicant).map(|r| {
            let (xml, p7s) = receipt_paths(&v.reference);
            ReceiptLinks {
                number: r.number.clone(),
                xml,
                p7s,
            }
        });
        FeeBlock {
            reference: v.reference.clone(),
            status: v.status.clone(),
            facts,
            receipt,
            pay_action: (applicant && v.status == "due")
                .then(|| format!("/applications/{}/pay", v.application_id)),
            pay_error: None,
        }
    }
}

/// The origin (`scheme://host[:port]`) of an http(s) URL, if it has one.
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let host = rest.split(['/', '?', '#']).next()?;
    let ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    ok.then(|| format!("{scheme}://{host}"))
}

/// The Content-Security-Policy of a page holding the "Pay now" form: the portal's own, with the
/// payment platform's origin allowed as a form target, because the form's answer redirects the
/// browser there and browsers hold the redirect of a form submission to `form-action` too.
/// The origins are those of `payments.platform_url` and of `pay_url` (an order's payer page,
/// when one is known).
pub fn csp_with_platform(settings: &PaymentSettings, pay_url: Option<&str>) -> String {
    let mut allowed = vec!["'self'".to_owned()];
    for o in [Some(settings.platform_url.as_str()), pay_url]
        .into_iter()
        .flatten()
        .filter_map(origin)
    {
        if !allowed.contains(&o) {
            allowed.push(o);
        }
    }
    super::CONTENT_SECURITY_POLICY.replace(
        "form-action 'self'",
        &format!("form-action {}", allowed.join(" ")),
    )
}

/// Sets [`csp_with_platform`] on a rendered page (the portal's middleware keeps a policy the
/// handler set).
pub fn allow_platform_form(
    mut resp: HttpResponse,
    settings: &PaymentSettings,
    pay_url: Option<&str>,
) -> HttpResponse {
    if let Ok(v) = HeaderValue::from_str(&csp_with_platform(settings, pay_url)) {
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        assert_eq!(
            origin("http://127.0.0.1:8090/pay/ORD-1?x=1").as_deref(),
            Some("http://127.0.0.1:8090")
        );
        assert_eq!(
            origin("https://pay.example.vn").as_deref(),
            Some("https://pay.example.vn")
        );
        assert_eq!(origin("javascript:alert(1)"), None);
        assert_eq!(origin("http://a b/"), None);
        assert_eq!(origin("http://evil.example; script-src *"), None);
    }

    #[test]
    fn the_pay_form_may_post_to_the_platform_and_nowhere_else() {
        let settings = PaymentSettings::default();
        let csp = csp_with_platform(&settings, Some("http://pay.example.vn:8443/pay/ORD-1"));
        assert!(
            csp.contains("form-action 'self' http://127.0.0.1:8090 http://pay.example.vn:8443;"),
            "{csp}"
        );
        // The rest of the policy is the portal's.
        assert!(
            csp.starts_with("default-src 'none'; style-src 'self'"),
            "{csp}"
        );
        assert!(
            csp.ends_with("frame-ancestors 'none'; base-uri 'none'"),
            "{csp}"
        );
        let same = csp_with_platform(&settings, Some("http://127.0.0.1:8090/pay/ORD-2"));
        assert!(
            same.contains("form-action 'self' http://127.0.0.1:8090;"),
            "{same}"
        );
    }
}
