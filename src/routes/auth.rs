//! Register, login, and the README's create-or-login `POST /auth`.

use actix_web::middleware::from_fn;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;
use utoipa::ToSchema;

use super::cookie;
use super::json::JsonBody;
use super::rate_limit::{Limiter, count_limited_logins};
use super::request::client;
use super::resource::resource;
use super::schema::{BadBody, Common, DisplayName, EmailAddress, ErrorEnvelope, NewPasswordText, PasswordText};
use super::wire::{PublicUser, SessionStarted, VerificationPending};
use crate::accounts::{CreateOrLogin, Login, NewAccount, Registered, SignedIn};
use crate::app_state::AppState;
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, Result};

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
    let input = body.map(|JsonBody(b)| NewAccount {
        username: Some(b.username),
        email: b.email,
        password: b.password,
    });
    let registered = state.accounts.register(input, &client(&req)).await?;
    Ok(render(&state, &req, registered))
}

/// Log in
///
/// Starts a session: the access token in the body, the refresh token in the `jwt` cookie.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginBody,
    responses(
        (status = 200, description = "Signed in", body = Envelope<SessionStarted>,
            headers(("Set-Cookie" = String, description = "`jwt=<refresh token>; HttpOnly; Path=/auth`"))),
        (status = 401, description = "`USER_NOT_FOUND`: unknown email or wrong password (identical answers); `MFA_REQUIRED`: the password is right and the account has a second factor: no token and no cookie, `content.mfa.challenge` goes to `/auth/mfa/verify`", body = ErrorEnvelope),
        (status = 403, description = "`EMAIL_NOT_VERIFIED` (`REQUIRE_VERIFIED_EMAIL=true`, right password)", body = ErrorEnvelope),
        BadBody, Common))]
pub(super) async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Result<JsonBody<LoginBody>, ApiError>,
) -> Result<HttpResponse> {
    let input = body.map(|JsonBody(b)| Login {
        email: b.email,
        password: b.password,
    });
    let signed_in = state.accounts.login(input, &client(&req)).await?;
    Ok(render(&state, &req, Registered::SignedIn(signed_in)))
}

/// Log in, or register when the email has no account
///
/// Logs in when the email has an account; registers otherwise, and then `username` is
/// required. Counted as a registration or a login, whichever it turned out to be.
#[utoipa::path(post, path = "/auth", tag = "auth", request_body = CreateOrLoginBody,
    responses(
        (status = 200, description = "Signed in or registered", body = Envelope<SessionStarted>),
        (status = 202, description = "Registered under `REQUIRE_VERIFIED_EMAIL=true`", body = Envelope<VerificationPending>),
        (status = 401, description = "`USER_NOT_FOUND`, or `MFA_REQUIRED` (as `/auth/login`)", body = ErrorEnvelope),
        (status = 403, description = "`EMAIL_NOT_VERIFIED`", body = ErrorEnvelope),
        BadBody, Common))]
pub(super) async fn create_or_login(
    state: web::Data<AppState>,
    req: HttpRequest,
    JsonBody(body): JsonBody<CreateOrLoginBody>,
) -> Result<HttpResponse> {
    let input = CreateOrLogin {
        email: body.email,
        password: body.password,
        username: body.username,
    };
    let registered = state.accounts.create_or_login(input, &client(&req)).await?;
    Ok(render(&state, &req, registered))
}

/// A new session: the access token in the body, the refresh token in the cookie; or 202 while
/// the address awaits verification.
pub(super) fn render(state: &AppState, req: &HttpRequest, registered: Registered) -> HttpResponse {
    let signed_in: SignedIn = match registered {
        Registered::SignedIn(signed_in) => signed_in,
        Registered::Pending(user) => {
            let pending = VerificationPending {
                user: PublicUser::from(&user),
                message: "confirm your email address with the link we mailed you, then log in",
            };
            return HttpResponse::Accepted().json(Envelope::new(actix_web::http::StatusCode::ACCEPTED, pending));
        }
    };
    crate::telemetry::http::record_user(req, signed_in.user.id);
    let mut response = HttpResponse::Ok();
    response.append_header(cookie::issue(
        &signed_in.refresh_token,
        state.refresh_ttl_secs,
        &state.cookie,
    ));
    envelope::ok_with(response, SessionStarted::from(&signed_in))
}
