//! Every error a client can see, mapped to HTTP and RFC 9457 problem+json in one place.
//! Internal causes are logged, never shown.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::db::DbError;
use crate::exchange::ExchangeError;
use crate::store::StoreError;
use crate::xml::{Violation, XmlError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or unknown bearer token")]
    Unauthorized,
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    #[error("not found")]
    NotFound,
    /// `allow` is the `Allow` header's value: the methods the path takes.
    #[error("this path takes {allow}")]
    MethodNotAllowed { allow: String },
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// A conflict whose problem document carries more members (e.g. the dossier it is with).
    #[error("{detail}")]
    ConflictWith {
        code: &'static str,
        detail: String,
        extra: serde_json::Map<String, serde_json::Value>,
    },
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    /// `expected` names what the endpoint takes, e.g. "application/xml (or text/xml,
    /// application/*+xml)".
    #[error("content type must be {expected}")]
    UnsupportedMediaType { got: String, expected: &'static str },
    #[error("Content-Encoding '{got}' is not accepted: send the body as is, gzip or deflate")]
    UnsupportedEncoding { got: String },
    #[error("{0}")]
    Xml(XmlError),
    #[error("the document has {} problem(s)", violations.len())]
    Invalid { violations: Vec<Violation> },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A signed message (a payment notification) whose signature does not verify: 401 with a
    /// code of its own, not the bearer-token challenge.
    #[error("{detail}")]
    SignatureRefused { code: &'static str, detail: String },
    /// Understood but not acceptable, without document violations (422).
    #[error("{detail}")]
    Unprocessable { code: &'static str, detail: String },
    /// A service this one depends on answered wrongly or refused (502).
    #[error("{detail}")]
    BadGateway { code: &'static str, detail: String },
    /// A service this one depends on (other than the database) is unavailable (503), with
    /// `Retry-After`.
    #[error("{detail}")]
    DependencyUnavailable {
        code: &'static str,
        detail: String,
        retry_after_secs: u64,
    },
    /// Over a throttle (`code`: AUTH_THROTTLED, WRITES_THROTTLED): retry after the seconds given.
    #[error("{detail}")]
    TooManyRequests {
        code: &'static str,
        detail: String,
        retry_after_secs: u64,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

/// An RFC 9457 problem document (`application/problem+json`): every error the API answers.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "type": "urn:nsw:problem:document-invalid", "title": "Document invalid", "status": 422,
    "code": "DOCUMENT_INVALID", "detail": "the document has 1 problem(s)",
    "errors": [{"line": 65, "column": 5, "path": "/Declaration/Item[1]/HSCode",
                "code": "HS_UNKNOWN", "message": "'999999' is not an HS 2022 subheading"}]}))]
pub(crate) struct Problem<'a> {
    /// `urn:nsw:problem:<code in kebab case>`.
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    /// The HTTP status, repeated.
    status: u16,
    /// Stable, for programs: what went wrong (see each operation's `x-problem-codes`).
    code: &'a str,
    /// For people.
    detail: String,
    /// Position of the first error in an XML body that is not well-formed.
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    column: Option<u32>,
    /// Every schema or business-rule violation (422 `DOCUMENT_INVALID`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Violation>>)]
    errors: Option<&'a [Violation]>,
    /// Members some problems add (e.g. `declaration` of `DECLARATION_REFERENCE_REUSED`).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    extra: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "UNAUTHORIZED",
            ApiError::Forbidden { code, .. }
            | ApiError::SignatureRefused { code, .. }
            | ApiError::Unprocessable { code, .. }
            | ApiError::BadGateway { code, .. }
            | ApiError::DependencyUnavailable { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::ConflictWith { code, .. }
            | ApiError::BadRequest { code, .. } => code,
            ApiError::NotFound => "NOT_FOUND",
            ApiError::MethodNotAllowed { .. } => "METHOD_NOT_ALLOWED",
            ApiError::UnsupportedMediaType { .. } => "UNSUPPORTED_MEDIA_TYPE",
            ApiError::UnsupportedEncoding { .. } => "CONTENT_ENCODING_UNSUPPORTED",
            ApiError::Xml(e) => e.code(),
            ApiError::Invalid { .. } => "DOCUMENT_INVALID",
            ApiError::Unavailable(_) => "UNAVAILABLE",
            ApiError::TooManyRequests { code, .. } => code,
            ApiError::Internal(_) => "INTERNAL",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "Authentication required",
            ApiError::Forbidden { .. } => "Forbidden",
            ApiError::NotFound => "Not found",
            ApiError::MethodNotAllowed { .. } => "Method not allowed",
            ApiError::Conflict { .. } | ApiError::ConflictWith { .. } => "Conflict",
            ApiError::BadRequest { .. } => "Bad request",
            ApiError::UnsupportedMediaType { .. } => "Unsupported media type",
            ApiError::UnsupportedEncoding { .. } => "Unsupported content encoding",
            ApiError::Xml(XmlError::TooLarge { .. } | XmlError::TooLargeDecoded { .. }) => {
                "Document too large"
            }
            ApiError::Xml(XmlError::Internal(_)) => "Internal error",
            ApiError::Xml(_) => "Unusable XML",
            ApiError::Invalid { .. } => "Document invalid",
            ApiError::Unavailable(_) | ApiError::DependencyUnavailable { .. } => {
                "Service unavailable"
            }
            ApiError::SignatureRefused { .. } => "Signature invalid",
            ApiError::Unprocessable { .. } => "Unprocessable",
            ApiError::BadGateway { .. } => "Bad gateway",
            ApiError::TooManyRequests { .. } => "Too many requests",
            ApiError::Internal(_) => "Internal error",
        }
    }

    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::Forbidden {
            code,
            detail: detail.into(),
        }
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::Conflict {
            code,
            detail: detail.into(),
        }
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            detail: detail.into(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } | ApiError::ConflictWith { .. } => StatusCode::CONFLICT,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType { .. } | ApiError::UnsupportedEncoding { .. } => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::Xml(XmlError::TooLarge { .. } | XmlError::TooLargeDecoded { .. }) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::Xml(XmlError::Internal(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Xml(_) => StatusCode::BAD_REQUEST,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) | ApiError::DependencyUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::SignatureRefused { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let detail = match self {
            ApiError::Internal(cause) | ApiError::Xml(XmlError::Internal(cause)) => {
                tracing::error!(%cause, "internal error");
                "an internal error occurred; it has been logged".to_string()
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(%cause, "dependency unavailable");
                "the database is unavailable; retry later".to_string()
            }
            ApiError::UnsupportedMediaType { got, expected } => {
                format!("this endpoint takes {expected}, not '{got}'")
            }
            other => other.to_string(),
        };
        let pos = match self {
            ApiError::Xml(e) => e.position(),
            _ => None,
        };
        let code = self.code();
        let problem = Problem {
            kind: format!(
                "urn:nsw:problem:{}",
                code.to_ascii_lowercase().replace('_', "-")
            ),
            title: self.title(),
            status: status.as_u16(),
            code,
            detail,
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            errors: match self {
                ApiError::Invalid { violations } => Some(violations),
                _ => None,
            },
            extra: match self {
                ApiError::ConflictWith { extra, .. } => Some(extra),
                _ => None,
            },
        };
        let mut resp = HttpResponse::build(status);
        resp.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if let ApiError::MethodNotAllowed { allow } = self {
            resp.insert_header((header::ALLOW, allow.as_str()));
        }
        if matches!(self, ApiError::UnsupportedEncoding { .. }) {
            resp.insert_header((header::ACCEPT_ENCODING, "gzip, deflate"));
        }
        if let ApiError::TooManyRequests {
            retry_after_secs, ..
        }
        | ApiError::DependencyUnavailable {
            retry_after_secs, ..
        } = self
        {
            resp.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        if matches!(self, ApiError::SignatureRefused { .. }) {
            // The message is authenticated by its signature, not by a bearer token.
            resp.insert_header((header::WWW_AUTHENTICATE, "PaymentSignature realm=\"nsw\""));
        }
        if matches!(self, ApiError::Unauthorized) {
            resp.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"nsw\""));
        }
        resp.body(serde_json::to_vec(&problem).unwrap_or_default())
    }
}

