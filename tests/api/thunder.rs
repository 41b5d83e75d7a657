//! The seed's Thunder Client collection, request for request (extras/thunder-collection.json).

use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{refresh_cookie, spawn_app};

backend_tests! {
    async fn the_five_seed_requests_work(backend: Backend) {
        let app = spawn_app(backend).await;
        // 0. Ping
        assert_eq!(app.get("/").await.status(), 200);
        // 1. Register
        let register = app
            .post_json("/auth/register", &json!({"username":"John Doe","email":"johndoe@gmail.com","password":"fishcake"}))
            .await;
        assert_eq!(register.status(), 200);
        let body: Value = register.json().await.unwrap();
        assert_eq!(body["content"]["user"]["username"], "John Doe");
        assert_eq!(body["content"]["user"]["email"], "johndoe@gmail.com");
        // 2. Login
        let login = app.post_json("/auth/login", &json!({"email":"johndoe@gmail.com","password":"fishcake"})).await;
        assert_eq!(login.status(), 200);
        let refresh = refresh_cookie(&login).expect("login sets the jwt cookie");
        let body: Value = login.json().await.unwrap();
        let access = body["content"]["access_token"].as_str().unwrap().to_string();
        // 3. Me, with the bearer token
        let me = app.client.get(app.url("/auth/me")).header("Authorization", format!("Bearer {access}")).send().await.unwrap();
        assert_eq!(me.status(), 200);
        let body: Value = me.json().await.unwrap();
        assert_eq!(body["content"]["email"], "johndoe@gmail.com");
        // 4. Refresh, with the collection's Cookie header, attribute junk included.
        let refreshed = app
            .client
            .get(app.url("/auth/refreshAccessToken"))
            .header("Cookie", format!("jwt={refresh}; HttpOnly; Secure; Max-Age=172800"))
            .send()
            .await
            .unwrap();
        assert_eq!(refreshed.status(), 200);
        let rotated = refresh_cookie(&refreshed).expect("a rotated cookie");
        assert_ne!(rotated, refresh);
        let body: Value = refreshed.json().await.unwrap();
        assert!(body["content"]["access_token"].as_str().is_some_and(|t| t != access));
    }
}
