//! Passkeys against a software authenticator: registration, the sign-in with a passkey alone
//! and as a login's second step, and what must be refused (another origin, another relying
//! party, a replayed or foreign ceremony, another user's credential, a counter that went
//! back, the account's last way in). The authenticator is webauthn-authenticator-rs'
//! `SoftPasskey` (real P-256 keys, real signatures over the real client data); CI runs the
//! same ceremonies in Chromium with its virtual authenticator.

use serde_json::{Value, json};
use webauthn_authenticator_rs::WebauthnAuthenticator as _;
use webauthn_authenticator_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, Tokens, assert_error, content, expect_tokens, spawn_app_at_manual_clock};
use crate::metrics::Snapshot;
use crate::mfa::{PASSWORD, SEALING_KEY, bearer_json, claims, enable};

/// The site the tests' pages are served from: the relying party is its host.
const ORIGIN: &str = "https://app.example.test";

async fn spawn_passkey_app(backend: Backend, vars: &[(&str, &str)]) -> TestApp {
    let mut all = vec![
        ("PUBLIC_APP_URL", ORIGIN),
        ("KEYS_ENCRYPTION_KEY", SEALING_KEY),
        ("MAX_SESSIONS_PER_USER", "20"),
    ];
    all.extend_from_slice(vars);
    spawn_app_at_manual_clock(backend, &all).await
}

/// A software authenticator that keeps its credentials discoverable: SoftPasskey signs, and
/// this wrapper remembers each credential's user handle and offers it when the site names no
/// credential, as a resident-key authenticator does.
pub struct Authenticator {
    soft: SoftPasskey,
    origin: Url,
    /// (credential id, user handle), both base64url.
    resident: Vec<(String, String)>,
}

impl Authenticator {
    fn new() -> Self {
        Self::at(ORIGIN)
    }

    pub fn at(origin: &str) -> Self {
        Self {
            // `true`: it reports user verification, as a device with a PIN or biometric does.
            soft: SoftPasskey::new(true),
            origin: Url::parse(origin).unwrap(),
            resident: Vec::new(),
        }
    }

    /// The answer to registration `options` (`{"publicKey": …}`).
    pub fn create(&mut self, mut options: Value) -> Value {
        let user = options["publicKey"]["user"]["id"].as_str().unwrap().to_string();
        // SoftPasskey refuses to be asked for residency; this wrapper provides it.
        let selection = &mut options["publicKey"]["authenticatorSelection"];
        selection["requireResidentKey"] = json!(false);
        selection.as_object_mut().unwrap().remove("residentKey");
        let options: CreationChallengeResponse = serde_json::from_value(options).unwrap();
        let credential = self
            .soft
            .do_registration(self.origin.clone(), options)
            .expect("registered");
        let credential = serde_json::to_value(credential).unwrap();
        self.resident
            .push((credential["id"].as_str().unwrap().to_string(), user));
        credential
    }

    /// The answer to sign-in `options`, with the credential's user handle.
    pub fn get(&mut self, mut options: Value) -> Value {
        let allowed = &mut options["publicKey"]["allowCredentials"];
        if allowed.as_array().is_none_or(Vec::is_empty) {
            *allowed = self
                .resident
                .iter()
                .map(|(id, _)| json!({"type": "public-key", "id": id}))
                .collect();
        }
        let options: RequestChallengeResponse = serde_json::from_value(options).unwrap();
        let assertion = self
            .soft
            .do_authentication(self.origin.clone(), options)
            .expect("signed");
        let mut assertion = serde_json::to_value(assertion).unwrap();
        let id = assertion["id"].as_str().unwrap().to_string();
        let handle = self.resident.iter().find(|(c, _)| *c == id).map(|(_, u)| u.clone());
        assertion["response"]["userHandle"] = json!(handle);
        assertion
    }
}

