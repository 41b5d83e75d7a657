-- Signing keys of access tokens (EdDSA/ES256). Every instance reads them all and derives which
-- one signs from the clock (src/auth/keys): next, active, retired, then deleted.
create table signing_keys (
    kid           text primary key,        -- RFC 7638 thumbprint of the public key
    alg           text not null,           -- EdDSA or ES256
    generation    bigint not null unique,  -- 1, 2, 3...: racing instances create one key per step
    public_jwk    text not null,           -- the JWK published at /.well-known/jwks.json
    private_key   bytea not null,          -- nonce || XChaCha20-Poly1305(PKCS#8), under KEYS_ENCRYPTION_KEY
    created_at    bigint not null,         -- ms since the Unix epoch
    activates_at  bigint not null,         -- first signature, ms
    revoked_at    bigint                   -- set by `auth-api keys revoke`: never accepted again
);
