//! The middleware of the API listener that is ours: panics as the 500 envelope, security
//! headers, CORS, and bounds on a request's head and time.

use std::panic::AssertUnwindSafe;

use actix_cors::Cors;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{DefaultHeaders, Next};
use futures_util::FutureExt;

use crate::envelope::SECURITY_HEADERS;
use crate::error::ApiError;

/// Turns a panic in any handler into the 500 envelope instead of a dropped connection. The
/// error is returned rather than a response, because the request was moved into the handler;
/// actix renders it with `ApiError::error_response`.
pub async fn catch_panic(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    match AssertUnwindSafe(next.call(req)).catch_unwind().await {
        Ok(response) => response,
        Err(_) => Err(ApiError::Internal(anyhow::anyhow!("handler panicked")).into()),
    }
}

/// A request actix-cors refused (a preflight from an origin, or with a method or header, that
/// is not allowed) as 403 `CORS_REJECTED` in the envelope instead of its plain-text 400. Sits
/// outside the CORS layer and inside the security headers.
pub async fn cors_refusals_in_envelope(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let response = next.call(req).await?;
    let refused = response
        .response()
        .error()
        .is_some_and(|e| e.as_error::<actix_cors::CorsError>().is_some());
    Ok(if refused {
        response.error_response(ApiError::CorsRejected)
    } else {
        response.map_into_boxed_body()
    })
}

/// Headers every response carries (see [`SECURITY_HEADERS`]).
pub fn security_headers() -> DefaultHeaders {
    SECURITY_HEADERS
        .iter()
        .fold(DefaultHeaders::new(), |headers, header| headers.add(*header))
}

/// Exact-origin CORS with credentials. A disallowed origin gets no CORS headers at all (the
/// browser then refuses to expose the response); the request itself still reaches the route,
/// where the cookie routes' CSRF check answers 403.
pub fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "POST", "DELETE"])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .allowed_header("traceparent")
        .allowed_header("tracestate")
        .expose_headers([
            "traceresponse",
            "retry-after",
            "ratelimit-limit",
            "ratelimit-remaining",
            "ratelimit-reset",
        ])
        .supports_credentials()
        .max_age(600)
        .block_on_origin_mismatch(false);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// Bounds the head's size (431) and the whole request's time, body included (408), both in the
/// envelope. (Reading the head is bounded by the server's client request timeout.)
pub async fn bounded_request(
    limit: std::time::Duration,
    header_limit: usize,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let head: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let target = req.uri().path_and_query().map_or(0, |target| target.as_str().len());
    if head + target > header_limit {
        return Err(ApiError::HeadersTooLarge.into());
    }
    match tokio::time::timeout(limit, next.call(req)).await {
        Ok(response) => response,
        Err(_) => Err(ApiError::RequestTimeout.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::middleware::from_fn;
    use actix_web::{App, test, web};

    #[actix_web::test]
    async fn a_panicking_handler_becomes_the_500_envelope() {
        let app = test::init_service(
            App::new()
                .wrap(from_fn(catch_panic))
                .route("/boom", web::get().to(|| async { panic!("boom") as &str })),
        )
        .await;
        let Err(error) = test::try_call_service(&app, test::TestRequest::get().uri("/boom").to_request()).await else {
            panic!("the panic is caught and turned into an error");
        };
        let response = error.error_response();
        assert_eq!(response.status(), 500);
        let body = actix_web::body::to_bytes(response.into_body()).await.unwrap();
        assert!(std::str::from_utf8(&body).unwrap().contains("INTERNAL_ERROR"));
        assert!(!std::str::from_utf8(&body).unwrap().contains("boom"));
    }
}
