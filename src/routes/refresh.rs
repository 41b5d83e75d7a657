//! Refresh-token rotation and logout: the two routes that act on the `jwt` cookie.

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Serialize;

use super::openapi::{Common, ErrorEnvelope};
use super::rate_limit::Limiter;
use super::{client_info, csrf, resource};
use crate::app_state::AppState;
use crate::auth::cookie::{self, RefreshCookie};
use crate::auth::refresh_token::{self, TokenHash};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, Result};
use crate::store::sessions::Rotation;

pub fn configure(cfg: &mut web::ServiceConfig, auth_limit: &Limiter) {
    // GET is the seed's; POST is what a browser client should use. No HEAD: this GET rotates
    // the session, and HEAD must be safe.
    cfg.service(
        resource("/auth/refreshAccessToken", "GET, POST")
            .wrap(auth_limit.layer())
            .route(web::get().to(refresh_get))
            .route(web::post().to(refresh_post)),
    )
    .service(resource("/auth/logout", "POST").route(web::post().to(logout)));
}

#[derive(Serialize, utoipa::ToSchema)]
struct Refreshed {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

/// Get a new access token
///
/// Rotates the refresh cookie and issues an access token. The cookie's token is retired; within
/// `REFRESH_REUSE_GRACE` it still answers with the same successor (two tabs), after that it
/// revokes the session (reuse = theft).
#[utoipa::path(post, path = "/auth/refreshAccessToken", tag = "auth", security(("refresh_cookie" = [])),
    responses(
        (status = 200, body = Envelope<Refreshed>, headers(("Set-Cookie" = String, description = "the rotated `jwt` cookie"))),
        (status = 401, description = "`NO_JWT_REFTOKEN_COOKIE`, `NO_REFRESH_TOKEN`, `INVALID_REFRESH_TOKEN`, `EXPIRED_REFRESH_TOKEN` or `REFRESH_TOKEN_REUSED` (the cookie is cleared)", body = ErrorEnvelope),
        (status = 403, description = "`CSRF_REJECTED`: a foreign `Origin`, or a cross-site `Sec-Fetch-Site`", body = ErrorEnvelope),
        Common))]
pub(super) async fn refresh_post(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse> {
    refresh(state, req).await
}

/// Get a new access token (GET, kept for older clients)
///
/// The same as `POST /auth/refreshAccessToken`, kept for the original demo's clients; browsers
/// should use POST.
#[utoipa::path(get, path = "/auth/refreshAccessToken", tag = "auth", security(("refresh_cookie" = [])),
    responses(
        (status = 200, body = Envelope<Refreshed>),
        (status = 401, description = "as for POST", body = ErrorEnvelope),
        (status = 403, description = "`CSRF_REJECTED`", body = ErrorEnvelope),
        Common))]
pub(super) async fn refresh_get(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse> {
    refresh(state, req).await
}

async fn refresh(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse> {
    let result = rotate(&state, &req).await;
    let outcome = match &result {
        Ok((outcome, _)) => outcome,
        Err(_) => "error",
    };
    state.metrics.refreshes.with_label_values(&[outcome]).inc();
    result.map(|(_, response)| response)
}

/// Presents the cookie's token to the store; the outcome label and the response.
async fn rotate(state: &AppState, req: &HttpRequest) -> Result<(&'static str, HttpResponse)> {
    if let Err(e) = csrf::check(req, state) {
        return Ok(("invalid", e.error_response()));
    }
    let presented = match cookie::read(req) {
        RefreshCookie::Missing => return Ok(("invalid", ApiError::NoRefreshCookie.error_response())),
        RefreshCookie::Empty => return Ok(("invalid", rejected(state, ApiError::NoRefreshToken))),
        RefreshCookie::Present(token) if refresh_token::looks_valid(&token) => token,
        RefreshCookie::Present(_) => return Ok(("invalid", rejected(state, ApiError::InvalidRefreshToken))),
    };
    let successor = refresh_token::random_token();
    let sealed = refresh_token::seal(&successor, &presented);
    let rotation = state
        .sessions
        .rotate(
            TokenHash::of(&presented),
            TokenHash::of(&successor),
            &sealed,
            &client_info(req),
        )
        .await?;
    let (outcome, user_id, session_id, token) = match rotation {
        Rotation::Rotated { session_id, user_id } => ("success", user_id, session_id, successor),
        Rotation::GraceReplay {
            session_id,
            user_id,
            sealed_successor,
        } => {
            let token = refresh_token::unseal(&sealed_successor, &presented)
                .ok_or_else(|| anyhow::anyhow!("stored successor of session {session_id} does not unseal"))?;
            ("grace_replay", user_id, session_id, token)
        }
        Rotation::Reused { session_id, user_id } => {
            tracing::warn!(%session_id, %user_id, "retired refresh token presented again: session revoked");
            state.metrics.sessions_revoked.with_label_values(&["reuse"]).inc();
            return Ok(("reused", rejected(state, ApiError::RefreshTokenReused)));
        }
        Rotation::Expired => return Ok(("expired", rejected(state, ApiError::ExpiredRefreshToken))),
        Rotation::Invalid => return Ok(("invalid", rejected(state, ApiError::InvalidRefreshToken))),
    };
    crate::telemetry::http::record_user(req, user_id);
    if super::bearer::existing_user(state, user_id).await?.is_none() {
        return Ok(("invalid", rejected(state, ApiError::InvalidRefreshToken)));
    }
    let access = state.tokens.issue(user_id, session_id)?;
    let mut response = HttpResponse::Ok();
    response.append_header(cookie::issue(&token, state.refresh_ttl_secs, &state.cookie));
    let body = Refreshed {
        access_token: access.token,
        token_type: "Bearer",
        expires_in: access.expires_in,
    };
    Ok((outcome, envelope::ok_with(response, body)))
}

/// Log out
///
/// Ends the session of the presented cookie (if any) and clears the cookie; idempotent.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security((), ("refresh_cookie" = [])),
    responses(
        (status = 200, body = Envelope<String>, example = json!({"success": true, "status": 200, "content": "logged out"})),
        (status = 403, description = "`CSRF_REJECTED`", body = ErrorEnvelope),
        Common))]
pub(super) async fn logout(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse> {
    csrf::check(&req, &state)?;
    if let RefreshCookie::Present(token) = cookie::read(&req)
        && refresh_token::looks_valid(&token)
        && state.sessions.revoke_by_token(TokenHash::of(&token)).await?.is_some()
    {
        state.metrics.sessions_revoked.with_label_values(&["logout"]).inc();
    }
    let mut response = HttpResponse::Ok();
    response.append_header(cookie::clear(&state.cookie));
    Ok(envelope::ok_with(response, "logged out"))
}

/// The error's envelope, with the cookie cleared: a token we refused is of no further use.
fn rejected(state: &AppState, error: ApiError) -> HttpResponse {
    let mut response = error.error_response();
    let (name, value) = cookie::clear(&state.cookie);
    response
        .headers_mut()
        .append(name, value.parse().expect("a cookie we built is a valid header"));
    response
}
