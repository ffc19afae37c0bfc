//! `sstore serve`: the backup service. It runs backups, verifies, prunes and restores as jobs
//! through one queue ([`jobs`]), on timers ([`scheduler`]) and after Master Key changes
//! ([`readiness`] watches the key), and answers a JSON API ([`api`]) and the web console
//! ([`console`]) for operators who log in ([`auth`]). Secrets come from files, systemd
//! credentials or the environment, never from a prompt ([`secrets`]). [`server`] starts and
//! stops it all.

pub mod api;
pub mod auth;
pub mod console;
pub mod error;
pub mod jobs;
pub mod readiness;
pub mod scheduler;
pub mod secrets;
pub mod server;
pub mod tls;

pub use server::{ServeOptions, serve};

/// Every route the service answers: the API, and the web console at the root.
pub fn routes(state: api::Shared) -> axum::Router {
    api::router(state.clone()).merge(console::router(state))
}
