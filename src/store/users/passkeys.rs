//! Passkeys: a user's WebAuthn credentials. The credential id is unique across users (the
//! index decides a race), a sign-in's counter is stored by a compare-and-set on the counter
//! it was checked against, and removing the last way into an account is refused inside the
//! removing transaction.

use uuid::Uuid;

use super::statements::{on_pool, write_trail};
use super::{Backend, StoreError, Trail, UserStore};
use crate::domain::UserId;

/// A passkey as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredPasskey {
    pub id: Uuid,
    pub user_id: Uuid,
    pub credential_id: String,
    pub name: String,
    /// The WebAuthn library's serialised credential.
    pub credential: String,
    pub sign_count: i64,
    pub backup_eligible: bool,
    pub backed_up: bool,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A verified credential to store.
pub struct NewPasskey<'a> {
    pub id: Uuid,
    pub credential_id: &'a str,
    pub name: &'a str,
    pub credential: &'a str,
    pub sign_count: u32,
    pub backup_eligible: bool,
    pub backed_up: bool,
}

/// What a sign-in with a passkey changes on it.
pub struct PasskeyUse<'a> {
    pub id: Uuid,
    /// The counter the sign-in was checked against.
    pub checked_count: i64,
    pub sign_count: u32,
    pub credential: &'a str,
    pub backed_up: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum PasskeyRemoval {
    Removed,
    NotFound,
    /// The account would be left with no password and no passkey.
    LastWayIn,
}

