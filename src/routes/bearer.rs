//! `Authorization: Bearer <access token>` as an extractor.

use futures_util::future::LocalBoxFuture;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use uuid::Uuid;

use crate::app_state::AppState;
use crate::domain::{User, UserId};
use crate::error::ApiError;

/// The caller proven by a valid access token, with a live session, and who still exists.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub user_id: UserId,
    pub session_id: Uuid,
    pub user: User,
}

/// A token's claims before the session and the user are checked.
struct Claimed {
    user_id: UserId,
    session_id: Uuid,
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
            let caller = match verified {
                Ok(caller) => caller,
                Err(e @ (ApiError::ProtectedRoute | ApiError::InvalidAuthHeader)) => return Err(e),
                Err(e) => {
                    let outcome = match e {
                        ApiError::ExpiredAccessToken => "expired",
                        _ => "invalid",
                    };
                    state.metrics.token_validations.with_label_values(&[outcome]).inc();
                    return Err(e);
                }
            };
            // A token outlives a logout or revocation by up to its TTL unless its session is
            // checked; the store may reuse a recent positive answer for SESSION_CACHE_MS.
            let active = state.sessions.is_active(caller.user_id, caller.session_id).await?;
            let user = match active {
                true => existing_user(&state, caller.user_id).await?,
                false => None,
            };
            let outcome = if user.is_some() { "valid" } else { "invalid" };
            state.metrics.token_validations.with_label_values(&[outcome]).inc();
            let user = user.ok_or(ApiError::InvalidAccessToken)?;
            Ok(Authenticated {
                user_id: caller.user_id,
                session_id: caller.session_id,
                user,
            })
        })
    }
}

/// The header and the token's signature and claims; the session is checked afterwards.
fn verify(req: &HttpRequest, state: &AppState) -> Result<Claimed, ApiError> {
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
    Ok(Claimed {
        user_id: claims.sub,
        session_id: claims.sid,
    })
}

/// The user `id` if it still exists. A user deleted behind the service's back (an operator's
/// SQL, an erasure) keeps no session: the first request that finds it gone ends them all, on
/// whichever instance sees it, so no refresh token of that user mints another access token.
pub(super) async fn existing_user(state: &AppState, id: UserId) -> Result<Option<User>, ApiError> {
    let user = state.users.find_by_id(id).await?;
    if user.is_none() {
        let revoked = state.sessions.revoke_all(id, None).await?;
        if revoked > 0 {
            tracing::warn!(user_id = %id, revoked, "sessions of a user that no longer exists: revoked");
            state
                .metrics
                .sessions_revoked
                .with_label_values(&["user_gone"])
                .inc_by(u64::from(revoked));
        }
    }
    Ok(user)
}
