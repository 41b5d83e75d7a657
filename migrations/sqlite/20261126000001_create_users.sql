-- One row per account (the embedded store; same shape as the PostgreSQL table).
create table users (
    id            blob primary key not null,           -- UUIDv7, 16 bytes
    email         text not null,                       -- trimmed and lower-cased by the service
    username      text not null,                       -- display name, stored verbatim
    password_hash text not null,                       -- argon2id PHC string, never returned
    created_at    text not null,                       -- RFC 3339, UTC
    updated_at    text not null
);

create unique index users_email_key on users (email collate nocase);
