//! What the service can tell without starting anything: its status and readiness, the
//! history of a backup directory or target, the configured targets (and their readiness on
//! request), and Prometheus metrics.

use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sstore_core::backup::History;
use sstore_core::locations;

use super::Shared;
use super::auth::Caller;
use crate::auth::Action;
use crate::error::ApiError;
use crate::jobs::view;
use crate::readiness::DestinationState;

#[derive(Serialize)]
pub struct Status {
    pub version: &'static str,
    pub started: String,
    pub uptime_secs: u64,
    pub store: StoreStatus,
    /// Jobs by state (queued, running ones by their state, and finished ones since start).
    pub jobs: std::collections::BTreeMap<String, usize>,
    /// Every destination the configuration names, with its last successful backup.
    pub destinations: Vec<DestinationState>,
    /// Everything that needs attention, in words.
    pub warnings: Vec<String>,
    /// No destination failed readiness.
    pub ready: bool,
}

#[derive(Serialize)]
pub struct StoreStatus {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_generation: Option<u64>,
}

pub async fn status(State(state): State<Shared>, caller: Caller) -> Result<Json<Status>, ApiError> {
    caller.require(Action::Read)?;
    Ok(Json(state.status()))
}

impl super::AppState {
    pub fn status(&self) -> Status {
        let destinations = self.readiness.destinations();
        let mut jobs = std::collections::BTreeMap::new();
        for job in self.jobs.list() {
            *jobs.entry(job.state.clone()).or_insert(0) += 1;
        }
        let stale: Vec<String> = self
            .scheduler
            .status()
            .map(|s| s.schedules.into_iter().filter_map(|s| s.stale).collect())
            .unwrap_or_default();
        let warnings: Vec<String> = destinations
            .iter()
            .flat_map(|d| {
                d.warnings
                    .iter()
                    .map(|w| format!("{}: {w}", d.name))
                    .chain(d.error.iter().map(|e| format!("{}: {e}", d.name)))
            })
            .chain(self.extra_warnings())
            .chain(stale.iter().cloned())
            .collect();
        Status {
            version: env!("CARGO_PKG_VERSION"),
            started: self.started_at.clone(),
            uptime_secs: self.started.elapsed().as_secs(),
            store: StoreStatus {
                path: self.jobs.runtime().store_path.display().to_string(),
                key_generation: self.readiness.key_generation(),
            },
            jobs,
            ready: destinations.iter().all(|d| d.ready) && stale.is_empty(),
            destinations,
            warnings,
        }
    }

    /// Warnings that are not about one destination: keys the service lacks.
    fn extra_warnings(&self) -> Vec<String> {
        let runtime = self.jobs.runtime();
        let mut warnings = Vec::new();
        match runtime.backup_keys(None) {
            Err(why) => warnings.push(why),
            Ok(keys) if keys.passphrase_is_store => warnings.push(
                "backups are written with the store passphrase: after a Master Key change the service cannot back up until it is restarted with the new one; set [backup] recipients or give the service a backup passphrase"
                    .into(),
            ),
            Ok(_) => {}
        }
        warnings
    }
}

/// `GET /api/v1/readiness`: 200 when ready, 503 when a check fails; the same body either way.
pub async fn readiness(State(state): State<Shared>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Action::Read)?;
    let status = state.status();
    let keys_ok = state.jobs.runtime().backup_keys(None).is_ok();
    let code = if status.ready && keys_ok {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((
        code,
        Json(serde_json::json!({
            "ready": status.ready,
            "destinations": status.destinations,
            "warnings": status.warnings,
        })),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    pub location: Option<String>,
}

pub async fn history(
    State(state): State<Shared>,
    caller: Caller,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<History>, ApiError> {
    caller.require(Action::Read)?;
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let runtime = state.jobs.runtime();
    if let Some(location) = &query.location {
        crate::jobs::request::allowed_location(&runtime.config, location)?;
    }
    let dir = locations::backup_directory(
        &runtime.registry,
        &runtime.config,
        query.location.as_deref(),
        None,
    )
    .await
    .map_err(|e| ApiError::invalid(e.to_string()))?;
    let history = tokio::time::timeout(Duration::from_secs(60), dir.load_history())
        .await
        .map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::GATEWAY_TIMEOUT,
                "target-timeout",
                format!("{} did not answer within 60 s", dir.location()),
            )
        })?
        .map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::BAD_GATEWAY,
                "target-error",
                e.to_string(),
            )
        })?;
    Ok(Json(history))
}

