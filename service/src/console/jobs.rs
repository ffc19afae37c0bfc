//! Backup and Restore Job Status: Readiness at the top (every destination: reachable,
//! writable, free space, last success, the key-change and staleness warnings, a Failure
//! Message), the current job below (its state from queued on, a progress bar per
//! destination, live from the event stream), and earlier jobs with their Failure Message.
//! The page refreshes itself (every 30 s unless told otherwise) and has a Refresh button.
//! Also a job's log, with a level filter and a download link, and cancelling a job.

use std::time::Duration;

use askama::Template;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::view::{self, DestinationRow, JobRow};
use super::{Console, Layout, PageError, Visitor, ok, see_job};
use crate::auth::Action;
use crate::jobs::JobView;

const TITLE: &str = "Backup and Restore Job Status";
/// The default interval of the page's own refresh.
const DEFAULT_REFRESH: u32 = 30;
/// How long the page waits for fresh readiness answers.
const PROBE_WAIT: Duration = Duration::from_secs(3);
/// Earlier jobs shown.
const EARLIER: usize = 50;

pub struct ReadyRow {
    name: String,
    location: String,
    reachable: String,
    writable: String,
    free: String,
    last_success: String,
    warnings: Vec<String>,
    failure: String,
    ok: bool,
}

pub struct CurrentJob {
    row: JobRow,
    heading: String,
    queued_reason: String,
    destinations: Vec<DestinationRow>,
    can_cancel: bool,
}

