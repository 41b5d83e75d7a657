//! Register, login, and the README's create-or-login `POST /auth`.

use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::json::JsonBody;
use super::openapi::{BadBody, Common, DisplayName, EmailAddress, ErrorEnvelope, NewPasswordText, PasswordText};
use super::rate_limit::{Limiter, count_limited_logins};
use super::{client_info, resource};
use crate::app_state::AppState;
use crate::auth::cookie;
use crate::auth::refresh_token::{TokenHash, random_token};
use crate::domain::{Email, LoginPassword, MailKind, NewPassword, User, UserId, Username};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, Result};
use crate::store::users::{MailRequest, NewUser};
use actix_web::middleware::from_fn;
use utoipa::ToSchema;

pub fn configure(cfg: &mut web::ServiceConfig, auth_limit: &Limiter) {
    let limited = |path: &str| {
        resource(path, "POST")
            .wrap(auth_limit.layer())
            .wrap(from_fn(count_limited_logins))
    };
    cfg.service(
        resource("/auth/register", "POST")
            .wrap(auth_limit.layer())
            .route(web::post().to(register)),
    )
    .service(limited("/auth/login").route(web::post().to(login)))
    .service(limited("/auth").route(web::post().to(create_or_login)));
}

#[derive(Deserialize, ToSchema)]
pub(super) struct RegisterBody {
    #[schema(value_type = DisplayName)]
    username: String,
    #[schema(value_type = EmailAddress)]
    email: String,
    #[schema(value_type = NewPasswordText)]
    password: SecretString,
}

#[derive(Deserialize, ToSchema)]
pub(super) struct LoginBody {
    #[schema(value_type = EmailAddress)]
    email: String,
    #[schema(value_type = PasswordText)]
    password: SecretString,
}

#[derive(Deserialize, ToSchema)]
pub(super) struct CreateOrLoginBody {
    #[schema(value_type = EmailAddress)]
    email: String,
    /// Checked as a login's when the account exists, as a new password's otherwise.
    #[schema(value_type = NewPasswordText)]
    password: SecretString,
    /// Required when the email has no account yet.
    #[schema(value_type = Option<DisplayName>)]
    username: Option<String>,
}

/// `{"user": {...}, "access_token": ...}` as the original demo answered, plus the token's lifetime.
#[derive(Serialize, ToSchema)]
struct SessionStarted {
    user: PublicUser,
    /// The access JWT: send it as `Authorization: Bearer …`; keep it in memory only.
    access_token: String,
    #[schema(example = "Bearer")]
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: u64,
}

#[derive(Serialize, ToSchema)]
struct PublicUser {
    #[schema(value_type = uuid::Uuid)]
    id: UserId,
    username: String,
    email: String,
    email_verified: bool,
}

impl PublicUser {
    fn of(user: &User) -> Self {
        Self {
            id: user.id,
            username: user.username.clone(),
            email: user.email.clone(),
            email_verified: user.email_verified,
        }
    }
}

/// Registered under `REQUIRE_VERIFIED_EMAIL=true`: no session until the address is confirmed.
#[derive(Serialize, ToSchema)]
struct VerificationPending {
    user: PublicUser,
    message: &'static str,
}

/// Register
///
/// Creates an account and starts a session: the access token in the body, the refresh token
/// in the `jwt` cookie. Queues the mail that verifies the address.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterBody,
    responses(
        (status = 200, description = "Registered and signed in", body = Envelope<SessionStarted>,
            headers(("Set-Cookie" = String, description = "`jwt=<refresh token>; HttpOnly; Path=/auth; Max-Age=REFRESH_TOKEN_TTL`")),
            links(("LogIn" = (operation_id = "login", request_body = "$request.body", description = "The same email and password sign in")))),
        (status = 202, description = "`REQUIRE_VERIFIED_EMAIL=true`: registered, no session until the mailed link is followed", body = Envelope<VerificationPending>),
        (status = 409, description = "`EMAIL_TAKEN`", body = ErrorEnvelope),
        BadBody, Common))]
pub(super) async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Result<JsonBody<RegisterBody>, ApiError>,
) -> Result<HttpResponse> {
    let result = async {
        let RegisterBody {
            username,
            email,
            password,
        } = body?.0;
        register_user(&state, &req, Some(username), Email::parse(&email)?, password).await
    }
    .await;
    count(&state.metrics.registrations, registration_outcome(&result));
    result
}

