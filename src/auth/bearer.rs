//! `Authorization: Bearer <access token>` as an extractor.

use std::future::{Ready, ready};

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
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

fn authenticate(req: &HttpRequest) -> Result<Authenticated, ApiError> {
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
    let state = req
        .app_data::<web::Data<AppState>>()
        .expect("AppState is registered in startup");
    let verified = state.tokens.verify(token);
    let outcome = match &verified {
        Ok(_) => "valid",
        Err(ApiError::ExpiredAccessToken) => "expired",
        Err(_) => "invalid",
    };
    state.metrics.token_validations.with_label_values(&[outcome]).inc();
    let claims = verified?;
    crate::telemetry::http::record_user(req, claims.sub);
    Ok(Authenticated {
        user_id: claims.sub,
        session_id: claims.sid,
    })
}
