//! User accounts, in PostgreSQL or SQLite.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{PgPool, SqlitePool};
use time::OffsetDateTime;
use uuid::Uuid;

mod admin;
mod events;
mod factors;
mod mail;
mod passkeys;
mod statements;

pub use admin::{AdminKey, Erased, UserFilter};
pub use events::EventCursor;
pub use factors::{PendingTotp, TotpFactor};
pub use mail::{ClaimedMail, TokenUse};
pub use passkeys::{NewPasskey, PasskeyRemoval, PasskeyUse, StoredPasskey};
use statements::{END_RESET_LINKS, INSERT_MAIL, mail_insert, on_pool, write_trail};
pub use statements::{MailRequest, Trail};

use super::recent::Recent;
use super::{Dependency, StoreError, bounded, sql_error};
use crate::clock::Clock;
use crate::domain::{Disabled, Email, SecondFactor, User, UserId, Username};
use crate::metrics::Metrics;

#[derive(Clone)]
pub enum Backend {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

#[derive(Clone)]
pub struct UserStore {
    backend: Backend,
    timeout: Duration,
    metrics: Arc<Metrics>,
    /// Users recently read for a Bearer request (see [`Recent`]).
    profiles: Option<Arc<Recent<UserId, User>>>,
    clock: Clock,
}

/// Most users remembered by one instance.
const PROFILE_CAPACITY: usize = 100_000;

/// A user to insert; the id and hash are made by the caller.
pub struct NewUser {
    pub id: UserId,
    pub username: Username,
    pub email: Email,
    pub password_hash: String,
}

/// A user together with the hash to verify a login against.
pub struct Credentials {
    pub user: User,
    pub password_hash: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    #[error("email taken")]
    EmailTaken,
    #[error("passkey taken")]
    PasskeyTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `select` of a whole `users` row, as [`UserRow`] reads it, with the `where` clause `$filter`.
macro_rules! select_user {
    ($filter:literal) => {
        concat!(
            "select id, username, email, password_hash, email_verified_at, created_at, \
             disabled_at, disabled_until, disabled_reason, \
             (select count(*) from mfa_totp t where t.user_id = users.id and t.confirmed_at is not null) as totp, \
             (select count(*) from mfa_recovery_codes r where r.user_id = users.id and r.used_at is null) as codes_left, \
             (select count(*) from passkeys p where p.user_id = users.id) as passkeys \
             from users where ",
            $filter
        )
    };
}

pub(crate) use select_user;

/// A `users` row as both backends return it.
#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    username: String,
    email: String,
    password_hash: String,
    email_verified_at: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
    totp: i64,
    codes_left: i64,
    passkeys: i64,
    disabled_at: Option<i64>,
    disabled_until: Option<i64>,
    disabled_reason: Option<String>,
}

impl UserRow {
    fn into_credentials(self) -> Credentials {
        Credentials {
            user: User {
                id: UserId::from_uuid(self.id),
                username: self.username,
                email: self.email,
                email_verified: self.email_verified_at.is_some(),
                created_at: self.created_at,
                has_password: !self.password_hash.is_empty(),
                second_factor: SecondFactor {
                    totp: self.totp > 0,
                    recovery_codes_left: self.codes_left.clamp(0, i64::from(u32::MAX)) as u32,
                    passkeys: self.passkeys.clamp(0, i64::from(u32::MAX)) as u32,
                },
                disabled: self.disabled_at.map(|since_ms| Disabled {
                    since_ms,
                    until_ms: self.disabled_until,
                    reason: self.disabled_reason,
                }),
            },
            password_hash: self.password_hash,
        }
    }
}

impl UserStore {
    /// `remember`: how long a user read for a Bearer request may be reused (zero: never).
    pub fn new(backend: Backend, timeout: Duration, metrics: Arc<Metrics>, remember: Duration, clock: Clock) -> Self {
        Self {
            clock,
            backend,
            timeout,
            profiles: Recent::new(remember, PROFILE_CAPACITY, &metrics.remembered, "user").map(Arc::new),
            metrics,
        }
    }

    /// Drops what this instance remembers of `id`, after changing its row.
    fn forget(&self, id: UserId) {
        if let Some(profiles) = &self.profiles {
            profiles.forget(&id);
        }
    }

    /// Runs one store call within the timeout and records its latency.
    async fn call<T>(
        &self,
        operation: &'static str,
        work: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = bounded(Dependency::Database, self.timeout, async {
            work.await.map_err(sql_error)
        })
        .await;
        self.metrics
            .observe_dependency(self.system(), operation, started.elapsed());
        result
    }

    /// Connections of the pool: (idle, in use).
    pub fn pool_connections(&self) -> (u32, u32) {
        let (size, idle) = match &self.backend {
            Backend::Postgres(pool) => (pool.size(), pool.num_idle() as u32),
            Backend::Sqlite(pool) => (pool.size(), pool.num_idle() as u32),
        };
        (idle, size.saturating_sub(idle))
    }

