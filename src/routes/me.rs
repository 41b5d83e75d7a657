//! The protected profile route, at the seed's path and the README's.

use actix_web::{HttpResponse, web};

use super::bearer::Authenticated;
use super::resource;
use crate::app_state::AppState;
use crate::envelope;
use crate::error::{ApiError, Result};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/auth/me").route(web::get().to(me)))
        .service(resource("/me").route(web::get().to(me)));
}

/// The bare user object, read from the store (so a deleted user's token stops working).
async fn me(state: web::Data<AppState>, caller: Authenticated) -> Result<HttpResponse> {
    let user = state
        .users
        .find_by_id(caller.user_id)
        .await?
        .ok_or(ApiError::InvalidAccessToken)?;
    Ok(envelope::ok(user))
}
