//! EdDSA/ES256 access tokens: the JWKS, verification by `kid` with the key's own algorithm,
//! rotation that logs nobody out, revocation, replicas, and the attacks on the header.

use auth_api::audit::Audit;
use auth_api::clock::Clock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::*;
use auth_api::startup::keys::KeyManager;
use auth_api::store::users::UserStore;

/// A `KEYS_ENCRYPTION_KEY` for the tests (32 bytes of 0x2a).
pub const TEST_KEYS_KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

/// Public-key tokens: no shared secret, the test sealing key.
fn keyed(alg: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("ACCESS_TOKEN_SECRET", ""),
        ("ACCESS_TOKEN_ALG", alg),
        ("KEYS_ENCRYPTION_KEY", TEST_KEYS_KEY),
    ]
}

fn header_of(token: &str) -> Value {
    let part = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

async fn jwks(app: &TestApp) -> Value {
    app.get("/.well-known/jwks.json").await.json().await.unwrap()
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

async fn users_of(settings: &auth_api::config::Settings) -> UserStore {
    auth_api::startup::connect_users(settings, Default::default(), &Clock::system())
        .await
        .unwrap()
}

fn audit_of(users: &UserStore) -> Audit {
    Audit::new(users.clone(), Default::default(), Clock::system())
}

backend_tests! {
    async fn tokens_carry_the_kid_of_a_published_key(backend: Backend) {
        for alg in ["EdDSA", "ES256"] {
            let app = spawn_app_with(backend, &keyed(alg)).await;
            let tokens = app.signed_up("keys@example.com").await;
            let header = header_of(&tokens.access);
            assert_eq!(header["alg"], alg);
            assert_eq!(header["typ"], "at+jwt");

            let response = app.get("/.well-known/jwks.json").await;
            assert_eq!(response.status(), 200);
            assert_eq!(response.headers()["cache-control"], "public, max-age=300");
            let set: Value = response.json().await.unwrap();
            assert_eq!(kids(&set), [header["kid"].as_str().unwrap()], "{set}");
            for key in set["keys"].as_array().unwrap() {
                assert!(key.get("d").is_none(), "a private parameter is published: {key}");
                assert_eq!(key["alg"], alg);
                assert_eq!(key["use"], "sig");
            }
            assert_eq!(app.me(&tokens.access).await.status(), 200, "{alg} token verifies");
        }
    }

    async fn forged_headers_are_refused(backend: Backend) {
        let app = spawn_app_with(backend, &keyed("EdDSA")).await;
        let tokens = app.signed_up("forged@example.com").await;
        let real_kid = header_of(&tokens.access)["kid"].as_str().unwrap().to_string();
        let claims: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD.decode(tokens.access.split('.').nth(1).unwrap()).unwrap(),
        )
        .unwrap();
        let set = jwks(&app).await;
        let public_x = URL_SAFE_NO_PAD.decode(set["keys"][0]["x"].as_str().unwrap()).unwrap();
        let public_json = serde_json::to_vec(&set["keys"][0]).unwrap();

        let hs256_with = |secret: &[u8], kid: &str| {
            let mut header = Header::new(Algorithm::HS256);
            header.typ = Some("at+jwt".into());
            header.kid = Some(kid.into());
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret)).unwrap()
        };
        // An attacker's own Ed25519 key, announced in the header.
        let attacker = auth_api::auth::keys::material::generate(auth_api::auth::keys::KeyAlgorithm::EdDsa).unwrap();
        let attacker_der = secrecy::ExposeSecret::expose_secret(&attacker.private_der).clone();
        let own_key = |kid: &str, extra: fn(&mut Header, &str)| {
            let mut header = Header::new(Algorithm::EdDSA);
            header.typ = Some("at+jwt".into());
            header.kid = Some(kid.into());
            extra(&mut header, &attacker.public_jwk);
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(&attacker_der)).unwrap()
        };
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "at+jwt", "kid": real_kid}).to_string()),
            tokens.access.split('.').nth(1).unwrap()
        );
        let cases = [
            (hs256_with(&public_x, &real_kid), "HS256 keyed with the public key's bytes"),
            (hs256_with(&public_json, &real_kid), "HS256 keyed with the published JWK"),
            (hs256_with(TEST_SECRET.as_bytes(), &real_kid), "HS256 with the tests' old shared secret"),
            (unsigned, "alg none"),
            (own_key("unknown-kid", |_, _| {}), "a kid nobody published"),
            (own_key(&real_kid, |_, _| {}), "the real kid, another key's signature"),
            (own_key(&attacker.kid, |h, jwk| h.jwk = Some(serde_json::from_str(jwk).unwrap())), "jwk header"),
            (own_key(&real_kid, |h, _| h.jku = Some("https://attacker.example/jwks.json".into())), "jku header"),
            (own_key(&real_kid, |h, _| h.x5u = Some("https://attacker.example/cert.pem".into())), "x5u header"),
        ];
        for (token, why) in cases {
            let response = app.me(&token).await;
            assert_eq!(response.status(), 401, "{why}");
            assert_error(response, 401, "INVALID_ACCESS_TOKEN").await;
        }
        assert_eq!(app.me(&tokens.access).await.status(), 200, "the genuine token still works");
    }

    async fn rotation_publishes_first_and_logs_nobody_out(backend: Backend) {
        // Rotation every 4 s; a new key signs 2 s after it is published (1 s cache + 1 s reload).
        let mut vars = keyed("EdDSA");
        vars.extend([
            ("KEY_ROTATION_PERIOD", "4"),
            ("KEYS_CACHE_MAX_AGE", "1"),
            ("KEYS_RELOAD_INTERVAL", "1"),
            ("ACCESS_TOKEN_TTL", "60"),
            // Every login of the loop below keeps the first session alive.
            ("MAX_SESSIONS_PER_USER", "1000"),
        ]);
        let a = spawn_app_with(backend, &vars).await;
        let b = spawn_sibling(&a, &vars).await;
        let first = a.signed_up("rotate@example.com").await;
        let first_kid = header_of(&first.access)["kid"].as_str().unwrap().to_string();

        // Until a login carries another kid: each JWKS seen on the way is remembered.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut published = std::collections::HashSet::new();
        let new_token = loop {
            assert!(Instant::now() < deadline, "no rotation within 20 s");
            published.extend(kids(&jwks(&a).await));
            let login = expect_tokens(a.login("rotate@example.com", "correct horse battery").await).await;
            let kid = header_of(&login.access)["kid"].as_str().unwrap().to_string();
            if kid != first_kid {
                assert!(published.contains(&kid), "{kid} signed before any JWKS published it");
                break login;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        // In embedded mode sessions live in one process: the sibling shares the keys only.
        let instances: &[(&TestApp, &str)] = if !backend.is_embedded() { &[(&a, "a"), (&b, "b")] } else { &[(&a, "a")] };
        for &(app, name) in instances {
            assert_eq!(app.me(&first.access).await.status(), 200, "{name}: a token of the old key still works");
            assert_eq!(app.me(&new_token.access).await.status(), 200, "{name}: a token of the new key works");
        }
        // Both instances sign with the same key: the same rows and clock give the same states
        // (a login may straddle an activation, so a few tries).
        let mut agreed = false;
        for _ in 0..10 {
            let from_a = a.login("rotate@example.com", "correct horse battery").await;
            let from_b = b.login("rotate@example.com", "correct horse battery").await;
            let (ta, tb) = (expect_tokens(from_a).await, expect_tokens(from_b).await);
            if header_of(&ta.access)["kid"] == header_of(&tb.access)["kid"] {
                agreed = true;
                if !backend.is_embedded() {
                    assert_eq!(b.me(&ta.access).await.status(), 200, "b accepts a's token");
                    assert_eq!(a.me(&tb.access).await.status(), 200, "a accepts b's token");
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert!(agreed, "the two instances never signed with the same key");

        // Revoking the old key: refused everywhere within a reload interval.
        let settings = a.settings_with(&vars);
        let users = users_of(&settings).await;
        let manager = KeyManager::start(&settings, &users, Default::default(), audit_of(&users))
            .await
            .unwrap()
            .unwrap();
        assert!(manager.revoke(&first_kid).await.unwrap());
        tokio::time::sleep(Duration::from_millis(2200)).await;
        for &(app, name) in instances {
            assert_error(app.me(&first.access).await, 401, "INVALID_ACCESS_TOKEN").await;
            assert!(!kids(&jwks(app).await).contains(&first_kid), "{name} still publishes the revoked key");
            assert_eq!(app.me(&new_token.access).await.status(), 200, "{name}: other keys unaffected");
        }
    }

    async fn racing_instances_create_one_key(backend: Backend) {
        let mut vars = keyed("ES256");
        vars.push(("KEY_ROTATION_PERIOD", "1"));
        let app = spawn_app_with(backend, &vars).await;
        let settings = app.settings_with(&vars);
        let users = users_of(&settings).await;
        let mut managers = Vec::new();
        for _ in 0..6 {
            managers.push(
                KeyManager::start(&settings, &users, Default::default(), audit_of(&users))
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        let before = managers[0].list().await.unwrap().len();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let results = futures_util::future::join_all(managers.iter().map(|m| m.refresh())).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let after = managers[0].list().await.unwrap();
        assert_eq!(after.len(), before + 1, "exactly one key for the period: {:?}", after.iter().map(|k| &k.0.kid).collect::<Vec<_>>());
    }

    async fn another_keys_encryption_key_refuses_to_start(backend: Backend) {
        let app = spawn_app_with(backend, &keyed("EdDSA")).await;
        let mut vars = keyed("EdDSA");
        vars.push(("KEYS_ENCRYPTION_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
        let settings = app.settings_with(&vars);
        let error = auth_api::startup::Application::build(settings).await.err().expect("refuses to start");
        assert!(format!("{error:#}").contains("KEYS_ENCRYPTION_KEY does not open"), "{error:#}");
    }
}

crate::case!(an_embedded_signing_key_survives_a_restart);
/// Embedded mode without any key setting: EdDSA, a sealing key made in the data directory, and
/// a signing key that outlives the process. (The in-process sessions do not: `/auth/me` then
/// refuses the token for its session, as before.)
async fn an_embedded_signing_key_survives_a_restart() {
    let vars = [("ACCESS_TOKEN_SECRET", "")];
    let app = spawn_app_with(Backend::Embedded, &vars).await;
    let tokens = app.signed_up("restart@example.com").await;
    let kid = header_of(&tokens.access)["kid"].as_str().unwrap().to_string();
    assert_eq!(header_of(&tokens.access)["alg"], "EdDSA");
    app.stop().await;

    let restarted = spawn_sibling(&app, &vars).await;
    let set = jwks(&restarted).await;
    assert_eq!(
        kids(&set),
        std::slice::from_ref(&kid),
        "the same key is published after the restart"
    );
    let key = jsonwebtoken::DecodingKey::from_jwk(&serde_json::from_value(set["keys"][0].clone()).unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(Algorithm::EdDSA);
    validation.set_audience(&["auth-api"]);
    jsonwebtoken::decode::<Value>(&tokens.access, &key, &validation).expect("the old token's signature verifies");
    let again = restarted.signed_up("after-restart@example.com").await;
    assert_eq!(header_of(&again.access)["kid"], kid.as_str(), "and it still signs");
    assert_eq!(restarted.me(&again.access).await.status(), 200);
}

crate::case!(the_jwks_is_not_rate_limited_and_is_counted);
/// The JWKS is fetched by every verifier: no per-IP limit applies to it, and it is counted.
async fn the_jwks_is_not_rate_limited_and_is_counted() {
    let mut vars = keyed("EdDSA");
    vars.extend([("RATE_LIMIT_PER_SECOND", "1"), ("RATE_LIMIT_BURST", "1")]);
    let app = spawn_app_with(Backend::Embedded, &vars).await;
    for i in 0..20 {
        assert_eq!(app.get("/.well-known/jwks.json").await.status(), 200, "request {i}");
    }
    let mut last = 0;
    for _ in 0..3 {
        last = app.get("/auth/me").await.status().as_u16();
    }
    assert_eq!(last, 429, "the general limit still applies elsewhere");
    let metrics = app
        .client
        .get(format!("{}/metrics", app.metrics_address.as_ref().unwrap()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("http_requests_total{") && l.contains("endpoint=\"/.well-known/jwks.json\"")),
        "the JWKS route has its own series"
    );
}
