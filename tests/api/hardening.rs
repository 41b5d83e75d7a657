//! CORS, CSRF, rate limits behind proxies, account lockout across replicas, revocation of
//! access tokens, security headers, and connection limits.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{
    Backend, TEST_SECRET, TestApp, assert_error, expect_tokens, spawn_app, spawn_app_with, spawn_for_timeline,
    spawn_sibling,
};

const SPA: &str = "https://app.example.com";
const PASSWORD: &str = "correct horse battery";

async fn refresh_from(app: &TestApp, token: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/auth/refreshAccessToken"))
        .header("Cookie", format!("jwt={token}"));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.unwrap()
}

backend_tests! {
    async fn cors_allows_exactly_the_listed_origins(backend: Backend) {
        let app = spawn_app_with(backend, &[("CORS_ALLOWED_ORIGINS", SPA)]).await;
        let preflight = |origin: &'static str| {
            app.client
                .request(reqwest::Method::OPTIONS, app.url("/auth/refreshAccessToken"))
                .header("Origin", origin)
                .header("Access-Control-Request-Method", "POST")
                .send()
        };
        let allowed = preflight(SPA).await.unwrap();
        let headers = allowed.headers();
        assert_eq!(headers["access-control-allow-origin"], SPA);
        assert_eq!(headers["access-control-allow-credentials"], "true");
        assert_eq!(headers["access-control-max-age"], "600");
        let other = preflight("https://evil.example").await.unwrap();
        assert!(other.headers().get("access-control-allow-origin").is_none(), "no ACAO on a foreign preflight");
        assert_eq!(other.headers()["x-content-type-options"], "nosniff", "security headers on the refusal");
        assert_error(other, 403, "CORS_REJECTED").await;
        let real = app.client.get(app.url("/")).header("Origin", "https://evil.example").send().await.unwrap();
        assert!(real.headers().get("access-control-allow-origin").is_none(), "no ACAO on a foreign request");
        let real = app.client.get(app.url("/")).header("Origin", SPA).send().await.unwrap();
        assert_eq!(real.headers()["access-control-allow-origin"], SPA);
        let exposed = real.headers()["access-control-expose-headers"].to_str().unwrap().to_ascii_lowercase();
        assert!(exposed.contains("traceresponse") && exposed.contains("ratelimit-remaining"), "{exposed}");
    }

    async fn cookie_routes_refuse_cross_site_requests(backend: Backend) {
        let app = spawn_app_with(backend, &[("CORS_ALLOWED_ORIGINS", SPA)]).await;
        let tokens = app.signed_up("csrf@example.com").await;
        let own_origin = app.address.clone();
        // (request headers, whether the refresh is allowed, what it proves)
        type Case<'a> = (Vec<(&'a str, &'a str)>, bool, &'a str);
        let cases: Vec<Case> = vec![
            (vec![("Origin", "https://evil.example")], false, "foreign Origin"),
            (vec![("Origin", "null")], false, "opaque Origin"),
            (vec![("Sec-Fetch-Site", "cross-site")], false, "cross-site fetch without Origin"),
            (vec![], true, "no browser headers (curl, Thunder)"),
            (vec![("Sec-Fetch-Site", "same-origin")], true, "same-origin fetch"),
            (vec![("Sec-Fetch-Site", "none")], true, "user-initiated navigation"),
            (vec![("Origin", SPA)], true, "allowed SPA origin"),
            (vec![("Origin", own_origin.as_str())], true, "the service's own origin"),
        ];
        let mut token = tokens.refresh.clone();
        for (headers, allowed, why) in cases {
            let response = refresh_from(&app, &token, &headers).await;
            if allowed {
                token = expect_tokens(response).await.refresh;
            } else {
                let body = assert_error(response, 403, "CSRF_REJECTED").await;
                assert_eq!(body["content"]["error_type"], "AuthError", "{why}");
            }
        }
        let logout = app.client.post(app.url("/auth/logout")).header("Cookie", format!("jwt={token}"))
            .header("Origin", "https://evil.example").send().await.unwrap();
        assert_error(logout, 403, "CSRF_REJECTED").await;
        expect_tokens(refresh_from(&app, &token, &[]).await).await;
    }

    async fn the_auth_limit_answers_429_and_spares_health_routes(backend: Backend) {
        let app = spawn_app_with(backend, &[("RATE_LIMIT_AUTH_PER_MINUTE", "3")]).await;
        for _ in 0..3 {
            assert_error(app.login("nobody@example.com", "not the password").await, 401, "USER_NOT_FOUND").await;
        }
        let limited = app.login("nobody@example.com", "not the password").await;
        let headers = limited.headers().clone();
        let body = assert_error(limited, 429, "RATE_LIMITED").await;
        assert_eq!(body["content"]["error_type"], "UserError");
        let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=20).contains(&retry_after), "one token per 20 s: {retry_after}");
        assert_eq!(headers["ratelimit-limit"], "3");
        assert_eq!(headers["ratelimit-remaining"], "0");
        assert!(headers.contains_key("ratelimit-reset"));
        // Refresh shares the credential budget; the other routes do not.
        assert_error(app.refresh("garbage").await, 429, "RATE_LIMITED").await;
        for path in ["/", "/health/live", "/health/ready", "/auth/me"] {
            assert_ne!(app.get(path).await.status(), 429, "{path} is not behind the auth limit");
        }
    }

    async fn the_general_limit_covers_api_routes_but_not_probes(backend: Backend) {
        let app = spawn_app_with(backend, &[("RATE_LIMIT_PER_SECOND", "1"), ("RATE_LIMIT_BURST", "2")]).await;
        let statuses = futures_util::future::join_all((0..4).map(|_| app.get("/auth/me"))).await;
        assert!(statuses.iter().any(|r| r.status() == 429), "the third request in a second is limited");
        assert_error(app.get("/nope").await, 429, "RATE_LIMITED").await;
        for _ in 0..5 {
            assert_eq!(app.get("/health/live").await.status(), 200);
            assert_eq!(app.get("/").await.status(), 200);
        }
    }

    async fn accounts_lock_after_repeated_failures_known_or_not(backend: Backend) {
        let app = spawn_for_timeline(backend, &[("LOGIN_MAX_FAILURES", "3"), ("LOGIN_LOCKOUT", "2")]).await;
        app.signed_up("victim@example.com").await;
        for email in ["victim@example.com", "ghost@example.com"] {
            for _ in 0..3 {
                assert_error(app.login(email, "guess guess guess").await, 401, "USER_NOT_FOUND").await;
            }
        }
        // Locked: even the right password, and an unknown email answers exactly the same.
        let right = app.login("VICTIM@example.com", PASSWORD).await;
        let retry: u64 = right.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=2).contains(&retry), "{retry}");
        let (a, b) = (right.bytes().await.unwrap(), app.login("ghost@example.com", PASSWORD).await.bytes().await.unwrap());
        assert_eq!(a, b, "locked known and unknown accounts are indistinguishable");
        let body: Value = serde_json::from_slice(&a).unwrap();
        assert_eq!(body["content"]["error_code"], "ACCOUNT_LOCKED");
        app.wait(Duration::from_millis(2100)).await;
        expect_tokens(app.login("victim@example.com", PASSWORD).await).await;
        // Success reset the count: one failure is a plain 401 again.
        assert_error(app.login("victim@example.com", "guess guess guess").await, 401, "USER_NOT_FOUND").await;
        assert_error(app.login("victim@example.com", "guess guess guess").await, 401, "USER_NOT_FOUND").await;
    }

    async fn revoked_sessions_stop_their_access_tokens_at_once(backend: Backend) {
        let app = spawn_app_with(backend, &[("MAX_SESSIONS_PER_USER", "3")]).await;
        let first = app.signed_up("revoke@example.com").await;
        let second = expect_tokens(app.login("revoke@example.com", PASSWORD).await).await;
        assert_eq!(app.me(&first.access).await.status(), 200);
        assert_eq!(app.logout(&first.refresh).await.status(), 200);
        assert_error(app.me(&first.access).await, 401, "INVALID_ACCESS_TOKEN").await;
        assert_eq!(app.me(&second.access).await.status(), 200, "other sessions are untouched");
        let all = app.client.delete(app.url("/auth/sessions")).bearer_auth(&second.access).send().await.unwrap();
        assert_eq!(all.status(), 200);
        assert_error(app.me(&second.access).await, 401, "INVALID_ACCESS_TOKEN").await;
    }

    async fn jwt_attack_table(backend: Backend) {
        let app = spawn_app(backend).await;
        let tokens = app.signed_up("jwt@example.com").await;
        let me: Value = app.me(&tokens.access).await.json().await.unwrap();
        let sub = me["content"]["id"].as_str().unwrap().to_string();
        let (_, payload, _) = split(&tokens.access);
        let claims: Value = serde_json::from_slice(&b64(payload)).unwrap();
        let now = jsonwebtoken::get_current_timestamp();
        let with = |patch: Value| {
            let mut c = claims.clone();
            for (k, v) in patch.as_object().unwrap() {
                if v.is_null() { c.as_object_mut().unwrap().remove(k); } else { c[k] = v.clone(); }
            }
            c
        };
        let sign = |header: Header, claims: &Value, key: &str| {
            jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(key.as_bytes())).unwrap()
        };
        let typed = |mutate: fn(&mut Header)| {
            let mut h = Header::new(Algorithm::HS256);
            h.typ = Some("at+jwt".into());
            mutate(&mut h);
            h
        };
        let none_alg = format!("{}.{}.", enc(br#"{"alg":"none","typ":"at+jwt"}"#), payload);
        let cases: Vec<(String, &str, &str)> = vec![
            (none_alg, "INVALID_ACCESS_TOKEN", "alg none"),
            (sign(typed(|_| {}), &claims, "attacker-key-attacker-key-attacker!!"), "INVALID_ACCESS_TOKEN", "wrong key"),
            (sign(typed(|_| {}), &with(json!({"nbf": now + 600})), TEST_SECRET), "INVALID_ACCESS_TOKEN", "nbf in the future"),
            (sign(typed(|_| {}), &with(json!({"exp": null})), TEST_SECRET), "INVALID_ACCESS_TOKEN", "no exp"),
            (sign(typed(|_| {}), &with(json!({"exp": now - 60})), TEST_SECRET), "EXPIRED_ACCESS_TOKEN", "expired"),
            (sign(typed(|_| {}), &with(json!({"sub": uuid::Uuid::now_v7()})), TEST_SECRET), "INVALID_ACCESS_TOKEN", "unknown subject"),
            (sign(typed(|_| {}), &with(json!({"sid": uuid::Uuid::now_v7()})), TEST_SECRET), "INVALID_ACCESS_TOKEN", "unknown session"),
            (sign(typed(|h| h.jku = Some("https://evil.example/jwks".into())), &claims, "attacker-key-attacker-key-attacker!!"), "INVALID_ACCESS_TOKEN", "jku to an attacker key set"),
            (sign(typed(|h| h.kid = Some("../../attacker".into())), &claims, "attacker-key-attacker-key-attacker!!"), "INVALID_ACCESS_TOKEN", "kid naming another key"),
            (tokens.refresh.clone(), "INVALID_ACCESS_TOKEN", "refresh token as access token"),
            ("x".repeat(9000), "INVALID_ACCESS_TOKEN", "over 8 KiB"),
        ];
        for (token, code, why) in cases {
            let response = app.me(&token).await;
            assert_eq!(response.status(), 401, "{why}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["content"]["error_code"], code, "{why}");
        }
        // With the one shared secret a `kid` is ignored: the right key still verifies it. A header
        // that points at a key elsewhere is refused even when the signature is right.
        let ignored = sign(typed(|h| h.kid = Some("k1".into())), &claims, TEST_SECRET);
        assert_eq!(app.me(&ignored).await.status(), 200);
        let pointing = sign(typed(|h| h.jku = Some("https://evil.example".into())), &claims, TEST_SECRET);
        assert_error(app.me(&pointing).await, 401, "INVALID_ACCESS_TOKEN").await;
        assert_eq!(sub, claims["sub"]);
    }

    async fn every_response_carries_the_security_headers(backend: Backend) {
        let app = spawn_app(backend).await;
        let tokens = app.signed_up("headers@example.com").await;
        let responses = vec![app.get("/").await, app.get("/nope").await, app.me(&tokens.access).await, app.refresh(&tokens.refresh).await];
        for response in responses {
            let h = response.headers();
            assert_eq!(h["x-content-type-options"], "nosniff");
            assert_eq!(h["referrer-policy"], "no-referrer");
            assert_eq!(h["x-frame-options"], "DENY");
            assert_eq!(h["cache-control"], "no-store");
        }
    }
}

fn split(token: &str) -> (&str, &str, &str) {
    let mut parts = token.split('.');
    (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap())
}

fn b64(part: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()
}

fn enc(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

crate::case!(client_ips_come_from_trusted_proxies_only);
async fn client_ips_come_from_trusted_proxies_only() {
    let app = spawn_app_with(
        Backend::Embedded,
        &[("RATE_LIMIT_AUTH_PER_MINUTE", "1"), ("TRUSTED_PROXIES", "127.0.0.1/32")],
    )
    .await;
    let login = |xff: &'static str| {
        app.client
            .post(app.url("/auth/login"))
            .header("X-Forwarded-For", xff)
            .json(&json!({"email": "nobody@example.com", "password": "whatever12"}))
            .send()
    };
    assert_eq!(login("198.51.100.1").await.unwrap().status(), 401, "first client");
    assert_eq!(
        login("198.51.100.2").await.unwrap().status(),
        401,
        "another client has its own budget"
    );
    assert_eq!(
        login("6.6.6.6, 198.51.100.1").await.unwrap().status(),
        429,
        "a forged left-most value does not buy a new budget"
    );
    let app = spawn_app_with(Backend::Embedded, &[("RATE_LIMIT_AUTH_PER_MINUTE", "1")]).await;
    let login = |xff: &'static str| {
        app.client
            .post(app.url("/auth/login"))
            .header("X-Forwarded-For", xff)
            .json(&json!({"email": "nobody@example.com", "password": "whatever12"}))
            .send()
    };
    assert_eq!(login("198.51.100.1").await.unwrap().status(), 401);
    assert_eq!(
        login("198.51.100.2").await.unwrap().status(),
        429,
        "no trusted proxy: the header is ignored"
    );
}