async fn post(app: &TestApp, access: &str, path: &str, body: Value) -> reqwest::Response {
    bearer_json(app, reqwest::Method::POST, path, access, &body).await
}

/// Registers a passkey of `key` for the signed-in `access`; its id in the list.
async fn register(app: &TestApp, access: &str, key: &mut Authenticator, extra: Value) -> String {
    let mut body = json!({"password": PASSWORD});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let started = content(post(app, access, "/auth/passkeys/register/start", body).await).await;
    let credential = key.create(started["options"].clone());
    let finish = json!({"ceremony": started["ceremony"], "credential": credential, "name": "Laptop"});
    let added = content(post(app, access, "/auth/passkeys/register/finish", finish).await).await;
    added["id"].as_str().unwrap().to_string()
}

async fn sign_in_start(app: &TestApp, body: Option<Value>) -> Value {
    let request = app.client.post(app.url("/auth/passkeys/login/start"));
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    content(request.send().await.unwrap()).await
}

async fn sign_in_finish(app: &TestApp, ceremony: &Value, credential: Value) -> reqwest::Response {
    app.post_json(
        "/auth/passkeys/login/finish",
        &json!({"ceremony": ceremony, "credential": credential}),
    )
    .await
}

/// Creates an account whose only way in is a passkey of `key`; its session.
async fn sign_up(app: &TestApp, key: &mut Authenticator, email: &str) -> Tokens {
    let body = json!({"username": "Pat", "email": email});
    let started = content(app.post_json("/auth/passkeys/signup/start", &body).await).await;
    assert_eq!(
        started["options"]["publicKey"]["authenticatorSelection"]["residentKey"],
        json!("required")
    );
    let credential = key.create(started["options"].clone());
    let finish = json!({"ceremony": started["ceremony"], "credential": credential, "name": "Phone"});
    expect_tokens(app.post_json("/auth/passkeys/signup/finish", &finish).await).await
}

/// Signs in with `key` alone.
async fn sign_in(app: &TestApp, key: &mut Authenticator) -> reqwest::Response {
    let started = sign_in_start(app, None).await;
    let credential = key.get(started["options"].clone());
    sign_in_finish(app, &started["ceremony"], credential).await
}

