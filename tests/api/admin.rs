//! The admin listener: off unless `ADMIN_ADDR` is set, never on the API port, answering only
//! with a live admin key; user search with stable keyset pages, and one user's account.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{
    Backend, TestApp, assert_error, content, expect_tokens, spawn_app_at_manual_clock, spawn_app_with, spawn_sibling,
};

/// Every admin route, with an id of no user.
const ROUTES: [(&str, &str); 10] = [
    ("GET", "/admin/users"),
    ("GET", "/admin/users/{id}"),
    ("DELETE", "/admin/users/{id}"),
    ("POST", "/admin/users/{id}/disable"),
    ("POST", "/admin/users/{id}/enable"),
    ("DELETE", "/admin/users/{id}/sessions"),
    ("DELETE", "/admin/users/{id}/sessions/{id}"),
    ("POST", "/admin/users/{id}/reset-mfa"),
    ("POST", "/admin/users/{id}/send-verification"),
    ("POST", "/admin/users/{id}/verify-email"),
];

const PASSWORD: &str = "correct horse battery";
/// Mail goes nowhere (a closed port): mails stay queued, as a slow SMTP server leaves them.
const NO_SMTP: (&str, &str) = ("SMTP_URL", "smtp://127.0.0.1:9");

/// `method path` on the admin listener with `key`, and a JSON `body` when given.
pub async fn admin(
    app: &TestApp,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.admin_address.as_ref().unwrap()));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

/// A live key named `name` on `app`'s stores.
pub async fn key_for(app: &TestApp, name: &str) -> String {
    auth_api::accounts::create_admin_key(&users_store(app).await, name)
        .await
        .unwrap()
}

/// The id of the user with `email`, through the admin search.
pub async fn id_of(app: &TestApp, key: &str, email: &str) -> String {
    let page = content(admin_get(app, &format!("/admin/users?email_prefix={email}"), Some(key)).await).await;
    page["users"][0]["id"].as_str().unwrap().to_string()
}

async fn spawn_admin_app(backend: Backend) -> TestApp {
    spawn_app_with(
        backend,
        &[("ADMIN_ADDR", "127.0.0.1:0"), ("SESSION_CACHE_MS", "0"), SESSIONS],
    )
    .await
}

/// Several sessions per user, as a user with a laptop and a phone has.
const SESSIONS: (&str, &str) = ("MAX_SESSIONS_PER_USER", "5");

/// `id` as a literal of the app's database (SQLite keeps UUIDs as 16 bytes).
fn uuid_literal(app: &TestApp, id: &str) -> String {
    match app.database_url {
        Some(_) => format!("'{id}'"),
        None => format!("X'{}'", id.replace('-', "")),
    }
}

async fn users_store(app: &TestApp) -> auth_api::store::UserStore {
    let settings = app.settings_with(&[]);
    auth_api::startup::connect_users(&settings, Default::default(), &auth_api::clock::Clock::system())
        .await
        .unwrap()
}

async fn admin_get(app: &TestApp, path: &str, key: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(format!("{}{path}", app.admin_address.as_ref().unwrap()));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap()
}

