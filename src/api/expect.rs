//! `Expect: 100-continue`: a client asks whether to send its body. When the headers alone
//! decide the answer (no or unknown credentials, a body too large, an encoding or media type
//! the endpoint does not take), the final answer goes out at once and the body is never
//! uploaded; otherwise `100 Continue`, and the request goes on as any other.

use actix_web::http::header::HeaderMap;
use actix_web::http::Method;
use actix_web::HttpMessage;
use actix_web::ResponseError;
use tracing::Instrument;

use super::{body, AppState, Body};
use crate::error::ApiError;

/// What the check needs of each endpoint: method, path pattern and body kind.
pub struct Table(Vec<(Method, &'static str, Body)>);

impl Table {
    pub fn new(endpoints: &[super::Endpoint]) -> Table {
        Table(
            endpoints
                .iter()
                .map(|e| (e.method.clone(), e.path, e.body))
                .collect(),
        )
    }

    /// The `Allow` list of the first pattern `path` matches (as the router answers it), or
    /// nothing when no endpoint has the path.
    fn methods_of<'s>(&'s self, path: &str) -> Vec<&'s str> {
        let Some(pattern) = self
            .0
            .iter()
            .find(|(_, p, _)| matches(p, path))
            .map(|(_, p, _)| *p)
        else {
            return Vec::new();
        };
        let mut methods = Vec::new();
        for (m, p, _) in &self.0 {
            if *p == pattern {
                methods.push(m.as_str());
                if *m == Method::GET {
                    methods.push("HEAD");
                }
            }
        }
        methods.push("OPTIONS");
        methods
    }

    fn find(&self, method: &Method, path: &str) -> Option<(&'static str, Body)> {
        self.0
            .iter()
            .find(|(m, p, _)| m == method && matches(p, path))
            .map(|(_, p, b)| (*p, *b))
    }
}

/// `pattern` with `{name}` segments matching any one non-empty segment.
fn matches(pattern: &str, path: &str) -> bool {
    let mut pat = pattern.split('/');
    let mut seg = path.split('/');
    loop {
        match (pat.next(), seg.next()) {
            (None, None) => return true,
            (Some(p), Some(s)) if p.starts_with('{') && p.ends_with('}') && !s.is_empty() => {}
            (Some(p), Some(s)) if p == s => {}
            _ => return false,
        }
    }
}

/// Paths whose callers are not bearer-token parties: partner windows and the payment platform
/// sign their messages, probes carry no credentials, `/metrics` judges its caller's address
/// itself, and the OpenAPI document is for anyone. The one list both the expect check and the router's
/// authentication use.
pub fn public(pattern: &str) -> bool {
    matches!(
        pattern,
        "/health"
            | "/health/live"
            | "/health/ready"
            | "/metrics"
            | "/exchange/v1/messages"
            | "/api/v1/payments/notifications"
            | "/api/v1/openapi.json"
    )
}

/// The answer the headers alone decide, if any.
pub async fn decide(
    state: &AppState,
    table: &Table,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    // A path that does not exist, or does not take this method, needs no body to answer.
    // HEAD is answered wherever GET is, OPTIONS wherever the path exists.
    let lookup = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    // Portal pages judge their own requests (a session cookie, not a bearer token).
    if !crate::portal::is_api_path(path) {
        return Ok(());
    }
    if method == Method::OPTIONS && !table.methods_of(path).is_empty() {
        return Ok(());
    }
    let Some((pattern, kind)) = table.find(lookup, path) else {
        let allowed = table.methods_of(path);
        if allowed.is_empty() {
            return Err(ApiError::NotFound);
        }
        return Err(ApiError::MethodNotAllowed {
            allow: allowed.join(", "),
        });
    };
    if !public(pattern) {
        super::auth::authenticate(state, headers).await?;
    }
    let limit = match kind {
        Body::Json => super::json::LIMIT,
        Body::Pem => super::licences::PEM_LIMIT,
        Body::Xml | Body::None => state.validator.limits.max_bytes,
    };
    body::precheck(headers, limit)?;
    match kind {
        Body::Xml => body::require_xml_in(headers),
        Body::Json => body::require_json_in(headers),
        Body::Pem | Body::None => Ok(()),
    }
}

/// The expect service: the request goes on, or its final answer is sent in place of
/// `100 Continue`.
pub async fn check(
    state: actix_web::web::Data<AppState>,
    table: std::sync::Arc<Table>,
    req: actix_http::Request,
) -> Result<actix_http::Request, actix_web::Error> {
    let path = req.path().to_owned();
    // The request's own span and id come later, with the request; an answer given here gets
    // an id of its own, in its header and its log line, as every answer does.
    let request_id = uuid::Uuid::now_v7().to_string();
    let span = tracing::info_span!("expect", request_id = %request_id, %path);
    let outcome = decide(&state, &table, req.method(), &path, req.headers())
        .instrument(span.clone())
        .await;
    match outcome {
        Ok(()) => Ok(req),
        Err(e) => {
            let mut resp = e.error_response();
            if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&request_id) {
                resp.headers_mut().insert(
                    actix_web::http::header::HeaderName::from_static("x-request-id"),
                    v,
                );
            }
            span.in_scope(|| {
                tracing::info!(code = e.code(), status = %e.status_code(), "answered before the body (Expect: 100-continue)")
            });
            Err(actix_web::error::InternalError::from_response(e, resp).into())
        }
    }
}
