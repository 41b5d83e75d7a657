//! Time to issue and to verify one access token per algorithm, in process: HS256 under a shared
//! secret, EdDSA and ES256 through the key ring (the key chosen by `kid`, its `DecodingKey`
//! built once), as `/auth/me` verifies them.
//!
//! `verify_us` checks a token never seen before (a signature verification); `seen_us` one
//! verified before, which the key ring's tokens answer from memory (the key still looked up).
//!
//! Usage (bench/README.md): `cargo run --release --example token_verify`; prints µs per
//! operation, the median of 7 runs of `ITERATIONS` (default 20,000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_api::auth::access_token::AccessTokens;
use auth_api::auth::keys::{KeyAlgorithm, KeyRing, KeySet, Schedule, SealingKey, StoredKey, material};
use auth_api::config::{SigningAlgorithm, TokenSettings};
use auth_api::domain::{Assurance, UserId};
use secrecy::{ExposeSecret as _, SecretString};

fn settings(algorithm: SigningAlgorithm) -> TokenSettings {
    TokenSettings {
        secret: Some(SecretString::from("bench-secret-bench-secret-bench-secret")),
        algorithm,
        access_ttl: Duration::from_secs(300),
        refresh_ttl: Duration::from_secs(3600),
        session_lifetime: Duration::from_secs(3600),
        reuse_grace: Duration::from_secs(10),
        issuer: "auth-api".into(),
        audience: "auth-api".into(),
        leeway: Duration::from_secs(5),
    }
}

fn ring_of(alg: KeyAlgorithm) -> anyhow::Result<Arc<KeyRing>> {
    let sealing = SealingKey::from_base64(&SealingKey::generate_base64()?).expect("32 bytes");
    let key = material::generate(alg)?;
    let stored = StoredKey {
        private_key: sealing.seal(&key.kid, key.private_der.expose_secret())?,
        kid: key.kid,
        alg: alg.as_str().into(),
        generation: 1,
        public_jwk: key.public_jwk,
        created_at_ms: 0,
        activates_at_ms: 0,
        revoked_at_ms: None,
    };
    let schedule = Schedule {
        rotation_period: Duration::from_secs(3600),
        activation_delay: Duration::from_secs(360),
        retire_after: Duration::from_secs(305),
    };
    let ring = Arc::new(KeyRing::default());
    ring.replace(KeySet::build(&[stored], 1, &schedule, &sealing)?);
    Ok(ring)
}

/// µs per call of `f`, the median of 7 runs.
fn time(iterations: u32, mut f: impl FnMut()) -> f64 {
    let mut runs: Vec<f64> = (0..7)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..iterations {
                f();
            }
            started.elapsed().as_secs_f64() * 1e6 / f64::from(iterations)
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[3]
}

fn main() -> anyhow::Result<()> {
    let iterations: u32 = std::env::var("ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let cases = [
        ("HS256", AccessTokens::shared(&settings(SigningAlgorithm::Hs256))),
        (
            "EdDSA",
            AccessTokens::with_ring(&settings(SigningAlgorithm::EdDsa), ring_of(KeyAlgorithm::EdDsa)?),
        ),
        (
            "ES256",
            AccessTokens::with_ring(&settings(SigningAlgorithm::Es256), ring_of(KeyAlgorithm::Es256)?),
        ),
    ];
    println!("alg    issue_us  verify_us  seen_us");
    for (name, tokens) in cases {
        let token = tokens
            .issue(UserId::new(), uuid::Uuid::new_v4(), Assurance::Password)?
            .token;
        let issue = time(iterations / 4, || {
            std::hint::black_box(
                tokens
                    .issue(UserId::new(), uuid::Uuid::nil(), Assurance::Password)
                    .expect("issues"),
            );
        });
        // Fresh tokens for every verification of every run: none was seen before.
        let fresh: Vec<String> = (0..iterations * 7)
            .map(|_| {
                tokens
                    .issue(UserId::new(), uuid::Uuid::nil(), Assurance::Password)
                    .expect("issues")
                    .token
            })
            .collect();
        let mut next = fresh.iter();
        let verify = time(iterations, || {
            std::hint::black_box(tokens.verify(next.next().expect("enough tokens")).expect("verifies"));
        });
        let seen = time(iterations, || {
            std::hint::black_box(tokens.verify(&token).expect("verifies"));
        });
        println!("{name:<6} {issue:>9.1} {verify:>10.1} {seen:>8.1}");
    }
    Ok(())
}