backend_tests! {
    async fn admin_routes_answer_only_a_live_key(backend: Backend) {
        let app = spawn_admin_app(backend).await;
        let users = users_store(&app).await;
        let key = auth_api::accounts::create_admin_key(&users, "support").await.unwrap();
        let tokens = app.signed_up("ada@example.com").await;
        let nobody = uuid::Uuid::now_v7().to_string();
        for (method, path) in ROUTES {
            let path = &path.replace("{id}", &nobody);
            assert_error(admin(&app, method, path, None, None).await, 401, "PROTECTED_ROUTE").await;
            assert_error(admin(&app, method, path, Some("aak_wrong"), None).await, 401, "INVALID_ADMIN_KEY").await;
            // A user's access token is no admin key.
            assert_error(admin(&app, method, path, Some(&tokens.access), None).await, 401, "INVALID_ADMIN_KEY").await;
            // With the key, an unknown user is 404 (the list is every user: 200).
            let answer = admin(&app, method, path, Some(&key), None).await;
            let expected = if path == "/admin/users" { 200 } else { 404 };
            assert_eq!(answer.status(), expected, "{method} {path}");
        }
        let basic = app
            .client
            .get(format!("{}/admin/users", app.admin_address.as_ref().unwrap()))
            .header("authorization", format!("Basic {key}"))
            .send()
            .await
            .unwrap();
        assert_error(basic, 401, "INVALID_AUTH_HEADER").await;
        content(admin_get(&app, "/admin/users", Some(&key)).await).await;
        // The admin document is there, and says how to authenticate.
        let doc = content_raw(admin_get(&app, "/openapi.json", None).await).await;
        assert!(doc["paths"]["/admin/users"].is_object(), "{doc}");
        assert!(doc["components"]["securitySchemes"]["admin_key"].is_object());
        // Revoked: refused at once here (SESSION_CACHE_MS=0), on every route.
        assert!(users.revoke_admin_key("support").await.unwrap());
        for (method, path) in ROUTES {
            let path = &path.replace("{id}", &nobody);
            assert_error(admin(&app, method, path, Some(&key), None).await, 401, "INVALID_ADMIN_KEY").await;
        }
        // Nothing of the admin API on the API's port.
        let live = key_for(&app, "support-2").await;
        for (method, path) in ROUTES {
            let path = &path.replace("{id}", &nobody);
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let answer = app.client.request(method, app.url(path)).bearer_auth(&live).send().await.unwrap();
            assert_error(answer, 404, "NOT_FOUND").await;
        }
    }

    async fn disabling_ends_every_session_and_refuses_every_way_in_until_enabled(backend: Backend) {
        let app = spawn_admin_app(backend).await;
        let key = key_for(&app, "security-oncall").await;
        let first = app.signed_up("mallory@example.com").await;
        let second = expect_tokens(app.login("mallory@example.com", PASSWORD).await).await;
        app.signed_up("bystander@example.com").await;
        let id = id_of(&app, &key, "mallory").await;

        let body = json!({"reason": "spam from this account", "until": "2999-01-01T00:00:00Z"});
        let done = content(admin(&app, "POST", &format!("/admin/users/{id}/disable"), Some(&key), Some(body)).await).await;
        assert_eq!(done["revoked"], json!(2), "{done}");
        assert_eq!(done["user"]["disabled"]["reason"], json!("spam from this account"));
        assert_eq!(done["user"]["disabled"]["until"], json!("2999-01-01T00:00:00Z"));
        for tokens in [&first, &second] {
            assert_error(app.me(&tokens.access).await, 401, "INVALID_ACCESS_TOKEN").await;
            assert_eq!(app.refresh(&tokens.refresh).await.status(), 401);
        }
        // The right password learns it is disabled; a wrong one learns nothing.
        assert_error(app.login("mallory@example.com", PASSWORD).await, 403, "ACCOUNT_DISABLED").await;
        assert_error(app.login("mallory@example.com", "not the password").await, 401, "USER_NOT_FOUND").await;
        let create_or_login = app.post_json("/auth", &json!({"email": "mallory@example.com", "password": PASSWORD})).await;
        assert_error(create_or_login, 403, "ACCOUNT_DISABLED").await;
        // Found by the filter, and said so; the user's trail names the operator.
        let page = content(admin_get(&app, "/admin/users?disabled=true", Some(&key)).await).await;
        let emails: Vec<&str> = page["users"].as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap()).collect();
        assert_eq!(emails, ["mallory@example.com"]);
        let account = content(admin_get(&app, &format!("/admin/users/{id}"), Some(&key)).await).await;
        assert_eq!(account["sessions"], json!([]));
        let disabled = account["events"].as_array().unwrap().iter().find(|e| e["name"] == "user.disabled").unwrap().clone();
        assert_eq!(disabled["actor"], json!("security-oncall"));
        assert_eq!(disabled["ip"], Value::Null, "the operator's address is not in the user's trail");
        let ended = account["events"].as_array().unwrap().iter().find(|e| e["name"] == "session.revoked").unwrap().clone();
        assert_eq!((ended["reason"].clone(), ended["actor"].clone()), (json!("disabled"), json!("security-oncall")));
        // Bad values are refused, and nothing changes.
        for bad in [json!({"until": "2001-01-01T00:00:00Z"}), json!({"reason": "x".repeat(201)}), json!({"until": "soon"}), json!({"other": 1})] {
            let answer = admin(&app, "POST", &format!("/admin/users/{id}/disable"), Some(&key), Some(bad)).await;
            assert_error(answer, 400, "VALIDATION_ERROR").await;
        }

        let enabled = content(admin(&app, "POST", &format!("/admin/users/{id}/enable"), Some(&key), None).await).await;
        assert_eq!(enabled["disabled"], Value::Null);
        let back = expect_tokens(app.login("mallory@example.com", PASSWORD).await).await;
        assert_eq!(app.me(&back.access).await.status(), 200);
        let page = content(admin_get(&app, "/admin/users?disabled=false", Some(&key)).await).await;
        assert_eq!(page["users"].as_array().unwrap().len(), 2);
    }

    async fn an_operator_signs_a_user_out_everywhere_or_of_one_session(backend: Backend) {
        let app = spawn_admin_app(backend).await;
        let key = key_for(&app, "support").await;
        let laptop = app.signed_up("ada@example.com").await;
        let phone = expect_tokens(app.login("ada@example.com", PASSWORD).await).await;
        let tablet = expect_tokens(app.login("ada@example.com", PASSWORD).await).await;
        let id = id_of(&app, &key, "ada").await;
        let account = content(admin_get(&app, &format!("/admin/users/{id}"), Some(&key)).await).await;
        let sessions = account["sessions"].as_array().unwrap().clone();
        assert_eq!(sessions.len(), 3);
        // The stolen laptop's session: the oldest.
        let stolen = sessions[0]["id"].as_str().unwrap();
        let one = admin(&app, "DELETE", &format!("/admin/users/{id}/sessions/{stolen}"), Some(&key), None).await;
        assert_eq!(content(one).await["revoked"], json!(1));
        assert_eq!(app.refresh(&laptop.refresh).await.status(), 401);
        assert_eq!(app.me(&phone.access).await.status(), 200, "the others live on");
        let again = admin(&app, "DELETE", &format!("/admin/users/{id}/sessions/{stolen}"), Some(&key), None).await;
        assert_error(again, 404, "SESSION_NOT_FOUND").await;
        let all = admin(&app, "DELETE", &format!("/admin/users/{id}/sessions"), Some(&key), None).await;
        assert_eq!(content(all).await["revoked"], json!(2));
        for tokens in [&phone, &tablet] {
            assert_error(app.me(&tokens.access).await, 401, "INVALID_ACCESS_TOKEN").await;
        }
        // Signed out is not disabled.
        expect_tokens(app.login("ada@example.com", PASSWORD).await).await;
    }

    async fn erasure_leaves_no_trace_of_the_address_and_keeps_the_event_ids(backend: Backend) {
        let app = spawn_app_with(backend, &[("ADMIN_ADDR", "127.0.0.1:0"), ("SESSION_CACHE_MS", "0"), SESSIONS, NO_SMTP]).await;
        let key = key_for(&app, "dpo").await;
        let email = "erase.me@example.com";
        let tokens = app.signed_up(email).await;
        let browser = app
            .client
            .post(app.url("/auth/login"))
            .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        expect_tokens(browser).await;
        assert_eq!(app.login(email, "a wrong guess").await.status(), 401);
        assert_eq!(app.post_json("/auth/password/forgot", &json!({"email": email})).await.status(), 202);
        app.signed_up("stays@example.com").await;
        let id = id_of(&app, &key, "erase.me").await;
        let before = content(admin_get(&app, &format!("/admin/users/{id}"), Some(&key)).await).await;
        let event_ids: Vec<Value> = before["events"].as_array().unwrap().iter().map(|e| e["id"].clone()).collect();
        assert!(event_ids.len() >= 4, "{before}");
        assert!(columns_holding(&app, email).await.len() >= 2, "the address is in users and the outbox before");

        let erased = content(admin(&app, "DELETE", &format!("/admin/users/{id}"), Some(&key), None).await).await;
        assert_eq!(erased["users"], json!(1));
        assert_eq!(erased["sessions"], json!(2));
        assert!(erased["mails"].as_u64().unwrap() >= 2, "verification and reset mails: {erased}");
        assert_eq!(erased["events_anonymised"].as_u64().unwrap() as usize, event_ids.len(), "{erased}");
        assert_eq!(columns_holding(&app, email).await, Vec::<String>::new(), "no text column holds the address");
        // The events stay, under their ids, without address or browser.
        let kept = count(&app, &format!(
                "select id from security_events where user_id = {} and ip is null and browser is null",
                uuid_literal(&app, &id)
            ))
            .await;
        assert_eq!(kept, event_ids.len() + 1, "the events and user.erased");
        assert_eq!(app.refresh(&tokens.refresh).await.status(), 401);
        assert_error(app.login(email, PASSWORD).await, 401, "USER_NOT_FOUND").await;
        assert_error(admin_get(&app, &format!("/admin/users/{id}"), Some(&key)).await, 404, "NO_SUCH_USER").await;
        assert_error(admin(&app, "DELETE", &format!("/admin/users/{id}"), Some(&key), None).await, 404, "NO_SUCH_USER").await;
        // The address may register again: a new account.
        app.signed_up(email).await;
    }

    async fn a_challenge_issued_before_the_disabling_opens_no_session(backend: Backend) {
        let vars = [("ADMIN_ADDR", "127.0.0.1:0"), ("SESSION_CACHE_MS", "0")];
        let app = crate::mfa::spawn_mfa_app(backend, &vars).await;
        let key = key_for(&app, "support").await;
        let tokens = app.signed_up("two.steps@example.com").await;
        let factor = crate::mfa::enable(&app, &tokens).await;
        let challenge = crate::mfa::challenge(&app, "two.steps@example.com").await;
        let other = crate::mfa::challenge(&app, "two.steps@example.com").await;
        let id = id_of(&app, &key, "two.steps").await;
        content(admin(&app, "POST", &format!("/admin/users/{id}/disable"), Some(&key), None).await).await;
        let code = factor.code(&app);
        assert_error(crate::mfa::verify(&app, &challenge, "code", &code).await, 403, "ACCOUNT_DISABLED").await;
        let recovery = &factor.recovery_codes[0];
        assert_error(crate::mfa::verify(&app, &other, "recovery_code", recovery).await, 403, "ACCOUNT_DISABLED").await;
        // A login now is refused after its password, before any challenge.
        assert_error(app.login("two.steps@example.com", PASSWORD).await, 403, "ACCOUNT_DISABLED").await;
    }

    async fn the_users_command_acts_on_the_same_accounts_as_the_admin_api(backend: Backend) {
        let app = spawn_admin_app(backend).await;
        let email = "cli.user@example.com";
        let tokens = app.signed_up(email).await;
        app.signed_up("other@example.com").await;
        let (code, out, err) = users_command(&app, &["list", "--email-prefix", "cli"]).await;
        assert_eq!(code, Some(0), "{err}");
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines.len() == 2 && lines[0].starts_with("id ") && lines[1].contains(email), "a header and one user on stdout: {out}");
        let id = lines[1].split_whitespace().next().unwrap().to_string();
        let (code, out, _) = users_command(&app, &["show", email]).await;
        assert_eq!(code, Some(0));
        assert!(out.contains("sessions:") && out.contains("user.registered"), "{out}");

        let (code, _, err) = users_command(&app, &["disable", email, "--reason", "stolen laptop"]).await;
        assert_eq!(code, Some(0), "{err}");
        assert_error(app.me(&tokens.access).await, 401, "INVALID_ACCESS_TOKEN").await;
        assert_eq!(app.refresh(&tokens.refresh).await.status(), 401);
        assert_error(app.login(email, PASSWORD).await, 403, "ACCOUNT_DISABLED").await;
        let (_, out, _) = users_command(&app, &["list", "--disabled", "true"]).await;
        assert!(out.contains(email), "{out}");
        let (code, _, err) = users_command(&app, &["enable", &id]).await;
        assert_eq!(code, Some(0), "{err}");
        let back = expect_tokens(app.login(email, PASSWORD).await).await;

        let (code, _, err) = users_command(&app, &["sign-out", email]).await;
        match backend {
            // The sessions are in Redis: the command ends them.
            Backend::External | Backend::RedisCluster | Backend::RedisSentinel => {
                assert_eq!(code, Some(0), "{err}");
                assert_eq!(app.refresh(&back.refresh).await.status(), 401);
            }
            // In the server's process, out of the command's reach: it says so and fails.
            Backend::Embedded => {
                assert_eq!(code, Some(1));
                assert!(err.contains("admin API"), "{err}");
            }
        }
        let (code, _, err) = users_command(&app, &["reset-mfa", email]).await;
        assert!(code == Some(0) && err.contains("authenticator none"), "{err}");
        let (code, _, _) = users_command(&app, &["erase", email]).await;
        assert_eq!(code, Some(2), "erasing needs --yes");
        let (code, out, err) = users_command(&app, &["erase", email, "--yes"]).await;
        assert_eq!(code, Some(0), "{err}");
        assert!(out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["user", "1"]), "{out}");
        assert_error(app.login(email, PASSWORD).await, 401, "USER_NOT_FOUND").await;
        let (code, _, err) = users_command(&app, &["show", &id]).await;
        assert!(code == Some(1) && err.contains("no user has this id"), "{err}");
        let (code, _, _) = users_command(&app, &["list", "--limit", "0"]).await;
        assert_eq!(code, Some(2));
        let actions = count(&app, "select id from security_events where actor = 'cli:ops-test'").await;
        assert!(actions >= 3, "disabled, enabled, erased by cli:ops-test: {actions}");
    }

    async fn an_operator_resets_second_factors_and_confirms_an_address(backend: Backend) {
        let vars = [("ADMIN_ADDR", "127.0.0.1:0"), ("SESSION_CACHE_MS", "0"), NO_SMTP];
        let app = crate::mfa::spawn_mfa_app(backend, &vars).await;
        let key = key_for(&app, "support").await;
        let tokens = app.signed_up("lost.phone@example.com").await;
        crate::mfa::enable(&app, &tokens).await;
        assert_error(app.login("lost.phone@example.com", PASSWORD).await, 401, "MFA_REQUIRED").await;
        let id = id_of(&app, &key, "lost.phone").await;
        let reset = content(admin(&app, "POST", &format!("/admin/users/{id}/reset-mfa"), Some(&key), None).await).await;
        assert_eq!(reset, json!({"totp": true, "recovery_codes": 10}));
        expect_tokens(app.login("lost.phone@example.com", PASSWORD).await).await;
        let notices = count(&app, &format!("select id from mail_outbox where kind = 'mfa_reset' and user_id = {} and requested_ip is null and requested_ua is null", uuid_literal(&app, &id))).await;
        assert_eq!(notices, 1, "the owner is told, and the operator's address is not kept for it");
        let again = content(admin(&app, "POST", &format!("/admin/users/{id}/reset-mfa"), Some(&key), None).await).await;
        assert_eq!(again, json!({"totp": false, "recovery_codes": 0}));

        let sent = admin(&app, "POST", &format!("/admin/users/{id}/send-verification"), Some(&key), None).await;
        assert_eq!(sent.status(), 202);
        let verified = content(admin(&app, "POST", &format!("/admin/users/{id}/verify-email"), Some(&key), None).await).await;
        assert_eq!(verified["email_verified"], json!(true));
        let twice = admin(&app, "POST", &format!("/admin/users/{id}/verify-email"), Some(&key), None).await;
        assert_error(twice, 409, "EMAIL_ALREADY_VERIFIED").await;
        let needless = admin(&app, "POST", &format!("/admin/users/{id}/send-verification"), Some(&key), None).await;
        assert_error(needless, 409, "EMAIL_ALREADY_VERIFIED").await;
        let account = content(admin_get(&app, &format!("/admin/users/{id}"), Some(&key)).await).await;
        let names: Vec<(&str, &str)> = account["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["actor"] == json!("support"))
            .map(|e| (e["name"].as_str().unwrap(), e["reason"].as_str().unwrap_or("")))
            .collect();
        assert_eq!(
            names,
            [("email.verified", "admin"), ("email.verification_requested", ""), ("mfa.disabled", "mfa_reset")]
        );
    }


    async fn users_are_found_and_paged_in_a_stable_order(backend: Backend) {
        let app = spawn_admin_app(backend).await;
        let users = users_store(&app).await;
        let key = auth_api::accounts::create_admin_key(&users, "support").await.unwrap();
        for name in ["ann", "bob", "bea", "cid", "ben"] {
            app.signed_up(&format!("{name}@example.com")).await;
        }
        let page = |query: String| {
            let (app, key) = (&app, key.clone());
            async move { content(admin_get(app, &format!("/admin/users?{query}"), Some(&key)).await).await }
        };
        let emails = |page: &Value| -> Vec<String> {
            page["users"].as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap().to_string()).collect()
        };
        let first = page("limit=2".into()).await;
        assert_eq!(emails(&first), ["ann@example.com", "bob@example.com"]);
        // Users added meanwhile come at the end: the next page is what it was.
        app.signed_up("aaron@example.com").await;
        let second = page(format!("limit=2&after={}", first["next"].as_str().unwrap())).await;
        assert_eq!(emails(&second), ["bea@example.com", "cid@example.com"]);
        let third = page(format!("limit=2&after={}", second["next"].as_str().unwrap())).await;
        assert_eq!(emails(&third), ["ben@example.com", "aaron@example.com"]);
        let last = page(format!("limit=2&after={}", third["next"].as_str().unwrap())).await;
        assert_eq!(emails(&last), Vec::<String>::new());
        assert_eq!(last["next"], Value::Null);
        // Search by prefix (letters in any case), verification and second factor.
        assert_eq!(emails(&page("email_prefix=B".into()).await), ["bob@example.com", "bea@example.com", "ben@example.com"]);
        assert_eq!(emails(&page("email_prefix=be&verified=false&mfa=false".into()).await), ["bea@example.com", "ben@example.com"]);
        assert_eq!(emails(&page("verified=true".into()).await), Vec::<String>::new());
        assert_eq!(emails(&page("email_prefix=%25".into()).await), Vec::<String>::new(), "a % is a character, not a wildcard");
        for bad in ["limit=0", "limit=101", "verified=maybe", "after=nope"] {
            assert_error(admin_get(&app, &format!("/admin/users?{bad}"), Some(&key)).await, 400, "VALIDATION_ERROR").await;
        }

        // One user: profile, sessions, passkeys and events; no hash anywhere.
        let id = emails(&first).len();
        assert_eq!(id, 2);
        let ann = first["users"][0]["id"].as_str().unwrap().to_string();
        let account = content(admin_get(&app, &format!("/admin/users/{ann}"), Some(&key)).await).await;
        assert_eq!(account["user"]["email"], json!("ann@example.com"));
        assert_eq!(account["sessions"].as_array().unwrap().len(), 1);
        assert_eq!(account["passkeys"], json!([]));
        let names: Vec<&str> = account["events"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"user.registered"), "{names:?}");
        assert!(!account.to_string().contains("argon2"), "no password hash: {account}");
        let unknown = admin_get(&app, &format!("/admin/users/{}", uuid::Uuid::now_v7()), Some(&key)).await;
        assert_error(unknown, 404, "NO_SUCH_USER").await;
        assert_error(admin_get(&app, "/admin/users/nope", Some(&key)).await, 400, "VALIDATION_ERROR").await;
    }
}

