//! The test runner of this binary (libtest-mimic): every test is registered with
//! [`case!`](crate::case) and says what it needs beyond this machine. A test whose needs are
//! missing is reported as *ignored*, with the reason, never as passed; with
//! `AUTH_API_REQUIRE_EXTERNAL=1` (CI) it fails instead.

use std::future::Future;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// Something a test needs that a bare machine may not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// PostgreSQL and Redis at `TEST_DATABASE_URL` / `TEST_REDIS_URL`.
    External,
    /// aiosmtpd, a real SMTP server (`AUTH_API_TEST_PYTHON`, else `python3`).
    Smtp,
    /// Debian's nginx, a real reverse proxy.
    Nginx,
    /// Debian's redis-server and redis-cli, for private clusters and Sentinel sets.
    RedisServers,
}

impl Need {
    /// Why a test is ignored when this is missing.
    fn missing(self) -> &'static str {
        match self {
            Need::External => "needs TEST_DATABASE_URL and TEST_REDIS_URL (PostgreSQL + Redis)",
            Need::Smtp => "needs aiosmtpd (pip install aiosmtpd, or set AUTH_API_TEST_PYTHON)",
            Need::Nginx => "needs nginx on the PATH (apt-get install nginx)",
            Need::RedisServers => "needs redis-server and redis-cli on the PATH (apt-get install redis-server)",
        }
    }

    /// Looked up once per run.
    fn present(self) -> bool {
        static FOUND: OnceLock<[bool; 4]> = OnceLock::new();
        let found = FOUND.get_or_init(|| {
            [
                crate::helpers::external_urls().is_some(),
                succeeds(Command::new(crate::mail_server::python()).args(["-c", "import aiosmtpd"])),
                succeeds(Command::new(crate::nginx::binary()).arg("-v")),
                succeeds(Command::new("redis-server").arg("--version"))
                    && succeeds(Command::new("redis-cli").arg("--version")),
            ]
        });
        found[self as usize]
    }
}

fn succeeds(command: &mut Command) -> bool {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub type BoxedTest = Pin<Box<dyn Future<Output = ()>>>;

/// How a test body runs.
pub enum Body {
    /// On a current-thread runtime, like `#[tokio::test]`.
    Async(fn() -> BoxedTest),
    /// On a two-worker runtime, like `#[tokio::test(flavor = "multi_thread")]`.
    MultiThread(fn() -> BoxedTest),
    /// Plain, like `#[test]`.
    Sync(fn()),
}

/// One registered test.
pub struct Case {
    pub module: &'static str,
    pub name: &'static str,
    pub needs: &'static [Need],
    pub body: Body,
}

inventory::collect!(Case);

/// Registers a test function of the enclosing module: `case!(name)`, `case!(sync name)`,
/// `case!(multi name)`, each optionally followed by `needs External, Smtp`.
#[macro_export]
macro_rules! case {
    (sync $name:ident $(needs $($need:ident),+)?) => {
        $crate::case!(@ $name, $crate::harness::Body::Sync($name) $(, $($need),+)?);
    };
    (multi $name:ident $(needs $($need:ident),+)?) => {
        $crate::case!(@ $name, $crate::harness::Body::MultiThread(|| Box::pin($name())) $(, $($need),+)?);
    };
    ($name:ident $(needs $($need:ident),+)?) => {
        $crate::case!(@ $name, $crate::harness::Body::Async(|| Box::pin($name())) $(, $($need),+)?);
    };
    (@ $name:ident, $body:expr $(, $need:ident)*) => {
        inventory::submit! {
            $crate::harness::Case {
                module: module_path!(),
                name: stringify!($name),
                needs: &[$($crate::harness::Need::$need),*],
                body: $body,
            }
        }
    };
}

fn trial(case: &'static Case) -> Trial {
    let module = case.module.split_once("::").map_or("", |(_, rest)| rest);
    let name = if module.is_empty() {
        case.name.to_string()
    } else {
        format!("{module}::{}", case.name)
    };
    let required = std::env::var("AUTH_API_REQUIRE_EXTERNAL").as_deref() == Ok("1");
    Trial::ignorable_test(name, move || {
        if let Some(need) = case.needs.iter().find(|need| !need.present()) {
            return if required {
                Err(Failed::from(format!(
                    "AUTH_API_REQUIRE_EXTERNAL=1, but this test {}",
                    need.missing()
                )))
            } else {
                Ok(Completion::ignored_with(need.missing()))
            };
        }
        match &case.body {
            Body::Sync(body) => body(),
            Body::Async(body) => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(body()),
            Body::MultiThread(body) => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
                .block_on(body()),
        }
        Ok(Completion::Completed)
    })
}

pub fn main() {
    let args = Arguments::from_args();
    let mut trials: Vec<Trial> = inventory::iter::<Case>.into_iter().map(trial).collect();
    trials.sort_by(|a, b| a.name().cmp(b.name()));
    let conclusion = libtest_mimic::run(&args, trials);
    crate::redis_ha::stop_shared();
    conclusion.exit();
}
