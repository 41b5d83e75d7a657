//! `GET /.well-known/jwks.json`: the public keys that may have signed a live access token, and
//! the next key once it is published. Never rate-limited: every verifier fetches it.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use crate::app_state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/.well-known/jwks.json").route(web::get().to(jwks)));
}

async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    // With HS256 there is nothing public to verify with: an empty set, not an error.
    let body = match state.signing_keys.as_ref().and_then(|ring| ring.current()) {
        Some(keys) => keys.jwks.clone(),
        None => r#"{"keys":[]}"#.to_string(),
    };
    HttpResponse::Ok()
        .content_type("application/jwk-set+json")
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={}", state.keys_cache_max_age),
        ))
        .body(body)
}
