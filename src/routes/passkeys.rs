//! Passkeys: register one, list, rename and remove them, and sign in with one alone or as a
//! login's second step. Options and credentials are the WebAuthn JSON forms (binary fields in
//! base64url), as `navigator.credentials.create` / `get` take and give them once decoded.

use actix_web::middleware::from_fn;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::render;
use super::bearer::Authenticated;
use super::json::{JsonBody, OptionalJsonBody};
use super::mfa::SecondFactor;
use super::rate_limit::{Limiter, count_limited_logins};
use super::request::client;
use super::resource::{get, resource};
use super::schema::{
    BadBody, CeremonyId, Common, DisplayName, EmailAddress, ErrorEnvelope, NeedsBearer, PasskeyName, PasswordText,
};
use super::wire::{ListedPasskey, SessionStarted, VerificationPending};
use crate::accounts::Registered;
use crate::app_state::AppState;
use crate::auth::passkey::{PublicKeyCredential, RegisterPublicKeyCredential};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, Result};

pub fn configure(cfg: &mut web::ServiceConfig, auth_limit: &Limiter) {
    let limited = |path: &str, allow: &'static str| resource(path, allow).wrap(auth_limit.layer());
    cfg.service(resource("/auth/passkeys", "GET, HEAD").route(get().to(list)))
        .service(
            limited("/auth/passkeys/{id}", "PATCH, DELETE")
                .route(web::patch().to(rename))
                .route(web::delete().to(remove)),
        )
        .service(limited("/auth/passkeys/register/start", "POST").route(web::post().to(register_start)))
        .service(limited("/auth/passkeys/register/finish", "POST").route(web::post().to(register_finish)))
        .service(limited("/auth/passkeys/signup/start", "POST").route(web::post().to(sign_up_start)))
        .service(limited("/auth/passkeys/signup/finish", "POST").route(web::post().to(sign_up_finish)))
        .service(limited("/auth/passkeys/login/start", "POST").route(web::post().to(login_start)))
        .service(
            limited("/auth/passkeys/login/finish", "POST")
                .wrap(from_fn(count_limited_logins))
                .route(web::post().to(login_finish)),
        );
}

/// The password again (required while the account has one), and a second factor when the
/// user has one.
#[derive(Deserialize, ToSchema)]
pub(super) struct StepUpBody {
    #[schema(value_type = Option<PasswordText>)]
    password: Option<SecretString>,
    #[serde(flatten)]
    second_factor: SecondFactor,
}

#[derive(Deserialize, ToSchema)]
pub(super) struct RegisterFinishBody {
    #[schema(value_type = CeremonyId)]
    ceremony: String,
    /// What `navigator.credentials.create` gave, binary fields in base64url: `id`, `rawId`,
    /// `type`, `response.attestationObject`, `response.clientDataJSON`.
    #[schema(value_type = Object)]
    credential: Box<RegisterPublicKeyCredential>,
    #[schema(value_type = Option<PasskeyName>)]
    name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub(super) struct SignUpBody {
    #[schema(value_type = DisplayName)]
    username: String,
    #[schema(value_type = EmailAddress)]
    email: String,
}

#[derive(Deserialize, ToSchema)]
pub(super) struct RenameBody {
    #[schema(value_type = PasskeyName)]
    name: String,
}

#[derive(Deserialize, ToSchema, Default)]
pub(super) struct LoginStartBody {
    /// A login's `MFA_REQUIRED` challenge, to answer it with a passkey; none for a sign-in
    /// with a passkey alone.
    challenge: Option<String>,
    /// For a sign-in with a passkey alone: options for the browser's autofill
    /// (`mediation: "conditional"`, an input with `autocomplete="username webauthn"`) rather
    /// than a prompt.
    #[serde(default)]
    conditional: bool,
}

#[derive(Deserialize, ToSchema)]
pub(super) struct LoginFinishBody {
    #[schema(value_type = CeremonyId)]
    ceremony: String,
    /// What `navigator.credentials.get` gave, binary fields in base64url: `id`, `rawId`,
    /// `type`, `response.authenticatorData`, `response.clientDataJSON`, `response.signature`,
    /// `response.userHandle`.
    #[schema(value_type = Object)]
    credential: Box<PublicKeyCredential>,
    /// The login's challenge, when the ceremony was started with it.
    challenge: Option<String>,
}

/// Options for the browser and the ceremony that finishes with its answer.
#[derive(Serialize, ToSchema)]
pub(super) struct CeremonyStarted {
    /// `{"publicKey": {…}}` for `navigator.credentials.create` or `get`, binary fields in
    /// base64url.
    #[schema(value_type = Object)]
    options: serde_json::Value,
    /// Send it back to the matching finish within 2 minutes; it works once.
    #[schema(value_type = CeremonyId)]
    ceremony: String,
}

fn started<T: Serialize>(started: crate::accounts::Started<T>) -> Result<HttpResponse> {
    let options = serde_json::to_value(&started.options).map_err(anyhow::Error::from)?;
    Ok(envelope::ok(CeremonyStarted {
        options,
        ceremony: started.ceremony,
    }))
}

fn passkey_id(path: &str) -> Result<Uuid> {
    Uuid::parse_str(path).map_err(|_| ApiError::validation("id", "id must be a passkey UUID"))
}

/// List my passkeys
///
/// Oldest first.
#[utoipa::path(get, path = "/auth/passkeys", operation_id = "passkeys_list", tag = "passkeys", security(("bearer" = [])),
    responses((status = 200, body = Envelope<Vec<ListedPasskey>>), NeedsBearer, Common))]
