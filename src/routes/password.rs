//! Changing one's password: the current one is checked again (under the login lockout), the new
//! one must pass the registration rules, and every other session of the user ends.

use actix_web::{HttpResponse, web};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::bearer::Authenticated;
use super::json::JsonBody;
use super::rate_limit::Limiter;
use super::resource;
use crate::app_state::AppState;
use crate::domain::{Email, LoginPassword, NewPassword};
use crate::envelope;
use crate::error::{ApiError, Result};
use actix_governor::Governor;

pub fn configure(cfg: &mut web::ServiceConfig, auth_limit: &Limiter) {
    cfg.service(
        resource("/auth/password/change")
            .wrap(Governor::new(auth_limit))
            .route(web::post().to(change)),
    );
}

#[derive(Deserialize)]
struct ChangeBody {
    current_password: SecretString,
    new_password: SecretString,
}

#[derive(Serialize)]
struct Changed {
    /// The caller's other sessions, now ended.
    revoked: u32,
}

async fn change(
    state: web::Data<AppState>,
    caller: Authenticated,
    JsonBody(body): JsonBody<ChangeBody>,
) -> Result<HttpResponse> {
    let current = LoginPassword::parse(body.current_password).map_err(|e| rename(e, "current_password"))?;
    let new = NewPassword::parse(body.new_password).map_err(|e| rename(e, "new_password"))?;
    let credentials = state
        .users
        .find_credentials_by_id(caller.user_id)
        .await?
        .ok_or(ApiError::InvalidAccessToken)?;
    let email = Email::parse(&credentials.user.email)?;
    super::auth::refuse_if_locked(&state, &email).await?;
    if !state
        .hasher
        .verify(current.secret(), Some(credentials.password_hash))
        .await?
    {
        // A stolen access token must not turn into unlimited guesses at the password.
        if state.throttle.failed(&email).await?.is_some() {
            tracing::warn!("account locked after repeated wrong current passwords");
        }
        return Err(ApiError::InvalidCurrentPassword);
    }
    state.throttle.succeeded(&email).await?;
    let hash = state.hasher.hash(new.secret()).await?;
    if !state.users.set_password_hash(caller.user_id, &hash).await? {
        return Err(ApiError::InvalidAccessToken);
    }
    // Every other session ends, and with it its access tokens (each request checks its session).
    let revoked = state
        .sessions
        .revoke_all(caller.user_id, Some(caller.session_id))
        .await?;
    state
        .metrics
        .sessions_revoked
        .with_label_values(&["password_change"])
        .inc_by(u64::from(revoked));
    tracing::info!(revoked, "password changed");
    Ok(envelope::ok(Changed { revoked }))
}

/// The same rule, named after the field the client sent.
fn rename(error: crate::domain::ValidationError, field: &'static str) -> crate::domain::ValidationError {
    crate::domain::ValidationError::new(field, error.message.replacen("password", field, 1))
}
