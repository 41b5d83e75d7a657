-- Email verification, password reset, and the outbox their mails go through.

alter table users add column email_verified_at timestamptz;  -- null until the address is confirmed

-- One row per mail asked for, written in the request's own transaction; a background sender
-- on any instance claims due rows (for update skip locked) and delivers them. The link's token
-- is minted at delivery and stored only as its hash (account_tokens), so no plaintext token
-- ever reaches the database.
create table mail_outbox (
    id              uuid primary key,
    kind            text not null,         -- password_reset or email_verify
    email           text not null,         -- the address asked for, normalised
    user_id         uuid,                  -- set when the request knew the user
    requested_ip    text,                  -- told in the mail: who asked
    requested_ua    text,
    requested_at    bigint not null,       -- ms since the Unix epoch
    state           text not null default 'pending',  -- pending, sent, skipped or dead
    attempts        integer not null default 0,
    next_attempt_at bigint not null,       -- ms; due when <= now
    locked_until    bigint,                -- ms; a sender's claim, released on failure
    last_error      text,                  -- the SMTP failure, for operators
    done_at         bigint                 -- ms; sent, skipped or dead
);
create index mail_outbox_due on mail_outbox (next_attempt_at) where state = 'pending';
create index mail_outbox_email on mail_outbox (email, requested_at);

-- Single-use tokens of the links in those mails: only their SHA-256 is kept.
create table account_tokens (
    token_hash  bytea primary key,
    purpose     text not null,             -- password_reset or email_verify
    user_id     uuid not null references users (id) on delete cascade,
    mail_id     uuid not null,             -- the outbox row whose mail carries it
    created_at  bigint not null,           -- ms
    expires_at  bigint not null            -- ms
);
create index account_tokens_user on account_tokens (user_id, purpose);
create index account_tokens_mail on account_tokens (mail_id);
