//! Second factors: a user's TOTP factor (its sealed secret and the newest step accepted) and
//! recovery codes (keyed hashes). Every "use once" is a conditional update whose row count
//! says who won, so two instances cannot both accept the same code.

use uuid::Uuid;

use super::statements::{on_pool, write_trail};
use super::{Backend, Trail, UserStore};
use crate::domain::UserId;
use crate::store::StoreError;

/// Ends a change of `$user`'s factor in the transaction `$tx`: the recovery codes become
/// `$hashes` (none for an empty slice), `$trail` is written, and the change commits.
macro_rules! replace_codes_and_commit {
    ($tx:ident, $user:expr, $hashes:expr, $trail:expr, $now:expr) => {{
        let user: UserId = $user;
        sqlx::query("delete from mfa_recovery_codes where user_id = $1")
            .bind(user.as_uuid())
            .execute(&mut *$tx)
            .await?;
        for hash in $hashes {
            sqlx::query("insert into mfa_recovery_codes (user_id, code_hash) values ($1, $2)")
                .bind(user.as_uuid())
                .bind(hash.as_slice())
                .execute(&mut *$tx)
                .await?;
        }
        write_trail!($tx, $trail, user, $now);
        $tx.commit().await?;
    }};
}

/// A user's TOTP factor as stored.
pub struct TotpFactor {
    pub sealed_secret: Vec<u8>,
    pub confirmed: bool,
}

/// What starting an enrolment found.
#[derive(Debug, PartialEq, Eq)]
pub enum PendingTotp {
    Started,
    /// A confirmed factor exists: it must be removed before another is enrolled.
    AlreadyActive,
}

impl UserStore {
    /// The user's TOTP factor, pending or confirmed.
    #[tracing::instrument(name = "db.mfa.totp_factor", skip_all, fields(db.system = self.system(), db.operation = "SELECT"))]
    pub async fn totp_factor(&self, user: UserId) -> Result<Option<TotpFactor>, StoreError> {
        let row: Option<(Vec<u8>, Option<i64>)> = self
            .call("mfa.totp_factor", async {
                on_pool!(&self.backend, |pool| {
                    sqlx::query_as("select sealed_secret, confirmed_at from mfa_totp where user_id = $1")
                        .bind(user.as_uuid())
                        .fetch_optional(pool)
                        .await
                })
            })
            .await?;
        Ok(row.map(|(sealed_secret, confirmed)| TotpFactor {
            sealed_secret,
            confirmed: confirmed.is_some(),
        }))
    }

    /// Stores a pending factor, replacing a pending one; never a confirmed one.
    #[tracing::instrument(name = "db.mfa.start_totp", skip_all, fields(db.system = self.system(), db.operation = "INSERT"))]
    pub async fn start_totp(&self, user: UserId, sealed_secret: &[u8]) -> Result<PendingTotp, StoreError> {
        let now = self.clock.now_ms();
        let stored = self
            .call("mfa.start_totp", async {
                on_pool!(&self.backend, |pool| {
                    sqlx::query(
                        "insert into mfa_totp (user_id, sealed_secret, created_at) values ($1, $2, $3) \
                         on conflict (user_id) do update set sealed_secret = excluded.sealed_secret, \
                         created_at = excluded.created_at, last_step = -1 \
                         where mfa_totp.confirmed_at is null",
                    )
                    .bind(user.as_uuid())
                    .bind(sealed_secret)
                    .bind(now)
                    .execute(pool)
                    .await
                    .map(|done| done.rows_affected())
                })
            })
            .await?;
        Ok(if stored == 1 {
            PendingTotp::Started
        } else {
            PendingTotp::AlreadyActive
        })
    }

    /// Confirms the pending factor with the code of `step`, installs the recovery codes
    /// `hashes` (replacing any) and writes `trail`, in one transaction; `false` when there was
    /// no pending factor or `step` was already used.
    #[tracing::instrument(name = "db.mfa.confirm_totp", skip_all, fields(db.system = self.system(), db.operation = "UPDATE"))]
    pub async fn confirm_totp(
        &self,
        user: UserId,
        step: u64,
        hashes: &[[u8; 32]],
        trail: Trail<'_>,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now_ms();
        let confirmed = self
            .call("mfa.confirm_totp", async {
                on_pool!(&self.backend, |pool| {
                    let mut tx = pool.begin().await?;
                    let confirmed = sqlx::query(
                        "update mfa_totp set confirmed_at = $2, last_step = $3 \
                         where user_id = $1 and confirmed_at is null and last_step < $3",
                    )
                    .bind(user.as_uuid())
                    .bind(now)
                    .bind(step as i64)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1;
                    if !confirmed {
                        return Ok(false);
                    }
                    replace_codes_and_commit!(tx, user, hashes, &trail, now);
                    Ok(true)
                })
            })
            .await?;
        self.forget(user);
        Ok(confirmed)
    }

