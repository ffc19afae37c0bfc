//! View history: the backups, restores and prunes of a backup directory or target, from its
//! `sstorebrtoc.json`, newest first; verify a backup and prune the directory, for roles that
//! may (both run as jobs).

use std::time::Duration;

use askama::Template;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use sstore_core::backup::{History, JobStatus};
use sstore_core::config::Config;
use sstore_core::locations;

use super::view;
use super::{Console, Layout, PageError, Visitor, html, ok, see_job};
use crate::auth::Action;
use crate::jobs::{JobKind, JobRequest, Runtime};

/// How long a directory's history may take to read.
const HISTORY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Choice {
    pub value: String,
    pub selected: bool,
}

pub struct EntryRow {
    id: String,
    kind: String,
    folder: String,
    method: String,
    requested_by: String,
    started: String,
    finished: String,
    status: String,
    status_class: String,
    size: String,
    key_generation: String,
    warnings: u32,
    errors: u32,
    failure: String,
    detail: String,
    verifiable: bool,
}

#[derive(Template)]
#[template(path = "history.html")]
struct HistoryPage {
    layout: Layout,
    choices: Vec<Choice>,
    location: String,
    location_path: String,
    error: String,
    entries: Vec<EntryRow>,
    loaded: bool,
    can_verify: bool,
    can_prune: bool,
    can_restore: bool,
    csrf: String,
}

/// The locations a page offers: every destination the configuration names, and every
/// configured target.
pub fn location_choices(config: &Config, selected: &str) -> Vec<Choice> {
    let mut names = crate::readiness::configured_destinations(config);
    for t in &config.named_targets {
        if !names.contains(&t.name) {
            names.push(t.name.clone());
        }
    }
    names
        .into_iter()
        .map(|value| Choice {
            selected: value == selected,
            value,
        })
        .collect()
}

/// The history of `location` (a name or location string the service may use).
pub async fn load(runtime: &Runtime, location: &str) -> Result<History, String> {
    crate::jobs::request::allowed_location(&runtime.config, location).map_err(|e| e.message)?;
    let dir = locations::backup_directory(&runtime.registry, &runtime.config, Some(location), None)
        .await
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(HISTORY_TIMEOUT, dir.load_history()).await {
        Ok(Ok(history)) => Ok(history),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "{} did not answer within {} s",
            dir.location(),
            HISTORY_TIMEOUT.as_secs()
        )),
    }
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    location: Option<String>,
    /// A location typed instead of chosen.
    other: Option<String>,
}

