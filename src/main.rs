use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use auth_api::config::{Settings, VARIABLES};
use auth_api::startup::{self, Application};
use auth_api::{healthcheck, telemetry};

/// JWT authentication service: access tokens, rotating refresh sessions.
#[derive(Parser)]
#[command(name = "auth-api", version, after_help = settings_help())]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Exit 0 when the local instance's /health/ready answers 200, else 1 (for containers).
    Healthcheck,
}

fn settings_help() -> String {
    let mut text = String::from("Settings (environment variables, or a .env file):\n");
    let width = VARIABLES.iter().map(|v| v.name.len()).max().unwrap_or(0);
    for v in VARIABLES {
        text.push_str(&format!("  {:<width$} {}  [default: {}]\n", v.name, v.help, v.default));
    }
    text.push_str("  ACCESS_TOKEN_SECRET, DATABASE_URL and REDIS_URL may be read from a file named by <NAME>_FILE.");
    text
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A missing .env is normal; values already in the environment win.
    let _ = dotenvy::dotenv();
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("auth-api: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Healthcheck) = cli.command {
        return match healthcheck::check(settings.host_addr, Duration::from_secs(3)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("auth-api healthcheck: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = tokio::runtime::Runtime::new().expect("cannot start the tokio runtime");
    let telemetry = {
        let _context = runtime.enter();
        match telemetry::init(&settings) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("auth-api: cannot set up telemetry: {e:#}");
                return ExitCode::FAILURE;
            }
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Some(Command::Migrate) => {
                let users = startup::connect_users(&settings, Default::default()).await?;
                startup::migrate(&users).await
            }
            _ => Ok(Application::build(settings).await?.run_until_stopped().await?),
        }
    });
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "auth-api stopped");
            ExitCode::FAILURE
        }
    };
    // Flush spans and log lines only now, so those of the last requests are written too.
    telemetry.shutdown();
    code
}
