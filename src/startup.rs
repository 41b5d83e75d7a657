//! Builds the application: stores, shared state, middleware and routes, bound to a listener.
//! Tests build it with port 0 and read the port back.

use std::net::TcpListener;
use std::panic::AssertUnwindSafe;
use std::str::FromStr;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::middleware::{Condition, Next, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use futures_util::FutureExt;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use tracing_actix_web::TracingLogger;

use crate::app_state::AppState;
use crate::auth::password::PasswordHasher;
use crate::config::{DatabaseSettings, SessionSettings, Settings};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::routes;
use crate::routes::rate_limit::Limiters;
use crate::store::login_throttle::LoginThrottle;
use crate::store::memory_sessions::MemorySessionStore;
use crate::store::redis_sessions::RedisSessionStore;
use crate::store::sessions::{SessionBackend, SessionPolicy, SessionStore};
use crate::store::users::{Backend, UserStore};
use crate::telemetry;
use actix_cors::Cors;
use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;

pub struct Application {
    port: u16,
    server: Server,
    metrics: Option<(u16, Server)>,
}

impl Application {
    /// Connects the stores (migrating when configured), then binds `settings.host_addr` and,
    /// unless metrics are off, `settings.metrics_addr`.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let metrics = Arc::new(Metrics::new());
        let users = connect_users(&settings, metrics.clone()).await?;
        if settings.run_migrations {
            migrate(&users).await?;
        }
        let sessions = connect_sessions(&settings, metrics.clone())?;
        let throttle = match (&settings.sessions, sessions.redis_client()) {
            (SessionSettings::Redis { key_prefix, .. }, Some(client)) => {
                LoginThrottle::redis(client.clone(), key_prefix.clone(), settings.lockout.clone())
            }
            _ => LoginThrottle::memory(settings.lockout.clone()),
        };
        let limiters = Limiters::new(&settings.rate_limits, &settings.trusted_proxies, metrics.clone());
        let hasher = PasswordHasher::new(&settings.hashing, metrics.clone())?;
        log_backends(&settings);

        let http_metrics = metrics.http_middleware();
        let metrics_on = settings.metrics_addr.is_some();
        let state = web::Data::new(AppState::new(&settings, users, sessions, hasher, metrics, throttle));
        let body_limit = settings.body_limit;
        let listener =
            TcpListener::bind(settings.host_addr).with_context(|| format!("cannot bind {}", settings.host_addr))?;
        let port = listener.local_addr()?.port();
        let app_state = state.clone();
        let (origins, request_timeout) = (settings.cors_origins.clone(), settings.request_timeout);
        let header_limit = settings.header_limit;
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(catch_panic))
                .wrap(from_fn(move |req, next| {
                    bounded_request(request_timeout, header_limit, req, next)
                }))
                .wrap(security_headers())
                .wrap(cors(&origins))
                .wrap(from_fn(telemetry::http::request_scope))
                .wrap(TracingLogger::<telemetry::http::RootSpan>::new())
                .wrap(Condition::new(metrics_on, http_metrics.clone()))
                .app_data(app_state.clone())
                .app_data(web::PayloadConfig::new(body_limit))
                .configure(|cfg| routes::configure(cfg, &limiters))
        })
        .client_request_timeout(settings.header_timeout)
        .keep_alive(settings.keep_alive)
        .listen(listener)?
        // Signals are handled in `run_until_stopped`: actix would stop abruptly on SIGINT.
        .disable_signals()
        .shutdown_timeout(settings.shutdown_timeout.as_secs())
        .run();

        let metrics = match settings.metrics_addr {
            Some(addr) => {
                let listener = TcpListener::bind(addr).with_context(|| format!("cannot bind METRICS_ADDR {addr}"))?;
                let metrics_port = listener.local_addr()?.port();
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(state.clone())
                        .route("/metrics", web::get().to(crate::metrics::endpoint))
                        .default_service(web::to(routes::not_found))
                })
                .listen(listener)?
                .workers(1)
                .disable_signals()
                .shutdown_timeout(1)
                .run();
                tracing::info!(address = %addr.ip(), port = metrics_port, "metrics listening");
                Some((metrics_port, server))
            }
            None => None,
        };
        Ok(Self { port, server, metrics })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Port of the metrics listener, if metrics are on.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM or SIGINT, then stops accepting and lets in-flight requests finish
    /// (up to `SHUTDOWN_TIMEOUT`); the metrics listener stops after the API.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        // Handlers are installed before "listening" is logged: a signal sent as soon as the
        // port is known must not find the default disposition (immediate death).
        let signal = shutdown_signal()?;
        // An actix Server only runs while polled: the metrics one gets its own task.
        let metrics = self.metrics.map(|(_, server)| (server.handle(), tokio::spawn(server)));
        tracing::info!(port = self.port, "listening");
        tokio::spawn(async move {
            signal.await;
            tracing::info!("shutdown signal received, draining in-flight requests");
            handle.stop(true).await;
        });
        let result = self.server.await;
        if let Some((handle, task)) = metrics {
            handle.stop(true).await;
            let _ = task.await;
        }
        result
    }
}

