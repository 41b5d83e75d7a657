-- A user's TOTP factor: pending until its first code confirms it. The secret is sealed under
-- KEYS_ENCRYPTION_KEY (bound to the user's id) and never stored in the clear.
create table mfa_totp (
    user_id       uuid primary key references users (id) on delete cascade,
    sealed_secret bytea not null,
    created_at    bigint not null,      -- ms since the Unix epoch
    confirmed_at  bigint,               -- null while pending
    -- The newest time step accepted: a code of this step or an older one is refused, by a
    -- compare-and-set, so a code is used once across every instance.
    last_step     bigint not null default -1
);

-- Single-use recovery codes, as keyed hashes (HMAC-SHA-256 under a key derived from
-- KEYS_ENCRYPTION_KEY); a used code keeps its row until the set is replaced.
create table mfa_recovery_codes (
    user_id    uuid not null references users (id) on delete cascade,
    code_hash  bytea not null,
    used_at    bigint,
    primary key (user_id, code_hash)
);
