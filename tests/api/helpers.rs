//! Spawns the real application on port 0, with its own database and Redis key prefix, and
//! offers typed requests. `Backend::External` uses `TEST_DATABASE_URL` / `TEST_REDIS_URL`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use actix_web::dev::ServerHandle;
use auth_api::clock::Clock;
use auth_api::config::Settings;
use auth_api::startup::Application;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use uuid::Uuid;

/// Signing key the tests know, so they can forge tokens for the attack cases.
pub const TEST_SECRET: &str = "test-secret-test-secret-test-secret!";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file + in-process sessions.
    Embedded,
    /// PostgreSQL + Redis from `TEST_DATABASE_URL` / `TEST_REDIS_URL`.
    External,
    /// PostgreSQL from `TEST_DATABASE_URL`, sessions on a private six-node Redis Cluster
    /// shared by the tests of this run.
    RedisCluster,
    /// PostgreSQL from `TEST_DATABASE_URL`, sessions on a private primary, replica and three
    /// Sentinels shared by the tests of this run.
    RedisSentinel,
}

impl Backend {
    /// Whether users live in SQLite and sessions in the process (no external store).
    pub fn is_embedded(self) -> bool {
        self == Backend::Embedded
    }
}

pub fn external_urls() -> Option<(String, String)> {
    Some((
        std::env::var("TEST_DATABASE_URL").ok()?,
        std::env::var("TEST_REDIS_URL").ok()?,
    ))
}

/// Runs each test body once per backend: `mod <name> { fn embedded; fn postgres_redis; fn
/// redis_cluster; fn redis_sentinel }`, the last two with sessions on a Redis Cluster and
/// behind Sentinels. A body that needs more than its backend says so first:
/// `#[needs(Smtp)] async fn …`.
#[macro_export]
macro_rules! backend_tests {
    ($($(#[needs($($need:ident),+)])? async fn $name:ident($backend:ident: Backend) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run($backend: $crate::helpers::Backend) $body

            async fn embedded() {
                run($crate::helpers::Backend::Embedded).await
            }
            $crate::case!(embedded $(needs $($need),+)?);

            async fn postgres_redis() {
                run($crate::helpers::Backend::External).await
            }
            $crate::case!(postgres_redis needs External $($(, $need)+)?);

            async fn redis_cluster() {
                run($crate::helpers::Backend::RedisCluster).await
            }
            $crate::case!(redis_cluster needs External, RedisServers $($(, $need)+)?);

            async fn redis_sentinel() {
                run($crate::helpers::Backend::RedisSentinel).await
            }
            $crate::case!(redis_sentinel needs External, RedisServers $($(, $need)+)?);
        }
    )*};
}

pub struct TestApp {
    pub address: String,
    /// The metrics listener, unless `METRICS_ADDR=off`.
    pub metrics_address: Option<String>,
    /// The admin listener, when `ADMIN_ADDR` is set.
    pub admin_address: Option<String>,
    pub client: reqwest::Client,
    /// The database URL of this test (external backend), for direct inspection.
    pub database_url: Option<String>,
    /// Redis URL and key prefix of this test, for direct inspection.
    pub redis: Option<(String, String)>,
    /// The clock the service reads: the system's, or a manual one the test moves.
    pub clock: Clock,
    handle: ServerHandle,
    storage_env: Vec<(String, String)>,
    /// Dropped after `Drop::drop` stopped the server (`None` for a sibling, which shares it).
    _storage: Option<Storage>,
}

/// The stores of one test: a SQLite directory, or a PostgreSQL database and a Redis key
/// prefix of its own. Removed on drop.
pub struct Storage {
    /// Environment variables that point the service at these stores.
    pub env: Vec<(String, String)>,
    pub database_url: Option<String>,
    pub redis: Option<(String, String)>,
    sqlite_dir: Option<PathBuf>,
    postgres: Option<(String, String)>,
}

