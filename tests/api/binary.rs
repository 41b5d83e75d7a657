//! The compiled binary: configuration refusal, `--help`, `healthcheck`, graceful shutdown.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auth_api::config::VARIABLES;

pub fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_auth-api"));
    // A clean environment: nothing from the developer's shell or .env leaks in.
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command.current_dir(std::env::temp_dir());
    command
}

/// A running `auth-api` process and every line it has printed on stdout so far.
pub struct Running {
    pub child: Child,
    pub port: u16,
    pub logs: Arc<Mutex<Vec<String>>>,
    dir: std::path::PathBuf,
}

impl Running {
    pub fn address(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sends SIGTERM and waits for a zero exit.
    pub fn stop(&mut self) {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert_eq!(
            wait_for_exit(&mut self.child, Duration::from_secs(15)).code(),
            Some(0),
            "graceful exit"
        );
        // Let the reader thread drain the last lines.
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `auth-api` on an embedded store, once it has logged its port.
pub fn start_server(extra: &[(&str, &str)]) -> Running {
    let dir = std::env::temp_dir().join(format!("auth-api-bin-{}", uuid::Uuid::new_v4()));
    let mut command = binary();
    command
        .env("HOST_ADDR", "127.0.0.1:0")
        .env("METRICS_ADDR", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .env("SQLITE_PATH", dir.join("auth.db"))
        .env("ARGON2_MEMORY_KIB", "1024")
        .env("ARGON2_ITERATIONS", "1")
        .env("RATE_LIMIT_PER_SECOND", "100000")
        .env("RATE_LIMIT_BURST", "100000")
        .env("RATE_LIMIT_AUTH_PER_MINUTE", "100000");
    for (k, v) in extra {
        command.env(k, v);
    }
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let logs: Arc<Mutex<Vec<String>>> = Arc::default();
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let sink = logs.clone();
    std::thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            let json: serde_json::Value = serde_json::from_str(&line).expect("every log line is JSON");
            if json["message"] == "listening" {
                let _ = port_tx.send(json["port"].as_u64().unwrap() as u16);
            }
            sink.lock().unwrap().push(line);
        }
    });
    // A fixed HOST_ADDR is for a quiet RUST_LOG, where the "listening" line is not logged.
    let fixed = extra
        .iter()
        .find(|(k, _)| *k == "HOST_ADDR")
        .and_then(|(_, v)| v.rsplit_once(':'))
        .map(|(_, port)| port.parse::<u16>().unwrap())
        .filter(|port| *port != 0);
    let port = match fixed {
        Some(port) => {
            let deadline = Instant::now() + Duration::from_secs(30);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "the server listens on {port}");
                std::thread::sleep(Duration::from_millis(50));
            }
            port
        }
        None => port_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server logs its port"),
    };
    Running { child, port, logs, dir }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the process did not exit within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

crate::case!(sync bad_settings_refuse_to_start_with_one_message_each);
fn bad_settings_refuse_to_start_with_one_message_each() {
    let output = binary()
        .env("ACCESS_TOKEN_SECRET", "too-short")
        .env("COOKIE_SAMESITE", "sometimes")
        .env("HOST_ADDR", "nowhere")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for name in [
        "ACCESS_TOKEN_SECRET: must be at least 32 bytes",
        "COOKIE_SAMESITE:",
        "HOST_ADDR:",
    ] {
        assert!(stderr.contains(name), "{name} missing from: {stderr}");
    }
    assert!(
        !stderr.contains("too-short"),
        "the bad secret itself is not echoed: {stderr}"
    );
}

