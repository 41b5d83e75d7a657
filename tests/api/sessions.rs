//! Session limits, listing, revocation and logout.

use serde_json::Value;

use crate::backend_tests;
use crate::helpers::{assert_error, expect_tokens, refresh_cookie, spawn_app, spawn_app_with};
use crate::metrics::Snapshot;

const PASSWORD: &str = "correct horse battery";

backend_tests! {
    async fn a_deleted_user_keeps_no_session_and_gets_no_token(backend: Backend) {
        let app = spawn_app_with(backend, &[("MAX_SESSIONS_PER_USER", "3"), ("SESSION_CACHE_MS", "0")]).await;
        let first = app.signed_up("gone@example.com").await;
        let second = expect_tokens(app.login("gone@example.com", PASSWORD).await).await;
        let third = expect_tokens(app.login("gone@example.com", PASSWORD).await).await;
        let before = Snapshot::take(&app).await;
        assert_eq!(app.sql("delete from users where email = 'gone@example.com'").await, 1);

        assert_error(app.refresh(&first.refresh).await, 401, "INVALID_REFRESH_TOKEN").await;
        let after = Snapshot::take(&app).await;
        let gone = [("reason", "user_gone")];
        assert_eq!(
            after.get("auth_sessions_revoked_total", &gone) - before.get("auth_sessions_revoked_total", &gone),
            3.0,
            "the first refusal ends every session of the user"
        );
        assert_error(app.refresh(&second.refresh).await, 401, "INVALID_REFRESH_TOKEN").await;
        assert_error(app.sessions(&third.access).await, 401, "INVALID_ACCESS_TOKEN").await;
        assert_error(app.me(&third.access).await, 401, "INVALID_ACCESS_TOKEN").await;
        // The same address registered again is a new user with none of the old sessions.
        let again = app.signed_up("gone@example.com").await;
        let listed: Value = app.sessions(&again.access).await.json().await.unwrap();
        assert_eq!(listed["content"].as_array().unwrap().len(), 1);
        assert_error(app.refresh(&third.refresh).await, 401, "INVALID_REFRESH_TOKEN").await;
    }

    async fn a_new_login_replaces_the_old_session_by_default(backend: Backend) {
        let app = spawn_app(backend).await;
        let first = app.signed_up("one@example.com").await;
        let second = expect_tokens(app.login("one@example.com", PASSWORD).await).await;
        assert_error(app.refresh(&first.refresh).await, 401, "INVALID_REFRESH_TOKEN").await;
        expect_tokens(app.refresh(&second.refresh).await).await;
    }

    async fn beyond_the_limit_the_oldest_session_is_evicted(backend: Backend) {
        let app = spawn_app_with(backend, &[("MAX_SESSIONS_PER_USER", "2")]).await;
        let first = app.signed_up("many@example.com").await;
        let second = expect_tokens(app.login("many@example.com", PASSWORD).await).await;
        let third = expect_tokens(app.login("many@example.com", PASSWORD).await).await;
        assert_error(app.refresh(&first.refresh).await, 401, "INVALID_REFRESH_TOKEN").await;
        expect_tokens(app.refresh(&second.refresh).await).await;
        let listed: Value = app.sessions(&third.access).await.json().await.unwrap();
        assert_eq!(listed["content"].as_array().unwrap().len(), 2);
    }

    async fn sessions_are_listed_and_revocable(backend: Backend) {
        let app = spawn_app_with(backend, &[("MAX_SESSIONS_PER_USER", "3")]).await;
        let laptop = app.signed_up("owner@example.com").await;
        let phone = app.client.post(app.url("/auth/login"))
            .header("User-Agent", "phone-app/1.0")
            .json(&serde_json::json!({"email": "owner@example.com", "password": PASSWORD}))
            .send().await.unwrap();
        let phone = expect_tokens(phone).await;

        let listed: Value = app.sessions(&laptop.access).await.json().await.unwrap();
        let sessions = listed["content"].as_array().unwrap();
        assert_eq!(sessions.len(), 2);
        let current: Vec<bool> = sessions.iter().map(|s| s["current"].as_bool().unwrap()).collect();
        assert_eq!(current, [true, false], "oldest first; the laptop's own session is current");
        let phone_session = &sessions[1];
        assert_eq!(phone_session["user_agent"], "phone-app/1.0");
        assert_eq!(phone_session["ip"], "127.0.0.1");
        for field in ["id", "created_at", "last_used_at", "expires_at"] {
            assert!(phone_session[field].is_string(), "{field} in {phone_session}");
        }

        // Another user cannot revoke it; its owner can, once.
        let intruder = app.signed_up("intruder@example.com").await;
        let path = format!("/auth/sessions/{}", phone_session["id"].as_str().unwrap());
        let attempt = app.client.delete(app.url(&path)).bearer_auth(&intruder.access).send().await.unwrap();
        assert_error(attempt, 404, "SESSION_NOT_FOUND").await;
        let revoked = app.client.delete(app.url(&path)).bearer_auth(&laptop.access).send().await.unwrap();
        assert_eq!(revoked.status(), 200);
        assert_error(app.refresh(&phone.refresh).await, 401, "INVALID_REFRESH_TOKEN").await;
        let again = app.client.delete(app.url(&path)).bearer_auth(&laptop.access).send().await.unwrap();
        assert_error(again, 404, "SESSION_NOT_FOUND").await;
        let bad_id = app.client.delete(app.url("/auth/sessions/not-a-uuid")).bearer_auth(&laptop.access).send().await.unwrap();
        assert_error(bad_id, 400, "VALIDATION_ERROR").await;

        // Revoke all.
        let all = app.client.delete(app.url("/auth/sessions")).bearer_auth(&laptop.access).send().await.unwrap();
        assert_eq!(refresh_cookie(&all).as_deref(), Some(""), "revoking all clears the caller's cookie");
        let body: Value = all.json().await.unwrap();
        assert_eq!(body["content"]["revoked"], 1);
        assert_error(app.refresh(&laptop.refresh).await, 401, "INVALID_REFRESH_TOKEN").await;
    }

    async fn logout_revokes_clears_and_is_idempotent(backend: Backend) {
        let app = spawn_app(backend).await;
        let tokens = app.signed_up("bye@example.com").await;
        let response = app.logout(&tokens.refresh).await;
        assert_eq!(response.status(), 200);
        let cleared = crate::helpers::set_cookie(&response).expect("cookie cleared");
        assert!(cleared.contains("Max-Age=0") && cleared.contains("Path=/auth"), "{cleared}");
        assert_eq!(refresh_cookie(&response).as_deref(), Some(""));
        assert_error(app.refresh(&tokens.refresh).await, 401, "INVALID_REFRESH_TOKEN").await;
        assert_eq!(app.logout(&tokens.refresh).await.status(), 200, "second logout");
        let no_cookie = app.client.post(app.url("/auth/logout")).send().await.unwrap();
        assert_eq!(no_cookie.status(), 200, "logout without a cookie");
    }
}
