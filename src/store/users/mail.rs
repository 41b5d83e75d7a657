//! The mail outbox and the single-use tokens of the links in those mails, beside the users
//! they belong to (so a mail is queued in the same transaction as what asked for it).
//!
//! The statements are written once: `$n` parameters read the same in PostgreSQL and SQLite.
//! Only claiming differs: PostgreSQL skips rows another instance holds (`for update skip
//! locked`); SQLite has one writer at a time, which makes the same update exclusive.

use std::future::Future;
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use super::statements::{END_RESET_LINKS, event_insert, mail_insert, on_pool, write_trail};
use super::statements::{MailRequest, Trail};
use super::{Backend, UserStore};
use crate::domain::{MailKind, SecurityEvent, UserId};
use crate::store::StoreError;

/// A queued mail a sender has claimed.
#[derive(Debug, Clone)]
pub struct ClaimedMail {
    pub id: Uuid,
    pub kind: MailKind,
    pub email: String,
    pub user_id: Option<UserId>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub requested_at: OffsetDateTime,
    /// Including this one.
    pub attempts: u32,
    pub trace_id: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: Uuid,
    kind: String,
    email: String,
    user_id: Option<Uuid>,
    requested_ip: Option<String>,
    requested_ua: Option<String>,
    requested_at: i64,
    attempts: i32,
    trace_id: Option<String>,
}

/// What presenting a link's token found.
#[derive(Debug)]
pub enum TokenUse<T> {
    /// No such token (never issued, already used, or superseded).
    Unknown,
    /// Issued but past its lifetime; it is gone now.
    Expired,
    Used(UserId, T),
}

const INSERT_MAIL_UNLESS_THROTTLED: &str = "insert into mail_outbox \
     (id, kind, email, user_id, requested_ip, requested_ua, requested_at, next_attempt_at, trace_id) \
     select $1, $2, $3, $4, $5, $6, $7, $7, $8 \
     where (select count(*) from mail_outbox where email = $3 and requested_at > $9 \
     and kind in ('password_reset', 'email_verify')) < $10";

const CLAIM_FROM: &str = "select id from mail_outbox \
     where state = 'pending' and next_attempt_at <= $2 and (locked_until is null or locked_until <= $2) \
     order by next_attempt_at limit $3";

fn claim_sql(rows: &str) -> String {
    format!(
        "update mail_outbox set locked_until = $1, attempts = attempts + 1 where id in ({rows}) \
         returning id, kind, email, user_id, requested_ip, requested_ua, requested_at, attempts, trace_id"
    )
}

