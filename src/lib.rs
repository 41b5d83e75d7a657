//! auth-api: JWT authentication with rotating refresh sessions.

pub mod accounts;
pub mod app_state;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod client_ip;
pub mod clock;
pub mod config;
pub mod domain;
pub mod envelope;
pub mod error;
pub mod healthcheck;
pub mod mail;
pub mod metrics;
pub mod routes;
pub mod startup;
pub mod store;
pub mod telemetry;