crate::case!(sync a_bad_url_or_a_compose_env_file_gets_the_settings_report);
/// A URL a password broke is reported with the settings (status 2), and a `.env` written for
/// docker compose says it is the culprit.
fn a_bad_url_or_a_compose_env_file_gets_the_settings_report() {
    let output = binary()
        .env("DATABASE_URL", "postgres://auth:ab/cd+ef=@db:5432/auth")
        .env("ACCESS_TOKEN_SECRET", "0123456789abcdef0123456789abcdef")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DATABASE_URL: not a valid URL"), "{stderr}");
    assert!(!stderr.contains("ab/cd"), "the password is not echoed: {stderr}");

    let dir = std::env::temp_dir().join(format!("auth-api-dotenv-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    // What `openssl rand -base64 48`, the old recipe, left in a compose .env.
    let env =
        "KEYS_ENCRYPTION_KEY=q4d6JXzNhz1vVX4KcG0tq7xX5mN2sQ8pY1zL0bW3eR9uI7oT6aS5dF4gH3jK2lZ1\nPOSTGRES_PASSWORD=abc\n";
    std::fs::write(dir.join(".env"), env).unwrap();
    let output = binary().current_dir(&dir).output().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("KEYS_ENCRYPTION_KEY: must be 32 bytes"), "{stderr}");
    assert!(
        stderr.contains("KEYS_ENCRYPTION_KEY came from the .env file"),
        "names the file: {stderr}"
    );
}

crate::case!(sync unsafe_browser_settings_refuse_to_start);
fn unsafe_browser_settings_refuse_to_start() {
    let output = binary()
        .env("CORS_ALLOWED_ORIGINS", "https://app.example.com,*")
        .env("COOKIE_SAMESITE", "None")
        .env("COOKIE_SECURE", "false")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CORS_ALLOWED_ORIGINS: `*` is not allowed"), "{stderr}");
    assert!(
        stderr.contains("COOKIE_SAMESITE: None requires COOKIE_SECURE=true"),
        "{stderr}"
    );
}

crate::case!(sync production_backends_without_their_secrets_refuse_to_start);
fn production_backends_without_their_secrets_refuse_to_start() {
    let cases = [
        (None, "KEYS_ENCRYPTION_KEY: required"),
        (Some("not-32-bytes"), "KEYS_ENCRYPTION_KEY: must be 32 bytes"),
    ];
    for (key, expected) in cases {
        let mut command = binary();
        command.env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none");
        if let Some(key) = key {
            command.env("KEYS_ENCRYPTION_KEY", key);
        }
        let output = command.output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{expected}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
    let output = binary()
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
        .env("ACCESS_TOKEN_ALG", "HS256")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("ACCESS_TOKEN_SECRET: required"));
}

/// The settings table row a variable has in the README: a default that is a value is code, one
/// in parentheses is a description.
fn readme_row(v: &auth_api::config::Variable) -> String {
    let default = if v.default.starts_with('(') {
        v.default.to_string()
    } else {
        format!("`{}`", v.default)
    };
    format!("| `{}` | {default} | {} |", v.name, v.help)
}

crate::case!(sync help_and_readme_show_the_one_list_of_settings);
fn help_and_readme_show_the_one_list_of_settings() {
    let help = binary().arg("--help").output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    for v in VARIABLES {
        assert!(
            help.contains(v.name) && help.contains(v.help),
            "--help lacks {}",
            v.name
        );
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table: Vec<&str> = readme
        .lines()
        .skip_while(|line| *line != "| variable | default | meaning |")
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .collect();
    let expected: Vec<String> = VARIABLES.iter().map(readme_row).collect();
    assert!(
        table == expected,
        "README's settings table differs from config/variables.rs; it should read:\n{}",
        expected.join("\n")
    );
}

/// A `POST /auth/login` whose head and first 10 bytes of `body` are sent; the caller sends the
/// rest (`&body[10..]`) when the test wants the request to complete.
fn half_sent_login(addr: &str, body: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /auth/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(&body[..10]).unwrap();
    stream
}

crate::case!(sync sigterm_drains_in_flight_requests_and_exits_zero);
fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let mut server = start_server(&[("SHUTDOWN_TIMEOUT", "10")]);
    let addr = format!("127.0.0.1:{}", server.port);
    // Healthcheck subcommand against the live server.
    let check = binary().env("HOST_ADDR", &addr).arg("healthcheck").status().unwrap();
    assert!(check.success(), "healthcheck passes while serving");

    // A request in flight: headers and half the body sent.
    let body = br#"{"email":"inflight@example.com","password":"whatever12"}"#;
    let mut stream = half_sent_login(&addr, body);
    std::thread::sleep(Duration::from_millis(300));

    Command::new("kill")
        .arg("-TERM")
        .arg(server.child.id().to_string())
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(TcpStream::connect(&addr).is_err(), "no new connections after SIGTERM");
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "still draining the in-flight request"
    );

    stream.write_all(&body[10..]).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 401"),
        "the in-flight request completed: {response}"
    );
    assert!(response.contains("USER_NOT_FOUND"));

    let status = wait_for_exit(&mut server.child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "graceful exit");
    let check = binary().env("HOST_ADDR", &addr).arg("healthcheck").status().unwrap();
    assert_eq!(check.code(), Some(1), "healthcheck fails once the server is gone");
}