async fn event_names(app: &TestApp, access: &str) -> Vec<String> {
    let events = content(
        app.client
            .get(app.url("/auth/events?limit=100"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

async fn listed(app: &TestApp, access: &str) -> Vec<Value> {
    let list = app
        .client
        .get(app.url("/auth/passkeys"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    content(list).await.as_array().unwrap().clone()
}

backend_tests! {
    #[needs(Smtp)]
    async fn each_change_of_a_passkey_mails_the_owner(backend: Backend) {
        let smtp = crate::mail_server::MailServer::start(None).await;
        let vars = [("PUBLIC_APP_URL", ORIGIN), ("KEYS_ENCRYPTION_KEY", SEALING_KEY)];
        let app = crate::account_mail::spawn_with_mail_at_manual_clock(backend, &smtp, &vars).await;
        let tokens = app.signed_up("owner@example.com").await;
        let mut key = Authenticator::new();
        let id = register(&app, &tokens.access, &mut key, json!({})).await;
        let added = smtp.nth("owner@example.com", "A passkey was added to your account", 1).await;
        assert!(added.text.contains("can sign in to the account without a password"), "{}", added.text);
        assert!(added.html.contains("owner@example.com"), "{}", added.html);
        let path = format!("/auth/passkeys/{id}");
        content(bearer_json(&app, reqwest::Method::PATCH, &path, &tokens.access, &json!({"name": "Phone"})).await).await;
        smtp.nth("owner@example.com", "A passkey of your account was renamed", 1).await;
        content(bearer_json(&app, reqwest::Method::DELETE, &path, &tokens.access, &json!({"password": PASSWORD})).await).await;
        let removed = smtp.nth("owner@example.com", "A passkey was removed from your account", 1).await;
        assert!(removed.text.contains("It can no longer sign in"), "{}", removed.text);
        // An account signed up with a passkey alone recovers through the reset mail, which
        // sets a password.
        let mut phone = Authenticator::new();
        sign_up(&app, &mut phone, "nopass@example.com").await;
        let forgot = crate::account_mail::forgot(&app, "nopass@example.com").await;
        assert_eq!(forgot.status(), 202);
        let token = smtp.nth("nopass@example.com", "Reset your password", 1).await.token("reset-password");
        let reset = crate::account_mail::reset(&app, &token, "a brand new passphrase").await;
        assert_eq!(reset.status(), 200);
        let with_password = expect_tokens(app.login("nopass@example.com", "a brand new passphrase").await).await;
        assert_eq!(content(app.me(&with_password.access).await).await["has_password"], json!(true));
        expect_tokens(sign_in(&app, &mut phone).await).await;
        // A sign-in is no change: no mail for it.
        let mut other = Authenticator::new();
        register(&app, &tokens.access, &mut other, json!({})).await;
        smtp.nth("owner@example.com", "A passkey was added to your account", 2).await;
        expect_tokens(sign_in(&app, &mut other).await).await;
        let metrics = Snapshot::take(&app).await;
        for kind in ["passkey_added", "passkey_renamed", "passkey_removed"] {
            assert!(metrics.get("auth_emails_total", &[("kind", kind), ("outcome", "queued")]) >= 1.0, "{kind}");
        }
    }

    async fn register_list_rename_and_sign_in_with_a_passkey_alone(backend: Backend) {
        let app = spawn_passkey_app(backend, &[]).await;
        let tokens = app.signed_up("ada@example.com").await;
        let access = &tokens.access;
        // The password again: missing, then wrong.
        assert_error(post(&app, access, "/auth/passkeys/register/start", json!({})).await, 400, "VALIDATION_ERROR").await;
        assert_error(post(&app, access, "/auth/passkeys/register/start", json!({"password": "not it"})).await, 403, "INVALID_CURRENT_PASSWORD").await;

        let started = content(post(&app, access, "/auth/passkeys/register/start", json!({"password": PASSWORD})).await).await;
        let options = &started["options"]["publicKey"];
        assert_eq!(options["rp"]["id"], json!("app.example.test"), "{options}");
        // Discoverable, with user verification: what a sign-in without a typed account needs.
        assert_eq!(options["authenticatorSelection"]["residentKey"], json!("required"), "{options}");
        assert_eq!(options["authenticatorSelection"]["requireResidentKey"], json!(true), "{options}");
        assert_eq!(options["authenticatorSelection"]["userVerification"], json!("required"), "{options}");
        // The browser's prompt waits no longer than the ceremony does.
        assert_eq!(options["timeout"], json!(120_000), "{options}");
        assert_eq!(options["user"]["name"], json!("ada@example.com"));
        let mut key = Authenticator::new();
        let credential = key.create(started["options"].clone());
        let finish = json!({"ceremony": started["ceremony"], "credential": credential, "name": "  Laptop  "});
        let added = content(post(&app, access, "/auth/passkeys/register/finish", finish).await).await;
        assert_eq!(added["name"], json!("Laptop"));
        assert_eq!(added["backup_eligible"], json!(false));

        let list = listed(&app, access).await;
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["last_used_at"], Value::Null);
        let id = list[0]["id"].as_str().unwrap().to_string();
        let me = content(app.me(access).await).await;
        assert_eq!(me["mfa"]["passkeys"], json!(1));
        let rename = bearer_json(&app, reqwest::Method::PATCH, &format!("/auth/passkeys/{id}"), access, &json!({"name": "Work laptop"})).await;
        content(rename).await;
        let bad = bearer_json(&app, reqwest::Method::PATCH, &format!("/auth/passkeys/{id}"), access, &json!({"name": "x".repeat(65)})).await;
        assert_error(bad, 400, "VALIDATION_ERROR").await;
        let other = bearer_json(&app, reqwest::Method::PATCH, &format!("/auth/passkeys/{}", uuid::Uuid::new_v4()), access, &json!({"name": "x"})).await;
        assert_error(other, 404, "PASSKEY_NOT_FOUND").await;

        // Sign in with nothing typed: the options name no account and no credential.
        let started = sign_in_start(&app, None).await;
        let options = &started["options"]["publicKey"];
        assert_eq!(options["allowCredentials"], json!([]), "{options}");
        assert_eq!(options["userVerification"], json!("required"));
        assert!(started["options"].get("mediation").is_none(), "a modal prompt: {}", started["options"]);
        // Or the browser's autofill, when the page asks for it.
        let autofill = sign_in_start(&app, Some(json!({"conditional": true}))).await;
        assert_eq!(autofill["options"]["mediation"], json!("conditional"));
        assert_eq!(autofill["options"]["publicKey"]["allowCredentials"], json!([]));
        let credential = key.get(started["options"].clone());
        let signed_in = expect_tokens(sign_in_finish(&app, &started["ceremony"], credential).await).await;
        let said = claims(&signed_in.access);
        assert_eq!(said["amr"], json!(["hwk", "user"]), "{said}");
        assert_eq!(said["acr"], json!("aal2"), "{said}");
        // A refresh keeps what the sign-in proved.
        let again = expect_tokens(app.refresh(&signed_in.refresh).await).await;
        assert_eq!(claims(&again.access)["amr"], json!(["hwk", "user"]));
        let me = content(app.me(&again.access).await).await;
        assert_eq!(me["email"], json!("ada@example.com"));
        let list = listed(&app, &again.access).await;
        assert_eq!(list[0]["name"], json!("Work laptop"));
        assert!(list[0]["last_used_at"].is_string(), "{list:?}");

        let names = event_names(&app, &again.access).await;
        for name in ["passkey.added", "passkey.renamed", "mfa.verified", "login.succeeded"] {
            assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
        }
        let metrics = Snapshot::take(&app).await;
        let count = |ceremony, outcome| metrics.get("auth_passkey_ceremonies_total", &[("ceremony", ceremony), ("outcome", outcome)]);
        assert_eq!(count("registration", "started"), 1.0);
        assert_eq!(count("registration", "success"), 1.0);
        assert_eq!(count("sign_in", "started"), 2.0);
        assert_eq!(count("sign_in", "success"), 1.0);
    }

    async fn a_replayed_expired_or_foreign_ceremony_is_refused(backend: Backend) {
        let app = spawn_passkey_app(backend, &[]).await;
        let ada = app.signed_up("ada@example.com").await;
        let bob = app.signed_up("bob@example.com").await;
        let mut key = Authenticator::new();

        // Another user's registration ceremony, finished with a good answer.
        let started = content(post(&app, &ada.access, "/auth/passkeys/register/start", json!({"password": PASSWORD})).await).await;
        let credential = key.create(started["options"].clone());
        let finish = json!({"ceremony": started["ceremony"], "credential": credential});
        assert_error(post(&app, &bob.access, "/auth/passkeys/register/finish", finish.clone()).await, 400, "PASSKEY_CEREMONY_INVALID").await;
        // Taken by that attempt: not even its owner can finish it now.
        assert_error(post(&app, &ada.access, "/auth/passkeys/register/finish", finish).await, 400, "PASSKEY_CEREMONY_INVALID").await;

        // A fresh authenticator: the first one holds a credential the service never stored.
        let mut key = Authenticator::new();
        register(&app, &ada.access, &mut key, json!({})).await;
        // A sign-in ceremony answered twice.
        let started = sign_in_start(&app, None).await;
        let credential = key.get(started["options"].clone());
        expect_tokens(sign_in_finish(&app, &started["ceremony"], credential.clone()).await).await;
        assert_error(sign_in_finish(&app, &started["ceremony"], credential).await, 400, "PASSKEY_CEREMONY_INVALID").await;
        // A registration's ceremony is no sign-in's, and an unknown one is nothing.
        let started = content(post(&app, &ada.access, "/auth/passkeys/register/start", json!({"password": PASSWORD})).await).await;
        let credential = key.get(sign_in_start(&app, None).await["options"].clone());
        assert_error(sign_in_finish(&app, &started["ceremony"], credential.clone()).await, 400, "PASSKEY_CEREMONY_INVALID").await;
        assert_error(sign_in_finish(&app, &json!("x".repeat(43)), credential).await, 400, "PASSKEY_CEREMONY_INVALID").await;
        // Two minutes after its start, a ceremony is gone.
        let started = sign_in_start(&app, None).await;
        let credential = key.get(started["options"].clone());
        app.wait(std::time::Duration::from_secs(121)).await;
        assert_error(sign_in_finish(&app, &started["ceremony"], credential).await, 400, "PASSKEY_CEREMONY_INVALID").await;
        // Nonsense where a credential belongs is a validation error, not a 500.
        let started = sign_in_start(&app, None).await;
        assert_error(sign_in_finish(&app, &started["ceremony"], json!({"id": 1})).await, 400, "VALIDATION_ERROR").await;

        let metrics = Snapshot::take(&app).await;
        assert_eq!(metrics.get("auth_passkey_ceremonies_total", &[("ceremony", "registration"), ("outcome", "ceremony_invalid")]), 2.0);
        assert_eq!(metrics.get("auth_passkey_ceremonies_total", &[("ceremony", "sign_in"), ("outcome", "ceremony_invalid")]), 4.0);
    }

    async fn another_origin_or_relying_party_is_refused(backend: Backend) {
        let app = spawn_passkey_app(backend, &[]).await;
        let tokens = app.signed_up("ada@example.com").await;
        let start = || post(&app, &tokens.access, "/auth/passkeys/register/start", json!({"password": PASSWORD}));
        // A page on a subdomain the relying party does not list: the browser would let it
        // use the RP id, the service must not accept its answer.
        let mut elsewhere = Authenticator::at("https://login.app.example.test");
        let started = content(start().await).await;
        let credential = elsewhere.create(started["options"].clone());
        let finish = json!({"ceremony": started["ceremony"], "credential": credential});
        assert_error(post(&app, &tokens.access, "/auth/passkeys/register/finish", finish).await, 400, "PASSKEY_INVALID").await;
        // Another relying party id (the parent domain) signed by the authenticator.
        let mut key = Authenticator::new();
        let started = content(start().await).await;
        let mut options = started["options"].clone();
        options["publicKey"]["rp"]["id"] = json!("example.test");
        let credential = key.create(options);
        let finish = json!({"ceremony": started["ceremony"], "credential": credential});
        assert_error(post(&app, &tokens.access, "/auth/passkeys/register/finish", finish).await, 400, "PASSKEY_INVALID").await;
        assert!(listed(&app, &tokens.access).await.is_empty());

        // The same two at sign-in, with a passkey registered properly.
        let mut key = Authenticator::new();
        register(&app, &tokens.access, &mut key, json!({})).await;
        let started = sign_in_start(&app, None).await;
        key.origin = Url::parse("https://login.app.example.test").unwrap();
        let credential = key.get(started["options"].clone());
        assert_error(sign_in_finish(&app, &started["ceremony"], credential).await, 401, "PASSKEY_REFUSED").await;
        key.origin = Url::parse(ORIGIN).unwrap();
        let started = sign_in_start(&app, None).await;
        let mut options = started["options"].clone();
        options["publicKey"]["rpId"] = json!("example.test");
        let credential = key.get(options);
        assert_error(sign_in_finish(&app, &started["ceremony"], credential).await, 401, "PASSKEY_REFUSED").await;
        expect_tokens(sign_in(&app, &mut key).await).await;
        let names = event_names(&app, &tokens.access).await;
        assert_eq!(names.iter().filter(|n| *n == "passkey.failed").count(), 2, "{names:?}");
    }

    async fn another_users_credential_is_refused(backend: Backend) {
        let app = spawn_passkey_app(backend, &[]).await;
        let ada = app.signed_up("ada@example.com").await;
        let bob = app.signed_up("bob@example.com").await;
        let (mut ada_key, mut bob_key) = (Authenticator::new(), Authenticator::new());
        register(&app, &ada.access, &mut ada_key, json!({})).await;
        register(&app, &bob.access, &mut bob_key, json!({})).await;
        // Bob's authenticator claims to hold a passkey of Ada's account.
        let ada_handle = ada_key.resident[0].1.clone();
        let started = sign_in_start(&app, None).await;
        let mut credential = bob_key.get(started["options"].clone());
        credential["response"]["userHandle"] = json!(ada_handle);
        assert_error(sign_in_finish(&app, &started["ceremony"], credential).await, 401, "PASSKEY_REFUSED").await;
        // A credential whose registration was never finished: unknown to the service.
        let mut options = sign_in_start(&app, None).await;
        let mut lone = Authenticator::new();
        let lone_started = content(post(&app, &ada.access, "/auth/passkeys/register/start", json!({"password": PASSWORD})).await).await;
        lone.create(lone_started["options"].clone());
        let credential = lone.get(options["options"].take());
        assert_error(sign_in_finish(&app, &options["ceremony"], credential).await, 401, "PASSKEY_REFUSED").await;
        // Each signs in as themselves.
        let signed_in = expect_tokens(sign_in(&app, &mut bob_key).await).await;
        let me = content(app.me(&signed_in.access).await).await;
        assert_eq!(me["email"], json!("bob@example.com"));
    }

    async fn a_counter_that_went_back_is_refused_and_recorded(backend: Backend) {
        let app = spawn_passkey_app(backend, &[]).await;
        let tokens = app.signed_up("ada@example.com").await;
        let mut key = Authenticator::new();
        register(&app, &tokens.access, &mut key, json!({})).await;
        // Two signatures: the later count arrives first, the earlier one after it, as when a
        // copy of the key was used meanwhile.
        let (first, second) = (sign_in_start(&app, None).await, sign_in_start(&app, None).await);
        let earlier = key.get(first["options"].clone());
        let later = key.get(second["options"].clone());
        expect_tokens(sign_in_finish(&app, &second["ceremony"], later).await).await;
        assert_error(sign_in_finish(&app, &first["ceremony"], earlier).await, 401, "PASSKEY_REFUSED").await;
        let names = event_names(&app, &tokens.access).await;
        assert!(names.iter().any(|n| n == "passkey.clone_detected"), "{names:?}");
        let metrics = Snapshot::take(&app).await;
        assert_eq!(metrics.get("auth_passkey_ceremonies_total", &[("ceremony", "sign_in"), ("outcome", "cloned")]), 1.0);
        // The authenticator's next count is above the stored one again.
        expect_tokens(sign_in(&app, &mut key).await).await;
    }

    async fn removal_takes_the_password_and_never_the_last_way_in(backend: Backend) {
        let app = spawn_passkey_app(backend, &[]).await;
        let tokens = app.signed_up("ada@example.com").await;
        let mut key = Authenticator::new();
        let id = register(&app, &tokens.access, &mut key, json!({})).await;
        let remove = |id: String, body: Value, access: String| {
            let app = &app;
            async move { bearer_json(app, reqwest::Method::DELETE, &format!("/auth/passkeys/{id}"), &access, &body).await }
        };
        assert_error(remove(id.clone(), json!({"password": "not it"}), tokens.access.clone()).await, 403, "INVALID_CURRENT_PASSWORD").await;
        content(remove(id.clone(), json!({"password": PASSWORD}), tokens.access.clone()).await).await;
        assert!(listed(&app, &tokens.access).await.is_empty());
        assert_error(sign_in(&app, &mut key).await, 401, "PASSKEY_REFUSED").await;
        assert_error(remove(id, json!({"password": PASSWORD}), tokens.access.clone()).await, 404, "PASSKEY_NOT_FOUND").await;

        // An account signed up with a passkey and no password: its only passkey stays; with a
        // second one, either may go. Its passkey session is the step-up.
        let mut key = Authenticator::new();
        let session = sign_up(&app, &mut key, "pat@example.com").await;
        assert_eq!(claims(&session.access)["amr"], json!(["hwk", "user"]));
        assert_eq!(content(app.me(&session.access).await).await["has_password"], json!(false));
        let first = listed(&app, &session.access).await[0]["id"].as_str().unwrap().to_string();
        // No password to guess: every password is refused as for an unknown account.
        assert_error(app.login("pat@example.com", "").await, 400, "VALIDATION_ERROR").await;
        assert_error(app.login("pat@example.com", PASSWORD).await, 401, "USER_NOT_FOUND").await;
        let by_password = remove(first.clone(), json!({"password": PASSWORD}), tokens.access.clone()).await;
        assert_error(by_password, 404, "PASSKEY_NOT_FOUND").await;
        assert_error(remove(first.clone(), json!({}), session.access.clone()).await, 409, "PASSKEY_LAST_WAY_IN").await;
        let mut spare = Authenticator::new();
        let started = content(post(&app, &session.access, "/auth/passkeys/register/start", json!({})).await).await;
        let credential = spare.create(started["options"].clone());
        let finish = json!({"ceremony": started["ceremony"], "credential": credential});
        let second = content(post(&app, &session.access, "/auth/passkeys/register/finish", finish).await).await;
        // The first authenticator is not offered the same account twice.
        let excluded = started["options"]["publicKey"]["excludeCredentials"].as_array().unwrap().len();
        assert_eq!(excluded, 1);
        content(remove(first, json!({}), session.access.clone()).await).await;
        let last = second["id"].as_str().unwrap().to_string();
        assert_error(remove(last, json!({}), session.access.clone()).await, 409, "PASSKEY_LAST_WAY_IN").await;
        expect_tokens(sign_in(&app, &mut spare).await).await;

        // The address is taken now, for a sign-up as for a registration.
        let taken = app.post_json("/auth/passkeys/signup/start", &json!({"username": "Pat", "email": "pat@example.com"})).await;
        assert_error(taken, 409, "EMAIL_TAKEN").await;

        // Deleting the users deletes their passkeys.
        assert_eq!(app.sql("delete from users").await, 2);
        assert_eq!(app.sql("delete from passkeys").await, 0);
    }

    async fn a_passkey_answers_a_logins_second_step(backend: Backend) {
        let app = spawn_passkey_app(backend, &[]).await;
        let tokens = app.signed_up("ada@example.com").await;
        let factor = enable(&app, &tokens).await;
        let mut key = Authenticator::new();
        // With a factor, adding a passkey takes a code too.
        let no_code = post(&app, &tokens.access, "/auth/passkeys/register/start", json!({"password": PASSWORD})).await;
        assert_error(no_code, 403, "MFA_CODE_REQUIRED").await;
        register(&app, &tokens.access, &mut key, json!({"code": factor.code(&app)})).await;

        let response = app.login("ada@example.com", PASSWORD).await;
        let body = assert_error(response, 401, "MFA_REQUIRED").await;
        assert_eq!(body["content"]["mfa"]["methods"], json!(["totp", "recovery_code", "passkey"]));
        let challenge = body["content"]["mfa"]["challenge"].as_str().unwrap().to_string();
        let started = sign_in_start(&app, Some(json!({"challenge": challenge}))).await;
        let allowed = started["options"]["publicKey"]["allowCredentials"].as_array().unwrap().len();
        assert_eq!(allowed, 1, "only the user's own passkeys");
        let credential = key.get(started["options"].clone());
        // Without its challenge the ceremony is not a sign-in of its own.
        let alone = sign_in_finish(&app, &started["ceremony"], credential.clone()).await;
        assert_error(alone, 400, "PASSKEY_CEREMONY_INVALID").await;
        let started = sign_in_start(&app, Some(json!({"challenge": challenge}))).await;
        let credential = key.get(started["options"].clone());
        let finish = json!({"ceremony": started["ceremony"], "credential": credential, "challenge": challenge});
        let signed_in = expect_tokens(app.post_json("/auth/passkeys/login/finish", &finish).await).await;
        let said = claims(&signed_in.access);
        assert_eq!(said["amr"], json!(["pwd", "hwk", "user"]), "{said}");
        assert_eq!(said["acr"], json!("aal2"));
        // The challenge is used up.
        let code = factor.code(&app);
        assert_error(crate::mfa::verify(&app, &challenge, "code", &code).await, 401, "MFA_CHALLENGE_INVALID").await;
        let unknown = app.post_json("/auth/passkeys/login/start", &json!({"challenge": "nope"})).await;
        assert_error(unknown, 401, "MFA_CHALLENGE_INVALID").await;
        // A user with a factor and no passkey is offered the codes only.
        let other = app.signed_up("bob@example.com").await;
        enable(&app, &other).await;
        crate::mfa::challenge(&app, "bob@example.com").await;
    }

    async fn a_disabled_account_signs_in_with_no_passkey(backend: Backend) {
        let app = spawn_passkey_app(backend, &[("ADMIN_ADDR", "127.0.0.1:0"), ("SESSION_CACHE_MS", "0")]).await;
        let mut key = Authenticator::new();
        let tokens = sign_up(&app, &mut key, "pat@example.com").await;
        expect_tokens(sign_in(&app, &mut key).await).await;
        let admin_key = crate::admin::key_for(&app, "support").await;
        let id = crate::admin::id_of(&app, &admin_key, "pat").await;
        let path = format!("/admin/users/{id}/disable");
        content(crate::admin::admin(&app, "POST", &path, Some(&admin_key), None).await).await;
        assert_error(app.me(&tokens.access).await, 401, "INVALID_ACCESS_TOKEN").await;
        assert_error(sign_in(&app, &mut key).await, 403, "ACCOUNT_DISABLED").await;
        let path = format!("/admin/users/{id}/enable");
        content(crate::admin::admin(&app, "POST", &path, Some(&admin_key), None).await).await;
        expect_tokens(sign_in(&app, &mut key).await).await;
    }

    async fn the_finish_routes_are_under_the_per_ip_auth_limit(backend: Backend) {
        let app = spawn_passkey_app(backend, &[("RATE_LIMIT_AUTH_PER_MINUTE", "3")]).await;
        let mut last = None;
        for _ in 0..4 {
            last = Some(app.post_json("/auth/passkeys/login/finish", &json!({"ceremony": "x", "credential": {}})).await);
        }
        assert_error(last.unwrap(), 429, "RATE_LIMITED").await;
    }

    async fn passkeys_are_off_without_a_domain(backend: Backend) {
        let app = spawn_app_at_manual_clock(backend, &[("PUBLIC_APP_URL", "http://127.0.0.1:5173")]).await;
        let response = app.post_json("/auth/passkeys/login/start", &json!({})).await;
        assert_error(response, 404, "PASSKEYS_UNAVAILABLE").await;
        let tokens: Tokens = app.signed_up("ada@example.com").await;
        let start = post(&app, &tokens.access, "/auth/passkeys/register/start", json!({"password": PASSWORD})).await;
        assert_error(start, 404, "PASSKEYS_UNAVAILABLE").await;
    }
}
