//! A real SMTP server for the suite: aiosmtpd (PyPI) running `tests/smtp/server.py` on a free
//! port, recording each accepted message as a JSON line the tests read back.
//!
//! The Python is `AUTH_API_TEST_PYTHON`, else `python3`. Tests that need it say so
//! (`Need::Smtp`), and the harness ignores them where aiosmtpd is missing.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Mail {
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Mail {
    /// The token of the `{page}?token=…` link, checked to be in both parts.
    pub fn token(&self, page: &str) -> String {
        let marker = format!("/{page}?token=");
        let at = self
            .text
            .find(&marker)
            .unwrap_or_else(|| panic!("no {marker} link in {}", self.text));
        let token: String = self.text[at + marker.len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        assert_eq!(token.len(), 43, "a 256-bit base64url token");
        assert!(
            self.html.contains(&format!("{marker}{token}")),
            "the HTML part has the same link"
        );
        token
    }
}

pub struct MailServer {
    pub port: u16,
    auth: Option<String>,
    out: PathBuf,
    child: Option<Child>,
}

pub fn python() -> String {
    std::env::var("AUTH_API_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

impl MailServer {
    /// A server on a free port; with `auth`, `user:password` is required.
    pub async fn start(auth: Option<&str>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let out = std::env::temp_dir().join(format!("auth-api-mail-{}.jsonl", uuid::Uuid::new_v4()));
        let mut server = Self {
            port,
            auth: auth.map(str::to_string),
            out,
            child: None,
        };
        server.resume().await;
        server
    }

    /// `SMTP_URL` for this server (plain SMTP: it is on loopback).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Stops accepting mail (the port is closed) until `resume`.
    pub fn pause(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts (again) on the same port and output file.
    pub async fn resume(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp/server.py");
        let mut command = Command::new(python());
        command
            .arg(script)
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--out")
            .arg(&self.out)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(auth) = &self.auth {
            command.arg("--auth").arg(auth);
        }
        self.child = Some(command.spawn().expect("start the SMTP server"));
        let deadline = Instant::now() + Duration::from_secs(15);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(Instant::now() < deadline, "the SMTP server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every message received so far.
    pub fn received(&self) -> Vec<Mail> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("a recorded mail"))
            .collect()
    }

    /// The latest message to `to` with `subject`, waiting for the `nth` (1-based) one.
    pub async fn nth(&self, to: &str, subject: &str, nth: usize) -> Mail {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mails: Vec<Mail> = self
                .received()
                .into_iter()
                .filter(|m| m.to.iter().any(|t| t == to) && m.subject == subject)
                .collect();
            if mails.len() >= nth {
                return mails[nth - 1].clone();
            }
            assert!(
                Instant::now() < deadline,
                "no mail {nth} «{subject}» to {to}: {mails:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for MailServer {
    fn drop(&mut self) {
        self.pause();
        let _ = std::fs::remove_file(&self.out);
    }
}

pub const RESET: &str = "Reset your password";
pub const VERIFY: &str = "Confirm your email address";
