//! The security trail: every flow records its events with the trace of the request that caused
//! it, the user reads their own at /auth/events, the account's address is told of a password
//! change, and old events are deleted by one instance at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::Response;
use serde_json::{Value, json};

use crate::account_mail::PASSWORD;
use crate::backend_tests;
use crate::binary::start_server;
use crate::helpers::*;
use crate::mail_server::{MailServer, RESET, VERIFY};

const NEW: &str = "a brand new passphrase";
const CHANGED: &str = "Your password was changed";

/// One stored event: its name, reason, user and the trace it was recorded in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Stored {
    name: String,
    reason: Option<String>,
    user: Option<String>,
    trace: Option<String>,
}

/// Every event in the app's store, read behind the service's back.
async fn stored_events(app: &TestApp) -> Vec<Stored> {
    read_events(app.database_url.as_deref(), app.sqlite_path()).await
}

async fn events_in(storage: &Storage) -> Vec<Stored> {
    let sqlite = storage
        .env
        .iter()
        .find(|(k, _)| k == "SQLITE_PATH")
        .map(|(_, v)| std::path::PathBuf::from(v));
    read_events(storage.database_url.as_deref(), sqlite).await
}

async fn read_events(database_url: Option<&str>, sqlite: Option<std::path::PathBuf>) -> Vec<Stored> {
    type Row = (String, Option<String>, Option<uuid::Uuid>, Option<String>);
    const SQL: &str = "select name, reason, user_id, trace_id from security_events order by at, id";
    let rows: Vec<Row> = match (database_url, sqlite) {
        (Some(url), _) => {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url).await.unwrap();
            sqlx::query_as(SQL).fetch_all(&mut conn).await.unwrap()
        }
        (None, Some(path)) => {
            let url = format!("sqlite://{}", path.display());
            let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap();
            sqlx::query_as(SQL).fetch_all(&mut conn).await.unwrap()
        }
        (None, None) => panic!("no store to read"),
    };
    rows.into_iter()
        .map(|(name, reason, user, trace)| Stored {
            name,
            reason,
            user: user.map(|u| u.to_string()),
            trace,
        })
        .collect()
}

/// The events once the mail sender is done: in embedded mode without SMTP the verification mail
/// of a registration goes to the log, and its delivery is an event (`email.verification_sent`).
async fn settled_events(app: &TestApp, backend: Backend) -> Vec<Stored> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let events = stored_events(app).await;
        let registered = events.iter().filter(|e| e.name == "user.registered").count();
        let sent = events.iter().filter(|e| e.name == "email.verification_sent").count();
        if !backend.is_embedded() || sent == registered {
            return events;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the verification mails are never logged"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fresh W3C trace id per step, so each event can be traced to the request that caused it.
fn trace_id(step: usize) -> String {
    format!("{:032x}", 0xfeed_0000_u128 + step as u128)
}

/// Sends `request` in the trace `trace` and checks the answer names it in `traceresponse`.
async fn traced(request: reqwest::RequestBuilder, trace: &str) -> Response {
    let response = request
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        )
        .send()
        .await
        .unwrap();
    let traceresponse = response.headers()["traceresponse"].to_str().unwrap();
    assert!(traceresponse.starts_with(&format!("00-{trace}-")), "{traceresponse}");
    response
}