/// Inserts the passkey `$passkey` of `$user` in the transaction `$tx`.
macro_rules! insert_passkey {
    ($tx:ident, $user:expr, $passkey:expr, $now:expr) => {{
        let passkey: &crate::store::users::NewPasskey<'_> = $passkey;
        let user: crate::domain::UserId = $user;
        sqlx::query(
            "insert into passkeys (id, user_id, credential_id, name, credential, sign_count, \
             backup_eligible, backed_up, created_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(passkey.id)
        .bind(user.as_uuid())
        .bind(passkey.credential_id)
        .bind(passkey.name)
        .bind(passkey.credential)
        .bind(i64::from(passkey.sign_count))
        .bind(passkey.backup_eligible)
        .bind(passkey.backed_up)
        .bind($now)
        .execute(&mut *$tx)
        .await?;
    }};
}
pub(super) use insert_passkey;

/// Whether `e` is the unique index of credential ids refusing a second registration.
pub(super) fn is_taken_credential(e: &anyhow::Error) -> bool {
    e.downcast_ref::<sqlx::Error>()
        .and_then(|e| e.as_database_error())
        .is_some_and(|db| {
            db.is_unique_violation()
                && (db.constraint().is_some_and(|c| c.contains("credential_id"))
                    || db.message().contains("credential_id"))
        })
}

/// `select` of whole `passkeys` rows with the `where` clause `$filter`.
macro_rules! select_passkeys {
    ($filter:literal) => {
        concat!(
            "select id, user_id, credential_id, name, credential, sign_count, backup_eligible, backed_up, \
             created_at, last_used_at from passkeys where ",
            $filter
        )
    };
}

impl UserStore {
    /// The user's passkeys, oldest first.
    #[tracing::instrument(name = "db.passkeys.of_user", skip_all, fields(db.system = self.system(), db.operation = "SELECT"))]
    pub async fn passkeys_of(&self, user: UserId) -> Result<Vec<StoredPasskey>, StoreError> {
        self.call("passkeys.of_user", async {
            on_pool!(&self.backend, |pool| {
                sqlx::query_as(select_passkeys!("user_id = $1 order by created_at, id"))
                    .bind(user.as_uuid())
                    .fetch_all(pool)
                    .await
            })
        })
        .await
    }

    /// The passkey with this credential id, whoever owns it.
    #[tracing::instrument(name = "db.passkeys.by_credential", skip_all, fields(db.system = self.system(), db.operation = "SELECT"))]
    pub async fn passkey_by_credential(&self, credential_id: &str) -> Result<Option<StoredPasskey>, StoreError> {
        self.call("passkeys.by_credential", async {
            on_pool!(&self.backend, |pool| {
                sqlx::query_as(select_passkeys!("credential_id = $1"))
                    .bind(credential_id)
                    .fetch_optional(pool)
                    .await
            })
        })
        .await
    }

    /// Stores a new passkey and writes `trail`; `false` when its credential id is already
    /// registered (to this user or another).
    #[tracing::instrument(name = "db.passkeys.add", skip_all, fields(db.system = self.system(), db.operation = "INSERT"))]
    pub async fn add_passkey(
        &self,
        user: UserId,
        passkey: NewPasskey<'_>,
        trail: Trail<'_>,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now_ms();
        let result = self
            .call("passkeys.add", async {
                on_pool!(&self.backend, |pool| {
                    let mut tx = pool.begin().await?;
                    insert_passkey!(tx, user, &passkey, now);
                    write_trail!(tx, &trail, user, now);
                    tx.commit().await
                })
            })
            .await;
        self.forget(user);
        match result {
            Ok(()) => Ok(true),
            Err(StoreError::Failed(_, e)) if is_taken_credential(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Records a sign-in with the passkey, if its counter is still the one the sign-in was
    /// checked against: `false` when another sign-in got there first, which for a counting
    /// authenticator means two copies of one key.
    #[tracing::instrument(name = "db.passkeys.use", skip_all, fields(db.system = self.system(), db.operation = "UPDATE"))]
    pub async fn use_passkey(&self, used: PasskeyUse<'_>) -> Result<bool, StoreError> {
        let now = self.clock.now_ms();
        self.call("passkeys.use", async {
            on_pool!(&self.backend, |pool| {
                sqlx::query(
                    "update passkeys set sign_count = $3, credential = $4, backed_up = $5, last_used_at = $6 \
                     where id = $1 and sign_count = $2",
                )
                .bind(used.id)
                .bind(used.checked_count)
                .bind(i64::from(used.sign_count))
                .bind(used.credential)
                .bind(used.backed_up)
                .bind(now)
                .execute(pool)
                .await
                .map(|done| done.rows_affected() == 1)
            })
        })
        .await
    }

    /// Renames the user's passkey and writes `trail`; `false` when the user has no such passkey.
    #[tracing::instrument(name = "db.passkeys.rename", skip_all, fields(db.system = self.system(), db.operation = "UPDATE"))]
    pub async fn rename_passkey(
        &self,
        user: UserId,
        id: Uuid,
        name: &str,
        trail: Trail<'_>,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now_ms();
        self.call("passkeys.rename", async {
            on_pool!(&self.backend, |pool| {
                let mut tx = pool.begin().await?;
                let renamed = sqlx::query("update passkeys set name = $3 where id = $1 and user_id = $2")
                    .bind(id)
                    .bind(user.as_uuid())
                    .bind(name)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                if !renamed {
                    return Ok(false);
                }
                write_trail!(tx, &trail, user, now);
                tx.commit().await?;
                Ok(true)
            })
        })
        .await
    }

    /// Removes the user's passkey and writes `trail`, unless it is the account's last way in
    /// (no password and no other passkey).
    #[tracing::instrument(name = "db.passkeys.remove", skip_all, fields(db.system = self.system(), db.operation = "DELETE"))]
    pub async fn remove_passkey(&self, user: UserId, id: Uuid, trail: Trail<'_>) -> Result<PasskeyRemoval, StoreError> {
        let now = self.clock.now_ms();
        let removal = self
            .call("passkeys.remove", async {
                on_pool!(&self.backend, |pool| {
                    let mut tx = pool.begin().await?;
                    // The user's row lock orders removals racing for the last two passkeys:
                    // the second one then sees that the first is gone.
                    sqlx::query("update users set updated_at = updated_at where id = $1")
                        .bind(user.as_uuid())
                        .execute(&mut *tx)
                        .await?;
                    let removed = sqlx::query("delete from passkeys where id = $1 and user_id = $2")
                        .bind(id)
                        .bind(user.as_uuid())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                        == 1;
                    if !removed {
                        return Ok(PasskeyRemoval::NotFound);
                    }
                    let (ways_left,): (i64,) = sqlx::query_as(
                        "select (select count(*) from users where id = $1 and password_hash <> '') \
                         + (select count(*) from passkeys where user_id = $1)",
                    )
                    .bind(user.as_uuid())
                    .fetch_one(&mut *tx)
                    .await?;
                    if ways_left == 0 {
                        return Ok(PasskeyRemoval::LastWayIn);
                    }
                    write_trail!(tx, &trail, user, now);
                    tx.commit().await?;
                    Ok(PasskeyRemoval::Removed)
                })
            })
            .await?;
        self.forget(user);
        Ok(removal)
    }
}
