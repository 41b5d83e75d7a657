//! The TOTP second factor: enrol, confirm, the second step of a login, new recovery codes,
//! removal. Every route sits behind the per-IP auth limit: each checks a password or a code.

use actix_web::middleware::from_fn;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::render;
use super::bearer::Authenticated;
use super::json::JsonBody;
use super::rate_limit::{Limiter, count_limited_logins};
use super::request::client;
use super::resource::resource;
use super::schema::{BadBody, Common, ErrorEnvelope, NeedsBearer, PasswordText, RecoveryCodeText, TotpCode};
use super::wire::{Revoked, SessionStarted};
use crate::accounts::{RecoveryCodes, Registered, Verification};
use crate::app_state::AppState;
use crate::domain::Proof;
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, Result};

pub fn configure(cfg: &mut web::ServiceConfig, auth_limit: &Limiter) {
    let limited = |path: &str, allow: &'static str| resource(path, allow).wrap(auth_limit.layer());
    cfg.service(
        limited("/auth/mfa/totp", "POST, DELETE")
            .route(web::post().to(enrol))
            .route(web::delete().to(remove)),
    )
    .service(limited("/auth/mfa/totp/confirm", "POST").route(web::post().to(confirm)))
    .service(limited("/auth/mfa/recovery-codes", "POST").route(web::post().to(renew)))
    .service(
        limited("/auth/mfa/verify", "POST")
            .wrap(from_fn(count_limited_logins))
            .route(web::post().to(verify)),
    );
}

/// A second factor in a body: a TOTP `code` or a `recovery_code`, at most one of them.
#[derive(Deserialize, ToSchema, Default)]
pub(super) struct SecondFactor {
    #[schema(value_type = Option<TotpCode>)]
    code: Option<String>,
    #[schema(value_type = Option<RecoveryCodeText>)]
    recovery_code: Option<SecretString>,
}

impl SecondFactor {
    pub(super) fn proof(self) -> Result<Option<Proof>> {
        match (self.code, self.recovery_code) {
            (Some(_), Some(_)) => Err(ApiError::validation(
                "recovery_code",
                "send either code or recovery_code, not both",
            )),
            (Some(code), None) => Ok(Some(Proof::Totp(totp_code(code)?))),
            (None, Some(code)) if code.expose_secret().chars().count() > RECOVERY_CODE_MAX => Err(
                ApiError::validation("recovery_code", "recovery_code is at most 64 characters"),
            ),
            (None, Some(code)) => Ok(Some(Proof::RecoveryCode(code))),
            (None, None) => Ok(None),
        }
    }
}

/// The longest recovery code accepted as typed (the schema's `maxLength`).
const RECOVERY_CODE_MAX: usize = 64;

/// A code as the schema describes it: exactly six digits.
fn totp_code(code: String) -> Result<String> {
    if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        Ok(code)
    } else {
        Err(ApiError::validation("code", "code must be the 6 digits the app shows"))
    }
}

#[derive(Deserialize, ToSchema)]
pub(super) struct PasswordBody {
    #[schema(value_type = PasswordText)]
    password: SecretString,
}

#[derive(Deserialize, ToSchema)]
pub(super) struct CodeBody {
    #[schema(value_type = TotpCode)]
    code: String,
}

#[derive(Deserialize, ToSchema)]
pub(super) struct ChangeFactorBody {
    #[schema(value_type = PasswordText)]
    password: SecretString,
    #[serde(flatten)]
    second_factor: SecondFactor,
}

#[derive(Deserialize, ToSchema)]
pub(super) struct VerifyBody {
    /// The `challenge` of the login's `MFA_REQUIRED` answer.
    challenge: String,
    #[serde(flatten)]
    second_factor: SecondFactor,
}

/// What an authenticator app needs; shown once.
#[derive(Serialize, ToSchema)]
pub(super) struct TotpEnrolment {
    /// The secret in base32, to type in by hand.
    secret: String,
    /// `otpauth://totp/<issuer>:<email>?secret=…&issuer=…`
    otpauth_uri: String,
    /// The URI as a QR code: an SVG document.
    qr_svg: String,
}

/// Ten single-use recovery codes; shown once, stored only as keyed hashes.
#[derive(Serialize, ToSchema)]
pub(super) struct RecoveryCodeList {
    #[schema(example = json!(["ABCD-EFGH-IJKL-MNOP"]))]
    recovery_codes: Vec<String>,
}

impl From<RecoveryCodes> for RecoveryCodeList {
    fn from(codes: RecoveryCodes) -> Self {
        Self {
            recovery_codes: codes.0.iter().map(|c| c.expose_secret().to_string()).collect(),
        }
    }
}

/// Enrol an authenticator app
///
/// Starts TOTP enrolment (the password again): the secret, its `otpauth://` URI and a QR code.
/// The factor stays pending until `POST /auth/mfa/totp/confirm`; a new enrolment replaces a
/// pending one.
#[utoipa::path(post, path = "/auth/mfa/totp", operation_id = "mfa_enrol", tag = "mfa", request_body = PasswordBody, security(("bearer" = [])),
    responses(
        (status = 200, body = Envelope<TotpEnrolment>),
        (status = 403, description = "`INVALID_CURRENT_PASSWORD` (counts towards the lockout)", body = ErrorEnvelope),
        (status = 404, description = "`MFA_UNAVAILABLE`: no KEYS_ENCRYPTION_KEY on this server", body = ErrorEnvelope),
        (status = 409, description = "`MFA_ALREADY_ENABLED`: remove the active factor first", body = ErrorEnvelope),
        BadBody, NeedsBearer, Common))]
