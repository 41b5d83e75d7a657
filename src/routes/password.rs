//! Changing one's password (the current one is checked again, under the login lockout; every
//! other session ends) and resetting a forgotten one through a mailed single-use link (every
//! session ends).

use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;
use utoipa::ToSchema;

use super::bearer::Authenticated;
use super::json::JsonBody;
use super::mfa::SecondFactor;
use super::rate_limit::Limiter;
use super::request::client;
use super::resource::resource;
use super::schema::{
    BadBody, Common, EmailAddress, ErrorEnvelope, LinkToken, NeedsBearer, NewPasswordText, PasswordText,
};
use super::wire::{Revoked, accepted};
use crate::app_state::AppState;
use crate::envelope::{self, Envelope};
use crate::error::Result;

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
    state.accounts.forgot_password(&body.email, &client(&req)).await?;
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
pub(super) async fn reset(
    state: web::Data<AppState>,
    req: HttpRequest,
    JsonBody(body): JsonBody<ResetBody>,
) -> Result<HttpResponse> {
    let revoked = state
        .accounts
        .reset_password(&body.token, body.password, &client(&req))
        .await?;
    Ok(envelope::ok(Revoked { revoked }))
}

#[derive(Deserialize, ToSchema)]
pub(super) struct ChangeBody {
    #[schema(value_type = PasswordText)]
    current_password: SecretString,
    #[schema(value_type = NewPasswordText)]
    new_password: SecretString,
    /// Required when the user has a second factor.
    #[serde(flatten)]
    second_factor: SecondFactor,
}

/// Change the password
///
/// Replaces the password after checking the current one; ends every other session of the
/// user and keeps the caller's. Every outstanding reset link of the account dies.
#[utoipa::path(post, path = "/auth/password/change", tag = "account", request_body = ChangeBody, security(("bearer" = [])),
    responses(
        (status = 200, description = "`revoked`: the caller's other sessions, now ended", body = Envelope<Revoked>),
        (status = 401, description = "`MFA_CODE_INVALID` (counts towards the lockout)", body = ErrorEnvelope),
        (status = 403, description = "`INVALID_CURRENT_PASSWORD` (counts towards the lockout), or `MFA_CODE_REQUIRED`: the user has a second factor and sent no `code` or `recovery_code`", body = ErrorEnvelope),
        BadBody, NeedsBearer, Common))]
pub(super) async fn change(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<ChangeBody>,
) -> Result<HttpResponse> {
    let revoked = state
        .accounts
        .change_password(
            &caller,
            body.current_password,
            body.new_password,
            body.second_factor.proof()?,
            &client(&req),
        )
        .await?;
    Ok(envelope::ok(Revoked { revoked }))
}
