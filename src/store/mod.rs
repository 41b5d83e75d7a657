//! Storage: users in PostgreSQL or SQLite, refresh sessions in Redis or in this process.
//! Each pair is one enum with the same methods, so handlers never know which is in use.

pub mod challenges;
pub mod keys;
pub mod login_throttle;
pub mod recent;
pub mod redis_pool;
pub mod sessions;
pub mod users;

use std::future::Future;
use std::time::Duration;

use serde::Serialize;

pub use sessions::SessionStore;
pub use users::UserStore;

/// A store call that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Could not reach the service in time: the request answers 503 and may be retried.
    #[error("{} unavailable", .0.as_str())]
    Unavailable(Dependency, #[source] anyhow::Error),
    /// The service answered with an error: a bug or corrupt data, answered 500.
    #[error("{} call failed", .0.as_str())]
    Failed(Dependency, #[source] anyhow::Error),
}

/// The external service a 503 is about; named in the body so operators can tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dependency {
    Database,
    SessionStore,
}

impl Dependency {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Database => "database",
            Self::SessionStore => "session_store",
        }
    }
}

/// Runs one store call under `limit`; running out of time means the service is unavailable.
async fn bounded<T>(
    dependency: Dependency,
    limit: Duration,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        Err(StoreError::Unavailable(
            dependency,
            anyhow::anyhow!("no answer within {} ms", limit.as_millis()),
        ))
    })
}

/// Sorts a sqlx error into unavailable (the connection or the server went away) or failed
/// (everything else: a bug or bad data). A connection cut mid-handshake surfaces as a protocol
/// error (unexpected EOF), so that counts as unavailable too.
fn sql_error(e: sqlx::Error) -> StoreError {
    use sqlx::Error::*;
    match e {
        PoolTimedOut | PoolClosed | Io(_) | Tls(_) | Protocol(_) | WorkerCrashed => {
            StoreError::Unavailable(Dependency::Database, e.into())
        }
        other => StoreError::Failed(Dependency::Database, other.into()),
    }
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}
