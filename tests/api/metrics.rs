//! Scrapes /metrics over HTTP, parses it with a real exposition-format parser, and checks that
//! each counter moves by exactly what a scripted sequence of requests implies.

use std::collections::HashMap;
use std::time::Duration;

use prometheus_parse::{Scrape, Value};
use serde_json::json;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, assert_error, expect_tokens, spawn_app_with};

/// One parsed scrape: (metric, sorted labels) -> value (histograms: their count).
pub struct Snapshot(HashMap<(String, Vec<(String, String)>), f64>);

impl Snapshot {
    pub async fn take(app: &TestApp) -> Self {
        let url = format!("{}/metrics", app.metrics_address.as_ref().expect("metrics are on"));
        let response = app.client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
        assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
        let text = response.text().await.unwrap();
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("valid exposition format");
        let mut values = HashMap::new();
        for sample in scrape.samples {
            let mut labels: Vec<(String, String)> = sample.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            labels.sort();
            let value = match sample.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                Value::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
                Value::Summary(_) => continue,
            };
            values.insert((sample.metric, labels), value);
        }
        Self(values)
    }

    pub fn get(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        let mut wanted: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        wanted.sort();
        self.0.get(&(metric.to_string(), wanted)).copied().unwrap_or(0.0)
    }

    /// Every series of `metric`: its labels as a map, and its value.
    pub fn series(&self, metric: &str) -> Vec<(HashMap<String, String>, f64)> {
        self.0
            .iter()
            .filter(|((m, _), _)| m == metric)
            .map(|((_, labels), value)| (labels.iter().cloned().collect(), *value))
            .collect()
    }

    fn has(&self, metric: &str) -> bool {
        self.0.keys().any(|(m, _)| m == metric)
    }
}

/// A metric, its labels, and by how much it must have moved.
type Delta<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

