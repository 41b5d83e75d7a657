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
