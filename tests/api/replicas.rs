//! Three instances on one PostgreSQL + Redis, as a Deployment runs them: what one instance does
//! the others see, and restarting them one at a time under load fails no request.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::binary::{Running, start_server};
use crate::helpers::{
    Backend, Storage, TEST_SECRET, TestApp, assert_error, expect_tokens, refresh_cookie, spawn_app_with, spawn_sibling,
};

/// Three instances sharing the stores of the first, with `vars` on each.
async fn three(vars: &[(&str, &str)]) -> [TestApp; 3] {
    let a = spawn_app_with(Backend::External, vars).await;
    let b = spawn_sibling(&a, vars).await;
    let c = spawn_sibling(&a, vars).await;
    [a, b, c]
}

/// Waits until the window in which another instance may still answer from memory is over.
async fn past_the_cache_window(since: Instant) {
    let window = Duration::from_millis(1000) + Duration::from_millis(30);
    tokio::time::sleep(window.saturating_sub(since.elapsed())).await;
}

crate::case!(a_revoked_session_is_refused_by_every_instance_within_the_cache_window needs External);
async fn a_revoked_session_is_refused_by_every_instance_within_the_cache_window() {
    let [a, b, c] = three(&[("SESSION_CACHE_MS", "1000")]).await;
    let tokens = a.signed_up("revoked@example.com").await;
    for app in [&a, &b, &c] {
        assert_eq!(
            app.me(&tokens.access).await.status(),
            200,
            "each instance now remembers it"
        );
    }
    assert_eq!(a.logout(&tokens.refresh).await.status(), 200);
    let revoked = Instant::now();
    // The instance that revoked it forgets it at once.
    assert_error(a.me(&tokens.access).await, 401, "INVALID_ACCESS_TOKEN").await;
    past_the_cache_window(revoked).await;
    for app in [&b, &c] {
        assert_error(app.me(&tokens.access).await, 401, "INVALID_ACCESS_TOKEN").await;
    }

    // Eviction by a login on another instance (one session per user by default).
    let first = expect_tokens(b.login("revoked@example.com", "correct horse battery").await).await;
    for app in [&a, &b, &c] {
        assert_eq!(app.me(&first.access).await.status(), 200);
    }
    let second = expect_tokens(c.login("revoked@example.com", "correct horse battery").await).await;
    let evicted = Instant::now();
    assert_eq!(a.me(&second.access).await.status(), 200);
    past_the_cache_window(evicted).await;
    for app in [&a, &b, &c] {
        assert_error(app.me(&first.access).await, 401, "INVALID_ACCESS_TOKEN").await;
    }
}

crate::case!(a_changed_or_deleted_user_is_not_served_stale_past_the_window needs External);
async fn a_changed_or_deleted_user_is_not_served_stale_past_the_window() {
    let [a, b, c] = three(&[("SESSION_CACHE_MS", "1000")]).await;
    let tokens = a.signed_up("edited@example.com").await;
    for app in [&a, &b, &c] {
        assert_eq!(app.me(&tokens.access).await.status(), 200);
    }
    // Changed behind the service's back, as an operator's SQL would.
    let mut db = PgConnection::connect(a.database_url.as_deref().unwrap()).await.unwrap();
    sqlx::query("update users set username = 'renamed' where email = 'edited@example.com'")
        .execute(&mut db)
        .await
        .unwrap();
    let changed = Instant::now();
    past_the_cache_window(changed).await;
    for app in [&a, &b, &c] {
        let me: Value = app.me(&tokens.access).await.json().await.unwrap();
        assert_eq!(me["content"]["username"], "renamed");
    }
    sqlx::query("delete from users where email = 'edited@example.com'")
        .execute(&mut db)
        .await
        .unwrap();
    let deleted = Instant::now();
    past_the_cache_window(deleted).await;
    for app in [&a, &b, &c] {
        assert_error(app.me(&tokens.access).await, 401, "INVALID_ACCESS_TOKEN").await;
        assert_error(app.sessions(&tokens.access).await, 401, "INVALID_ACCESS_TOKEN").await;
        assert_error(app.refresh(&tokens.refresh).await, 401, "INVALID_REFRESH_TOKEN").await;
    }
}

crate::case!(sessions_refresh_anywhere_and_fifty_racing_refreshes_leave_one_successor needs External);
async fn sessions_refresh_anywhere_and_fifty_racing_refreshes_leave_one_successor() {
    let [a, b, c] = three(&[]).await;
    let tokens = a.signed_up("replicas@example.com").await;
    let on_b = expect_tokens(b.refresh(&tokens.refresh).await).await;
    let on_c = expect_tokens(c.refresh(&on_b.refresh).await).await;
    assert_eq!(a.me(&on_c.access).await.status(), 200);

    let apps = [&a, &b, &c];
    let responses = join_all((0..50).map(|i| apps[i % 3].refresh(&on_c.refresh))).await;
    let mut successors = HashSet::new();
    for response in &responses {
        match response.status().as_u16() {
            200 => {
                successors.insert(refresh_cookie(response).unwrap());
            }
            401 => {}
            other => panic!("a racing refresh answered {other}"),
        }
    }
    assert_eq!(successors.len(), 1, "every winner holds the same successor");
    let successor = successors.into_iter().next().unwrap();
    let next = expect_tokens(c.refresh(&successor).await).await;
    let listed: Value = b.sessions(&next.access).await.json().await.unwrap();
    assert_eq!(
        listed["content"].as_array().unwrap().len(),
        1,
        "exactly one live session"
    );
}

