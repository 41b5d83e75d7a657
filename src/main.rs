use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use auth_api::cli::{UsersAction, time};
use auth_api::config::{FILE_SECRETS, Settings, VARIABLES};
use auth_api::startup::keys::KeyManager;
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
    /// Print the OpenAPI document (what /openapi.json serves) and exit.
    Openapi,
    /// Check the settings and print them, secrets masked; exit 2 on a bad one.
    Config,
    /// Signing keys of EdDSA/ES256 access tokens, in the database the settings name.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Keys of the admin listener (ADMIN_ADDR), in the database the settings name.
    AdminKeys {
        #[command(subcommand)]
        action: AdminKeysAction,
    },
    /// Act on accounts without the admin listener (break-glass): the admin API's actions,
    /// recorded with the actor `cli:<login>`.
    Users {
        #[command(subcommand)]
        action: UsersAction,
    },
}

#[derive(Subcommand)]
enum AdminKeysAction {
    /// Makes a key and prints it once (only its hash is stored).
    Create { name: String },
    /// Every key: name, created, revoked.
    List,
    /// Revokes a key: every instance refuses it within SESSION_CACHE_MS.
    Revoke { name: String },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Every key: kid, algorithm, state (next, active, retired, revoked) and times.
    List,
    /// Publishes a new key now; it signs once every verifier's cached JWKS knows it.
    Rotate {
        /// Emergency: the new key signs at once (verifiers with a cached JWKS refuse its
        /// tokens until they fetch it again).
        #[arg(long)]
        now: bool,
    },
    /// Unpublishes a compromised key at once: every instance refuses its tokens within
    /// KEYS_RELOAD_INTERVAL, other verifiers once their cached JWKS expires
    /// (KEYS_CACHE_MAX_AGE). If it was signing, a new key signs from now.
    Revoke {
        /// A kid is base64url and may begin with `-`.
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

fn settings_help() -> String {
    let mut text = String::from("Settings (environment variables, or a .env file):\n");
    let width = VARIABLES.iter().map(|v| v.name.len()).max().unwrap_or(0);
    for v in VARIABLES {
        text.push_str(&format!("  {:<width$} {}  [default: {}]\n", v.name, v.help, v.default));
    }
    text.push_str(&format!(
        "  {} may be read from a file named by <NAME>_FILE.",
        FILE_SECRETS.join(", ")
    ));
    text
}

async fn keys(settings: &Settings, action: KeysAction) -> anyhow::Result<()> {
    let clock = auth_api::clock::Clock::system();
    let metrics: std::sync::Arc<auth_api::metrics::Metrics> = Default::default();
    let users = startup::connect_users(settings, metrics.clone(), &clock).await?;
    if settings.run_migrations {
        startup::migrate(&users).await?;
    }
    let audit = auth_api::audit::Audit::new(users.clone(), metrics.clone(), clock);
    let manager = KeyManager::start(settings, &users, metrics, audit)
        .await?
        .ok_or_else(|| anyhow::anyhow!("ACCESS_TOKEN_ALG is HS256: there are no signing keys"))?;
    match action {
        KeysAction::List => {}
        KeysAction::Rotate { now } => manager.rotate(now).await?,
        KeysAction::Revoke { kid } => {
            anyhow::ensure!(manager.revoke(&kid).await?, "no live key has kid {kid}");
        }
    }
    println!(
        "{:<43}  {:<5}  {:<8}  {:<20}  {:<20}  revoked",
        "kid", "alg", "state", "created", "signs from"
    );
    for (key, state) in manager.list().await? {
        println!(
            "{:<43}  {:<5}  {:<8}  {:<20}  {:<20}  {}",
            key.kid,
            key.alg,
            state.as_str(),
            time(key.created_at_ms),
            time(key.activates_at_ms),
            key.revoked_at_ms.map(time).unwrap_or_default()
        );
    }
    Ok(())
}

async fn admin_keys(settings: &Settings, action: AdminKeysAction) -> anyhow::Result<()> {
    let clock = auth_api::clock::Clock::system();
    let users = startup::connect_users(settings, Default::default(), &clock).await?;
    if settings.run_migrations {
        startup::migrate(&users).await?;
    }
    match action {
        AdminKeysAction::Create { name } => {
            let key = auth_api::accounts::create_admin_key(&users, &name)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.describe().2))?;
            // The key alone on stdout, so that a script can take it; shown this once.
            println!("{key}");
            eprintln!(
                "admin key {:?} created: keep it now, it is not shown again",
                name.trim()
            );
        }
        AdminKeysAction::List => {
            println!("{:<32}  {:<20}  revoked", "name", "created");
            for key in users.admin_keys().await? {
                println!(
                    "{:<32}  {:<20}  {}",
                    key.name,
                    time(key.created_at),
                    key.revoked_at.map(time).unwrap_or_default()
                );
            }
        }
        AdminKeysAction::Revoke { name } => {
            anyhow::ensure!(
                users.revoke_admin_key(&name).await?,
                "no live admin key is named {name:?}"
            );
            eprintln!("admin key {name:?} revoked");
        }
    }
    Ok(())
}

async fn users(settings: &Settings, action: UsersAction) -> anyhow::Result<()> {
    let assembled = startup::assemble(settings, auth_api::clock::Clock::system()).await?;
    auth_api::cli::users(&assembled.accounts, action).await
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Needs no settings: the document is the code's.
    if let Some(Command::Openapi) = cli.command {
        println!(
            "{}",
            auth_api::routes::openapi::document()
                .to_pretty_json()
                .expect("serialisable")
        );
        return ExitCode::SUCCESS;
    }
    // A missing .env is normal; values already in the environment win.
    let from_dotenv: Vec<String> = dotenvy::dotenv_iter()
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|(name, _)| name)
                .filter(|name| std::env::var_os(name).is_none())
                .collect()
        })
        .unwrap_or_default();
    let _ = dotenvy::dotenv();
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("auth-api: {e}");
            // A .env written for docker compose, read by `cargo run`, is a common surprise.
            let named: Vec<&str> = from_dotenv
                .iter()
                .map(String::as_str)
                .filter(|name| e.0.iter().any(|line| line.starts_with(*name)))
                .collect();
            if !named.is_empty() {
                eprintln!(
                    "auth-api: {} came from the .env file in this directory (one written for docker compose?); move it away to run with the defaults",
                    named.join(", ")
                );
            }
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Config) = cli.command {
        println!("{settings:#?}");
        return ExitCode::SUCCESS;
    }
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
    let telemetry = match &cli.command {
        Some(Command::Keys { .. } | Command::AdminKeys { .. } | Command::Users { .. }) => {
            telemetry::init_for_command();
            None
        }
        _ => {
            let _context = runtime.enter();
            match telemetry::init(&settings) {
                Ok(t) => Some(t),
                Err(e) => {
                    eprintln!("auth-api: cannot set up telemetry: {e:#}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Some(Command::Migrate) => {
                let users =
                    startup::connect_users(&settings, Default::default(), &auth_api::clock::Clock::system()).await?;
                startup::migrate(&users).await
            }
            Some(Command::Keys { action }) => keys(&settings, action).await,
            Some(Command::AdminKeys { action }) => admin_keys(&settings, action).await,
            Some(Command::Users { action }) => users(&settings, action).await,
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
    if let Some(telemetry) = telemetry {
        telemetry.shutdown();
    }
    code
}
