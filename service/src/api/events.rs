//! Live events as server-sent events: `/api/v1/events` (every job) and
//! `/api/v1/jobs/{id}/events` (one job). Each message's `event:` is the kind (`job` for a
//! job's whole view when it changes, else the engine's event name: `state`, `progress`,
//! `target-state`, `warning`, ...) and its `data:` is JSON. A new listener first gets the
//! current view of the job(s); a listener that falls behind gets a `lagged` event and goes on.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::Shared;
use super::auth::Caller;
use crate::auth::Action;
use crate::error::ApiError;
use crate::jobs::ServiceEvent;

fn to_sse(event: &ServiceEvent) -> Event {
    match event {
        ServiceEvent::Job { job } => Event::default()
            .event("job")
            .json_data(job)
            .unwrap_or_else(|_| Event::default().event("job")),
        ServiceEvent::Engine { job_id, event } => {
            let mut data = serde_json::to_value(event).unwrap_or_default();
            let name = data
                .get("event")
                .and_then(|v| v.as_str())
                .unwrap_or("engine")
                .to_owned();
            if let Some(object) = data.as_object_mut() {
                object.insert("job_id".into(), json!(job_id));
            }
            Event::default()
                .event(name)
                .json_data(data)
                .unwrap_or_else(|_| Event::default().event("engine"))
        }
    }
}

/// What a listener has still to receive.
struct Listener {
    /// The current views, sent first.
    first: std::vec::IntoIter<ServiceEvent>,
    receiver: tokio::sync::broadcast::Receiver<ServiceEvent>,
    /// Only this job's events.
    only: Option<String>,
}

fn stream(state: Shared, only: Option<String>) -> impl Stream<Item = Result<Event, Infallible>> {
    let receiver = state.jobs.subscribe();
    let first: Vec<ServiceEvent> = state
        .jobs
        .list()
        .into_iter()
        .filter(|j| only.as_ref().is_none_or(|id| &j.id == id))
        .filter(|j| only.is_some() || !j.is_finished())
        .map(|job| ServiceEvent::Job { job: Box::new(job) })
        .collect();
    let listener = Listener {
        first: first.into_iter(),
        receiver,
        only,
    };
    futures_util::stream::unfold(listener, |mut l| async move {
        if let Some(event) = l.first.next() {
            return Some((Ok(to_sse(&event)), l));
        }
        loop {
            match l.receiver.recv().await {
                Ok(event) if l.only.as_ref().is_none_or(|id| id == event.job_id()) => {
                    return Some((Ok(to_sse(&event)), l));
                }
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => {
                    let lagged = Event::default()
                        .event("lagged")
                        .data(format!("{{\"missed\":{missed}}}"));
                    return Some((Ok(lagged), l));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    })
}

pub async fn all(
    State(state): State<Shared>,
    caller: Caller,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.require(Action::Read)?;
    Ok(
        Sse::new(stream(state, None))
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(15))),
    )
}

pub async fn one(
    State(state): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.require(Action::Read)?;
    if state.jobs.view(&id).is_none() {
        return Err(ApiError::not_found(format!("no job {id}")));
    }
    Ok(Sse::new(stream(state, Some(id)))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