crate::case!(the_account_lockout_counts_across_all_three needs External);
async fn the_account_lockout_counts_across_all_three() {
    let vars = [("LOGIN_MAX_FAILURES", "3"), ("LOGIN_LOCKOUT", "60")];
    let [a, b, c] = three(&vars).await;
    a.signed_up("locked@example.com").await;
    for app in [&a, &b, &c] {
        assert_error(
            app.login("locked@example.com", "guess guess guess").await,
            401,
            "USER_NOT_FOUND",
        )
        .await;
    }
    for app in [&a, &b, &c] {
        assert_error(
            app.login("locked@example.com", "correct horse battery").await,
            429,
            "ACCOUNT_LOCKED",
        )
        .await;
    }
}

/// A load balancer in front of the instances: round robin over those whose readiness answered
/// 200 at its last check (every 50 ms), as a Kubernetes Service routes to ready pods.
struct Balancer {
    backends: Mutex<Vec<(String, bool)>>,
    next: AtomicUsize,
}

impl Balancer {
    fn pick(&self) -> Option<String> {
        let backends = self.backends.lock().unwrap();
        let ready: Vec<&String> = backends.iter().filter(|(_, ready)| *ready).map(|(a, _)| a).collect();
        (!ready.is_empty()).then(|| ready[self.next.fetch_add(1, Ordering::Relaxed) % ready.len()].clone())
    }

    async fn check_forever(self: Arc<Self>, client: reqwest::Client) {
        loop {
            let addresses: Vec<String> = self.backends.lock().unwrap().iter().map(|(a, _)| a.clone()).collect();
            for address in addresses {
                let ready = client
                    .get(format!("{address}/health/ready"))
                    .timeout(Duration::from_millis(500))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                for backend in self.backends.lock().unwrap().iter_mut() {
                    if backend.0 == address {
                        backend.1 = ready;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One client of the load: sign in, then /auth/me, refreshing every few calls; every answer
/// that is not a 2xx, or a request that did not get through, is a failure.
async fn client_loop(
    balancer: Arc<Balancer>,
    http: reqwest::Client,
    email: String,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
) {
    let fail = |what: String| failures.lock().unwrap().push(what);
    let address = balancer.pick().unwrap();
    let body = json!({"username": "Rolling User", "email": email, "password": "correct horse battery"});
    let response = http
        .post(format!("{address}/auth/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let mut tokens = expect_tokens(response).await;
    let mut i = 0u32;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let Some(address) = balancer.pick() else {
            fail("no ready instance".into());
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let request = if i.is_multiple_of(8) {
            http.get(format!("{address}/auth/refreshAccessToken"))
                .header("Cookie", format!("jwt={}", tokens.refresh))
        } else {
            http.get(format!("{address}/auth/me")).bearer_auth(&tokens.access)
        };
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                if i.is_multiple_of(8) {
                    tokens = expect_tokens(response).await;
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(response) => fail(format!("{address}: {}", response.status())),
            Err(e) => fail(format!("{address}: {e}")),
        }
    }
}

crate::case!(multi a_rolling_restart_under_load_fails_no_request needs External);
async fn a_rolling_restart_under_load_fails_no_request() {
    let storage = Storage::create(Backend::External).await;
    let mut env: Vec<(String, String)> = storage.env.clone();
    for (k, v) in [
        ("ACCESS_TOKEN_SECRET", TEST_SECRET),
        ("SHUTDOWN_DELAY", "1"),
        ("SHUTDOWN_TIMEOUT", "10"),
        ("MAX_SESSIONS_PER_USER", "10"),
    ] {
        env.push((k.into(), v.into()));
    }
    let start = |env: Vec<(String, String)>| {
        tokio::task::spawn_blocking(move || {
            let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            start_server(&vars)
        })
    };
    let mut servers: Vec<Running> = Vec::new();
    for _ in 0..3 {
        servers.push(start(env.clone()).await.unwrap());
    }
    let http = reqwest::Client::new();
    let balancer = Arc::new(Balancer {
        backends: Mutex::new(servers.iter().map(|s| (s.address(), false)).collect()),
        next: AtomicUsize::new(0),
    });
    let checker = tokio::spawn(balancer.clone().check_forever(http.clone()));
    while balancer.backends.lock().unwrap().iter().any(|(_, ready)| !ready) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let clients: Vec<_> = (0..6)
        .map(|i| {
            tokio::spawn(client_loop(
                balancer.clone(),
                http.clone(),
                format!("rolling{i}@example.com"),
                stop.clone(),
                done.clone(),
                failures.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    for (i, slot) in servers.iter_mut().enumerate() {
        let before = done.load(Ordering::Relaxed);
        let mut old = std::mem::replace(slot, start(env.clone()).await.unwrap());
        let replacement = slot.address();
        balancer.backends.lock().unwrap().push((replacement.clone(), false));
        while !balancer
            .backends
            .lock()
            .unwrap()
            .iter()
            .any(|(a, ready)| *a == replacement && *ready)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // SIGTERM: readiness turns 503, the balancer stops sending, in-flight requests finish.
        let exited = tokio::task::spawn_blocking(move || {
            old.stop();
            old
        });
        let old = exited.await.unwrap();
        balancer.backends.lock().unwrap().retain(|(a, _)| *a != old.address());
        let logs = old.logs.lock().unwrap().join("\n");
        assert!(
            logs.contains("not ready; serving on"),
            "readiness turned 503 first:\n{logs}"
        );
        assert!(!logs.contains("\"level\":\"ERROR\""), "{logs}");
        assert!(
            done.load(Ordering::Relaxed) > before,
            "the load kept running through restart {i}"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    checker.abort();
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed requests: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(
        done.load(Ordering::Relaxed) > 100,
        "the load ran: {} requests",
        done.load(Ordering::Relaxed)
    );
}
