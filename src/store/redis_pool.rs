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

/// What a Redis error means for the request (503 or 500) and for its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The store cannot serve now: 503, and the connection is replaced when `replace`.
    Unavailable { replace: bool },
    /// Our bug or bad data: 500.
    Failed,
}

/// Sorts a Redis error. Replaced: a transport failure, and a server that is no longer (or not
/// yet) the primary (`READONLY`, a demoted primary; `MASTERDOWN`, a replica without its
/// primary), because redialling reaches the new one. Kept: a server that cannot serve for the
/// moment (`LOADING` after a restart, `TRYAGAIN` and `CLUSTERDOWN` during a failover or a
/// resharding, `NOREPLICAS` under `min-replicas-to-write`).
pub fn verdict(e: &RedisError) -> Verdict {
    if is_transport_error(e) {
        return Verdict::Unavailable { replace: true };
    }
    match e.code() {
        Some("READONLY" | "MASTERDOWN") => Verdict::Unavailable { replace: true },
        Some("LOADING" | "TRYAGAIN" | "CLUSTERDOWN" | "NOREPLICAS") => Verdict::Unavailable { replace: false },
        _ => Verdict::Failed,
    }
}

/// Whether `e` says a command touched keys of several slots, or of another node: keys that
/// should share a hash tag do not, a bug to fix rather than an outage.
pub fn is_slot_bug(e: &RedisError) -> bool {
    e.code() == Some("CROSSSLOT") || e.to_string().contains("non local key")
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
            Ok(Err(e)) => match verdict(&e) {
                Verdict::Unavailable { replace } => {
                    pooled.broken |= replace;
                    Err(unavailable(e))
                }
                Verdict::Failed => {
                    if is_slot_bug(&e) {
                        tracing::error!(error = %e, "a Redis call spans hash slots: keys of one operation must share a hash tag");
                    }
                    Err(StoreError::Failed(Dependency::SessionStore, e.into()))
                }
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The error a server's reply line makes.
    fn reply(line: &str) -> RedisError {
        let value = redis::parse_redis_value(format!("-{line}\r\n").as_bytes()).unwrap();
        value.extract_error().unwrap_err()
    }

    #[test]
    fn a_failover_or_a_busy_server_is_a_503_and_a_demoted_primary_is_redialled() {
        let replaced = Verdict::Unavailable { replace: true };
        let kept = Verdict::Unavailable { replace: false };
        for (line, expected) in [
            ("READONLY You can't write against a read only replica.", replaced),
            (
                "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
                replaced,
            ),
            ("LOADING Redis is loading the dataset in memory", kept),
            ("TRYAGAIN Multiple keys request during rehashing of slot", kept),
            ("CLUSTERDOWN The cluster is down", kept),
            ("NOREPLICAS Not enough good replicas to write.", kept),
            ("CROSSSLOT Keys in request don't hash to the same slot", Verdict::Failed),
            ("ERR Error running script: wrong number of arguments", Verdict::Failed),
            (
                "WRONGTYPE Operation against a key holding the wrong kind of value",
                Verdict::Failed,
            ),
        ] {
            assert_eq!(verdict(&reply(line)), expected, "{line}");
        }
        assert!(is_slot_bug(&reply(
            "CROSSSLOT Keys in request don't hash to the same slot"
        )));
        assert!(is_slot_bug(&reply(
            "ERR Script attempted to access a non local key in a cluster node script: x"
        )));
        assert!(!is_slot_bug(&reply(
            "READONLY You can't write against a read only replica."
        )));
    }
}
