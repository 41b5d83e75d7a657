//! CPU per request of the telemetry pipeline alone: the real middleware (root span, access line,
//! `traceresponse`) and subscriber, configured from the environment as the service is, around a
//! handler that opens the spans /auth/me opens (token.verify, sessions.is_active,
//! db.users.find_by_id, each awaiting once) but does no work. No network, no database, one
//! thread, so the figures repeat far better than a wrk run on shared cores; bench/
//! instrumentation.sh gives the end-to-end cost.
//!
//! Usage (bench/README.md): `cargo run --release --example tracing_overhead > /dev/null`
//! with the variables of a mode, e.g. `RUST_LOG=error OTEL_SDK_DISABLED=true` for "off".
//! Prints `<µs of CPU per request> <requests>` on stderr.

use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::{App, HttpRequest, HttpResponse, test, web};
use tracing_actix_web::TracingLogger;

use auth_api::config::Settings;
use auth_api::domain::UserId;
use auth_api::telemetry;

#[tracing::instrument(name = "token.verify", skip_all)]
fn verify() -> UserId {
    UserId::from_uuid(std::hint::black_box(uuid::Uuid::from_u128(42)))
}

#[tracing::instrument(name = "sessions.is_active", skip_all, fields(db.system = "sqlite", db.operation = "exists"))]
async fn is_active() {
    tokio::task::yield_now().await;
}

#[tracing::instrument(name = "db.users.find_by_id", skip_all, fields(db.system = "sqlite", db.operation = "SELECT"))]
async fn find_by_id() {
    tokio::task::yield_now().await;
}

async fn me(req: HttpRequest) -> HttpResponse {
    let user = verify();
    is_active().await;
    find_by_id().await;
    telemetry::http::record_user(&req, user);
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"status":"success","content":{"id":42}}"#)
}

/// User + system CPU time of this process.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let fields: Vec<&str> = stat.rsplit_once(") ").expect("stat format").1.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // CLK_TCK is 100 on Linux (USER_HZ), the unit of /proc/<pid>/stat.
    Duration::from_millis(ticks * 10)
}

fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env().map_err(|e| anyhow::anyhow!("{e}"))?;
    let requests: u32 = std::env::var("REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300_000);
    let system = actix_web::rt::System::new();
    let telemetry = system.block_on(async {
        let telemetry = telemetry::init(&settings)?;
        let app = test::init_service(
            App::new()
                .wrap(from_fn(telemetry::http::request_scope))
                .wrap(TracingLogger::<telemetry::http::RootSpan>::new())
                .route("/auth/me", web::get().to(me)),
        )
        .await;
        let call = || {
            let request = test::TestRequest::get()
                .uri("/auth/me")
                .insert_header(("user-agent", "bench"))
                .to_request();
            test::call_service(&app, request)
        };
        for _ in 0..requests / 10 {
            assert!(call().await.status().is_success());
        }
        let before = cpu_time();
        for _ in 0..requests {
            assert!(call().await.status().is_success());
        }
        let spent = cpu_time() - before;
        eprintln!("{:.2} {requests}", spent.as_secs_f64() * 1e6 / f64::from(requests));
        anyhow::Ok(telemetry)
    })?;
    telemetry.shutdown();
    Ok(())
}
