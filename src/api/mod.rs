//! HTTP routes. Handlers parse requests, call validation and the store, and shape responses;
//! they hold no SQL.

pub mod admin_routing;
pub mod auth;
pub mod body;
pub mod certificates;
pub mod customs;
pub mod declarations;
pub mod events;
pub mod exchange;
pub mod expect;
pub mod health;
pub mod json;
pub mod licence_applications;
pub mod licences;
pub mod openapi;
pub mod payments;
pub mod reconciliations;
pub mod stats;
pub mod throttle;
pub mod webhooks;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpMessage};
use deadpool_postgres::Pool;
use tracing_actix_web::RequestId;

use crate::config::Settings;
use crate::domain::party::{Principal, Role};
use crate::error::ApiError;
use crate::validation::Validator;

/// This HTTP worker's intake committers; `None` when `intake.group_commit` is off and every
/// request commits its own transaction.
pub struct Intake(pub Option<crate::store::group_commit::GroupCommit>);

/// This HTTP worker's committers of messages received from partner windows; `None` when the
/// window has no exchange keys.
pub struct Inbound(pub Option<crate::store::inbound_group_commit::InboundCommit>);

pub struct AppState {
    pub pool: Pool,
    pub validator: Validator,
    pub settings: Settings,
    pub tokens: auth::TokenCache,
    pub routing: std::sync::Arc<crate::store::routing::RoutingCache>,
    pub calendar: crate::calendar::Calendar,
    /// The window's date (system clock in the calendar's time zone, or fixed by configuration).
    pub clock: crate::calendar::Clock,
    /// Partner-window exchange; `None` when this window has no keys.
    pub exchange: Option<std::sync::Arc<crate::exchange::Exchange>>,
    /// Authentication-failure and write throttles.
    pub throttle: throttle::Throttle,
    /// Fees paid online: the platform client, the merchant key, the payment workflows' view.
    pub payments: std::sync::Arc<crate::payments::Payments>,
    /// The public dashboard's figures, shared between requests for a short while.
    pub dashboard: crate::portal::dashboard_cache::DashboardCache,
}

impl AppState {
    /// The window's local time zone (licence issue dates are local dates).
    pub fn calendar_offset(&self) -> chrono::FixedOffset {
        self.clock.offset()
    }

    /// The window's local date: what licence validity and issue dates are judged by.
    pub fn today(&self) -> chrono::NaiveDate {
        self.clock.today()
    }
}

use actix_web::http::Method;
use actix_web::{guard, HttpResponse, Route};

/// What an endpoint's request body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    None,
    /// A document: application/xml, text/xml or application/*+xml.
    Xml,
    /// application/json (or application/*+json).
    Json,
    /// A PEM certificate (any text type).
    Pem,
}

/// Who may call an endpoint. The router settles it before the handler or any extractor runs
/// (`authenticate_first`), so a caller who may not use an endpoint learns nothing of how it
/// judges input: 401, then 403, then the request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No bearer token: the handler judges its caller itself (partners sign their messages,
    /// probes carry nothing, `/metrics` looks at the address or wants an admin token, the
    /// OpenAPI document is for anyone).
    Public,
    /// Any authenticated party; the handler scopes what each may see (another party's dossier
    /// is 404, as one that does not exist).
    Party,
    /// Authenticated parties of these roles; any other role is `403 ROLE_FORBIDDEN`.
    Roles(&'static [Role]),
}

impl Access {
    /// Whether `role` passes the gate (a public endpoint asks for no role).
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Public | Access::Party => true,
            Access::Roles(roles) => roles.contains(&role),
        }
    }

    /// `403 ROLE_FORBIDDEN` for a caller whose role may not use the endpoint.
    pub fn check(self, principal: &Principal) -> Result<(), ApiError> {
        if self.allows(principal.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "ROLE_FORBIDDEN",
                format!("the role '{}' may not do this", principal.role.as_str()),
            ))
        }
    }
}

