//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` attributes and the
//! request and response types; served at `/openapi.json` with Swagger UI at `/docs`.

use utoipa::openapi::RefOr;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, PartialSchema};

use super::{auth, email, events, health, jwks, me, mfa, passkeys, password, refresh, sessions};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "auth-api",
        description = "JWT authentication for single-page apps: a 5-minute access token in the body, a rotating refresh token in the HttpOnly `jwt` cookie. Every body but the JWKS is the envelope `{success, status, content}`; errors carry a stable `error_code` (README \"Error codes\"). Every response has a `traceresponse` header (W3C Trace Context) naming the request's trace.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        health::root,
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
        events::list,
        password::change,
        password::forgot,
        password::reset,
        email::verify,
        email::resend,
        mfa::enrol,
        mfa::confirm,
        mfa::renew,
        mfa::remove,
        mfa::verify,
        passkeys::list,
        passkeys::register_start,
        passkeys::register_finish,
        passkeys::rename,
        passkeys::remove,
        passkeys::sign_up_start,
        passkeys::sign_up_finish,
        passkeys::login_start,
        passkeys::login_finish,
    ),
    modifiers(&Security, &TraceHeader),
    tags(
        (name = "auth", description = "Registration, login and the refresh cookie"),
        (name = "account", description = "The signed-in user: profile, sessions, password"),
        (name = "mfa", description = "The TOTP second factor and recovery codes"),
        (name = "passkeys", description = "Passkeys (WebAuthn): sign in with no password, or as the second factor"),
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
