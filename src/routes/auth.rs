//! Register, login, and the README's create-or-login `POST /auth`.

use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::json::JsonBody;
use super::{client_info, resource};
use crate::app_state::AppState;
use crate::auth::cookie;
use crate::auth::refresh_token::{TokenHash, random_token};
use crate::domain::{Email, LoginPassword, NewPassword, User, UserId, Username};
use crate::envelope;
use crate::error::{ApiError, Result};
use crate::store::users::{InsertError, NewUser};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/auth/register").route(web::post().to(register)))
        .service(resource("/auth/login").route(web::post().to(login)))
        .service(resource("/auth").route(web::post().to(create_or_login)));
}

#[derive(Deserialize)]
struct RegisterBody {
    username: String,
    email: String,
    password: SecretString,
}

#[derive(Deserialize)]
struct LoginBody {
    email: String,
    password: SecretString,
}

#[derive(Deserialize)]
struct CreateOrLoginBody {
    email: String,
    password: SecretString,
    username: Option<String>,
}

/// The seed's `{"user": {...}, "access_token": ...}`, plus the token's lifetime.
#[derive(Serialize)]
struct SessionStarted<'a> {
    user: PublicUser<'a>,
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

#[derive(Serialize)]
struct PublicUser<'a> {
    id: UserId,
    username: &'a str,
    email: &'a str,
}

#[tracing::instrument(name = "auth.register", skip_all)]
async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<RegisterBody>,
) -> Result<HttpResponse> {
    let RegisterBody {
        username,
        email,
        password,
    } = body.0;
    let (username, email, password) = (
        Username::parse(&username)?,
        Email::parse(&email)?,
        NewPassword::parse(password)?,
    );
    let user = create_user(&state, username, email, &password).await?;
    start_session(&state, &req, &user).await
}

#[tracing::instrument(name = "auth.login", skip_all)]
async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<LoginBody>,
) -> Result<HttpResponse> {
    let LoginBody { email, password } = body.0;
    let (email, password) = (Email::parse(&email)?, LoginPassword::parse(password)?);
    let user = authenticate(&state, &email, &password).await?;
    start_session(&state, &req, &user).await
}

/// Logs in when the email exists, registers otherwise (then `username` is required).
#[tracing::instrument(name = "auth.create_or_login", skip_all)]
async fn create_or_login(
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
    if state.users.find_by_email(&email).await?.is_none() {
        let username = username.ok_or_else(|| {
            ApiError::validation("username", "username is required to create an account")
        })?;
        let username = Username::parse(&username)?;
        let new_password = NewPassword::parse(password.clone())?;
        match create_user(&state, username, email.clone(), &new_password).await {
            Ok(user) => return start_session(&state, &req, &user).await,
            // Someone registered this email since our lookup: fall through to a login.
            Err(ApiError::EmailTaken) => {}
            Err(e) => return Err(e),
        }
    }
    let user = authenticate(&state, &email, &LoginPassword::parse(password)?).await?;
    start_session(&state, &req, &user).await
}

async fn create_user(
    state: &AppState,
    username: Username,
    email: Email,
    password: &NewPassword,
) -> Result<User> {
    let password_hash = state.hasher.hash(password.secret()).await?;
    let user = NewUser {
        id: UserId::new(),
        username,
        email,
        password_hash,
    };
    state.users.insert(user).await.map_err(|e| match e {
        InsertError::EmailTaken => ApiError::EmailTaken,
        other => other.into(),
    })
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
    }
    let access = state.tokens.issue(user.id, session.id)?;
    let mut response = HttpResponse::Ok();
    response.cookie(cookie::issue(
        &refresh_token,
        state.refresh_ttl_secs,
        &state.cookie,
    ));
    Ok(envelope::ok_with(
        response,
        SessionStarted {
            user: PublicUser {
                id: user.id,
                username: &user.username,
                email: &user.email,
            },
            access_token: access.token,
            token_type: "Bearer",
            expires_in: access.expires_in,
        },
    ))
}