    /// Accepts the confirmed factor's code of `step` if no code of this or a later step was
    /// accepted before: the compare-and-set that makes a code single use.
    #[tracing::instrument(name = "db.mfa.use_totp_step", skip_all, fields(db.system = self.system(), db.operation = "UPDATE"))]
    pub async fn use_totp_step(&self, user: UserId, step: u64) -> Result<bool, StoreError> {
        let updated = self
            .call("mfa.use_totp_step", async {
                on_pool!(&self.backend, |pool| {
                    sqlx::query(
                        "update mfa_totp set last_step = $2 \
                         where user_id = $1 and confirmed_at is not null and last_step < $2",
                    )
                    .bind(user.as_uuid())
                    .bind(step as i64)
                    .execute(pool)
                    .await
                    .map(|done| done.rows_affected())
                })
            })
            .await?;
        Ok(updated == 1)
    }

    /// The keyed hashes of the user's unused recovery codes.
    #[tracing::instrument(name = "db.mfa.recovery_codes", skip_all, fields(db.system = self.system(), db.operation = "SELECT"))]
    pub async fn unused_recovery_codes(&self, user: UserId) -> Result<Vec<Vec<u8>>, StoreError> {
        let rows: Vec<(Vec<u8>,)> = self
            .call("mfa.recovery_codes", async {
                on_pool!(&self.backend, |pool| {
                    sqlx::query_as("select code_hash from mfa_recovery_codes where user_id = $1 and used_at is null")
                        .bind(user.as_uuid())
                        .fetch_all(pool)
                        .await
                })
            })
            .await?;
        Ok(rows.into_iter().map(|(hash,)| hash).collect())
    }

    /// Marks the recovery code `hash` used and writes `trail`, unless it was used already
    /// (by a concurrent request too): whether this call used it.
    #[tracing::instrument(name = "db.mfa.use_recovery_code", skip_all, fields(db.system = self.system(), db.operation = "UPDATE"))]
    pub async fn use_recovery_code(&self, user: UserId, hash: &[u8], trail: Trail<'_>) -> Result<bool, StoreError> {
        let now = self.clock.now_ms();
        let used = self
            .call("mfa.use_recovery_code", async {
                on_pool!(&self.backend, |pool| {
                    let mut tx = pool.begin().await?;
                    let used = sqlx::query(
                        "update mfa_recovery_codes set used_at = $3 \
                         where user_id = $1 and code_hash = $2 and used_at is null",
                    )
                    .bind(user.as_uuid())
                    .bind(hash)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1;
                    if !used {
                        return Ok(false);
                    }
                    write_trail!(tx, &trail, user, now);
                    tx.commit().await?;
                    Ok(true)
                })
            })
            .await?;
        self.forget(user);
        Ok(used)
    }

    /// Replaces every recovery code of a user with a confirmed factor by `hashes`, and writes
    /// `trail`; `false` when the user has no confirmed factor.
    #[tracing::instrument(name = "db.mfa.replace_recovery_codes", skip_all, fields(db.system = self.system(), db.operation = "UPDATE"))]
    pub async fn replace_recovery_codes(
        &self,
        user: UserId,
        hashes: &[[u8; 32]],
        trail: Trail<'_>,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now_ms();
        let replaced = self
            .call("mfa.replace_recovery_codes", async {
                on_pool!(&self.backend, |pool| {
                    let mut tx = pool.begin().await?;
                    let active: Option<(Uuid,)> =
                        sqlx::query_as("select user_id from mfa_totp where user_id = $1 and confirmed_at is not null")
                            .bind(user.as_uuid())
                            .fetch_optional(&mut *tx)
                            .await?;
                    if active.is_none() {
                        return Ok(false);
                    }
                    replace_codes_and_commit!(tx, user, hashes, &trail, now);
                    Ok(true)
                })
            })
            .await?;
        self.forget(user);
        Ok(replaced)
    }

    /// Removes the user's TOTP factor and recovery codes, and writes `trail`; `false` when
    /// there was no confirmed factor.
    #[tracing::instrument(name = "db.mfa.remove_totp", skip_all, fields(db.system = self.system(), db.operation = "DELETE"))]
    pub async fn remove_totp(&self, user: UserId, trail: Trail<'_>) -> Result<bool, StoreError> {
        let now = self.clock.now_ms();
        let removed = self
            .call("mfa.remove_totp", async {
                on_pool!(&self.backend, |pool| {
                    let mut tx = pool.begin().await?;
                    let removed = sqlx::query("delete from mfa_totp where user_id = $1 and confirmed_at is not null")
                        .bind(user.as_uuid())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                        == 1;
                    if !removed {
                        return Ok(false);
                    }
                    replace_codes_and_commit!(tx, user, &[] as &[[u8; 32]], &trail, now);
                    Ok(true)
                })
            })
            .await?;
        self.forget(user);
        Ok(removed)
    }
}
