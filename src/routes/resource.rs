//! How a route is declared: every resource answers 405 in the envelope for a method it does not
//! serve, and whatever serves GET serves HEAD.

use actix_web::{HttpResponse, Resource, Route, guard, web};

use crate::error::ApiError;

/// A resource whose other methods than `allow` (as the `Allow` header lists them) answer 405 in
/// the envelope, with that header.
pub(super) fn resource(path: &str, allow: &'static str) -> Resource {
    web::resource(path).default_service(web::to(move || async move {
        Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allow })
    }))
}

/// A route for GET and HEAD: whatever serves GET serves HEAD too (RFC 9110 §9.3.2), the body
/// left out by the server.
pub(super) fn get() -> Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}
