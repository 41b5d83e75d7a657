//! The one integration test binary: the real HTTP server on port 0, per backend.

mod helpers;
mod mail_server;
mod proxy;

mod account_mail;
mod auth_routes;
mod basics;
pub mod binary;
mod concurrency;
mod faults;
mod hardening;
mod me;
mod metrics;
mod otlp;
mod password;
mod refresh;
mod replicas;
mod sessions;
mod signing_keys;
mod thunder;
mod traces;
mod validation;
