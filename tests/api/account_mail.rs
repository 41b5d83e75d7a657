//! Password reset and email verification, end to end through a real SMTP server: the tests
//! read each received mail, take its link's token and finish the flow, on both backends.

use std::time::{Duration, Instant};

use reqwest::Response;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::*;
use crate::mail_server::{MailServer, RESET, VERIFY};
use crate::metrics::Snapshot;

pub const PASSWORD: &str = "correct horse battery";
const NEW: &str = "a brand new passphrase";

/// The variables of an app whose mail goes to `smtp` (`url`), links to https://app.test, then
/// `vars`.
fn mail_vars<'a>(url: &'a str, vars: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all = vec![
        ("SMTP_URL", url),
        ("PUBLIC_APP_URL", "https://app.test/"),
        ("MAIL_RETRY_MAX", "1"),
    ];
    all.extend_from_slice(vars);
    all
}

/// An app whose mail goes to `smtp`, links to https://app.test.
pub async fn spawn_with_mail(backend: Backend, smtp: &MailServer, vars: &[(&str, &str)]) -> TestApp {
    let url = smtp.url();
    spawn_app_with(backend, &mail_vars(&url, vars)).await
}

/// The same, on a clock the test moves by hand.
pub async fn spawn_with_mail_at_manual_clock(backend: Backend, smtp: &MailServer, vars: &[(&str, &str)]) -> TestApp {
    let url = smtp.url();
    spawn_app_at_manual_clock(backend, &mail_vars(&url, vars)).await
}

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

pub async fn forgot(app: &TestApp, email: &str) -> Response {
    app.client
        .post(app.url("/auth/password/forgot"))
        .header("user-agent", FIREFOX)
        .json(&json!({ "email": email }))
        .send()
        .await
        .unwrap()
}

pub async fn reset(app: &TestApp, token: &str, password: &str) -> Response {
    app.post_json("/auth/password/reset", &json!({"token": token, "password": password}))
        .await
}

async fn verify(app: &TestApp, token: &str) -> Response {
    app.post_json("/auth/email/verify", &json!({ "token": token })).await
}

