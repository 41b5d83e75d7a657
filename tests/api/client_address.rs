//! Whose address a request is counted and recorded under: behind a real nginx, from a client
//! that forges every forwarding header; IPv6 networks and IPv4-mapped addresses in the rate
//! limits; the CSRF check's own origin.

use std::net::IpAddr;

use reqwest::{Client, RequestBuilder};
use serde_json::{Value, json};

use crate::helpers::{Backend, assert_error, expect_tokens, spawn_app_with};
use crate::nginx::Nginx;

const PASSWORD: &str = "correct horse battery";

/// A client whose connections leave from `source`, a loopback address nginx does not share.
fn client_from(source: &str) -> Client {
    Client::builder()
        .local_address(source.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// Each forged header a client might try, with a fresh address in it.
fn forged(request: RequestBuilder, n: usize) -> RequestBuilder {
    match n % 3 {
        0 => request.header("Forwarded", format!("for=203.0.113.{n}")),
        1 => request.header("X-Forwarded-For", format!("203.0.113.{n}")),
        _ => request.header("X-Real-IP", format!("203.0.113.{n}")),
    }
}

crate::case!(behind_nginx_forged_forwarding_headers_buy_nothing needs Nginx);
async fn behind_nginx_forged_forwarding_headers_buy_nothing() {
    let own = Nginx::OWN_ADDRESS.to_string();
    let app = spawn_app_with(
        Backend::Embedded,
        &[
            ("TRUSTED_PROXIES", &format!("{own}/32")),
            ("RATE_LIMIT_AUTH_PER_MINUTE", "5"),
            ("MAX_SESSIONS_PER_USER", "10"),
        ],
    )
    .await;
    let nginx = Nginx::start(app.address.trim_start_matches("http://")).await;
    let client = client_from("127.0.0.2");

    let register = client
        .post(nginx.url("/auth/register"))
        .json(&json!({"username": "Fay", "email": "fay@example.com", "password": PASSWORD}));
    let first = expect_tokens(forged(register, 0).send().await.unwrap()).await;
    let mut statuses = Vec::new();
    for n in 1..=9 {
        let login = client
            .post(nginx.url("/auth/login"))
            .json(&json!({"email": "fay@example.com", "password": PASSWORD}));
        statuses.push(forged(login, n).send().await.unwrap().status().as_u16());
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 429, 429, 429, 429, 429],
        "one budget of 5 for the client, whatever address it claims"
    );

    let listed = forged(client.get(nginx.url("/auth/sessions")).bearer_auth(&first.access), 7);
    let listed: Value = listed.send().await.unwrap().json().await.unwrap();
    let ips: Vec<&str> = listed["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["ip"].as_str().unwrap())
        .collect();
    assert_eq!(ips, ["127.0.0.2"; 5], "the address nginx saw, never a forged one");

    // Straight to the app, the same client's headers are not believed either.
    let direct = client
        .post(app.url("/auth/login"))
        .header("X-Forwarded-For", "198.51.100.1")
        .json(&json!({"email": "fay@example.com", "password": PASSWORD}));
    assert_error(direct.send().await.unwrap(), 429, "RATE_LIMITED").await;

    // Another client behind the same nginx has a budget of its own.
    let other = client_from("127.0.0.4")
        .post(nginx.url("/auth/login"))
        .json(&json!({"email": "fay@example.com", "password": PASSWORD}));
    assert_eq!(other.send().await.unwrap().status(), 200);

    // The CSRF check's own origin is what nginx forwards: the browser's origin is same-origin.
    let refresh = client
        .post(nginx.url("/auth/refreshAccessToken"))
        .header("Origin", nginx.url(""))
        .header("Cookie", format!("jwt={}", first.refresh));
    assert_ne!(
        refresh.send().await.unwrap().status(),
        403,
        "same origin through the proxy"
    );
}

crate::case!(forwarding_headers_from_an_untrusted_peer_do_not_make_a_foreign_origin_our_own);
async fn forwarding_headers_from_an_untrusted_peer_do_not_make_a_foreign_origin_our_own() {
    let app = spawn_app_with(Backend::Embedded, &[]).await;
    let tokens = app.signed_up("csrf@example.com").await;
    for (name, value) in [
        ("X-Forwarded-Host", "evil.example"),
        ("Forwarded", "host=evil.example;proto=http"),
    ] {
        let response = app
            .client
            .post(app.url("/auth/refreshAccessToken"))
            .header("Origin", "http://evil.example")
            .header(name, value)
            .header("Cookie", format!("jwt={}", tokens.refresh))
            .send()
            .await
            .unwrap();
        assert_error(response, 403, "CSRF_REJECTED").await;
    }
}

crate::case!(an_ipv6_network_shares_one_budget_and_mapped_ipv4_is_ipv4);
async fn an_ipv6_network_shares_one_budget_and_mapped_ipv4_is_ipv4() {
    // The test client plays the trusted proxy and names the client in X-Forwarded-For.
    let app = spawn_app_with(
        Backend::Embedded,
        &[("TRUSTED_PROXIES", "127.0.0.1/32"), ("RATE_LIMIT_AUTH_PER_MINUTE", "5")],
    )
    .await;
    // A fresh address each time, so the per-account lockout never answers first.
    let attempts = std::sync::atomic::AtomicUsize::new(0);
    let login = |client: String| {
        let n = attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        app.client
            .post(app.url("/auth/login"))
            .header("X-Forwarded-For", client)
            .json(&json!({"email": format!("nobody{n}@example.com"), "password": "whatever12"}))
            .send()
    };
    let mut statuses = Vec::new();
    for n in 1..=15 {
        statuses.push(login(format!("2001:db8:1:2::{n:x}")).await.unwrap().status().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        5,
        "one /64, one budget: {statuses:?}"
    );
    assert_eq!(
        login("2001:db8:1:3::1".into()).await.unwrap().status(),
        401,
        "the next /64 is another subscriber"
    );

    let mut statuses = Vec::new();
    for n in 0..6 {
        let client = if n % 2 == 0 {
            "198.51.100.9"
        } else {
            "::ffff:198.51.100.9"
        };
        statuses.push(login(client.into()).await.unwrap().status().as_u16());
    }
    assert_eq!(
        statuses,
        [401, 401, 401, 401, 401, 429],
        "one IPv4 client, two spellings"
    );
}
