//! The signing keys of access tokens, as every instance sees them: which key signs, which keys
//! verify (and are published in the JWKS), computed from the stored keys and the clock alone, so
//! replicas that read the same rows agree without talking to each other.
//!
//! A key's life: *next* (published, not signing yet, so that every verifier's cached JWKS knows
//! it before the first token it signs), *active* (signing), *retired* (a newer key signs; still
//! published until the last token it signed has expired), then *expired* (deleted). A *revoked*
//! key is neither published nor accepted.

pub mod material;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{DecodingKey, EncodingKey, Header};
use secrecy::ExposeSecret as _;

pub use material::{KeyAlgorithm, SealingKey};

/// The `typ` header of an access token (RFC 9068).
pub const TYP: &str = "at+jwt";

/// A signing key as the store keeps it.
#[derive(Clone, Debug)]
pub struct StoredKey {
    /// RFC 7638 thumbprint of the public key.
    pub kid: String,
    pub alg: String,
    /// 1, 2, 3…: unique, so two instances racing to rotate create one key between them.
    pub generation: i64,
    pub public_jwk: String,
    /// `nonce ‖ ciphertext` under `KEYS_ENCRYPTION_KEY`.
    pub private_key: Vec<u8>,
    pub created_at_ms: i64,
    pub activates_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

/// When keys rotate and how long each stage lasts.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    pub rotation_period: Duration,
    /// From publication to the first signature: the JWKS cache lifetime plus the reload interval.
    pub activation_delay: Duration,
    /// From a key's last signature to its removal: the access token lifetime plus leeway.
    pub retire_after: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    Next,
    Active,
    Retired,
    Expired,
    Revoked,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Active => "active",
            Self::Retired => "retired",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }

    fn published(self) -> bool {
        matches!(self, Self::Next | Self::Active | Self::Retired)
    }
}

/// The state of each key of `keys` (same order) at `now_ms`.
pub fn states(keys: &[StoredKey], now_ms: i64, schedule: &Schedule) -> Vec<KeyState> {
    let mut live: Vec<usize> = (0..keys.len()).filter(|&i| keys[i].revoked_at_ms.is_none()).collect();
    live.sort_by_key(|&i| (keys[i].activates_at_ms, keys[i].generation));
    // The newest key already due signs; before the first activation, the first key does.
    let active = live
        .iter()
        .rposition(|&i| keys[i].activates_at_ms <= now_ms)
        .unwrap_or(0);
    let retire_ms = schedule.retire_after.as_millis() as i64;
    let mut states = vec![KeyState::Revoked; keys.len()];
    for (position, &i) in live.iter().enumerate() {
        states[i] = match position.cmp(&active) {
            std::cmp::Ordering::Greater => KeyState::Next,
            std::cmp::Ordering::Equal => KeyState::Active,
            std::cmp::Ordering::Less => {
                let last_signature = keys[live[position + 1]].activates_at_ms;
                if now_ms < last_signature + retire_ms {
                    KeyState::Retired
                } else {
                    KeyState::Expired
                }
            }
        };
    }
    states
}

/// The key that signs, and the header (algorithm, `typ`, `kid`) of the tokens it signs.
pub struct Signer {
    pub key: EncodingKey,
    pub header: Header,
}

/// A published key, with its decoding key built once.
pub struct Verifier {
    pub alg: KeyAlgorithm,
    pub key: DecodingKey,
}

/// What an instance signs and verifies with until the next reload.
pub struct KeySet {
    pub signer: Signer,
    pub verifiers: HashMap<String, Verifier>,
    /// `{"keys":[…]}`, the public JWKS.
    pub jwks: String,
}

impl KeySet {
    /// The key set of `keys` at `now_ms`; fails when no key can sign or a private key does not
    /// open under `sealing` (the wrong `KEYS_ENCRYPTION_KEY`).
    pub fn build(keys: &[StoredKey], now_ms: i64, schedule: &Schedule, sealing: &SealingKey) -> anyhow::Result<Self> {
        let states = states(keys, now_ms, schedule);
        let mut signer = None;
        let mut verifiers = HashMap::new();
        let mut published = Vec::new();
        for (key, state) in keys.iter().zip(&states) {
            if !state.published() {
                continue;
            }
            let alg = KeyAlgorithm::parse(&key.alg)
                .ok_or_else(|| anyhow::anyhow!("key {}: unknown alg {}", key.kid, key.alg))?;
            let jwk: Jwk = serde_json::from_str(&key.public_jwk)?;
            verifiers.insert(
                key.kid.clone(),
                Verifier {
                    alg,
                    key: DecodingKey::from_jwk(&jwk)?,
                },
            );
            published.push(jwk);
            if *state == KeyState::Active {
                let private = sealing.open(&key.kid, &key.private_key).ok_or_else(|| {
                    anyhow::anyhow!("KEYS_ENCRYPTION_KEY does not open the stored signing key {}", key.kid)
                })?;
                let mut header = Header::new(alg.jwt());
                header.typ = Some(TYP.into());
                header.kid = Some(key.kid.clone());
                signer = Some(Signer {
                    key: material::encoding_key(alg, private.expose_secret()),
                    header,
                });
            }
        }
        let signer = signer.ok_or_else(|| anyhow::anyhow!("no signing key is usable"))?;
        let jwks = serde_json::to_string(&serde_json::json!({ "keys": published }))?;
        Ok(Self {
            signer,
            verifiers,
            jwks,
        })
    }
}

/// The current key set, replaced whole at each reload.
#[derive(Default)]
pub struct KeyRing(RwLock<Option<Arc<KeySet>>>);

impl KeyRing {
    pub fn current(&self) -> Option<Arc<KeySet>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace(&self, keys: KeySet) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(keys));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(generation: i64, activates_at_ms: i64) -> StoredKey {
        StoredKey {
            kid: format!("k{generation}"),
            alg: "EdDSA".into(),
            generation,
            public_jwk: String::new(),
            private_key: Vec::new(),
            created_at_ms: activates_at_ms,
            activates_at_ms,
            revoked_at_ms: None,
        }
    }

    #[test]
    fn a_key_is_next_then_active_then_retired_then_expired() {
        use KeyState::*;
        let schedule = Schedule {
            rotation_period: Duration::from_secs(100),
            activation_delay: Duration::from_secs(10),
            retire_after: Duration::from_secs(5),
        };
        let keys = [key(1, 0), key(2, 100_000)];
        let at = |ms| states(&keys, ms, &schedule);
        assert_eq!(at(50_000), [Active, Next], "published before it signs");
        assert_eq!(
            at(100_000),
            [Retired, Active],
            "the successor signs from its activation"
        );
        assert_eq!(at(104_999), [Retired, Active], "kept while its last tokens live");
        assert_eq!(at(105_000), [Expired, Active]);
        let mut revoked = keys.clone();
        revoked[1].revoked_at_ms = Some(1);
        assert_eq!(states(&revoked, 200_000, &schedule), [Active, Revoked]);
    }
}
