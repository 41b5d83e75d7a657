//! A user's own refresh sessions: list them, revoke one, revoke all.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use uuid::Uuid;

use super::bearer::Authenticated;
use super::resource;
use crate::app_state::AppState;
use crate::auth::cookie;
use crate::envelope;
use crate::error::{ApiError, Result};
use crate::store::sessions::SessionInfo;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/auth/sessions")
            .route(web::get().to(list))
            .route(web::delete().to(revoke_all)),
    )
    .service(resource("/auth/sessions/{id}").route(web::delete().to(revoke_one)));
}

#[derive(Serialize)]
struct ListedSession {
    #[serde(flatten)]
    session: SessionInfo,
    /// Whether this is the session of the access token making the request.
    current: bool,
}

#[derive(Serialize)]
struct Revoked {
    revoked: u32,
}

async fn list(state: web::Data<AppState>, caller: Authenticated) -> Result<HttpResponse> {
    let sessions = state.sessions.list(caller.user_id).await?;
    let listed: Vec<ListedSession> = sessions
        .into_iter()
        .map(|session| ListedSession {
            current: session.id == caller.session_id,
            session,
        })
        .collect();
    Ok(envelope::ok(listed))
}

async fn revoke_one(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let id = Uuid::parse_str(&path).map_err(|_| ApiError::validation("id", "id must be a session UUID"))?;
    if !state.sessions.revoke(caller.user_id, id).await? {
        return Err(ApiError::SessionNotFound);
    }
    state.metrics.sessions_revoked.with_label_values(&["user"]).inc();
    let mut response = HttpResponse::Ok();
    // Revoking the caller's own session: its refresh cookie is dead, so clear it.
    if id == caller.session_id {
        response.cookie(cookie::clear(&state.cookie));
    }
    Ok(envelope::ok_with(response, Revoked { revoked: 1 }))
}

async fn revoke_all(state: web::Data<AppState>, caller: Authenticated) -> Result<HttpResponse> {
    let revoked = state.sessions.revoke_all(caller.user_id, None).await?;
    state
        .metrics
        .sessions_revoked
        .with_label_values(&["user"])
        .inc_by(u64::from(revoked));
    let mut response = HttpResponse::Ok();
    response.cookie(cookie::clear(&state.cookie));
    Ok(envelope::ok_with(response, Revoked { revoked }))
}