/// An error with every cause under it, for the log: `a: b: c`. A PostgreSQL error shows its
/// SQLSTATE, message, detail, constraint and table, which its own `Display` ("db error")
/// leaves out.
pub fn cause_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let text = match err.downcast_ref::<tokio_postgres::error::DbError>() {
            Some(db) => {
                let mut t = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
                if let Some(d) = db.detail() {
                    t.push_str(&format!(" (detail: {d})"));
                }
                if let Some(c) = db.constraint() {
                    t.push_str(&format!(" (constraint: {c})"));
                }
                if let Some(tb) = db.table() {
                    t.push_str(&format!(" (table: {tb})"));
                }
                if let Some(w) = db.where_() {
                    t.push_str(&format!(" (where: {w})"));
                }
                t
            }
            None => err.to_string(),
        };
        // Wrappers often repeat their source's text: keep each piece once.
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        cur = err.source();
    }
    out
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Pool(p) => ApiError::Unavailable(cause_chain(&p)),
            other => ApiError::Internal(cause_chain(&other)),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Db(db) => db.into(),
            StoreError::IdempotencyConflict => ApiError::conflict(
                "IDEMPOTENCY_KEY_REUSED",
                "this Idempotency-Key was already used with a different request body",
            ),
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Conflict(detail) => ApiError::conflict("CONFLICT", detail),
            StoreError::Transition(detail) => ApiError::conflict("TRANSITION_FORBIDDEN", detail),
            StoreError::Rejected(violations) => ApiError::Invalid { violations },
            StoreError::Unavailable(cause) => ApiError::Unavailable(cause),
            StoreError::ReferenceReused {
                declarant,
                lrn,
                id,
                reference,
            } => {
                let mut extra = serde_json::Map::new();
                extra.insert(
                    "declaration".into(),
                    serde_json::json!({"id": id, "reference": reference, "lrn": lrn}),
                );
                ApiError::ConflictWith {
                    code: "DECLARATION_REFERENCE_REUSED",
                    detail: format!(
                        "declarant {declarant} already used reference {lrn} for declaration \
                         {reference} ({id}); give each declaration its own reference"
                    ),
                    extra,
                }
            }
        }
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        ApiError::from(DbError::from(e))
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        ApiError::from(DbError::from(e))
    }
}