/// Whether `token` can be found anywhere the service stores data, and whether its SHA-256 can:
/// the PostgreSQL tables as JSON, or the bytes of the SQLite file and its write-ahead log.
async fn at_rest(app: &TestApp, token: &str) -> (bool, bool) {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(token.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    match &app.database_url {
        Some(url) => {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url).await.unwrap();
            let dump: Vec<String> = sqlx::query_scalar(
                "select row_to_json(t)::text from users t union all select row_to_json(t)::text from mail_outbox t \
                 union all select row_to_json(t)::text from account_tokens t",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            let hashes: i64 =
                sqlx::query_scalar("select count(*) from account_tokens where encode(token_hash, 'hex') = $1")
                    .bind(&hex)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
            (dump.iter().any(|row| row.contains(token)), hashes == 1)
        }
        None => {
            let auth_api::config::DatabaseSettings::Sqlite { path } = app.settings_with(&[]).database else {
                unreachable!("embedded")
            };
            let mut bytes = std::fs::read(&path).unwrap();
            bytes.extend(std::fs::read(path.with_extension("db-wal")).unwrap_or_default());
            let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
            (contains(token.as_bytes()), contains(&hash))
        }
    }
}

async fn me(app: &TestApp, access: &str) -> Value {
    let response = app.me(access).await;
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.unwrap()["content"].clone()
}

backend_tests! {
    #[needs(Smtp)]
    async fn a_mailed_reset_link_sets_the_password_and_ends_every_session(backend: Backend) {
        let smtp = MailServer::start(None).await;
        let app = spawn_with_mail(backend, &smtp, &[("MAX_SESSIONS_PER_USER", "5")]).await;
        let first = app.signed_up("reset@example.com").await;
        let second = expect_tokens(app.login("reset@example.com", PASSWORD).await).await;

        let response = forgot(&app, "Reset@Example.com").await;
        assert_eq!(response.status(), 202);
        let mail = smtp.nth("reset@example.com", RESET, 1).await;
        for told in ["127.0.0.1", "with Firefox on Linux", "30 minutes", "not you", "https://app.test/reset-password?token="] {
            assert!(mail.text.contains(told), "the mail says {told}: {}", mail.text);
        }
        let token = mail.token("reset-password");
        assert_eq!(at_rest(&app, &token).await, (false, true), "only the token's SHA-256 is stored");

        let weak = reset(&app, &token, "password1").await;
        assert_error(weak, 400, "VALIDATION_ERROR").await;
        let done = reset(&app, &token, NEW).await;
        assert_eq!(done.status(), 200);
        let body: Value = done.json().await.unwrap();
        assert_eq!(body["content"]["revoked"], 2, "{body}");

        for old in [&first, &second] {
            assert_error(app.me(&old.access).await, 401, "INVALID_ACCESS_TOKEN").await;
            assert_error(app.refresh(&old.refresh).await, 401, "INVALID_REFRESH_TOKEN").await;
        }
        assert_error(app.login("reset@example.com", PASSWORD).await, 401, "USER_NOT_FOUND").await;
        let fresh = expect_tokens(app.login("reset@example.com", NEW).await).await;
        assert_eq!(me(&app, &fresh.access).await["email_verified"], true, "the link proved the mailbox");
        assert_error(reset(&app, &token, "yet another passphrase").await, 400, "INVALID_RESET_TOKEN").await;
    }

    #[needs(Smtp)]
    async fn a_reset_token_works_once_even_when_raced(backend: Backend) {
        let smtp = MailServer::start(None).await;
        let app = spawn_with_mail(backend, &smtp, &[]).await;
        app.signed_up("race@example.com").await;
        assert_eq!(forgot(&app, "race@example.com").await.status(), 202);
        let token = smtp.nth("race@example.com", RESET, 1).await.token("reset-password");

        let attempts = (0..8).map(|i| {
            let (app, token) = (&app, &token);
            async move { reset(app, token, &format!("racing passphrase {i}")).await }
        });
        let answers = futures_util::future::join_all(attempts).await;
        let mut codes = Vec::new();
        for answer in answers {
            let status = answer.status().as_u16();
            let body: Value = answer.json().await.unwrap();
            codes.push((status, body["content"]["error_code"].as_str().unwrap_or("").to_string()));
        }
        let won = codes.iter().filter(|(s, _)| *s == 200).count();
        assert_eq!(won, 1, "exactly one use succeeds: {codes:?}");
        assert!(
            codes.iter().all(|(s, c)| *s == 200 || (*s == 400 && c == "INVALID_RESET_TOKEN")),
            "{codes:?}"
        );
    }

    #[needs(Smtp)]
    async fn using_one_reset_link_kills_the_others_and_expired_ones_fail(backend: Backend) {
        let smtp = MailServer::start(None).await;
        let app = spawn_with_mail(backend, &smtp, &[]).await;
        app.signed_up("links@example.com").await;
        forgot(&app, "links@example.com").await;
        let older = smtp.nth("links@example.com", RESET, 1).await.token("reset-password");
        forgot(&app, "links@example.com").await;
        let newer = smtp.nth("links@example.com", RESET, 2).await.token("reset-password");
        assert_ne!(older, newer);
        assert_eq!(reset(&app, &newer, NEW).await.status(), 200);
        assert_error(reset(&app, &older, "another passphrase").await, 400, "INVALID_RESET_TOKEN").await;
        assert_error(reset(&app, "not-a-token", NEW).await, 400, "INVALID_RESET_TOKEN").await;

        // A link's lifetime runs on the service's clock, on either backend.
        let short = spawn_with_mail_at_manual_clock(backend, &smtp, &[("PASSWORD_RESET_TTL", "1")]).await;
        short.signed_up("brief@example.com").await;
        forgot(&short, "brief@example.com").await;
        let mail = smtp.nth("brief@example.com", RESET, 1).await;
        assert!(mail.text.contains("1 second"), "{}", mail.text);
        short.wait(Duration::from_millis(1300)).await;
        assert_error(reset(&short, &mail.token("reset-password"), NEW).await, 400, "EXPIRED_RESET_TOKEN").await;
    }

    #[needs(Smtp)]
    async fn a_password_change_ends_earlier_reset_links_and_unsent_reset_mails(backend: Backend) {
        let mut smtp = MailServer::start(None).await;
        // Retries every second, so a reset mail that were still due would arrive in the wait below.
        let app = spawn_with_mail(backend, &smtp, &[("MAIL_RETRY_MAX", "1")]).await;
        let tokens = app.signed_up("changed@example.com").await;
        forgot(&app, "changed@example.com").await;
        let link = smtp.nth("changed@example.com", RESET, 1).await.token("reset-password");
        // The server writes a mail down before it answers 250: pausing it in between would fail
        // that delivery, and its retry would be a second copy of the first mail.
        let sent = [("kind", "password_reset"), ("outcome", "sent")];
        let deadline = Instant::now() + Duration::from_secs(10);
        while Snapshot::take(&app).await.get("auth_emails_total", &sent) < 1.0 {
            assert!(Instant::now() < deadline, "the first reset mail is recorded as sent");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A second reset asked while the SMTP server is away: still pending at the change.
        smtp.pause();
        forgot(&app, "changed@example.com").await;
        let change = app
            .client
            .post(app.url("/auth/password/change"))
            .bearer_auth(&tokens.access)
            .json(&json!({"current_password": PASSWORD, "new_password": NEW}))
            .send()
            .await
            .unwrap();
        assert_eq!(change.status(), 200);
        assert_error(reset(&app, &link, "another passphrase").await, 400, "INVALID_RESET_TOKEN").await;
        smtp.resume().await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let resets = smtp.received().iter().filter(|m| m.subject == RESET).count();
        assert_eq!(resets, 1, "the reset asked before the change is never sent");
        expect_tokens(app.login("changed@example.com", NEW).await).await;
    }

    #[needs(Smtp)]
    async fn a_requesters_own_words_never_reach_the_mails(backend: Backend) {
        let smtp = MailServer::start(None).await;
        let app = spawn_with_mail(backend, &smtp, &[]).await;
        let lure = "Your account was hacked, call +1-555-0100 or visit https://evil.example/secure";
        // Someone registers the victim's address under a lure of a name, then asks for a reset.
        let registered = app
            .client
            .post(app.url("/auth/register"))
            .header("user-agent", lure)
            .json(&json!({"username": "Call +1-555-0100 now", "email": "victim@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(registered.status(), 200);
        let asked = app
            .client
            .post(app.url("/auth/password/forgot"))
            .header("user-agent", lure)
            .json(&json!({"email": "victim@example.com"}))
            .send()
            .await
            .unwrap();
        assert_eq!(asked.status(), 202);
        let verify = smtp.nth("victim@example.com", VERIFY, 1).await;
        let reset = smtp.nth("victim@example.com", RESET, 1).await;
        for mail in [verify, reset] {
            for part in [&mail.text, &mail.html] {
                assert!(!part.contains("555") && !part.contains("evil.example"), "{part}");
                assert!(part.contains("an unknown browser"), "{part}");
            }
        }
    }

    #[needs(Smtp)]
    async fn forgot_answers_alike_whether_or_not_the_account_exists(backend: Backend) {
        let smtp = MailServer::start(None).await;
        let app = spawn_with_mail(backend, &smtp, &[("MAIL_PER_ADDRESS_PER_HOUR", "1000")]).await;
        app.signed_up("known@example.com").await;
        let answer = |response: Response| async move {
            let status = response.status();
            let headers: Vec<String> = response
                .headers()
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "date" | "traceresponse" | "x-request-id"))
                .map(|(k, v)| format!("{k}: {v:?}"))
                .collect();
            (status, headers, response.bytes().await.unwrap())
        };
        let known = answer(forgot(&app, "known@example.com").await).await;
        let unknown = answer(forgot(&app, "nobody@example.com").await).await;
        assert_eq!(known, unknown, "status, headers and body are identical");
        assert_eq!(known.0, 202);

        // Same work on the request path: one insert either way. Timed interleaved, medians.
        let mut times = (Vec::new(), Vec::new());
        for i in 0..40 {
            for (email, sink) in [("known@example.com", &mut times.0), ("nobody@example.com", &mut times.1)] {
                let started = Instant::now();
                let response = forgot(&app, email).await;
                sink.push(started.elapsed());
                assert_eq!(response.status(), 202, "round {i}");
            }
        }
        let median = |v: &mut Vec<Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        let (known, unknown) = (median(&mut times.0), median(&mut times.1));
        let gap = known.abs_diff(unknown);
        assert!(
            gap < Duration::from_millis(3).max(known.min(unknown) / 2),
            "forgot took {known:?} (account) vs {unknown:?} (none)"
        );
        // Mail reaches the account only.
        smtp.nth("known@example.com", RESET, 41).await;
        assert!(smtp.received().iter().all(|m| m.to != ["nobody@example.com"]));
    }

    #[needs(Smtp)]
    async fn a_mailbox_gets_a_few_mails_per_hour_at_most(backend: Backend) {
        let smtp = MailServer::start(None).await;
        let app = spawn_with_mail(backend, &smtp, &[("MAIL_PER_ADDRESS_PER_HOUR", "3")]).await;
        app.signed_up("flood@example.com").await; // the verification mail is the first of three
        let before = Snapshot::take(&app).await;
        for _ in 0..5 {
            assert_eq!(forgot(&app, "flood@example.com").await.status(), 202);
        }
        smtp.nth("flood@example.com", RESET, 2).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mails = smtp.received();
        assert_eq!(mails.iter().filter(|m| m.subject == RESET).count(), 2, "{mails:?}");
        let after = Snapshot::take(&app).await;
        let moved = |labels: &[(&str, &str)]| after.get("auth_password_resets_total", labels) - before.get("auth_password_resets_total", labels);
        assert_eq!(moved(&[("outcome", "requested")]), 2.0);
        assert_eq!(moved(&[("outcome", "throttled")]), 3.0);
    }

    #[needs(Smtp)]
    async fn fifty_simultaneous_requests_stay_within_the_per_address_limit(backend: Backend) {
        let smtp = MailServer::start(None).await;
        let app = spawn_with_mail(backend, &smtp, &[("MAIL_PER_ADDRESS_PER_HOUR", "5")]).await;
        app.signed_up("burst@example.com").await; // the verification mail is the first of five
        let answers = futures_util::future::join_all((0..50).map(|_| forgot(&app, "burst@example.com"))).await;
        assert!(answers.iter().all(|r| r.status() == 202));
        smtp.nth("burst@example.com", RESET, 4).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mails: Vec<_> = smtp.received().into_iter().filter(|m| m.to == ["burst@example.com"]).collect();
        let subjects: Vec<&str> = mails.iter().map(|m| m.subject.as_str()).collect();
        assert_eq!(mails.len(), 5, "one verification and four resets: {subjects:?}");
    }

    #[needs(Smtp)]
    async fn the_verification_link_confirms_the_address(backend: Backend) {
        let smtp = MailServer::start(None).await;
        let app = spawn_with_mail(backend, &smtp, &[]).await;
        let registered = app.register("Vera", "vera@example.com", PASSWORD).await;
        assert_eq!(registered.status(), 200);
        let refresh = refresh_cookie(&registered).unwrap();
        let body: Value = registered.json().await.unwrap();
        assert_eq!(body["content"]["user"]["email_verified"], false, "{body}");
        let access = body["content"]["access_token"].as_str().unwrap().to_string();
        assert_eq!(me(&app, &access).await["email_verified"], false);

        let mail = smtp.nth("vera@example.com", VERIFY, 1).await;
        assert!(mail.text.contains("24 hours") && mail.text.contains("Hello,"), "{}", mail.text);
        let token = mail.token("verify-email");
        let verified = verify(&app, &token).await;
        assert_eq!(verified.status(), 200);
        let body: Value = verified.json().await.unwrap();
        assert_eq!(body["content"]["email_verified"], true);
        assert_eq!(me(&app, &access).await["email_verified"], true);
        assert_error(verify(&app, &token).await, 400, "INVALID_VERIFY_TOKEN").await;
        let login: Value = app.login("vera@example.com", PASSWORD).await.json().await.unwrap();
        assert_eq!(login["content"]["user"]["email_verified"], true);
        drop(refresh);

        let resend = app.client.post(app.url("/auth/email/verify/resend")).bearer_auth(&access).send().await.unwrap();
        // The login above evicted the registration's session (one per user by default).
        assert_error(resend, 401, "INVALID_ACCESS_TOKEN").await;
        let access = login["content"]["access_token"].as_str().unwrap();
        let resend = app.client.post(app.url("/auth/email/verify/resend")).bearer_auth(access).send().await.unwrap();
        assert_error(resend, 409, "EMAIL_ALREADY_VERIFIED").await;
    }

    #[needs(Smtp)]
    async fn verification_links_expire_and_forgot_is_rate_limited_per_ip(backend: Backend) {
        let smtp = MailServer::start(None).await;
        let app = spawn_with_mail_at_manual_clock(backend, &smtp, &[("EMAIL_VERIFY_TTL", "1"), ("RATE_LIMIT_AUTH_PER_MINUTE", "3")]).await;
        app.signed_up("slow@example.com").await; // one of the three
        let token = smtp.nth("slow@example.com", VERIFY, 1).await.token("verify-email");
        assert_eq!(at_rest(&app, &token).await, (false, true), "only the token's SHA-256 is stored");
        app.wait(Duration::from_millis(1300)).await;
        assert_error(verify(&app, &token).await, 400, "EXPIRED_VERIFY_TOKEN").await;
        // Verify and forgot share the per-IP auth limit: this is the third request, then 429.
        assert_eq!(forgot(&app, "slow@example.com").await.status(), 202);
        assert_error(forgot(&app, "slow@example.com").await, 429, "RATE_LIMITED").await;
    }

    #[needs(Smtp)]
    async fn resend_mails_a_new_link_that_replaces_nothing_until_used(backend: Backend) {
        let smtp = MailServer::start(None).await;
        let app = spawn_with_mail(backend, &smtp, &[]).await;
        let tokens = app.signed_up("again@example.com").await;
        let first = smtp.nth("again@example.com", VERIFY, 1).await.token("verify-email");
        let resend = app.client.post(app.url("/auth/email/verify/resend")).bearer_auth(&tokens.access).send().await.unwrap();
        assert_eq!(resend.status(), 202);
        let second = smtp.nth("again@example.com", VERIFY, 2).await.token("verify-email");
        assert_eq!(verify(&app, &second).await.status(), 200);
        assert_error(verify(&app, &first).await, 400, "INVALID_VERIFY_TOKEN").await;
    }

    #[needs(Smtp)]
    async fn required_verification_keeps_unverified_accounts_out(backend: Backend) {
        let smtp = MailServer::start(None).await;
        let app = spawn_with_mail(backend, &smtp, &[("REQUIRE_VERIFIED_EMAIL", "true")]).await;
        let registered = app.register("Una", "una@example.com", PASSWORD).await;
        assert_eq!(registered.status(), 202);
        assert!(refresh_cookie(&registered).is_none(), "no session before verification");
        let body: Value = registered.json().await.unwrap();
        assert_eq!(body["content"]["user"]["email_verified"], false, "{body}");
        assert!(body["content"].get("access_token").is_none(), "{body}");

        // Without the password nothing is revealed; with it, the reason.
        assert_error(app.login("una@example.com", "wrong password here").await, 401, "USER_NOT_FOUND").await;
        assert_error(app.login("una@example.com", PASSWORD).await, 403, "EMAIL_NOT_VERIFIED").await;

        // Signed out, a new link is asked for by address: 202 for any address.
        for email in ["una@example.com", "nobody@example.com"] {
            let resend = app.post_json("/auth/email/verify/resend", &json!({ "email": email })).await;
            assert_eq!(resend.status(), 202);
        }
        let token = smtp.nth("una@example.com", VERIFY, 2).await.token("verify-email");
        assert_eq!(verify(&app, &token).await.status(), 200);
        expect_tokens(app.login("una@example.com", PASSWORD).await).await;
        assert!(smtp.received().iter().all(|m| m.to != ["nobody@example.com"]));
    }

    #[needs(Smtp)]
    async fn smtp_down_at_request_time_delays_the_mail_only(backend: Backend) {
        let mut smtp = MailServer::start(None).await;
        let app = spawn_with_mail(backend, &smtp, &[]).await;
        app.signed_up("later@example.com").await;
        smtp.nth("later@example.com", VERIFY, 1).await;
        smtp.pause();
        let before = Snapshot::take(&app).await;
        assert_eq!(forgot(&app, "later@example.com").await.status(), 202);
        // Let a few attempts fail, and see them counted and the mail still pending.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let now = Snapshot::take(&app).await;
            let failed = now.get("auth_emails_total", &[("kind", "password_reset"), ("outcome", "failed")])
                - before.get("auth_emails_total", &[("kind", "password_reset"), ("outcome", "failed")]);
            if failed >= 2.0 && now.get("auth_outbox_pending", &[]) >= 1.0 {
                break;
            }
            assert!(Instant::now() < deadline, "failed attempts are counted and the mail stays pending");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        smtp.resume().await;
        let token = smtp.nth("later@example.com", RESET, 1).await.token("reset-password");
        assert_eq!(reset(&app, &token, NEW).await.status(), 200);
    }

    #[needs(Smtp)]
    async fn mail_pending_at_a_restart_is_sent_after_it(backend: Backend) {
        let mut smtp = MailServer::start(None).await;
        let app = spawn_with_mail(backend, &smtp, &[]).await;
        app.signed_up("restart@example.com").await;
        smtp.nth("restart@example.com", VERIFY, 1).await;
        smtp.pause();
        assert_eq!(forgot(&app, "restart@example.com").await.status(), 202);
        app.stop().await;
        smtp.resume().await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(smtp.received().iter().all(|m| m.subject != RESET), "nobody was left to send it");

        let url = smtp.url();
        let again = spawn_sibling(&app, &[("SMTP_URL", url.as_str()), ("PUBLIC_APP_URL", "https://app.test")]).await;
        let token = smtp.nth("restart@example.com", RESET, 1).await.token("reset-password");
        assert_eq!(reset(&again, &token, NEW).await.status(), 200);
    }

    #[needs(Smtp)]
    async fn bad_smtp_credentials_are_counted_and_never_reach_the_client(backend: Backend) {
        let smtp = MailServer::start(Some("mailer:right-password")).await;
        let url = format!("smtp://mailer:wrong-password@127.0.0.1:{}?tls=none", smtp.port);
        let app = spawn_app_with(
            backend,
            &[("SMTP_URL", url.as_str()), ("MAIL_RETRY_MAX", "1"), ("MAIL_MAX_ATTEMPTS", "2")],
        )
        .await;
        let registered = app.register("Bad", "bad@example.com", PASSWORD).await;
        assert_eq!(registered.status(), 200, "registration does not wait for mail");
        assert_eq!(forgot(&app, "bad@example.com").await.status(), 202);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let now = Snapshot::take(&app).await;
            let dead = |kind| now.get("auth_emails_total", &[("kind", kind), ("outcome", "dead")]);
            let failed = |kind| now.get("auth_emails_total", &[("kind", kind), ("outcome", "failed")]);
            if dead("password_reset") == 1.0 && dead("email_verify") == 1.0 {
                assert_eq!(failed("password_reset"), 1.0, "one retry before the last attempt");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "both mails die after MAIL_MAX_ATTEMPTS: dead {} {}, failed {} {}",
                dead("password_reset"),
                dead("email_verify"),
                failed("password_reset"),
                failed("email_verify")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(smtp.received().is_empty());

        // The right credentials deliver (required STARTTLS is waived with tls=none on loopback).
        let url = format!("smtp://mailer:right-password@127.0.0.1:{}?tls=none", smtp.port);
        let good = spawn_app_with(backend, &[("SMTP_URL", url.as_str())]).await;
        good.signed_up("good@example.com").await;
        smtp.nth("good@example.com", VERIFY, 1).await;
    }
}

crate::case!(without_smtp_outside_embedded_mode_the_mail_routes_say_so needs External);
/// Outside embedded mode, no SMTP_URL turns the flows off, in the open.
async fn without_smtp_outside_embedded_mode_the_mail_routes_say_so() {
    let app = spawn_app(Backend::External).await;
    assert_error(forgot(&app, "x@example.com").await, 404, "MAIL_DISABLED").await;
    let tokens = app.signed_up("nomail@example.com").await;
    let resend = app
        .client
        .post(app.url("/auth/email/verify/resend"))
        .bearer_auth(&tokens.access)
        .send()
        .await
        .unwrap();
    assert_error(resend, 404, "MAIL_DISABLED").await;
}

crate::case!(two_instances_send_each_mail_exactly_once needs External, Smtp);
/// Two replicas on one PostgreSQL database: both senders claim from the same outbox, and every
/// mail is delivered exactly once.
async fn two_instances_send_each_mail_exactly_once() {
    let smtp = MailServer::start(None).await;
    let one = spawn_with_mail(Backend::External, &smtp, &[]).await;
    let url = smtp.url();
    let two = spawn_sibling(&one, &[("SMTP_URL", url.as_str()), ("MAIL_RETRY_MAX", "1")]).await;
    let users = 12;
    for i in 0..users {
        let app = if i % 2 == 0 { &one } else { &two };
        app.signed_up(&format!("replica{i}@example.com")).await;
    }
    let requests = (0..users).map(|i| {
        let app = if i % 2 == 0 { &two } else { &one };
        async move { forgot(app, &format!("replica{i}@example.com")).await.status() }
    });
    for status in futures_util::future::join_all(requests).await {
        assert_eq!(status, 202);
    }
    for i in 0..users {
        smtp.nth(&format!("replica{i}@example.com"), RESET, 1).await;
    }
    // Long enough for a duplicate to show up: both senders poll every second.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mails = smtp.received();
    assert_eq!(
        mails.len(),
        2 * users,
        "one verification and one reset per user: {mails:#?}"
    );
    let mut seen = std::collections::HashSet::new();
    for mail in &mails {
        assert!(
            seen.insert((mail.to.clone(), mail.subject.clone())),
            "sent twice: {mail:?}"
        );
    }
}
