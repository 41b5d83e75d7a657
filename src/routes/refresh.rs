//! Refresh-token rotation and logout: the two routes that act on the `jwt` cookie.

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use super::cookie::{self, RefreshCookie};
use super::csrf;
use super::rate_limit::Limiter;
use super::request::client;
use super::resource::resource;
use super::schema::{Common, ErrorEnvelope};
use super::wire::Refreshed;
use crate::accounts::Presented;
use crate::app_state::AppState;
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, Result};

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
    match state.accounts.refresh(presented(&req, &state), &client(&req)).await {
        Ok(refreshed) => {
            crate::telemetry::http::record_user(&req, refreshed.user_id);
            let mut response = HttpResponse::Ok();
            response.append_header(cookie::issue(
                &refreshed.refresh_token,
                state.refresh_ttl_secs,
                &state.cookie,
            ));
            let body = Refreshed {
                access_token: refreshed.access.token,
                token_type: "Bearer",
                expires_in: refreshed.access.expires_in,
            };
            Ok(envelope::ok_with(response, body))
        }
        // A token we refused is of no further use: the cookie is cleared with the answer.
        Err(
            e @ (ApiError::NoRefreshToken
            | ApiError::InvalidRefreshToken
            | ApiError::ExpiredRefreshToken
            | ApiError::RefreshTokenReused),
        ) => Ok(rejected(&state, e)),
        Err(e) => Err(e),
    }
}

/// The refresh token the request presents, unless it comes cross-site.
fn presented(req: &HttpRequest, state: &AppState) -> Presented {
    if csrf::check(req, state).is_err() {
        return Presented::CrossSite;
    }
    match cookie::read(req) {
        RefreshCookie::Missing => Presented::Missing,
        RefreshCookie::Empty => Presented::Empty,
        RefreshCookie::Present(token) => Presented::Token(token),
    }
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
    state.accounts.logout(presented(&req, &state), &client(&req)).await?;
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
