//! What a portal page can answer besides itself. Handlers return `PortalError` with `?`; the
//! portal's error middleware (`mod.rs`) renders it as a page in the request's language, or as
//! a redirect to the log-in page. Errors a person can correct on a form are not errors here:
//! the form is shown again with the message beside its field.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::store::StoreError;
use crate::workflow::WorkflowError;

#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    /// No live session: the person is sent to the log-in page, then back to `next`.
    #[error("log-in required")]
    LoginRequired { next: String },
    /// The form's CSRF token is missing or is not the session's.
    #[error("the form's security token is missing or out of date")]
    Csrf,
    /// The person's role may not open this page.
    #[error("this page is not for your role")]
    Forbidden,
    /// Nothing here, or nothing this person may see (the same answer, on purpose).
    #[error("not found")]
    NotFound,
    /// Too many attempts: try again after `retry_after` seconds.
    #[error("too many attempts")]
    Throttled { retry_after: u64 },
    /// The action conflicts with the dossier's state (decided already, withdrawn …); `code` is
    /// the workflow's stable code, `detail` its message.
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// A request no form of ours sends (a tampered or truncated form).
    #[error("{0}")]
    BadRequest(String),
    /// A dependency is down (database): nothing was changed.
    #[error("{0}")]
    Unavailable(String),
    /// A bug; logged with its cause, shown as a plain apology.
    #[error("{0}")]
    Internal(String),
}

/// Seconds a person (or their browser) is asked to wait before trying again after a 503.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

impl PortalError {
    /// The key of the page title and message in the catalogues.
    pub fn message_key(&self) -> &'static str {
        match self {
            PortalError::LoginRequired { .. } => "error-login-required",
            PortalError::Csrf => "error-csrf",
            PortalError::Forbidden => "error-forbidden",
            PortalError::NotFound => "error-not-found",
            PortalError::Throttled { .. } => "error-throttled",
            PortalError::Conflict { .. } => "error-conflict",
            PortalError::BadRequest(_) => "error-bad-request",
            PortalError::Unavailable(_) => "error-unavailable",
            PortalError::Internal(_) => "error-internal",
        }
    }

    /// A stable code shown on the page (and in the logs), as the API's problem codes.
    pub fn code(&self) -> &'static str {
        match self {
            PortalError::LoginRequired { .. } => "LOGIN_REQUIRED",
            PortalError::Csrf => "CSRF_INVALID",
            PortalError::Forbidden => "ROLE_FORBIDDEN",
            PortalError::NotFound => "NOT_FOUND",
            PortalError::Throttled { .. } => "TOO_MANY_ATTEMPTS",
            PortalError::Conflict { code, .. } => code,
            PortalError::BadRequest(_) => "BAD_REQUEST",
            PortalError::Unavailable(_) => "UNAVAILABLE",
            PortalError::Internal(_) => "INTERNAL",
        }
    }
}

impl ResponseError for PortalError {
    fn status_code(&self) -> StatusCode {
        match self {
            PortalError::LoginRequired { .. } => StatusCode::SEE_OTHER,
            PortalError::Csrf | PortalError::Forbidden => StatusCode::FORBIDDEN,
            PortalError::NotFound => StatusCode::NOT_FOUND,
            PortalError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            PortalError::Conflict { .. } => StatusCode::CONFLICT,
            PortalError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PortalError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            PortalError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A plain answer; the portal's middleware replaces its body with the page.
    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status_code());
        match self {
            PortalError::LoginRequired { next } => {
                let q = serde_urlencoded::to_string([("next", next.as_str())]).unwrap_or_default();
                resp.insert_header((actix_web::http::header::LOCATION, format!("/login?{q}")));
            }
            PortalError::Throttled { retry_after } => {
                resp.insert_header((
                    actix_web::http::header::RETRY_AFTER,
                    retry_after.to_string(),
                ));
            }
            PortalError::Unavailable(_) => {
                resp.insert_header((
                    actix_web::http::header::RETRY_AFTER,
                    UNAVAILABLE_RETRY_AFTER_SECS.to_string(),
                ));
            }
            _ => {}
        }
        resp.content_type("text/plain; charset=utf-8")
            .body(self.code())
    }
}

impl From<StoreError> for PortalError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => PortalError::NotFound,
            StoreError::Transition(m) => PortalError::Conflict {
                code: "TRANSITION_FORBIDDEN",
                detail: m,
            },
            StoreError::Conflict(m) => PortalError::Conflict {
                code: "CONFLICT",
                detail: m,
            },
            StoreError::Unavailable(m) => PortalError::Unavailable(m),
            StoreError::Db(crate::db::DbError::Pool(p)) => PortalError::Unavailable(p.to_string()),
            other => PortalError::Internal(crate::error::cause_chain(&other)),
        }
    }
}

impl From<deadpool_postgres::PoolError> for PortalError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        PortalError::Unavailable(e.to_string())
    }
}

impl From<tokio_postgres::Error> for PortalError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::from(e).into()
    }
}

/// Workflow answers that no form field explains (a form's own mistakes are shown on the
/// form by its handler before it gets here).
impl From<WorkflowError> for PortalError {
    fn from(e: WorkflowError) -> Self {
        match e {
            WorkflowError::Store(s) => s.into(),
            WorkflowError::Conflict { code, detail } => PortalError::Conflict { code, detail },
            WorkflowError::Forbidden { .. } => PortalError::Forbidden,
            WorkflowError::BadRequest { detail, .. } => PortalError::BadRequest(detail),
            WorkflowError::Unavailable { detail, .. }
            | WorkflowError::BadGateway { detail, .. } => PortalError::Unavailable(detail),
            other => PortalError::Internal(crate::error::cause_chain(&other)),
        }
    }
}
