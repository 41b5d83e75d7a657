//! Credentials and tokens: argon2id hashing on a bounded blocking pool, HS256 access tokens,
//! opaque refresh tokens, the refresh cookie, and the Bearer extractor.

pub mod access_token;
pub mod bearer;
pub mod cookie;
pub mod password;
pub mod refresh_token;