/// `GET /history?location=...`.
pub async fn page(
    State(state): State<Console>,
    visitor: Visitor,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Response {
    let runtime = state.app.jobs.runtime();
    let config = &runtime.config;
    let (chosen, other) = query.map_or((None, None), |Query(q)| (q.location, q.other));
    let location = other
        .map(|o| o.trim().to_owned())
        .filter(|o| !o.is_empty())
        .or(chosen.filter(|c| !c.is_empty()))
        .or_else(|| {
            crate::readiness::configured_destinations(config)
                .into_iter()
                .next()
        })
        .unwrap_or_default();
    let mut page = HistoryPage {
        layout: visitor.layout("History"),
        choices: location_choices(config, &location),
        location_path: view::url_encode(&location),
        location: location.clone(),
        error: String::new(),
        entries: Vec::new(),
        loaded: false,
        can_verify: visitor.may(Action::RunVerify),
        can_prune: visitor.may(Action::RunPrune),
        can_restore: visitor.may(Action::RunRestore { overwrite: false }),
        csrf: visitor.csrf.clone(),
    };
    if location.is_empty() {
        page.error = "The configuration names no backup directory or target.".into();
        return ok(&page);
    }
    match load(runtime, &location).await {
        Ok(history) => {
            page.loaded = true;
            page.entries = history.entries.iter().rev().map(row).collect();
            ok(&page)
        }
        Err(e) => {
            page.error = e;
            html(StatusCode::BAD_GATEWAY, &page)
        }
    }
}

fn row(e: &sstore_core::backup::HistoryEntry) -> EntryRow {
    use sstore_core::backup::JobKind as Kind;
    let kind = match e.kind {
        Kind::Backup => "backup",
        Kind::Restore => "restore",
        Kind::Prune => "prune",
    };
    let detail = match e.kind {
        Kind::Backup => e
            .copies
            .iter()
            .map(|c| format!("{}: {}", c.name, c.state))
            .collect::<Vec<_>>()
            .join(", "),
        Kind::Restore => format!(
            "backup {} to {}",
            e.backup_id.as_deref().unwrap_or("?"),
            e.restored_to.as_deref().unwrap_or("?")
        ),
        Kind::Prune => {
            if e.removed.is_empty() {
                "nothing removed".to_owned()
            } else {
                format!("removed {}", e.removed.join(", "))
            }
        }
    };
    EntryRow {
        id: e.id.clone(),
        kind: kind.to_owned(),
        folder: e.folder.clone(),
        method: e.method.clone(),
        requested_by: e.requested_by.clone(),
        started: view::time(&e.started),
        finished: view::time(&e.finished),
        status: e.status.to_string(),
        status_class: view::state_class(&e.status.to_string()),
        size: e.backup_size.map(view::bytes).unwrap_or_default(),
        key_generation: e.key_generation.map(|g| g.to_string()).unwrap_or_default(),
        warnings: e.warnings,
        errors: e.errors,
        failure: e.failure_message.clone().unwrap_or_default(),
        detail,
        verifiable: e.kind == Kind::Backup && e.status == JobStatus::Succeeded,
    }
}

#[derive(Deserialize)]
pub struct VerifyForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    location: String,
    #[serde(default)]
    backup_id: String,
}

/// `POST /history/verify`: a verify job of one backup.
pub async fn verify(
    State(state): State<Console>,
    visitor: Visitor,
    body: Result<axum::Form<VerifyForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = super::form(body, &visitor)?;
    visitor.check_form(&state, &form.csrf_token)?;
    visitor.require(&state, Action::RunVerify)?;
    let request = JobRequest {
        kind: Some(JobKind::Verify),
        directory: Some(form.location).filter(|l| !l.is_empty()),
        backup_id: Some(form.backup_id).filter(|b| !b.is_empty()),
        ..JobRequest::default()
    };
    start(&state, &visitor, request).await
}

#[derive(Deserialize)]
pub struct PruneForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    location: String,
    #[serde(default)]
    keep_last: String,
    #[serde(default)]
    keep_within: String,
    #[serde(default)]
    dry_run: Option<String>,
}

/// `POST /history/prune`: a prune job by the rules given.
pub async fn prune(
    State(state): State<Console>,
    visitor: Visitor,
    body: Result<axum::Form<PruneForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = super::form(body, &visitor)?;
    visitor.check_form(&state, &form.csrf_token)?;
    visitor.require(&state, Action::RunPrune)?;
    let keep_last: usize = form.keep_last.trim().parse().map_err(|_| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            "Refused",
            "Keep last: give a whole number of backups to keep (at least 1).",
        )
        .with_layout(&visitor)
    })?;
    let request = JobRequest {
        kind: Some(JobKind::Prune),
        directory: Some(form.location).filter(|l| !l.is_empty()),
        keep_last: Some(keep_last.max(1)),
        keep_within: Some(form.keep_within.trim().to_owned()).filter(|k| !k.is_empty()),
        dry_run: form.dry_run.is_some(),
        ..JobRequest::default()
    };
    start(&state, &visitor, request).await
}

/// Submits a job for the visitor and shows it.
pub async fn start(
    state: &Console,
    visitor: &Visitor,
    request: JobRequest,
) -> Result<Response, PageError> {
    let job = state
        .app
        .jobs
        .submit(request, &visitor.operator.name)
        .await
        .map_err(|e| PageError::from_api(e, visitor))?;
    visitor.audit_started(state, &job);
    Ok(see_job(&job.id))
}
