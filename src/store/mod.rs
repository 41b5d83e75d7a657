//! Storage: users in PostgreSQL or SQLite, refresh sessions in Redis or in this process.
//! Each pair is one enum with the same methods, so handlers never know which is in use.

pub mod login_throttle;
pub mod memory_sessions;
mod postgres_users;
pub mod redis_pool;
pub mod redis_sessions;
pub mod sessions;
mod sqlite_users;
pub mod users;

use std::future::Future;
use std::time::Duration;

use crate::error::{ApiError, Dependency};

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

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(dependency, source) => ApiError::Unavailable { dependency, source },
            StoreError::Failed(_, source) => ApiError::Internal(source),
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
fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}
