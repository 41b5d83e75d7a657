//! What the admin listener reads and changes: its own keys, and users found by search.

use uuid::Uuid;

use super::statements::{Trail, event_insert, on_pool, write_trail};
use super::{Backend, StoreError, UserRow, UserStore, is_unique_violation, select_user};
use crate::domain::{Disabled, SecurityEvent, User, UserId};

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
    /// Disabled now.
    pub disabled: Option<bool>,
}

/// What erasing a user removed, besides the user's row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Erased {
    pub passkeys: u64,
    pub totp_factors: u64,
    pub recovery_codes: u64,
    /// Mails to the user or the address, in any state (sent ones keep the address).
    pub mails: u64,
    /// Reset and verification links not used yet.
    pub link_tokens: u64,
    /// The user's security events, which keep their ids and names but lose address and browser.
    pub events_anonymised: u64,
}

/// What links a disabled account must not use: its reset and verification tokens, and the
/// mails that would mint new ones.
const END_LINKS: [&str; 2] = [
    "delete from account_tokens where user_id = $1",
    "update mail_outbox set state = 'skipped', locked_until = null \
     where kind in ('password_reset', 'email_verify') and state = 'pending' \
     and (user_id = $1 or email = (select email from users where id = $1))",
];

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
        let now = self.clock.now_ms();
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
                         and ($6 is null or (disabled_at is not null \
                             and (disabled_until is null or disabled_until > $7)) = $6) \
                         order by id limit $5"
                    ))
                    .bind(prefix.as_deref())
                    .bind(filter.verified)
                    .bind(filter.mfa)
                    .bind(after.map(|a| a.as_uuid()))
                    .bind(i64::from(limit))
                    .bind(filter.disabled)
                    .bind(now)
                    .fetch_all(pool)
                    .await
                })
            })
            .await?;
        Ok(rows.into_iter().map(|r| r.into_credentials().user).collect())
    }

    /// Disables `id` (`Some`) or enables it (`None`), writing `trail`; `false` when there is
    /// no such user. Disabling also ends the account's unused reset and verification links and
    /// skips the link mails not sent yet.
    #[tracing::instrument(name = "db.users.set_disabled", skip_all, fields(db.system = self.system(), db.operation = "UPDATE"))]
    pub async fn set_disabled(
        &self,
        id: UserId,
        disabled: Option<&Disabled>,
        trail: Trail<'_>,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let updated = self
            .call("users.set_disabled", async {
                on_pool!(&self.backend, |pool| {
                    let mut tx = pool.begin().await?;
                    let updated = sqlx::query(
                        "update users set disabled_at = $2, disabled_until = $3, disabled_reason = $4, updated_at = $5 \
                         where id = $1",
                    )
                    .bind(id.as_uuid())
                    .bind(disabled.map(|d| d.since_ms))
                    .bind(disabled.and_then(|d| d.until_ms))
                    .bind(disabled.and_then(|d| d.reason.as_deref()))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        > 0;
                    if !updated {
                        return Ok(false);
                    }
                    if disabled.is_some() {
                        for statement in END_LINKS {
                            sqlx::query(statement).bind(id.as_uuid()).execute(&mut *tx).await?;
                        }
                    }
                    write_trail!(tx, &trail, id, self.clock.now_ms());
                    tx.commit().await?;
                    Ok(true)
                })
            })
            .await?;
        self.forget(id);
        Ok(updated)
    }

    /// Confirms the address of `id` as an operator's decision, writing `trail`: `None` when
    /// there is no such user, `Some(false)` when it was confirmed already.
    #[tracing::instrument(name = "db.users.mark_verified", skip_all, fields(db.system = self.system(), db.operation = "UPDATE"))]
    pub async fn mark_verified(&self, id: UserId, trail: Trail<'_>) -> Result<Option<bool>, StoreError> {
        let now = self.clock.now();
        let marked = self
            .call("users.mark_verified", async {
                on_pool!(&self.backend, |pool| {
                    let mut tx = pool.begin().await?;
                    // A write first, so that SQLite takes its write lock before reading (a read
                    // turned write can fail at once under a concurrent writer).
                    let found: Option<(bool,)> = sqlx::query_as(
                        "update users set updated_at = updated_at where id = $1 \
                         returning email_verified_at is not null",
                    )
                    .bind(id.as_uuid())
                    .fetch_optional(&mut *tx)
                    .await?;
                    match found {
                        None => return Ok(None),
                        Some((true,)) => return Ok(Some(false)),
                        Some((false,)) => {}
                    }
                    sqlx::query("update users set email_verified_at = $2, updated_at = $2 where id = $1")
                        .bind(id.as_uuid())
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("delete from account_tokens where user_id = $1 and purpose = 'email_verify'")
                        .bind(id.as_uuid())
                        .execute(&mut *tx)
                        .await?;
                    write_trail!(tx, &trail, id, self.clock.now_ms());
                    tx.commit().await?;
                    Ok(Some(true))
                })
            })
            .await?;
        self.forget(id);
        Ok(marked)
    }

    /// Removes the TOTP factor and recovery codes of `id`, writing `trail` when there was
    /// something to remove: `None` when there is no such user, else (factors, codes) removed.
    #[tracing::instrument(name = "db.users.reset_factors", skip_all, fields(db.system = self.system(), db.operation = "DELETE"))]
    pub async fn reset_factors(&self, id: UserId, trail: Trail<'_>) -> Result<Option<(u64, u64)>, StoreError> {
        let removed = self
            .call("users.reset_factors", async {
                on_pool!(&self.backend, |pool| {
                    let mut tx = pool.begin().await?;
                    // The user's row is locked first, as every change of factors does (and SQLite
                    // takes its write lock before any read).
                    let found = sqlx::query("update users set updated_at = updated_at where id = $1")
                        .bind(id.as_uuid())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if found == 0 {
                        return Ok(None);
                    }
                    let totp = sqlx::query("delete from mfa_totp where user_id = $1")
                        .bind(id.as_uuid())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    let codes = sqlx::query("delete from mfa_recovery_codes where user_id = $1")
                        .bind(id.as_uuid())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if totp + codes == 0 {
                        return Ok(Some((0, 0)));
                    }
                    write_trail!(tx, &trail, id, self.clock.now_ms());
                    tx.commit().await?;
                    Ok(Some((totp, codes)))
                })
            })
            .await?;
        self.forget(id);
        Ok(removed)
    }

    /// Erases `id` (GDPR art. 17): its row, factors, passkeys, link tokens and every mail to
    /// it or its address go; its events stay (ids, names, times) without address or browser,
    /// and `erased` is written beside them. `None` when there is no such user.
    #[tracing::instrument(name = "db.users.erase", skip_all, fields(db.system = self.system(), db.operation = "DELETE"))]
    pub async fn erase(&self, id: UserId, erased: &SecurityEvent) -> Result<Option<Erased>, StoreError> {
        let done = self
            .call("users.erase", async {
                on_pool!(&self.backend, |pool| {
                    let mut tx = pool.begin().await?;
                    let uid = id.as_uuid();
                    // A write first, as above.
                    let found: Option<(String,)> =
                        sqlx::query_as("update users set updated_at = updated_at where id = $1 returning email")
                            .bind(uid)
                            .fetch_optional(&mut *tx)
                            .await?;
                    let Some((email,)) = found else {
                        return Ok(None);
                    };
                    let mut count = async |statement: &'static str| -> Result<u64, sqlx::Error> {
                        Ok(sqlx::query(statement)
                            .bind(uid)
                            .bind(&email)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected())
                    };
                    // `$2` is bound to every statement, so each names it.
                    let done = Erased {
                        passkeys: count("delete from passkeys where user_id = $1 and $2 is not null").await?,
                        totp_factors: count("delete from mfa_totp where user_id = $1 and $2 is not null").await?,
                        recovery_codes: count("delete from mfa_recovery_codes where user_id = $1 and $2 is not null")
                            .await?,
                        link_tokens: count("delete from account_tokens where user_id = $1 and $2 is not null").await?,
                        mails: count("delete from mail_outbox where user_id = $1 or lower(email) = lower($2)").await?,
                        events_anonymised: count(
                            "update security_events set ip = null, browser = null \
                             where user_id = $1 and $2 is not null",
                        )
                        .await?,
                    };
                    count("delete from users where id = $1 and $2 is not null").await?;
                    event_insert!(erased).execute(&mut *tx).await?;
                    tx.commit().await?;
                    Ok(Some(done))
                })
            })
            .await?;
        self.forget(id);
        Ok(done)
    }
}
