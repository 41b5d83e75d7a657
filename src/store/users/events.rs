//! The security-event trail, beside the users it is about, so an event is written in the same
//! transaction as the change it records.

use time::OffsetDateTime;
use uuid::Uuid;

use super::statements::{event_insert, on_pool};
use super::{Backend, UserStore};
use crate::domain::{EventName, SecurityEvent, UserId, reason_of};
use crate::store::StoreError;

/// An advisory lock id of the retention cleanup, so one instance at a time runs it.
const PURGE_LOCK: i64 = 0x7365_6375_7269_7479;

#[derive(sqlx::FromRow)]
struct EventRow {
    id: Uuid,
    at: i64,
    name: String,
    user_id: Option<Uuid>,
    session_id: Option<Uuid>,
    ip: Option<String>,
    browser: Option<String>,
    reason: Option<String>,
    trace_id: Option<String>,
    actor: Option<String>,
}

impl EventRow {
    fn into_event(self) -> Option<SecurityEvent> {
        Some(SecurityEvent {
            id: self.id,
            at: OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.at) * 1_000_000).ok()?,
            name: EventName::parse(&self.name)?,
            user_id: self.user_id.map(UserId::from_uuid),
            session_id: self.session_id,
            ip: self.ip,
            browser: self.browser,
            reason: self.reason.as_deref().and_then(reason_of),
            trace_id: self.trace_id,
            actor: self.actor,
        })
    }
}

/// Where a page of events starts: after the last event of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventCursor {
    pub at_ms: i64,
    pub id: Uuid,
}

impl UserStore {
    /// Writes `events` in one transaction.
    #[tracing::instrument(name = "db.security_events.insert", skip_all, fields(db.system = self.system(), db.operation = "INSERT"))]
    pub async fn record_events(&self, events: &[SecurityEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        self.call("security_events.insert", async {
            on_pool!(&self.backend, |pool| {
                let mut tx = pool.begin().await?;
                for event in events {
                    event_insert!(event).execute(&mut *tx).await?;
                }
                tx.commit().await
            })
        })
        .await
    }

    /// Up to `limit` events of `user`, newest first, after `after` (the previous page's last).
    #[tracing::instrument(name = "db.security_events.select", skip_all, fields(db.system = self.system(), db.operation = "SELECT"))]
    pub async fn events_of(
        &self,
        user: UserId,
        after: Option<EventCursor>,
        limit: u32,
    ) -> Result<Vec<SecurityEvent>, StoreError> {
        let after = after.unwrap_or(EventCursor {
            at_ms: i64::MAX,
            id: Uuid::max(),
        });
        let rows: Vec<EventRow> = self
            .call("security_events.select", async {
                on_pool!(&self.backend, |pool| {
                    sqlx::query_as(
                        "select id, at, name, user_id, session_id, ip, browser, reason, trace_id, actor \
                         from security_events where user_id = $1 and (at < $2 or (at = $2 and id < $3)) \
                         order by at desc, id desc limit $4",
                    )
                    .bind(user.as_uuid())
                    .bind(after.at_ms)
                    .bind(after.id)
                    .bind(i64::from(limit))
                    .fetch_all(pool)
                    .await
                })
            })
            .await?;
        Ok(rows.into_iter().filter_map(EventRow::into_event).collect())
    }

    /// Deletes the events older than `before_ms`; how many, or `None` when another instance is
    /// running the same cleanup.
    pub async fn purge_events(&self, before_ms: i64) -> Result<Option<u64>, StoreError> {
        const DELETE: &str = "delete from security_events where at < $1";
        self.call("security_events.purge", async {
            match &self.backend {
                Backend::Postgres(pool) => {
                    let mut tx = pool.begin().await?;
                    let (locked,): (bool,) = sqlx::query_as("select pg_try_advisory_xact_lock($1)")
                        .bind(PURGE_LOCK)
                        .fetch_one(&mut *tx)
                        .await?;
                    if !locked {
                        return Ok(None);
                    }
                    let deleted = sqlx::query(DELETE).bind(before_ms).execute(&mut *tx).await?;
                    tx.commit().await?;
                    Ok(Some(deleted.rows_affected()))
                }
                // One process owns an embedded database.
                Backend::Sqlite(pool) => {
                    let deleted = sqlx::query(DELETE).bind(before_ms).execute(pool).await?;
                    Ok(Some(deleted.rows_affected()))
                }
            }
        })
        .await
    }
}
