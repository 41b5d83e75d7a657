-- Keys of the admin listener (same shape as the PostgreSQL table).
create table admin_keys (
    id          blob primary key not null,
    name        text not null unique,
    key_hash    blob not null unique,
    created_at  integer not null,
    revoked_at  integer
);