const PUBLIC: Access = Access::Public;
const ANY: Access = Access::Party;
const ENTERPRISE: Access = Access::Roles(&[Role::Enterprise]);
const MINISTRY: Access = Access::Roles(&[Role::Ministry]);
const CUSTOMS: Access = Access::Roles(&[Role::Customs]);
const ADMIN: Access = Access::Roles(&[Role::Admin]);
const CUSTOMS_ADMIN: Access = Access::Roles(&[Role::Customs, Role::Admin]);
const ENTERPRISE_ADMIN: Access = Access::Roles(&[Role::Enterprise, Role::Admin]);
/// Those who read the figures: administrators, customs, ministries (their own agency's).
const OFFICERS: Access = Access::Roles(&[Role::Admin, Role::Customs, Role::Ministry]);

/// One endpoint: method, path (`{name}` for a path parameter), what its body is, who may call
/// it, and handler.
pub struct Endpoint {
    pub method: Method,
    pub path: &'static str,
    pub body: Body,
    pub access: Access,
    route: Route,
}

fn ep(method: Method, path: &'static str, body: Body, access: Access, route: Route) -> Endpoint {
    Endpoint {
        method,
        path,
        body,
        access,
        route,
    }
}

/// Every endpoint of the public listener, full paths included: the one list the server
/// registers and tests walk.
pub fn endpoints() -> Vec<Endpoint> {
    use Method as M;
    vec![
        ep(
            M::GET,
            "/health",
            Body::None,
            PUBLIC,
            web::to(health::health),
        ),
        ep(
            M::GET,
            "/health/live",
            Body::None,
            PUBLIC,
            web::to(health::live),
        ),
        ep(
            M::GET,
            "/health/ready",
            Body::None,
            PUBLIC,
            web::to(health::ready),
        ),
        ep(
            M::GET,
            "/metrics",
            Body::None,
            PUBLIC,
            web::to(health::metrics),
        ),
        // This API's OpenAPI document (public). Every endpoint here has its operation there:
        // see api/openapi.rs.
        ep(
            M::GET,
            "/api/v1/openapi.json",
            Body::None,
            PUBLIC,
            web::to(openapi::spec),
        ),
        ep(
            M::POST,
            "/exchange/v1/messages",
            Body::Xml,
            PUBLIC,
            web::to(exchange::receive),
        ),
        ep(
            M::POST,
            "/api/v1/declarations",
            Body::Xml,
            ENTERPRISE,
            web::to(declarations::submit),
        ),
        ep(
            M::GET,
            "/api/v1/declarations",
            Body::None,
            ANY,
            web::to(declarations::list),
        ),
        ep(
            M::GET,
            "/api/v1/declarations/{id}",
            Body::None,
            ANY,
            web::to(declarations::get),
        ),
        ep(
            M::GET,
            "/api/v1/declarations/{id}/document",
            Body::None,
            ANY,
            web::to(declarations::document),
        ),
        ep(
            M::POST,
            "/api/v1/declarations/{id}/decision",
            Body::Json,
            CUSTOMS,
            web::to(customs::decide),
        ),
        ep(
            M::POST,
            "/api/v1/declarations/{id}/withdrawal",
            Body::None,
            ENTERPRISE,
            web::to(customs::withdraw),
        ),
        ep(
            M::POST,
            "/api/v1/certificates-of-origin",
            Body::Xml,
            ENTERPRISE,
            web::to(certificates::apply),
        ),
        ep(
            M::GET,
            "/api/v1/certificates-of-origin/{reference}",
            Body::None,
            ANY,
            web::to(certificates::get),
        ),
        ep(
            M::GET,
            "/api/v1/certificates-of-origin/{reference}/{part}",
            Body::None,
            ANY,
            web::to(certificates::raw),
        ),
        // Ministries and customs: routing administration, licence applications, licences.
        ep(
            M::GET,
            "/api/v1/admin/routing-rules",
            Body::None,
            ADMIN,
            web::to(admin_routing::get),
        ),
        ep(
            M::PUT,
            "/api/v1/admin/routing-rules",
            Body::Json,
            ADMIN,
            web::to(admin_routing::replace),
        ),
        ep(
            M::POST,
            "/api/v1/licence-applications",
            Body::Xml,
            ENTERPRISE,
            web::to(licence_applications::submit),
        ),
        ep(
            M::GET,
            "/api/v1/licence-applications/{id}",
            Body::None,
            ANY,
            web::to(licence_applications::get),
        ),
        ep(
            M::POST,
            "/api/v1/licence-applications/{id}/decision",
            Body::Json,
            MINISTRY,
            web::to(licence_applications::decide),
        ),
        ep(
            M::POST,
            "/api/v1/licence-applications/{id}/supplement",
            Body::Json,
            ENTERPRISE,
            web::to(licence_applications::supplement),
        ),
        ep(
            M::POST,
            "/api/v1/licence-applications/{id}/withdrawal",
            Body::None,
            ENTERPRISE,
            web::to(licence_applications::withdraw),
        ),
        ep(
            M::GET,
            "/api/v1/inbox",
            Body::None,
            MINISTRY,
            web::to(licence_applications::inbox),
        ),
        // Fees paid online: notices, orders at the payment platform, e-receipts, and the
        // platform's signed notifications (public: the signature authenticates them).
        ep(
            M::GET,
            "/api/v1/fees",
            Body::None,
            ENTERPRISE,
            web::to(payments::list),
        ),
        ep(
            M::GET,
            "/api/v1/fees/{reference}/receipt",
            Body::None,
            ANY,
            web::to(payments::receipt),
        ),
        ep(
            M::GET,
            "/api/v1/fees/{reference}/receipt.p7s",
            Body::None,
            ANY,
            web::to(payments::receipt_signature),
        ),
        ep(
            M::GET,
            "/api/v1/licence-applications/{id}/fee",
            Body::None,
            ANY,
            web::to(payments::get),
        ),
        ep(
            M::POST,
            "/api/v1/licence-applications/{id}/fee/payment",
            Body::None,
            ENTERPRISE,
            web::to(payments::pay),
        ),
        ep(
            M::GET,
            "/api/v1/payments/receipt-certificate",
            Body::None,
            ANY,
            web::to(payments::receipt_certificate),
        ),
        ep(
            M::POST,
            "/api/v1/payments/notifications",
            Body::Json,
            PUBLIC,
            web::to(payments::notification),
        ),
        // Reconciliation with the payment platform's settlement files (administrators).
        ep(
            M::POST,
            "/api/v1/admin/payments/reconciliations",
            Body::Json,
            ADMIN,
            web::to(reconciliations::run),
        ),
        ep(
            M::GET,
            "/api/v1/admin/payments/reconciliations",
            Body::None,
            ADMIN,
            web::to(reconciliations::list),
        ),
        ep(
            M::GET,
            "/api/v1/admin/payments/reconciliations/{id}",
            Body::None,
            ADMIN,
            web::to(reconciliations::get),
        ),
        ep(
            M::POST,
            "/api/v1/licences",
            Body::Xml,
            MINISTRY,
            web::to(licences::deposit),
        ),
        ep(
            M::GET,
            "/api/v1/licences/{number}",
            Body::None,
            ANY,
            web::to(licences::get),
        ),
        ep(
            M::GET,
            "/api/v1/licences/{number}/document",
            Body::None,
            ANY,
            web::to(licences::document),
        ),
        ep(
            M::GET,
            "/api/v1/licences/{number}/signature",
            Body::None,
            ANY,
            web::to(licences::signature),
        ),
        ep(
            M::GET,
            "/api/v1/agencies/{code}/certificates",
            Body::None,
            ANY,
            web::to(licences::certificates),
        ),
        ep(
            M::POST,
            "/api/v1/agencies/{code}/certificates",
            Body::Pem,
            ADMIN,
            web::to(licences::register_certificate),
        ),
        ep(
            M::GET,
            "/api/v1/customs/inbox",
            Body::None,
            CUSTOMS,
            web::to(customs::inbox),
        ),
        ep(
            M::GET,
            "/api/v1/stats",
            Body::None,
            OFFICERS,
            web::to(stats::get),
        ),
        // Exchange with partner windows: operator and customs endpoints.
        ep(
            M::POST,
            "/api/v1/admin/exchange/send",
            Body::Json,
            ADMIN,
            web::to(exchange::send_acdd),
        ),
        ep(
            M::POST,
            "/api/v1/admin/exchange/form-d",
            Body::Xml,
            ADMIN,
            web::to(exchange::send_form_d),
        ),
        ep(
            M::GET,
            "/api/v1/admin/exchange/outbox",
            Body::None,
            ADMIN,
            web::to(exchange::outbox_list),
        ),
        ep(
            M::GET,
            "/api/v1/admin/exchange/outbox/{id}",
            Body::None,
            ADMIN,
            web::to(exchange::outbox_get),
        ),
        ep(
            M::POST,
            "/api/v1/admin/exchange/outbox/{id}/requeue",
            Body::None,
            ADMIN,
            web::to(exchange::requeue),
        ),
        ep(
            M::GET,
            "/api/v1/admin/exchange/outbox/{id}/{part}",
            Body::None,
            ADMIN,
            web::to(exchange::outbox_raw),
        ),
        ep(
            M::PUT,
            "/api/v1/admin/exchange/fault",
            Body::Json,
            ADMIN,
            web::to(exchange::set_fault),
        ),
        ep(
            M::GET,
            "/api/v1/exchange/inbox",
            Body::None,
            CUSTOMS_ADMIN,
            web::to(exchange::inbox),
        ),
        ep(
            M::GET,
            "/api/v1/exchange/inbox/{id}",
            Body::None,
            CUSTOMS_ADMIN,
            web::to(exchange::inbox_get),
        ),
        ep(
            M::GET,
            "/api/v1/exchange/inbox/{id}/{part}",
            Body::None,
            CUSTOMS_ADMIN,
            web::to(exchange::inbox_raw),
        ),
        ep(
            M::POST,
            "/api/v1/exchange/messages/{id}/response",
            Body::Json,
            CUSTOMS,
            web::to(exchange::respond),
        ),
        // Enterprise events: the long-poll feed and webhook subscriptions.
        ep(
            M::GET,
            "/api/v1/events",
            Body::None,
            ANY,
            web::to(events::feed),
        ),
        ep(
            M::POST,
            "/api/v1/webhooks",
            Body::Json,
            ENTERPRISE,
            web::to(webhooks::create),
        ),
        ep(
            M::GET,
            "/api/v1/webhooks",
            Body::None,
            ENTERPRISE_ADMIN,
            web::to(webhooks::list),
        ),
        ep(
            M::DELETE,
            "/api/v1/webhooks/{id}",
            Body::None,
            ENTERPRISE_ADMIN,
            web::to(webhooks::delete),
        ),
        ep(
            M::GET,
            "/api/v1/webhooks/{id}/deliveries",
            Body::None,
            ENTERPRISE_ADMIN,
            web::to(webhooks::deliveries),
        ),
        ep(
            M::POST,
            "/api/v1/webhooks/{id}/retry",
            Body::None,
            ENTERPRISE_ADMIN,
            web::to(webhooks::retry_now),
        ),
    ]
}