/// `auth-api users ARGS` on `app`'s stores, as the login `ops-test`: (status, stdout, stderr).
async fn users_command(app: &TestApp, args: &[&str]) -> (Option<i32>, String, String) {
    let mut command = crate::binary::binary();
    command
        .envs(app.command_env())
        .env("USER", "ops-test")
        .arg("users")
        .args(args);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// How many rows `select` returns on the app's database.
async fn count(app: &TestApp, select: &str) -> usize {
    use sqlx::Connection;
    let sql = sqlx::AssertSqlSafe(format!("select count(*) from ({select}) as counted"));
    let (n,): (i64,) = match &app.database_url {
        Some(url) => {
            let mut db = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query_as(sql).fetch_one(&mut db).await.unwrap()
        }
        None => {
            let path = app.sqlite_path().unwrap();
            let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            sqlx::query_as(sql).fetch_one(&mut db).await.unwrap()
        }
    };
    n as usize
}

/// `table.column` of every text column of the app's database that holds `needle`.
async fn columns_holding(app: &TestApp, needle: &str) -> Vec<String> {
    use sqlx::{Connection, Row};
    assert!(!needle.contains(['%', '_', '\'']), "a plain needle, for LIKE");
    // Every (table, column) of text, as each database lists them.
    let columns: Vec<(String, String)> = match &app.database_url {
        Some(url) => {
            let mut db = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query(
                "select table_name::text, column_name::text from information_schema.columns \
                 where table_schema = 'public' and data_type in ('text', 'character varying')",
            )
            .fetch_all(&mut db)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
        }
        None => {
            let path = app.sqlite_path().unwrap();
            let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            sqlx::query(
                "select m.name, c.name from sqlite_master m, pragma_table_info(m.name) c \
                 where m.type = 'table' and upper(c.type) = 'TEXT'",
            )
            .fetch_all(&mut db)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
        }
    };
    assert!(columns.iter().any(|(t, c)| t == "users" && c == "email"), "{columns:?}");
    let mut found = Vec::new();
    for (table, column) in columns {
        let select = format!(
            "select 1 from \"{table}\" where lower(\"{column}\") like '%{}%'",
            needle.to_lowercase()
        );
        if count(app, &select).await > 0 {
            found.push(format!("{table}.{column}"));
        }
    }
    found
}

crate::case!(disabling_on_one_instance_holds_on_all_three_within_the_cache_window needs External);
/// Three instances on one PostgreSQL + Redis: a disable on A ends the sessions B and C remember
/// within `SESSION_CACHE_MS`, and refuses logins and refreshes on them at once.
async fn disabling_on_one_instance_holds_on_all_three_within_the_cache_window() {
    let vars = [("ADMIN_ADDR", "127.0.0.1:0"), ("SESSION_CACHE_MS", "1000"), SESSIONS];
    let a = spawn_app_with(Backend::External, &vars).await;
    let b = spawn_sibling(&a, &vars).await;
    let c = spawn_sibling(&a, &vars).await;
    let key = key_for(&a, "security-oncall").await;
    let on_b = b.signed_up("taken.over@example.com").await;
    let on_c = expect_tokens(c.login("taken.over@example.com", PASSWORD).await).await;
    for (app, tokens) in [(&b, &on_b), (&c, &on_c)] {
        assert_eq!(
            app.me(&tokens.access).await.status(),
            200,
            "each instance remembers its session"
        );
    }
    let id = id_of(&a, &key, "taken.over").await;
    let disabled_at = Instant::now();
    let done = content(admin(&a, "POST", &format!("/admin/users/{id}/disable"), Some(&key), None).await).await;
    assert_eq!(done["revoked"], json!(2));
    // At once: refreshes and logins, on every instance.
    assert_eq!(b.refresh(&on_b.refresh).await.status(), 401);
    assert_eq!(c.refresh(&on_c.refresh).await.status(), 401);
    for app in [&a, &b, &c] {
        assert_error(
            app.login("taken.over@example.com", PASSWORD).await,
            403,
            "ACCOUNT_DISABLED",
        )
        .await;
    }
    // Within the cache window: the access tokens the others remember.
    let window = Duration::from_millis(1000) + Duration::from_millis(30);
    tokio::time::sleep(window.saturating_sub(disabled_at.elapsed())).await;
    for (app, tokens) in [(&b, &on_b), (&c, &on_c), (&b, &on_c), (&c, &on_b)] {
        assert_error(app.me(&tokens.access).await, 401, "INVALID_ACCESS_TOKEN").await;
    }
    content(admin(&a, "POST", &format!("/admin/users/{id}/enable"), Some(&key), None).await).await;
    for app in [&b, &c] {
        let back = expect_tokens(app.login("taken.over@example.com", PASSWORD).await).await;
        assert_eq!(app.me(&back.access).await.status(), 200);
        assert_eq!(
            admin_get(app, "/admin/users", Some(&key)).await.status(),
            200,
            "each remembers the key"
        );
    }
    // A revoked key: refused by every instance within the same window.
    assert!(users_store(&a).await.revoke_admin_key("security-oncall").await.unwrap());
    let revoked = Instant::now();
    tokio::time::sleep(window.saturating_sub(revoked.elapsed())).await;
    for app in [&a, &b, &c] {
        assert_error(
            admin_get(app, "/admin/users", Some(&key)).await,
            401,
            "INVALID_ADMIN_KEY",
        )
        .await;
    }
}

crate::case!(a_disabling_with_an_end_ends_by_itself);
/// `until` needs no operator to come back: the account signs in again once it has passed.
async fn a_disabling_with_an_end_ends_by_itself() {
    let app = spawn_app_at_manual_clock(
        Backend::Embedded,
        &[("ADMIN_ADDR", "127.0.0.1:0"), ("SESSION_CACHE_MS", "0")],
    )
    .await;
    let key = key_for(&app, "support").await;
    app.signed_up("cooling.off@example.com").await;
    let id = id_of(&app, &key, "cooling.off").await;
    let until = app.clock.now() + time::Duration::hours(24);
    let until = until.format(&time::format_description::well_known::Rfc3339).unwrap();
    let body = json!({"until": until, "reason": "cooling off"});
    content(
        admin(
            &app,
            "POST",
            &format!("/admin/users/{id}/disable"),
            Some(&key),
            Some(body),
        )
        .await,
    )
    .await;
    assert_error(
        app.login("cooling.off@example.com", PASSWORD).await,
        403,
        "ACCOUNT_DISABLED",
    )
    .await;
    app.clock.advance(Duration::from_secs(23 * 3600));
    assert_error(
        app.login("cooling.off@example.com", PASSWORD).await,
        403,
        "ACCOUNT_DISABLED",
    )
    .await;
    app.clock.advance(Duration::from_secs(3600));
    expect_tokens(app.login("cooling.off@example.com", PASSWORD).await).await;
    let page = content(admin_get(&app, "/admin/users?disabled=true", Some(&key)).await).await;
    assert_eq!(page["users"], json!([]));
}

crate::case!(the_admin_listener_is_under_the_per_ip_limit);
async fn the_admin_listener_is_under_the_per_ip_limit() {
    let vars = [
        ("ADMIN_ADDR", "127.0.0.1:0"),
        ("RATE_LIMIT_PER_SECOND", "1"),
        ("RATE_LIMIT_BURST", "3"),
    ];
    let app = spawn_app_with(Backend::Embedded, &vars).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            admin_get(&app, "/admin/users", Some("aak_guess"))
                .await
                .status()
                .as_u16(),
        );
    }
    assert!(
        statuses.contains(&429),
        "guessing keys meets the per-IP limit: {statuses:?}"
    );
    assert_error(
        admin_get(&app, "/admin/users", Some("aak_guess")).await,
        429,
        "RATE_LIMITED",
    )
    .await;
}

async fn content_raw(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

crate::case!(the_admin_listener_is_off_unless_configured);
async fn the_admin_listener_is_off_unless_configured() {
    let app = spawn_app_with(Backend::Embedded, &[]).await;
    assert!(app.admin_address.is_none());
    assert_error(
        app.client.get(app.url("/admin/users")).send().await.unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;
}