pub(super) async fn list(state: web::Data<AppState>, Authenticated(caller): Authenticated) -> Result<HttpResponse> {
    let passkeys = state.accounts.passkeys(&caller).await?;
    Ok(envelope::ok(
        passkeys.into_iter().map(ListedPasskey::from).collect::<Vec<_>>(),
    ))
}

/// Start registering a passkey
///
/// The password again, and a code or a recovery code when the user has a second factor.
/// Answers the options for `navigator.credentials.create` (a discoverable credential with user
/// verification) and the ceremony id for `/auth/passkeys/register/finish`.
#[utoipa::path(post, path = "/auth/passkeys/register/start", operation_id = "passkey_register_start", tag = "passkeys",
    request_body = StepUpBody, security(("bearer" = [])),
    responses(
        (status = 200, body = Envelope<CeremonyStarted>),
        (status = 401, description = "`MFA_CODE_INVALID` (counts towards the lockout)", body = ErrorEnvelope),
        (status = 403, description = "`INVALID_CURRENT_PASSWORD` or `MFA_CODE_REQUIRED`", body = ErrorEnvelope),
        (status = 404, description = "`PASSKEYS_UNAVAILABLE`: no relying party on this server", body = ErrorEnvelope),
        BadBody, NeedsBearer, Common))]
pub(super) async fn register_start(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<StepUpBody>,
) -> Result<HttpResponse> {
    let proof = body.second_factor.proof()?;
    started(
        state
            .accounts
            .start_passkey_registration(&caller, body.password, proof, &client(&req))
            .await?,
    )
}

/// Finish registering a passkey
///
/// The browser's answer to the options of the start; the owner is mailed.
#[utoipa::path(post, path = "/auth/passkeys/register/finish", operation_id = "passkey_register_finish", tag = "passkeys",
    request_body = RegisterFinishBody, security(("bearer" = [])),
    responses(
        (status = 200, body = Envelope<ListedPasskey>),
        (status = 400, description = "`PASSKEY_CEREMONY_INVALID` (unknown, used, expired or another user's) or `PASSKEY_INVALID` (wrong origin, relying party, challenge, or no user verification)", body = ErrorEnvelope),
        (status = 404, description = "`PASSKEYS_UNAVAILABLE`", body = ErrorEnvelope),
        (status = 409, description = "`PASSKEY_TAKEN`: this authenticator's credential is registered already", body = ErrorEnvelope),
        BadBody, NeedsBearer, Common))]
