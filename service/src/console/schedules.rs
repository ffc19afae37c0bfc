//! Schedules (timer jobs): each with its next and last run and last outcome; run one now.
//! They are edited in the config file (`[[schedule]]`), which the page says.

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;

use super::{Console, Layout, PageError, Visitor, ok, see_job, view};
use crate::auth::Action;

pub struct ScheduleRow {
    name: String,
    name_path: String,
    trigger: String,
    destinations: String,
    next_run: String,
    due: bool,
    last_run: String,
    last_state: String,
    last_outcome: String,
    last_outcome_class: String,
    last_success: String,
    failure: String,
    stale: String,
    options: String,
}

#[derive(Template)]
#[template(path = "schedules.html")]
struct SchedulesPage {
    layout: Layout,
    rows: Vec<ScheduleRow>,
    error: String,
    config_path: String,
    can_run: bool,
    csrf: String,
}

pub async fn page(State(state): State<Console>, visitor: Visitor) -> Response {
    let config = &state.app.jobs.runtime().config;
    let (rows, error) = match state.app.scheduler.status() {
        Ok(status) => (
            status
                .schedules
                .into_iter()
                .map(|s| {
                    let mut options = Vec::new();
                    if s.on_key_change {
                        options.push("after every Master Key change");
                    }
                    if s.verify_after {
                        options.push("verifies each backup");
                    }
                    ScheduleRow {
                        name_path: view::url_encode(&s.name),
                        destinations: s
                            .directory
                            .iter()
                            .chain(&s.targets)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", "),
                        next_run: view::offset_time(s.next_run),
                        due: s.due,
                        last_run: s
                            .last_run
                            .as_ref()
                            .map(|r| view::offset_time(r.started))
                            .unwrap_or_else(|| "never".into()),
                        last_state: s
                            .last_run
                            .as_ref()
                            .map(|r| r.shown_state.clone())
                            .unwrap_or_default(),
                        last_outcome: s.last_outcome.map(|o| o.to_string()).unwrap_or_default(),
                        last_outcome_class: s
                            .last_outcome
                            .map(|o| view::state_class(&o.to_string()))
                            .unwrap_or_default(),
                        last_success: s
                            .last_success
                            .map(view::offset_time)
                            .unwrap_or_else(|| "never".into()),
                        failure: s
                            .last_run
                            .as_ref()
                            .and_then(|r| r.failure_message.clone())
                            .unwrap_or_default(),
                        stale: s.stale.unwrap_or_default(),
                        options: options.join(", "),
                        trigger: s.trigger,
                        name: s.name,
                    }
                })
                .collect(),
            String::new(),
        ),
        Err(e) => (Vec::new(), e),
    };
    ok(&SchedulesPage {
        layout: visitor.layout("Schedules"),
        rows,
        error,
        config_path: config
            .path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "the config file".into()),
        can_run: visitor.may(Action::RunSchedule),
        csrf: visitor.csrf.clone(),
    })
}

#[derive(Deserialize)]
pub struct RunForm {
    #[serde(default)]
    csrf_token: String,
}

/// `POST /schedules/{name}/run`: a run now, requested by the operator.
pub async fn run(
    State(state): State<Console>,
    visitor: Visitor,
    Path(name): Path<String>,
    body: Result<axum::Form<RunForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = super::form(body, &visitor)?;
    visitor.check_form(&state, &form.csrf_token)?;
    visitor.require(&state, Action::RunSchedule)?;
    let job = state
        .app
        .scheduler
        .submit(&name, Some(&visitor.operator.name))
        .await
        .map_err(|e| PageError::from_api(e, &visitor))?;
    visitor.audit_started(&state, &job);
    Ok(see_job(&job.id))
}
