//! Connecting the stores the settings name, and the migrations.

use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

use crate::clock::Clock;
use crate::config::{DatabaseSettings, DatabaseUrl, RedisTarget, SessionSettings, Settings};
use crate::metrics::Metrics;
use crate::store::redis_pool::RedisClient;
use crate::store::sessions::memory::MemorySessionStore;
use crate::store::sessions::redis::RedisSessionStore;
use crate::store::sessions::{SessionBackend, SessionPolicy, SessionStore};
use crate::store::users::{Backend, UserStore};

/// The user store the settings name; pools connect lazily, so a database that is down at
/// start only fails the requests (503) until it is back, unless migrations must run first.
pub async fn connect_users(settings: &Settings, metrics: Arc<Metrics>, clock: &Clock) -> anyhow::Result<UserStore> {
    let timeout = settings.store_timeout;
    let backend = match &settings.database {
        DatabaseSettings::Postgres { url } => {
            let options =
                PgConnectOptions::from_str(url.expose()).context("DATABASE_URL is not a valid PostgreSQL URL")?;
            Backend::Postgres(
                // actix drops a request's future when its client hangs up. Dropped while sqlx
                // pings a connection before handing it out, the future takes the connection
                // down with it: under a load generator's reconnects, or any churn of clients,
                // the pool loses connections faster than requests can dial new ones, and
                // waiters time out for whole seconds. So no ping before use (a connection a
                // query finds broken fails that request and is replaced), and the pool is kept
                // full by sqlx's own background task rather than by dials on request paths. A
                // future dropped mid-query is safe: sqlx settles the connection in a task of
                // its own before reusing it.
                PgPoolOptions::new()
                    .max_connections(settings.database_pool_max)
                    .min_connections(settings.database_pool_max)
                    .acquire_timeout(timeout)
                    .test_before_acquire(false)
                    .connect_lazy_with(options),
            )
        }
        DatabaseSettings::Sqlite { path } => {
            owner_only(path).with_context(|| format!("cannot prepare {}", path.display()))?;
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
    Ok(UserStore::new(
        backend,
        timeout,
        metrics,
        settings.session_cache,
        clock.clone(),
    ))
}

/// The SQLite file holds password hashes and addresses: its directory, when we create it, and
/// the file are readable by this user only. SQLite gives the `-wal` and `-shm` files the mode
/// of the database file; files an earlier run left more open are narrowed.
fn owner_only(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        other => drop(other?),
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        if let Ok(meta) = std::fs::metadata(&name)
            && meta.permissions().mode() & 0o077 != 0
        {
            std::fs::set_permissions(&name, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

/// Applies the migrations embedded in the binary.
pub async fn migrate(users: &UserStore) -> anyhow::Result<()> {
    match users.backend() {
        Backend::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await,
        Backend::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await,
    }
    .context("running database migrations")
}

pub fn connect_sessions(settings: &Settings, metrics: Arc<Metrics>, clock: &Clock) -> anyhow::Result<SessionStore> {
    let tokens = &settings.tokens;
    let policy = SessionPolicy {
        refresh_ttl: tokens.refresh_ttl,
        lifetime: tokens.session_lifetime,
        grace: tokens.reuse_grace,
        max_per_user: settings.max_sessions_per_user,
    };
    let backend = match &settings.sessions {
        SessionSettings::Redis {
            target,
            key_prefix,
            pool_max,
        } => {
            let client = match target {
                RedisTarget::Single(url) => RedisClient::new(url.expose(), *pool_max, settings.store_timeout)?,
                RedisTarget::Cluster(nodes) => {
                    let nodes: Vec<String> = nodes.iter().map(|n| n.expose().to_string()).collect();
                    RedisClient::cluster(&nodes, settings.store_timeout)?
                }
                RedisTarget::Sentinel {
                    sentinels,
                    master,
                    password,
                } => {
                    let sentinels: Vec<String> = sentinels.iter().map(|n| n.expose().to_string()).collect();
                    let password = password.as_ref().map(DatabaseUrl::expose);
                    RedisClient::sentinel(&sentinels, master, password, *pool_max, settings.store_timeout)?
                }
            };
            SessionBackend::Redis(RedisSessionStore::new(client, key_prefix.clone(), policy)?)
        }
        SessionSettings::Memory => SessionBackend::Memory(MemorySessionStore::new(policy, clock.clone())),
    };
    Ok(SessionStore::new(backend, metrics, settings.session_cache))
}

pub fn log_backends(settings: &Settings) {
    let users = match &settings.database {
        DatabaseSettings::Postgres { url } => format!("postgresql ({url:?})"),
        DatabaseSettings::Sqlite { path } => format!("sqlite ({})", path.display()),
    };
    match &settings.sessions {
        SessionSettings::Redis { target, key_prefix, .. } => {
            let servers = match target {
                RedisTarget::Single(url) => format!("redis ({url:?}"),
                RedisTarget::Cluster(nodes) => format!("redis cluster ({nodes:?}"),
                RedisTarget::Sentinel { sentinels, master, .. } => {
                    format!("redis primary {master:?} of sentinels ({sentinels:?}")
                }
            };
            tracing::info!(
                users,
                sessions = format!("{servers}, prefix {key_prefix:?})"),
                "storage backends"
            )
        }
        SessionSettings::Memory => tracing::warn!(
            users,
            sessions = "in-process",
            "storage backends: sessions live in this process only, so run a single instance and expect logouts on restart"
        ),
    }
    if settings.tokens.secret.is_none() && settings.tokens.algorithm == crate::config::SigningAlgorithm::Hs256 {
        tracing::warn!("ACCESS_TOKEN_SECRET is unset: using a random key, so access tokens die with this process");
    }
}
