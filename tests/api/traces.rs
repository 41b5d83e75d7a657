//! Traces leave through OTLP (gRPC and HTTP/protobuf) into a receiver in this process, join the
//! caller's W3C trace, carry the semantic-convention attributes, and never hold a secret; logs
//! are JSON with trace ids; neither contains a password, token or the signing key.

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::{Value, json};

use crate::binary::{Running, start_server};
use crate::helpers::{Backend, Storage};
use crate::mail_server::MailServer;
use crate::otlp::{
    Received, attribute, attribute_values, grpc_receiver, hex, http_receiver, http_receiver_answering_after,
};

const SECRET: &str = "tracing-test-signing-secret-0123456789abcdef";
const PASSWORD: &str = "hunter2-but-longer-and-unique";
const SMTP_PASSWORD: &str = "smtp-relay-password-Zq9";

fn server_exporting_to(endpoint: &str, protocol: &str, rust_log: &str, storage: &Storage) -> Running {
    server_exporting_with(endpoint, protocol, storage, &[("RUST_LOG", rust_log)])
}

/// A server exporting to `endpoint`, with these variables besides.
fn server_exporting_with(endpoint: &str, protocol: &str, storage: &Storage, extra: &[(&str, &str)]) -> Running {
    let mut env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("ACCESS_TOKEN_SECRET", SECRET),
    ];
    env.extend_from_slice(extra);
    env.extend(storage.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    start_server(&env)
}

/// Waits until the receiver holds a span named `name` in trace `trace_id`.
async fn wait_for(received: &Received, trace_id: &str, name: &str) -> Vec<Span> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spans: Vec<Span> = received
            .spans()
            .into_iter()
            .filter(|s| hex(&s.trace_id) == trace_id)
            .collect();
        if spans.iter().any(|s| s.name == name) {
            return spans;
        }
        assert!(
            Instant::now() < deadline,
            "no span {name} in trace {trace_id}; got {:?}",
            names(&spans)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn names(spans: &[Span]) -> Vec<&str> {
    spans.iter().map(|s| s.name.as_str()).collect()
}

fn find<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name} in {:?}", names(spans)))
}

/// Whether `span` descends from `ancestor` within `spans`.
fn descends(spans: &[Span], span: &Span, ancestor: &Span) -> bool {
    let mut parent = span.parent_span_id.clone();
    while !parent.is_empty() {
        if parent == ancestor.span_id {
            return true;
        }
        parent = spans
            .iter()
            .find(|s| s.span_id == parent)
            .map(|s| s.parent_span_id.clone())
            .unwrap_or_default();
    }
    false
}

