//! Builds the application: stores, shared state, middleware and routes, bound to a listener.
//! Tests build it with port 0 and read the port back.

pub mod keys;
mod middleware;
mod stores;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{Condition, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

use crate::accounts::Accounts;
use crate::accounts::SecondFactors;
use crate::app_state::AppState;
use crate::audit::Audit;
use crate::auth::access_token::AccessTokens;
use crate::auth::password::PasswordHasher;
use crate::clock::Clock;
use crate::config::{SessionSettings, Settings};
use crate::metrics::Metrics;
use crate::routes;
use crate::routes::rate_limit::Limiters;
use crate::store::challenges::ChallengeStore;
use crate::store::login_throttle::LoginThrottle;
use crate::{client_ip, telemetry};
use middleware::{bounded_request, catch_panic, cors, cors_refusals_in_envelope, security_headers};
use stores::{connect_sessions, log_backends};

pub use stores::{connect_users, migrate};

pub struct Application {
    port: u16,
    /// Where a person reaches the API, for the startup line (an unspecified address becomes
    /// `localhost`).
    url: String,
    docs: bool,
    server: Server,
    metrics: Option<(u16, Server)>,
    /// The admin listener, when `ADMIN_ADDR` is set.
    admin: Option<(u16, Server)>,
    mail_sender: Option<crate::mail::Running>,
    draining: Arc<std::sync::atomic::AtomicBool>,
    shutdown_delay: std::time::Duration,
}

impl Application {
    /// Connects the stores (migrating when configured), then binds `settings.host_addr` and,
    /// unless metrics are off, `settings.metrics_addr`.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Clock::system()).await
    }