/// Log in
///
/// Starts a session: the access token in the body, the refresh token in the `jwt` cookie.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginBody,
    responses(
        (status = 200, description = "Signed in", body = Envelope<SessionStarted>,
            headers(("Set-Cookie" = String, description = "`jwt=<refresh token>; HttpOnly; Path=/auth`"))),
        (status = 401, description = "`USER_NOT_FOUND`: unknown email or wrong password (identical answers)", body = ErrorEnvelope),
        (status = 403, description = "`EMAIL_NOT_VERIFIED` (`REQUIRE_VERIFIED_EMAIL=true`, right password)", body = ErrorEnvelope),
        BadBody, Common))]
pub(super) async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Result<JsonBody<LoginBody>, ApiError>,
) -> Result<HttpResponse> {
    let result = async {
        let LoginBody { email, password } = body?.0;
        log_in(&state, &req, Email::parse(&email)?, password).await
    }
    .await;
    count(&state.metrics.logins, login_outcome(&result));
    result
}

/// Log in, or register when the email has no account
///
/// Logs in when the email has an account; registers otherwise, and then `username` is
/// required. Counted as a registration or a login, whichever it turned out to be.
#[utoipa::path(post, path = "/auth", tag = "auth", request_body = CreateOrLoginBody,
    responses(
        (status = 200, description = "Signed in or registered", body = Envelope<SessionStarted>),
        (status = 202, description = "Registered under `REQUIRE_VERIFIED_EMAIL=true`", body = Envelope<VerificationPending>),
        (status = 401, description = "`USER_NOT_FOUND`", body = ErrorEnvelope),
        (status = 403, description = "`EMAIL_NOT_VERIFIED`", body = ErrorEnvelope),
        BadBody, Common))]
pub(super) async fn create_or_login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<CreateOrLoginBody>,
) -> Result<HttpResponse> {
    let CreateOrLoginBody {
        email,
        password,
        username,
    } = body.0;
    let email = Email::parse(&email)?;
    // A name that is sent must be valid, even when it turns out not to be needed.
    if let Some(name) = &username {
        Username::parse(name)?;
    }
    if state.users.find_by_email(&email).await?.is_none() {
        let result = register_user(&state, &req, username, email.clone(), password.clone()).await;
        count(&state.metrics.registrations, registration_outcome(&result));
        // EMAIL_TAKEN: someone registered this email since our lookup, so it is a login now.
        if !matches!(result, Err(ApiError::EmailTaken)) {
            return result;
        }
    }
    let result = log_in(&state, &req, email, password).await;
    count(&state.metrics.logins, login_outcome(&result));
    result
}

async fn register_user(
    state: &AppState,
    req: &HttpRequest,
    username: Option<String>,
    email: Email,
    password: SecretString,
) -> Result<HttpResponse> {
    let username = username.ok_or_else(|| ApiError::validation("username", "username is required"))?;
    let (username, password) = (Username::parse(&username)?, NewPassword::parse(password)?);
    let user = create_user(state, req, username, email, &password).await?;
    if state.mail.require_verified_email() {
        let pending = VerificationPending {
            user: PublicUser::of(&user),
            message: "confirm your email address with the link we mailed you, then log in",
        };
        return Ok(
            HttpResponse::Accepted().json(envelope::Envelope::new(actix_web::http::StatusCode::ACCEPTED, pending))
        );
    }
    start_session(state, req, &user).await
}

/// Logs in, unless the account is locked; counts the failure or clears the count.
async fn log_in(state: &AppState, req: &HttpRequest, email: Email, password: SecretString) -> Result<HttpResponse> {
    refuse_if_locked(state, &email).await?;
    match authenticate(state, &email, &LoginPassword::parse(password)?).await {
        Ok(user) => {
            state.throttle.succeeded(&email).await?;
            // Only now, after the password check: without it the answer reveals nothing.
            if state.mail.require_verified_email() && !user.email_verified {
                return Err(ApiError::EmailNotVerified);
            }
            start_session(state, req, &user).await
        }
        Err(ApiError::UserNotFound) => {
            if let Some(lock) = state.throttle.failed(&email).await? {
                tracing::warn!(
                    lock_secs = lock.as_secs(),
                    "account locked after repeated failed logins"
                );
            }
            Err(ApiError::UserNotFound)
        }
        Err(e) => Err(e),
    }
}