impl From<ExchangeError> for ApiError {
    fn from(e: ExchangeError) -> Self {
        match e {
            // A signature that cannot be read is the request's fault (400); one that reads but
            // is not accepted is a refusal of the signer (403).
            ExchangeError::Signature(
                s @ (crate::exchange::signature::SignatureError::Malformed(_)
                | crate::exchange::signature::SignatureError::NoSigner),
            ) => ApiError::bad_request(s.code(), s.to_string()),
            ExchangeError::Signature(s) => ApiError::forbidden(s.code(), s.to_string()),
            ExchangeError::TlsClientMismatch(_) => {
                ApiError::forbidden("TLS_CLIENT_MISMATCH", e.to_string())
            }
            ExchangeError::UnknownPartner(_) => {
                ApiError::forbidden("PARTNER_UNKNOWN", e.to_string())
            }
            ExchangeError::SignatureMissing => {
                ApiError::bad_request("SIGNATURE_MISSING", e.to_string())
            }
            ExchangeError::SignatureEncoding(_) => {
                ApiError::bad_request("SIGNATURE_MALFORMED", e.to_string())
            }
            ExchangeError::MessageIdReused { .. } => {
                ApiError::conflict("MESSAGE_ID_REUSED", e.to_string())
            }
            ExchangeError::Refused { code, detail } => ApiError::conflict(code, detail),
            ExchangeError::NotConfigured => {
                ApiError::conflict("EXCHANGE_NOT_CONFIGURED", e.to_string())
            }
            ExchangeError::EnvelopeInvalid(violations) => ApiError::Invalid { violations },
            ExchangeError::Xml(x) => ApiError::Xml(x),
            ExchangeError::Store(s) => s.into(),
            ExchangeError::Config(_) | ExchangeError::Keys { .. } | ExchangeError::Crypto(_) => {
                ApiError::Internal(cause_chain(&e))
            }
        }
    }
}

impl From<crate::workflow::WorkflowError> for ApiError {
    fn from(e: crate::workflow::WorkflowError) -> Self {
        use crate::workflow::WorkflowError as W;
        match e {
            W::Store(s) => s.into(),
            W::Exchange(x) => x.into(),
            W::Xml(x) => ApiError::Xml(x),
            W::Invalid(violations) => ApiError::Invalid { violations },
            W::BadRequest { code, detail } => ApiError::bad_request(code, detail),
            W::Conflict { code, detail } => ApiError::conflict(code, detail),
            W::Forbidden { code, detail } => ApiError::forbidden(code, detail),
            W::Unprocessable { code, detail } => ApiError::Unprocessable { code, detail },
            W::SignatureInvalid { code, detail } => ApiError::SignatureRefused { code, detail },
            W::BadGateway { code, detail } => ApiError::BadGateway { code, detail },
            W::Unavailable {
                code,
                detail,
                retry_after_secs,
            } => ApiError::DependencyUnavailable {
                code,
                detail,
                retry_after_secs,
            },
            W::Internal(detail) => ApiError::Internal(detail),
        }
    }
}
