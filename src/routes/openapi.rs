//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` attributes and the
//! request and response types; served at `/openapi.json` with Swagger UI at `/docs`.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, PartialSchema, ToSchema};

use crate::domain::{Email, Username};

use super::{auth, email, health, jwks, me, password, refresh, sessions};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "auth-api",
        description = "JWT authentication for single-page apps: a 5-minute access token in the body, a rotating refresh token in the HttpOnly `jwt` cookie. Every body but the JWKS is the envelope `{success, status, content}`; errors carry a stable `error_code` (README \"Error codes\"). Every response has a `traceresponse` header (W3C Trace Context) naming the request's trace.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        super::root,
        health::live,
        health::ready,
        jwks::jwks,
        auth::register,
        auth::login,
        auth::create_or_login,
        me::me,
        me::me_seed,
        refresh::refresh_post,
        refresh::refresh_get,
        refresh::logout,
        sessions::list,
        sessions::revoke_all,
        sessions::revoke_one,
        password::change,
        password::forgot,
        password::reset,
        email::verify,
        email::resend,
    ),
    modifiers(&Security, &TraceHeader),
    tags(
        (name = "auth", description = "Registration, login and the refresh cookie"),
        (name = "account", description = "The signed-in user: profile, sessions, password"),
        (name = "mail", description = "Password reset and email verification links"),
        (name = "service", description = "Health, signing keys"),
    )
)]
pub struct ApiDoc;

/// The document as served.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The Bearer access token and the refresh cookie.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.bearer_format = Some("JWT".into());
        bearer.description = Some("The `access_token` of a login, register or refresh answer.".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        components.add_security_scheme(
            "refresh_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "jwt",
                "The refresh token: HttpOnly, Path=/auth, SameSite per COOKIE_SAMESITE; rotated on every refresh.",
            ))),
        );
    }
}

/// Strings with the rules the handlers apply, so that the document describes exactly what is
/// accepted (request fields name them with `value_type`).
macro_rules! string_schema {
    ($(#[doc = $doc:literal])* $name:ident: $build:expr) => {
        $(#[doc = $doc])*
        pub struct $name;
        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                let build: fn(ObjectBuilder) -> ObjectBuilder = $build;
                build(ObjectBuilder::new().schema_type(Type::String).description(Some(concat!($($doc),*).trim())))
                    .build()
                    .into()
            }
        }
        impl ToSchema for $name {}
    };
}

string_schema! {
    /// An email address, ASCII (an IDN domain in its punycode form); surrounding spaces are trimmed and letters lower-cased.
    EmailAddress: |s| s.pattern(Some(Email::PATTERN)).max_length(Some(254)).examples(["ada@example.com"])
}
string_schema! {
    /// A display name: no control characters, not only spaces (trimmed).
    DisplayName: |s| s.pattern(Some(Username::PATTERN)).max_length(Some(Username::MAX_CHARS)).examples(["Ada"])
}
string_schema! {
    /// A new password: 8 to 128 characters, not one of the 10,000 most common passwords.
    NewPasswordText: |s| s
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
        .min_length(Some(8))
        .max_length(Some(128))
        .examples(["analytical engine"])
}
string_schema! {
    /// A password offered to be checked: 1 to 128 characters.
    PasswordText: |s| s
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
        .min_length(Some(1))
        .max_length(Some(128))
        // The registration example's password, so that "Try it out" logs in after it.
        .examples(["analytical engine"])
}
string_schema! {
    /// The token of a mailed link: 256 random bits in base64url.
    LinkToken: |s| s.pattern(Some("^[A-Za-z0-9_-]{43}$"))
}

/// `traceresponse` on every answer of every operation: the middleware adds it to all of them.
struct TraceHeader;

impl Modify for TraceHeader {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let header = utoipa::openapi::header::HeaderBuilder::new()
            .schema(Some(String::schema()))
            .description(Some(
                "W3C Trace Context `traceresponse`: `00-<trace id>-<span id>-<flags>` of this request's trace (the caller's, or a new one)",
            ))
            .build();
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.delete,
                &mut item.put,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                for response in operation.responses.responses.values_mut() {
                    if let RefOr::T(response) = response {
                        response.headers.insert("traceresponse".into(), header.clone().into());
                    }
                }
            }
        }
    }
}

