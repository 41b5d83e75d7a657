-- Signing keys of access tokens (EdDSA/ES256); same shape as the PostgreSQL table.
create table signing_keys (
    kid           text primary key not null, -- RFC 7638 thumbprint of the public key
    alg           text not null,             -- EdDSA or ES256
    generation    integer not null unique,   -- 1, 2, 3...: racing instances create one key per step
    public_jwk    text not null,             -- the JWK published at /.well-known/jwks.json
    private_key   blob not null,             -- nonce || XChaCha20-Poly1305(PKCS#8), under KEYS_ENCRYPTION_KEY
    created_at    integer not null,          -- ms since the Unix epoch
    activates_at  integer not null,          -- first signature, ms
    revoked_at    integer                    -- set by `auth-api keys revoke`: never accepted again
);
