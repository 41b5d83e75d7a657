//! A bb8 manager for Redis that notices dead connections without a PING per checkout.
//!
//! bb8-redis's manager answers `has_broken() == false` always, so with `test_on_check_out`
//! off (it doubles the cost of every call) a connection killed by a Redis restart would stay in
//! the pool and fail forever. This one marks a connection broken when a call on it fails at the
//! transport level, and bb8 then drops it and dials a fresh one.

use std::time::Duration;

use bb8_redis::redis::aio::MultiplexedConnection;
use bb8_redis::redis::{AsyncConnectionConfig, Client, RedisError};

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
