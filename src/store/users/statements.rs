//! The statements a change writes beside itself, shared by the user, mail and event code: the
//! inserts of the outbox and of the security trail, written once (`$n` parameters read the
//! same in PostgreSQL and SQLite), and the macros that bind them.

use crate::domain::{Client, MailKind, SecurityEvent, UserId};

/// Runs `$body` with `$conn` bound to the backend's pool (both arms type-check separately).
macro_rules! on_pool {
    ($backend:expr, |$conn:ident| $body:expr) => {
        match $backend {
            Backend::Postgres($conn) => $body,
            Backend::Sqlite($conn) => $body,
        }
    };
}
pub(super) use on_pool;

/// A mail somebody asked for, before it is queued.
#[derive(Debug, Clone)]
pub struct MailRequest {
    pub kind: MailKind,
    /// The address asked for, normalised.
    pub email: String,
    /// Set when the request knew the user (a verification on registration or by its owner).
    pub user_id: Option<UserId>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The asking request's trace, for the event the delivery records.
    pub trace_id: Option<String>,
}

impl MailRequest {
    /// A mail of `kind` to `email`, asked for by `client`.
    pub fn new(kind: MailKind, email: &str, user_id: Option<UserId>, client: &Client) -> Self {
        Self {
            kind,
            email: email.to_string(),
            user_id,
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            trace_id: client.trace_id.clone(),
        }
    }
}

/// What a change writes beside itself, in its transaction: its events, and a notice mailed to
/// the account's own address.
#[derive(Clone, Copy, Default)]
pub struct Trail<'a> {
    pub events: &'a [SecurityEvent],
    pub notice: Option<&'a MailRequest>,
}

/// Writes `$trail` in the transaction `$tx`: its events (for `$user` where they name none) and
/// the notice to `$user`'s address. A macro, so each backend's arm type-checks on its own.
macro_rules! write_trail {
    ($tx:expr, $trail:expr, $user:expr, $now_ms:expr) => {{
        let trail: &crate::store::users::statements::Trail<'_> = $trail;
        let user: crate::domain::UserId = $user;
        for event in trail.events {
            let mut event = event.clone();
            event.user_id.get_or_insert(user);
            crate::store::users::statements::event_insert!(&event)
                .execute(&mut *$tx)
                .await?;
        }
        if let Some(notice) = trail.notice {
            let notice = crate::store::users::statements::MailRequest {
                user_id: Some(user),
                ..notice.clone()
            };
            crate::store::users::statements::mail_insert!(
                crate::store::users::statements::INSERT_NOTICE,
                notice,
                None::<&str>,
                $now_ms
            )
            .execute(&mut *$tx)
            .await?;
        }
    }};
}
pub(super) use write_trail;

pub(super) const INSERT_MAIL: &str = "insert into mail_outbox \
     (id, kind, email, user_id, requested_ip, requested_ua, requested_at, next_attempt_at, trace_id) \
     values ($1, $2, $3, $4, $5, $6, $7, $7, $8)";

/// A notice to the account's own address (read in the transaction, `$3` unused but bound so
/// the parameters match [`INSERT_MAIL`]'s), for the user `$4`.
pub(crate) const INSERT_NOTICE: &str = "insert into mail_outbox \
     (id, kind, email, user_id, requested_ip, requested_ua, requested_at, next_attempt_at, trace_id) \
     select $1, $2, coalesce($3, email), id, $5, $6, $7, $7, $8 from users where id = $4";

/// What a new password ends, with the user's id as `$1`: every reset link of the account, and
/// every reset mail for its address not sent yet (its link would be minted after the change).
/// Both tables hold the address normalised (lowercase).
pub(super) const END_RESET_LINKS: [&str; 2] = [
    "delete from account_tokens where user_id = $1 and purpose = 'password_reset'",
    "update mail_outbox set state = 'skipped', locked_until = null \
     where kind = 'password_reset' and state = 'pending' \
     and email = (select email from users where id = $1)",
];

pub(super) const INSERT_EVENT: &str = "insert into security_events \
     (id, at, name, user_id, session_id, ip, browser, reason, trace_id, actor) \
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// `$sql` (one of the mail inserts) with the request's values bound as `$1`..`$8`.
macro_rules! mail_insert {
    ($sql:expr, $request:expr, $now:expr) => {
        mail_insert!($sql, $request, Some($request.email.as_str()), $now)
    };
    ($sql:expr, $request:expr, $email:expr, $now:expr) => {
        sqlx::query($sql)
            .bind(Uuid::now_v7())
            .bind($request.kind.as_str())
            .bind($email)
            .bind($request.user_id.map(|id| id.as_uuid()))
            .bind($request.ip.as_deref())
            .bind($request.user_agent.as_deref())
            .bind($now)
            .bind($request.trace_id.as_deref())
    };
}
pub(crate) use mail_insert;

/// [`INSERT_EVENT`] with `$event` bound.
macro_rules! event_insert {
    ($event:expr) => {{
        let event: &crate::domain::SecurityEvent = $event;
        sqlx::query(crate::store::users::statements::INSERT_EVENT)
            .bind(event.id)
            .bind((event.at.unix_timestamp_nanos() / 1_000_000) as i64)
            .bind(event.name.as_str())
            .bind(event.user_id.map(|id| id.as_uuid()))
            .bind(event.session_id)
            .bind(event.ip.as_deref())
            .bind(event.browser.as_deref())
            .bind(event.reason)
            .bind(event.trace_id.as_deref())
            .bind(event.actor.as_deref())
    }};
}
pub(super) use event_insert;