/// Asserts `after - before == expected` for each case.
fn assert_deltas(before: &Snapshot, after: &Snapshot, cases: &[Delta<'_>]) {
    for (metric, labels, expected) in cases {
        let delta = after.get(metric, labels) - before.get(metric, labels);
        assert_eq!(
            delta, *expected,
            "{metric}{labels:?} moved by {delta}, expected {expected}"
        );
    }
}

backend_tests! {
    async fn counters_move_by_exactly_the_scripted_amounts(backend: Backend) {
        let app = spawn_app_with(backend, &[("REFRESH_REUSE_GRACE", "1")]).await;
        let before = Snapshot::take(&app).await;

        // Registrations: success, email_taken (hashes before the insert), invalid twice.
        let first = expect_tokens(app.register("M", "m@example.com", "correct horse battery").await).await;
        assert_error(app.register("M", "M@example.com", "correct horse battery").await, 409, "EMAIL_TAKEN").await;
        assert_error(app.register("M", "not-an-email", "correct horse battery").await, 400, "VALIDATION_ERROR").await;
        let malformed = app.client.post(app.url("/auth/register")).header("content-type", "application/json").body("{").send().await.unwrap();
        assert_error(malformed, 400, "VALIDATION_ERROR").await;
        // Logins: one success (evicting the registration's session), two failures.
        let session = expect_tokens(app.login("m@example.com", "correct horse battery").await).await;
        assert_error(app.login("m@example.com", "wrong password").await, 401, "USER_NOT_FOUND").await;
        assert_error(app.login("nobody@example.com", "wrong password").await, 401, "USER_NOT_FOUND").await;
        // Requests that are no login at all: malformed JSON, another content type.
        let broken = app.client.post(app.url("/auth/login")).header("content-type", "application/json").body("{").send().await.unwrap();
        assert_error(broken, 400, "VALIDATION_ERROR").await;
        let form = app.client.post(app.url("/auth/login")).header("content-type", "text/plain").body("{}").send().await.unwrap();
        assert_error(form, 415, "UNSUPPORTED_MEDIA_TYPE").await;
        // Token validations.
        assert_eq!(app.me(&session.access).await.status(), 200);
        assert_error(app.me("garbage").await, 401, "INVALID_ACCESS_TOKEN").await;
        // Refreshes: success, grace replay, invalid, then reuse after the 1 s grace.
        expect_tokens(app.refresh(&session.refresh).await).await;
        expect_tokens(app.refresh(&session.refresh).await).await;
        assert_error(app.refresh("garbage").await, 401, "INVALID_REFRESH_TOKEN").await;
        assert_error(app.refresh(&first.refresh).await, 401, "INVALID_REFRESH_TOKEN").await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_error(app.refresh(&session.refresh).await, 401, "REFRESH_TOKEN_REUSED").await;
        // Logout and user revocation.
        let again = expect_tokens(app.login("m@example.com", "correct horse battery").await).await;
        assert_eq!(app.logout(&again.refresh).await.status(), 200);
        let third = expect_tokens(app.login("m@example.com", "correct horse battery").await).await;
        let all = app.client.delete(app.url("/auth/sessions")).bearer_auth(&third.access).send().await.unwrap();
        assert_eq!(all.json::<serde_json::Value>().await.unwrap()["content"]["revoked"], json!(1));
        assert_error(app.get("/nope/123").await, 404, "NOT_FOUND").await;
        assert_error(app.get("/metrics").await, 404, "NOT_FOUND").await;

        let after = Snapshot::take(&app).await;
        assert_deltas(&before, &after, &[
            ("auth_registrations_total", &[("outcome", "success")], 1.0),
            ("auth_registrations_total", &[("outcome", "email_taken")], 1.0),
            ("auth_registrations_total", &[("outcome", "invalid")], 2.0),
            ("auth_registrations_total", &[("outcome", "error")], 0.0),
            ("auth_logins_total", &[("outcome", "success")], 3.0),
            ("auth_logins_total", &[("outcome", "invalid_credentials")], 2.0),
            ("auth_logins_total", &[("outcome", "invalid_request")], 2.0),
            ("auth_logins_total", &[("outcome", "error")], 0.0),
            ("auth_token_validations_total", &[("outcome", "valid")], 2.0),
            ("auth_token_validations_total", &[("outcome", "invalid")], 1.0),
            ("auth_refresh_total", &[("outcome", "success")], 1.0),
            ("auth_refresh_total", &[("outcome", "grace_replay")], 1.0),
            ("auth_refresh_total", &[("outcome", "invalid")], 2.0),
            ("auth_refresh_total", &[("outcome", "reused")], 1.0),
            ("auth_refresh_total", &[("outcome", "error")], 0.0),
            // The first login evicted the registration's session (MAX_SESSIONS_PER_USER=1); the
            // later ones found none left (reuse and logout had ended them).
            ("auth_sessions_revoked_total", &[("reason", "evicted")], 1.0),
            ("auth_sessions_revoked_total", &[("reason", "reuse")], 1.0),
            ("auth_sessions_revoked_total", &[("reason", "logout")], 1.0),
            ("auth_sessions_revoked_total", &[("reason", "user")], 1.0),
            // Two hashes (register, duplicate register) and five verifies (five logins).
            ("auth_password_hash_duration_seconds", &[], 7.0),
            ("auth_password_hash_wait_seconds", &[], 7.0),
            ("http_requests_total", &[("endpoint", "/auth/login"), ("method", "POST"), ("status", "200")], 3.0),
            ("http_requests_total", &[("endpoint", "/auth/login"), ("method", "POST"), ("status", "401")], 2.0),
            ("http_requests_total", &[("endpoint", "UNMATCHED"), ("method", "GET"), ("status", "404")], 2.0),
            ("http_requests_duration_seconds", &[("endpoint", "/auth/register"), ("method", "POST"), ("status", "200")], 1.0),
        ]);
        assert_eq!(after.get("auth_password_hash_in_flight", &[]), 0.0);
        assert_eq!(after.get("auth_build_info", &[("version", env!("CARGO_PKG_VERSION")), ("git_sha", &git_sha(&after))]), 1.0);
        let (users, sessions) = match backend {
            Backend::Embedded => ("sqlite", "memory"),
            _ => ("postgresql", "redis"),
        };
        assert!(after.get("auth_dependency_duration_seconds", &[("dependency", users), ("operation", "users.find_by_email")]) >= 5.0);
        assert!(after.get("auth_dependency_duration_seconds", &[("dependency", sessions), ("operation", "sessions.rotate")]) >= 4.0);
        for metric in ["auth_rate_limited_total", "auth_db_pool_connections", "auth_redis_pool_connections", "process_resident_memory_bytes", "process_open_fds", "process_cpu_seconds_total"] {
            assert!(after.has(metric), "{metric} is exported");
        }
        assert!(after.get("auth_db_pool_connections", &[("state", "idle")]) + after.get("auth_db_pool_connections", &[("state", "in_use")]) >= 1.0);
        // The one Redis, probed at the scrape; none with in-process sessions.
        let nodes = after.series("auth_redis_node_up");
        match backend {
            Backend::Embedded => assert!(nodes.is_empty(), "{nodes:?}"),
            // Six cluster nodes, or the primary the Sentinels name.
            Backend::RedisCluster | Backend::RedisSentinel => {
                let expected = if backend == Backend::RedisCluster { 6 } else { 1 };
                assert_eq!(nodes.len(), expected, "{nodes:?}");
                assert!(nodes.iter().all(|(_, up)| *up == 1.0), "{nodes:?}");
            }
            Backend::External => {
                let (_, redis_url) = crate::helpers::external_urls().unwrap();
                let address = redis_url.trim_start_matches("redis://").trim_end_matches('/');
                assert_eq!(after.get("auth_redis_node_up", &[("node", address), ("role", "primary")]), 1.0, "{nodes:?}");
                assert_eq!(after.get("auth_redis_node_probe_failures_total", &[("node", address)]), 0.0);
            }
        }
        let label_values: Vec<&str> = after.0.keys().flat_map(|(_, l)| l.iter().map(|(_, v)| v.as_str())).collect();
        for secret in [&first.access, &first.refresh, &session.refresh, "correct horse battery", crate::helpers::TEST_SECRET] {
            assert!(!label_values.iter().any(|v| v.contains(secret)), "a secret in a metric label");
        }
    }
}

/// The git_sha label the binary was built with (whatever it is, it must be a single series).
fn git_sha(snapshot: &Snapshot) -> String {
    let shas: Vec<&String> = snapshot
        .0
        .keys()
        .filter(|(m, _)| m == "auth_build_info")
        .flat_map(|(_, labels)| labels.iter().filter(|(k, _)| k == "git_sha").map(|(_, v)| v))
        .collect();
    assert_eq!(shas.len(), 1, "{shas:?}");
    shas[0].clone()
}