crate::case!(the_account_limit_holds_across_two_instances_sharing_redis needs External);
async fn the_account_limit_holds_across_two_instances_sharing_redis() {
    let a = spawn_app_with(
        Backend::External,
        &[("LOGIN_MAX_FAILURES", "3"), ("LOGIN_LOCKOUT", "60")],
    )
    .await;
    let b = spawn_sibling(&a, &[("LOGIN_MAX_FAILURES", "3"), ("LOGIN_LOCKOUT", "60")]).await;
    a.signed_up("shared@example.com").await;
    assert_error(
        a.login("shared@example.com", "guess guess guess").await,
        401,
        "USER_NOT_FOUND",
    )
    .await;
    assert_error(
        b.login("shared@example.com", "guess guess guess").await,
        401,
        "USER_NOT_FOUND",
    )
    .await;
    assert_error(
        a.login("shared@example.com", "guess guess guess").await,
        401,
        "USER_NOT_FOUND",
    )
    .await;
    assert_error(b.login("shared@example.com", PASSWORD).await, 429, "ACCOUNT_LOCKED").await;
    assert_error(a.login("shared@example.com", PASSWORD).await, 429, "ACCOUNT_LOCKED").await;
}

crate::case!(slow_and_oversized_clients_are_cut_off);
/// Raw connections against the limits on heads, bodies and idle time.
async fn slow_and_oversized_clients_are_cut_off() {
    let app = spawn_app_with(
        Backend::Embedded,
        &[("CLIENT_HEADER_TIMEOUT", "1"), ("REQUEST_TIMEOUT", "1")],
    )
    .await;
    let addr = app.address.trim_start_matches("http://").to_string();
    // Slow loris: a head that never ends is dropped after CLIENT_HEADER_TIMEOUT.
    let started = Instant::now();
    let mut stream = raw_connection(&addr);
    stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "cut off after about a second"
    );
    assert!(
        reply.is_empty() || String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    // A body that trickles: REQUEST_TIMEOUT answers 408 in the envelope.
    let mut stream = raw_connection(&addr);
    stream.write_all(b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"em").unwrap();
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("REQUEST_TIMEOUT"), "{reply}");
    assert!(
        reply.contains("x-content-type-options: nosniff"),
        "security headers: {reply}"
    );
    // Heads over HEADER_LIMIT_BYTES get 431 in the envelope; far over actix's own buffer, the
    // connection is refused; either way the server carries on.
    let big = app
        .client
        .get(app.url("/"))
        .header("X-Big", "a".repeat(20 * 1024))
        .send()
        .await
        .unwrap();
    assert_error(big, 431, "HEADERS_TOO_LARGE").await;
    let huge = app
        .client
        .get(app.url("/"))
        .header("X-Huge", "a".repeat(256 * 1024))
        .send()
        .await;
    assert!(
        huge.map(|r| r.status().as_u16()).unwrap_or(431) >= 400,
        "a 256 KiB header is refused"
    );
    // A fresh client: the pooled connection was the one the server dropped.
    assert_eq!(reqwest::get(app.url("/")).await.unwrap().status(), 200);
}

