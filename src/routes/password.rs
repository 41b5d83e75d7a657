//! Changing one's password (the current one is checked again, under the login lockout; every
//! other session ends) and resetting a forgotten one through a mailed single-use link (every
//! session ends).

use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;

use super::bearer::Authenticated;
use super::json::JsonBody;
use super::openapi::{
    BadBody, Common, EmailAddress, ErrorEnvelope, LinkToken, NeedsBearer, NewPasswordText, PasswordText,
};
use super::rate_limit::Limiter;
use super::{Revoked, accepted, client_info, resource};
use crate::app_state::AppState;
use crate::auth::refresh_token::TokenHash;
use crate::domain::{Email, LoginPassword, MailKind, NewPassword};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, Result};
use crate::store::users::{MailRequest, TokenUse};
use utoipa::ToSchema;

pub fn configure(cfg: &mut web::ServiceConfig, auth_limit: &Limiter) {
    let limited = |path: &str| resource(path, "POST").wrap(auth_limit.layer());
    cfg.service(limited("/auth/password/change").route(web::post().to(change)))
        .service(limited("/auth/password/forgot").route(web::post().to(forgot)))
        .service(limited("/auth/password/reset").route(web::post().to(reset)));
}

#[derive(Deserialize, ToSchema)]
pub(super) struct ForgotBody {
    #[schema(value_type = EmailAddress)]
    email: String,
}

#[derive(Deserialize, ToSchema)]
pub(super) struct ResetBody {
    /// The `token` of the mailed `/reset-password?token=…` link.
    #[schema(value_type = LinkToken)]
    token: String,
    #[schema(value_type = NewPasswordText)]
    password: SecretString,
}

/// Ask for a password-reset link
///
/// Mails a reset link if the address has an account, and answers 202 alike whether or not it
/// has: the request only queues the address (one insert either way); the sender finds out
/// later whether there is an account to mail.
#[utoipa::path(post, path = "/auth/password/forgot", tag = "mail", request_body = ForgotBody,
    responses(
        (status = 202, body = Envelope<String>),
        (status = 404, description = "`MAIL_DISABLED`: this deployment sends no mail (no `SMTP_URL`)", body = ErrorEnvelope),
        BadBody, Common))]
pub(super) async fn forgot(
    state: web::Data<AppState>,
    req: HttpRequest,
    JsonBody(body): JsonBody<ForgotBody>,
) -> Result<HttpResponse> {
    if !state.mail.enabled() {
        return Err(ApiError::MailDisabled);
    }
    let email = Email::parse(&body.email)?;
    let request = MailRequest::new(MailKind::PasswordReset, email.as_str(), None, client_info(&req));
    let queued = state.mail.queue(&state.users, &request).await?;
    count_reset(&state, if queued { "requested" } else { "throttled" });
    Ok(accepted(
        "if an account has this email, a link to reset its password is on its way",
    ))
}

/// Set a new password with a mailed token
///
/// The token works once (of two racing uses, one wins); every session of the user ends, and
/// so do the account's other reset links.
#[utoipa::path(post, path = "/auth/password/reset", tag = "mail", request_body = ResetBody,
    responses(
        (status = 200, description = "`revoked`: the user's sessions, all ended", body = Envelope<Revoked>),
        (status = 400, description = "`INVALID_RESET_TOKEN` (unknown, used, or superseded), `EXPIRED_RESET_TOKEN`, or `VALIDATION_ERROR`", body = ErrorEnvelope),
        (status = 413, description = "`PAYLOAD_TOO_LARGE`", body = ErrorEnvelope),
        (status = 415, description = "`UNSUPPORTED_MEDIA_TYPE`", body = ErrorEnvelope),
        Common))]
pub(super) async fn reset(state: web::Data<AppState>, JsonBody(body): JsonBody<ResetBody>) -> Result<HttpResponse> {
    let result = reset_with(&state, body).await;
    let outcome = match &result {
        Ok(_) => "completed",
        Err(ApiError::InvalidResetToken) => "invalid_token",
        Err(ApiError::ExpiredResetToken) => "expired_token",
        Err(_) => return result,
    };
    count_reset(&state, outcome);
    result
}

async fn reset_with(state: &AppState, body: ResetBody) -> Result<HttpResponse> {
    let password = NewPassword::parse(body.password)?;
    if !crate::auth::refresh_token::looks_valid(&body.token) {
        return Err(ApiError::InvalidResetToken);
    }
    let hash = TokenHash::of(&body.token);
    // A dead link is refused before any password hashing is spent on it.
    match state.users.peek_token(MailKind::PasswordReset, hash.as_bytes()).await? {
        TokenUse::Unknown => return Err(ApiError::InvalidResetToken),
        TokenUse::Expired => return Err(ApiError::ExpiredResetToken),
        TokenUse::Used(..) => {}
    }
    let password_hash = state.hasher.hash(password.secret()).await?;
    let sessions = &state.sessions;
    let used = state
        .users
        .reset_password(hash.as_bytes(), &password_hash, |user| async move {
            sessions.revoke_all(user, None).await
        })
        .await?;
    let (user, revoked) = match used {
        TokenUse::Unknown => return Err(ApiError::InvalidResetToken),
        TokenUse::Expired => return Err(ApiError::ExpiredResetToken),
        TokenUse::Used(user, revoked) => (user, revoked),
    };
    state
        .metrics
        .sessions_revoked
        .with_label_values(&["password_reset"])
        .inc_by(u64::from(revoked));
    // The mailbox owner chose a new password: earlier failed guesses no longer lock them out.
    if let Some(credentials) = state.users.find_by_id(user).await? {
        state.throttle.succeeded(&Email::parse(&credentials.email)?).await?;
    }
    tracing::info!(user_id = %user, revoked, "password reset");
    Ok(envelope::ok(Revoked { revoked }))
}

fn count_reset(state: &AppState, outcome: &str) {
    state.metrics.password_resets.with_label_values(&[outcome]).inc();
}

#[derive(Deserialize, ToSchema)]
pub(super) struct ChangeBody {
    #[schema(value_type = PasswordText)]
    current_password: SecretString,
    #[schema(value_type = NewPasswordText)]
    new_password: SecretString,
}

/// Change the password
///
/// Replaces the password after checking the current one; ends every other session of the
/// user and keeps the caller's. Every outstanding reset link of the account dies.
#[utoipa::path(post, path = "/auth/password/change", tag = "account", request_body = ChangeBody, security(("bearer" = [])),
    responses(
        (status = 200, description = "`revoked`: the caller's other sessions, now ended", body = Envelope<Revoked>),
        (status = 403, description = "`INVALID_CURRENT_PASSWORD` (counts towards the lockout)", body = ErrorEnvelope),
        BadBody, NeedsBearer, Common))]
pub(super) async fn change(
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
    Ok(envelope::ok(Revoked { revoked }))
}

/// The same rule, named after the field the client sent.
fn rename(error: crate::domain::ValidationError, field: &'static str) -> crate::domain::ValidationError {
    crate::domain::ValidationError::new(field, error.message.replacen("password", field, 1))
}