impl UserStore {
    /// Queues `request` unless its address already had `per_hour` mails queued in the last
    /// hour; `false` when it was throttled. The count covers resets and verifications alike,
    /// and addresses with no account alike, so the answer does not depend on whether the
    /// account exists. "Password changed" notices are not requests anyone can make for an
    /// address, so they neither count nor are throttled.
    #[tracing::instrument(name = "db.mail_outbox.insert", skip_all, fields(db.system = self.system(), db.operation = "INSERT"))]
    pub async fn queue_mail(&self, request: &MailRequest, per_hour: u32) -> Result<bool, StoreError> {
        let now = self.clock.now_ms();
        let since = now - 3_600_000;
        self.call("mail_outbox.insert", async {
            let inserted = match &self.backend {
                // Under READ COMMITTED concurrent inserts for one address would each count the
                // others' rows as absent: a transaction-scoped lock on the address makes the
                // count and the insert one step. (SQLite runs the statement under its one
                // write lock already.)
                Backend::Postgres(pool) => {
                    let mut tx = pool.begin().await?;
                    sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 0))")
                        .bind(request.email.as_str())
                        .execute(&mut *tx)
                        .await?;
                    let done = mail_insert!(INSERT_MAIL_UNLESS_THROTTLED, request, now)
                        .bind(since)
                        .bind(i64::from(per_hour))
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    done.rows_affected()
                }
                Backend::Sqlite(pool) => mail_insert!(INSERT_MAIL_UNLESS_THROTTLED, request, now)
                    .bind(since)
                    .bind(i64::from(per_hour))
                    .execute(pool)
                    .await?
                    .rows_affected(),
            };
            Ok(inserted > 0)
        })
        .await
    }

    /// Claims up to `limit` due mails for `lease`; each claim counts as an attempt, so a mail
    /// whose sender died mid-way is retried after the lease, and dies after its last attempt.
    pub async fn claim_mail(&self, lease: Duration, limit: u32) -> Result<Vec<ClaimedMail>, StoreError> {
        let now = self.clock.now_ms();
        let until = now + lease.as_millis() as i64;
        let rows: Vec<ClaimedRow> = self
            .call("mail_outbox.claim", async {
                match &self.backend {
                    Backend::Postgres(pool) => {
                        let sql = claim_sql(&format!("{CLAIM_FROM} for update skip locked"));
                        sqlx::query_as(sqlx::AssertSqlSafe(sql))
                            .bind(until)
                            .bind(now)
                            .bind(i64::from(limit))
                            .fetch_all(pool)
                            .await
                    }
                    Backend::Sqlite(pool) => {
                        sqlx::query_as(sqlx::AssertSqlSafe(claim_sql(CLAIM_FROM)))
                            .bind(until)
                            .bind(now)
                            .bind(i64::from(limit))
                            .fetch_all(pool)
                            .await
                    }
                }
            })
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                Some(ClaimedMail {
                    id: row.id,
                    kind: MailKind::parse(&row.kind)?,
                    email: row.email,
                    user_id: row.user_id.map(UserId::from_uuid),
                    ip: row.requested_ip,
                    user_agent: row.requested_ua,
                    requested_at: OffsetDateTime::from_unix_timestamp_nanos(i128::from(row.requested_at) * 1_000_000)
                        .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                    attempts: row.attempts.max(0) as u32,
                    trace_id: row.trace_id,
                })
            })
            .collect())
    }

    /// Stores the hash of the token `mail` carries, replacing the one of an earlier attempt at
    /// the same mail (that mail never arrived, or if it did, its link is superseded).
    pub async fn mint_token(
        &self,
        mail: &ClaimedMail,
        user: UserId,
        token_hash: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let expires = now + ttl.as_millis() as i64;
        self.call("account_tokens.insert", async {
            on_pool!(&self.backend, |pool| {
                let mut tx = pool.begin().await?;
                sqlx::query("delete from account_tokens where mail_id = $1")
                    .bind(mail.id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "insert into account_tokens (token_hash, purpose, user_id, mail_id, created_at, expires_at) \
                     values ($1, $2, $3, $4, $5, $6)",
                )
                .bind(token_hash)
                .bind(mail.kind.as_str())
                .bind(user.as_uuid())
                .bind(mail.id)
                .bind(now)
                .bind(expires)
                .execute(&mut *tx)
                .await?;
                tx.commit().await
            })
        })
        .await
    }

    /// Ends a claimed mail: `sent`, `skipped` (nothing to send: no such account, or already
    /// verified) or `dead` (out of attempts), and records `events` with it.
    pub async fn finish_mail(
        &self,
        id: Uuid,
        state: &'static str,
        error: Option<&str>,
        events: &[SecurityEvent],
    ) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        self.call("mail_outbox.finish", async {
            on_pool!(&self.backend, |pool| {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "update mail_outbox set state = $2, done_at = $3, locked_until = null, \
                     last_error = coalesce($4, last_error) where id = $1",
                )
                .bind(id)
                .bind(state)
                .bind(now)
                .bind(error)
                .execute(&mut *tx)
                .await?;
                for event in events {
                    event_insert!(event).execute(&mut *tx).await?;
                }
                tx.commit().await
            })
        })
        .await
    }

    /// Releases a mail whose attempt failed, due again after `retry_in`.
    pub async fn retry_mail(&self, id: Uuid, retry_in: Duration, error: &str) -> Result<(), StoreError> {
        let next = self.clock.now_ms() + retry_in.as_millis() as i64;
        self.call("mail_outbox.retry", async {
            on_pool!(&self.backend, |pool| {
                sqlx::query(
                    "update mail_outbox set next_attempt_at = $2, locked_until = null, last_error = $3 where id = $1",
                )
                .bind(id)
                .bind(next)
                .bind(error)
                .execute(pool)
                .await
                .map(drop)
            })
        })
        .await
    }

    /// Gives back a claimed mail that was not attempted.
    pub async fn release_mail(&self, id: Uuid) -> Result<(), StoreError> {
        self.call("mail_outbox.release", async {
            on_pool!(&self.backend, |pool| {
                sqlx::query("update mail_outbox set locked_until = null, attempts = attempts - 1 where id = $1")
                    .bind(id)
                    .execute(pool)
                    .await
                    .map(drop)
            })
        })
        .await
    }

    /// Mails waiting to be sent, and how long the oldest of them has waited.
    pub async fn pending_mail(&self) -> Result<(i64, Duration), StoreError> {
        let (count, oldest): (i64, Option<i64>) = self
            .call("mail_outbox.count", async {
                on_pool!(&self.backend, |pool| {
                    sqlx::query_as("select count(*), min(requested_at) from mail_outbox where state = 'pending'")
                        .fetch_one(pool)
                        .await
                })
            })
            .await?;
        let waited = oldest.map_or(0, |at| (self.clock.now_ms() - at).max(0));
        Ok((count, Duration::from_millis(waited as u64)))
    }

    /// Deletes expired tokens, and finished mails older than `keep` (the per-address count
    /// needs the last hour of them).
    pub async fn purge_mail(&self, keep: Duration) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let before = now - keep.as_millis() as i64;
        self.call("mail_outbox.purge", async {
            on_pool!(&self.backend, |pool| {
                sqlx::query("delete from account_tokens where expires_at <= $1")
                    .bind(now)
                    .execute(pool)
                    .await?;
                sqlx::query("delete from mail_outbox where state <> 'pending' and requested_at < $1")
                    .bind(before)
                    .execute(pool)
                    .await
                    .map(drop)
            })
        })
        .await
    }

    /// The user a live token of `purpose` belongs to, without using it up (so a request with a
    /// dead link costs no password hashing).
    pub async fn peek_token(&self, purpose: MailKind, token_hash: &[u8]) -> Result<TokenUse<()>, StoreError> {
        let row: Option<(Uuid, i64)> = self
            .call("account_tokens.select", async {
                on_pool!(&self.backend, |pool| {
                    sqlx::query_as(
                        "select user_id, expires_at from account_tokens where token_hash = $1 and purpose = $2",
                    )
                    .bind(token_hash)
                    .bind(purpose.as_str())
                    .fetch_optional(pool)
                    .await
                })
            })
            .await?;
        Ok(match row {
            None => TokenUse::Unknown,
            Some((_, expires)) if expires <= self.clock.now_ms() => TokenUse::Expired,
            Some((user, _)) => TokenUse::Used(UserId::from_uuid(user), ()),
        })
    }

    /// Uses up a password-reset token and sets `password_hash`, queueing `notice` to the
    /// account's address; see [`Self::use_token`].
    pub async fn reset_password<F, Fut, T>(
        &self,
        token_hash: &[u8],
        password_hash: &str,
        revoke: F,
        trail: Trail<'_>,
    ) -> Result<TokenUse<T>, StoreError>
    where
        F: FnOnce(UserId) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        self.use_token(MailKind::PasswordReset, token_hash, Some(password_hash), revoke, trail)
            .await
    }

    /// Uses up an email-verification token; see [`Self::use_token`].
    pub async fn verify_email(&self, token_hash: &[u8], trail: Trail<'_>) -> Result<TokenUse<()>, StoreError> {
        self.use_token(MailKind::EmailVerify, token_hash, None, |_| async { Ok(()) }, trail)
            .await
    }

    /// Uses up a token of `purpose`, in one transaction: the token is deleted (so of two racing
    /// requests one finds it), `before` runs (a password reset ends the user's sessions there;
    /// its failure rolls everything back, token included), then the address counts as verified
    /// (the link reached its mailbox), `password_hash` replaces the password when given,
    /// every other token of the user for `purpose` dies, and `trail` is written (its events
    /// for the token's user).
    #[tracing::instrument(name = "db.users.use_token", skip_all, fields(db.system = self.system(), db.operation = "UPDATE", purpose = purpose.as_str()))]
    async fn use_token<F, Fut, T>(
        &self,
        purpose: MailKind,
        token_hash: &[u8],
        password_hash: Option<&str>,
        before: F,
        trail: Trail<'_>,
    ) -> Result<TokenUse<T>, StoreError>
    where
        F: FnOnce(UserId) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let now = self.clock.now();
        let mut before = Some(before);
        self.call("users.use_token", async {
            on_pool!(&self.backend, |pool| {
                let mut tx = pool.begin().await?;
                let found: Option<(Uuid, i64)> = sqlx::query_as(
                    "delete from account_tokens where token_hash = $1 and purpose = $2 returning user_id, expires_at",
                )
                .bind(token_hash)
                .bind(purpose.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                let Some((user, expires)) = found else {
                    return Ok(Ok(TokenUse::Unknown));
                };
                if expires <= self.clock.now_ms() {
                    tx.commit().await?;
                    return Ok(Ok(TokenUse::Expired));
                }
                let before = before.take().expect("runs once");
                let done = match before(UserId::from_uuid(user)).await {
                    Ok(done) => done,
                    // Dropping `tx` rolls back: the token stays valid for a retry.
                    Err(e) => return Ok(Err(e)),
                };
                sqlx::query(
                    "update users set password_hash = coalesce($2, password_hash), updated_at = $3, \
                     email_verified_at = coalesce(email_verified_at, $3) where id = $1",
                )
                .bind(user)
                .bind(password_hash)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query("delete from account_tokens where user_id = $1 and purpose = $2")
                    .bind(user)
                    .bind(purpose.as_str())
                    .execute(&mut *tx)
                    .await?;
                if password_hash.is_some() {
                    for statement in END_RESET_LINKS {
                        sqlx::query(statement).bind(user).execute(&mut *tx).await?;
                    }
                }
                write_trail!(tx, &trail, UserId::from_uuid(user), self.clock.now_ms());
                tx.commit().await?;
                Ok(Ok(TokenUse::Used(UserId::from_uuid(user), done)))
            })
        })
        .await
        .and_then(|inner| inner)
        .inspect(|used| {
            if let TokenUse::Used(user, _) = used {
                self.forget(*user);
            }
        })
    }
}
