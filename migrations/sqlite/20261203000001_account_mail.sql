-- Email verification, password reset, and the outbox their mails go through (same shape as
-- the PostgreSQL tables).

alter table users add column email_verified_at text;  -- RFC 3339; null until confirmed

create table mail_outbox (
    id              blob primary key not null,
    kind            text not null,
    email           text not null,
    user_id         blob,
    requested_ip    text,
    requested_ua    text,
    requested_at    integer not null,
    state           text not null default 'pending',
    attempts        integer not null default 0,
    next_attempt_at integer not null,
    locked_until    integer,
    last_error      text,
    done_at         integer
);
create index mail_outbox_due on mail_outbox (next_attempt_at) where state = 'pending';
create index mail_outbox_email on mail_outbox (email, requested_at);

create table account_tokens (
    token_hash  blob primary key not null,
    purpose     text not null,
    user_id     blob not null references users (id) on delete cascade,
    mail_id     blob not null,
    created_at  integer not null,
    expires_at  integer not null
);
create index account_tokens_user on account_tokens (user_id, purpose);
create index account_tokens_mail on account_tokens (mail_id);
