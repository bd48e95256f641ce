//! The OpenAPI 3.1 description of the API, generated from the handlers' `#[utoipa::path]`
//! annotations and the `ToSchema` types they answer with, served at
//! `GET /api/v1/openapi.json`; and the human-readable reference page `GET /docs/api`
//! (Swagger UI, vendored under `assets/vendor/swagger-ui-dist/` and compiled in).
//!
//! Adding an endpoint to `api::endpoints()`: annotate its handler with `#[utoipa::path(...)]`
//! (method, path, params, request body, every answer with the problem codes in backticks in
//! its description) and list the handler in [`ApiDoc`]'s `paths(...)`. The unit test
//! `every_endpoint_is_described` fails until both are done. What every operation shares is
//! added here, in [`finish`], so annotations need not repeat it: `401` on authenticated
//! operations, `503`, the body answers (`400 BODY_UNREADABLE`/`BODY_ENCODING_INVALID`,
//! `413`, `415`) of endpoints that take a body (from the table's `Body`), the problem+json
//! content of every error answer, and `x-problem-codes` gathered from the descriptions.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use actix_web::{http::header, web, HttpResponse};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use utoipa::OpenApi;

use super::Body;
use crate::portal::PortalError;

/// The document's skeleton: every operation, the shared schemas, the bearer scheme.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "nsw — National Single Window API",
        description = "Customs declarations, licence applications, licences, certificates of \
            origin, fees paid online, exchange with partner windows, events and webhooks. Documents are XML \
            (`application/xml`), metadata JSON; every error is an RFC 9457 problem document \
            (`application/problem+json`) with a stable `code`: each operation lists its codes \
            per status in `x-problem-codes`. Every answer carries `X-Request-Id`. `HEAD` is \
            answered wherever `GET` is, `OPTIONS` on every path. See docs/api.md.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        spec,
        super::health::health,
        super::health::live,
        super::health::ready,
        super::health::metrics,
        super::exchange::receive,
        super::declarations::submit,
        super::declarations::list,
        super::declarations::get,
        super::declarations::document,
        super::customs::decide,
        super::customs::withdraw,
        super::certificates::apply,
        super::certificates::get,
        super::certificates::raw,
        super::admin_routing::get,
        super::admin_routing::replace,
        super::licence_applications::submit,
        super::licence_applications::get,
        super::licence_applications::decide,
        super::licence_applications::supplement,
        super::licence_applications::withdraw,
        super::licence_applications::inbox,
        super::payments::list,
        super::payments::get,
        super::payments::pay,
        super::payments::receipt,
        super::payments::receipt_signature,
        super::payments::receipt_certificate,
        super::payments::notification,
        super::reconciliations::run,
        super::reconciliations::list,
        super::reconciliations::get,
        super::licences::deposit,
        super::licences::get,
        super::licences::document,
        super::licences::signature,
        super::licences::certificates,
        super::licences::register_certificate,
        super::customs::inbox,
        super::stats::get,
        super::exchange::send_acdd,
        super::exchange::send_form_d,
        super::exchange::outbox_list,
        super::exchange::outbox_get,
        super::exchange::requeue,
        super::exchange::outbox_raw,
        super::exchange::set_fault,
        super::exchange::inbox,
        super::exchange::inbox_get,
        super::exchange::inbox_raw,
        super::exchange::respond,
        super::events::feed,
        super::webhooks::create,
        super::webhooks::list,
        super::webhooks::delete,
        super::webhooks::deliveries,
        super::webhooks::retry_now,
    ),
    components(schemas(
        crate::error::Problem,
        crate::xml::Violation,
        crate::domain::declaration_state::Status,
        crate::domain::application_state::Status,
        crate::domain::fee_state::Status,
        crate::domain::fee_state::OrderStatus,
        crate::domain::fee_state::RefundStatus,
    )),
    security(("bearer" = [])),
    tags(
        (name = "declarations", description = "Customs declarations: submit, follow, list"),
        (name = "customs", description = "Customs officers' inbox and decisions"),
        (name = "licensing", description = "Licence applications and ministry inboxes"),
        (name = "licences", description = "Licences and agencies' signing certificates"),
        (name = "certificates", description = "Certificates of origin (ATIGA Form D)"),
        (name = "routing", description = "The routing table (administrators)"),
        (name = "exchange", description = "Exchange with partner windows"),
        (name = "events", description = "The event feed and webhooks"),
        (name = "stats", description = "Figures per agency and procedure"),
        (name = "payments", description = "Fees paid online: notices, orders at the payment platform, e-receipts, the platform's notifications, reconciliation with its settlement files"),
        (name = "health", description = "Probes and this description"),
    )
)]
pub struct ApiDoc;