async fn login_joins_the_callers_trace(protocol: &str, backend: Backend) {
    let storage = Storage::create(backend).await;
    let (addr, received) = match protocol {
        "grpc" => grpc_receiver().await,
        _ => http_receiver().await,
    };
    let mut server = server_exporting_to(&format!("http://{addr}"), protocol, "info", &storage);
    let (users, sessions) = match backend {
        Backend::Embedded => ("sqlite", "memory"),
        _ => ("postgresql", "redis"),
    };
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}{}", server.address(), path);
    let registered = client
        .post(url("/auth/register"))
        .json(&json!({"username": "Tracy", "email": "tracy@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let user_id = registered.json::<Value>().await.unwrap()["content"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let (trace_id, caller_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let response = client
        .post(url("/auth/login"))
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .header("User-Agent", "trace-test/1.0")
        .json(&json!({"email": "tracy@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let traceresponse = response.headers()["traceresponse"].to_str().unwrap().to_string();
    assert!(traceresponse.starts_with(&format!("00-{trace_id}-")), "{traceresponse}");
    let spans = wait_for(&received, trace_id, "POST /auth/login").await;

    let root = find(&spans, "POST /auth/login");
    assert_eq!(
        hex(&root.parent_span_id),
        caller_span,
        "the root span's parent is the caller's span"
    );
    assert_eq!(root.kind, SpanKind::Server as i32);
    assert!(
        traceresponse.contains(&hex(&root.span_id)),
        "traceresponse names the root span"
    );
    let expected = [
        ("http.request.method", "POST"),
        ("http.route", "/auth/login"),
        ("http.response.status_code", "200"),
        ("url.scheme", "http"),
        ("client.address", "127.0.0.1"),
        ("user_agent.original", "trace-test/1.0"),
        ("enduser.id", user_id.as_str()),
    ];
    for (key, value) in expected {
        assert_eq!(attribute(root, key).as_deref(), Some(value), "{key} on the root span");
    }
    let verify = find(&spans, "password.verify");
    assert!(descends(&spans, verify, root), "argon2 runs inside the request's trace");
    assert!(
        attribute(verify, "queue_wait_ms").is_some(),
        "the hashing pool wait is recorded"
    );
    let select = find(&spans, "db.users.find_by_email");
    assert_eq!(attribute(select, "db.system").as_deref(), Some(users));
    assert_eq!(attribute(select, "db.operation").as_deref(), Some("SELECT"));
    let session = find(&spans, "sessions.create");
    assert_eq!(attribute(session, "db.system").as_deref(), Some(sessions));
    assert!(descends(&spans, find(&spans, "token.issue"), root));
    for span in [select, session] {
        assert_eq!(
            span.parent_span_id, root.span_id,
            "{} is a child of the request span",
            span.name
        );
    }
    // A span ends at its last exit: each ends after it starts, and within the request's span.
    // One exception, sqlx's: SQLite runs each statement on a worker thread that enters the
    // caller's span for it and leaves after answering, so a SQLite call that is the request's
    // last (its security event) may be left a moment after the request ended.
    const SQLITE_WORKER_SLACK_NS: u64 = 20_000_000;
    for span in &spans {
        assert!(
            span.start_time_unix_nano <= span.end_time_unix_nano,
            "{} ends before it starts",
            span.name
        );
        let slack = match attribute(span, "db.system").as_deref() {
            Some("sqlite") => SQLITE_WORKER_SLACK_NS,
            _ => 0,
        };
        assert!(
            root.start_time_unix_nano <= span.start_time_unix_nano
                && span.end_time_unix_nano <= root.end_time_unix_nano + slack,
            "{} lies within the request span ({}..{} in {}..{})",
            span.name,
            span.start_time_unix_nano,
            span.end_time_unix_nano,
            root.start_time_unix_nano,
            root.end_time_unix_nano
        );
    }

    // A failing request marks its span: a 503 is an error, a 401 is not.
    let response = client
        .get(url("/auth/me"))
        .header("traceparent", format!("00-{}-{caller_span}-01", "1".repeat(32)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let failing = wait_for(&received, &"1".repeat(32), "GET /auth/me").await;
    assert_eq!(
        attribute(find(&failing, "GET /auth/me"), "http.response.status_code").as_deref(),
        Some("401")
    );

    server.stop();
    for span in received.spans() {
        for value in attribute_values(&span) {
            for secret in [PASSWORD, SECRET] {
                assert!(!value.contains(secret), "span {} holds a secret", span.name);
            }
        }
    }
}

crate::case!(spans_reach_a_grpc_collector_in_the_callers_trace);
async fn spans_reach_a_grpc_collector_in_the_callers_trace() {
    login_joins_the_callers_trace("grpc", Backend::Embedded).await;
}

crate::case!(spans_reach_an_http_protobuf_collector_in_the_callers_trace);
async fn spans_reach_an_http_protobuf_collector_in_the_callers_trace() {
    login_joins_the_callers_trace("http/protobuf", Backend::Embedded).await;
}

crate::case!(spans_of_postgres_and_redis_calls_reach_a_grpc_collector needs External);
async fn spans_of_postgres_and_redis_calls_reach_a_grpc_collector() {
    login_joins_the_callers_trace("grpc", Backend::External).await;
}

crate::case!(spans_of_postgres_and_redis_calls_reach_an_http_protobuf_collector needs External);
async fn spans_of_postgres_and_redis_calls_reach_an_http_protobuf_collector() {
    login_joins_the_callers_trace("http/protobuf", Backend::External).await;
}

crate::case!(an_absent_collector_never_fails_a_request);
async fn an_absent_collector_never_fails_a_request() {
    // Nothing listens on this port: export fails in the background, requests do not.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    requests_stay_fast(&format!("http://{closed}"), "grpc").await;
}

crate::case!(a_slow_collector_never_slows_a_request);
async fn a_slow_collector_never_slows_a_request() {
    let (addr, received) = http_receiver_answering_after(Duration::from_secs(3)).await;
    requests_stay_fast(&format!("http://{addr}"), "http/protobuf").await;
    assert!(
        !received.spans().is_empty(),
        "the slow collector did get the spans, at shutdown"
    );
}

/// Registers five users while export goes to `endpoint`; none may take long.
async fn requests_stay_fast(endpoint: &str, protocol: &str) {
    let storage = Storage::create(Backend::Embedded).await;
    let mut server = server_exporting_to(endpoint, protocol, "info", &storage);
    let client = reqwest::Client::new();
    for i in 0..5 {
        let started = Instant::now();
        let response = client
            .post(format!("{}/auth/register", server.address()))
            .json(&json!({"username": "N", "email": format!("n{i}@example.com"), "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a request waited on the collector"
        );
    }
    server.stop();
}

crate::case!(no_secret_reaches_logs_or_spans needs Smtp);
/// Runs the whole flow, failures included, with every log level on, then searches every log
/// line and exported span for the secrets involved.
async fn no_secret_reaches_logs_or_spans() {
    no_secret_reaches_logs_or_spans_on(Backend::Embedded).await;
}

crate::case!(no_secret_reaches_logs_or_spans_with_postgres_and_redis needs External, Smtp);
async fn no_secret_reaches_logs_or_spans_with_postgres_and_redis() {
    no_secret_reaches_logs_or_spans_on(Backend::External).await;
}

async fn no_secret_reaches_logs_or_spans_on(backend: Backend) {
    let storage = Storage::create(backend).await;
    let (addr, received) = http_receiver().await;
    // Mail through an SMTP server that wants credentials.
    let smtp = Some(MailServer::start(Some(&format!("mailer:{SMTP_PASSWORD}"))).await);
    let smtp_url = smtp
        .as_ref()
        .map(|smtp| format!("smtp://mailer:{SMTP_PASSWORD}@127.0.0.1:{}?tls=none", smtp.port));
    let mut extra = vec![
        ("RUST_LOG", "trace"),
        ("PUBLIC_APP_URL", "https://app.test"),
        ("KEYS_ENCRYPTION_KEY", crate::mfa::SEALING_KEY),
    ];
    if let Some(url) = &smtp_url {
        extra.push(("SMTP_URL", url.as_str()));
    }
    let mut server = server_exporting_with(&format!("http://{addr}"), "http/protobuf", &storage, &extra);
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}{}", server.address(), path);
    let mut secrets: Vec<String> = vec![
        PASSWORD.into(),
        SECRET.into(),
        "wrong-password-attempt".into(),
        crate::mfa::SEALING_KEY.into(),
    ];
    {
        use base64::Engine as _;
        // What AUTH PLAIN and AUTH LOGIN put on the wire.
        let b64 = base64::engine::general_purpose::STANDARD;
        secrets.push(SMTP_PASSWORD.into());
        secrets.push(b64.encode(format!("\0mailer\0{SMTP_PASSWORD}")));
        secrets.push(b64.encode(SMTP_PASSWORD));
    }

    let body = json!({"username": "Sec", "email": "sec@example.com", "password": PASSWORD});
    let registered = client.post(url("/auth/register")).json(&body).send().await.unwrap();
    let cookie = crate::helpers::refresh_cookie(&registered).unwrap();
    let access = registered.json::<Value>().await.unwrap()["content"]["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    secrets.extend([cookie.clone(), access.clone()]);
    let login = client
        .post(url("/auth/login"))
        .json(&json!({"email": "sec@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let login_cookie = crate::helpers::refresh_cookie(&login).unwrap();
    let login_access = login.json::<Value>().await.unwrap()["content"]["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    secrets.extend([login_cookie.clone(), login_access.clone()]);
    // Failing variants: wrong password, weak password, malformed body carrying a password.
    client
        .post(url("/auth/login"))
        .json(&json!({"email": "sec@example.com", "password": "wrong-password-attempt"}))
        .send()
        .await
        .unwrap();
    client
        .post(url("/auth/register"))
        .json(&json!({"username": "W", "email": "w@example.com", "password": "password1"}))
        .send()
        .await
        .unwrap();
    client
        .post(url("/auth/login"))
        .header("content-type", "application/json")
        .body(format!("{{\"email\": 5, \"password\": \"{PASSWORD}\""))
        .send()
        .await
        .unwrap();
    // Me: valid, and with the old (evicted session's) token and garbage.
    client
        .get(url("/auth/me"))
        .bearer_auth(&login_access)
        .send()
        .await
        .unwrap();
    client
        .get(url("/auth/me"))
        .header("Authorization", format!("Basic {access}"))
        .send()
        .await
        .unwrap();
    // Refresh: rotate, replay (grace), evicted token, then logout.
    let refreshed = client
        .get(url("/auth/refreshAccessToken"))
        .header("Cookie", format!("jwt={login_cookie}"))
        .send()
        .await
        .unwrap();
    let new_cookie = crate::helpers::refresh_cookie(&refreshed).unwrap();
    secrets.push(new_cookie.clone());
    secrets.push(
        refreshed.json::<Value>().await.unwrap()["content"]["access_token"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    client
        .get(url("/auth/refreshAccessToken"))
        .header("Cookie", format!("jwt={login_cookie}; HttpOnly"))
        .send()
        .await
        .unwrap();
    client
        .get(url("/auth/refreshAccessToken"))
        .header("Cookie", format!("jwt={cookie}"))
        .send()
        .await
        .unwrap();
    client
        .post(url("/auth/logout"))
        .header("Cookie", format!("jwt={new_cookie}"))
        .send()
        .await
        .unwrap();
    // Mail: the verification link, a reset link and the password it sets, all secrets too.
    if let Some(smtp) = &smtp {
        let verify = smtp
            .nth("sec@example.com", crate::mail_server::VERIFY, 1)
            .await
            .token("verify-email");
        secrets.push(verify.clone());
        let verified = client
            .post(url("/auth/email/verify"))
            .json(&json!({ "token": verify }))
            .send()
            .await
            .unwrap();
        assert_eq!(verified.status(), 200);
        let forgot = client
            .post(url("/auth/password/forgot"))
            .json(&json!({"email": "sec@example.com"}))
            .send()
            .await
            .unwrap();
        assert_eq!(forgot.status(), 202);
        let token = smtp
            .nth("sec@example.com", crate::mail_server::RESET, 1)
            .await
            .token("reset-password");
        let new_password = "reset-to-this-secret-passphrase";
        secrets.extend([token.clone(), new_password.to_string()]);
        let weak = json!({"token": token, "password": "password1"});
        client
            .post(url("/auth/password/reset"))
            .json(&weak)
            .send()
            .await
            .unwrap();
        let reset = json!({"token": token, "password": new_password});
        let done = client
            .post(url("/auth/password/reset"))
            .json(&reset)
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), 200);
        client
            .post(url("/auth/password/reset"))
            .json(&reset)
            .send()
            .await
            .unwrap();
        // The delivery has its own span, with the server but no recipient or credentials.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !received.spans().iter().any(|s| s.name == "smtp.send") {
            assert!(Instant::now() < deadline, "an smtp.send span is exported");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let span = received.spans().into_iter().find(|s| s.name == "smtp.send").unwrap();
        assert_eq!(span.kind, SpanKind::Client as i32);
        let server_address = attribute(&span, "server.address").expect("server.address");
        assert!(server_address.starts_with("127.0.0.1:"), "{server_address}");
        assert!(!attribute_values(&span).iter().any(|v| v.contains("sec@example.com")));
    }
    let post = |path: &str, bearer: Option<&str>, body: Value| {
        let mut request = client.post(url(path)).json(&body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    // The second factor: its secret, URI, codes, recovery codes and the login challenge.
    {
        let account = json!({"username": "Two", "email": "two@example.com", "password": PASSWORD});
        let registered: Value = post("/auth/register", None, account)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let two_access = registered["content"]["access_token"].as_str().unwrap().to_string();
        secrets.push(two_access.clone());
        let enrolment: Value = post("/auth/mfa/totp", Some(&two_access), json!({"password": PASSWORD}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let uri = enrolment["content"]["otpauth_uri"].as_str().unwrap().to_string();
        let totp = totp_rs::Totp::from_url(&uri).unwrap();
        let code = totp.generate_current().to_string();
        let confirmed: Value = post("/auth/mfa/totp/confirm", Some(&two_access), json!({"code": code}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let codes: Vec<String> = confirmed["content"]["recovery_codes"]
            .as_array()
            .expect("recovery codes")
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        let denied = post(
            "/auth/login",
            None,
            json!({"email": "two@example.com", "password": PASSWORD}),
        )
        .await
        .unwrap();
        assert_eq!(denied.status(), 401);
        let challenge = denied.json::<Value>().await.unwrap()["content"]["mfa"]["challenge"]
            .as_str()
            .unwrap()
            .to_string();
        // A wrong recovery code, then a right one.
        let wrong = post(
            "/auth/mfa/verify",
            None,
            json!({"challenge": challenge, "recovery_code": "ZZZZ-ZZZZ-ZZZZ-ZZZZ"}),
        )
        .await
        .unwrap();
        let wrong_body = wrong.text().await.unwrap();
        assert!(!wrong_body.contains(&challenge), "an error body holds the challenge");
        let verified = post(
            "/auth/mfa/verify",
            None,
            json!({"challenge": challenge, "recovery_code": codes[0]}),
        )
        .await
        .unwrap();
        assert_eq!(verified.status(), 200);
        let mfa_cookie = crate::helpers::refresh_cookie(&verified).unwrap();
        let mfa_access = verified.json::<Value>().await.unwrap()["content"]["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        let secret = enrolment["content"]["secret"].as_str().unwrap().to_string();
        // Six digits alone occur by chance in ids and times; quoted, they would be the code.
        secrets.extend([secret, uri, format!("\"{code}\""), challenge, mfa_cookie, mfa_access]);
        secrets.extend(codes.iter().flat_map(|c| [c.clone(), c.replace('-', "")]));
        secrets.push("ZZZZ-ZZZZ-ZZZZ-ZZZZ".into());
    }
    // A passkey: the ceremonies' ids and challenges, and the session it signs in.
    {
        let content = |response: reqwest::Response| async move {
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()["content"].clone()
        };
        let account = json!({"username": "Key", "email": "key@example.com", "password": PASSWORD});
        let registered = content(post("/auth/register", None, account).await.unwrap()).await;
        let key_access = registered["access_token"].as_str().unwrap().to_string();
        let mut key = crate::passkeys::Authenticator::at("https://app.test");
        let body = json!({"password": PASSWORD});
        let started = content(
            post("/auth/passkeys/register/start", Some(&key_access), body)
                .await
                .unwrap(),
        )
        .await;
        let credential = key.create(started["options"].clone());
        let finish = json!({"ceremony": started["ceremony"], "credential": credential});
        content(
            post("/auth/passkeys/register/finish", Some(&key_access), finish)
                .await
                .unwrap(),
        )
        .await;
        let login = content(post("/auth/passkeys/login/start", None, json!({})).await.unwrap()).await;
        let assertion = key.get(login["options"].clone());
        let finish = json!({"ceremony": login["ceremony"], "credential": assertion});
        let signed_in = post("/auth/passkeys/login/finish", None, finish).await.unwrap();
        let key_cookie = crate::helpers::refresh_cookie(&signed_in).unwrap();
        let body = content(signed_in).await;
        for ceremony in [&started, &login] {
            secrets.push(ceremony["ceremony"].as_str().unwrap().to_string());
            secrets.push(
                ceremony["options"]["publicKey"]["challenge"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        secrets.extend([
            key_access,
            key_cookie,
            body["access_token"].as_str().unwrap().to_string(),
        ]);
        secrets.push(assertion["response"]["signature"].as_str().unwrap().to_string());
    }
    wait_for_any(&received).await;
    server.stop();

    let logs = server.logs.lock().unwrap().clone();
    assert!(logs.len() > 20, "trace level logs were captured ({} lines)", logs.len());
    let spans = received.spans();
    assert!(spans.len() > 20, "spans were exported ({})", spans.len());
    for secret in &secrets {
        for line in &logs {
            assert!(!line.contains(secret.as_str()), "a secret in a log line: {line}");
        }
        for span in &spans {
            for value in attribute_values(span) {
                assert!(!value.contains(secret.as_str()), "a secret in span {}", span.name);
            }
        }
    }
    // The logs are correlated: access lines carry the request's trace id and its fields.
    let access_lines: Vec<Value> = logs
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["target"] == "access")
        .collect();
    assert!(access_lines.len() >= 10, "one access line per request");
    for line in &access_lines {
        assert_eq!(line["trace_id"].as_str().map(str::len), Some(32), "{line}");
        assert!(
            line["span"]["request_id"].is_string() && line["span"]["http.route"].is_string(),
            "{line}"
        );
        assert!(line["status"].is_u64() && line["latency_ms"].is_f64(), "{line}");
    }
}

async fn wait_for_any(received: &Received) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.spans().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

crate::case!(an_unsampled_caller_gets_no_spans_but_keeps_its_trace_id);
/// Sampling is decided per request before its spans exist: a caller that did not sample gets
/// no spans exported, yet keeps its trace id in `traceresponse` and in the log lines.
async fn an_unsampled_caller_gets_no_spans_but_keeps_its_trace_id() {
    let storage = Storage::create(Backend::Embedded).await;
    let (addr, received) = grpc_receiver().await;
    let server = server_exporting_to(&format!("http://{addr}"), "grpc", "info", &storage);
    let client = reqwest::Client::new();
    let unsampled = "0af7651916cd43dd8448eb211c80319c";
    let sampled = "5b8efff798038103d269b633813fc60c";
    // GET /auth/me as a caller in `trace_id` with these trace flags; the traceresponse header.
    let call = |trace_id: &'static str, flags: &'static str| {
        let request = client
            .get(format!("{}/auth/me", server.address()))
            .header("traceparent", format!("00-{trace_id}-b7ad6b7169203331-{flags}"));
        async move {
            let response = request.send().await.unwrap();
            response.headers()["traceresponse"].to_str().unwrap().to_string()
        }
    };

    let first = call(unsampled, "00").await;
    assert!(
        first.starts_with(&format!("00-{unsampled}-")) && first.ends_with("-00"),
        "{first}"
    );
    assert!(call(sampled, "01").await.ends_with("-01"));

    // The sampled request's spans arrive; by then the earlier one's would have too.
    wait_for(&received, sampled, "GET /auth/me").await;
    let exported: Vec<String> = received.spans().iter().map(|s| hex(&s.trace_id)).collect();
    assert!(
        !exported.contains(&unsampled.to_string()),
        "an unsampled trace was exported"
    );
    let logs = server.logs.lock().unwrap().join("\n");
    assert!(
        logs.contains(&format!("\"trace_id\":\"{unsampled}\"")),
        "the log lines keep the caller's trace id"
    );
}

crate::case!(lines_logged_inside_a_request_carry_its_fields_and_trace_id);
/// A line logged while a request is handled belongs to that request: its fields and trace id,
/// whether the request is recorded (it has a root span) or not (it has only its context).
async fn lines_logged_inside_a_request_carry_its_fields_and_trace_id() {
    let storage = Storage::create(Backend::Embedded).await;
    let (addr, _received) = grpc_receiver().await;
    // One session per user: each login evicts the previous one and logs that it did.
    let extra = [
        ("MAX_SESSIONS_PER_USER", "1"),
        ("HEADER_LIMIT_BYTES", "2048"),
        ("RUST_LOG", "info"),
    ];
    let mut server = server_exporting_with(&format!("http://{addr}"), "grpc", &storage, &extra);
    let client = reqwest::Client::new();
    let credentials = json!({"username": "Evi", "email": "evi@example.com", "password": PASSWORD});
    let register = client
        .post(format!("{}/auth/register", server.address()))
        .json(&credentials)
        .send()
        .await
        .unwrap();
    assert_eq!(register.status(), 200);
    let traces = [
        ("0af7651916cd43dd8448eb211c80319c", "00"),
        ("5b8efff798038103d269b633813fc60c", "01"),
    ];
    for (trace_id, flags) in traces {
        let login = client
            .post(format!("{}/auth/login", server.address()))
            .header("traceparent", format!("00-{trace_id}-b7ad6b7169203331-{flags}"))
            .json(&credentials)
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), 200);
        let traceresponse = login.headers()["traceresponse"].to_str().unwrap().to_string();
        assert!(traceresponse.ends_with(&format!("-{flags}")), "{traceresponse}");
    }
    // A request refused by a middleware's error (here: headers over the limit) still gets an
    // access line with its fields.
    let refused_trace = "1bf92f3577b34da6a3ce929d0e0e4736";
    let refused = client
        .get(format!("{}/auth/me", server.address()))
        .header("traceparent", format!("00-{refused_trace}-b7ad6b7169203331-00"))
        .header("x-padding", "p".repeat(4096))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 431);
    server.stop();

    let lines: Vec<Value> = server
        .logs
        .lock()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (trace_id, flags) in traces {
        let of_trace = |target: &str, message: &str| -> &Value {
            let found: Vec<&Value> = lines
                .iter()
                .filter(|l| l["trace_id"] == trace_id && l["target"] == target && l["message"] == message)
                .collect();
            assert_eq!(found.len(), 1, "{target} {message:?} in trace {trace_id}: {lines:#?}");
            found[0]
        };
        let evicted = of_trace(
            "auth_api::accounts::sign_in",
            "older sessions evicted (MAX_SESSIONS_PER_USER)",
        );
        let access = of_trace("access", "request completed");
        assert_eq!(evicted["spans"][0], "HTTP request", "flags {flags}: {evicted}");
        assert_eq!(evicted["span"]["http.route"], "/auth/login", "flags {flags}: {evicted}");
        assert!(evicted["span"]["request_id"].is_string(), "{evicted}");
        assert_eq!(evicted["span"]["request_id"], access["span"]["request_id"]);
        assert_eq!(access["span"]["http.response.status_code"], 200, "{access}");
        assert!(access["span"]["enduser.id"].is_string(), "{access}");
    }
    let refused: Vec<&Value> = lines
        .iter()
        .filter(|l| l["trace_id"] == refused_trace && l["target"] == "access")
        .collect();
    assert_eq!(refused.len(), 1, "{lines:#?}");
    assert_eq!(refused[0]["status"], 431, "{}", refused[0]);
    assert_eq!(refused[0]["span"]["http.route"], "/auth/me", "{}", refused[0]);
    assert!(refused[0]["span"]["request_id"].is_string(), "{}", refused[0]);
}

crate::case!(a_ratio_sampler_exports_exactly_the_traces_it_sampled);
/// `traceidratio` records about its share of new traces, and exactly those: every trace the
/// responses call sampled is exported, no other is.
async fn a_ratio_sampler_exports_exactly_the_traces_it_sampled() {
    let storage = Storage::create(Backend::Embedded).await;
    let (addr, received) = http_receiver().await;
    let extra = [
        ("OTEL_TRACES_SAMPLER", "traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
        ("RUST_LOG", "info"),
    ];
    let server = server_exporting_with(&format!("http://{addr}"), "http/protobuf", &storage, &extra);
    let client = reqwest::Client::new();
    let (mut sampled, mut unsampled) = (Vec::new(), Vec::new());
    for _ in 0..60 {
        let response = client
            .get(format!("{}/auth/me", server.address()))
            .send()
            .await
            .unwrap();
        let value = response
            .headers()
            .get("traceresponse")
            .unwrap_or_else(|| panic!("{:?}", response.headers()))
            .to_str()
            .unwrap()
            .to_string();
        let trace_id = value.split('-').nth(1).unwrap().to_string();
        match value.rsplit('-').next() {
            Some("01") => sampled.push(trace_id),
            Some("00") => unsampled.push(trace_id),
            other => panic!("flags {other:?} in {value}"),
        }
    }
    assert!(
        (10..=50).contains(&sampled.len()),
        "{} of 60 sampled at 50 %",
        sampled.len()
    );
    // The specification's rule, on the trace id the request carries: recorded exactly when the
    // id's low 63 bits fall under the ratio, so a service downstream with the same ratio agrees.
    let under_half = |id: &String| (u64::from_str_radix(&id[16..], 16).unwrap() >> 1) < 1 << 62;
    assert!(sampled.iter().all(under_half), "a sampled trace id is over the ratio");
    assert!(
        !unsampled.iter().any(under_half),
        "an unsampled trace id is under the ratio"
    );
    for trace_id in &sampled {
        wait_for(&received, trace_id, "GET /auth/me").await;
    }
    let exported: Vec<String> = received.spans().iter().map(|s| hex(&s.trace_id)).collect();
    assert!(
        unsampled.iter().all(|t| !exported.contains(t)),
        "an unsampled trace was exported"
    );
}

crate::case!(a_quiet_log_level_keeps_every_trace_and_traceresponse);
/// `RUST_LOG=warn` filters log lines only: requests keep `traceresponse`, and their spans, the
/// store's children included, still reach the collector.
async fn a_quiet_log_level_keeps_every_trace_and_traceresponse() {
    let storage = Storage::create(Backend::Embedded).await;
    let (addr, received) = grpc_receiver().await;
    let host = format!("127.0.0.1:{}", crate::binary::free_port());
    let extra = [("RUST_LOG", "warn"), ("HOST_ADDR", host.as_str())];
    let mut server = server_exporting_with(&format!("http://{addr}"), "grpc", &storage, &extra);
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}{}", server.address(), path);
    let credentials = json!({"username": "Quinn", "email": "quiet@example.com", "password": PASSWORD});
    let registered = client
        .post(url("/auth/register"))
        .json(&credentials)
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 200);
    let trace_id = "7a3c9e2f1b8d4c6e9f0a1b2c3d4e5f60";
    let login = client
        .post(url("/auth/login"))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&json!({"email": "quiet@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let traceresponse = login.headers()["traceresponse"].to_str().unwrap().to_string();
    assert!(traceresponse.starts_with(&format!("00-{trace_id}-")), "{traceresponse}");
    let spans = wait_for(&received, trace_id, "POST /auth/login").await;
    let root = find(&spans, "POST /auth/login");
    assert!(
        spans
            .iter()
            .any(|s| s.name.starts_with("db.") && descends(&spans, s, root)),
        "the store's spans are exported too: {:?}",
        names(&spans)
    );
    server.stop();
    let logs = server.logs.lock().unwrap().clone();
    assert!(
        logs.iter().all(|line| !line.contains(r#""level":"INFO""#)),
        "RUST_LOG=warn still filters the log: {logs:?}"
    );

    // No exporter at all: every answer still names its trace.
    let plain_host = format!("127.0.0.1:{}", crate::binary::free_port());
    let plain = start_server(&[("RUST_LOG", "warn"), ("HOST_ADDR", plain_host.as_str())]);
    let root = client.get(format!("{}/", plain.address())).send().await.unwrap();
    assert!(root.headers().contains_key("traceresponse"), "{:?}", root.headers());
}
