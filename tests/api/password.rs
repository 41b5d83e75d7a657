//! `POST /auth/password/change`: the current password checked again, the new one under the
//! registration rules, every other session ended and the caller's kept.

use reqwest::Response;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::*;

const OLD: &str = "correct horse battery";
const NEW: &str = "a brand new passphrase";

async fn change(app: &TestApp, access: &str, body: &Value) -> Response {
    app.client
        .post(app.url("/auth/password/change"))
        .bearer_auth(access)
        .json(body)
        .send()
        .await
        .unwrap()
}

backend_tests! {
    async fn changing_the_password_ends_every_other_session(backend: Backend) {
        let app = spawn_app_with(backend, &[("MAX_SESSIONS_PER_USER", "5")]).await;
        let this_device = app.signed_up("change@example.com").await;
        let other_device = expect_tokens(app.login("change@example.com", OLD).await).await;
        let third_device = expect_tokens(app.login("change@example.com", OLD).await).await;

        let response = change(&app, &this_device.access, &json!({"current_password": OLD, "new_password": NEW})).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["content"]["revoked"], 2, "{body}");

        for other in [&other_device, &third_device] {
            assert_error(app.me(&other.access).await, 401, "INVALID_ACCESS_TOKEN").await;
        }
        let listed: Value = app.sessions(&this_device.access).await.json().await.unwrap();
        let listed = listed["content"].as_array().unwrap();
        assert_eq!(listed.len(), 1, "only the caller's session is left: {listed:?}");
        assert_eq!(listed[0]["current"], true);
        assert_eq!(app.refresh(&other_device.refresh).await.status(), 401, "the other device's refresh token is dead");
        assert_eq!(app.me(&this_device.access).await.status(), 200, "the caller stays logged in");
        assert_eq!(app.refresh(&this_device.refresh).await.status(), 200, "and can refresh");
        assert_error(app.login("change@example.com", OLD).await, 401, "USER_NOT_FOUND").await;
        expect_tokens(app.login("change@example.com", NEW).await).await;
    }

    async fn a_wrong_current_password_is_refused_and_counts_towards_the_lockout(backend: Backend) {
        let app = spawn_app_with(backend, &[("LOGIN_MAX_FAILURES", "2")]).await;
        let tokens = app.signed_up("guess@example.com").await;
        let guess = json!({"current_password": "not the password", "new_password": NEW});
        assert_error(change(&app, &tokens.access, &guess).await, 403, "INVALID_CURRENT_PASSWORD").await;
        assert_error(change(&app, &tokens.access, &guess).await, 403, "INVALID_CURRENT_PASSWORD").await;
        // Locked now: even the right password waits, as at login.
        let right = json!({"current_password": OLD, "new_password": NEW});
        assert_error(change(&app, &tokens.access, &right).await, 429, "ACCOUNT_LOCKED").await;
        assert_error(app.login("guess@example.com", OLD).await, 429, "ACCOUNT_LOCKED").await;
    }

    async fn bad_change_requests_get_their_error_codes(backend: Backend) {
        let app = spawn_app(backend).await;
        let tokens = app.signed_up("bad-change@example.com").await;
        let cases = [
            (json!({"current_password": OLD, "new_password": "short"}), 400, "VALIDATION_ERROR", "a new password under the rules"),
            (json!({"current_password": OLD, "new_password": "password"}), 400, "VALIDATION_ERROR", "a common new password"),
            (json!({"current_password": OLD}), 400, "VALIDATION_ERROR", "no new password"),
            (json!({"new_password": NEW}), 400, "VALIDATION_ERROR", "no current password"),
        ];
        for (body, status, code, why) in cases {
            let response = change(&app, &tokens.access, &body).await;
            assert_eq!(response.status(), status, "{why}");
            let body = assert_error(response, status, code).await;
            assert!(!body.to_string().contains(OLD), "{why}: the password is echoed");
        }
        let anonymous = app.post_json("/auth/password/change", &json!({"current_password": OLD, "new_password": NEW})).await;
        assert_error(anonymous, 401, "PROTECTED_ROUTE").await;
        expect_tokens(app.login("bad-change@example.com", OLD).await).await;
    }
}