impl Storage {
    pub async fn create(backend: Backend) -> Self {
        let id = Uuid::new_v4().simple().to_string();
        match backend {
            Backend::Embedded => {
                let dir = std::env::temp_dir().join(format!("auth-api-test-{id}"));
                let path = dir.join("auth.db").to_string_lossy().into_owned();
                Self {
                    env: vec![("SQLITE_PATH".into(), path)],
                    database_url: None,
                    redis: None,
                    sqlite_dir: Some(dir),
                    postgres: None,
                }
            }
            _ => {
                let (pg, redis_url) = external_urls().expect("external backend requested without URLs");
                let name = format!("auth_test_{id}");
                let url = with_database(&pg, &name);
                let prefix = format!("test:{id}:");
                let mut env = vec![
                    ("DATABASE_URL".into(), url.clone()),
                    ("REDIS_KEY_PREFIX".into(), prefix.clone()),
                ];
                // The shared cluster and Sentinel set go away with the run: no keys to clean.
                let redis = match backend {
                    Backend::RedisCluster => {
                        let seeds = tokio::task::spawn_blocking(crate::redis_ha::shared_cluster_seeds);
                        env.push(("REDIS_CLUSTER_NODES".into(), seeds.await.unwrap()));
                        None
                    }
                    Backend::RedisSentinel => {
                        let sentinels = tokio::task::spawn_blocking(crate::redis_ha::shared_sentinels);
                        env.push(("REDIS_SENTINELS".into(), sentinels.await.unwrap()));
                        env.push(("REDIS_SENTINEL_MASTER".into(), "auth".into()));
                        None
                    }
                    _ => {
                        env.push(("REDIS_URL".into(), redis_url.clone()));
                        Some((redis_url, prefix))
                    }
                };
                // Created last: nothing that can fail comes between it and `Self`, which drops it.
                let mut admin = PgConnection::connect(&pg).await.expect("connect to TEST_DATABASE_URL");
                sqlx::raw_sql(AssertSqlSafe(format!("create database \"{name}\"")))
                    .execute(&mut admin)
                    .await
                    .unwrap();
                Self {
                    env,
                    database_url: Some(url),
                    redis,
                    sqlite_dir: None,
                    postgres: Some((pg, name)),
                }
            }
        }
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        let (postgres, redis, sqlite_dir) = (self.postgres.take(), self.redis.take(), self.sqlite_dir.take());
        // Drop may run inside a test's runtime, which cannot block on async work: clean up on
        // a thread with a runtime of its own.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Some((pg, name)) = postgres
                    && let Ok(mut admin) = PgConnection::connect(&pg).await
                {
                    let sql = format!("drop database if exists \"{name}\" with (force)");
                    let _ = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut admin).await;
                }
                if let Some((url, prefix)) = redis {
                    let _ = delete_keys(&url, &prefix).await;
                }
            });
            if let Some(dir) = sqlite_dir {
                let _ = std::fs::remove_dir_all(dir);
            }
        })
        .join()
        .ok();
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

/// Spawns with extra environment variables layered over the test defaults.
pub async fn spawn_app_with(backend: Backend, vars: &[(&str, &str)]) -> TestApp {
    spawn(backend, vars, None, Clock::system()).await
}

/// Spawns for a timeline test: in embedded mode every timeline is the service's own, so the
/// clock is a manual one and [`TestApp::wait`] moves it; on PostgreSQL + Redis, Redis expires
/// sessions and lockouts by its own clock, so `wait` really sleeps.
pub async fn spawn_for_timeline(backend: Backend, vars: &[(&str, &str)]) -> TestApp {
    match backend {
        Backend::Embedded => spawn_app_at_manual_clock(backend, vars).await,
        _ => spawn_app_with(backend, vars).await,
    }
}

/// Spawns with a clock the test moves by hand (`app.clock.advance(..)`), standing at a fixed
/// moment until then: expiry, lockout and grace are tested without sleeping.
pub async fn spawn_app_at_manual_clock(backend: Backend, vars: &[(&str, &str)]) -> TestApp {
    let start = time::OffsetDateTime::now_utc();
    spawn(backend, vars, None, Clock::manual(start)).await
}

/// Spawns on the external backends, reaching PostgreSQL and Redis through the given proxies.
pub async fn spawn_app_proxied(database: SocketAddr, redis: SocketAddr, vars: &[(&str, &str)]) -> TestApp {
    spawn(Backend::External, vars, Some((database, redis)), Clock::system()).await
}

/// A second instance on the same PostgreSQL database and Redis prefix as `other` (replicas).
pub async fn spawn_sibling(other: &TestApp, vars: &[(&str, &str)]) -> TestApp {
    let mut app = spawn_on(None, other.storage_env.clone(), vars, None, other.clock.clone()).await;
    app.redis = other.redis.clone();
    app
}

