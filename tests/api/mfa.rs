//! The TOTP second factor: enrolment, confirmation, the second step of a login, single use of
//! codes and recovery codes (across instances too), challenges, step-up, removal, and what the
//! tokens say. Codes are computed here with totp-rs from the secret the service handed out;
//! CI checks them once more with pyotp against the release binary.

use std::time::Duration;

use reqwest::Response;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{
    Backend, TestApp, Tokens, assert_error, content, expect_tokens, refresh_cookie, spawn_app_at_manual_clock,
    spawn_app_with, spawn_sibling,
};
use crate::metrics::Snapshot;

pub const PASSWORD: &str = "correct horse battery";
/// Seals the TOTP secrets of the PostgreSQL tests (embedded mode makes its own key file).
pub const SEALING_KEY: &str = "q4d6JXzNhz1vVX4KcG0tq7xX5mN2sQ8pY1zL0bW3eR8=";

/// An instance whose clock the test moves, so that each login can wait for a fresh code step.
pub async fn spawn_mfa_app(backend: Backend, vars: &[(&str, &str)]) -> TestApp {
    let mut all = vec![("KEYS_ENCRYPTION_KEY", SEALING_KEY)];
    all.extend_from_slice(vars);
    spawn_app_at_manual_clock(backend, &all).await
}

/// A factor as the enrolment answered it.
pub struct Factor {
    pub totp: totp_rs::Totp,
    pub recovery_codes: Vec<String>,
}

impl Factor {
    /// The code of the service's current step.
    pub fn code(&self, app: &TestApp) -> String {
        self.totp.generate(app.clock.now_secs()).to_string()
    }
}

pub async fn bearer_json(app: &TestApp, method: reqwest::Method, path: &str, access: &str, body: &Value) -> Response {
    app.client
        .request(method, app.url(path))
        .bearer_auth(access)
        .json(body)
        .send()
        .await
        .expect("request sent")
}

