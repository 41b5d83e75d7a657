//! The ping of `GET /`, liveness (the process answers) and readiness (both stores answer in
//! time).

use actix_web::{HttpResponse, ResponseError, web};
use serde::Serialize;

use super::resource::{get, resource};
use crate::app_state::AppState;
use crate::envelope;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/", "GET, HEAD").route(get().to(root)))
        .service(resource("/health/live", "GET, HEAD").route(get().to(live)))
        .service(resource("/health/ready", "GET, HEAD").route(get().to(ready)));
}

/// Ping
///
/// Answers `"server is OK"`, as the original demo did.
#[utoipa::path(get, path = "/", tag = "service", responses((status = 200, body = envelope::Envelope<String>, example = json!({"success": true, "status": 200, "content": "server is OK"}))))]
pub(super) async fn root() -> HttpResponse {
    envelope::ok("server is OK")
}

/// Liveness
///
/// The process answers.
#[utoipa::path(get, path = "/health/live", tag = "service", responses((status = 200, body = envelope::Envelope<String>)))]
pub(super) async fn live() -> HttpResponse {
    envelope::ok("live")
}

#[derive(Serialize, utoipa::ToSchema)]
struct Readiness {
    database: &'static str,
    session_store: &'static str,
}

/// Readiness
///
/// 200 when both stores answer within the store timeout; otherwise the 503 envelope of the
/// first that failed (its `dependency` field names it).
#[utoipa::path(get, path = "/health/ready", tag = "service", responses(
    (status = 200, body = envelope::Envelope<Readiness>),
    (status = 503, description = "`SERVICE_UNAVAILABLE`: `dependency` names the store that failed; `SHUTTING_DOWN`: the instance got SIGTERM", body = super::schema::ErrorEnvelope),
))]
pub(super) async fn ready(state: web::Data<AppState>) -> HttpResponse {
    if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return crate::error::ApiError::ShuttingDown.error_response();
    }
    let (database, sessions) = tokio::join!(state.accounts.users.ping(), state.accounts.sessions.ping());
    match database.and(sessions) {
        Ok(()) => envelope::ok(Readiness {
            database: "ok",
            session_store: "ok",
        }),
        Err(e) => crate::error::ApiError::from(e).error_response(),
    }
}
