//! Credentials and tokens: argon2id hashing on a bounded blocking pool, signed access tokens,
//! opaque refresh tokens. The refresh cookie that carries them is the HTTP layer's.

pub mod access_token;
pub mod keys;
pub mod passkey;
pub mod password;
pub mod refresh_token;
pub mod second_factor;
