//! The protected route and every way an access token can be wrong.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{TEST_SECRET, assert_error, spawn_app, spawn_app_at_manual_clock};

/// An HS256 token signed with the test key, with the given header `typ` and claims.
fn forge(typ: Option<&str>, claims: Value, key: &str) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.typ = typ.map(str::to_string);
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(key.as_bytes())).unwrap()
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

backend_tests! {
    async fn me_returns_the_user_at_both_paths(backend: Backend) {
        let app = spawn_app(backend).await;
        let tokens = app.signed_up("me@example.com").await;
        for path in ["/auth/me", "/me"] {
            let response = app.client.get(app.url(path)).bearer_auth(&tokens.access).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            let body: Value = response.json().await.unwrap();
            let user = &body["content"];
            assert_eq!(user["email"], "me@example.com");
            assert_eq!(user["username"], "Test User");
            assert!(user["id"].is_string() && user["created_at"].is_string(), "{user}");
            assert!(user.get("password_hash").is_none());
        }
    }

    async fn missing_or_foreign_authorization_is_refused(backend: Backend) {
        let app = spawn_app(backend).await;
        let tokens = app.signed_up("hdr@example.com").await;
        assert_error(app.get("/auth/me").await, 401, "PROTECTED_ROUTE").await;
        let cases = [
            (format!("Basic {}", tokens.access), "INVALID_AUTH_HEADER", "another scheme"),
            (tokens.access.clone(), "INVALID_AUTH_HEADER", "no scheme"),
            ("Bearer ".to_string(), "INVALID_AUTH_HEADER", "empty token"),
            ("Bearer garbage".to_string(), "INVALID_ACCESS_TOKEN", "not a JWT"),
            (format!("bearer {}", tokens.access), "", "scheme is case-insensitive"),
        ];
        for (header, code, why) in cases {
            let response = app.client.get(app.url("/me")).header("Authorization", header).send().await.unwrap();
            if code.is_empty() {
                assert_eq!(response.status(), 200, "{why}");
            } else {
                let body = assert_error(response, 401, code).await;
                assert_eq!(body["content"]["error_type"], "AuthError", "{why}");
            }
        }
    }

    async fn expired_token_gets_the_seed_message(backend: Backend) {
        let app = spawn_app(backend).await;
        let tokens = app.signed_up("late@example.com").await;
        let sub = app.me(&tokens.access).await.json::<Value>().await.unwrap()["content"]["id"].clone();
        let claims = json!({"sub": sub, "sid": uuid::Uuid::new_v4(), "iat": now() - 400, "exp": now() - 100,
            "iss": "auth-api", "aud": "auth-api", "jti": uuid::Uuid::new_v4()});
        let expired = forge(Some("at+jwt"), claims, TEST_SECRET);
        let body = assert_error(app.me(&expired).await, 401, "EXPIRED_ACCESS_TOKEN").await;
        assert_eq!(
            body["content"]["message"],
            "your access token has expired, please refresh at /auth/refreshAccessToken"
        );
    }

    async fn short_ttl_tokens_really_expire(backend: Backend) {
        // Access tokens expire by the service's own clock, on either backend.
        let app = spawn_app_at_manual_clock(backend, &[("ACCESS_TOKEN_TTL", "1"), ("JWT_LEEWAY", "0")]).await;
        let tokens = app.signed_up("ttl@example.com").await;
        assert_eq!(app.me(&tokens.access).await.status(), 200);
        app.wait(std::time::Duration::from_millis(2100)).await;
        assert_error(app.me(&tokens.access).await, 401, "EXPIRED_ACCESS_TOKEN").await;
    }

    async fn tampered_or_foreign_tokens_are_invalid(backend: Backend) {
        let app = spawn_app(backend).await;
        let tokens = app.signed_up("forge@example.com").await;
        let sub = app.me(&tokens.access).await.json::<Value>().await.unwrap()["content"]["id"].clone();
        let good = |iss: &str, aud: &str| json!({"sub": sub, "sid": uuid::Uuid::new_v4(), "iat": now(),
            "exp": now() + 300, "iss": iss, "aud": aud, "jti": uuid::Uuid::new_v4()});
        let mut parts: Vec<String> = tokens.access.split('.').map(str::to_string).collect();
        parts[1] = parts[1].chars().rev().collect();
        let cases = [
            (forge(Some("at+jwt"), good("auth-api", "auth-api"), "another-key-another-key-another-key"), "wrong key"),
            (forge(Some("at+jwt"), good("someone", "auth-api"), TEST_SECRET), "wrong iss"),
            (forge(Some("at+jwt"), good("auth-api", "someone"), TEST_SECRET), "wrong aud"),
            (forge(Some("JWT"), good("auth-api", "auth-api"), TEST_SECRET), "wrong typ"),
            (forge(None, good("auth-api", "auth-api"), TEST_SECRET), "no typ"),
            (parts.join("."), "tampered payload"),
            (tokens.access.rsplit_once('.').unwrap().0.to_string() + ".", "stripped signature"),
            (tokens.refresh.clone(), "a refresh token"),
            ("a".repeat(9000), "oversized"),
        ];
        for (token, why) in cases {
            let response = app.me(&token).await;
            assert_eq!(response.status(), 401, "{why}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["content"]["error_code"], "INVALID_ACCESS_TOKEN", "{why}");
        }
    }
}
