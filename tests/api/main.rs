//! The one integration test binary: the real HTTP server on port 0, per backend.

mod harness;
mod helpers;
mod mail_server;
mod nginx;
mod proxy;

pub mod account_mail;
mod admin;
mod auth_routes;
mod basics;
pub mod binary;
mod client_address;
mod concurrency;
mod events;
mod faults;
mod hardening;
mod me;
pub mod metrics;
pub mod mfa;
mod otlp;
pub mod passkeys;
mod password;
pub mod redis_ha;
mod refresh;
mod replicas;
mod sessions;
mod signing_keys;
mod thunder;
mod traces;
mod validation;

fn main() {
    harness::main();
}
