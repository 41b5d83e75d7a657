//! Replays extras/thunder-collection.json request for request: the seed's five (Ping,
//! Register, Login, Me, Refresh with its junk-attribute Cookie header) and ours after them.

use serde_json::Value;

use crate::backend_tests;
use crate::helpers::{refresh_cookie, spawn_app};

backend_tests! {
    async fn the_thunder_collection_replays_cleanly(backend: Backend) {
        let app = spawn_app(backend).await;
        let collection: Value =
            serde_json::from_str(include_str!("../../extras/thunder-collection.json")).unwrap();
        let mut vars: Vec<(String, String)> = Vec::new();
        let fill = |text: &str, vars: &[(String, String)]| {
            vars.iter().fold(text.to_string(), |t, (k, v)| t.replace(&format!("{{{{{k}}}}}"), v))
        };
        let requests = collection["requests"].as_array().unwrap();
        let names: Vec<&str> = requests.iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(names[..5], ["Ping", "Register", "Login", "Me", "Refresh"], "the seed's five come first");
        for request in requests {
            let name = request["name"].as_str().unwrap();
            let url = request["url"].as_str().unwrap().replacen("localhost:3001", &app.address, 1);
            let method = reqwest::Method::from_bytes(request["method"].as_str().unwrap().as_bytes()).unwrap();
            let mut builder = app.client.request(method, url);
            for header in request["headers"].as_array().unwrap() {
                builder = builder.header(header["name"].as_str().unwrap(), fill(header["value"].as_str().unwrap(), &vars));
            }
            if let Some(raw) = request["body"]["raw"].as_str() {
                builder = builder.header("Content-Type", "application/json").body(raw.to_string());
            }
            if let Some(bearer) = request["auth"]["bearer"].as_str() {
                builder = builder.bearer_auth(fill(bearer, &vars));
            }
            let response = builder.send().await.unwrap();
            assert_eq!(response.status(), 200, "{name}");
            let cookie = refresh_cookie(&response);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["success"], true, "{name}: {body}");
            for test in request["tests"].as_array().unwrap() {
                let var = test["value"].as_str().unwrap().trim_matches(['{', '}']).to_string();
                let value = match test["custom"].as_str().unwrap() {
                    "json.content.access_token" => body["content"]["access_token"].as_str().unwrap().to_string(),
                    "cookie.jwt" => cookie.clone().expect("a jwt cookie"),
                    other => panic!("{name}: unsupported test {other}"),
                };
                vars.retain(|(k, _)| *k != var);
                vars.push((var, value));
            }
        }
    }
}