/// What the mutual-TLS partner listener serves.
pub fn partner_endpoints() -> Vec<Endpoint> {
    vec![
        ep(
            Method::GET,
            "/health",
            Body::None,
            PUBLIC,
            web::to(health::health),
        ),
        ep(
            Method::GET,
            "/health/live",
            Body::None,
            PUBLIC,
            web::to(health::live),
        ),
        ep(
            Method::GET,
            "/health/ready",
            Body::None,
            PUBLIC,
            web::to(health::ready),
        ),
        ep(
            Method::POST,
            "/exchange/v1/messages",
            Body::Xml,
            PUBLIC,
            web::to(exchange::receive),
        ),
    ]
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    register(cfg, endpoints());
    openapi::page_routes(cfg);
}

pub fn partner_routes(cfg: &mut web::ServiceConfig) {
    register(cfg, partner_endpoints());
}

/// Registers endpoints one resource per path, so that HTTP's method semantics hold on every
/// path: `HEAD` wherever `GET` is (answered like it, without the body), `OPTIONS` answered
/// with `Allow`, and any other method `405` with `Allow` (never a 404 for a path that exists).
/// A path with any non-public endpoint is wrapped in `authenticate_first`, which reads each
/// method's [`Access`] from the resource's [`PathAccess`].
fn register(cfg: &mut web::ServiceConfig, endpoints: Vec<Endpoint>) {
    type Routes = Vec<(Method, Access, Route)>;
    let mut paths: Vec<(&'static str, Routes)> = Vec::new();
    for e in endpoints {
        match paths.iter_mut().find(|(p, _)| *p == e.path) {
            Some((_, routes)) => routes.push((e.method, e.access, e.route)),
            None => paths.push((e.path, vec![(e.method, e.access, e.route)])),
        }
    }
    for (path, routes) in paths {
        let mut methods: Vec<&str> = Vec::new();
        for (m, _, _) in &routes {
            methods.push(m.as_str());
            if *m == Method::GET {
                methods.push("HEAD");
            }
        }
        methods.push("OPTIONS");
        let allow = methods.join(", ");
        let access = PathAccess(routes.iter().map(|(m, a, _)| (m.clone(), *a)).collect());
        let public = routes.iter().all(|(_, a, _)| *a == Access::Public);
        let mut resource = web::resource(path);
        for (m, _, route) in routes {
            resource = resource.route(if m == Method::GET {
                route.guard(guard::Any(guard::Get()).or(guard::Head()))
            } else {
                route.method(m)
            });
        }
        let (a, b) = (allow.clone(), allow);
        resource = resource
            .route(web::route().method(Method::OPTIONS).to(move || {
                let allow = a.clone();
                async move {
                    HttpResponse::NoContent()
                        .insert_header(("Allow", allow))
                        .finish()
                }
            }))
            .default_service(web::to(move || {
                let allow = b.clone();
                async move { Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allow }) }
            }));
        if public {
            cfg.service(resource);
        } else {
            cfg.service(resource.app_data(access).wrap(from_fn(authenticate_first)));
        }
    }
}

