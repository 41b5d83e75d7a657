//! Rotation, the grace window, reuse detection and expiry of refresh tokens.

use std::time::Duration;

use crate::backend_tests;
use crate::helpers::{Backend, assert_error, expect_tokens, refresh_cookie, set_cookie, spawn_app, spawn_for_timeline};

backend_tests! {
    async fn refresh_rotates_and_keeps_the_cookie_locked_down(backend: Backend) {
        let app = spawn_app(backend).await;
        let first = app.signed_up("rot@example.com").await;
        let response = app.refresh(&first.refresh).await;
        let cookie = set_cookie(&response).expect("rotated cookie");
        for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/auth"] {
            assert!(cookie.contains(attribute), "the seed lost {attribute} on refresh: {cookie}");
        }
        let second = expect_tokens(response).await;
        assert_ne!(second.refresh, first.refresh);
        assert_eq!(app.me(&second.access).await.status(), 200);
        // The successor rotates in turn; POST works like GET.
        let third = app.client.post(app.url("/auth/refreshAccessToken"))
            .header("Cookie", format!("jwt={}", second.refresh)).send().await.unwrap();
        let third = expect_tokens(third).await;
        assert_ne!(third.refresh, second.refresh);
    }

    async fn tokens_say_how_the_user_signed_in_and_refresh_keeps_it(backend: Backend) {
        let app = spawn_app(backend).await;
        let first = app.signed_up("amr@example.com").await;
        let login = expect_tokens(app.login("amr@example.com", crate::account_mail::PASSWORD).await).await;
        let refreshed = expect_tokens(app.refresh(&login.refresh).await).await;
        for token in [&first.access, &login.access, &refreshed.access] {
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
            validation.set_audience(&["auth-api"]);
            let key = jsonwebtoken::DecodingKey::from_secret(crate::helpers::TEST_SECRET.as_bytes());
            let claims = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation).unwrap().claims;
            assert_eq!(claims["amr"], serde_json::json!(["pwd"]), "{claims}");
            assert_eq!(claims["acr"], "aal1", "{claims}");
        }
    }

    async fn a_retired_token_within_grace_gets_the_same_successor(backend: Backend) {
        let app = spawn_app(backend).await;
        let first = app.signed_up("tabs@example.com").await;
        let tab_a = expect_tokens(app.refresh(&first.refresh).await).await;
        let tab_b = expect_tokens(app.refresh(&first.refresh).await).await;
        assert_eq!(tab_a.refresh, tab_b.refresh, "both tabs end up with one successor");
        assert_ne!(tab_a.access, tab_b.access);
        expect_tokens(app.refresh(&tab_b.refresh).await).await;
    }

    async fn reuse_after_grace_revokes_the_session(backend: Backend) {
        let app = spawn_for_timeline(backend, &[("REFRESH_REUSE_GRACE", "1")]).await;
        let stolen = app.signed_up("victim@example.com").await;
        let legit = expect_tokens(app.refresh(&stolen.refresh).await).await;
        app.wait(Duration::from_millis(1300)).await;
        let replay = app.refresh(&stolen.refresh).await;
        assert_eq!(refresh_cookie(&replay).as_deref(), Some(""), "the cookie is cleared");
        let body = assert_error(replay, 401, "REFRESH_TOKEN_REUSED").await;
        assert_eq!(body["content"]["error_type"], "AuthError");
        // The whole session is gone: the legitimate successor no longer works either.
        assert_error(app.refresh(&legit.refresh).await, 401, "INVALID_REFRESH_TOKEN").await;
        // Its access tokens stop at once too, not at their expiry.
        assert_error(app.me(&legit.access).await, 401, "INVALID_ACCESS_TOKEN").await;
    }

    async fn missing_empty_and_garbage_cookies(backend: Backend) {
        let app = spawn_app(backend).await;
        assert_error(app.get("/auth/refreshAccessToken").await, 401, "NO_JWT_REFTOKEN_COOKIE").await;
        let other_cookie = app.client.get(app.url("/auth/refreshAccessToken")).header("Cookie", "theme=dark").send().await.unwrap();
        assert_error(other_cookie, 401, "NO_JWT_REFTOKEN_COOKIE").await;
        assert_error(app.refresh("").await, 401, "NO_REFRESH_TOKEN").await;
        assert_error(app.refresh("garbage").await, 401, "INVALID_REFRESH_TOKEN").await;
        let well_formed_unknown = auth_api::auth::refresh_token::random_token();
        let body = assert_error(app.refresh(&well_formed_unknown).await, 401, "INVALID_REFRESH_TOKEN").await;
        let message = body["content"]["message"].as_str().unwrap();
        assert!(!message.contains("cycled"), "a token never issued was not cycled: {message}");
    }

    async fn a_token_whose_user_was_altered_or_of_the_old_form_is_unknown(backend: Backend) {
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let app = spawn_app(backend).await;
        let tokens = app.signed_up("shape@example.com").await;
        assert_eq!(tokens.refresh.len(), 64, "the user's id, then 256 random bits");
        let other = app.signed_up("other.shape@example.com").await;
        // The other user's id in front of this token's random part: a well-formed token that
        // names no session, of either user.
        let mut forged = URL_SAFE_NO_PAD.decode(&tokens.refresh).unwrap();
        forged[..16].copy_from_slice(&URL_SAFE_NO_PAD.decode(&other.refresh).unwrap()[..16]);
        let forged = URL_SAFE_NO_PAD.encode(forged);
        assert_error(app.refresh(&forged).await, 401, "INVALID_REFRESH_TOKEN").await;
        // The earlier form (256 random bits alone) is unknown: its holder signs in again.
        let old = URL_SAFE_NO_PAD.encode([7u8; 32]);
        assert_error(app.refresh(&old).await, 401, "INVALID_REFRESH_TOKEN").await;
        assert_eq!(app.logout(&forged).await.status(), 200, "logout is idempotent");
        // Neither touched the real sessions.
        expect_tokens(app.refresh(&tokens.refresh).await).await;
        expect_tokens(app.refresh(&other.refresh).await).await;
    }

    async fn refresh_tokens_expire(backend: Backend) {
        let app = spawn_for_timeline(backend, &[("REFRESH_TOKEN_TTL", "1"), ("SESSION_MAX_LIFETIME", "1")]).await;
        let tokens = app.signed_up("old@example.com").await;
        app.wait(Duration::from_millis(1200)).await;
        assert_error(app.refresh(&tokens.refresh).await, 401, "EXPIRED_REFRESH_TOKEN").await;
    }

    async fn absolute_lifetime_bounds_a_refreshed_session(backend: Backend) {
        let app = spawn_for_timeline(backend, &[("REFRESH_TOKEN_TTL", "2"), ("SESSION_MAX_LIFETIME", "2")]).await;
        let tokens = app.signed_up("bounded@example.com").await;
        app.wait(Duration::from_millis(1200)).await;
        let renewed = expect_tokens(app.refresh(&tokens.refresh).await).await;
        app.wait(Duration::from_millis(1000)).await;
        // Refreshed 1.2 s in, so idle expiry is 3.2 s; the 2 s lifetime ends it first.
        assert_error(app.refresh(&renewed.refresh).await, 401, "EXPIRED_REFRESH_TOKEN").await;
    }
}

