//! A bb8 manager for Redis that notices dead connections without a PING per checkout.
//!
//! bb8-redis's manager answers `has_broken() == false` always, so with `test_on_check_out`
//! off (it doubles the cost of every call) a connection killed by a Redis restart would stay in
//! the pool and fail forever. This one marks a connection broken when a call on it fails at the
//! transport level, and bb8 then drops it and dials a fresh one.

use std::future::Future;
use std::time::Duration;

use bb8::Pool;
use bb8_redis::redis::aio::MultiplexedConnection;
use bb8_redis::redis::{self, AsyncConnectionConfig, Client, RedisError};

use super::Dependency;
use super::StoreError;

pub struct RedisManager {
    client: Client,
    config: AsyncConnectionConfig,
}

/// A pooled connection and whether a transport failure has been seen on it.
pub struct RedisConnection {
    pub inner: MultiplexedConnection,
    pub broken: bool,
}

impl RedisManager {
    pub fn new(url: &str, timeout: Duration) -> Result<Self, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        Ok(Self {
            client: Client::open(url)?,
            config,
        })
    }
}

impl bb8::ManageConnection for RedisManager {
    type Connection = RedisConnection;
    type Error = RedisError;

    async fn connect(&self) -> Result<Self::Connection, Self::Error> {
        let inner = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        Ok(RedisConnection { inner, broken: false })
    }

    async fn is_valid(&self, conn: &mut Self::Connection) -> Result<(), Self::Error> {
        bb8_redis::redis::cmd("PING")
            .query_async::<String>(&mut conn.inner)
            .await
            .map(drop)
    }

    fn has_broken(&self, conn: &mut Self::Connection) -> bool {
        conn.broken
    }
}

/// Whether `e` means the connection itself is unusable.
pub fn is_transport_error(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_unrecoverable_error()
}

/// Whether `e` is Redis saying it cannot serve yet (loading its dataset after a restart, a
/// failover in progress): the store is unavailable for now, the connection itself is fine.
pub fn is_not_ready(e: &RedisError) -> bool {
    matches!(e.retry_method(), redis::RetryMethod::WaitAndRetry)
}

/// A lazily connecting pool and the timeout of every call made through it.
#[derive(Clone)]
pub struct RedisClient {
    pool: Pool<RedisManager>,
    timeout: Duration,
}

fn unavailable(e: impl Into<anyhow::Error>) -> StoreError {
    StoreError::Unavailable(Dependency::SessionStore, e.into())
}

impl RedisClient {
    /// The service starts even while Redis is down, and answers 503 until it is back.
    pub fn new(url: &str, pool_max: u32, timeout: Duration) -> anyhow::Result<Self> {
        let manager = RedisManager::new(url, timeout)?;
        let pool = Pool::builder()
            .max_size(pool_max)
            .min_idle(Some(0))
            .connection_timeout(timeout)
            .test_on_check_out(false)
            // A failed dial fails the waiting request at once (503); the next request dials
            // again. Retried inside the pool with a growing backoff, dials would keep requests
            // failing for seconds after Redis is back.
            .retry_connection(false)
            .max_lifetime(Some(Duration::from_secs(30 * 60)))
            .build_unchecked(manager);
        Ok(Self { pool, timeout })
    }

    /// Runs one command or script on a pooled connection, within the timeout. A transport
    /// failure marks the connection broken so the pool replaces it.
    pub async fn run<T, Fut>(&self, call: impl FnOnce(MultiplexedConnection) -> Fut) -> Result<T, StoreError>
    where
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let mut pooled = self.pool.get().await.map_err(unavailable)?;
        match tokio::time::timeout(self.timeout, call(pooled.inner.clone())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) if is_transport_error(&e) => {
                pooled.broken = true;
                Err(unavailable(e))
            }
            Ok(Err(e)) if is_not_ready(&e) => Err(unavailable(e)),
            Ok(Err(e)) => Err(StoreError::Failed(Dependency::SessionStore, e.into())),
            Err(elapsed) => {
                pooled.broken = true;
                Err(unavailable(elapsed))
            }
        }
    }

    /// Connections of the pool: (idle, in use).
    pub fn pool_connections(&self) -> (u32, u32) {
        let state = self.pool.state();
        (
            state.idle_connections,
            state.connections.saturating_sub(state.idle_connections),
        )
    }
}
