//! `Authorization: Bearer <access token>` as an extractor: the header is parsed here, the token
//! proven by the account layer.

use futures_util::future::LocalBoxFuture;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};

use super::request::client;
use crate::accounts::Caller;
use crate::app_state::AppState;
use crate::error::ApiError;

/// The caller proven by a valid access token, with a live session, and who still exists.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Caller);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = app_state(req);
        let token = bearer_token(req).map(str::to_owned);
        let req = req.clone();
        Box::pin(async move {
            let caller = state.accounts.authenticate(&token?, || client(&req)).await?;
            crate::telemetry::http::record_user(&req, caller.user.id);
            Ok(Authenticated(caller))
        })
    }
}

/// The shared state, for an extractor (a handler takes `web::Data<AppState>`).
pub(super) fn app_state(req: &HttpRequest) -> web::Data<AppState> {
    req.app_data::<web::Data<AppState>>()
        .expect("AppState is registered in startup")
        .clone()
}

/// The token of the `Authorization` header (an access token, or on the admin listener an
/// admin key).
pub(super) fn bearer_token(req: &HttpRequest) -> Result<&str, ApiError> {
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
    Ok(token)
}
