//! The route table. Each area exposes `configure`; every resource answers 405 in the envelope
//! for a method it does not serve, and the app answers 404 in the envelope for unknown paths.

mod auth;
mod health;
mod json;
mod me;
mod refresh;
mod sessions;

use actix_web::{HttpRequest, HttpResponse, Resource, web};

use crate::envelope;
use crate::error::ApiError;
use crate::store::sessions::ClientInfo;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/").route(web::get().to(root)));
    auth::configure(cfg);
    refresh::configure(cfg);
    me::configure(cfg);
    sessions::configure(cfg);
    health::configure(cfg);
}

/// A resource whose unmatched methods answer 405 in the envelope.
fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(|| async { Err::<HttpResponse, _>(ApiError::MethodNotAllowed) }))
}

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
        ip: req.peer_addr().map(|a| a.ip().to_string()),
    }
}
