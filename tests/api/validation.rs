//! Bad input: every case gets the envelope, the right status and a stable code.

use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{assert_error, spawn_app};

backend_tests! {
    async fn register_input_table(backend: Backend) {
        let app = spawn_app(backend).await;
        let long = "x".repeat(129);
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!({"email": "a@b.co", "password": "long enough pw"}), "username", "username missing"),
            (json!({"username": "", "email": "a@b.co", "password": "long enough pw"}), "username", "empty username"),
            (json!({"username": "   ", "email": "a@b.co", "password": "long enough pw"}), "username", "blank username"),
            (json!({"username": "x".repeat(65), "email": "a@b.co", "password": "long enough pw"}), "username", "65 chars"),
            (json!({"username": "admin\u{202e}gpj.exe", "email": "a@b.co", "password": "long enough pw"}), "username", "right-to-left override"),
            (json!({"username": "zero\u{200b}width", "email": "a@b.co", "password": "long enough pw"}), "username", "zero-width space"),
            (json!({"username": "A", "email": "", "password": "long enough pw"}), "email", "empty email"),
            (json!({"username": "A", "email": "not-an-email", "password": "long enough pw"}), "email", "no @"),
            (json!({"username": "A", "email": "a@b.co", "password": ""}), "password", "empty password"),
            (json!({"username": "A", "email": "a@b.co", "password": "short"}), "password", "under 8"),
            (json!({"username": "A", "email": "a@b.co", "password": long}), "password", "over 128"),
            (json!({"username": "A", "email": "a@b.co", "password": "password1"}), "password", "common password"),
            (json!({"username": 5, "email": "a@b.co", "password": "long enough pw"}), "username", "wrong type"),
            (json!(["not", "an", "object"]), "body", "array body"),
        ];
        for (body, field, why) in cases {
            let response = app.post_json("/auth/register", &body).await;
            let body = assert_error(response, 400, "VALIDATION_ERROR").await;
            assert_eq!(body["content"]["field"], field, "{why}");
            assert_eq!(body["content"]["error_type"], "UserError", "{why}");
        }
    }

    async fn malformed_bodies_and_content_types(backend: Backend) {
        let app = spawn_app(backend).await;
        let send = |body: &'static str, content_type: &'static str| {
            app.client.post(app.url("/auth/login")).header("Content-Type", content_type).body(body).send()
        };
        let body = assert_error(send("{\"email\":", "application/json").await.unwrap(), 400, "VALIDATION_ERROR").await;
        assert_eq!(body["content"]["field"], "body");
        assert_error(send("email=a@b.co", "application/x-www-form-urlencoded").await.unwrap(), 415, "UNSUPPORTED_MEDIA_TYPE").await;
        assert_error(send("{}", "text/plain").await.unwrap(), 415, "UNSUPPORTED_MEDIA_TYPE").await;
        let no_type = app.client.post(app.url("/auth/login")).body("{}").send().await.unwrap();
        assert_error(no_type, 415, "UNSUPPORTED_MEDIA_TYPE").await;
        let charset = send(r#"{"email":"a@b.co","password":"whatever1"}"#, "application/json; charset=utf-8").await.unwrap();
        assert_error(charset, 401, "USER_NOT_FOUND").await;
    }

    async fn oversized_bodies_get_413(backend: Backend) {
        let app = spawn_app(backend).await;
        let padding = "x".repeat(20 * 1024);
        let response = app.post_json("/auth/register", &json!({"username": padding, "email": "a@b.co", "password": "long enough"})).await;
        assert_error(response, 413, "PAYLOAD_TOO_LARGE").await;
        let chunked = app.client.post(app.url("/auth/login")).header("Content-Type", "application/json")
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                (0..40).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024])),
            )))
            .send().await.unwrap();
        assert_error(chunked, 413, "PAYLOAD_TOO_LARGE").await;
    }

    async fn unicode_and_sql_looking_input_is_stored_verbatim(backend: Backend) {
        let app = spawn_app(backend).await;
        let names = ["Robert'); DROP TABLE users;--", "Zoë 🚀 Ñandú", "\"quoted\" <b>name</b>"];
        for (i, name) in names.iter().enumerate() {
            // ASCII addresses only (an IDN domain in punycode): the unicode is in the names.
            let email = format!("o'brien+{i}@xn--exmple-cua.org");
            let response = app.register(name, &email, "correct horse battery").await;
            assert_eq!(response.status(), 200, "{name}");
            let body: Value = response.json().await.unwrap();
            let access = body["content"]["access_token"].as_str().unwrap();
            let me: Value = app.me(access).await.json().await.unwrap();
            assert_eq!(me["content"]["username"], *name);
            assert_eq!(me["content"]["email"], email);
        }
        assert_eq!(app.get("/health/ready").await.status(), 200, "the users table survived");
    }
}
