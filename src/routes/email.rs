//! Email verification: the mailed link's token confirms the address; a new link can be asked
//! for by the signed-in owner (Bearer) or, when unverified accounts cannot sign in, by address.

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::bearer::Authenticated;
use super::json::JsonBody;
use super::rate_limit::Limiter;
use super::request::client;
use super::resource::resource;
use super::schema::{BadBody, Common, EmailAddress, ErrorEnvelope, LinkToken, NeedsBearer};
use super::wire::accepted;
use crate::app_state::AppState;
use crate::domain::Email;
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, Result};

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
pub(super) async fn verify(
    state: web::Data<AppState>,
    req: HttpRequest,
    JsonBody(body): JsonBody<VerifyBody>,
) -> Result<HttpResponse> {
    state.accounts.verify_email(&body.token, &client(&req)).await?;
    Ok(envelope::ok(Verified { email_verified: true }))
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
    if !state.accounts.mail.enabled() {
        return Err(ApiError::MailDisabled);
    }
    let mut payload = payload.into_inner();
    if req.headers().contains_key(header::AUTHORIZATION) {
        let Authenticated(caller) = Authenticated::from_request(&req, &mut payload).await?;
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
        state.accounts.resend_verification(&caller, &client(&req)).await?;
        return Ok(accepted("a new verification link is on its way"));
    }
    let JsonBody(body) = JsonBody::<ResendBody>::from_request(&req, &mut payload).await?;
    state
        .accounts
        .resend_verification_to(&body.email, &client(&req))
        .await?;
    Ok(accepted(
        "if an unverified account has this email, a new verification link is on its way",
    ))
}