/// Resolves on the first SIGTERM or SIGINT; the handlers are registered when this returns.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// Turns a panic in any handler into the 500 envelope instead of a dropped connection. The
/// error is returned rather than a response, because the request was moved into the handler;
/// actix renders it with `ApiError::error_response`.
async fn catch_panic(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    match AssertUnwindSafe(next.call(req)).catch_unwind().await {
        Ok(response) => response,
        Err(_) => Err(ApiError::Internal(anyhow::anyhow!("handler panicked")).into()),
    }
}

/// Headers every response carries: nothing here is meant to be sniffed, framed, leaked in a
/// Referer or cached (bodies carry tokens and personal data).
fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Cache-Control", "no-store"))
}

/// Exact-origin CORS with credentials. A disallowed origin gets no CORS headers at all (the
/// browser then refuses to expose the response); the request itself still reaches the route,
/// where the cookie routes' CSRF check answers 403.
fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "POST", "DELETE"])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .allowed_header("traceparent")
        .allowed_header("tracestate")
        .expose_headers([
            "traceresponse",
            "retry-after",
            "ratelimit-limit",
            "ratelimit-remaining",
            "ratelimit-reset",
        ])
        .supports_credentials()
        .max_age(600)
        .block_on_origin_mismatch(false);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// Bounds the head's size (431) and the whole request's time, body included (408), both in the
/// envelope. (Reading the head is bounded by the server's client request timeout.)
async fn bounded_request(
    limit: std::time::Duration,
    header_limit: usize,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let head: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if head + req.uri().to_string().len() > header_limit {
        return Err(ApiError::HeadersTooLarge.into());
    }
    match tokio::time::timeout(limit, next.call(req)).await {
        Ok(response) => response,
        Err(_) => Err(ApiError::RequestTimeout.into()),
    }
}

/// The user store the settings name; pools connect lazily, so a database that is down at
/// start only fails the requests (503) until it is back, unless migrations must run first.
pub async fn connect_users(settings: &Settings, metrics: Arc<Metrics>) -> anyhow::Result<UserStore> {
    let timeout = settings.store_timeout;
    let backend = match &settings.database {
        DatabaseSettings::Postgres { url } => {
            let options =
                PgConnectOptions::from_str(url.expose()).context("DATABASE_URL is not a valid PostgreSQL URL")?;
            Backend::Postgres(
                PgPoolOptions::new()
                    .max_connections(settings.database_pool_max)
                    .acquire_timeout(timeout)
                    .connect_lazy_with(options),
            )
        }
        DatabaseSettings::Sqlite { path } => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let options = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(timeout);
            Backend::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(settings.database_pool_max)
                    .acquire_timeout(timeout)
                    .connect_lazy_with(options),
            )
        }
    };
    Ok(UserStore::new(backend, timeout, metrics))
}

/// Applies the migrations embedded in the binary.
pub async fn migrate(users: &UserStore) -> anyhow::Result<()> {
    match users.backend() {
        Backend::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await,
        Backend::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await,
    }
    .context("running database migrations")
}

fn connect_sessions(settings: &Settings, metrics: Arc<Metrics>) -> anyhow::Result<SessionStore> {
    let tokens = &settings.tokens;
    let policy = SessionPolicy {
        refresh_ttl: tokens.refresh_ttl,
        lifetime: tokens.session_lifetime,
        grace: tokens.reuse_grace,
        max_per_user: settings.max_sessions_per_user,
    };
    let backend = match &settings.sessions {
        SessionSettings::Redis {
            url,
            key_prefix,
            pool_max,
        } => SessionBackend::Redis(RedisSessionStore::new(
            url.expose(),
            key_prefix.clone(),
            *pool_max,
            policy,
            settings.store_timeout,
        )?),
        SessionSettings::Memory => SessionBackend::Memory(MemorySessionStore::new(policy)),
    };
    Ok(SessionStore::new(backend, metrics))
}

fn log_backends(settings: &Settings) {
    let users = match &settings.database {
        DatabaseSettings::Postgres { url } => format!("postgresql ({url:?})"),
        DatabaseSettings::Sqlite { path } => format!("sqlite ({})", path.display()),
    };
    match &settings.sessions {
        SessionSettings::Redis { url, key_prefix, .. } => {
            tracing::info!(
                users,
                sessions = format!("redis ({url:?}, prefix {key_prefix:?})"),
                "storage backends"
            )
        }
        SessionSettings::Memory => tracing::warn!(
            users,
            sessions = "in-process",
            "storage backends: sessions live in this process only, so run a single instance and expect logouts on restart"
        ),
    }
    if settings.tokens.secret_generated {
        tracing::warn!("ACCESS_TOKEN_SECRET is unset: using a random key, so access tokens die with this process");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test;

    #[actix_web::test]
    async fn a_panicking_handler_becomes_the_500_envelope() {
        let app = test::init_service(
            App::new()
                .wrap(from_fn(catch_panic))
                .route("/boom", web::get().to(|| async { panic!("boom") as &str })),
        )
        .await;
        let Err(error) = test::try_call_service(&app, test::TestRequest::get().uri("/boom").to_request()).await else {
            panic!("the panic is caught and turned into an error");
        };
        let response = error.error_response();
        assert_eq!(response.status(), 500);
        let body = actix_web::body::to_bytes(response.into_body()).await.unwrap();
        assert!(std::str::from_utf8(&body).unwrap().contains("INTERNAL_ERROR"));
        assert!(!std::str::from_utf8(&body).unwrap().contains("boom"));
    }
}
