//! The route table. Each area exposes `configure`; every resource answers 405 in the envelope
//! for a method it does not serve, and the app answers 404 in the envelope for unknown paths.

pub mod admin;
mod auth;
mod bearer;
mod cookie;
mod csrf;
mod docs;
mod email;
mod events;
mod health;
mod json;
mod jwks;
mod me;
pub mod metrics;
mod mfa;
pub mod openapi;
mod passkeys;
mod password;
pub mod rate_limit;
mod refresh;
mod request;
mod resource;
mod schema;
mod sessions;
mod wire;

use actix_web::{HttpResponse, web};

use crate::error::ApiError;
use rate_limit::Limiters;

/// The route table. `GET /`, the health routes and the JWKS come first and are never rate-limited (a
/// probe must not be starved by a busy client); everything else, unknown paths included, sits
/// in one scope behind the general limiter, and the credential routes behind the auth one too.
pub fn configure(cfg: &mut web::ServiceConfig, limiters: &Limiters, docs: bool) {
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
                events::configure(cfg);
                mfa::configure(cfg, &limiters.auth);
                passkeys::configure(cfg, &limiters.auth);
            })
            .default_service(web::to(not_found)),
    );
}

/// The fallback for unknown paths.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}