crate::case!(sync sigint_is_graceful_too);
fn sigint_is_graceful_too() {
    let mut server = start_server(&[]);
    Command::new("kill")
        .arg("-INT")
        .arg(server.child.id().to_string())
        .status()
        .unwrap();
    assert_eq!(
        wait_for_exit(&mut server.child, Duration::from_secs(10)).code(),
        Some(0)
    );
}

crate::case!(sync migrate_subcommand_creates_the_schema_and_exits);
fn migrate_subcommand_creates_the_schema_and_exits() {
    let dir = std::env::temp_dir().join(format!("auth-api-migrate-{}", uuid::Uuid::new_v4()));
    let db = dir.join("auth.db");
    let status = binary()
        .env("SQLITE_PATH", &db)
        .env("LOG_FORMAT", "json")
        .arg("migrate")
        .status()
        .unwrap();
    assert!(status.success());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tables: Vec<String> = rt.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query_scalar("select name from sqlite_master where type = 'table' order by name")
            .fetch_all(&mut conn)
            .await
            .unwrap()
    });
    assert!(tables.contains(&"users".to_string()), "{tables:?}");
    assert!(tables.contains(&"_sqlx_migrations".to_string()), "{tables:?}");
    let _ = std::fs::remove_dir_all(dir);
}

