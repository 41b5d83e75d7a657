//! The seed deadlocked at two concurrent requests; these put hundreds through at once.

use std::collections::HashSet;

use futures_util::future::join_all;
use serde_json::Value;

use crate::backend_tests;
use crate::helpers::{expect_tokens, refresh_cookie, spawn_app, spawn_app_with};

backend_tests! {
    async fn fifty_concurrent_refreshes_of_one_token_never_fork(backend: Backend) {
        let app = spawn_app(backend).await;
        let tokens = app.signed_up("race@example.com").await;
        let responses = join_all((0..50).map(|_| app.refresh(&tokens.refresh))).await;
        let mut successors = HashSet::new();
        for response in &responses {
            let status = response.status().as_u16();
            assert!(status == 200 || status == 401, "no 5xx under contention, got {status}");
            if status == 200 {
                successors.insert(refresh_cookie(response).unwrap());
            }
        }
        assert_eq!(successors.len(), 1, "every winner holds the same successor");
        let successor = successors.into_iter().next().unwrap();
        let next = expect_tokens(app.refresh(&successor).await).await;
        let listed: Value = app.sessions(&next.access).await.json().await.unwrap();
        assert_eq!(listed["content"].as_array().unwrap().len(), 1, "one session left");
    }

    async fn three_hundred_concurrent_requests_with_logins_all_complete(backend: Backend) {
        // Every login opens a session: keep them all, so the /me token's session is not evicted.
        let app = spawn_app_with(backend, &[("MAX_SESSIONS_PER_USER", "1000")]).await;
        let tokens = app.signed_up("crowd@example.com").await;
        let requests = (0..300).map(|i| {
            let app = &app;
            let access = tokens.access.clone();
            async move {
                if i % 10 == 0 {
                    app.login("crowd@example.com", "correct horse battery").await.status().as_u16()
                } else {
                    app.me(&access).await.status().as_u16()
                }
            }
        });
        let statuses = tokio::time::timeout(std::time::Duration::from_secs(60), join_all(requests))
            .await
            .expect("300 requests complete (the seed deadlocked at 2)");
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    }
}

/// The backends of this app's PostgreSQL database, other than `db` itself.
async fn backend_pids(db: &mut sqlx::PgConnection) -> HashSet<i32> {
    sqlx::query_scalar(
        "select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()",
    )
    .fetch_all(db)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

crate::case!(multi clients_that_abandon_requests_midway_cost_no_connection_and_no_503 needs External);
/// Clients that send a request and hang up while its store calls run (as a load generator does
/// when it closes its connections) must not take pooled connections down with them: the pool
/// keeps its connections, and the load that follows gets no 503.
async fn clients_that_abandon_requests_midway_cost_no_connection_and_no_503() {
    use sqlx::Connection as _;
    use tokio::io::AsyncWriteExt as _;
    // Every request reads both stores; a small pool, filled first, so a lost connection shows.
    // A long keep-alive: the client's pooled connections sit idle through the churn, and one
    // the server closed at its default 5 s just as the client reused it would fail for that.
    let vars = [
        ("SESSION_CACHE_MS", "0"),
        ("DATABASE_POOL_MAX", "4"),
        ("REDIS_POOL_MAX", "4"),
        ("KEEP_ALIVE", "60"),
    ];
    let app = crate::helpers::spawn_app_with(crate::helpers::Backend::External, &vars).await;
    let tokens = app.signed_up("churn@example.com").await;
    let load = |clients: usize, each: usize| {
        join_all((0..clients).map(|_| {
            let (app, access) = (&app, tokens.access.clone());
            async move {
                let mut statuses = Vec::with_capacity(each);
                for _ in 0..each {
                    let response = app.me(&access).await;
                    let status = response.status().as_u16();
                    if status != 200 {
                        let body: Value = response.json().await.unwrap();
                        eprintln!("{status}: {body}");
                    }
                    statuses.push(status);
                }
                statuses
            }
        }))
    };
    let warm: Vec<u16> = load(16, 20).await.into_iter().flatten().collect();
    assert!(warm.iter().all(|s| *s == 200), "warm-up: {warm:?}");
    let mut db = sqlx::PgConnection::connect(app.database_url.as_deref().unwrap())
        .await
        .unwrap();
    let before = backend_pids(&mut db).await;
    assert_eq!(before.len(), 4, "the pool is full before the churn");

    // 32 clients, each sending a request and resetting the connection a moment later, for 2 s.
    let address = app.address.trim_start_matches("http://").to_string();
    let request = format!(
        "GET /auth/me HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\n\r\n",
        tokens.access
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let abandoned = join_all((0..32u64).map(|i| {
        let (address, request) = (address.clone(), request.clone());
        async move {
            let mut n = 0u64;
            while std::time::Instant::now() < deadline {
                let Ok(mut stream) = tokio::net::TcpStream::connect(&address).await else {
                    continue;
                };
                if stream.write_all(request.as_bytes()).await.is_ok() {
                    // Hang up at varying points of the request's store calls.
                    tokio::time::sleep(std::time::Duration::from_micros((i * 131 + n * 37) % 1500)).await;
                }
                // A zero linger resets at once: the blocking close the deprecation warns of
                // is that of a non-zero linger.
                #[allow(deprecated)]
                let _ = stream.set_linger(Some(std::time::Duration::ZERO));
                drop(stream);
                n += 1;
            }
            n
        }
    }))
    .await;
    assert!(abandoned.iter().sum::<u64>() > 500, "the churn ran: {abandoned:?}");
    // The churn leaves thousands of connections in the listen queue; they are served first.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;

    let after_load: Vec<u16> = load(16, 50).await.into_iter().flatten().collect();
    let failed: Vec<&u16> = after_load.iter().filter(|s| **s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed after the churn: {failed:?}",
        failed.len(),
        after_load.len()
    );
    let after = backend_pids(&mut db).await;
    assert_eq!(
        after, before,
        "no pooled PostgreSQL connection was closed and dialled again"
    );
}
