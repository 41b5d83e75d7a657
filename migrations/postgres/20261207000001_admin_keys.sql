-- Keys of the admin listener (ADMIN_ADDR). A key is 256 random bits shown once by
-- `auth-api admin-keys create`; only its SHA-256 is kept. A revoked key keeps its row, so
-- the name stays taken and the list shows when it was revoked.
create table admin_keys (
    id          uuid primary key,
    name        text not null unique,
    key_hash    bytea not null unique,
    created_at  bigint not null,          -- ms since the Unix epoch
    revoked_at  bigint
);
