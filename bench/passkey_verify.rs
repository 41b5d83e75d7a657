//! Server-side cost of a passkey sign-in, in process: the relying party as the service
//! configures it (`auth_api::auth::passkey::RelyingParty`) starting a discoverable ceremony and
//! verifying the answer (client data, RP id hash, flags, counter, the P-256 signature), plus
//! the JSON round trips of its state and of the stored passkey that the service makes. The
//! software authenticator's signing happens outside the timed part.
//!
//! Usage (bench/README.md): `cargo run --release --example passkey_verify`; prints µs per
//! sign-in, the median of 7 runs of `ITERATIONS` (default 2,000).

use std::time::Instant;

use auth_api::auth::passkey::{PublicKeyCredential, RelyingParty};
use auth_api::config::PasskeySettings;
use auth_api::domain::UserId;
use base64::Engine as _;
use serde_json::{Value, json};
use webauthn_authenticator_rs::WebauthnAuthenticator as _;
use webauthn_authenticator_rs::prelude::Url;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs::prelude::Passkey;

fn main() -> anyhow::Result<()> {
    let iterations: usize = std::env::var("ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let settings = PasskeySettings {
        rp_id: "app.example.com".into(),
        origins: vec!["https://app.example.com".into()],
    };
    let origin = Url::parse("https://app.example.com")?;
    let rp = RelyingParty::new(&settings, "auth-api", std::time::Duration::from_secs(120))?;
    let mut key = SoftPasskey::new(true);
    let user = UserId::new();
    let (options, state) = rp.start_registration(user, "ada@example.com", "Ada", Vec::new())?;
    let mut options = serde_json::to_value(options)?;
    // SoftPasskey keeps no resident keys; the ceremonies below name the credential instead.
    options["publicKey"]["authenticatorSelection"]["requireResidentKey"] = json!(false);
    options["publicKey"]["authenticatorSelection"]
        .as_object_mut()
        .map(|o| o.remove("residentKey"));
    let created = key.do_registration(origin.clone(), serde_json::from_value(options)?)?;
    let credential_id = serde_json::to_value(&created)?["id"].clone();
    let mut stored = serde_json::to_string(&rp.finish_registration(&created, &state)?)?;

    let handle = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(user.as_uuid().as_bytes());

    let mut runs = Vec::new();
    for _ in 0..7 {
        let mut timed = std::time::Duration::ZERO;
        for _ in 0..iterations {
            let started = Instant::now();
            let (options, state) = rp.start_discoverable(false)?;
            let state_json = serde_json::to_string(&state)?;
            let options = serde_json::to_value(options)?;
            timed += started.elapsed();

            let mut offered = options;
            offered["publicKey"]["allowCredentials"] = json!([{"type": "public-key", "id": credential_id}]);
            let assertion = key.do_authentication(origin.clone(), serde_json::from_value(offered)?)?;
            let mut answer: Value = serde_json::to_value(assertion)?;
            answer["response"]["userHandle"] = json!(handle);
            let answer = serde_json::to_string(&answer)?;

            let started = Instant::now();
            let credential: PublicKeyCredential = serde_json::from_str(&answer)?;
            let state = serde_json::from_str(&state_json)?;
            let mut passkey: Passkey = serde_json::from_str(&stored)?;
            let result = rp.finish_discoverable(&credential, state, &passkey)?;
            passkey.update_credential(&result);
            stored = serde_json::to_string(&passkey)?;
            timed += started.elapsed();
        }
        runs.push(timed.as_secs_f64() * 1e6 / iterations as f64);
    }
    runs.sort_by(f64::total_cmp);
    println!(
        "passkey sign-in, server side: {:.1} µs (median of 7 runs of {iterations})",
        runs[3]
    );
    Ok(())
}
