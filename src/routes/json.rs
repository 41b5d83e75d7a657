//! A JSON body extractor whose every failure is an envelope: 415 for another content type,
//! 413 past the body limit, 400 `VALIDATION_ERROR` naming the field for everything else.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = read(req, payload);
        Box::pin(async move { parse(&bytes.await?).map(JsonBody) })
    }
}

/// The body of a JSON request: 415 for another content type, 413 past the limit.
fn read(req: &HttpRequest, payload: &mut Payload) -> LocalBoxFuture<'static, Result<web::Bytes, ApiError>> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .is_some_and(|essence| essence == "application/json" || essence.ends_with("+json"));
    // The limit itself is the PayloadConfig registered in startup.
    let body = web::Bytes::from_request(req, payload);
    Box::pin(async move {
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        body.await.map_err(|e| {
            if e.as_response_error().status_code() == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::validation("body", "the request body could not be read")
            }
        })
    })
}

/// A JSON body that may be left out (no body at all): `None` then; otherwise as [`JsonBody`].
pub struct OptionalJsonBody<T>(pub Option<T>);

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let length = req.headers().get(header::CONTENT_LENGTH);
        let no_body = length.is_some_and(|v| v.as_bytes() == b"0")
            || (length.is_none() && !req.headers().contains_key(header::TRANSFER_ENCODING));
        if no_body {
            return Box::pin(async { Ok(OptionalJsonBody(None)) });
        }
        let bytes = read(req, payload);
        Box::pin(async move {
            let bytes = bytes.await?;
            // JSON `null` says "no body" too.
            if bytes.trim_ascii() == b"null" {
                return Ok(OptionalJsonBody(None));
            }
            parse(&bytes).map(|b| OptionalJsonBody(Some(b)))
        })
    }
}

/// Deserialises `bytes`, turning serde's error into a field name and a message of our own.
/// serde's text is not passed on: it can quote the offending value, which may be a password.
pub(super) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde would also fill a struct from a JSON array, positionally; only objects are accepted.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::validation("body", "the body must be a JSON object"));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if !matches!(inner.classify(), serde_json::error::Category::Data) {
            return ApiError::validation("body", "the body is not valid JSON");
        }
        let text = inner.to_string();
        if let Some(field) = text
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
        {
            let field = if path == "." {
                field.to_string()
            } else {
                format!("{path}.{field}")
            };
            return ApiError::validation(field.clone(), format!("{field} is required"));
        }
        if path == "." {
            return ApiError::validation("body", "the body must be a JSON object");
        }
        ApiError::validation(path.clone(), format!("{path} has the wrong type or value"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        email: String,
        password: String,
    }

    fn field(json: &str) -> String {
        match parse::<Body>(json.as_bytes()) {
            Err(ApiError::Validation { field, .. }) => field,
            other => panic!("expected a validation error for {json}, got {other:?}"),
        }
    }

    #[test]
    fn names_the_field() {
        let cases = [
            (r#"{"email":"a@b.co"}"#, "password", "missing field"),
            (r#"{"email":5,"password":"x"}"#, "email", "wrong type"),
            (r#"{"email":"a@b.co","password":null}"#, "password", "null"),
            (r#"{"email":"#, "body", "truncated JSON"),
            ("[1,2]", "body", "not an object"),
            ("", "body", "empty body"),
        ];
        for (json, expected, why) in cases {
            assert_eq!(field(json), expected, "{why}: {json}");
        }
    }

    #[test]
    fn never_echoes_values() {
        let Err(err) = parse::<Body>(br#"{"email":"a@b.co","password":["hunter2hunter2"]}"#) else {
            panic!()
        };
        let (_, _, message) = err.describe();
        assert!(!message.contains("hunter2"), "{message}");
    }
}