#[derive(Serialize)]
pub struct TargetInfo {
    pub name: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness: Option<sstore_core::target::Readiness>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetsQuery {
    /// Check every target's readiness (probe objects written and removed).
    #[serde(default)]
    pub check: bool,
}

pub async fn targets(
    State(state): State<Shared>,
    caller: Caller,
    query: Result<Query<TargetsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<TargetInfo>>, ApiError> {
    caller.require(Action::Read)?;
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let runtime = state.jobs.runtime();
    let limit = runtime.config.readiness_timeout();
    let mut tasks = tokio::task::JoinSet::new();
    for (index, named) in runtime.config.named_targets.iter().cloned().enumerate() {
        let opened = locations::open_named(&runtime.registry, &named).await;
        let check = query.check;
        tasks.spawn(async move {
            let mut info = TargetInfo {
                name: named.name.clone(),
                kind: named.kind.clone(),
                location: None,
                readiness: None,
                error: None,
            };
            match opened {
                Ok(target) => {
                    info.location = Some(target.location());
                    if check {
                        match tokio::time::timeout(limit, target.readiness()).await {
                            Ok(Ok(r)) => info.readiness = Some(r),
                            Ok(Err(e)) => info.error = Some(e.to_string()),
                            Err(_) => {
                                info.error =
                                    Some(format!("no answer within {} s", limit.as_secs()));
                            }
                        }
                    }
                }
                Err(e) => info.error = Some(e.to_string()),
            }
            (index, info)
        });
    }
    let mut infos = tasks.join_all().await;
    infos.sort_by_key(|(i, _)| *i);
    Ok(Json(infos.into_iter().map(|(_, info)| info).collect()))
}

/// `GET /metrics` (Prometheus text format).
pub async fn metrics(State(state): State<Shared>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Action::Read)?;
    let mut out = String::new();
    metric(
        &mut out,
        "sstore_destination_last_success_timestamp_seconds",
        "gauge",
        "When the newest successful backup on a destination finished (Unix time).",
    );
    let destinations = state.readiness.destinations();
    let mut lines = String::new();
    for d in &destinations {
        if let Some(t) = d.last_success.as_deref().and_then(unix_time) {
            lines.push_str(&format!(
                "sstore_destination_last_success_timestamp_seconds{{destination=\"{}\"}} {t}\n",
                label(&d.name)
            ));
        }
    }
    out.push_str(&lines);
    metric(
        &mut out,
        "sstore_destination_last_backup_bytes",
        "gauge",
        "Size of the newest successful backup on a destination.",
    );
    for d in &destinations {
        if let Some(size) = d.last_size {
            out.push_str(&format!(
                "sstore_destination_last_backup_bytes{{destination=\"{}\"}} {size}\n",
                label(&d.name)
            ));
        }
    }
    metric(
        &mut out,
        "sstore_destination_failed_backups",
        "gauge",
        "Failed backups recorded in a destination's history.",
    );
    for d in &destinations {
        out.push_str(&format!(
            "sstore_destination_failed_backups{{destination=\"{}\"}} {}\n",
            label(&d.name),
            d.failures
        ));
    }
    metric(
        &mut out,
        "sstore_destination_last_backup_duration_seconds",
        "gauge",
        "How long the service's last backup job to a destination took.",
    );
    let jobs = state.jobs.list();
    let mut seen = std::collections::BTreeSet::new();
    for job in jobs
        .iter()
        .filter(|j| j.kind == crate::jobs::JobKind::Backup)
    {
        let Some(seconds) = job.seconds else { continue };
        for d in &job.destinations {
            if seen.insert(d.name.clone()) {
                out.push_str(&format!(
                    "sstore_destination_last_backup_duration_seconds{{destination=\"{}\"}} {seconds:.3}\n",
                    label(&d.name)
                ));
            }
        }
    }
    metric(
        &mut out,
        "sstore_jobs",
        "gauge",
        "The service's jobs by state.",
    );
    let mut by_state = std::collections::BTreeMap::new();
    for s in [
        view::QUEUED,
        view::STAGING,
        view::TRANSFERRING,
        view::VERIFYING,
        view::SUCCEEDED,
        view::PARTIALLY_SUCCEEDED,
        view::FAILED,
        view::CANCELLED,
        view::INTERRUPTED,
    ] {
        by_state.insert(s.to_owned(), 0usize);
    }
    for job in &jobs {
        *by_state.entry(job.state.clone()).or_insert(0) += 1;
    }
    for (s, n) in by_state {
        out.push_str(&format!("sstore_jobs{{state=\"{}\"}} {n}\n", label(&s)));
    }
    if let Some(generation) = state.readiness.key_generation() {
        metric(
            &mut out,
            "sstore_master_key_generation",
            "gauge",
            "The store's Master Key generation.",
        );
        out.push_str(&format!("sstore_master_key_generation {generation}\n"));
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}

/// A metric's HELP and TYPE lines.
fn metric(out: &mut String, name: &str, kind: &str, help: &str) {
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
}

/// A label value, escaped as the text format asks.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn unix_time(rfc3339: &str) -> Option<i64> {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}