pub(super) async fn register_finish(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<RegisterFinishBody>,
) -> Result<HttpResponse> {
    let passkey = state
        .accounts
        .finish_passkey_registration(&caller, &body.ceremony, &body.credential, body.name, &client(&req))
        .await?;
    Ok(envelope::ok(ListedPasskey::from(passkey)))
}

/// Start an account with a passkey and no password
///
/// The account's name and email; answers the options for `navigator.credentials.create` and
/// the ceremony id for `/auth/passkeys/signup/finish`. Nothing is stored yet.
#[utoipa::path(post, path = "/auth/passkeys/signup/start", operation_id = "passkey_sign_up_start", tag = "passkeys",
    request_body = SignUpBody,
    responses(
        (status = 200, body = Envelope<CeremonyStarted>),
        (status = 404, description = "`PASSKEYS_UNAVAILABLE`", body = ErrorEnvelope),
        (status = 409, description = "`EMAIL_TAKEN`", body = ErrorEnvelope),
        BadBody, Common))]
pub(super) async fn sign_up_start(
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<SignUpBody>,
) -> Result<HttpResponse> {
    started(state.accounts.start_passkey_sign_up(body.username, body.email).await?)
}

/// Finish an account with a passkey and no password
///
/// Creates the account with its passkey and answers what a registration answers (a session,
/// `amr ["hwk"|"swk","user"]`; or 202 under `REQUIRE_VERIFIED_EMAIL`). The account has no
/// password: the reset mail sets one.
#[utoipa::path(post, path = "/auth/passkeys/signup/finish", operation_id = "passkey_sign_up_finish", tag = "passkeys",
    request_body = RegisterFinishBody,
    responses(
        (status = 200, description = "Signed in", body = Envelope<SessionStarted>,
            headers(("Set-Cookie" = String, description = "`jwt=<refresh token>; HttpOnly; Path=/auth`"))),
        (status = 202, description = "`REQUIRE_VERIFIED_EMAIL`: created, no session until the mailed link is followed", body = Envelope<VerificationPending>),
        (status = 400, description = "`PASSKEY_CEREMONY_INVALID` or `PASSKEY_INVALID`", body = ErrorEnvelope),
        (status = 404, description = "`PASSKEYS_UNAVAILABLE`", body = ErrorEnvelope),
        (status = 409, description = "`EMAIL_TAKEN` (taken since the start) or `PASSKEY_TAKEN`", body = ErrorEnvelope),
        BadBody, Common))]
pub(super) async fn sign_up_finish(
    state: web::Data<AppState>,
    req: HttpRequest,
    JsonBody(body): JsonBody<RegisterFinishBody>,
) -> Result<HttpResponse> {
    let registered = state
        .accounts
        .finish_passkey_sign_up(&body.ceremony, &body.credential, body.name, &client(&req))
        .await?;
    Ok(render(&state, &req, registered))
}

/// Rename a passkey
#[utoipa::path(patch, path = "/auth/passkeys/{id}", operation_id = "passkey_rename", tag = "passkeys",
    params(("id" = uuid::Uuid, Path, description = "A passkey id from the list")),
    request_body = RenameBody, security(("bearer" = [])),
    responses(
        (status = 200, description = "Renamed"),
        (status = 404, description = "`PASSKEY_NOT_FOUND`: not one of the caller's", body = ErrorEnvelope),
        BadBody, NeedsBearer, Common))]
pub(super) async fn rename(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(caller): Authenticated,
    path: web::Path<String>,
    JsonBody(body): JsonBody<RenameBody>,
) -> Result<HttpResponse> {
    let id = passkey_id(&path)?;
    state
        .accounts
        .rename_passkey(&caller, id, Some(body.name), &client(&req))
        .await?;
    Ok(envelope::ok(serde_json::json!({})))
}

