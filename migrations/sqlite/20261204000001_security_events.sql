-- What happened to accounts (same shape as the PostgreSQL table).
create table security_events (
    id          blob primary key not null,
    at          integer not null,
    name        text not null,
    user_id     blob,
    session_id  blob,
    ip          text,
    browser     text,
    reason      text,
    trace_id    text
);
create index security_events_user on security_events (user_id, at desc, id desc);
create index security_events_at on security_events (at);

alter table mail_outbox add column trace_id text;