/// The envelope of every error.
#[derive(ToSchema)]
pub struct ErrorEnvelope {
    /// Always false.
    pub success: bool,
    /// The HTTP status again.
    pub status: u16,
    pub content: ErrorDetail,
}

#[derive(ToSchema)]
pub struct ErrorDetail {
    /// Stable: clients branch on it (README "Error codes").
    #[schema(example = "USER_NOT_FOUND")]
    pub error_code: String,
    /// Fixed text per code, for people.
    pub message: String,
    /// The error family (as the original demo named them): UserError, AuthError, DbError, HostError, CritError.
    pub error_type: String,
    /// The offending field of a `VALIDATION_ERROR`.
    pub field: Option<String>,
    /// The backing service of a 503: `database` or `session_store`.
    pub dependency: Option<String>,
}

/// What any route may answer besides its own outcomes.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum Common {
    /// `RATE_LIMITED` (per-IP limit) or `ACCOUNT_LOCKED` (login lockout).
    #[response(
        status = 429,
        headers(
            ("Retry-After" = u64, description = "Seconds to wait"),
            ("RateLimit-Limit" = u64, description = "The limit that was hit (rate limits only)"),
            ("RateLimit-Remaining" = u64, description = "Requests left in the window"),
            ("RateLimit-Reset" = u64, description = "Seconds until the window resets"),
        )
    )]
    TooMany(ErrorEnvelope),
    /// `INTERNAL_ERROR`: a bug; the cause is logged, never returned.
    #[response(status = 500)]
    Internal(ErrorEnvelope),
    /// `SERVICE_UNAVAILABLE`: PostgreSQL/SQLite or Redis did not answer in time; `dependency`
    /// names it.
    #[response(status = 503, headers(("Retry-After" = u64, description = "Always 1")))]
    Unavailable(ErrorEnvelope),
}

/// What a route with a JSON body answers to a bad one.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum BadBody {
    /// `VALIDATION_ERROR`: malformed JSON, a missing or wrong-typed field, a value outside the
    /// rules; `field` names it.
    #[response(status = 400)]
    Invalid(ErrorEnvelope),
    /// `PAYLOAD_TOO_LARGE`: over `BODY_LIMIT_BYTES`.
    #[response(status = 413)]
    TooLarge(ErrorEnvelope),
    /// `UNSUPPORTED_MEDIA_TYPE`: not `application/json`.
    #[response(status = 415)]
    NotJson(ErrorEnvelope),
}

/// What a route behind the Bearer token answers without a valid one.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum NeedsBearer {
    /// `PROTECTED_ROUTE` (no Authorization header), `INVALID_AUTH_HEADER`,
    /// `EXPIRED_ACCESS_TOKEN` (refresh, then retry) or `INVALID_ACCESS_TOKEN` (bad signature,
    /// claims, or a revoked session).
    #[response(status = 401)]
    Unauthorized(ErrorEnvelope),
}

#[cfg(test)]
mod tests {
    /// What Swagger UI shows reads as prose: a summary is plain text (no markdown backticks),
    /// no sentence is said twice, and nothing speaks of "the seed".
    #[test]
    fn the_documents_texts_read_cleanly() {
        let document = serde_json::to_value(super::document()).unwrap();
        for (path, operations) in document["paths"].as_object().unwrap() {
            for (method, operation) in operations.as_object().unwrap() {
                let summary = operation["summary"].as_str().unwrap_or_default();
                let description = operation["description"].as_str().unwrap_or_default();
                let name = format!("{method} {path}");
                assert!(!summary.is_empty() && !summary.contains('`'), "{name}: {summary}");
                let text = format!("{summary}. {description}");
                let sentences: Vec<&str> = text.split(". ").map(str::trim).filter(|s| !s.is_empty()).collect();
                let unique: std::collections::HashSet<&&str> = sentences.iter().collect();
                assert_eq!(unique.len(), sentences.len(), "{name} repeats itself: {text}");
            }
        }
        let text = document.to_string().to_lowercase();
        assert!(!text.contains("the seed"), "the document speaks of the seed");
    }

    /// The committed `openapi.json` is what the code generates (regenerate it with
    /// `cargo run -- openapi > openapi.json`).
    #[test]
    fn the_committed_document_is_current() {
        let generated = super::document().to_pretty_json().unwrap() + "\n";
        let committed =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json")).unwrap_or_default();
        assert!(
            generated == committed,
            "openapi.json is stale: run `cargo run -- openapi > openapi.json`"
        );
    }
}