/// The OpenAPI document as served: the generated one, [`finish`]ed.
pub fn document() -> Value {
    let generated = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    finish(generated, &super::endpoints())
}

/// The serialized document, built once.
fn serialized() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| serde_json::to_string(&document()).unwrap_or_default())
}

/// HTTP methods as OpenAPI names its operation keys.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Adds what every operation shares (see the module's documentation).
fn finish(mut doc: Value, endpoints: &[super::Endpoint]) -> Value {
    let bodies: BTreeMap<(String, &str), Body> = endpoints
        .iter()
        .map(|e| ((e.method.as_str().to_ascii_lowercase(), e.path), e.body))
        .collect();
    doc["components"]["securitySchemes"] = json!({
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "A party's token, from `nsw party add` or `nsw party token`"
        }
    });
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return doc;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let public = op
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|s| {
                    s.iter()
                        .all(|r| r.as_object().is_some_and(|o| o.is_empty()))
                });
            let body = bodies
                .get(&(method.clone(), path.as_str()))
                .copied()
                .unwrap_or(Body::None);
            let Some(responses) = op["responses"].as_object_mut() else {
                continue;
            };
            if !public {
                responses.entry("401").or_insert_with(|| {
                    json!({
                        "description": "`UNAUTHORIZED`: no bearer token, or an unknown or revoked one",
                        "headers": {"WWW-Authenticate": {"schema": {"type": "string"},
                            "description": "`Bearer realm=\"nsw\"`"}}
                    })
                });
            }
            responses.entry("503").or_insert_with(
                || json!({"description": "`UNAVAILABLE`: the database cannot be reached; retry later"}),
            );
            if body != Body::None {
                let mut codes = String::from("`BODY_UNREADABLE`, `BODY_ENCODING_INVALID`");
                if body == Body::Json {
                    codes.push_str(", `BODY_INVALID`");
                }
                match responses.get_mut("400") {
                    Some(r) => {
                        let d = r["description"].as_str().unwrap_or_default();
                        r["description"] = Value::String(format!("{d}; {codes}"));
                    }
                    None => {
                        responses.insert("400".into(), json!({ "description": codes }));
                    }
                }
                responses.entry("413").or_insert_with(|| {
                    json!({"description": "`BODY_TOO_LARGE`: over the endpoint's limit, counted after decoding"})
                });
                let media = if body == Body::Pem {
                    "`CONTENT_ENCODING_UNSUPPORTED`"
                } else {
                    "`UNSUPPORTED_MEDIA_TYPE`, `CONTENT_ENCODING_UNSUPPORTED`"
                };
                responses
                    .entry("415")
                    .or_insert_with(|| json!({ "description": media }));
            }
            let mut codes = serde_json::Map::new();
            for (status, r) in responses.iter_mut() {
                if !status.starts_with('4') && !status.starts_with('5') {
                    continue;
                }
                if r.get("content").is_none() {
                    r["content"] = json!({"application/problem+json":
                        {"schema": {"$ref": "#/components/schemas/Problem"}}});
                }
                let found = problem_codes(r["description"].as_str().unwrap_or_default());
                if !found.is_empty() {
                    codes.insert(status.clone(), json!(found));
                }
            }
            if !codes.is_empty() {
                op["x-problem-codes"] = Value::Object(codes);
            }
        }
    }
    doc
}

/// The problem codes a description names: upper-case words in backticks.
fn problem_codes(description: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, piece) in description.split('`').enumerate() {
        let code = i % 2 == 1
            && piece.len() > 1
            && piece.starts_with(|c: char| c.is_ascii_uppercase())
            && piece
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if code && !out.iter().any(|c| c == piece) {
            out.push(piece.to_owned());
        }
    }
    out
}

/// `GET /api/v1/openapi.json`.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "health",
    description = "This document (OpenAPI 3.1). Public.",
    security(()),
    responses((status = 200, description = "The OpenAPI document", body = Object, content_type = "application/json")),
)]
pub async fn spec() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(serialized())
}

// ---- The reference page ----

/// The reference page's policy: the site's (no inline script, no inline style, nothing from
/// elsewhere), plus script from our own origin for the viewer, images as `data:` URLs (the
/// viewer's stylesheet draws its icons so) and requests to our own origin (the document, and
/// "Try it out").
pub const REFERENCE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// (file name, media type, bytes) of the page's assets.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "swagger-ui.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/vendor/swagger-ui-dist/swagger-ui.css"),
    ),
    (
        "swagger-ui-bundle.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/vendor/swagger-ui-dist/swagger-ui-bundle.js"),
    ),
    (
        "api-reference.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/api-reference.js"),
    ),
];

