//! The CSRF guard of the routes that act on the refresh cookie (ASVS 13.2.3).
//!
//! A browser sends the cookie with cross-site requests too (SameSite=None, or Lax top-level
//! navigations), so these routes act only when the request's `Origin` is this service's own or
//! an allowed one; without `Origin`, only when `Sec-Fetch-Site` is absent (not a modern
//! browser: curl, the Thunder collection), `same-origin`, `same-site` or `none`. The service's
//! own origin comes from forwarding headers only when a trusted proxy sent them.

use actix_web::HttpRequest;
use actix_web::http::header::ORIGIN;

use crate::app_state::AppState;
use crate::error::ApiError;

pub fn check(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let headers = req.headers();
    if let Some(origin) = headers.get(ORIGIN) {
        let origin = origin
            .to_str()
            .map_err(|_| ApiError::CsrfRejected)?
            .trim_end_matches('/')
            .to_ascii_lowercase();
        let own = crate::client_ip::own_origin(req);
        if origin == own || state.allowed_origins.contains(&origin) {
            return Ok(());
        }
        return Err(ApiError::CsrfRejected);
    }
    match headers.get("sec-fetch-site").map(|v| v.to_str().unwrap_or("")) {
        None | Some("same-origin" | "same-site" | "none") => Ok(()),
        Some(_) => Err(ApiError::CsrfRejected),
    }
}
