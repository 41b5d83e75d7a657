//! Builds the application: stores, shared state, middleware and routes, bound to a listener.
//! Tests build it with port 0 and read the port back.

use std::net::TcpListener;
use std::panic::AssertUnwindSafe;
use std::str::FromStr;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
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
use crate::routes;
use crate::store::memory_sessions::MemorySessionStore;
use crate::store::redis_sessions::RedisSessionStore;
use crate::store::sessions::{SessionPolicy, SessionStore};
use crate::store::users::{Backend, UserStore};

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Connects the stores (migrating when configured), then binds `settings.host_addr`.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let users = connect_users(&settings).await?;
        if settings.run_migrations {
            migrate(&users).await?;
        }
        let sessions = connect_sessions(&settings)?;
        let hasher = PasswordHasher::new(&settings.hashing)?;
        log_backends(&settings);

        let state = web::Data::new(AppState::new(&settings, users, sessions, hasher));
        let body_limit = settings.body_limit;
        let listener = TcpListener::bind(settings.host_addr)
            .with_context(|| format!("cannot bind {}", settings.host_addr))?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(catch_panic))
                .wrap(TracingLogger::default())
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(body_limit))
                .configure(routes::configure)
                .default_service(web::to(routes::not_found))
        })
        .listen(listener)?
        // Signals are handled in `run_until_stopped`: actix would stop abruptly on SIGINT.
        .disable_signals()
        .shutdown_timeout(settings.shutdown_timeout.as_secs())
        .run();
        tracing::info!(address = %settings.host_addr.ip(), port, "listening");
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM or SIGINT, then stops accepting and lets in-flight requests finish
    /// (up to `SHUTDOWN_TIMEOUT`).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown signal received, draining in-flight requests");
            handle.stop(true).await;
        });
        self.server.await
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
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

/// The user store the settings name; pools connect lazily, so a database that is down at
/// start only fails the requests (503) until it is back, unless migrations must run first.
pub async fn connect_users(settings: &Settings) -> anyhow::Result<UserStore> {
    let timeout = settings.store_timeout;
    let backend = match &settings.database {
        DatabaseSettings::Postgres { url } => {
            let options = PgConnectOptions::from_str(url.expose())
                .context("DATABASE_URL is not a valid PostgreSQL URL")?;
            Backend::Postgres(
                PgPoolOptions::new()
                    .max_connections(settings.database_pool_max)
                    .acquire_timeout(timeout)
                    .connect_lazy_with(options),
            )
        }
        DatabaseSettings::Sqlite { path } => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
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
    Ok(UserStore::new(backend, timeout))
}

/// Applies the migrations embedded in the binary.
pub async fn migrate(users: &UserStore) -> anyhow::Result<()> {
    match users.backend() {
        Backend::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await,
        Backend::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await,
    }
    .context("running database migrations")
}

fn connect_sessions(settings: &Settings) -> anyhow::Result<SessionStore> {
    let tokens = &settings.tokens;
    let policy = SessionPolicy {
        refresh_ttl: tokens.refresh_ttl,
        lifetime: tokens.session_lifetime,
        grace: tokens.reuse_grace,
        max_per_user: settings.max_sessions_per_user,
    };
    Ok(match &settings.sessions {
        SessionSettings::Redis {
            url,
            key_prefix,
            pool_max,
        } => SessionStore::Redis(RedisSessionStore::new(
            url.expose(),
            key_prefix.clone(),
            *pool_max,
            policy,
            settings.store_timeout,
        )?),
        SessionSettings::Memory => SessionStore::Memory(MemorySessionStore::new(policy)),
    })
}

fn log_backends(settings: &Settings) {
    let users = match &settings.database {
        DatabaseSettings::Postgres { url } => format!("postgresql ({url:?})"),
        DatabaseSettings::Sqlite { path } => format!("sqlite ({})", path.display()),
    };
    match &settings.sessions {
        SessionSettings::Redis {
            url, key_prefix, ..
        } => {
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
        tracing::warn!(
            "ACCESS_TOKEN_SECRET is unset: using a random key, so access tokens die with this process"
        );
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
        let Err(error) =
            test::try_call_service(&app, test::TestRequest::get().uri("/boom").to_request()).await
        else {
            panic!("the panic is caught and turned into an error");
        };
        let response = error.error_response();
        assert_eq!(response.status(), 500);
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .unwrap();
        assert!(
            std::str::from_utf8(&body)
                .unwrap()
                .contains("INTERNAL_ERROR")
        );
        assert!(!std::str::from_utf8(&body).unwrap().contains("boom"));
    }
}
