//! Credentials and tokens: argon2id hashing on a bounded blocking pool, HS256 access tokens,
//! opaque refresh tokens, and the refresh cookie.

pub mod access_token;
pub mod cookie;
pub mod keys;
pub mod password;
pub mod refresh_token;