/// `stem.<first 12 hex of SHA-256>.ext` of each asset, in `ASSETS`' order.
fn asset_names() -> &'static Vec<String> {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        ASSETS
            .iter()
            .map(|(name, _, bytes)| {
                let hash = hex::encode(&Sha256::digest(bytes)[..6]);
                let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
                format!("{stem}.{hash}.{ext}")
            })
            .collect()
    })
}

/// The reference page's routes (not API endpoints: a page for people and its assets).
pub fn page_routes(cfg: &mut web::ServiceConfig) {
    use actix_web::guard;
    let get_or_head = || web::route().guard(guard::Any(guard::Get()).or(guard::Head()));
    cfg.route("/docs/api", get_or_head().to(reference))
        .route("/docs/api/{name}", get_or_head().to(asset));
}

/// `GET /docs/api`: the API reference, rendered in the browser from `/api/v1/openapi.json`.
pub async fn reference() -> HttpResponse {
    let n = asset_names();
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>nsw API reference</title>\n<link rel=\"icon\" href=\"data:,\">\n\
         <link rel=\"stylesheet\" href=\"/docs/api/{css}\">\n</head>\n<body>\n\
         <main id=\"swagger-ui\"><noscript><p>The reference needs JavaScript. The API's \
         description itself is <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a> \
         (OpenAPI 3.1).</p></noscript></main>\n\
         <script src=\"/docs/api/{bundle}\"></script>\n\
         <script src=\"/docs/api/{loader}\"></script>\n</body>\n</html>\n",
        css = n[0],
        bundle = n[1],
        loader = n[2],
    );
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, REFERENCE_CSP))
        .body(html)
}

