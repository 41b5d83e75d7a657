//! The admin listener: off unless `ADMIN_ADDR` is set, never on the API port, answering only
//! with a live admin key; user search with stable keyset pages, and one user's account.

use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, assert_error, content, spawn_app_with};

async fn spawn_admin_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[("ADMIN_ADDR", "127.0.0.1:0"), ("SESSION_CACHE_MS", "0")]).await
}

async fn users_store(app: &TestApp) -> auth_api::store::UserStore {
    let settings = app.settings_with(&[]);
    auth_api::startup::connect_users(&settings, Default::default(), &auth_api::clock::Clock::system())
        .await
        .unwrap()
}

async fn admin_get(app: &TestApp, path: &str, key: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(format!("{}{path}", app.admin_address.as_ref().unwrap()));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap()
}

backend_tests! {
    async fn admin_routes_answer_only_a_live_key(backend: Backend) {
        let app = spawn_admin_app(backend).await;
        let users = users_store(&app).await;
        let key = auth_api::accounts::create_admin_key(&users, "support").await.unwrap();
        let tokens = app.signed_up("ada@example.com").await;
        for path in ["/admin/users", "/admin/users/00000000-0000-0000-0000-000000000000"] {
            assert_error(admin_get(&app, path, None).await, 401, "PROTECTED_ROUTE").await;
            assert_error(admin_get(&app, path, Some("aak_wrong")).await, 401, "INVALID_ADMIN_KEY").await;
            // A user's access token is no admin key.
            assert_error(admin_get(&app, path, Some(&tokens.access)).await, 401, "INVALID_ADMIN_KEY").await;
        }
        let basic = app
            .client
            .get(format!("{}/admin/users", app.admin_address.as_ref().unwrap()))
            .header("authorization", format!("Basic {key}"))
            .send()
            .await
            .unwrap();
        assert_error(basic, 401, "INVALID_AUTH_HEADER").await;
        content(admin_get(&app, "/admin/users", Some(&key)).await).await;
        // The admin document is there, and says how to authenticate.
        let doc = content_raw(admin_get(&app, "/openapi.json", None).await).await;
        assert!(doc["paths"]["/admin/users"].is_object(), "{doc}");
        assert!(doc["components"]["securitySchemes"]["admin_key"].is_object());
        // Revoked: refused at once here (SESSION_CACHE_MS=0).
        assert!(users.revoke_admin_key("support").await.unwrap());
        assert_error(admin_get(&app, "/admin/users", Some(&key)).await, 401, "INVALID_ADMIN_KEY").await;
        // Nothing of the admin API on the API's port.
        assert_error(app.client.get(app.url("/admin/users")).bearer_auth(&key).send().await.unwrap(), 404, "NOT_FOUND").await;
    }

    async fn users_are_found_and_paged_in_a_stable_order(backend: Backend) {
        let app = spawn_admin_app(backend).await;
        let users = users_store(&app).await;
        let key = auth_api::accounts::create_admin_key(&users, "support").await.unwrap();
        for name in ["ann", "bob", "bea", "cid", "ben"] {
            app.signed_up(&format!("{name}@example.com")).await;
        }
        let page = |query: String| {
            let (app, key) = (&app, key.clone());
            async move { content(admin_get(app, &format!("/admin/users?{query}"), Some(&key)).await).await }
        };
        let emails = |page: &Value| -> Vec<String> {
            page["users"].as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap().to_string()).collect()
        };
        let first = page("limit=2".into()).await;
        assert_eq!(emails(&first), ["ann@example.com", "bob@example.com"]);
        // Users added meanwhile come at the end: the next page is what it was.
        app.signed_up("aaron@example.com").await;
        let second = page(format!("limit=2&after={}", first["next"].as_str().unwrap())).await;
        assert_eq!(emails(&second), ["bea@example.com", "cid@example.com"]);
        let third = page(format!("limit=2&after={}", second["next"].as_str().unwrap())).await;
        assert_eq!(emails(&third), ["ben@example.com", "aaron@example.com"]);
        let last = page(format!("limit=2&after={}", third["next"].as_str().unwrap())).await;
        assert_eq!(emails(&last), Vec::<String>::new());
        assert_eq!(last["next"], Value::Null);
        // Search by prefix (letters in any case), verification and second factor.
        assert_eq!(emails(&page("email_prefix=B".into()).await), ["bob@example.com", "bea@example.com", "ben@example.com"]);
        assert_eq!(emails(&page("email_prefix=be&verified=false&mfa=false".into()).await), ["bea@example.com", "ben@example.com"]);
        assert_eq!(emails(&page("verified=true".into()).await), Vec::<String>::new());
        assert_eq!(emails(&page("email_prefix=%25".into()).await), Vec::<String>::new(), "a % is a character, not a wildcard");
        for bad in ["limit=0", "limit=101", "verified=maybe", "after=nope"] {
            assert_error(admin_get(&app, &format!("/admin/users?{bad}"), Some(&key)).await, 400, "VALIDATION_ERROR").await;
        }

        // One user: profile, sessions, passkeys and events; no hash anywhere.
        let id = emails(&first).len();
        assert_eq!(id, 2);
        let ann = first["users"][0]["id"].as_str().unwrap().to_string();
        let account = content(admin_get(&app, &format!("/admin/users/{ann}"), Some(&key)).await).await;
        assert_eq!(account["user"]["email"], json!("ann@example.com"));
        assert_eq!(account["sessions"].as_array().unwrap().len(), 1);
        assert_eq!(account["passkeys"], json!([]));
        let names: Vec<&str> = account["events"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"user.registered"), "{names:?}");
        assert!(!account.to_string().contains("argon2"), "no password hash: {account}");
        let unknown = admin_get(&app, &format!("/admin/users/{}", uuid::Uuid::now_v7()), Some(&key)).await;
        assert_error(unknown, 404, "NO_SUCH_USER").await;
        assert_error(admin_get(&app, "/admin/users/nope", Some(&key)).await, 400, "VALIDATION_ERROR").await;
    }
}

crate::case!(the_admin_listener_is_under_the_per_ip_limit);
async fn the_admin_listener_is_under_the_per_ip_limit() {
    let vars = [
        ("ADMIN_ADDR", "127.0.0.1:0"),
        ("RATE_LIMIT_PER_SECOND", "1"),
        ("RATE_LIMIT_BURST", "3"),
    ];
    let app = spawn_app_with(Backend::Embedded, &vars).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            admin_get(&app, "/admin/users", Some("aak_guess"))
                .await
                .status()
                .as_u16(),
        );
    }
    assert!(
        statuses.contains(&429),
        "guessing keys meets the per-IP limit: {statuses:?}"
    );
    assert_error(
        admin_get(&app, "/admin/users", Some("aak_guess")).await,
        429,
        "RATE_LIMITED",
    )
    .await;
}

async fn content_raw(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

crate::case!(the_admin_listener_is_off_unless_configured);
async fn the_admin_listener_is_off_unless_configured() {
    let app = spawn_app_with(Backend::Embedded, &[]).await;
    assert!(app.admin_address.is_none());
    assert_error(
        app.client.get(app.url("/admin/users")).send().await.unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;
}