pub struct RefreshChoice {
    value: u32,
    label: &'static str,
    selected: bool,
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct StatusPage {
    layout: Layout,
    readiness: Vec<ReadyRow>,
    notes: Vec<String>,
    current: Option<CurrentJob>,
    earlier: Vec<JobRow>,
    refresh_action: String,
    refresh_choices: Vec<RefreshChoice>,
    csrf: String,
}

#[derive(Deserialize)]
pub struct StatusQuery {
    /// Seconds between the page's own refreshes; 0: never.
    refresh: Option<u32>,
}

/// `GET /jobs`: the current job is the oldest one queued or running, else the newest.
pub async fn status(
    State(state): State<Console>,
    visitor: Visitor,
    query: Result<Query<StatusQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    render(state, visitor, None, query).await
}

/// `GET /jobs/{id}`: the same page with job `id` as the current job.
pub async fn status_of(
    State(state): State<Console>,
    visitor: Visitor,
    Path(id): Path<String>,
    query: Result<Query<StatusQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    render(state, visitor, Some(id), query).await
}

async fn render(
    state: Console,
    visitor: Visitor,
    id: Option<String>,
    query: Result<Query<StatusQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let refresh = query
        .ok()
        .and_then(|Query(q)| q.refresh)
        .map_or(
            DEFAULT_REFRESH,
            |r| if r == 0 { 0 } else { r.clamp(5, 3600) },
        );
    let jobs = state.app.jobs.list();
    let current = match &id {
        Some(id) => Some(jobs.iter().find(|j| &j.id == id).cloned().ok_or_else(|| {
            PageError::new(
                StatusCode::NOT_FOUND,
                "No such job",
                format!("There is no job {id} (the service keeps the newest 500)."),
            )
            .with_layout(&visitor)
        })?),
        None => jobs
            .iter()
            .rev()
            .find(|j| !j.is_finished())
            .or_else(|| jobs.first())
            .cloned(),
    };
    let earlier: Vec<JobRow> = jobs
        .iter()
        .filter(|j| current.as_ref().is_none_or(|c| c.id != j.id))
        .take(EARLIER)
        .map(JobRow::of)
        .collect();
    let (readiness, notes) = readiness(&state).await;
    let path = match &current {
        Some(job) if id.is_some() => format!("/jobs/{}", view::url_encode(&job.id)),
        _ => "/jobs".to_owned(),
    };
    let mut layout = visitor.layout(TITLE);
    if refresh > 0 {
        layout.refresh = Some(format!("{refresh}; url={path}?refresh={refresh}"));
    }
    let can_cancel = visitor.may(Action::CancelJob);
    Ok(ok(&StatusPage {
        layout,
        readiness,
        notes,
        current: current.map(|job| current_job(&job, can_cancel)),
        earlier,
        refresh_choices: [
            (0, "never"),
            (10, "10 seconds"),
            (30, "30 seconds"),
            (60, "minute"),
            (300, "5 minutes"),
        ]
        .into_iter()
        .map(|(value, label)| RefreshChoice {
            value,
            label,
            selected: value == refresh,
        })
        .collect(),
        refresh_action: path,
        csrf: visitor.csrf.clone(),
    }))
}

fn current_job(job: &JobView, may_cancel: bool) -> CurrentJob {
    let row = JobRow::of(job);
    CurrentJob {
        heading: match job.kind {
            crate::jobs::JobKind::Backup => "Backup",
            crate::jobs::JobKind::Restore => "Restore",
            crate::jobs::JobKind::Verify => "Verify",
            crate::jobs::JobKind::Prune => "Prune",
        }
        .to_owned(),
        queued_reason: job.queued_reason.clone().unwrap_or_else(|| {
            if job.state == crate::jobs::view::QUEUED {
                "It may take several seconds for the job to start.".to_owned()
            } else {
                String::new()
            }
        }),
        destinations: job
            .destinations
            .iter()
            .map(|d| DestinationRow::of(d, job))
            .collect(),
        can_cancel: may_cancel && !row.finished_flag,
        row,
    }
}

/// Every destination the configuration names, from the status (last success, warnings,
/// errors: the same as `GET /api/v1/status`) and the readiness probes; and the status's
/// warnings that concern no destination.
async fn readiness(state: &Console) -> (Vec<ReadyRow>, Vec<String>) {
    let status = state.app.status();
    let names: Vec<String> = status.destinations.iter().map(|d| d.name.clone()).collect();
    let probes = state
        .probes
        .get(state.app.jobs.runtime(), &names, PROBE_WAIT)
        .await;
    let notes = status
        .warnings
        .iter()
        .filter(|w| {
            !status
                .destinations
                .iter()
                .any(|d| w.starts_with(&format!("{}: ", d.name)))
        })
        .cloned()
        .collect();
    let rows = status
        .destinations
        .into_iter()
        .map(|d| {
            let probe = probes.get(&d.name);
            let (reachable, writable, free, probe_error) = match probe.map(|p| &p.result) {
                None => ("checking…".into(), "checking…".into(), String::new(), None),
                Some(Ok(r)) => (
                    "yes".to_owned(),
                    if r.writable { "yes" } else { "no" }.to_owned(),
                    r.free_bytes
                        .map(view::bytes)
                        .unwrap_or_else(|| "unknown".into()),
                    (!r.writable).then(|| {
                        "the target answers but a probe object could not be written".to_owned()
                    }),
                ),
                Some(Err(e)) => ("no".into(), "no".into(), String::new(), Some(e.clone())),
            };
            let failure: Vec<String> = probe_error.into_iter().chain(d.error.clone()).collect();
            ReadyRow {
                location: d
                    .location
                    .clone()
                    .or_else(|| probe.and_then(|p| p.location.clone()))
                    .unwrap_or_default(),
                ok: d.ready && failure.is_empty() && d.warnings.is_empty(),
                name: d.name,
                reachable,
                writable,
                free,
                last_success: d
                    .last_success
                    .as_deref()
                    .map(view::time)
                    .unwrap_or_else(|| "never".into()),
                warnings: d.warnings,
                failure: failure.join("; "),
            }
        })
        .collect();
    (rows, notes)
}

#[derive(Deserialize)]
pub struct CancelForm {
    #[serde(default)]
    csrf_token: String,
}

/// `POST /jobs/{id}/cancel`.
pub async fn cancel(
    State(state): State<Console>,
    visitor: Visitor,
    Path(id): Path<String>,
    body: Result<axum::Form<CancelForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = super::form(body, &visitor)?;
    visitor.check_form(&state, &form.csrf_token)?;
    visitor.require(&state, Action::CancelJob)?;
    state
        .app
        .jobs
        .cancel(&id, &visitor.operator.name)
        .map_err(|e| PageError::from_api(e, &visitor))?;
    state
        .app
        .auth
        .audit(&crate::auth::AuditEvent::JobCancelled {
            by: crate::auth::Who::operator(&visitor.operator),
            from: visitor.ip,
            job: id.clone(),
        });
    Ok(see_job(&id))
}

pub struct LogLine {
    text: String,
    class: &'static str,
}

pub struct LevelChoice {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

#[derive(Template)]
#[template(path = "job_log.html")]
struct LogPage {
    layout: Layout,
    id: String,
    id_path: String,
    kind: String,
    state: String,
    lines: Vec<LogLine>,
    total: usize,
    levels: Vec<LevelChoice>,
}

#[derive(Deserialize)]
pub struct LogQuery {
    level: Option<String>,
}

/// `GET /jobs/{id}/log?level=all|warning|error`.
pub async fn log(
    State(state): State<Console>,
    visitor: Visitor,
    Path(id): Path<String>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let not_found = || {
        PageError::new(
            StatusCode::NOT_FOUND,
            "No such job",
            format!("There is no job {id}."),
        )
        .with_layout(&visitor)
    };
    let job = state.app.jobs.view(&id).ok_or_else(not_found)?;
    let text = state.app.jobs.log(&id).unwrap_or_default();
    let level = query
        .ok()
        .and_then(|Query(q)| q.level)
        .filter(|l| matches!(l.as_str(), "warning" | "error"))
        .unwrap_or_else(|| "all".to_owned());
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let lines = all
        .iter()
        .filter_map(|line| {
            let class = match line.split_whitespace().nth(1) {
                Some("[error]") => "level-error",
                Some("[warning]") => "level-warning",
                _ => "level-info",
            };
            let shown = match level.as_str() {
                "error" => class == "level-error",
                "warning" => class != "level-info",
                _ => true,
            };
            shown.then(|| LogLine {
                text: (*line).to_owned(),
                class,
            })
        })
        .collect();
    Ok(ok(&LogPage {
        layout: visitor.layout(format!("Job log: {id}")),
        id_path: view::url_encode(&id),
        kind: job.kind.to_string(),
        state: job.state.clone(),
        id,
        lines,
        total: all.len(),
        levels: [
            ("all", "All lines"),
            ("warning", "Warnings and errors"),
            ("error", "Errors"),
        ]
        .into_iter()
        .map(|(value, label)| LevelChoice {
            value,
            label,
            selected: value == level,
        })
        .collect(),
    }))
}
