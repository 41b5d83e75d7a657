-- Passkeys (same shape as the PostgreSQL table).
create table passkeys (
    id              blob primary key not null,
    user_id         blob not null references users (id) on delete cascade,
    credential_id   text not null unique,
    name            text not null,
    credential      text not null,
    sign_count      integer not null default 0,
    backup_eligible boolean not null,
    backed_up       boolean not null,
    created_at      integer not null,
    last_used_at    integer
);
create index passkeys_user on passkeys (user_id);