/// `GET /docs/api/{name}`: an asset of the page, cacheable for a year; unknown names are 404.
pub async fn asset(name: web::Path<String>) -> Result<HttpResponse, PortalError> {
    let i = asset_names()
        .iter()
        .position(|n| *n == *name)
        .ok_or(PortalError::NotFound)?;
    let (_, media, bytes) = ASSETS[i];
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, media))
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .body(bytes))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn operations(doc: &Value) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                if METHODS.contains(&method.as_str()) {
                    out.insert((method.to_ascii_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    /// Every route of `api::endpoints()` has its operation in the document, and the document
    /// describes nothing the server does not route. A route added without its annotation (or
    /// without listing the handler in `ApiDoc`) fails here.
    #[test]
    fn every_endpoint_is_described() {
        let doc = document();
        let described = operations(&doc);
        let routed: BTreeSet<(String, String)> = crate::api::endpoints()
            .iter()
            .map(|e| (e.method.as_str().to_owned(), e.path.to_owned()))
            .collect();
        let missing: Vec<_> = routed.difference(&described).collect();
        assert!(
            missing.is_empty(),
            "routed but not in the OpenAPI document (annotate the handler with \
             #[utoipa::path] and list it in ApiDoc): {missing:?}"
        );
        let extra: Vec<_> = described.difference(&routed).collect();
        assert!(extra.is_empty(), "described but not routed: {extra:?}");
    }

    #[test]
    fn document_is_openapi_3_1_json() {
        let text = serialized();
        let doc: Value = serde_json::from_str(text).expect("the document is JSON");
        let version = doc["openapi"].as_str().expect("openapi member");
        assert!(version.starts_with("3.1."), "openapi: {version}");
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        for name in [
            "Problem",
            "Violation",
            "DeclarationReceipt",
            "DeclarationDetail",
        ] {
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "schema {name} missing"
            );
        }
        let problem = &doc["components"]["schemas"]["Problem"]["properties"];
        for member in ["type", "title", "status", "detail", "code", "errors"] {
            assert!(problem.get(member).is_some(), "Problem.{member} missing");
        }
    }

    /// Every $ref points at a schema the document has.
    #[test]
    fn references_resolve() {
        fn walk(v: &Value, doc: &Value, bad: &mut Vec<String>) {
            match v {
                Value::Object(o) => {
                    if let Some(Value::String(r)) = o.get("$ref") {
                        let name = r.trim_start_matches("#/components/schemas/");
                        if doc["components"]["schemas"].get(name).is_none() {
                            bad.push(r.clone());
                        }
                    }
                    o.values().for_each(|x| walk(x, doc, bad));
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, doc, bad)),
                _ => {}
            }
        }
        let doc = document();
        let mut bad = Vec::new();
        walk(&doc, &doc, &mut bad);
        assert!(bad.is_empty(), "unresolved references: {bad:?}");
    }

    /// Authenticated operations answer 401, public ones do not; every error answer is a
    /// problem document; the codes are listed per status.
    #[test]
    fn shared_answers_are_added() {
        let doc = document();
        let submit = &doc["paths"]["/api/v1/declarations"]["post"];
        assert!(submit["responses"].get("401").is_some());
        assert_eq!(
            submit["responses"]["422"]["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem"
        );
        assert_eq!(submit["x-problem-codes"]["401"], json!(["UNAUTHORIZED"]));
        assert_eq!(submit["x-problem-codes"]["413"], json!(["BODY_TOO_LARGE"]));
        let codes_400 = submit["x-problem-codes"]["400"]
            .as_array()
            .expect("400 codes");
        assert!(codes_400.contains(&json!("XML_MALFORMED")));
        assert!(codes_400.contains(&json!("BODY_ENCODING_INVALID")));
        let health = &doc["paths"]["/health"]["get"];
        assert!(health["responses"].get("401").is_none());
        assert!(doc["paths"]["/api/v1/openapi.json"]["get"]["responses"]
            .get("401")
            .is_none());
        // Every operation lists UNAUTHORIZED but the public ones (declared with
        // `security(())` and `Access::Public` in the endpoint table).
        let endpoints = crate::api::endpoints();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("item") {
                let public = endpoints.iter().any(|e| {
                    e.path == path
                        && e.method.as_str().eq_ignore_ascii_case(method)
                        && e.access == crate::api::Access::Public
                });
                // A public one may answer 401 for a reason of its own (a payment notification
                // whose signature does not verify), never for want of a bearer token.
                let unauthorized = op["x-problem-codes"]["401"]
                    .as_array()
                    .is_some_and(|c| c.contains(&json!("UNAUTHORIZED")));
                assert_eq!(unauthorized, !public, "{method} {path}");
                assert!(
                    op.get("description").is_some() || op.get("summary").is_some(),
                    "{method} {path} has no description"
                );
            }
        }
    }

    /// The roles a description names after `Role:` or `Roles:` (up to the sentence's end,
    /// parentheses left out), or `None` when it names none.
    fn roles_named(description: &str) -> Option<BTreeSet<&'static str>> {
        let start = ["Roles: ", "Role: "]
            .iter()
            .find_map(|m| description.find(m).map(|i| i + m.len()))?;
        let (mut depth, mut words, mut word) = (0, BTreeSet::new(), String::new());
        for c in description[start..].chars().chain(['.']) {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ if depth > 0 => {}
                c if c.is_ascii_alphabetic() => word.push(c),
                c => {
                    if let Some(role) = crate::domain::party::Role::parse(&word) {
                        words.insert(role.as_str());
                    }
                    word.clear();
                    if c == '.' {
                        break;
                    }
                }
            }
        }
        Some(words)
    }

    /// What a description says of who may call an operation is what the router enforces: an
    /// endpoint gated by role says `Role: …` naming exactly the table's roles and lists
    /// `ROLE_FORBIDDEN` under 403; one open to every party (or public) names no roles so.
    #[test]
    fn descriptions_name_the_roles_of_the_table() {
        let doc = document();
        for e in crate::api::endpoints() {
            let op = &doc["paths"][e.path][e.method.as_str().to_ascii_lowercase()];
            let named = roles_named(op["description"].as_str().unwrap_or_default());
            match e.access {
                crate::api::Access::Roles(roles) => {
                    let table: BTreeSet<&str> = roles.iter().map(|r| r.as_str()).collect();
                    assert_eq!(named, Some(table), "{} {}", e.method, e.path);
                    assert!(
                        op["x-problem-codes"]["403"]
                            .as_array()
                            .is_some_and(|c| c.contains(&json!("ROLE_FORBIDDEN"))),
                        "{} {} lists no 403 ROLE_FORBIDDEN",
                        e.method,
                        e.path
                    );
                }
                _ => assert_eq!(named, None, "{} {}", e.method, e.path),
            }
        }
        assert_eq!(
            roles_named("Roles: the owning enterprise, admin (all). Role: customs."),
            Some(BTreeSet::from(["enterprise", "admin"]))
        );
    }

    #[test]
    fn codes_are_read_from_descriptions() {
        assert_eq!(
            problem_codes("`NOT_FOUND`: no such `id`; `LIMIT_INVALID`, `NOT_FOUND`"),
            vec!["NOT_FOUND", "LIMIT_INVALID"]
        );
        assert!(problem_codes("`Bearer realm=\"nsw\"`").is_empty());
    }

    #[test]
    fn the_page_loads_only_its_own_assets() {
        let names = asset_names();
        assert_eq!(names.len(), ASSETS.len());
        assert!(names[1].starts_with("swagger-ui-bundle.") && names[1].ends_with(".js"));
        assert!(!REFERENCE_CSP.contains("unsafe"));
        assert!(!REFERENCE_CSP.contains("http"));
    }
}