    /// [`Self::build`], with every timeline the service keeps itself read from `clock`.
    pub async fn build_with_clock(settings: Settings, clock: Clock) -> anyhow::Result<Self> {
        let Assembled {
            accounts,
            limiters,
            key_manager,
            sender,
        } = assemble(&settings, clock).await?;
        // The server's background work; a command acting through the same flows has none.
        accounts.audit.spawn_cleanup(settings.security_events_retention);
        if let Some(manager) = &key_manager {
            manager.spawn_reloads();
        }
        let ring = key_manager.as_ref().map(|manager| manager.ring.clone());
        let metrics = accounts.metrics.clone();
        let http_metrics = metrics.http_middleware();
        let metrics_on = settings.metrics_addr.is_some();
        let state = web::Data::new(AppState::new(&settings, accounts, ring));
        let body_limit = settings.body_limit;
        let listener =
            TcpListener::bind(settings.host_addr).with_context(|| format!("cannot bind {}", settings.host_addr))?;
        let port = listener.local_addr()?.port();
        let host = match listener.local_addr()?.ip() {
            ip if ip.is_unspecified() || ip.is_loopback() => "localhost".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        let app_state = state.clone();
        let admin_state = state.clone();
        let admin_limiter = limiters.general.clone();
        let draining = state.draining.clone();
        let (origins, request_timeout) = (settings.cors_origins.clone(), settings.request_timeout);
        let header_limit = settings.header_limit;
        let docs = settings.docs;
        let proxies = Arc::new(settings.proxies.clone());
        let admin_proxies = proxies.clone();
        let server = HttpServer::new(move || {
            let proxies = proxies.clone();
            App::new()
                .wrap(from_fn(catch_panic))
                .wrap(from_fn(move |req, next| {
                    bounded_request(request_timeout, header_limit, req, next)
                }))
                .wrap(cors(&origins))
                .wrap(from_fn(cors_refusals_in_envelope))
                .wrap(security_headers())
                .wrap(from_fn(telemetry::http::request_scope))
                .wrap(TracingLogger::<telemetry::http::RootSpan>::new())
                .wrap(Condition::new(metrics_on, http_metrics.clone()))
                .wrap(from_fn(move |req, next| client_ip::record(proxies.clone(), req, next)))
                .app_data(app_state.clone())
                .app_data(web::PayloadConfig::new(body_limit))
                .configure(|cfg| routes::configure(cfg, &limiters, docs))
        })
        .client_request_timeout(settings.header_timeout)
        .keep_alive(settings.keep_alive)
        .listen(listener)?
        // Signals are handled in `run_until_stopped`: actix would stop abruptly on SIGINT.
        .disable_signals()
        .shutdown_timeout(settings.shutdown_timeout.as_secs())
        .run();

        let metrics = match settings.metrics_addr {
            Some(addr) => {
                let listener = TcpListener::bind(addr).with_context(|| format!("cannot bind METRICS_ADDR {addr}"))?;
                let metrics_port = listener.local_addr()?.port();
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(state.clone())
                        .route("/metrics", web::get().to(routes::metrics::endpoint))
                        .default_service(web::to(routes::not_found))
                })
                .listen(listener)?
                .workers(1)
                .disable_signals()
                .shutdown_timeout(1)
                .run();
                tracing::info!(address = %addr.ip(), port = metrics_port, "metrics listening");
                Some((metrics_port, server))
            }
            None => None,
        };
        let admin = match settings.admin_addr {
            Some(addr) => {
                let listener = TcpListener::bind(addr).with_context(|| format!("cannot bind ADMIN_ADDR {addr}"))?;
                let admin_port = listener.local_addr()?.port();
                let server = HttpServer::new(move || {
                    let proxies = admin_proxies.clone();
                    App::new()
                        .wrap(from_fn(catch_panic))
                        .wrap(security_headers())
                        .wrap(from_fn(move |req, next| client_ip::record(proxies.clone(), req, next)))
                        .app_data(admin_state.clone())
                        .app_data(web::PayloadConfig::new(body_limit))
                        .service(
                            web::scope("")
                                .wrap(admin_limiter.layer())
                                .configure(routes::admin::configure)
                                .default_service(web::to(routes::not_found)),
                        )
                })
                .listen(listener)?
                .workers(1)
                .disable_signals()
                .shutdown_timeout(settings.shutdown_timeout.as_secs())
                .run();
                tracing::info!(address = %addr.ip(), port = admin_port, "admin API listening");
                Some((admin_port, server))
            }
            None => None,
        };
        let mail_sender = sender.map(crate::mail::Sender::spawn);
        Ok(Self {
            port,
            url: format!("http://{host}:{port}"),
            docs: settings.docs,
            server,
            metrics,
            admin,
            mail_sender,
            draining,
            shutdown_delay: settings.shutdown_delay,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Port of the admin listener, if there is one.
    pub fn admin_port(&self) -> Option<u16> {
        self.admin.as_ref().map(|(port, _)| *port)
    }

    /// Port of the metrics listener, if metrics are on.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM or SIGINT; then readiness answers 503 while it serves on for
    /// `SHUTDOWN_DELAY`, then it stops accepting and lets in-flight requests finish (up to
    /// `SHUTDOWN_TIMEOUT`); then the mail sender finishes its delivery in progress, and the
    /// metrics listener stops last.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        // Handlers are installed before "listening" is logged: a signal sent as soon as the
        // port is known must not find the default disposition (immediate death).
        let signal = shutdown_signal()?;
        // An actix Server only runs while polled: the metrics one gets its own task.
        let metrics = self.metrics.map(|(_, server)| (server.handle(), tokio::spawn(server)));
        let admin = self.admin.map(|(_, server)| (server.handle(), tokio::spawn(server)));
        let docs = match self.docs {
            true => format!("{}/docs/", self.url),
            false => "off (DOCS_ENABLED=false)".into(),
        };
        tracing::info!(port = self.port, url = %self.url, docs = %docs, "listening");
        let (draining, delay) = (self.draining.clone(), self.shutdown_delay);
        tokio::spawn(async move {
            signal.await;
            draining.store(true, std::sync::atomic::Ordering::Relaxed);
            if !delay.is_zero() {
                tracing::info!(
                    delay_s = delay.as_secs(),
                    "shutdown signal received, not ready; serving on until the delay ends"
                );
                tokio::time::sleep(delay).await;
            }
            tracing::info!("shutting down: no new connections, draining in-flight requests");
            handle.stop(true).await;
        });
        let result = self.server.await;
        if let Some(sender) = self.mail_sender {
            sender.stop().await;
        }
        if let Some((handle, task)) = admin {
            handle.stop(true).await;
            let _ = task.await;
        }
        if let Some((handle, task)) = metrics {
            handle.stop(true).await;
            let _ = task.await;
        }
        result
    }
}

/// What the API and the `users` command act through, with what only the listeners use.
pub struct Assembled {
    pub accounts: Accounts,
    limiters: Limiters,
    key_manager: Option<Arc<keys::KeyManager>>,
    sender: Option<crate::mail::Sender>,
}

/// Connects the stores (migrating when configured) and builds the flows over them.
pub async fn assemble(settings: &Settings, clock: Clock) -> anyhow::Result<Assembled> {
    let metrics = Arc::new(Metrics::new());
    let users = connect_users(settings, metrics.clone(), &clock).await?;
    if settings.run_migrations {
        migrate(&users).await?;
    }
    let sessions = connect_sessions(settings, metrics.clone(), &clock)?;
    let (throttle, challenges) = match (&settings.sessions, sessions.redis_client()) {
        (SessionSettings::Redis { key_prefix, .. }, Some(client)) => (
            LoginThrottle::redis(client.clone(), key_prefix.clone(), settings.lockout.clone()),
            ChallengeStore::redis(client.clone(), key_prefix.clone(), clock.clone()),
        ),
        _ => (
            LoginThrottle::memory(settings.lockout.clone(), clock.clone()),
            ChallengeStore::memory(clock.clone()),
        ),
    };
    let limiters = Limiters::new(&settings.rate_limits, metrics.clone());
    let hasher = PasswordHasher::new(&settings.hashing, metrics.clone())?;
    let audit = Audit::new(users.clone(), metrics.clone(), clock.clone());
    let key_manager = keys::KeyManager::start(settings, &users, metrics.clone(), audit.clone()).await?;
    let factors = SecondFactors {
        // The signing keys' sealing key when there are signing keys; HS256 reads its own.
        sealing: match &key_manager {
            Some(manager) => Some(manager.sealing()),
            None => keys::sealing_key(settings)?.map(Arc::new),
        },
        issuer: settings.mfa_issuer.clone(),
        challenges,
    };
    let tokens = match &key_manager {
        Some(manager) => AccessTokens::with_ring(&settings.tokens, manager.ring.clone()),
        None => AccessTokens::shared(&settings.tokens),
    }
    .with_clock(clock.clone());
    let (mailer, sender) = crate::mail::Sender::new(&settings.mail, users.clone(), metrics.clone(), audit.clone())?;
    if sender.is_none() {
        tracing::warn!(
            "SMTP_URL is unset: password reset and email verification are off (their routes answer 404 MAIL_DISABLED)"
        );
    }
    log_backends(settings);
    let passkeys = match &settings.passkeys {
        Some(rp) => Some(Arc::new(crate::auth::passkey::RelyingParty::new(
            rp,
            &settings.telemetry.service_name,
            crate::accounts::PASSKEY_CEREMONY_TTL,
        )?)),
        None => {
            tracing::warn!(
                "PUBLIC_APP_URL names an address, not a domain: passkeys are off (set WEBAUTHN_RP_ID and WEBAUTHN_RP_ORIGINS)"
            );
            None
        }
    };

    let accounts = Accounts {
        users,
        sessions,
        hasher,
        tokens,
        throttle,
        mail: mailer,
        metrics,
        audit,
        clock,
        factors,
        passkeys,
        admin: crate::accounts::AdminKeys::new(settings.session_cache),
    };
    Ok(Assembled {
        accounts,
        limiters,
        key_manager,
        sender,
    })
}

/// Resolves on the first SIGTERM or SIGINT; the handlers are registered when this returns.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
