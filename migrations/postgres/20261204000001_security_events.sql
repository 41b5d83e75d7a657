-- What happened to accounts: one row per security event, kept for SECURITY_EVENTS_RETENTION.
-- No foreign key to users: the trail of an account outlives the account, for operators.
create table security_events (
    id          uuid primary key,      -- UUIDv7
    at          bigint not null,       -- ms since the Unix epoch
    name        text not null,         -- user.registered, login.failed … (closed set)
    user_id     uuid,                  -- null for an unknown address or a signing-key event
    session_id  uuid,
    ip          text,                  -- the client's address, through trusted proxies
    browser     text,                  -- a browser and OS family, never the User-Agent text
    reason      text,                  -- why, or by what (closed set)
    trace_id    text                   -- the request's trace, 32 hex digits
);
-- A user's own events, newest first (keyset paging on (at, id)).
create index security_events_user on security_events (user_id, at desc, id desc);
create index security_events_at on security_events (at);

-- The trace of the request that queued a mail, for the event its delivery records.
alter table mail_outbox add column trace_id text;