/// Remove a passkey
///
/// The password again, and a code or a recovery code when the user has a second factor. The
/// account's last way in (no password, no other passkey) cannot be removed.
#[utoipa::path(delete, path = "/auth/passkeys/{id}", operation_id = "passkey_remove", tag = "passkeys",
    params(("id" = uuid::Uuid, Path, description = "A passkey id from the list")),
    request_body = StepUpBody, security(("bearer" = [])),
    responses(
        (status = 200, description = "Removed"),
        (status = 401, description = "`MFA_CODE_INVALID` (counts towards the lockout)", body = ErrorEnvelope),
        (status = 403, description = "`INVALID_CURRENT_PASSWORD` or `MFA_CODE_REQUIRED`", body = ErrorEnvelope),
        (status = 404, description = "`PASSKEY_NOT_FOUND`", body = ErrorEnvelope),
        (status = 409, description = "`PASSKEY_LAST_WAY_IN`", body = ErrorEnvelope),
        BadBody, NeedsBearer, Common))]
pub(super) async fn remove(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(caller): Authenticated,
    path: web::Path<String>,
    JsonBody(body): JsonBody<StepUpBody>,
) -> Result<HttpResponse> {
    let id = passkey_id(&path)?;
    let proof = body.second_factor.proof()?;
    state
        .accounts
        .remove_passkey(&caller, id, body.password, proof, &client(&req))
        .await?;
    Ok(envelope::ok(serde_json::json!({})))
}

/// Start a sign-in with a passkey
///
/// No body (or no `challenge`): the browser offers the passkeys it holds for this site, and no
/// account is typed. With a login's `MFA_REQUIRED` challenge: that user's passkeys, as its
/// second step. Answers the options for `navigator.credentials.get` and the ceremony id.
#[utoipa::path(post, path = "/auth/passkeys/login/start", operation_id = "passkey_login_start", tag = "passkeys",
    request_body(content = Option<LoginStartBody>, description = "Only for a login's second step"),
    responses(
        (status = 200, body = Envelope<CeremonyStarted>),
        (status = 401, description = "`MFA_CHALLENGE_INVALID`", body = ErrorEnvelope),
        (status = 404, description = "`PASSKEYS_UNAVAILABLE`, or `PASSKEY_NOT_FOUND` (the challenge's user has none)", body = ErrorEnvelope),
        BadBody, Common))]
pub(super) async fn login_start(
    state: web::Data<AppState>,
    OptionalJsonBody(body): OptionalJsonBody<LoginStartBody>,
) -> Result<HttpResponse> {
    let body = body.unwrap_or_default();
    started(
        state
            .accounts
            .start_passkey_sign_in(body.challenge, body.conditional)
            .await?,
    )
}

/// Finish a sign-in with a passkey
///
/// Answers what a login answers: the access token (`amr` `["hwk"|"swk","user"]`, `acr`
/// `aal2`), the user, and the `jwt` cookie.
#[utoipa::path(post, path = "/auth/passkeys/login/finish", operation_id = "passkey_login_finish", tag = "passkeys",
    request_body = LoginFinishBody,
    responses(
        (status = 200, description = "Signed in", body = Envelope<SessionStarted>,
            headers(("Set-Cookie" = String, description = "`jwt=<refresh token>; HttpOnly; Path=/auth`"))),
        (status = 400, description = "`PASSKEY_CEREMONY_INVALID`: unknown, used, expired, or started for another step", body = ErrorEnvelope),
        (status = 401, description = "`PASSKEY_REFUSED` (unknown credential, another account's, a signature or origin that does not verify, a counter that went back) or `MFA_CHALLENGE_INVALID`", body = ErrorEnvelope),
        (status = 403, description = "`EMAIL_NOT_VERIFIED` (REQUIRE_VERIFIED_EMAIL)", body = ErrorEnvelope),
        (status = 404, description = "`PASSKEYS_UNAVAILABLE`", body = ErrorEnvelope),
        BadBody, Common))]
pub(super) async fn login_finish(
    state: web::Data<AppState>,
    req: HttpRequest,
    JsonBody(body): JsonBody<LoginFinishBody>,
) -> Result<HttpResponse> {
    let signed_in = state
        .accounts
        .finish_passkey_sign_in(&body.ceremony, body.challenge, &body.credential, &client(&req))
        .await?;
    Ok(render(&state, &req, Registered::SignedIn(signed_in)))
}