/// Who may call each method of one path (resource data, read by `authenticate_first`).
struct PathAccess(Vec<(Method, Access)>);

impl PathAccess {
    /// `HEAD` as `GET`; a method the path does not take wants a caller all the same (then 405).
    fn of(&self, method: &Method) -> Access {
        let method = if *method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        self.0
            .iter()
            .find(|(m, _)| m == method)
            .map_or(Access::Party, |(_, a)| *a)
    }
}

/// Who the caller is and whether the caller's role may use the endpoint, settled before
/// anything else of the request is looked at: an unknown, revoked or missing bearer token is
/// `401` whatever the path, query or body; then a party over its write allowance is `429`;
/// then a role the endpoint's [`Access`] does not name is `403 ROLE_FORBIDDEN`; only then do
/// the extractors and the handler judge the input. The principal is kept for the handler's
/// extractor. `OPTIONS` is answered without credentials, as browsers send it (it tells only
/// the methods).
async fn authenticate_first(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<impl MessageBody>>, actix_web::Error> {
    if req.method() == Method::OPTIONS {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let access = req
        .app_data::<PathAccess>()
        .map_or(Access::Party, |a| a.of(req.method()));
    if access == Access::Public {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(req
            .error_response(ApiError::Internal("no app state".into()))
            .map_into_right_body());
    };
    match auth::authenticate(&state, req.headers()).await {
        Ok(principal) => {
            if matches!(*req.method(), Method::POST | Method::PUT | Method::DELETE) {
                if let Err(e) = state.throttle.write(&principal.party_id) {
                    return Ok(req.error_response(e).map_into_right_body());
                }
            }
            if let Err(e) = access.check(&principal) {
                return Ok(req.error_response(e).map_into_right_body());
            }
            req.extensions_mut().insert(principal);
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(ApiError::Unauthorized) => {
            let e = match req.peer_addr().map(|a| state.throttle.auth_failure(a.ip())) {
                Some(Err(throttled)) => throttled,
                _ => ApiError::Unauthorized,
            };
            Ok(req.error_response(e).map_into_right_body())
        }
        Err(e) => Ok(req.error_response(e).map_into_right_body()),
    }
}

/// Unknown paths and methods answer in problem+json like everything else.
pub async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// Echoes the request id (also in every log line of the request) as `X-Request-Id`.
pub async fn request_id_header(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req.extensions().get::<RequestId>().map(|r| r.to_string());
    let mut res = next.call(req).await?;
    if let Some(id) = id.and_then(|i| HeaderValue::from_str(&i).ok()) {
        res.headers_mut()
            .insert(HeaderName::from_static("x-request-id"), id);
    }
    Ok(res)
}
