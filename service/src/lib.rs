//! `sstore serve`: the backup service. It runs backups, verifies, prunes and restores as jobs
//! through one queue ([`jobs`]), on timers ([`scheduler`]) and after Master Key changes
//! ([`readiness`] watches the key), and answers a JSON API ([`api`]) for operators who log in
//! ([`auth`]). Secrets come from files, systemd credentials or the environment, never from a
//! prompt ([`secrets`]). [`server`] starts and stops it all.

pub mod api;
pub mod auth;
pub mod error;
pub mod jobs;
pub mod readiness;
pub mod scheduler;
pub mod secrets;
pub mod server;
pub mod tls;

pub use server::{ServeOptions, serve};

/// Every route the service answers.
pub fn routes(state: api::Shared) -> axum::Router {
    api::router(state)
}
