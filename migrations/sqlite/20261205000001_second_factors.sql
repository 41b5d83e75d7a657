-- Second factors (same shape as the PostgreSQL tables).
create table mfa_totp (
    user_id       blob primary key not null references users (id) on delete cascade,
    sealed_secret blob not null,
    created_at    integer not null,
    confirmed_at  integer,
    last_step     integer not null default -1
);

create table mfa_recovery_codes (
    user_id    blob not null references users (id) on delete cascade,
    code_hash  blob not null,
    used_at    integer,
    primary key (user_id, code_hash)
);
