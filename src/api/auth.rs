//! Bearer-token authentication: every API request carries `Authorization: Bearer <token>`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::http::header::HeaderMap;
use actix_web::{dev::Payload, web, FromRequest, HttpMessage, HttpRequest};
use futures_util::future::LocalBoxFuture;

use crate::api::AppState;
use crate::domain::party::{Principal, Role};
use crate::error::ApiError;
use crate::store::parties;

/// Successful lookups are cached briefly so a busy client does not cost a query per request;
/// a revoked token therefore stops working within `TTL`.
pub struct TokenCache {
    entries: Mutex<HashMap<Vec<u8>, (Principal, Instant)>>,
}

const TTL: Duration = Duration::from_secs(30);
const MAX_ENTRIES: usize = 100_000;

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl TokenCache {
    fn get(&self, digest: &[u8]) -> Option<Principal> {
        let map = self.entries.lock().ok()?;
        map.get(digest)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(p, _)| p.clone())
    }

    /// Forgets every cached lookup: after a token is revoked or a party deactivated, this
    /// instance asks the database again at once (other instances within `TTL`).
    pub fn clear(&self) {
        if let Ok(mut map) = self.entries.lock() {
            map.clear();
        }
    }

    fn put(&self, digest: Vec<u8>, p: Principal) {
        if let Ok(mut map) = self.entries.lock() {
            if map.len() >= MAX_ENTRIES {
                map.retain(|_, (_, at)| at.elapsed() < TTL);
            }
            map.insert(digest, (p, Instant::now()));
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .then(|| token.trim().to_owned())
}

/// The party a request's bearer token names: `Unauthorized` when there is none or it is
/// unknown. Used by the extractor and by the `Expect: 100-continue` check.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let token = bearer(headers).ok_or(ApiError::Unauthorized)?;
    let digest = parties::token_digest(&token);
    if let Some(p) = state.tokens.get(&digest) {
        return Ok(p);
    }
    let client = state.pool.get().await?;
    let max_age = state
        .settings
        .tokens
        .max_age_days
        .map(|d| f64::from(d) * 86_400.0);
    let principal = parties::authenticate(&client, &token, max_age)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    state.tokens.put(digest, principal.clone());
    Ok(principal)
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Settled already by the router's `authenticate_first`, before any other extractor.
        if let Some(p) = req.extensions().get::<Principal>().cloned() {
            tracing::Span::current().record("party", p.party_id.as_str());
            return Box::pin(async move { Ok(p) });
        }
        let headers = req.headers().clone();
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::Internal("no app state".into()))?;
            let principal = authenticate(&state, &headers).await?;
            tracing::Span::current().record("party", principal.party_id.as_str());
            Ok(principal)
        })
    }
}

/// Refuses callers whose role is not among `allowed`.
pub fn require(p: &Principal, allowed: &[Role]) -> Result<(), ApiError> {
    if allowed.contains(&p.role) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "ROLE_FORBIDDEN",
            format!("the role '{}' may not do this", p.role.as_str()),
        ))
    }
}
