//! `/api/v1/jobs`: list, start, show, cancel, and a job's log.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::Shared;
use super::auth::Caller;
use crate::auth::Action;
use crate::error::ApiError;
use crate::jobs::request::RestoreMethod;
use crate::jobs::{JobKind, JobRequest, JobView};

/// Filters of `GET /api/v1/jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFilter {
    pub state: Option<String>,
    pub kind: Option<JobKind>,
    pub requested_by: Option<String>,
    pub limit: Option<usize>,
}

pub async fn list(
    State(state): State<Shared>,
    caller: Caller,
    filter: Result<Query<JobFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<JobView>>, ApiError> {
    caller.require(Action::Read)?;
    let Query(filter) = filter.map_err(|e| ApiError::invalid(e.body_text()))?;
    let jobs = state
        .jobs
        .list()
        .into_iter()
        .filter(|j| filter.state.as_ref().is_none_or(|s| &j.state == s))
        .filter(|j| filter.kind.is_none_or(|k| j.kind == k))
        .filter(|j| {
            filter
                .requested_by
                .as_ref()
                .is_none_or(|r| &j.requested_by == r)
        })
        .take(filter.limit.unwrap_or(100).min(1000))
        .collect();
    Ok(Json(jobs))
}

/// The action a request needs: restoring over the live store needs `admin`.
fn action_for(request: &JobRequest) -> Result<Action, ApiError> {
    Ok(match request.kind()? {
        JobKind::Backup => Action::RunBackup,
        JobKind::Verify => Action::RunVerify,
        JobKind::Prune => Action::RunPrune,
        JobKind::Restore => Action::RunRestore {
            overwrite: request.restore_method()? == RestoreMethod::Overwrite,
        },
    })
}

pub async fn start(
    State(state): State<Shared>,
    caller: Caller,
    body: Result<Json<JobRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body.map_err(|e| ApiError::body(&e))?;
    caller.require(action_for(&request)?)?;
    let job = state.jobs.submit(request, &caller.name).await?;
    state.audit_started(&caller, &job);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/api/v1/jobs/{}", job.id))],
        Json(serde_json::json!({ "id": job.id, "job": job })),
    )
        .into_response())
}

pub async fn show(
    State(state): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    caller.require(Action::Read)?;
    state
        .jobs
        .view(&id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))
}

pub async fn cancel(
    State(state): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    caller.require(Action::CancelJob)?;
    let job = state.jobs.cancel(&id, &caller.name)?;
    state.audit_cancelled(&caller, &id);
    Ok(Json(job))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    #[serde(default)]
    pub download: bool,
}

pub async fn log(
    State(state): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Action::Read)?;
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let text = state
        .jobs
        .log(&id)
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    let mut response =
        ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response();
    if query.download
        && let Ok(value) = format!("attachment; filename=\"sstore-job-{id}.log\"").parse()
    {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
