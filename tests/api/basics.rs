//! The ping route, health routes, and the envelope on unknown paths and methods.

use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{assert_error, spawn_app};

backend_tests! {
    async fn root_answers_the_seed_ping(backend: Backend) {
        let app = spawn_app(backend).await;
        let response = app.get("/").await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"success": true, "status": 200, "content": "server is OK"}));
    }

    async fn health_routes_report_live_and_ready(backend: Backend) {
        let app = spawn_app(backend).await;
        assert_eq!(app.get("/health/live").await.status(), 200);
        let ready: Value = app.get("/health/ready").await.json().await.unwrap();
        assert_eq!(ready["content"], json!({"database": "ok", "session_store": "ok"}));
    }

    async fn unknown_path_and_wrong_method_answer_in_the_envelope(backend: Backend) {
        let app = spawn_app(backend).await;
        assert_error(app.get("/nope").await, 404, "NOT_FOUND").await;
        assert_error(app.get("/auth/login").await, 405, "METHOD_NOT_ALLOWED").await;
        let delete_root = app.client.delete(app.url("/")).send().await.unwrap();
        assert_error(delete_root, 405, "METHOD_NOT_ALLOWED").await;
        let put_me = app.client.put(app.url("/me")).send().await.unwrap();
        assert_eq!(put_me.headers()["allow"], "GET, HEAD", "405 lists the methods the route takes");
        assert_error(put_me, 405, "METHOD_NOT_ALLOWED").await;
        let patch = app.client.patch(app.url("/auth/sessions")).send().await.unwrap();
        assert_eq!(patch.headers()["allow"], "GET, HEAD, DELETE");
    }
}

crate::case!(the_api_describes_itself_unless_told_not_to);
/// The OpenAPI document and its offline Swagger UI, and `DOCS_ENABLED=false` removing both.
async fn the_api_describes_itself_unless_told_not_to() {
    let app = spawn_app(crate::helpers::Backend::Embedded).await;
    let document: Value = app.get("/openapi.json").await.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(
        document,
        serde_json::to_value(auth_api::routes::openapi::document()).unwrap()
    );
    for path in [
        "/auth/register",
        "/auth/login",
        "/auth/me",
        "/auth/refreshAccessToken",
        "/.well-known/jwks.json",
        "/auth/password/forgot",
        "/auth/password/reset",
        "/auth/password/change",
        "/auth/email/verify",
        "/auth/email/verify/resend",
    ] {
        assert!(document["paths"][path].is_object(), "{path} is described");
    }
    let page = app.get("/docs/").await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("swagger-ui"));
    let script = app.get("/docs/swagger-ui-bundle.js").await;
    assert_eq!(script.status(), 200, "the UI's script is bundled, no CDN");

    // Everything under /docs answers in the envelope where it fails, with the security headers.
    let to_index = app.get("/docs").await;
    assert_eq!(to_index.status(), 308);
    assert_eq!(to_index.headers()["location"], "/docs/");
    for missing in ["/docs/nothing.js", "/docs/a/b", "/docsx"] {
        let response = app.get(missing).await;
        assert_eq!(response.headers()["x-content-type-options"], "nosniff", "{missing}");
        assert_error(response, 404, "NOT_FOUND").await;
    }

    let quiet = crate::helpers::spawn_app_with(crate::helpers::Backend::Embedded, &[("DOCS_ENABLED", "false")]).await;
    assert_error(quiet.get("/openapi.json").await, 404, "NOT_FOUND").await;
    assert_error(quiet.get("/docs/").await, 404, "NOT_FOUND").await;
}

crate::case!(head_is_served_wherever_a_safe_get_is);
async fn head_is_served_wherever_a_safe_get_is() {
    let app = spawn_app(crate::helpers::Backend::Embedded).await;
    let tokens = app.signed_up("head@example.com").await;
    for path in [
        "/",
        "/health/live",
        "/health/ready",
        "/.well-known/jwks.json",
        "/auth/me",
        "/me",
        "/auth/sessions",
        "/openapi.json",
        "/docs/",
    ] {
        let head = app
            .client
            .head(app.url(path))
            .bearer_auth(&tokens.access)
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200, "HEAD {path}");
        let get = app
            .client
            .get(app.url(path))
            .bearer_auth(&tokens.access)
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.headers().get("content-type"),
            get.headers().get("content-type"),
            "{path}"
        );
        assert!(head.bytes().await.unwrap().is_empty(), "HEAD {path} has no body");
    }
    let unauthenticated = app.client.head(app.url("/auth/me")).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401, "HEAD is checked like GET");
    // The seed's GET refresh rotates the session: not a safe GET, so no HEAD.
    let refresh = app
        .client
        .head(app.url("/auth/refreshAccessToken"))
        .send()
        .await
        .unwrap();
    assert_eq!(refresh.status(), 405);
}
