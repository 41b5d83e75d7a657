//! The admin listener (`ADMIN_ADDR`): what support and security teams act through, with an
//! admin key (`auth-api admin-keys create`) as `Authorization: Bearer`. It has its own
//! OpenAPI document at `/openapi.json`, and nothing of the public API.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use uuid::Uuid;

use super::bearer::{app_state, bearer_token};
use super::json::OptionalJsonBody;
use super::request::client;
use super::resource::{get, resource};
use super::schema::{BadBody, Common, ErrorEnvelope};
use super::wire::{Event, ListedPasskey, ListedSession, Revoked, User, accepted};
use crate::accounts::{MAX_USERS_PAGE, Operator};
use crate::app_state::AppState;
use crate::domain::UserId;
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, Result};
use crate::store::users::UserFilter;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/admin/users", "GET, HEAD").route(get().to(list_users)))
        .service(
            resource("/admin/users/{id}", "GET, HEAD, DELETE")
                .route(get().to(show_user))
                .route(web::delete().to(erase_user)),
        )
        .service(resource("/admin/users/{id}/disable", "POST").route(web::post().to(disable_user)))
        .service(resource("/admin/users/{id}/enable", "POST").route(web::post().to(enable_user)))
        .service(resource("/admin/users/{id}/sessions", "DELETE").route(web::delete().to(sign_out_user)))
        .service(resource("/admin/users/{id}/sessions/{session}", "DELETE").route(web::delete().to(sign_out_session)))
        .service(resource("/admin/users/{id}/reset-mfa", "POST").route(web::post().to(reset_mfa)))
        .service(resource("/admin/users/{id}/send-verification", "POST").route(web::post().to(send_verification)))
        .service(resource("/admin/users/{id}/verify-email", "POST").route(web::post().to(verify_email)))
        .service(resource("/openapi.json", "GET, HEAD").route(get().to(openapi)));
}

/// The operator an admin key names, and the request it acts through.
pub struct Admin(pub Operator);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = app_state(req);
        let key = bearer_token(req).map(str::to_owned);
        let client = client(req);
        Box::pin(async move {
            let name = state.accounts.authenticate_admin(&key?).await?;
            Ok(Admin(Operator { name, client }))
        })
    }
}

/// What a route about one user answers besides its own outcome.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(super) enum ForAUser {
    /// `VALIDATION_ERROR`: an id in the path is not a UUID (or the body breaks a rule).
    #[response(status = 400)]
    BadId(ErrorEnvelope),
    /// `PROTECTED_ROUTE` (no key), `INVALID_AUTH_HEADER` or `INVALID_ADMIN_KEY`.
    #[response(status = 401)]
    NoKey(ErrorEnvelope),
    /// `NO_SUCH_USER`; `SESSION_NOT_FOUND` for a session that is not the user's;
    /// `MAIL_DISABLED` for a mail when SMTP is off.
    #[response(status = 404)]
    NotFound(ErrorEnvelope),
}

/// The user id of the path.
fn user_id(path: &str) -> Result<UserId> {
    Uuid::parse_str(path)
        .map(UserId::from_uuid)
        .map_err(|_| ApiError::validation("id", "id must be a user UUID"))
}

/// A user as an operator sees it: the profile, and whether it is disabled.
#[derive(Serialize, ToSchema)]
pub(super) struct AdminUser {
    #[serde(flatten)]
    user: User,
    /// Set while the account is disabled.
    disabled: Option<DisabledView>,
}

/// Why and until when an account is disabled.
#[derive(Serialize, ToSchema)]
pub(super) struct DisabledView {
    #[serde(with = "time::serde::rfc3339")]
    since: OffsetDateTime,
    /// Null: until an operator enables it.
    #[serde(with = "time::serde::rfc3339::option")]
    until: Option<OffsetDateTime>,
    reason: Option<String>,
}

