//! The admin listener (`ADMIN_ADDR`): what support and security teams act through, with an
//! admin key (`auth-api admin-keys create`) as `Authorization: Bearer`. It has its own
//! OpenAPI document at `/openapi.json`, and nothing of the public API.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use uuid::Uuid;

use super::bearer::bearer_token;
use super::resource::{get, resource};
use super::schema::{Common, ErrorEnvelope};
use super::wire::{Event, ListedPasskey, ListedSession, User};
use crate::accounts::MAX_USERS_PAGE;
use crate::app_state::AppState;
use crate::domain::UserId;
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, Result};
use crate::store::users::UserFilter;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/admin/users", "GET, HEAD").route(get().to(list_users)))
        .service(resource("/admin/users/{id}", "GET, HEAD").route(get().to(show_user)))
        .service(resource("/openapi.json", "GET, HEAD").route(get().to(openapi)));
}

/// The operator an admin key names.
pub struct Operator(pub String);

impl FromRequest for Operator {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req
            .app_data::<web::Data<AppState>>()
            .expect("AppState is registered in startup")
            .clone();
        let key = bearer_token(req).map(str::to_owned);
        Box::pin(async move { Ok(Operator(state.accounts.authenticate_admin(&key?).await?)) })
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
    /// Users per page, 1 to 100 (50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The `next` of the previous page.
    after: Option<Uuid>,
}

/// A page of users, oldest first.
#[derive(Serialize, ToSchema)]
pub(super) struct UserPage {
    users: Vec<User>,
    /// Pass as `after` for the next page; null on the last one. Users created meanwhile come
    /// at the end: a page never moves.
    next: Option<Uuid>,
}

/// One user's account: no secret, no hash.
#[derive(Serialize, ToSchema)]
pub(super) struct UserAccount {
    user: User,
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
    _operator: Operator,
    query: Result<web::Query<UserQuery>, actix_web::Error>,
) -> Result<HttpResponse> {
    let query = query
        .map_err(|_| ApiError::validation("query", "email_prefix, verified (true/false), mfa (true/false), limit (1-100) and after (a user id) are the parameters"))?
        .into_inner();
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_USERS_PAGE).contains(&limit) {
        return Err(ApiError::validation("limit", "limit is 1 to 100"));
    }
    let filter = UserFilter {
        email_prefix: query.email_prefix.map(|p| p.trim().to_lowercase()),
        verified: query.verified,
        mfa: query.mfa,
    };
    let users = state
        .accounts
        .find_users(&filter, query.after.map(UserId::from_uuid), limit)
        .await?;
    let next = (users.len() == limit as usize)
        .then(|| users.last().map(|u| u.id.as_uuid()))
        .flatten();
    Ok(envelope::ok(UserPage {
        users: users.iter().map(User::from).collect(),
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
        (status = 400, description = "`VALIDATION_ERROR`: not a UUID", body = ErrorEnvelope),
        (status = 401, description = "`PROTECTED_ROUTE`, `INVALID_AUTH_HEADER` or `INVALID_ADMIN_KEY`", body = ErrorEnvelope),
        (status = 404, description = "`NO_SUCH_USER`", body = ErrorEnvelope),
        Common))]
pub(super) async fn show_user(
    state: web::Data<AppState>,
    _operator: Operator,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let id = Uuid::parse_str(&path).map_err(|_| ApiError::validation("id", "id must be a user UUID"))?;
    let account = state.accounts.user_account(UserId::from_uuid(id)).await?;
    Ok(envelope::ok(UserAccount {
        user: User::from(&account.user),
        sessions: account
            .sessions
            .into_iter()
            .map(|s| ListedSession::of(s, Uuid::nil()))
            .collect(),
        passkeys: account.passkeys.into_iter().map(ListedPasskey::from).collect(),
        events: account.events.into_iter().map(Event::from).collect(),
    }))
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
    paths(list_users, show_user),
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
