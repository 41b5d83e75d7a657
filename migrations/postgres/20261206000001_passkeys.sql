-- Passkeys (WebAuthn credentials). `credential` is the verified credential as the WebAuthn
-- library serialises it (public key, algorithm, counter, flags): nothing secret. A credential
-- id is unique across users, so one authenticator's key cannot sign two accounts in.
create table passkeys (
    id              uuid primary key,
    user_id         uuid not null references users (id) on delete cascade,
    credential_id   text not null unique,      -- base64url, as the browser sends it
    name            text not null,
    credential      text not null,
    -- The signature counter last accepted: a sign-in whose counter is not above it is refused
    -- (a cloned authenticator), and the update is a compare-and-set on it.
    sign_count      bigint not null default 0,
    backup_eligible boolean not null,
    backed_up       boolean not null,
    created_at      bigint not null,           -- ms since the Unix epoch
    last_used_at    bigint
);
create index passkeys_user on passkeys (user_id);