impl AdminUser {
    fn of(user: &crate::domain::User, now_ms: i64) -> Self {
        let at = |ms: i64| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok();
        Self {
            user: User::from(user),
            disabled: user
                .disabled
                .as_ref()
                .filter(|_| user.is_disabled(now_ms))
                .and_then(|d| {
                    Some(DisabledView {
                        since: at(d.since_ms)?,
                        until: d.until_ms.and_then(at),
                        reason: d.reason.clone(),
                    })
                }),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct UserQuery {
    /// The start of the email address (letters compared in lower case).
    email_prefix: Option<String>,
    /// Only users whose address is (or is not) confirmed.
    verified: Option<bool>,
    /// Only users with (or without) a confirmed TOTP factor.
    mfa: Option<bool>,
    /// Only users disabled (or not) now.
    disabled: Option<bool>,
    /// Users per page, 1 to 100 (50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The `next` of the previous page.
    after: Option<Uuid>,
}

/// A page of users, oldest first.
#[derive(Serialize, ToSchema)]
pub(super) struct UserPage {
    users: Vec<AdminUser>,
    /// Pass as `after` for the next page; null on the last one. Users created meanwhile come
    /// at the end: a page never moves.
    next: Option<Uuid>,
}

/// One user's account: no secret, no hash.
#[derive(Serialize, ToSchema)]
pub(super) struct UserAccount {
    user: AdminUser,
    sessions: Vec<ListedSession>,
    passkeys: Vec<ListedPasskey>,
    /// The newest 20 security events.
    events: Vec<Event>,
}

/// Find users
///
/// By email prefix, verification and second factor, in creation order, `limit` at a time.
#[utoipa::path(get, path = "/admin/users", operation_id = "admin_users", tag = "admin", params(UserQuery), security(("admin_key" = [])),
    responses(
        (status = 200, body = Envelope<UserPage>),
        (status = 400, description = "`VALIDATION_ERROR`", body = ErrorEnvelope),
        (status = 401, description = "`PROTECTED_ROUTE`, `INVALID_AUTH_HEADER` or `INVALID_ADMIN_KEY`", body = ErrorEnvelope),
        Common))]
pub(super) async fn list_users(
    state: web::Data<AppState>,
    _admin: Admin,
    query: Result<web::Query<UserQuery>, actix_web::Error>,
) -> Result<HttpResponse> {
    let query = query
        .map_err(|_| ApiError::validation("query", "email_prefix, verified, mfa and disabled (true/false), limit (1-100) and after (a user id) are the parameters"))?
        .into_inner();
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_USERS_PAGE).contains(&limit) {
        return Err(ApiError::validation("limit", "limit is 1 to 100"));
    }
    let filter = UserFilter {
        email_prefix: query.email_prefix.map(|p| p.trim().to_lowercase()),
        verified: query.verified,
        mfa: query.mfa,
        disabled: query.disabled,
    };
    let users = state
        .accounts
        .find_users(&filter, query.after.map(UserId::from_uuid), limit)
        .await?;
    let next = (users.len() == limit as usize)
        .then(|| users.last().map(|u| u.id.as_uuid()))
        .flatten();
    let now = state.accounts.clock.now_ms();
    Ok(envelope::ok(UserPage {
        users: users.iter().map(|u| AdminUser::of(u, now)).collect(),
        next,
    }))
}

/// One user
///
/// Profile, sessions (device, address, created, last used), passkeys and recent events.
#[utoipa::path(get, path = "/admin/users/{id}", operation_id = "admin_user", tag = "admin", security(("admin_key" = [])),
    params(("id" = uuid::Uuid, Path, description = "A user id")),
    responses(
        (status = 200, body = Envelope<UserAccount>),
        ForAUser,
        Common))]
pub(super) async fn show_user(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let account = state.accounts.user_account(user_id(&path)?).await?;
    Ok(envelope::ok(UserAccount {
        user: AdminUser::of(&account.user, state.accounts.clock.now_ms()),
        sessions: account
            .sessions
            .into_iter()
            .map(|s| ListedSession::of(s, Uuid::nil()))
            .collect(),
        passkeys: account.passkeys.into_iter().map(ListedPasskey::from).collect(),
        events: account.events.into_iter().map(Event::from).collect(),
    }))
}

/// How long and why an account is disabled.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DisableBody {
    /// When it ends by itself (RFC 3339, in the future); left out: until enabled.
    #[serde(default, with = "time::serde::rfc3339::option")]
    until: Option<OffsetDateTime>,
    /// For operators (at most 200 characters, no control characters); never shown to the user.
    #[schema(max_length = 200)]
    reason: Option<String>,
}

/// What disabling did.
#[derive(Serialize, ToSchema)]
pub(super) struct DisabledUser {
    user: AdminUser,
    /// Sessions ended.
    revoked: u32,
}