/// Enrols and confirms a factor for the signed-in `tokens`; the clock then moves to the next
/// step, so that the test's next code is a fresh one.
pub async fn enable(app: &TestApp, tokens: &Tokens) -> Factor {
    let enrolment = content(
        bearer_json(
            app,
            reqwest::Method::POST,
            "/auth/mfa/totp",
            &tokens.access,
            &json!({"password": PASSWORD}),
        )
        .await,
    )
    .await;
    let uri = enrolment["otpauth_uri"].as_str().unwrap();
    let totp = totp_rs::Totp::from_url(uri).expect("an otpauth URI totp-rs reads");
    let code = totp.generate(app.clock.now_secs()).to_string();
    let confirmed = content(
        bearer_json(
            app,
            reqwest::Method::POST,
            "/auth/mfa/totp/confirm",
            &tokens.access,
            &json!({"code": code}),
        )
        .await,
    )
    .await;
    let recovery_codes = confirmed["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    app.wait(Duration::from_secs(30)).await;
    Factor { totp, recovery_codes }
}

/// The challenge of a login that needs the second factor.
pub async fn challenge(app: &TestApp, email: &str) -> String {
    let response = app.login(email, PASSWORD).await;
    assert!(
        refresh_cookie(&response).is_none(),
        "no cookie before the second factor"
    );
    let body = assert_error(response, 401, "MFA_REQUIRED").await;
    assert!(body["content"].get("access_token").is_none(), "{body}");
    assert_eq!(body["content"]["mfa"]["methods"], json!(["totp", "recovery_code"]));
    assert_eq!(body["content"]["mfa"]["expires_in"], json!(300));
    body["content"]["mfa"]["challenge"].as_str().unwrap().to_string()
}

pub async fn verify(app: &TestApp, challenge: &str, field: &str, code: &str) -> Response {
    app.post_json("/auth/mfa/verify", &json!({"challenge": challenge, field: code}))
        .await
}

/// The unverified claims of an access token.
pub fn claims(access: &str) -> Value {
    use base64::Engine as _;
    let payload = access.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

fn assert_assurance(access: &str, amr: &[&str], acr: &str) {
    let claims = claims(access);
    assert_eq!(claims["amr"], json!(amr), "{claims}");
    assert_eq!(claims["acr"], json!(acr), "{claims}");
}

async fn mfa_of(app: &TestApp, access: &str) -> Value {
    content(app.me(access).await).await["mfa"].clone()
}

backend_tests! {
    #[needs(Smtp)]
    async fn each_change_of_the_factor_mails_the_account_owner(backend: Backend) {
        let smtp = crate::mail_server::MailServer::start(None).await;
        let vars = [("KEYS_ENCRYPTION_KEY", SEALING_KEY), ("MAX_SESSIONS_PER_USER", "5")];
        let app = crate::account_mail::spawn_with_mail_at_manual_clock(backend, &smtp, &vars).await;
        let tokens = app.signed_up("owner@example.com").await;
        let factor = enable(&app, &tokens).await;
        let on = smtp.nth("owner@example.com", "Two-step sign-in was turned on", 1).await;
        assert!(on.text.contains("was turned on for your account"), "{}", on.text);
        assert!(on.html.contains("owner@example.com"), "{}", on.html);
        for secret in [factor.recovery_codes[0].clone(), factor.totp.secret().to_base32()] {
            assert!(!on.text.contains(secret.as_str()) && !on.html.contains(secret.as_str()), "a notice holds no secret");
        }
        // A recovery code used to sign in, new codes, and the factor removed: one notice each.
        let c = challenge(&app, "owner@example.com").await;
        expect_tokens(verify(&app, &c, "recovery_code", &factor.recovery_codes[0]).await).await;
        smtp.nth("owner@example.com", "Your recovery codes changed", 1).await;
        let body = json!({"password": PASSWORD, "code": factor.code(&app)});
        content(bearer_json(&app, reqwest::Method::POST, "/auth/mfa/recovery-codes", &tokens.access, &body).await).await;
        smtp.nth("owner@example.com", "Your recovery codes changed", 2).await;
        app.wait(Duration::from_secs(30)).await;
        let body = json!({"password": PASSWORD, "code": factor.code(&app)});
        content(bearer_json(&app, reqwest::Method::DELETE, "/auth/mfa/totp", &tokens.access, &body).await).await;
        let off = smtp.nth("owner@example.com", "Two-step sign-in was turned off", 1).await;
        assert!(off.text.contains("recovery codes no longer work"), "{}", off.text);
    }

    async fn enrolment_confirmation_and_a_login_with_a_code(backend: Backend) {
        let app = spawn_mfa_app(backend, &[("MAX_SESSIONS_PER_USER", "5")]).await;
        let tokens = app.signed_up("ada@example.com").await;
        let phone = expect_tokens(app.login("ada@example.com", PASSWORD).await).await;
        assert_eq!(mfa_of(&app, &tokens.access).await, json!({"totp": false, "recovery_codes_left": 0, "passkeys": 0}));

        let post = |path: &'static str, body: Value| {
            let access = tokens.access.clone();
            let app = &app;
            async move { bearer_json(app, reqwest::Method::POST, path, &access, &body).await }
        };
        assert_error(post("/auth/mfa/totp", json!({"password": "not it"})).await, 403, "INVALID_CURRENT_PASSWORD").await;
        assert_error(post("/auth/mfa/totp/confirm", json!({"code": "123456"})).await, 409, "MFA_NOT_ENABLED").await;
        // A second enrolment replaces the first, pending one: only the latest secret confirms.
        let first = content(post("/auth/mfa/totp", json!({"password": PASSWORD})).await).await;
        let enrolment = content(post("/auth/mfa/totp", json!({"password": PASSWORD})).await).await;
        assert_ne!(first["secret"], enrolment["secret"]);
        let uri = enrolment["otpauth_uri"].as_str().unwrap();
        assert!(uri.starts_with("otpauth://totp/auth-api:ada%40example.com?"), "{uri}");
        assert!(uri.contains(&format!("secret={}", enrolment["secret"].as_str().unwrap())), "{uri}");
        assert!(enrolment["qr_svg"].as_str().unwrap().contains("<svg"), "an SVG QR code");
        let stale = totp_rs::Totp::from_url(first["otpauth_uri"].as_str().unwrap()).unwrap();
        let totp = totp_rs::Totp::from_url(uri).unwrap();
        let now = app.clock.now_secs();
        assert_error(post("/auth/mfa/totp/confirm", json!({"code": stale.generate(now).to_string()})).await, 401, "MFA_CODE_INVALID").await;
        assert_eq!(mfa_of(&app, &tokens.access).await["totp"], json!(false), "pending is not active");

        let confirmed = content(post("/auth/mfa/totp/confirm", json!({"code": totp.generate(now).to_string()})).await).await;
        let codes = confirmed["recovery_codes"].as_array().unwrap();
        assert_eq!(codes.len(), 10);
        for code in codes {
            let code = code.as_str().unwrap();
            assert!(code.len() == 19 && code.split('-').all(|g| g.len() == 4), "{code}");
        }
        assert_error(post("/auth/mfa/totp", json!({"password": PASSWORD})).await, 409, "MFA_ALREADY_ENABLED").await;
        assert_eq!(mfa_of(&app, &tokens.access).await, json!({"totp": true, "recovery_codes_left": 10, "passkeys": 0}));
        // Every other session ended; the caller's now carries the second factor.
        assert_error(app.refresh(&phone.refresh).await, 401, "INVALID_REFRESH_TOKEN").await;
        let refreshed: Value = app.refresh(&tokens.refresh).await.json().await.unwrap();
        assert_assurance(refreshed["content"]["access_token"].as_str().unwrap(), &["pwd", "otp"], "aal2");

        // A login now stops at the password and goes on with a code of the next step.
        app.wait(Duration::from_secs(30)).await;
        let challenge = challenge(&app, "ada@example.com").await;
        let wrong = verify(&app, &challenge, "code", "000000").await;
        assert_error(wrong, 401, "MFA_CODE_INVALID").await;
        let code = totp.generate(app.clock.now_secs()).to_string();
        let signed_in = expect_tokens(verify(&app, &challenge, "code", &code).await).await;
        assert_assurance(&signed_in.access, &["pwd", "otp"], "aal2");
        let again = expect_tokens(app.refresh(&signed_in.refresh).await).await;
        assert_assurance(&again.access, &["pwd", "otp"], "aal2");
        let me = content(app.me(&again.access).await).await;
        assert_eq!(me["email"], json!("ada@example.com"));

        let events: Value = app.client.get(app.url("/auth/events?limit=100")).bearer_auth(&again.access).send().await.unwrap().json().await.unwrap();
        let names: Vec<&str> = events["content"]["events"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
        for name in ["mfa.enabled", "mfa.failed", "mfa.verified", "login.succeeded"] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
        let after = Snapshot::take(&app).await;
        assert_eq!(after.get("auth_mfa_verifications_total", &[("method", "totp"), ("outcome", "success")]), 2.0);
        assert_eq!(after.get("auth_mfa_verifications_total", &[("method", "totp"), ("outcome", "invalid")]), 2.0);
        assert_eq!(after.get("auth_logins_total", &[("outcome", "mfa_required")]), 1.0);
    }

    async fn a_code_is_accepted_once_also_across_two_instances(backend: Backend) {
        let app = spawn_mfa_app(backend, &[("MAX_SESSIONS_PER_USER", "5")]).await;
        let tokens = app.signed_up("once@example.com").await;
        let factor = enable(&app, &tokens).await;
        // A second instance on the same stores when there are shared stores.
        let other = match backend {
            Backend::Embedded => None,
            _ => Some(spawn_sibling(&app, &[("KEYS_ENCRYPTION_KEY", SEALING_KEY)]).await),
        };
        let second = other.as_ref().unwrap_or(&app);
        let (a, b) = (challenge(&app, "once@example.com").await, challenge(second, "once@example.com").await);
        let code = factor.code(&app);
        expect_tokens(verify(&app, &a, "code", &code).await).await;
        assert_error(verify(second, &b, "code", &code).await, 401, "MFA_CODE_INVALID").await;
        // The code of the step before the one used is no good either, though within the window.
        let older = factor.totp.generate(app.clock.now_secs() - 30).to_string();
        assert_error(verify(second, &b, "code", &older).await, 401, "MFA_CODE_INVALID").await;
        app.wait(Duration::from_secs(30)).await;
        expect_tokens(verify(second, &b, "code", &factor.code(&app)).await).await;
        let replayed = Snapshot::take(second).await;
        assert!(replayed.get("auth_mfa_verifications_total", &[("method", "totp"), ("outcome", "replayed")]) >= 1.0);
    }

    async fn five_wrong_codes_end_the_challenge_and_count_towards_the_lockout(backend: Backend) {
        let app = spawn_mfa_app(backend, &[("LOGIN_MAX_FAILURES", "5")]).await;
        let tokens = app.signed_up("guess@example.com").await;
        let factor = enable(&app, &tokens).await;
        let challenge = challenge(&app, "guess@example.com").await;
        for _ in 0..5 {
            assert_error(verify(&app, &challenge, "code", "000000").await, 401, "MFA_CODE_INVALID").await;
        }
        // The sixth answer, even with the right code, finds the challenge gone.
        assert_error(verify(&app, &challenge, "code", &factor.code(&app)).await, 401, "MFA_CHALLENGE_INVALID").await;
        // And the five wrong codes locked the account like five wrong passwords.
        assert_error(app.login("guess@example.com", PASSWORD).await, 429, "ACCOUNT_LOCKED").await;
    }

    async fn the_secret_is_sealed_and_recovery_codes_hashed_at_rest(backend: Backend) {
        let app = spawn_mfa_app(backend, &[]).await;
        let factor = enable(&app, &app.signed_up("rest@example.com").await).await;
        let secret = factor.totp.secret().to_vec();
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        // Whether any row of `column` holds `bytes`, in each database's own words.
        let holds = |table: &str, column: &str, bytes: &[u8]| match backend {
            Backend::Embedded => format!("update {table} set user_id = user_id where instr({column}, X'{}') > 0", hex(bytes)),
            _ => format!("update {table} set user_id = user_id where position('\\x{}'::bytea in {column}) > 0", hex(bytes)),
        };
        assert_eq!(app.sql(&holds("mfa_totp", "sealed_secret", &secret)).await, 0, "the secret is not stored in the clear");
        // A nonce, the 20 secret bytes encrypted, and the tag.
        assert_eq!(app.sql("update mfa_totp set user_id = user_id where length(sealed_secret) = 24 + 20 + 16").await, 1);
        assert_eq!(app.sql("update mfa_recovery_codes set user_id = user_id where length(code_hash) = 32").await, 10);
        for code in &factor.recovery_codes {
            for form in [code.clone(), code.replace('-', "")] {
                assert_eq!(app.sql(&holds("mfa_recovery_codes", "code_hash", form.as_bytes())).await, 0);
            }
        }
        // Sealed to its user: moved to another account, the secret no longer opens, and that
        // account's code check fails closed rather than accepting anything.
        let other = app.signed_up("other@example.com").await;
        enable(&app, &other).await;
        let moved = "update mfa_totp set sealed_secret = (select sealed_secret from mfa_totp t \
             join users u on u.id = t.user_id where u.email = 'rest@example.com') \
             where user_id = (select id from users where email = 'other@example.com')";
        assert_eq!(app.sql(moved).await, 1);
        let c = challenge(&app, "other@example.com").await;
        let refused = verify(&app, &c, "code", &factor.code(&app)).await;
        assert_eq!(refused.status(), 500, "a secret that does not open is a server fault, never a pass");
        assert!(refused.text().await.unwrap().contains("INTERNAL_ERROR"));
    }

    async fn the_per_ip_auth_limit_covers_the_second_step(backend: Backend) {
        let app = spawn_mfa_app(backend, &[("RATE_LIMIT_AUTH_PER_MINUTE", "6")]).await;
        // Register, enrol, confirm and log in take four of the six.
        let factor = enable(&app, &app.signed_up("limited@example.com").await).await;
        let challenge = challenge(&app, "limited@example.com").await;
        for _ in 0..2 {
            assert_error(verify(&app, &challenge, "code", "000000").await, 401, "MFA_CODE_INVALID").await;
        }
        // Even the right code waits: the limit is spent before any code is looked at.
        assert_error(verify(&app, &challenge, "code", &factor.code(&app)).await, 429, "RATE_LIMITED").await;
    }

    async fn a_recovery_code_raced_twice_wins_once(backend: Backend) {
        let app = spawn_mfa_app(backend, &[("MAX_SESSIONS_PER_USER", "5")]).await;
        let tokens = app.signed_up("race@example.com").await;
        let factor = enable(&app, &tokens).await;
        let (a, b) = (challenge(&app, "race@example.com").await, challenge(&app, "race@example.com").await);
        // Typed differently: letter case and dashes do not matter.
        let code = &factor.recovery_codes[3];
        let typed = code.to_lowercase().replace('-', " ");
        let (first, second) = tokio::join!(
            verify(&app, &a, "recovery_code", code),
            verify(&app, &b, "recovery_code", &typed)
        );
        let mut statuses = [first.status().as_u16(), second.status().as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 401], "exactly one use wins");
        let signed_in = expect_tokens(if first.status() == 200 { first } else { second }).await;
        assert_assurance(&signed_in.access, &["pwd", "otp"], "aal2");
        assert_eq!(mfa_of(&app, &signed_in.access).await["recovery_codes_left"], json!(9));
        // Used is used, on a later login too; another code still works.
        let c = challenge(&app, "race@example.com").await;
        assert_error(verify(&app, &c, "recovery_code", code).await, 401, "MFA_CODE_INVALID").await;
        expect_tokens(verify(&app, &c, "recovery_code", &factor.recovery_codes[4]).await).await;
    }

    async fn a_challenge_is_single_use_expires_and_belongs_to_its_user(backend: Backend) {
        let app = spawn_mfa_app(backend, &[("MAX_SESSIONS_PER_USER", "5")]).await;
        let ada = enable(&app, &app.signed_up("ada@example.com").await).await;
        let bob = enable(&app, &app.signed_up("bob@example.com").await).await;
        assert_error(verify(&app, "not-a-challenge", "code", &ada.code(&app)).await, 401, "MFA_CHALLENGE_INVALID").await;
        // Bob's code does not answer Ada's challenge.
        let ada_challenge = challenge(&app, "ada@example.com").await;
        assert_error(verify(&app, &ada_challenge, "code", &bob.code(&app)).await, 401, "MFA_CODE_INVALID").await;
        assert_error(verify(&app, &ada_challenge, "recovery_code", &bob.recovery_codes[0]).await, 401, "MFA_CODE_INVALID").await;
        expect_tokens(verify(&app, &ada_challenge, "code", &ada.code(&app)).await).await;
        // Used once: gone.
        app.wait(Duration::from_secs(30)).await;
        assert_error(verify(&app, &ada_challenge, "code", &ada.code(&app)).await, 401, "MFA_CHALLENGE_INVALID").await;
        // Five minutes later: gone.
        let late = challenge(&app, "ada@example.com").await;
        app.wait(Duration::from_secs(301)).await;
        assert_error(verify(&app, &late, "code", &ada.code(&app)).await, 401, "MFA_CHALLENGE_INVALID").await;
        // A body without a code is a validation error, not a use of the challenge.
        let kept = challenge(&app, "ada@example.com").await;
        assert_error(app.post_json("/auth/mfa/verify", &json!({"challenge": kept})).await, 400, "VALIDATION_ERROR").await;
        let short = assert_error(verify(&app, &kept, "code", "12345").await, 400, "VALIDATION_ERROR").await;
        assert_eq!(short["content"]["field"], json!("code"));
        let long = "A".repeat(65);
        assert_error(verify(&app, &kept, "recovery_code", &long).await, 400, "VALIDATION_ERROR").await;
        let both = json!({"challenge": kept, "code": "123456", "recovery_code": "AAAA-AAAA-AAAA-AAAA"});
        assert_error(app.post_json("/auth/mfa/verify", &both).await, 400, "VALIDATION_ERROR").await;
        expect_tokens(verify(&app, &kept, "code", &ada.code(&app)).await).await;
    }

    async fn sensitive_changes_need_a_code_and_removal_ends_other_sessions(backend: Backend) {
        let app = spawn_mfa_app(backend, &[("MAX_SESSIONS_PER_USER", "5")]).await;
        let tokens = app.signed_up("careful@example.com").await;
        let factor = enable(&app, &tokens).await;
        let access = &tokens.access;
        let send = |method: reqwest::Method, path: &'static str, body: Value| {
            let app = &app;
            async move { bearer_json(app, method, path, access, &body).await }
        };
        use reqwest::Method;
        let change = json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"});
        assert_error(send(Method::POST, "/auth/password/change", change.clone()).await, 403, "MFA_CODE_REQUIRED").await;
        let mut with_wrong = change.clone();
        with_wrong["code"] = json!("000000");
        assert_error(send(Method::POST, "/auth/password/change", with_wrong).await, 401, "MFA_CODE_INVALID").await;
        let mut with_code = change.clone();
        with_code["code"] = json!(factor.code(&app));
        content(send(Method::POST, "/auth/password/change", with_code).await).await;

        // Signing out everywhere: no body is refused, a recovery code is enough.
        let elsewhere = bearer_json(&app, Method::DELETE, "/auth/sessions", access, &Value::Null);
        assert_error(elsewhere.await, 403, "MFA_CODE_REQUIRED").await;

        let renew = json!({"password": "a brand new passphrase"});
        assert_error(send(Method::POST, "/auth/mfa/recovery-codes", renew.clone()).await, 403, "MFA_CODE_REQUIRED").await;
        app.wait(Duration::from_secs(30)).await;
        let mut renew_with = renew.clone();
        renew_with["code"] = json!(factor.code(&app));
        let renewed = content(send(Method::POST, "/auth/mfa/recovery-codes", renew_with).await).await;
        let new_codes: Vec<String> = renewed["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
        assert_eq!(new_codes.len(), 10);
        // The old codes died with the renewal.
        let c = challenge_with(&app, "careful@example.com", "a brand new passphrase").await;
        assert_error(verify(&app, &c, "recovery_code", &factor.recovery_codes[0]).await, 401, "MFA_CODE_INVALID").await;
        let other = expect_tokens(verify(&app, &c, "recovery_code", &new_codes[0]).await).await;

        let remove = json!({"password": "a brand new passphrase"});
        assert_error(send(Method::DELETE, "/auth/mfa/totp", remove.clone()).await, 403, "MFA_CODE_REQUIRED").await;
        let mut remove_with = remove.clone();
        remove_with["recovery_code"] = json!(new_codes[1]);
        let removed = content(send(Method::DELETE, "/auth/mfa/totp", remove_with).await).await;
        assert_eq!(removed["revoked"], json!(1), "the other session ended");
        assert_error(app.refresh(&other.refresh).await, 401, "INVALID_REFRESH_TOKEN").await;
        assert_eq!(mfa_of(&app, access).await, json!({"totp": false, "recovery_codes_left": 0, "passkeys": 0}));
        // A password alone signs in again, at aal1; signing out everywhere needs no code now.
        let plain = expect_tokens(app.login("careful@example.com", "a brand new passphrase").await).await;
        assert_assurance(&plain.access, &["pwd"], "aal1");
        let everywhere = bearer_json(&app, Method::DELETE, "/auth/sessions", &plain.access, &Value::Null).await;
        assert_eq!(content(everywhere).await["revoked"], json!(2));
    }
}

async fn challenge_with(app: &TestApp, email: &str, password: &str) -> String {
    let body = assert_error(app.login(email, password).await, 401, "MFA_REQUIRED").await;
    body["content"]["mfa"]["challenge"].as_str().unwrap().to_string()
}

crate::case!(without_a_sealing_key_there_are_no_second_factors needs External);
/// HS256 with PostgreSQL and no `KEYS_ENCRYPTION_KEY`: nothing could seal a TOTP secret, so
/// enrolment is refused rather than storing it in the clear.
async fn without_a_sealing_key_there_are_no_second_factors() {
    let app = spawn_app_with(Backend::External, &[]).await;
    let tokens = app.signed_up("nokey@example.com").await;
    let response = bearer_json(
        &app,
        reqwest::Method::POST,
        "/auth/mfa/totp",
        &tokens.access,
        &json!({"password": PASSWORD}),
    )
    .await;
    assert_error(response, 404, "MFA_UNAVAILABLE").await;
}
