//! The JSON API under `/api/v1/` (and `/metrics`): one router, every route listed in
//! [`ROUTES`] and described in `docs/openapi.json` (a test checks both agree). Every route but
//! the login needs an operator: a bearer token, or a browser session (whose state-changing
//! requests also need the CSRF token and a matching Origin). Errors are JSON with a stable
//! code ([`crate::error::ApiError`]).

pub mod auth;
mod events;
mod info;
mod jobs;
mod schedules;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::jobs::JobManager;
use crate::readiness::Readiness;

/// The largest request body the API reads.
pub const MAX_BODY: usize = 64 * 1024;

/// Every route: method and path (as axum writes its parameters).
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/v1/session"),
    ("DELETE", "/api/v1/session"),
    ("GET", "/api/v1/status"),
    ("GET", "/api/v1/readiness"),
    ("GET", "/api/v1/jobs"),
    ("POST", "/api/v1/jobs"),
    ("GET", "/api/v1/jobs/{id}"),
    ("DELETE", "/api/v1/jobs/{id}"),
    ("GET", "/api/v1/jobs/{id}/events"),
    ("GET", "/api/v1/jobs/{id}/log"),
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/history"),
    ("GET", "/api/v1/targets"),
    ("GET", "/api/v1/schedules"),
    ("POST", "/api/v1/schedules/{name}/run"),
    ("GET", "/metrics"),
];

/// What every handler shares.
pub struct AppState {
    pub jobs: Arc<JobManager>,
    pub readiness: Arc<Readiness>,
    pub auth: Arc<crate::auth::Authenticator>,
    pub scheduler: Arc<crate::scheduler::Scheduler>,
    /// Served over TLS (session cookies are then `Secure`).
    pub tls: bool,
    pub started: Instant,
    pub started_at: String,
}

pub type Shared = Arc<AppState>;

impl AppState {
    /// Records that `caller` started `job` (never a secret).
    pub fn audit_started(&self, caller: &auth::Caller, job: &crate::jobs::JobView) {
        self.auth.job_started(
            crate::auth::Who::operator(&caller.operator),
            caller.ip,
            &job.id,
            &job.kind.to_string(),
        );
    }

    /// Records that `caller` cancelled job `id`.
    pub fn audit_cancelled(&self, caller: &auth::Caller, id: &str) {
        self.auth.audit(&crate::auth::AuditEvent::JobCancelled {
            by: crate::auth::Who::operator(&caller.operator),
            from: caller.ip,
            job: id.to_owned(),
        });
    }
}

/// The API's router.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/api/v1/session", post(auth::login).delete(auth::logout))
        .route("/api/v1/status", get(info::status))
        .route("/api/v1/readiness", get(info::readiness))
        .route("/api/v1/jobs", get(jobs::list).post(jobs::start))
        .route("/api/v1/jobs/{id}", get(jobs::show).delete(jobs::cancel))
        .route("/api/v1/jobs/{id}/events", get(events::one))
        .route("/api/v1/jobs/{id}/log", get(jobs::log))
        .route("/api/v1/events", get(events::all))
        .route("/api/v1/history", get(info::history))
        .route("/api/v1/targets", get(info::targets))
        .route("/api/v1/schedules", get(schedules::list))
        .route("/api/v1/schedules/{name}/run", post(schedules::run))
        .route("/metrics", get(info::metrics))
        .fallback(auth::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeSet;

    /// docs/openapi.json describes exactly the routes the router serves.
    #[test]
    fn the_openapi_file_describes_every_route_and_no_other() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
        let spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let mut documented = BTreeSet::new();
        for (route, item) in spec["paths"].as_object().unwrap() {
            for method in ["get", "post", "put", "patch", "delete"] {
                if item.get(method).is_some() {
                    documented.insert((method.to_uppercase(), route.clone()));
                }
            }
        }
        let served: BTreeSet<(String, String)> = super::ROUTES
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        assert_eq!(documented, served);
    }
}
