//! Email verification: the mailed link's token confirms the address; a new link can be asked
//! for by the signed-in owner (Bearer) or, when unverified accounts cannot sign in, by address.

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::bearer::Authenticated;
use super::json::JsonBody;
use super::openapi::{BadBody, Common, EmailAddress, ErrorEnvelope, LinkToken, NeedsBearer};
use super::rate_limit::Limiter;
use super::{accepted, client_info, resource};
use crate::app_state::AppState;
use crate::auth::refresh_token::{TokenHash, looks_valid};
use crate::domain::{Email, MailKind};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, Result};
use crate::store::users::{MailRequest, TokenUse};
use utoipa::ToSchema;

pub fn configure(cfg: &mut web::ServiceConfig, auth_limit: &Limiter) {
    let limited = |path: &str| resource(path, "POST").wrap(auth_limit.layer());
    cfg.service(limited("/auth/email/verify").route(web::post().to(verify)))
        .service(limited("/auth/email/verify/resend").route(web::post().to(resend)));
}

#[derive(Deserialize, ToSchema)]
pub(super) struct VerifyBody {
    /// The `token` of the mailed `/verify-email?token=…` link.
    #[schema(value_type = LinkToken)]
    token: String,
}

/// Signed out: the address to send a new link to.
#[derive(Deserialize, ToSchema)]
pub(super) struct ResendBody {
    #[schema(value_type = EmailAddress)]
    email: String,
}

#[derive(Serialize, ToSchema)]
struct Verified {
    email_verified: bool,
}

/// Confirm an email address
///
/// Confirms the address a verification token was mailed to. No Bearer token is needed: the
/// link may be opened on another device than the one that registered.
#[utoipa::path(post, path = "/auth/email/verify", tag = "mail", request_body = VerifyBody,
    responses(
        (status = 200, body = Envelope<Verified>),
        (status = 400, description = "`INVALID_VERIFY_TOKEN` (unknown or used), `EXPIRED_VERIFY_TOKEN`, or `VALIDATION_ERROR`", body = ErrorEnvelope),
        (status = 413, description = "`PAYLOAD_TOO_LARGE`", body = ErrorEnvelope),
        (status = 415, description = "`UNSUPPORTED_MEDIA_TYPE`", body = ErrorEnvelope),
        Common))]
pub(super) async fn verify(state: web::Data<AppState>, JsonBody(body): JsonBody<VerifyBody>) -> Result<HttpResponse> {
    if !looks_valid(&body.token) {
        return Err(ApiError::InvalidVerifyToken);
    }
    match state.users.verify_email(TokenHash::of(&body.token).as_bytes()).await? {
        TokenUse::Unknown => Err(ApiError::InvalidVerifyToken),
        TokenUse::Expired => Err(ApiError::ExpiredVerifyToken),
        TokenUse::Used(user, ()) => {
            tracing::info!(user_id = %user, "email verified");
            Ok(envelope::ok(Verified { email_verified: true }))
        }
    }
}

/// Send a new verification link
///
/// With a Bearer token: a new link for the caller's address (409 once it is verified, 429 over
/// the per-address limit); a body, if sent, must still be a valid `{email}` and is otherwise
/// ignored. Signed out, with `{email}`: 202 whatever the address, as forgot answers; the link
/// goes out only if the address has an unverified account.
#[utoipa::path(post, path = "/auth/email/verify/resend", tag = "mail", request_body(content = Option<ResendBody>, description = "Only without Bearer"),
    security((), ("bearer" = [])),
    responses(
        (status = 202, body = Envelope<String>),
        (status = 409, description = "`EMAIL_ALREADY_VERIFIED` (Bearer)", body = ErrorEnvelope),
        (status = 404, description = "`MAIL_DISABLED`: this deployment sends no mail (no `SMTP_URL`)", body = ErrorEnvelope),
        BadBody, NeedsBearer, Common))]
pub(super) async fn resend(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse> {
    if !state.mail.enabled() {
        return Err(ApiError::MailDisabled);
    }
    let client = client_info(&req);
    let mut payload = payload.into_inner();
    if req.headers().contains_key(header::AUTHORIZATION) {
        let caller = Authenticated::from_request(&req, &mut payload).await?;
        // A body is not needed with Bearer (the caller's own address is used), but one that is
        // sent must still be a well-formed `{email}` (or JSON `null`).
        let bytes = web::Bytes::from_request(&req, &mut payload)
            .await
            .map_err(|_| ApiError::PayloadTooLarge)?;
        let text = bytes.trim_ascii();
        if !text.is_empty() && text != b"null" {
            let body: ResendBody = super::json::parse(text)?;
            Email::parse(&body.email)?;
        }
        let user = state
            .users
            .find_by_id(caller.user_id)
            .await?
            .ok_or(ApiError::InvalidAccessToken)?;
        if user.email_verified {
            return Err(ApiError::EmailAlreadyVerified);
        }
        let request = MailRequest::new(MailKind::EmailVerify, &user.email, Some(user.id), client);
        if !state.mail.queue(&state.users, &request).await? {
            return Err(ApiError::RateLimited { retry_after_secs: 3600 });
        }
        return Ok(accepted("a new verification link is on its way"));
    }
    let JsonBody(body) = JsonBody::<ResendBody>::from_request(&req, &mut payload).await?;
    let email = Email::parse(&body.email)?;
    let request = MailRequest::new(MailKind::EmailVerify, email.as_str(), None, client);
    state.mail.queue(&state.users, &request).await?;
    Ok(accepted(
        "if an unverified account has this email, a new verification link is on its way",
    ))
}
