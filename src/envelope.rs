//! The seed's response envelope, `{"success", "status", "content"}`, kept for its clients.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder};
use serde::Serialize;

/// Every response body: `status` repeats the HTTP status code.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Envelope<T> {
    success: bool,
    status: u16,
    content: T,
}

impl<T: Serialize> Envelope<T> {
    pub fn new(status: StatusCode, content: T) -> Self {
        Self {
            success: status.is_success(),
            status: status.as_u16(),
            content,
        }
    }
}

/// 200 with `content` in the envelope.
pub fn ok<T: Serialize>(content: T) -> HttpResponse {
    ok_with(HttpResponse::Ok(), content)
}

/// 200 with `content`, on a builder that already carries headers or cookies.
pub fn ok_with<T: Serialize>(mut builder: HttpResponseBuilder, content: T) -> HttpResponse {
    builder.json(Envelope::new(StatusCode::OK, content))
}
