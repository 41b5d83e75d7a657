//! A user's own refresh sessions: list them, revoke one, revoke all.

use actix_web::{HttpRequest, HttpResponse, web};
use uuid::Uuid;

use super::bearer::Authenticated;
use super::cookie;
use super::json::OptionalJsonBody;
use super::mfa::SecondFactor;
use super::request::client;
use super::resource::{get, resource};
use super::schema::{BadBody, Common, ErrorEnvelope, NeedsBearer};
use super::wire::{ListedSession, Revoked};
use crate::app_state::AppState;
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, Result};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/auth/sessions", "GET, HEAD, DELETE")
            .route(get().to(list))
            .route(web::delete().to(revoke_all)),
    )
    .service(resource("/auth/sessions/{id}", "DELETE").route(web::delete().to(revoke_one)));
}

/// List my sessions
///
/// Oldest first; `current` marks the one of the access token making the request.
#[utoipa::path(get, path = "/auth/sessions", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = Envelope<Vec<ListedSession>>,
        links(("RevokeFirst" = (operation_id = "revoke_one", parameters(("id" = "$response.body#/content/0/id")), description = "End the oldest session")))),
        NeedsBearer, Common))]
pub(super) async fn list(state: web::Data<AppState>, Authenticated(caller): Authenticated) -> Result<HttpResponse> {
    let sessions = state.accounts.sessions_of(&caller).await?;
    let listed: Vec<ListedSession> = sessions
        .into_iter()
        .map(|session| ListedSession::of(session, caller.session_id))
        .collect();
    Ok(envelope::ok(listed))
}

/// End one of my sessions
///
/// The cookie is cleared when it is the caller's own session.
#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "account", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "A session id from the list")),
    responses(
        (status = 200, body = Envelope<Revoked>),
        (status = 400, description = "`VALIDATION_ERROR`: not a UUID", body = ErrorEnvelope),
        (status = 404, description = "`SESSION_NOT_FOUND`: not one of the caller's", body = ErrorEnvelope),
        NeedsBearer, Common))]
pub(super) async fn revoke_one(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(caller): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let id = Uuid::parse_str(&path).map_err(|_| ApiError::validation("id", "id must be a session UUID"))?;
    state.accounts.revoke_session(&caller, id, &client(&req)).await?;
    let mut response = HttpResponse::Ok();
    // Revoking the caller's own session: its refresh cookie is dead, so clear it.
    if id == caller.session_id {
        response.append_header(cookie::clear(&state.cookie));
    }
    Ok(envelope::ok_with(response, Revoked { revoked: 1 }))
}

/// End all my sessions
///
/// This one included; clears the cookie. A user with a second factor sends a `code` or a
/// `recovery_code` in a JSON body; without a factor the body may be left out.
#[utoipa::path(delete, path = "/auth/sessions", tag = "account", security(("bearer" = [])),
    request_body(content = Option<SecondFactor>, description = "Required when the user has a second factor"),
    responses(
        (status = 200, body = Envelope<Revoked>),
        (status = 401, description = "`MFA_CODE_INVALID` (counts towards the lockout)", body = ErrorEnvelope),
        (status = 403, description = "`MFA_CODE_REQUIRED`", body = ErrorEnvelope),
        BadBody, NeedsBearer, Common))]
pub(super) async fn revoke_all(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(caller): Authenticated,
    OptionalJsonBody(body): OptionalJsonBody<SecondFactor>,
) -> Result<HttpResponse> {
    let proof = body.unwrap_or_default().proof()?;
    let revoked = state
        .accounts
        .revoke_all_sessions(&caller, proof, &client(&req))
        .await?;
    let mut response = HttpResponse::Ok();
    response.append_header(cookie::clear(&state.cookie));
    Ok(envelope::ok_with(response, Revoked { revoked }))
}
