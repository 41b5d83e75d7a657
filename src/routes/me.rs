//! The protected profile route, at the seed's path and the README's.

use actix_web::{HttpResponse, web};

use super::bearer::Authenticated;
use super::resource::{get, resource};
use super::schema::{Common, NeedsBearer};
use super::wire::User;
use crate::envelope;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/auth/me", "GET, HEAD").route(get().to(me)))
        .service(resource("/me", "GET, HEAD").route(get().to(me_seed)));
}

/// The signed-in user
///
/// Read from the store, so a deleted user's token stops working.
#[utoipa::path(get, path = "/auth/me", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = envelope::Envelope<User>), NeedsBearer, Common))]
pub(super) async fn me(Authenticated(caller): Authenticated) -> HttpResponse {
    envelope::ok(User::from(&caller.user))
}

/// The signed-in user (the original demo's path)
///
/// The same as `GET /auth/me`.
#[utoipa::path(get, path = "/me", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = envelope::Envelope<User>), NeedsBearer, Common))]
pub(super) async fn me_seed(caller: Authenticated) -> HttpResponse {
    me(caller).await
}
