//! What the admin listener reads and changes: its own keys, and users found by search.

use uuid::Uuid;

use super::statements::on_pool;
use super::{Backend, StoreError, UserRow, UserStore, is_unique_violation, select_user};
use crate::domain::{User, UserId};

/// An admin key as listed (its hash stays in the store).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AdminKey {
    pub name: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// Which users a search returns.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// The start of the address, as stored (lower case).
    pub email_prefix: Option<String>,
    pub verified: Option<bool>,
    /// Has a confirmed TOTP factor.
    pub mfa: Option<bool>,
}

impl UserStore {
    /// Stores a new key's hash under `name`; `false` when the name is taken (revoked or not).
    #[tracing::instrument(name = "db.admin_keys.create", skip_all, fields(db.system = self.system(), db.operation = "INSERT"))]
    pub async fn create_admin_key(&self, name: &str, key_hash: &[u8]) -> Result<bool, StoreError> {
        let now = self.clock.now_ms();
        let result = self
            .call("admin_keys.create", async {
                on_pool!(&self.backend, |pool| {
                    sqlx::query("insert into admin_keys (id, name, key_hash, created_at) values ($1, $2, $3, $4)")
                        .bind(Uuid::now_v7())
                        .bind(name)
                        .bind(key_hash)
                        .bind(now)
                        .execute(pool)
                        .await
                        .map(|_| ())
                })
            })
            .await;
        match result {
            Ok(()) => Ok(true),
            Err(StoreError::Failed(_, e)) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every key, oldest first.
    #[tracing::instrument(name = "db.admin_keys.list", skip_all, fields(db.system = self.system(), db.operation = "SELECT"))]
    pub async fn admin_keys(&self) -> Result<Vec<AdminKey>, StoreError> {
        self.call("admin_keys.list", async {
            on_pool!(&self.backend, |pool| {
                sqlx::query_as("select name, created_at, revoked_at from admin_keys order by created_at, name")
                    .fetch_all(pool)
                    .await
            })
        })
        .await
    }

    /// The names and hashes of the keys that are not revoked.
    #[tracing::instrument(name = "db.admin_keys.active", skip_all, fields(db.system = self.system(), db.operation = "SELECT"))]
    pub async fn active_admin_keys(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.call("admin_keys.active", async {
            on_pool!(&self.backend, |pool| {
                sqlx::query_as("select name, key_hash from admin_keys where revoked_at is null")
                    .fetch_all(pool)
                    .await
            })
        })
        .await
    }

    /// Revokes the key `name`; `false` when there is no such live key.
    #[tracing::instrument(name = "db.admin_keys.revoke", skip_all, fields(db.system = self.system(), db.operation = "UPDATE"))]
    pub async fn revoke_admin_key(&self, name: &str) -> Result<bool, StoreError> {
        let now = self.clock.now_ms();
        self.call("admin_keys.revoke", async {
            on_pool!(&self.backend, |pool| {
                sqlx::query("update admin_keys set revoked_at = $2 where name = $1 and revoked_at is null")
                    .bind(name)
                    .bind(now)
                    .execute(pool)
                    .await
                    .map(|done| done.rows_affected() == 1)
            })
        })
        .await
    }

    /// Up to `limit` users matching `filter` after the id `after`, in id order: ids are
    /// UUIDv7, so the order is creation order and a page never moves when users are added.
    #[tracing::instrument(name = "db.users.search", skip_all, fields(db.system = self.system(), db.operation = "SELECT"))]
    pub async fn search_users(
        &self,
        filter: &UserFilter,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<User>, StoreError> {
        let prefix = filter.email_prefix.as_ref().map(|p| {
            let escaped = p.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            format!("{escaped}%")
        });
        let rows: Vec<UserRow> = self
            .call("users.search", async {
                on_pool!(&self.backend, |pool| {
                    sqlx::query_as(select_user!(
                        "($1 is null or email like $1 escape '\\') \
                         and ($2 is null or (email_verified_at is not null) = $2) \
                         and ($3 is null or ((select count(*) from mfa_totp t where t.user_id = users.id \
                             and t.confirmed_at is not null) > 0) = $3) \
                         and ($4 is null or id > $4) \
                         order by id limit $5"
                    ))
                    .bind(prefix.as_deref())
                    .bind(filter.verified)
                    .bind(filter.mfa)
                    .bind(after.map(|a| a.as_uuid()))
                    .bind(i64::from(limit))
                    .fetch_all(pool)
                    .await
                })
            })
            .await?;
        Ok(rows.into_iter().map(|r| r.into_credentials().user).collect())
    }
}
