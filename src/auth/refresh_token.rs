//! Opaque tokens (mailed links, login challenges): 256 random bits, base64url; and refresh
//! tokens, which carry their user's id before those bits. The stores keep only their SHA-256.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256, Sha512};
use uuid::Uuid;

use crate::domain::UserId;

const TOKEN_BYTES: usize = 32;
/// Length of a token in base64url without padding.
pub const TOKEN_LEN: usize = 43;
/// A refresh token's bytes: the user's id (16), then 256 random bits.
const REFRESH_BYTES: usize = 16 + TOKEN_BYTES;
/// Length of a refresh token in base64url without padding.
pub const REFRESH_LEN: usize = 64;

/// A refresh token of `user`: its id, then 256 bits from the CSPRNG, base64url. The id lets a
/// store find the session's keys without a lookup (on Redis Cluster, the user's hash slot);
/// it grants nothing, since the store indexes the hash of the whole token, so a token whose id
/// was altered names no session.
pub fn refresh_token(user: UserId) -> String {
    let mut bytes = [0u8; REFRESH_BYTES];
    bytes[..16].copy_from_slice(user.as_uuid().as_bytes());
    getrandom::fill(&mut bytes[16..]).expect("the operating system's random source is unavailable");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The user a refresh token names, when `raw` has the shape of one (64 base64url characters;
/// the decoding refuses any other character): the cheap rejection of junk before any I/O.
pub fn user_of(raw: &str) -> Option<UserId> {
    if raw.len() != REFRESH_LEN {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
    Some(UserId::from_uuid(Uuid::from_slice(&bytes[..16]).ok()?))
}

/// 256 bits from the operating system's CSPRNG, base64url-encoded.
pub fn random_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).expect("the operating system's random source is unavailable");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The SHA-256 of a refresh token: what the stores index and compare.
///
/// A plain hash suffices (no salt or stretching): the input already has 256 bits of entropy,
/// so the hash cannot be reversed by guessing, and a leaked store yields no usable token.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn to_hex(self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash({}…)", &self.to_hex()[..8])
    }
}

/// Whether `raw` has the shape of one of our tokens (cheap rejection of junk before any I/O).
pub fn looks_valid(raw: &str) -> bool {
    raw.len() == TOKEN_LEN && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The refresh token `successor` encrypted under a key only the holder of `presented` can
/// derive.
///
/// After a rotation the store must be able to hand the same successor to a second tab that
/// presents the just-retired token within the grace window, yet it must not hold a usable
/// token in clear. The pad is SHA-512("seal" ‖ presented): the store has only
/// SHA-256(presented), from which the pad cannot be computed.
pub fn seal(successor: &str, presented: &str) -> String {
    let bytes = URL_SAFE_NO_PAD
        .decode(successor)
        .expect("successor is one of our refresh tokens");
    let pad = pad(presented);
    URL_SAFE_NO_PAD.encode(bytes.iter().zip(pad).map(|(b, p)| b ^ p).collect::<Vec<u8>>())
}

/// Inverse of [`seal`]; `None` when `sealed` is not a sealed refresh token.
pub fn unseal(sealed: &str, presented: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(sealed)
        .ok()
        .filter(|b| b.len() == REFRESH_BYTES)?;
    let pad = pad(presented);
    Some(URL_SAFE_NO_PAD.encode(bytes.iter().zip(pad).map(|(b, p)| b ^ p).collect::<Vec<u8>>()))
}

fn pad(presented: &str) -> [u8; 64] {
    let mut h = Sha512::new();
    h.update(b"auth-api refresh seal v2\0");
    h.update(presented.as_bytes());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_distinct_and_well_formed() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert!(looks_valid(&a) && looks_valid(&b));
        assert!(!looks_valid("not-a-token"));
        assert!(!looks_valid(&format!("{}=", &a[..42])));
    }

    #[test]
    fn a_refresh_token_names_its_user_and_nothing_else_of_it() {
        let user = UserId::new();
        let (a, b) = (refresh_token(user), refresh_token(user));
        assert_ne!(a, b);
        assert!(!looks_valid(&a));
        assert_eq!(user_of(&a), Some(user));
        assert_eq!(user_of(&random_token()), None, "a 43-character token names no user");
        assert_eq!(user_of(&format!("{}=", &a[..63])), None);
        assert_eq!(user_of(&format!("{}.", &a[..63])), None);
    }

    #[test]
    fn seal_round_trips_only_with_the_presented_token() {
        let user = UserId::new();
        let (presented, successor) = (refresh_token(user), refresh_token(user));
        let sealed = seal(&successor, &presented);
        assert_ne!(sealed, successor);
        assert_eq!(unseal(&sealed, &presented).as_deref(), Some(successor.as_str()));
        assert_ne!(
            unseal(&sealed, &refresh_token(user)).as_deref(),
            Some(successor.as_str())
        );
    }

    #[test]
    fn hash_is_sha256() {
        assert_eq!(
            TokenHash::of("abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
