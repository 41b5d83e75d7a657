//! Register, login and create-or-login: shapes, cookies, conflicts, enumeration resistance.

use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{assert_error, expect_tokens, set_cookie, spawn_app};

backend_tests! {
    async fn register_returns_user_token_and_a_locked_down_cookie(backend: Backend) {
        let app = spawn_app(backend).await;
        let response = app.register(" Ada ", "  Ada@Example.COM ", "analytical engine").await;
        assert_eq!(response.status(), 200);
        let cookie = set_cookie(&response).expect("Set-Cookie jwt");
        for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/auth", "Max-Age=172800"] {
            assert!(cookie.contains(attribute), "{attribute} missing in {cookie}");
        }
        let body: Value = response.json().await.unwrap();
        let user = &body["content"]["user"];
        assert_eq!(user["username"], "Ada");
        assert_eq!(user["email"], "ada@example.com", "email is trimmed and lower-cased");
        assert_eq!(uuid::Uuid::parse_str(user["id"].as_str().unwrap()).unwrap().get_version_num(), 7);
        assert_eq!(body["content"]["token_type"], "Bearer");
        assert_eq!(body["content"]["expires_in"], 300);
    }

    async fn an_email_taken_in_any_case_is_a_clean_409(backend: Backend) {
        let app = spawn_app(backend).await;
        app.signed_up("grace@example.com").await;
        let again = app.register("Other", "GRACE@example.com", "another password").await;
        let body = assert_error(again, 409, "EMAIL_TAKEN").await;
        assert_eq!(body["content"]["error_type"], "UserError");
        let text = body.to_string();
        for internal in ["constraint", "users_email_key", "duplicate", "UNIQUE", "sqlx"] {
            assert!(!text.contains(internal), "database text leaked: {text}");
        }
    }

    async fn login_works_in_any_email_case(backend: Backend) {
        let app = spawn_app(backend).await;
        app.signed_up("linus@example.com").await;
        expect_tokens(app.login("  LINUS@Example.com", "correct horse battery").await).await;
    }

    async fn unknown_email_and_wrong_password_answer_byte_for_byte_alike(backend: Backend) {
        let app = spawn_app(backend).await;
        app.signed_up("known@example.com").await;
        let wrong_password = app.login("known@example.com", "not the password").await;
        let unknown_email = app.login("unknown@example.com", "not the password").await;
        assert_eq!(wrong_password.status(), 401);
        assert_eq!(unknown_email.status(), 401);
        assert!(set_cookie(&wrong_password).is_none() && set_cookie(&unknown_email).is_none());
        let (a, b) = (wrong_password.bytes().await.unwrap(), unknown_email.bytes().await.unwrap());
        assert_eq!(a, b, "the two failures must be indistinguishable");
        let body: Value = serde_json::from_slice(&a).unwrap();
        assert_eq!(body["content"]["error_code"], "USER_NOT_FOUND");
        assert_eq!(body["content"]["error_type"], "DbError");
    }

    async fn post_auth_registers_then_logs_in(backend: Backend) {
        let app = spawn_app(backend).await;
        let missing_username = app.post_json("/auth", &json!({"email": "new@example.com", "password": "a fine password"})).await;
        let body = assert_error(missing_username, 400, "VALIDATION_ERROR").await;
        assert_eq!(body["content"]["field"], "username");

        let created = app
            .post_json("/auth", &json!({"email": "new@example.com", "password": "a fine password", "username": "New"}))
            .await;
        let first = expect_tokens(created).await;
        let logged_in = app.post_json("/auth", &json!({"email": "NEW@example.com", "password": "a fine password"})).await;
        let second = expect_tokens(logged_in).await;
        assert_ne!(first.refresh, second.refresh);
        let wrong = app.post_json("/auth", &json!({"email": "new@example.com", "password": "wrong password"})).await;
        assert_error(wrong, 401, "USER_NOT_FOUND").await;
    }

    async fn tokens_issued_in_the_same_second_differ(backend: Backend) {
        let app = spawn_app(backend).await;
        app.signed_up("twins@example.com").await;
        let (a, b) = tokio::join!(
            app.login("twins@example.com", "correct horse battery"),
            app.login("twins@example.com", "correct horse battery")
        );
        let (a, b) = (expect_tokens(a).await, expect_tokens(b).await);
        assert_ne!(a.access, b.access);
        assert_ne!(a.refresh, b.refresh);
    }
}