crate::case!(redis_keys_are_namespaced_hashed_and_expiring needs External);
async fn redis_keys_are_namespaced_hashed_and_expiring() {
    let app = spawn_app(Backend::External).await;
    let tokens = app.signed_up("keys@example.com").await;
    expect_tokens(app.refresh(&tokens.refresh).await).await;
    let (url, prefix) = app.redis.clone().unwrap();
    let mut conn = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 4, "one session, two tokens, one user index: {keys:?}");
    let tag = format!("{prefix}{{u:");
    assert!(
        keys.iter().all(|k| k.starts_with(&tag)),
        "every session key under the user's hash tag: {keys:?}"
    );
    for key in &keys {
        let ttl: i64 = redis::cmd("PTTL").arg(key).query_async(&mut conn).await.unwrap();
        assert!(ttl > 0, "{key} has no TTL");
        assert!(!key.contains(&tokens.refresh), "a token in clear in {key}");
    }
    let session_key = keys.iter().find(|k| k.contains("session:")).unwrap();
    let fields: Vec<String> = redis::cmd("HVALS")
        .arg(session_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        !fields.iter().any(|v| v.contains(&tokens.refresh)),
        "a token in clear in the session hash"
    );
}

crate::case!(postgres_holds_only_argon2id_hashes needs External);
async fn postgres_holds_only_argon2id_hashes() {
    let app = spawn_app(Backend::External).await;
    app.signed_up("hash@example.com").await;
    let url = app.database_url.clone().unwrap();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await.unwrap();
    let (email, hash): (String, String) = sqlx::query_as("select email, password_hash from users")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(email, "hash@example.com");
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
    assert!(!hash.contains("correct horse battery"));
}
