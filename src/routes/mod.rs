//! The route table. Each area exposes `configure`; every resource answers 405 in the envelope
//! for a method it does not serve, and the app answers 404 in the envelope for unknown paths.

mod auth;
mod bearer;
mod csrf;
mod docs;
mod email;
mod health;
mod json;
mod jwks;
mod me;
pub mod metrics;
pub mod openapi;
mod password;
pub mod rate_limit;
mod refresh;
mod sessions;

use actix_web::{HttpRequest, HttpResponse, Resource, Route, guard, web};

use crate::envelope;
use crate::error::ApiError;
use crate::store::sessions::ClientInfo;
use rate_limit::Limiters;

/// The route table. `GET /`, the health routes and the JWKS come first and are never rate-limited (a
/// probe must not be starved by a busy client); everything else, unknown paths included, sits
/// in one scope behind the general limiter, and the credential routes behind the auth one too.
pub fn configure(cfg: &mut web::ServiceConfig, limiters: &Limiters, docs: bool) {
    cfg.service(resource("/", "GET, HEAD").route(get().to(root)));
    health::configure(cfg);
    jwks::configure(cfg);
    if docs {
        docs::configure(cfg);
    }
    let limiters = limiters.clone();
    cfg.service(
        web::scope("")
            .wrap(limiters.general.layer())
            .configure(|cfg| {
                auth::configure(cfg, &limiters.auth);
                refresh::configure(cfg, &limiters.auth);
                me::configure(cfg);
                password::configure(cfg, &limiters.auth);
                email::configure(cfg, &limiters.auth);
                sessions::configure(cfg);
            })
            .default_service(web::to(not_found)),
    );
}

/// A resource whose other methods than `allow` (as the `Allow` header lists them) answer 405 in
/// the envelope, with that header.
fn resource(path: &str, allow: &'static str) -> Resource {
    web::resource(path).default_service(web::to(move || async move {
        Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allow })
    }))
}

/// A route for GET and HEAD: whatever serves GET serves HEAD too (RFC 9110 §9.3.2), the body
/// left out by the server.
fn get() -> Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// What ending sessions answers: how many ended.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Revoked {
    revoked: u32,
}

/// 202 with `message`: the work was queued; the answer says nothing about whether it applied.
fn accepted(message: &'static str) -> HttpResponse {
    HttpResponse::Accepted().json(envelope::Envelope::new(actix_web::http::StatusCode::ACCEPTED, message))
}

/// Ping
///
/// Answers `"server is OK"`, as the original demo did.
#[utoipa::path(get, path = "/", tag = "service", responses((status = 200, body = envelope::Envelope<String>, example = json!({"success": true, "status": 200, "content": "server is OK"}))))]
async fn root() -> HttpResponse {
    envelope::ok("server is OK")
}

/// The fallback for unknown paths.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// User agent and peer address, recorded on a session for its owner's session list.
fn client_info(req: &HttpRequest) -> ClientInfo {
    ClientInfo {
        user_agent: req
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(256).collect()),
        ip: crate::client_ip::of(req).map(|ip| ip.to_string()),
    }
}
