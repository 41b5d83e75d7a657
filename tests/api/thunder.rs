//! Replays the request collections of `extras/` request for request, on a fresh service, as
//! their clients would: extras/thunder-collection.json (the seed's five, Ping, Register, Login,
//! Me, Refresh with its junk-attribute Cookie header, and ours after them) and
//! extras/requests.http (top to bottom, with a cookie jar, tokens pasted from the mails).

use serde_json::Value;

use crate::account_mail::spawn_with_mail;
use crate::backend_tests;
use crate::helpers::{refresh_cookie, set_cookie, spawn_app};
use crate::mail_server::{MailServer, RESET, VERIFY};

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

    #[needs(Smtp)]
    async fn the_http_file_runs_top_to_bottom(backend: Backend) {
        let smtp = MailServer::start(None).await;
        let app = spawn_with_mail(backend, &smtp, &[]).await;
        let file = include_str!("../../extras/requests.http");
        let host = file.lines().find_map(|l| l.strip_prefix("@host = ")).unwrap();
        let mut named: Vec<(String, Value)> = Vec::new();
        let mut jar: Option<String> = None;
        let mut ran = 0;
        for block in file.split("\n###").skip(1) {
            let mut lines = block.lines();
            let title = lines.next().unwrap().trim().to_string();
            let mut name = None;
            let mut request_line = None;
            for line in lines.by_ref() {
                if let Some(n) = line.strip_prefix("# @name ") {
                    name = Some(n.trim().to_string());
                } else if !line.starts_with('#') && !line.trim().is_empty() {
                    request_line = Some(line.to_string());
                    break;
                }
            }
            let fill = |text: &str| -> String {
                let mut text = text.replace("{{host}}", &app.address).replace(host, &app.address);
                for (n, body) in &named {
                    let marker = format!("{{{{{n}.response.body.content.access_token}}}}");
                    text = text.replace(&marker, body["content"]["access_token"].as_str().unwrap_or(""));
                }
                text
            };
            let (method, url) = request_line.as_deref().unwrap().split_once(' ').unwrap();
            let mut builder = app.client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), fill(url));
            let mut body = String::new();
            let mut in_body = false;
            for line in lines {
                if in_body {
                    body.push_str(line);
                } else if line.trim().is_empty() {
                    in_body = true;
                } else if let Some((k, v)) = line.split_once(": ") {
                    builder = builder.header(k, fill(v));
                }
            }
            // The user pastes the token of the mailed link.
            if body.contains("PASTE-THE-TOKEN-FROM-THE-LINK") {
                let token = if url.ends_with("/auth/password/reset") {
                    smtp.nth("johndoe@gmail.com", RESET, 1).await.token("reset-password")
                } else {
                    smtp.nth("johndoe@gmail.com", VERIFY, 1).await.token("verify-email")
                };
                body = body.replace("PASTE-THE-TOKEN-FROM-THE-LINK", &token);
            }
            if !body.trim().is_empty() {
                builder = builder.body(fill(body.trim()));
            }
            if let Some(cookie) = &jar {
                builder = builder.header("Cookie", format!("jwt={cookie}"));
            }
            let response = builder.send().await.unwrap();
            let status = response.status();
            if let Some(set) = set_cookie(&response) {
                jar = refresh_cookie(&response).filter(|v| !v.is_empty() && !set.contains("Max-Age=0"));
            }
            let answer: Value = response.json().await.unwrap();
            assert!(status.is_success() && answer["success"] == true, "{title}: {status} {answer}");
            if let Some(name) = name {
                named.push((name, answer));
            }
            ran += 1;
        }
        assert_eq!(ran, 17, "every request of the file ran");
    }
}
