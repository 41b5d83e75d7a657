//! PostgreSQL and Redis going away: quick 503 envelopes, the process stays up, and it recovers
//! by itself. Needs the external backends (there is nothing to cut in embedded mode).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{Backend, assert_error, expect_tokens, external_urls, spawn_app_proxied, spawn_app_with};
use crate::proxy::{Proxy, upstream_of};

/// An app whose PostgreSQL and Redis traffic goes through proxies the test can cut.
async fn app_behind_proxies() -> (crate::helpers::TestApp, Proxy, Proxy) {
    let (pg, redis) = external_urls().unwrap();
    let pg_proxy = Proxy::start(upstream_of(&pg).await).await;
    let redis_proxy = Proxy::start(upstream_of(&redis).await).await;
    let app = spawn_app_proxied(pg_proxy.addr, redis_proxy.addr, &[("STORE_TIMEOUT_MS", "500")]).await;
    (app, pg_proxy, redis_proxy)
}

crate::case!(redis_outage_answers_503_then_recovers needs External);
async fn redis_outage_answers_503_then_recovers() {
    let (app, _pg, redis) = app_behind_proxies().await;
    let tokens = app.signed_up("outage@example.com").await;

    redis.cut();
    let body = quick_503(app.refresh(&tokens.refresh), "session_store").await;
    assert_eq!(body["content"]["error_type"], "CritError");
    let ready = app.get("/health/ready").await;
    let ready = assert_error(ready, 503, "SERVICE_UNAVAILABLE").await;
    assert_eq!(ready["content"]["dependency"], "session_store");
    assert_eq!(app.get("/health/live").await.status(), 200, "the process stays up");

    redis.restore();
    let renewed = recover(|| app.refresh(&tokens.refresh)).await;
    let renewed = expect_tokens(renewed).await;
    assert_eq!(app.me(&renewed.access).await.status(), 200);
}

crate::case!(postgres_outage_answers_503_then_recovers needs External);
async fn postgres_outage_answers_503_then_recovers() {
    let (app, pg, _redis) = app_behind_proxies().await;
    let tokens = app.signed_up("pgdown@example.com").await;

    pg.cut();
    let body = quick_503(app.me(&tokens.access), "database").await;
    let text = body.to_string();
    assert!(
        !text.contains("127.0.0.1") && !text.contains("postgres"),
        "no internals: {text}"
    );
    let login = app.login("pgdown@example.com", "correct horse battery").await;
    assert_error(login, 503, "SERVICE_UNAVAILABLE").await;

    pg.restore();
    let me = recover(|| app.me(&tokens.access)).await;
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["content"]["email"], "pgdown@example.com");
}

crate::case!(closed_ports_make_readiness_fail_but_not_the_process needs External);
async fn closed_ports_make_readiness_fail_but_not_the_process() {
    // A port that was just free: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let app = spawn_app_with(
        Backend::External,
        &[("STORE_TIMEOUT_MS", "300"), ("REDIS_URL", &format!("redis://{closed}"))],
    )
    .await;
    let ready = assert_error(app.get("/health/ready").await, 503, "SERVICE_UNAVAILABLE").await;
    assert_eq!(ready["content"]["dependency"], "session_store");
    let register = app
        .register("Nobody", "nobody@example.com", "correct horse battery")
        .await;
    assert_error(register, 503, "SERVICE_UNAVAILABLE").await;
    assert_eq!(app.get("/").await.status(), 200);
}

/// Asserts that `request` answers the 503 envelope naming `dependency`, within 3 s.
async fn quick_503(request: impl std::future::Future<Output = reqwest::Response>, dependency: &str) -> Value {
    let started = Instant::now();
    let body = assert_error(request.await, 503, "SERVICE_UNAVAILABLE").await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "503 comes quickly, took {took:?}");
    assert_eq!(body["content"]["dependency"], dependency);
    body
}

/// Retries `call` until it answers 200 (recovery is not instantaneous: pools must redial).
async fn recover<F, Fut>(call: F) -> reqwest::Response
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = reqwest::Response>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = call().await;
        if response.status() == 200 || Instant::now() > deadline {
            assert_eq!(response.status(), 200, "did not recover within 10 s");
            return response;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