async fn spawn(
    backend: Backend,
    vars: &[(&str, &str)],
    proxies: Option<(SocketAddr, SocketAddr)>,
    clock: Clock,
) -> TestApp {
    let storage = Storage::create(backend).await;
    let storage_env = storage.env.clone();
    spawn_on(Some(storage), storage_env, vars, proxies, clock).await
}

async fn spawn_on(
    storage: Option<Storage>,
    storage_env: Vec<(String, String)>,
    vars: &[(&str, &str)],
    proxies: Option<(SocketAddr, SocketAddr)>,
    clock: Clock,
) -> TestApp {
    let mut env = test_env(&storage_env, vars);
    if let Some((database, redis)) = proxies {
        env.insert("DATABASE_URL".into(), crate::proxy::via(&env["DATABASE_URL"], database));
        env.insert("REDIS_URL".into(), crate::proxy::via(&env["REDIS_URL"], redis));
    }
    let settings = Settings::from_lookup(|k| env.get(k).cloned()).expect("test settings are valid");
    start(settings, storage, storage_env, clock).await
}

/// The variables of a test instance on these stores: the test defaults, then `vars` (an empty
/// value unsets a default).
fn test_env(storage_env: &[(String, String)], vars: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("HOST_ADDR", "127.0.0.1:0"),
        ("METRICS_ADDR", "127.0.0.1:0"),
        ("ACCESS_TOKEN_SECRET", TEST_SECRET),
        ("LOG_FORMAT", "json"),
        // Cheap argon2 keeps the suite fast; the production cost is measured in bench/.
        ("ARGON2_MEMORY_KIB", "1024"),
        ("ARGON2_ITERATIONS", "1"),
        // Limits high enough for the concurrency tests; the rate-limit tests set their own.
        ("RATE_LIMIT_PER_SECOND", "100000"),
        ("RATE_LIMIT_BURST", "100000"),
        ("RATE_LIMIT_AUTH_PER_MINUTE", "100000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .chain(storage_env.iter().cloned())
    .collect();
    for (k, v) in vars {
        env.insert(k.to_string(), v.to_string());
    }
    env
}

impl TestApp {
    /// Lets `time` pass for the service: moves its manual clock, or sleeps.
    pub async fn wait(&self, time: std::time::Duration) {
        match self.clock.is_manual() {
            true => self.clock.advance(time),
            false => tokio::time::sleep(time).await,
        }
    }

    /// The settings of an instance on this app's stores with `vars` over the test defaults.
    pub fn settings_with(&self, vars: &[(&str, &str)]) -> Settings {
        let env = test_env(&self.storage_env, vars);
        Settings::from_lookup(|k| env.get(k).cloned()).expect("test settings are valid")
    }

    /// Runs `statement` on this app's user store, as an operator's SQL would: behind the
    /// service's back.
    pub async fn sql(&self, statement: &str) -> u64 {
        let statement = AssertSqlSafe(statement.to_string());
        if let Some(url) = &self.database_url {
            let mut db = PgConnection::connect(url).await.unwrap();
            return sqlx::query(statement).execute(&mut db).await.unwrap().rows_affected();
        }
        let path = self
            .storage_env
            .iter()
            .find(|(k, _)| k == "SQLITE_PATH")
            .map(|(_, v)| v.clone())
            .expect("an embedded app has a SQLite file");
        let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
            .await
            .unwrap();
        sqlx::query(statement).execute(&mut db).await.unwrap().rows_affected()
    }

    /// The variables of a command run on this app's stores (`auth-api users …`).
    pub fn command_env(&self) -> Vec<(String, String)> {
        test_env(&self.storage_env, &[]).into_iter().collect()
    }

    /// The SQLite file of an embedded app.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        self.storage_env
            .iter()
            .find(|(k, _)| k == "SQLITE_PATH")
            .map(|(_, v)| PathBuf::from(v))
    }

    /// Stops the server, keeping its stores (for a restart with `spawn_sibling`).
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

async fn start(
    settings: Settings,
    storage: Option<Storage>,
    storage_env: Vec<(String, String)>,
    clock: Clock,
) -> TestApp {
    let app_clock = clock.clone();
    // The server gets a thread and runtime of its own, so stopping it from `Drop` (which
    // blocks the test's runtime) cannot deadlock.
    let (ready, started) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            match Application::build_with_clock(settings, app_clock).await {
                Ok(app) => {
                    let _ = ready.send(Ok((app.port(), app.metrics_port(), app.admin_port(), app.handle())));
                    let _ = app.run_until_stopped().await;
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                }
            }
        });
    });
    let (port, metrics_port, admin_port, handle) = started.await.unwrap().expect("application builds");
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        metrics_address: metrics_port.map(|p| format!("http://127.0.0.1:{p}")),
        admin_address: admin_port.map(|p| format!("http://127.0.0.1:{p}")),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        database_url: storage.as_ref().and_then(|s| s.database_url.clone()),
        redis: storage.as_ref().and_then(|s| s.redis.clone()),
        storage_env,
        clock,
        handle,
        _storage: storage,
    }
}