    /// The time this store writes with.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Inserts `user` (with its first passkey when it signs up without a password), and queues
    /// `verification` and writes `trail` in the same transaction; a taken email (in any letter
    /// case) is `EmailTaken`, decided by the unique index so two racing registrations cannot
    /// both succeed.
    #[tracing::instrument(name = "db.users.insert", skip_all, fields(db.system = self.system(), db.operation = "INSERT"))]
    pub async fn insert(
        &self,
        user: NewUser,
        passkey: Option<&NewPasskey<'_>>,
        verification: Option<&MailRequest>,
        trail: Trail<'_>,
    ) -> Result<User, InsertError> {
        // Microseconds, as both databases keep them: the value returned now equals the one
        // read back later.
        let now = self.clock.now();
        let result = self
            .call("users.insert", async {
                on_pool!(&self.backend, |pool| {
                    let mut tx = pool.begin().await?;
                    sqlx::query(
                        "insert into users (id, email, username, password_hash, created_at, updated_at) \
                         values ($1, $2, $3, $4, $5, $5)",
                    )
                    .bind(user.id.as_uuid())
                    .bind(user.email.as_str())
                    .bind(user.username.as_str())
                    .bind(&user.password_hash)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    if let Some(passkey) = passkey {
                        passkeys::insert_passkey!(tx, user.id, passkey, self.clock.now_ms());
                    }
                    if let Some(request) = verification {
                        mail_insert!(INSERT_MAIL, request, self.clock.now_ms())
                            .execute(&mut *tx)
                            .await?;
                    }
                    write_trail!(tx, &trail, user.id, self.clock.now_ms());
                    tx.commit().await
                })
            })
            .await;
        match result {
            Ok(()) => Ok(User {
                id: user.id,
                username: user.username.as_str().to_string(),
                email: user.email.as_str().to_string(),
                email_verified: false,
                created_at: now,
                has_password: !user.password_hash.is_empty(),
                second_factor: SecondFactor {
                    passkeys: u32::from(passkey.is_some()),
                    ..SecondFactor::default()
                },
                disabled: None,
            }),
            Err(StoreError::Failed(_, e)) if passkeys::is_taken_credential(&e) => Err(InsertError::PasskeyTaken),
            Err(StoreError::Failed(_, e)) if is_unique_violation(&e) => Err(InsertError::EmailTaken),
            Err(e) => Err(e.into()),
        }
    }

    #[tracing::instrument(name = "db.users.find_by_email", skip_all, fields(db.system = self.system(), db.operation = "SELECT"))]
    pub async fn find_by_email(&self, email: &Email) -> Result<Option<Credentials>, StoreError> {
        let row = self
            .call("users.find_by_email", async {
                // Case-insensitive the way each database's unique index is: lower(email) in
                // PostgreSQL (so the expression index serves the lookup), nocase in SQLite.
                match &self.backend {
                    Backend::Postgres(pool) => {
                        sqlx::query_as(select_user!("lower(email) = lower($1)"))
                            .bind(email.as_str())
                            .fetch_optional(pool)
                            .await
                    }
                    Backend::Sqlite(pool) => {
                        sqlx::query_as(select_user!("email = $1 collate nocase"))
                            .bind(email.as_str())
                            .fetch_optional(pool)
                            .await
                    }
                }
            })
            .await?;
        Ok(row.map(UserRow::into_credentials))
    }

    /// Replaces the password hash of `id` and writes `trail`; `false` when there is no such
    /// user. Every reset link of the account dies with the old password, and so do reset mails
    /// not sent yet.
    #[tracing::instrument(name = "db.users.set_password_hash", skip_all, fields(db.system = self.system(), db.operation = "UPDATE"))]
    pub async fn set_password_hash(&self, id: UserId, hash: &str, trail: Trail<'_>) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let updated = self
            .call("users.set_password_hash", async {
                on_pool!(&self.backend, |pool| {
                    let mut tx = pool.begin().await?;
                    let updated = sqlx::query("update users set password_hash = $2, updated_at = $3 where id = $1")
                        .bind(id.as_uuid())
                        .bind(hash)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                        > 0;
                    for statement in END_RESET_LINKS {
                        sqlx::query(statement).bind(id.as_uuid()).execute(&mut *tx).await?;
                    }
                    if !updated {
                        return Ok(false);
                    }
                    write_trail!(tx, &trail, id, self.clock.now_ms());
                    tx.commit().await?;
                    Ok(updated)
                })
            })
            .await?;
        self.forget(id);
        Ok(updated)
    }

    /// The user `id`, for a Bearer request: a row read within the configured window is
    /// answered from memory.
    pub async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let read = || async { Ok(self.find_credentials_by_id(id).await?.map(|c| c.user)) };
        match &self.profiles {
            Some(profiles) => profiles.get_or_read(id, read).await,
            None => read().await,
        }
    }

    /// The user and its password hash, by id (the row read for `find_by_id` holds both).
    #[tracing::instrument(name = "db.users.find_by_id", skip_all, fields(db.system = self.system(), db.operation = "SELECT"))]
    pub async fn find_credentials_by_id(&self, id: UserId) -> Result<Option<Credentials>, StoreError> {
        let row = self
            .call("users.find_by_id", async {
                on_pool!(&self.backend, |pool| {
                    sqlx::query_as(select_user!("id = $1"))
                        .bind(id.as_uuid())
                        .fetch_optional(pool)
                        .await
                })
            })
            .await?;
        Ok(row.map(UserRow::into_credentials))
    }

    /// A trivial query, for the readiness probe.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.call("ping", async {
            match &self.backend {
                Backend::Postgres(pool) => sqlx::query("select 1").execute(pool).await.map(drop),
                Backend::Sqlite(pool) => sqlx::query("select 1").execute(pool).await.map(drop),
            }
        })
        .await
    }

    fn system(&self) -> &'static str {
        match self.backend {
            Backend::Postgres(_) => "postgresql",
            Backend::Sqlite(_) => "sqlite",
        }
    }
}

pub(super) fn is_unique_violation(e: &anyhow::Error) -> bool {
    e.downcast_ref::<sqlx::Error>()
        .and_then(|e| e.as_database_error())
        .is_some_and(|db| db.is_unique_violation())
}
