//! `Authorization: Bearer <access token>` as an extractor.

use futures_util::future::LocalBoxFuture;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use uuid::Uuid;

use crate::app_state::AppState;
use crate::domain::UserId;
use crate::error::ApiError;

/// The caller proven by a valid access token.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated {
    pub user_id: UserId,
    pub session_id: Uuid,
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req
            .app_data::<web::Data<AppState>>()
            .expect("AppState is registered in startup")
            .clone();
        let verified = verify(req, &state);
        Box::pin(async move {
            let outcome = match &verified {
                Ok(_) => "valid",
                Err(ApiError::ExpiredAccessToken) => "expired",
                Err(ApiError::ProtectedRoute | ApiError::InvalidAuthHeader) => return verified,
                Err(_) => "invalid",
            };
            let caller = match verified {
                Ok(caller) => caller,
                Err(e) => {
                    state.metrics.token_validations.with_label_values(&[outcome]).inc();
                    return Err(e);
                }
            };
            // A token outlives a logout or revocation by up to its TTL unless its session is
            // checked; the store may reuse a recent positive answer for SESSION_CACHE_MS.
            let active = state.sessions.is_active(caller.user_id, caller.session_id).await?;
            let outcome = if active { "valid" } else { "invalid" };
            state.metrics.token_validations.with_label_values(&[outcome]).inc();
            if active {
                Ok(caller)
            } else {
                Err(ApiError::InvalidAccessToken)
            }
        })
    }
}

/// The header and the token's signature and claims; the session is checked afterwards.
fn verify(req: &HttpRequest, state: &AppState) -> Result<Authenticated, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::ProtectedRoute)?;
    let value = value.to_str().map_err(|_| ApiError::InvalidAuthHeader)?;
    // The scheme is case-insensitive (RFC 9110 §11.1); any other scheme is refused.
    let (scheme, token) = value.trim().split_once(' ').ok_or(ApiError::InvalidAuthHeader)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::InvalidAuthHeader);
    }
    let claims = state.tokens.verify(token)?;
    crate::telemetry::http::record_user(req, claims.sub);
    Ok(Authenticated {
        user_id: claims.sub,
        session_id: claims.sid,
    })
}