crate::case!(idle_keep_alive_connections_are_closed);
async fn idle_keep_alive_connections_are_closed() {
    // A long head timeout, so only KEEP_ALIVE can close the idle connection.
    let app = spawn_app_with(
        Backend::Embedded,
        &[("CLIENT_HEADER_TIMEOUT", "30"), ("KEEP_ALIVE", "1")],
    )
    .await;
    let addr = app.address.trim_start_matches("http://").to_string();
    // Keep-alive is bounded: an idle connection is closed after KEEP_ALIVE.
    let mut idle = raw_connection(&addr);
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let started = Instant::now();
    let mut reply = Vec::new();
    let _ = idle.read_to_end(&mut reply);
    assert!(
        String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 200"),
        "the request was answered"
    );
    let idle_for = started.elapsed();
    assert!(
        idle_for < Duration::from_secs(4),
        "the idle connection was closed after {idle_for:?}"
    );
}

/// A plain TCP connection to the app whose reads give up after 5 s.
fn raw_connection(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream
}

crate::case!(the_embedded_database_is_readable_by_its_owner_only);
async fn the_embedded_database_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let app = spawn_app(Backend::Embedded).await;
    app.signed_up("private@example.com").await;
    let db = app.sqlite_path().expect("embedded");
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(db.parent().unwrap()), 0o700, "the directory it made");
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}
