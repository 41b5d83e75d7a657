//! `GET /.well-known/jwks.json`: the public keys that may have signed a live access token, and
//! the next key once it is published. Never rate-limited: every verifier fetches it.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use super::resource::{get, resource};
use crate::app_state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/.well-known/jwks.json", "GET, HEAD").route(get().to(jwks)));
}

/// A JSON Web Key Set (RFC 7517); empty with HS256.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct JwkSet {
    /// OKP (Ed25519) or EC (P-256) public keys, each with `kid`, `alg` and `use: "sig"`.
    keys: Vec<serde_json::Value>,
}

/// The public keys that verify access tokens
///
/// A JWK Set, not in the envelope; never rate-limited.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "service", responses(
    (status = 200, body = JwkSet, content_type = "application/jwk-set+json",
        headers(("Cache-Control" = String, description = "public, max-age=KEYS_CACHE_MAX_AGE"))),
))]
pub(super) async fn jwks(state: web::Data<AppState>) -> HttpResponse {
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
