//! `/api/v1/schedules`: the timer jobs, and running one now.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::Shared;
use super::auth::Caller;
use crate::auth::Action;
use crate::error::ApiError;

pub async fn list(State(state): State<Shared>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Action::Read)?;
    let status = state.scheduler.status().map_err(ApiError::internal)?;
    Ok(Json(status).into_response())
}

pub async fn run(
    State(state): State<Shared>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Action::RunSchedule)?;
    let job = state.scheduler.submit(&name, Some(&caller.name)).await?;
    state.audit_started(&caller, &job);
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "id": job.id, "job": job })),
    )
        .into_response())
}