/// The running binary's API: what the flow test calls.
struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn login(&self, email: &str, password: &str) -> Response {
        let body = json!({"email": email, "password": password});
        self.client
            .post(self.url("/auth/login"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn me(&self, access: &str) -> Response {
        self.client
            .get(self.url("/auth/me"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
    }

    async fn sessions(&self, access: &str) -> Response {
        self.client
            .get(self.url("/auth/sessions"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
    }

    async fn signed_up(&self, email: &str) -> Tokens {
        let body = json!({"username": "Test User", "email": email, "password": PASSWORD});
        expect_tokens(
            self.client
                .post(self.url("/auth/register"))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }
}

/// All of the caller's events at the API at `base`, page by page, newest first.
async fn all_events(client: &reqwest::Client, base: &str, access: &str, limit: u32) -> Vec<Value> {
    let (mut events, mut after) = (Vec::new(), None::<String>);
    loop {
        let mut url = format!("/auth/events?limit={limit}");
        if let Some(after) = &after {
            url.push_str(&format!("&after={after}"));
        }
        let response = client
            .get(format!("{base}{url}"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        let page = body["content"]["events"].as_array().unwrap().clone();
        assert!(page.len() <= limit as usize);
        events.extend(page);
        match body["content"]["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => return events,
        }
    }
}

backend_tests! {
    #[needs(Smtp)]
    async fn every_flow_records_its_events_in_the_trace_of_its_request(backend: Backend) {
        // The real binary, so that requests carry trace ids and its log lines can be read.
        let smtp = MailServer::start(None).await;
        let storage = Storage::create(backend).await;
        let smtp_url = smtp.url();
        let mut env = vec![
            ("SMTP_URL", smtp_url.as_str()),
            ("PUBLIC_APP_URL", "https://app.test"),
            ("ACCESS_TOKEN_SECRET", TEST_SECRET),
            ("MAX_SESSIONS_PER_USER", "2"),
            ("REFRESH_REUSE_GRACE", "0"),
            ("LOGIN_MAX_FAILURES", "2"),
        ];
        env.extend(storage.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let server = start_server(&env);
        let app = Api { base: server.address(), client: reqwest::Client::new() };
        let (ada, bob) = ("ada@example.com", "bob@example.com");
        let post = |path: &str| app.client.post(app.url(path));
        let login = |email: &str, password: &str| post("/auth/login").json(&json!({"email": email, "password": password}));
        // Each step: what it does, and the events it must record in its own trace (the mail
        // sender's too: it records a delivery in the trace of the request that asked for it).
        let mut expected: Vec<(String, &str, Vec<&str>)> = Vec::new();
        let mut step = |what: &'static str, names: Vec<&'static str>| {
            let trace = trace_id(expected.len());
            expected.push((trace.clone(), what, names));
            trace
        };

        let t = step("register", vec!["user.registered", "login.succeeded", "email.verification_sent"]);
        let first = expect_tokens(traced(post("/auth/register").json(&json!({"username": "Ada", "email": ada, "password": PASSWORD})), &t).await).await;
        smtp.nth(ada, VERIFY, 1).await;
        let t = step("resend the verification", vec!["email.verification_sent"]);
        assert_eq!(traced(post("/auth/email/verify/resend").bearer_auth(&first.access), &t).await.status(), 202);
        let link = smtp.nth(ada, VERIFY, 2).await.token("verify-email");
        let t = step("verify", vec!["email.verified"]);
        assert_eq!(traced(post("/auth/email/verify").json(&json!({"token": link})), &t).await.status(), 200);
        let t = step("wrong password", vec!["login.failed"]);
        assert_eq!(traced(login(ada, "not the password"), &t).await.status(), 401);
        let t = step("unknown address", vec!["login.failed"]);
        assert_eq!(traced(login("nobody@example.com", PASSWORD), &t).await.status(), 401);
        let t = step("log in again", vec!["login.succeeded"]);
        let second = expect_tokens(traced(login(ada, PASSWORD), &t).await).await;
        let t = step("routine refresh", vec![]);
        let rotated = expect_tokens(traced(post("/auth/refreshAccessToken").header("cookie", format!("jwt={}", second.refresh)), &t).await).await;
        let t = step("replay a retired token", vec!["refresh.reuse_detected", "session.revoked"]);
        assert_eq!(traced(post("/auth/refreshAccessToken").header("cookie", format!("jwt={}", second.refresh)), &t).await.status(), 401);
        assert_error(app.me(&rotated.access).await, 401, "INVALID_ACCESS_TOKEN").await;
        let t = step("log in, evicting the oldest of three", vec!["login.succeeded"]);
        let third = expect_tokens(traced(login(ada, PASSWORD), &t).await).await;
        let t = step("a fourth login evicts", vec!["login.succeeded", "session.revoked"]);
        let fourth = expect_tokens(traced(login(ada, PASSWORD), &t).await).await;
        let t = step("log out", vec!["session.revoked"]);
        assert_eq!(traced(post("/auth/logout").header("cookie", format!("jwt={}", third.refresh)), &t).await.status(), 200);
        let t = step("log in once more", vec!["login.succeeded"]);
        let fifth = expect_tokens(traced(login(ada, PASSWORD), &t).await).await;
        let sessions: Value = app.sessions(&fourth.access).await.json().await.unwrap();
        let other = sessions["content"].as_array().unwrap().iter().find(|s| s["current"] == false).unwrap()["id"].as_str().unwrap().to_string();
        let t = step("end one session", vec!["session.revoked"]);
        assert_eq!(traced(app.client.delete(app.url(&format!("/auth/sessions/{other}"))).bearer_auth(&fourth.access), &t).await.status(), 200);
        let sixth = expect_tokens(app.login(ada, PASSWORD).await).await;
        let t = step("change the password", vec!["password.changed", "session.revoked"]);
        let change = post("/auth/password/change").bearer_auth(&sixth.access).json(&json!({"current_password": PASSWORD, "new_password": NEW}));
        assert_eq!(traced(change, &t).await.status(), 200);
        let t = step("end every session", vec!["session.revoked"]);
        assert_eq!(traced(app.client.delete(app.url("/auth/sessions")).bearer_auth(&sixth.access), &t).await.status(), 200);
        let t = step("forgot", vec!["password.reset_requested"]);
        assert_eq!(traced(post("/auth/password/forgot").json(&json!({"email": ada})), &t).await.status(), 202);
        let token = smtp.nth(ada, RESET, 1).await.token("reset-password");
        let seventh = expect_tokens(app.login(ada, NEW).await).await;
        let t = step("reset", vec!["password.reset", "session.revoked"]);
        assert_eq!(traced(post("/auth/password/reset").json(&json!({"token": token, "password": PASSWORD})), &t).await.status(), 200);
        assert_error(app.me(&seventh.access).await, 401, "INVALID_ACCESS_TOKEN").await;
        app.signed_up(bob).await;
        let t = step("a first failure", vec!["login.failed"]);
        assert_eq!(traced(login(bob, "guess one"), &t).await.status(), 401);
        let t = step("the failure that locks", vec!["login.failed", "login.locked"]);
        assert_eq!(traced(login(bob, "guess two"), &t).await.status(), 401);
        let t = step("a login while locked", vec!["login.failed"]);
        assert_eq!(traced(login(bob, "correct horse battery"), &t).await.status(), 429);
        drop(fifth);

        // The "password changed" notice reached the account's address, for the change and for
        // the reset, and names the browser family, not the User-Agent text.
        let notice = smtp.nth(ada, CHANGED, 2).await;
        assert!(notice.text.contains("Firefox on Linux") && !notice.text.contains("Gecko"), "{}", notice.text);

        let stored = events_in(&storage).await;
        let mut by_trace: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for event in &stored {
            if let Some(trace) = &event.trace {
                by_trace.entry(trace.clone()).or_default().push(event.name.clone());
            }
        }
        for (trace, what, names) in &expected {
            let mut want: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            let mut got = by_trace.remove(trace).unwrap_or_default();
            want.sort();
            got.sort();
            assert_eq!(got, want, "{what}: events in its trace");
        }
        // Every name of the closed set but the signing-key ones (HS256 here) was seen.
        let names: BTreeSet<&str> = stored.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names.len(), 11, "{names:?}");
        let reasons: BTreeSet<(&str, Option<&str>)> = stored.iter().map(|e| (e.name.as_str(), e.reason.as_deref())).collect();
        for pair in [
            ("session.revoked", Some("reuse")), ("session.revoked", Some("evicted")), ("session.revoked", Some("logout")),
            ("session.revoked", Some("user")), ("session.revoked", Some("password_change")), ("session.revoked", Some("password_reset")),
            ("login.failed", Some("invalid_credentials")), ("login.failed", Some("locked")), ("login.locked", Some("failed_logins")),
        ] {
            assert!(reasons.contains(&pair), "{pair:?} missing from {reasons:?}");
        }
        // The unknown address's failure belongs to nobody; each of Ada's to Ada.
        let unknown = &stored.iter().find(|e| e.trace.as_deref() == Some(&trace_id(4))).unwrap();
        assert_eq!(unknown.user, None);

        // One JSON line per event under the `security` target, in the request's trace. The
        // server writes its lines from a background thread within milliseconds: wait for them.
        let wanted: Vec<(String, String)> = stored.iter()
            .filter_map(|e| Some((e.name.clone(), e.trace.clone()?)))
            .collect();
        let logged = |server: &crate::binary::Running| -> BTreeSet<(String, String)> {
            server.logs.lock().unwrap().iter()
                .map(|line| serde_json::from_str::<Value>(line).unwrap())
                .filter(|line| line["target"] == "security")
                .map(|line| (line["event.name"].as_str().unwrap_or_default().to_string(), line["event.trace_id"].as_str().unwrap_or_default().to_string()))
                .collect()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !wanted.iter().all(|pair| logged(&server).contains(pair)) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let logged = logged(&server);
        for event in stored.iter().filter(|e| e.trace.is_some()) {
            let pair = (event.name.clone(), event.trace.clone().unwrap());
            assert!(logged.contains(&pair), "no log line for {pair:?} in {logged:?}");
        }

        // What Ada reads: her own events only, newest first, without internal fields.
        let signed_in = expect_tokens(app.login(ada, PASSWORD).await).await;
        let seen = all_events(&app.client, &app.base, &signed_in.access, 3).await;
        let ada_stored = stored.iter().filter(|e| e.user.is_some() && e.user == stored[0].user).count();
        assert_eq!(seen.len(), ada_stored + 1, "every event of Ada's, and the login just made");
        for event in &seen {
            let keys: BTreeSet<&str> = event.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(keys, BTreeSet::from(["id", "name", "at", "reason", "session_id", "ip", "browser", "actor"]));
            assert_eq!(event["ip"], "127.0.0.1");
            assert_eq!(event["actor"], Value::Null, "Ada's own doings name no operator");
        }
        assert_eq!(seen.last().unwrap()["name"], "user.registered", "oldest last");
        assert_eq!(seen.first().unwrap()["name"], "login.succeeded", "newest first");
    }

    async fn events_page_by_keyset_and_stay_with_their_user(backend: Backend) {
        let app = spawn_app_at_manual_clock(backend, &[("MAX_SESSIONS_PER_USER", "20")]).await;
        let ada = app.signed_up("ada@example.com").await;
        let bob = app.signed_up("bob@example.com").await;
        for _ in 0..6 {
            // Several events in the same millisecond, and others a millisecond apart: the
            // keyset is (time, id), so neither repeats nor skips one.
            expect_tokens(app.login("ada@example.com", PASSWORD).await).await;
            app.login("ada@example.com", "wrong password").await;
            app.wait(Duration::from_millis(1)).await;
            expect_tokens(app.login("bob@example.com", PASSWORD).await).await;
        }
        let mailed = settled_events(&app, backend).await.iter().filter(|e| e.name == "email.verification_sent").count() / 2;
        for limit in [1, 4, 100] {
            let events = all_events(&app.client, &app.address, &ada.access, limit).await;
            assert_eq!(events.len(), 2 + 12 + mailed, "limit {limit}: registered, first login, 6 logins, 6 failures");
            let ids: BTreeSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
            assert_eq!(ids.len(), events.len(), "no event twice");
            let rfc3339 = &time::format_description::well_known::Rfc3339;
            let times: Vec<time::OffsetDateTime> = events.iter().map(|e| time::OffsetDateTime::parse(e["at"].as_str().unwrap(), rfc3339).unwrap()).collect();
            let mut sorted = times.clone();
            sorted.sort_by(|a, b| b.cmp(a));
            assert_eq!(times, sorted, "newest first");
        }
        let bobs = all_events(&app.client, &app.address, &bob.access, 100).await;
        assert_eq!(bobs.len(), 2 + 6 + mailed);
        let adas: BTreeSet<String> = all_events(&app.client, &app.address, &ada.access, 100).await.iter().map(|e| e["id"].to_string()).collect();
        assert!(bobs.iter().all(|e| !adas.contains(&e["id"].to_string())), "no event is shared");

        assert_error(app.get("/auth/events").await, 401, "PROTECTED_ROUTE").await;
        for bad in ["limit=0", "limit=101", "limit=ten", "after=nonsense", "after=1.2"] {
            let response = app.client.get(app.url(&format!("/auth/events?{bad}"))).bearer_auth(&ada.access).send().await.unwrap();
            assert_error(response, 400, "VALIDATION_ERROR").await;
        }
    }

    async fn old_events_are_deleted_after_the_retention(backend: Backend) {
        let app = spawn_app_at_manual_clock(backend, &[("SECURITY_EVENTS_RETENTION_DAYS", "1")]).await;
        app.signed_up("old@example.com").await;
        let before = settled_events(&app, backend).await.len();
        assert!(before >= 2);
        app.wait(Duration::from_secs(86_400 + 1)).await;
        app.signed_up("new@example.com").await;
        let settings = app.settings_with(&[]);
        let users = auth_api::startup::connect_users(&settings, Default::default(), &app.clock).await.unwrap();
        let audit = auth_api::audit::Audit::new(users, Default::default(), app.clock.clone());
        assert_eq!(audit.purge(Duration::from_secs(86_400)).await.unwrap(), Some(before as u64));
        let remaining = settled_events(&app, backend).await;
        assert_eq!(remaining.len(), before, "the newer account's events stay, as many as the older had");
        assert!(remaining.iter().all(|e| e.user == remaining[0].user));
    }
}

crate::case!(one_instance_at_a_time_deletes_old_events needs External);
/// While another instance holds the cleanup's lock, a second one skips its turn.
async fn one_instance_at_a_time_deletes_old_events() {
    let app = spawn_app(Backend::External).await;
    let url = app.database_url.clone().unwrap();
    let mut holder = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await.unwrap();
    sqlx::query("select pg_advisory_lock(8315161643091326073)")
        .execute(&mut holder)
        .await
        .unwrap();
    let settings = app.settings_with(&[]);
    let users = auth_api::startup::connect_users(&settings, Default::default(), &app.clock)
        .await
        .unwrap();
    let audit = auth_api::audit::Audit::new(users, Default::default(), app.clock.clone());
    assert_eq!(
        audit.purge(Duration::from_secs(1)).await.unwrap(),
        None,
        "skipped while locked"
    );
    sqlx::query("select pg_advisory_unlock(8315161643091326073)")
        .execute(&mut holder)
        .await
        .unwrap();
    assert!(audit.purge(Duration::from_secs(1)).await.unwrap().is_some());
}
