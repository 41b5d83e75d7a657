//! The `signing_keys` table, in the user store (PostgreSQL or SQLite).

use std::time::Duration;

use super::users::{Backend, is_unique_violation};
use super::{Dependency, StoreError, bounded, sql_error};
use crate::auth::keys::StoredKey;

/// Binds a key's columns in the order of the insert statements.
macro_rules! bind_key {
    ($query:expr, $key:expr) => {
        $query
            .bind(&$key.kid)
            .bind(&$key.alg)
            .bind($key.generation)
            .bind(&$key.public_jwk)
            .bind(&$key.private_key)
            .bind($key.created_at_ms)
            .bind($key.activates_at_ms)
    };
}

/// Reads and writes signing keys through the user store's pool.
#[derive(Clone)]
pub struct SigningKeyStore {
    backend: Backend,
    timeout: Duration,
}

type Row = (String, String, i64, String, Vec<u8>, i64, i64, Option<i64>);

fn key(
    (kid, alg, generation, public_jwk, private_key, created_at_ms, activates_at_ms, revoked_at_ms): Row,
) -> StoredKey {
    StoredKey {
        kid,
        alg,
        generation,
        public_jwk,
        private_key,
        created_at_ms,
        activates_at_ms,
        revoked_at_ms,
    }
}

impl SigningKeyStore {
    pub fn new(backend: Backend, timeout: Duration) -> Self {
        Self { backend, timeout }
    }

    /// Every key, oldest generation first.
    pub async fn all(&self) -> Result<Vec<StoredKey>, StoreError> {
        const SQL: &str = "select kid, alg, generation, public_jwk, private_key, created_at, activates_at, revoked_at \
                           from signing_keys order by generation";
        let rows: Vec<Row> = bounded(Dependency::Database, self.timeout, async {
            match &self.backend {
                Backend::Postgres(pool) => sqlx::query_as(SQL).fetch_all(pool).await,
                Backend::Sqlite(pool) => sqlx::query_as(SQL).fetch_all(pool).await,
            }
            .map_err(sql_error)
        })
        .await?;
        Ok(rows.into_iter().map(key).collect())
    }

    /// Adds `key`; `false` when its generation exists already (another instance rotated first).
    pub async fn insert(&self, key: &StoredKey) -> Result<bool, StoreError> {
        let result = bounded(Dependency::Database, self.timeout, async {
            match &self.backend {
                Backend::Postgres(pool) => bind_key!(
                    sqlx::query(
                        "insert into signing_keys (kid, alg, generation, public_jwk, private_key, created_at, activates_at) \
                         values ($1, $2, $3, $4, $5, $6, $7)"
                    ),
                    key
                )
                .execute(pool)
                .await
                .map(drop),
                Backend::Sqlite(pool) => bind_key!(
                    sqlx::query(
                        "insert into signing_keys (kid, alg, generation, public_jwk, private_key, created_at, activates_at) \
                         values (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                    ),
                    key
                )
                .execute(pool)
                .await
                .map(drop),
            }
            .map_err(sql_error)
        })
        .await;
        match result {
            Ok(()) => Ok(true),
            Err(StoreError::Failed(_, e)) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Marks `kid` revoked at `now_ms`; `false` when there is no such key.
    pub async fn revoke(&self, kid: &str, now_ms: i64) -> Result<bool, StoreError> {
        let affected = bounded(Dependency::Database, self.timeout, async {
            match &self.backend {
                Backend::Postgres(pool) => {
                    sqlx::query("update signing_keys set revoked_at = $2 where kid = $1 and revoked_at is null")
                        .bind(kid)
                        .bind(now_ms)
                        .execute(pool)
                        .await
                        .map(|r| r.rows_affected())
                }
                Backend::Sqlite(pool) => {
                    sqlx::query("update signing_keys set revoked_at = ?2 where kid = ?1 and revoked_at is null")
                        .bind(kid)
                        .bind(now_ms)
                        .execute(pool)
                        .await
                        .map(|r| r.rows_affected())
                }
            }
            .map_err(sql_error)
        })
        .await?;
        Ok(affected > 0)
    }

    /// Deletes `kid` (a retired key whose last tokens have expired).
    pub async fn delete(&self, kid: &str) -> Result<(), StoreError> {
        bounded(Dependency::Database, self.timeout, async {
            match &self.backend {
                Backend::Postgres(pool) => sqlx::query("delete from signing_keys where kid = $1")
                    .bind(kid)
                    .execute(pool)
                    .await
                    .map(drop),
                Backend::Sqlite(pool) => sqlx::query("delete from signing_keys where kid = ?1")
                    .bind(kid)
                    .execute(pool)
                    .await
                    .map(drop),
            }
            .map_err(sql_error)
        })
        .await
    }
}