/// `ACCOUNT_LOCKED` while `email` is locked. The password is not even checked then: a locked
/// account answers alike for every guess.
pub(super) async fn refuse_if_locked(state: &AppState, email: &Email) -> Result<()> {
    match state.throttle.locked_for(email).await? {
        Some(wait) => Err(ApiError::AccountLocked {
            retry_after_secs: wait.as_millis().div_ceil(1000) as u64,
        }),
        None => Ok(()),
    }
}

fn count(counter: &prometheus::IntCounterVec, outcome: &str) {
    counter.with_label_values(&[outcome]).inc();
}

fn registration_outcome(result: &Result<HttpResponse>) -> &'static str {
    match result {
        Ok(_) => "success",
        Err(ApiError::EmailTaken) => "email_taken",
        Err(ApiError::Validation { .. } | ApiError::UnsupportedMediaType | ApiError::PayloadTooLarge) => "invalid",
        Err(_) => "error",
    }
}

fn login_outcome(result: &Result<HttpResponse>) -> &'static str {
    match result {
        Ok(_) => "success",
        Err(ApiError::UserNotFound) => "invalid_credentials",
        Err(ApiError::AccountLocked { .. }) => "locked",
        Err(ApiError::EmailNotVerified) => "unverified",
        // No credential was checked: a body that is not a login at all.
        Err(ApiError::Validation { .. } | ApiError::UnsupportedMediaType | ApiError::PayloadTooLarge) => {
            "invalid_request"
        }
        Err(_) => "error",
    }
}

/// Inserts the user and, in the same transaction, queues the mail that verifies its address.
async fn create_user(
    state: &AppState,
    req: &HttpRequest,
    username: Username,
    email: Email,
    password: &NewPassword,
) -> Result<User> {
    let password_hash = state.hasher.hash(password.secret()).await?;
    let id = UserId::new();
    let verification = state.mail.verification(MailRequest::new(
        MailKind::EmailVerify,
        email.as_str(),
        Some(id),
        client_info(req),
    ));
    let user = NewUser {
        id,
        username,
        email,
        password_hash,
    };
    // `From<InsertError>` already maps a taken email to `EMAIL_TAKEN`.
    let user = state.users.insert(user, verification.as_ref()).await?;
    if let Some(request) = &verification {
        state.mail.count(request.kind, "queued");
        state.mail.wake();
    }
    Ok(user)
}

/// The user whose email and password these are; `USER_NOT_FOUND` alike for an unknown email
/// and a wrong password, after the same argon2 work in both cases.
async fn authenticate(state: &AppState, email: &Email, password: &LoginPassword) -> Result<User> {
    let (user, stored_hash) = match state.users.find_by_email(email).await? {
        Some(credentials) => (Some(credentials.user), Some(credentials.password_hash)),
        None => (None, None),
    };
    let verified = state.hasher.verify(password.secret(), stored_hash).await?;
    match user {
        Some(user) if verified => Ok(user),
        _ => Err(ApiError::UserNotFound),
    }
}

/// Opens a refresh session for `user`: access token in the body, refresh token in the cookie.
async fn start_session(state: &AppState, req: &HttpRequest, user: &User) -> Result<HttpResponse> {
    let refresh_token = random_token();
    let session = state
        .sessions
        .create(user.id, TokenHash::of(&refresh_token), &client_info(req))
        .await?;
    if session.evicted > 0 {
        tracing::info!(
            evicted = session.evicted,
            "older sessions evicted (MAX_SESSIONS_PER_USER)"
        );
        state
            .metrics
            .sessions_revoked
            .with_label_values(&["evicted"])
            .inc_by(u64::from(session.evicted));
    }
    crate::telemetry::http::record_user(req, user.id);
    let access = state.tokens.issue(user.id, session.id)?;
    let mut response = HttpResponse::Ok();
    response.append_header(cookie::issue(&refresh_token, state.refresh_ttl_secs, &state.cookie));
    Ok(envelope::ok_with(
        response,
        SessionStarted {
            user: PublicUser::of(user),
            access_token: access.token,
            token_type: "Bearer",
            expires_in: access.expires_in,
        },
    ))
}