/// Disable a user
///
/// Ends every session at once and refuses login, refresh, second steps, passkeys and mailed
/// links on every instance within `SESSION_CACHE_MS`, until `until` or until enabled.
#[utoipa::path(post, path = "/admin/users/{id}/disable", operation_id = "admin_disable", tag = "admin", security(("admin_key" = [])),
    params(("id" = uuid::Uuid, Path, description = "A user id")),
    request_body(content = Option<DisableBody>, description = "Optional: `until` and `reason`"),
    responses(
        (status = 200, body = Envelope<DisabledUser>),
        ForAUser,
        BadBody, Common))]
pub(super) async fn disable_user(
    state: web::Data<AppState>,
    Admin(operator): Admin,
    path: web::Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<DisableBody>,
) -> Result<HttpResponse> {
    let id = user_id(&path)?;
    let (until, reason) = body.map_or((None, None), |b| (b.until, b.reason));
    let revoked = state.accounts.disable_user(&operator, id, until, reason).await?;
    let account = state.accounts.user_account(id).await?;
    Ok(envelope::ok(DisabledUser {
        user: AdminUser::of(&account.user, state.accounts.clock.now_ms()),
        revoked,
    }))
}

/// Enable a user
///
/// The user may sign in again (their ended sessions stay ended).
#[utoipa::path(post, path = "/admin/users/{id}/enable", operation_id = "admin_enable", tag = "admin", security(("admin_key" = [])),
    params(("id" = uuid::Uuid, Path, description = "A user id")),
    responses(
        (status = 200, body = Envelope<AdminUser>),
        ForAUser,
        Common))]
pub(super) async fn enable_user(
    state: web::Data<AppState>,
    Admin(operator): Admin,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let id = user_id(&path)?;
    state.accounts.enable_user(&operator, id).await?;
    let account = state.accounts.user_account(id).await?;
    Ok(envelope::ok(AdminUser::of(
        &account.user,
        state.accounts.clock.now_ms(),
    )))
}

/// Sign a user out everywhere
///
/// Ends every session: refresh tokens at once, access tokens within `SESSION_CACHE_MS`.
#[utoipa::path(delete, path = "/admin/users/{id}/sessions", operation_id = "admin_sign_out", tag = "admin", security(("admin_key" = [])),
    params(("id" = uuid::Uuid, Path, description = "A user id")),
    responses(
        (status = 200, body = Envelope<Revoked>),
        ForAUser,
        Common))]
pub(super) async fn sign_out_user(
    state: web::Data<AppState>,
    Admin(operator): Admin,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let revoked = state.accounts.sign_out_user(&operator, user_id(&path)?, None).await?;
    Ok(envelope::ok(Revoked { revoked }))
}

/// End one session of a user
#[utoipa::path(delete, path = "/admin/users/{id}/sessions/{session}", operation_id = "admin_sign_out_session", tag = "admin", security(("admin_key" = [])),
    params(("id" = uuid::Uuid, Path, description = "A user id"), ("session" = uuid::Uuid, Path, description = "One of the user's session ids")),
    responses(
        (status = 200, body = Envelope<Revoked>),
        ForAUser,
        Common))]
pub(super) async fn sign_out_session(
    state: web::Data<AppState>,
    Admin(operator): Admin,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (id, session) = path.into_inner();
    let session =
        Uuid::parse_str(&session).map_err(|_| ApiError::validation("session", "session must be a session UUID"))?;
    let revoked = state
        .accounts
        .sign_out_user(&operator, user_id(&id)?, Some(session))
        .await?;
    Ok(envelope::ok(Revoked { revoked }))
}

/// What erasing a user removed.
#[derive(Serialize, ToSchema)]
pub(super) struct ErasedUser {
    /// The user's row (always 1).
    users: u32,
    sessions: u32,
    passkeys: u64,
    totp_factors: u64,
    recovery_codes: u64,
    /// Mails to the user or its address, sent or not.
    mails: u64,
    /// Unused reset and verification links.
    link_tokens: u64,
    /// Security events kept with their ids and names, without address or browser.
    events_anonymised: u64,
}

/// Erase a user (GDPR art. 17)
///
/// The row, sessions, factors, passkeys, mails and links go; no text column keeps the address.
/// The user's security events stay, without address or browser.
#[utoipa::path(delete, path = "/admin/users/{id}", operation_id = "admin_erase", tag = "admin", security(("admin_key" = [])),
    params(("id" = uuid::Uuid, Path, description = "A user id")),
    responses(
        (status = 200, body = Envelope<ErasedUser>),
        ForAUser,
        Common))]