crate::case!(sync keys_commands_rotate_list_and_revoke);
/// `auth-api keys …` against the database the settings name (here an embedded SQLite file).
fn keys_commands_rotate_list_and_revoke() {
    let dir = std::env::temp_dir().join(format!("auth-api-keys-{}", uuid::Uuid::new_v4()));
    let keys = |args: &[&str]| {
        let output = binary()
            .env("SQLITE_PATH", dir.join("auth.db"))
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .arg("keys")
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        (
            output.status.success(),
            stdout,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let rows = |table: &str| -> Vec<(String, String)> {
        table
            .lines()
            .skip(1)
            .map(|line| {
                let cols: Vec<&str> = line.split_whitespace().collect();
                (cols[0].to_string(), cols[2].to_string())
            })
            .collect()
    };

    let (ok, first, err) = keys(&["list"]);
    assert!(ok, "{err}");
    let first = rows(&first);
    assert_eq!(first.len(), 1, "the first key is made on first use: {first:?}");
    assert_eq!(first[0].1, "active");

    let (ok, rotated, err) = keys(&["rotate"]);
    assert!(ok, "{err}");
    let states: Vec<String> = rows(&rotated).into_iter().map(|(_, s)| s).collect();
    assert_eq!(
        states,
        ["active", "next"],
        "a scheduled rotation publishes before it signs"
    );

    let (ok, now, err) = keys(&["rotate", "--now"]);
    assert!(ok, "{err}");
    let now = rows(&now);
    assert_eq!(
        now.last().unwrap().1,
        "active",
        "an emergency rotation signs at once: {now:?}"
    );

    // A kid may begin with `-` (base64url): it is taken as the kid, not as a flag.
    let (ok, _, err) = keys(&["revoke", "-no-such-kid"]);
    assert!(!ok && err.contains("no live key has kid -no-such-kid"), "{err}");
    let (ok, revoked, err) = keys(&["revoke", &first[0].0]);
    assert!(ok, "{err}");
    let revoked = rows(&revoked);
    assert_eq!(revoked[0], (first[0].0.clone(), "revoked".to_string()));

    // The error is on stderr: stdout holds tables only.
    let (ok, out, err) = keys(&["revoke", "no-such-kid"]);
    assert!(!ok && err.contains("no live key has kid no-such-kid"), "{err}");
    assert_eq!(out, "", "no table after a failure");
    let _ = std::fs::remove_dir_all(&dir);
}

crate::case!(sync admin_keys_commands_create_list_and_revoke);
fn admin_keys_commands_create_list_and_revoke() {
    let dir = std::env::temp_dir().join(format!("auth-api-admin-keys-{}", uuid::Uuid::new_v4()));
    let run = |args: &[&str]| {
        let output = binary()
            .env("SQLITE_PATH", dir.join("auth.db"))
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .arg("admin-keys")
            .args(args)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, key, err) = run(&["create", "support"]);
    assert_eq!(code, Some(0), "{err}");
    let key = key.trim();
    assert!(
        key.starts_with("aak_") && key.len() == 47,
        "the key alone on stdout: {key}"
    );
    assert!(err.contains("not shown again"), "{err}");
    let (code, _, _) = run(&["create", "support"]);
    assert_eq!(code, Some(1), "a name is taken once");
    let (code, list, _) = run(&["list"]);
    assert_eq!(code, Some(0));
    assert!(list.lines().nth(1).is_some_and(|l| l.starts_with("support")), "{list}");
    assert!(!list.contains(key), "the list never shows a key");
    // Only its hash is stored.
    let db = std::fs::read(dir.join("auth.db")).unwrap();
    assert!(
        !db.windows(key.len()).any(|w| w == key.as_bytes()),
        "the key is not in the database"
    );
    let (code, _, err) = run(&["revoke", "support"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, list, _) = run(&["list"]);
    assert_eq!(code, Some(0));
    assert!(
        list.lines().nth(1).is_some_and(|l| l.split_whitespace().count() == 3),
        "revoked has a time: {list}"
    );
    let (code, _, err) = run(&["revoke", "support"]);
    assert!(code == Some(1) && err.contains("no live admin key is named"), "{err}");
    // Bad settings are status 2, as for every command.
    let output = binary()
        .env("ADMIN_ADDR", "nonsense")
        .args(["admin-keys", "list"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

crate::case!(embedded_mode_without_smtp_logs_each_link);
/// Embedded mode without `SMTP_URL`: each mail is logged with its link, and the link works.
async fn embedded_mode_without_smtp_logs_each_link() {
    let mut server = start_server(&[("PUBLIC_APP_URL", "http://localhost:5173")]);
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}{}", server.address(), path);
    let body =
        serde_json::json!({"username": "Newcomer", "email": "new@example.com", "password": "correct horse battery"});
    let registered = client.post(url("/auth/register")).json(&body).send().await.unwrap();
    assert_eq!(registered.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    let link = loop {
        let logged = server.logs.lock().unwrap().iter().find_map(|line| {
            let json: serde_json::Value = serde_json::from_str(line).ok()?;
            if json["level"] != "INFO" || json["subject"] != "Confirm your email address" {
                return None;
            }
            Some((json["to"].as_str()?.to_string(), json["link"].as_str()?.to_string()))
        });
        if let Some((to, link)) = logged {
            assert_eq!(to, "new@example.com");
            break link;
        }
        assert!(Instant::now() < deadline, "the verification link is logged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let token = link
        .strip_prefix("http://localhost:5173/verify-email?token=")
        .unwrap_or_else(|| panic!("a link to the SPA: {link}"));
    let verified = client
        .post(url("/auth/email/verify"))
        .json(&serde_json::json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), 200);
    server.stop();
}

crate::case!(multi sigterm_under_load_turns_unready_serves_on_flushes_and_exits_zero);
/// SIGTERM while clients keep calling: readiness answers 503 at once while the instance serves
/// on for `SHUTDOWN_DELAY`, then it stops accepting, the request in flight completes, the spans
/// and log lines of the last requests are written out, and it exits 0 within the delay plus
/// `SHUTDOWN_TIMEOUT`.
async fn sigterm_under_load_turns_unready_serves_on_flushes_and_exits_zero() {
    let (otlp, received) = crate::otlp::http_receiver().await;
    let endpoint = format!("http://{otlp}");
    let mut server = tokio::task::spawn_blocking(move || {
        start_server(&[
            ("SHUTDOWN_DELAY", "2"),
            ("SHUTDOWN_TIMEOUT", "10"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            // Nothing is exported on a schedule during the test: what arrives, arrives at exit.
            ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
        ])
    })
    .await
    .unwrap();
    let base = server.address();
    let addr = format!("127.0.0.1:{}", server.port);
    let http = reqwest::Client::new();
    let registered: serde_json::Value = http
        .post(format!("{base}/auth/register"))
        .json(&serde_json::json!({"username": "Drain", "email": "drain@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = registered["content"]["access_token"].as_str().unwrap().to_string();

    // The load: /auth/me in a loop until the listener closes; (seconds since the signal, status,
    // traceresponse) of each answer.
    let signalled: Arc<Mutex<Option<Instant>>> = Arc::default();
    let answers: Arc<Mutex<Vec<(f64, u16, String)>>> = Arc::default();
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (http, base, access) = (http.clone(), base.clone(), access.clone());
            let (signalled, answers) = (signalled.clone(), answers.clone());
            tokio::spawn(async move {
                loop {
                    let Ok(response) = http.get(format!("{base}/auth/me")).bearer_auth(&access).send().await else {
                        break;
                    };
                    let since = signalled.lock().unwrap().map_or(-1.0, |at| at.elapsed().as_secs_f64());
                    let trace = response.headers()["traceresponse"].to_str().unwrap().to_string();
                    answers.lock().unwrap().push((since, response.status().as_u16(), trace));
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A request in flight across the whole shutdown: its head and half its body sent now.
    let body = br#"{"email":"drain@example.com","password":"correct horse battery"}"#;
    let mut stream = half_sent_login(&addr, body);

    Command::new("kill")
        .arg("-TERM")
        .arg(server.child.id().to_string())
        .status()
        .unwrap();
    *signalled.lock().unwrap() = Some(Instant::now());
    // `kill` returns once the signal is queued; the server's signal task runs a moment later.
    let mut ready = http.get(format!("{base}/health/ready")).send().await.unwrap();
    let noticed = Instant::now() + Duration::from_millis(500);
    while ready.status() != 503 && Instant::now() < noticed {
        tokio::time::sleep(Duration::from_millis(10)).await;
        ready = http.get(format!("{base}/health/ready")).send().await.unwrap();
    }
    assert_eq!(ready.status(), 503, "readiness turns 503 within moments of the signal");
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready["content"]["error_code"], "SHUTTING_DOWN");

    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(TcpStream::connect(&addr).is_err(), "no new connections after the delay");
    stream.write_all(&body[10..]).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "the request in flight completed: {response}"
    );

    let status = tokio::task::spawn_blocking(move || {
        let status = wait_for_exit(&mut server.child, Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(100));
        (status, server)
    })
    .await
    .unwrap();
    let (status, server) = status;
    assert_eq!(status.code(), Some(0), "graceful exit");
    for task in load {
        task.await.unwrap();
    }

    let answers = answers.lock().unwrap().clone();
    let during: Vec<&(f64, u16, String)> = answers.iter().filter(|(since, _, _)| *since > 0.0).collect();
    assert!(
        during.len() > 10,
        "the load was served during the delay: {}",
        during.len()
    );
    assert!(answers.iter().all(|(_, status, _)| *status == 200), "no request failed");
    // The last answered request: its log line and its spans were written out before the exit.
    let (_, _, last) = during.iter().max_by(|a, b| a.0.total_cmp(&b.0)).unwrap();
    let trace_id = last.split('-').nth(1).unwrap().to_string();
    let logs = server.logs.lock().unwrap().clone();
    assert!(
        logs.iter().any(|line| line.contains(&trace_id)),
        "the last request's log line was flushed"
    );
    assert!(
        logs.iter()
            .any(|line| line.contains("shutting down: no new connections"))
    );
    let spans = received.spans();
    assert!(
        spans.iter().any(|span| crate::otlp::hex(&span.trace_id) == trace_id),
        "the last request's spans were exported at exit ({} spans received)",
        spans.len()
    );
}

crate::case!(sync the_startup_line_says_where_the_api_and_its_docs_are);
fn the_startup_line_says_where_the_api_and_its_docs_are() {
    let server = start_server(&[]);
    // The reader thread hands the port over before it files the line.
    let deadline = Instant::now() + Duration::from_secs(5);
    let line: serde_json::Value = loop {
        let found = server
            .logs
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|l| l["message"] == "listening");
        if let Some(line) = found {
            break line;
        }
        assert!(Instant::now() < deadline, "no listening line");
        std::thread::sleep(Duration::from_millis(20));
    };
    let url = format!("http://localhost:{}", server.port);
    assert_eq!(line["url"], url.as_str());
    assert_eq!(line["docs"], format!("{url}/docs/").as_str());
}