/// `base` with its database name replaced by `name`.
pub fn with_database(base: &str, name: &str) -> String {
    let (url, query) = base.split_once('?').map_or((base, None), |(u, q)| (u, Some(q)));
    let root = url
        .rsplit_once('/')
        .filter(|(r, _)| r.contains("//") && !r.ends_with('/'))
        .map_or(url, |(r, _)| r);
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        // The server runs on its own thread; stopping it from here must not block this runtime.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(handle.stop(false));
        })
        .join()
        .ok();
    }
}

async fn delete_keys(url: &str, prefix: &str) -> redis::RedisResult<()> {
    let mut conn = redis::Client::open(url)?.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await?;
    if !keys.is_empty() {
        redis::cmd("DEL").arg(keys).query_async::<()>(&mut conn).await?;
    }
    Ok(())
}

/// What a successful register/login/refresh handed out.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("request sent")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn register(&self, username: &str, email: &str, password: &str) -> Response {
        self.post_json(
            "/auth/register",
            &json!({"username": username, "email": email, "password": password}),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_json("/auth/login", &json!({"email": email, "password": password}))
            .await
    }

    pub async fn me(&self, access: &str) -> Response {
        self.client
            .get(self.url("/auth/me"))
            .bearer_auth(access)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn refresh(&self, refresh: &str) -> Response {
        self.with_cookie(self.client.get(self.url("/auth/refreshAccessToken")), refresh)
            .await
    }

    pub async fn logout(&self, refresh: &str) -> Response {
        self.with_cookie(self.client.post(self.url("/auth/logout")), refresh)
            .await
    }

    pub async fn sessions(&self, access: &str) -> Response {
        self.client
            .get(self.url("/auth/sessions"))
            .bearer_auth(access)
            .send()
            .await
            .expect("request sent")
    }

    async fn with_cookie(&self, request: reqwest::RequestBuilder, refresh: &str) -> Response {
        request
            .header("Cookie", format!("jwt={refresh}"))
            .send()
            .await
            .expect("request sent")
    }

    /// Registers a fresh user and returns its tokens.
    pub async fn signed_up(&self, email: &str) -> Tokens {
        let response = self.register("Test User", email, "correct horse battery").await;
        expect_tokens(response).await
    }
}

/// Asserts a 200 carrying tokens and returns them.
pub async fn expect_tokens(response: Response) -> Tokens {
    assert_eq!(response.status(), StatusCode::OK, "expected tokens");
    let refresh = refresh_cookie(&response).expect("a jwt cookie");
    let body: Value = response.json().await.unwrap();
    let access = body["content"]["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    Tokens { access, refresh }
}

/// The `jwt` value set by a response, if any (empty when the cookie is cleared).
pub fn refresh_cookie(response: &Response) -> Option<String> {
    set_cookie(response).map(|c| c.split(';').next().unwrap().trim_start_matches("jwt=").to_string())
}

/// The whole `Set-Cookie: jwt=…` header of a response.
pub fn set_cookie(response: &Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("jwt="))
        .map(str::to_string)
}

/// Asserts status and error code of an envelope; returns the body.
/// The `content` of a 200 answer (the body is shown when the status is another).
pub async fn content(response: Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body["content"].clone()
}

pub async fn assert_error(response: Response, status: u16, code: &str) -> Value {
    let actual = response.status().as_u16();
    let body: Value = response.json().await.expect("an envelope body");
    assert_eq!(actual, status, "status for {body}");
    assert_eq!(body["success"], json!(false), "{body}");
    assert_eq!(body["status"], json!(status), "{body}");
    assert_eq!(body["content"]["error_code"], json!(code), "{body}");
    body
}