pub(super) async fn enrol(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<PasswordBody>,
) -> Result<HttpResponse> {
    let enrolment = state.accounts.enrol_totp(&caller, body.password, &client(&req)).await?;
    Ok(envelope::ok(TotpEnrolment {
        secret: enrolment.secret.expose_secret().to_string(),
        otpauth_uri: enrolment.uri.expose_secret().to_string(),
        qr_svg: enrolment.qr_svg.expose_secret().to_string(),
    }))
}

/// Confirm the authenticator app
///
/// A first code activates the factor and answers ten recovery codes, shown once. Every other
/// session of the user ends; the caller's now counts as second-factor verified (`acr` aal2).
#[utoipa::path(post, path = "/auth/mfa/totp/confirm", operation_id = "mfa_confirm", tag = "mfa", request_body = CodeBody, security(("bearer" = [])),
    responses(
        (status = 200, body = Envelope<RecoveryCodeList>),
        (status = 401, description = "`MFA_CODE_INVALID`", body = ErrorEnvelope),
        (status = 404, description = "`MFA_UNAVAILABLE`", body = ErrorEnvelope),
        (status = 409, description = "`MFA_NOT_ENABLED` (nothing pending) or `MFA_ALREADY_ENABLED`", body = ErrorEnvelope),
        BadBody, NeedsBearer, Common))]
pub(super) async fn confirm(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<CodeBody>,
) -> Result<HttpResponse> {
    let codes = state.accounts.confirm_totp(&caller, body.code, &client(&req)).await?;
    Ok(envelope::ok(RecoveryCodeList::from(codes)))
}

/// Renew the recovery codes
///
/// Ten new codes (the password and a code or a recovery code); the old ones stop working.
#[utoipa::path(post, path = "/auth/mfa/recovery-codes", operation_id = "mfa_recovery_codes", tag = "mfa", request_body = ChangeFactorBody, security(("bearer" = [])),
    responses(
        (status = 200, body = Envelope<RecoveryCodeList>),
        (status = 401, description = "`MFA_CODE_INVALID` (counts towards the lockout)", body = ErrorEnvelope),
        (status = 403, description = "`INVALID_CURRENT_PASSWORD` or `MFA_CODE_REQUIRED`", body = ErrorEnvelope),
        (status = 404, description = "`MFA_UNAVAILABLE`", body = ErrorEnvelope),
        (status = 409, description = "`MFA_NOT_ENABLED`", body = ErrorEnvelope),
        BadBody, NeedsBearer, Common))]
pub(super) async fn renew(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<ChangeFactorBody>,
) -> Result<HttpResponse> {
    let proof = body.second_factor.proof()?;
    let codes = state
        .accounts
        .renew_recovery_codes(&caller, body.password, proof, &client(&req))
        .await?;
    Ok(envelope::ok(RecoveryCodeList::from(codes)))
}

/// Remove the authenticator app
///
/// Removes the factor and its recovery codes (the password and a code or a recovery code);
/// every other session of the user ends.
#[utoipa::path(delete, path = "/auth/mfa/totp", operation_id = "mfa_remove", tag = "mfa", request_body = ChangeFactorBody, security(("bearer" = [])),
    responses(
        (status = 200, description = "`revoked`: the caller's other sessions, now ended", body = Envelope<Revoked>),
        (status = 401, description = "`MFA_CODE_INVALID` (counts towards the lockout)", body = ErrorEnvelope),
        (status = 403, description = "`INVALID_CURRENT_PASSWORD` or `MFA_CODE_REQUIRED`", body = ErrorEnvelope),
        (status = 404, description = "`MFA_UNAVAILABLE`", body = ErrorEnvelope),
        (status = 409, description = "`MFA_NOT_ENABLED`", body = ErrorEnvelope),
        BadBody, NeedsBearer, Common))]
pub(super) async fn remove(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<ChangeFactorBody>,
) -> Result<HttpResponse> {
    let proof = body.second_factor.proof()?;
    let revoked = state
        .accounts
        .remove_totp(&caller, body.password, proof, &client(&req))
        .await?;
    Ok(envelope::ok(Revoked { revoked }))
}

/// Second step of a login
///
/// The `challenge` of a login's `MFA_REQUIRED` answer with a `code` or a `recovery_code`;
/// answers what a login answers. A challenge lives 5 minutes and takes 5 wrong codes; wrong
/// codes count towards the account lockout.
#[utoipa::path(post, path = "/auth/mfa/verify", operation_id = "mfa_verify", tag = "mfa", request_body = VerifyBody,
    responses(
        (status = 200, description = "Signed in", body = Envelope<SessionStarted>,
            headers(("Set-Cookie" = String, description = "`jwt=<refresh token>; HttpOnly; Path=/auth`"))),
        (status = 401, description = "`MFA_CHALLENGE_INVALID` (unknown, used, expired, or dead after 5 wrong codes: log in again) or `MFA_CODE_INVALID`", body = ErrorEnvelope),
        BadBody, Common))]
pub(super) async fn verify(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Result<JsonBody<VerifyBody>, ApiError>,
) -> Result<HttpResponse> {
    let input = body.and_then(|JsonBody(b)| {
        let proof = b
            .second_factor
            .proof()?
            .ok_or_else(|| ApiError::validation("code", "code or recovery_code is required"))?;
        Ok(Verification {
            challenge: b.challenge,
            proof,
        })
    });
    let signed_in = state.accounts.verify_second_factor(input, &client(&req)).await?;
    Ok(render(&state, &req, Registered::SignedIn(signed_in)))
}