pub(super) async fn erase_user(
    state: web::Data<AppState>,
    Admin(operator): Admin,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let (erased, sessions) = state.accounts.erase_user(&operator, user_id(&path)?).await?;
    Ok(envelope::ok(ErasedUser {
        users: 1,
        sessions,
        passkeys: erased.passkeys,
        totp_factors: erased.totp_factors,
        recovery_codes: erased.recovery_codes,
        mails: erased.mails,
        link_tokens: erased.link_tokens,
        events_anonymised: erased.events_anonymised,
    }))
}

/// What resetting second factors removed.
#[derive(Serialize, ToSchema)]
pub(super) struct FactorsReset {
    /// An authenticator (TOTP) was removed.
    totp: bool,
    recovery_codes: u64,
}

/// Reset a user's second factors
///
/// Removes the authenticator and recovery codes (passkeys stay) and mails the user.
#[utoipa::path(post, path = "/admin/users/{id}/reset-mfa", operation_id = "admin_reset_mfa", tag = "admin", security(("admin_key" = [])),
    params(("id" = uuid::Uuid, Path, description = "A user id")),
    responses(
        (status = 200, body = Envelope<FactorsReset>),
        ForAUser,
        Common))]
pub(super) async fn reset_mfa(
    state: web::Data<AppState>,
    Admin(operator): Admin,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let reset = state.accounts.reset_user_factors(&operator, user_id(&path)?).await?;
    Ok(envelope::ok(FactorsReset {
        totp: reset.totp,
        recovery_codes: reset.recovery_codes,
    }))
}

/// Send a verification link
#[utoipa::path(post, path = "/admin/users/{id}/send-verification", operation_id = "admin_send_verification", tag = "admin", security(("admin_key" = [])),
    params(("id" = uuid::Uuid, Path, description = "A user id")),
    responses(
        (status = 202, description = "Queued", body = Envelope<String>),
        ForAUser,
        (status = 409, description = "`EMAIL_ALREADY_VERIFIED`", body = ErrorEnvelope),
        Common))]
pub(super) async fn send_verification(
    state: web::Data<AppState>,
    Admin(operator): Admin,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    state.accounts.send_verification(&operator, user_id(&path)?).await?;
    Ok(accepted("a verification link is on its way"))
}

/// Mark the email verified
///
/// On the operator's word: the user's unused verification links end.
#[utoipa::path(post, path = "/admin/users/{id}/verify-email", operation_id = "admin_verify_email", tag = "admin", security(("admin_key" = [])),
    params(("id" = uuid::Uuid, Path, description = "A user id")),
    responses(
        (status = 200, body = Envelope<AdminUser>),
        ForAUser,
        (status = 409, description = "`EMAIL_ALREADY_VERIFIED`", body = ErrorEnvelope),
        Common))]
pub(super) async fn verify_email(
    state: web::Data<AppState>,
    Admin(operator): Admin,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let id = user_id(&path)?;
    state.accounts.mark_verified(&operator, id).await?;
    let account = state.accounts.user_account(id).await?;
    Ok(envelope::ok(AdminUser::of(
        &account.user,
        state.accounts.clock.now_ms(),
    )))
}

/// The admin listener's OpenAPI document.
pub(super) async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(document())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "auth-api admin",
        description = "The operator's API, on its own listener (ADMIN_ADDR), with an admin key from `auth-api admin-keys create` as `Authorization: Bearer`. Bodies are the envelope `{success, status, content}`.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(list_users, show_user, disable_user, enable_user, sign_out_user, sign_out_session, erase_user, reset_mfa, send_verification, verify_email),
    modifiers(&AdminKey),
    tags((name = "admin", description = "Users, as support and security teams see them")),
)]
struct AdminDoc;

/// The admin listener's document.
pub fn document() -> utoipa::openapi::OpenApi {
    AdminDoc::openapi()
}

struct AdminKey;

impl Modify for AdminKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut key = Http::new(HttpAuthScheme::Bearer);
        key.description = Some("An admin key, as `auth-api admin-keys create NAME` printed it.".into());
        components.add_security_scheme("admin_key", SecurityScheme::Http(key));
    }
}
