//! The job queue: every backup, verify, prune and restore the service runs, at most one at a
//! time per backup directory or destination (a job that has to wait shows as `queued` with the
//! reason; the engine's locks still guard against a CLI run on the same directory). Jobs can
//! be cancelled; a shutdown stops running jobs at a safe point so the next start resumes them.
//! Each job's view is kept current from the engine's events, broadcast to live listeners
//! (server-sent events) and saved in the state folder.

mod plan;
pub mod request;
mod run;
pub mod view;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use sstore_core::backup::{EventSink, JobEvent, JobLog, StopSignal};
use tokio::sync::{Notify, broadcast};

pub use plan::{BackupFirst, Plan, Runtime, plan_resume};
pub use request::{JobKind, JobRequest};
pub use view::JobView;

use crate::error::ApiError;

/// The most finished jobs kept (in memory and in the state folder).
const KEEP_FINISHED: usize = 500;

/// What live listeners receive.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ServiceEvent {
    /// A job was queued, started, or changed state: its whole view.
    Job { job: Box<JobView> },
    /// An engine event of a running job.
    Engine { job_id: String, event: JobEvent },
}

impl ServiceEvent {
    pub fn job_id(&self) -> &str {
        match self {
            ServiceEvent::Job { job } => &job.id,
            ServiceEvent::Engine { job_id, .. } => job_id,
        }
    }
}

struct Entry {
    view: JobView,
    stop: StopSignal,
    log: JobLog,
    /// The locations the job needs to itself.
    locations: Vec<String>,
    plan: Option<Plan>,
}

#[derive(Default)]
struct Inner {
    jobs: HashMap<String, Entry>,
    /// Ids, oldest first.
    order: Vec<String>,
    queue: VecDeque<String>,
    /// Location → the job holding it.
    busy: HashMap<String, String>,
    accepting: bool,
    running: usize,
}

/// The service's jobs. Cheap to share (`Arc`).
pub struct JobManager {
    inner: Mutex<Inner>,
    events: broadcast::Sender<ServiceEvent>,
    idle: Notify,
    runtime: Arc<Runtime>,
    folder: PathBuf,
}

impl JobManager {
    /// A manager whose jobs run with `runtime`, keeping their records in `<state>/jobs/`.
    /// Jobs saved by an earlier run that had not finished are shown as interrupted.
    pub fn new(runtime: Arc<Runtime>) -> Arc<Self> {
        let folder = runtime.state_dir.join("jobs");
        let _ = sstore_core::fsutil::create_private_dir_all(&folder);
        let (events, _) = broadcast::channel(1024);
        let manager = Arc::new(Self {
            inner: Mutex::new(Inner {
                accepting: true,
                ..Inner::default()
            }),
            events,
            idle: Notify::new(),
            runtime,
            folder,
        });
        manager.load_saved();
        manager
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Live events of every job (a listener that falls behind misses some, and is told so).
    pub fn subscribe(&self) -> broadcast::Receiver<ServiceEvent> {
        self.events.subscribe()
    }

    /// Queues a job; it starts as soon as the locations it needs are free.
    pub async fn submit(
        self: &Arc<Self>,
        request: JobRequest,
        requested_by: &str,
    ) -> Result<JobView, ApiError> {
        self.submit_with_keys(request, requested_by, None).await
    }

    /// Queues a job whose verify or restore opens backups with `keys` (a key an operator gave
    /// for this one job: held in the job's plan only, never in its request, view or log).
    pub async fn submit_with_keys(
        self: &Arc<Self>,
        request: JobRequest,
        requested_by: &str,
        keys: Option<sstore_core::backup::OpenKeys>,
    ) -> Result<JobView, ApiError> {
        request.validate(&self.runtime.config)?;
        let plan = Plan::resolve_with_keys(&self.runtime, &request, requested_by, keys).await?;
        Ok(self.enqueue(request, requested_by, plan))
    }

    /// Queues a job already planned (the service's own: resumes, schedules).
    pub(crate) fn enqueue(
        self: &Arc<Self>,
        request: JobRequest,
        requested_by: &str,
        plan: Plan,
    ) -> JobView {
        let id = sstore_core::backup::new_job_id();
        let kind = plan.kind();
        let view = JobView::new(id.clone(), kind, requested_by.to_owned(), request);
        {
            let mut inner = self.lock();
            if !inner.accepting {
                drop(inner);
                let mut view = view;
                view.state = view::CANCELLED.into();
                view.failure_message = Some("the service is shutting down".into());
                return view;
            }
            inner.jobs.insert(
                id.clone(),
                Entry {
                    view: view.clone(),
                    stop: StopSignal::new(),
                    log: JobLog::new(),
                    locations: plan.locations(),
                    plan: Some(plan),
                },
            );
            inner.order.push(id.clone());
            inner.queue.push_back(id.clone());
        }
        self.changed(&id);
        self.dispatch();
        self.view(&id).unwrap_or(view)
    }

    /// Starts every queued job whose locations are free; says why the others wait.
    fn dispatch(self: &Arc<Self>) {
        let mut start = Vec::new();
        let mut waiting = Vec::new();
        {
            let mut inner = self.lock();
            if !inner.accepting {
                return;
            }
            let queued: Vec<String> = inner.queue.iter().cloned().collect();
            for id in queued {
                let Some(entry) = inner.jobs.get(&id) else {
                    continue;
                };
                let blocked = entry.locations.iter().find_map(|location| {
                    inner
                        .busy
                        .get(location)
                        .map(|holder| (holder.clone(), location.clone()))
                });
                match blocked {
                    Some((holder, location)) => waiting.push((id, holder, location)),
                    None => {
                        let locations = entry.locations.clone();
                        for location in locations {
                            inner.busy.insert(location, id.clone());
                        }
                        inner.queue.retain(|q| q != &id);
                        inner.running += 1;
                        start.push(id);
                    }
                }
            }
            for (id, holder, location) in &waiting {
                if let Some(entry) = inner.jobs.get_mut(id) {
                    entry.view.queued_reason = Some(format!(
                        "waiting for job {holder}, which is using {location}"
                    ));
                }
            }
        }
        for (id, _, _) in waiting {
            self.changed(&id);
        }
        for id in start {
            let manager = self.clone();
            tokio::spawn(async move { manager.run(id).await });
        }
    }

    async fn run(self: Arc<Self>, id: String) {
        let (plan, stop, log, requested_by) = {
            let mut inner = self.lock();
            let Some(entry) = inner.jobs.get_mut(&id) else {
                return;
            };
            entry.view.state = plan::first_state(entry.view.kind).into();
            entry.view.queued_reason = None;
            entry.view.started = Some(sstore_core::backup::now_rfc3339());
            (
                entry.plan.take(),
                entry.stop.clone(),
                entry.log.clone(),
                entry.view.requested_by.clone(),
            )
        };
        self.changed(&id);
        let events = {
            let manager = Arc::downgrade(&self);
            let job_id = id.clone();
            log.attach(&EventSink::new(move |event: &JobEvent| {
                if let Some(manager) = manager.upgrade() {
                    manager.on_engine_event(&job_id, event);
                }
            }))
        };
        let outcome = match plan {
            Some(plan) => run::execute(&self.runtime, plan, &requested_by, &events, &stop).await,
            None => run::Outcome::failed("the job lost its plan (a defect)".into()),
        };
        {
            let mut inner = self.lock();
            let Inner {
                jobs,
                busy,
                running,
                ..
            } = &mut *inner;
            if let Some(entry) = jobs.get_mut(&id) {
                outcome.apply(&mut entry.view);
                entry.view.finished = Some(sstore_core::backup::now_rfc3339());
                for location in &entry.locations {
                    if busy.get(location) == Some(&id) {
                        busy.remove(location);
                    }
                }
            }
            *running = running.saturating_sub(1);
        }
        self.save_log(&id, &log);
        self.changed(&id);
        self.forget_old();
        self.idle.notify_waiters();
        self.dispatch();
    }

    fn on_engine_event(&self, id: &str, event: &JobEvent) {
        let changed = {
            let mut inner = self.lock();
            match inner.jobs.get_mut(id) {
                Some(entry) => entry.view.apply(event),
                None => false,
            }
        };
        let _ = self.events.send(ServiceEvent::Engine {
            job_id: id.to_owned(),
            event: event.clone(),
        });
        if changed {
            self.changed(id);
        }
    }

    /// Saves a job's view and tells listeners.
    fn changed(&self, id: &str) {
        if let Some(view) = self.view(id) {
            self.save_view(&view);
            let _ = self.events.send(ServiceEvent::Job {
                job: Box::new(view),
            });
        }
    }

    pub fn view(&self, id: &str) -> Option<JobView> {
        self.lock().jobs.get(id).map(|e| e.view.clone())
    }

    /// Every job, newest first.
    pub fn list(&self) -> Vec<JobView> {
        let inner = self.lock();
        inner
            .order
            .iter()
            .rev()
            .filter_map(|id| inner.jobs.get(id).map(|e| e.view.clone()))
            .collect()
    }

    /// The job's log so far (its own copy of the engine's log lines).
    pub fn log(&self, id: &str) -> Option<String> {
        if let Some(log) = self.lock().jobs.get(id).map(|e| e.log.clone()) {
            let text = log.render();
            if text.trim().is_empty() {
                return std::fs::read_to_string(self.folder.join(format!("{id}.log"))).ok();
            }
            return Some(text);
        }
        None
    }

    /// Cancels a queued or running job on behalf of `by`.
    pub fn cancel(self: &Arc<Self>, id: &str, by: &str) -> Result<JobView, ApiError> {
        let stop = {
            let mut inner = self.lock();
            let Some(entry) = inner.jobs.get_mut(id) else {
                return Err(ApiError::not_found(format!("no job {id}")));
            };
            if entry.view.is_finished() {
                return Err(ApiError::conflict(format!(
                    "job {id} has already ended ({})",
                    entry.view.state
                )));
            }
            if entry.view.state == view::QUEUED {
                entry.view.state = view::CANCELLED.into();
                entry.view.queued_reason = None;
                entry.view.finished = Some(sstore_core::backup::now_rfc3339());
                entry.view.failure_message = Some(format!("cancelled by {by} before it started"));
                inner.queue.retain(|q| q != id);
                None
            } else {
                Some(entry.stop.clone())
            }
        };
        match stop {
            Some(stop) => stop.cancel(by),
            None => self.changed(id),
        }
        self.view(id)
            .ok_or_else(|| ApiError::not_found(format!("no job {id}")))
    }

    /// Jobs queued or running.
    pub fn active(&self) -> usize {
        let inner = self.lock();
        inner.queue.len() + inner.running
    }

    /// Stops taking jobs, stops running ones at a safe point (to be resumed at the next
    /// start), and waits for them up to `grace`.
    pub async fn shut_down(self: &Arc<Self>, grace: Duration) {
        let (stops, queued) = {
            let mut inner = self.lock();
            inner.accepting = false;
            let queued: Vec<String> = inner.queue.drain(..).collect();
            for id in &queued {
                if let Some(entry) = inner.jobs.get_mut(id) {
                    entry.view.state = view::INTERRUPTED.into();
                    entry.view.queued_reason = None;
                    entry.view.failure_message =
                        Some("the service stopped before the job started".into());
                }
            }
            let stops: Vec<StopSignal> = inner
                .jobs
                .values()
                .filter(|e| e.view.started.is_some() && !e.view.is_finished())
                .map(|e| e.stop.clone())
                .collect();
            (stops, queued)
        };
        for id in &queued {
            self.changed(id);
        }
        for stop in &stops {
            stop.shut_down();
        }
        let deadline = tokio::time::Instant::now() + grace;
        while self.lock().running > 0 && tokio::time::Instant::now() < deadline {
            let _ = tokio::time::timeout(Duration::from_millis(200), self.idle.notified()).await;
        }
    }

    fn save_view(&self, view: &JobView) {
        if let Ok(json) = serde_json::to_vec_pretty(view) {
            let path = self.folder.join(format!("{}.json", view.id));
            let _ = write_replace(&path, &json);
        }
    }

    fn save_log(&self, id: &str, log: &JobLog) {
        let path = self.folder.join(format!("{id}.log"));
        let _ = write_replace(&path, log.render().as_bytes());
    }

    /// Loads the jobs an earlier run saved; those it had not finished are interrupted.
    fn load_saved(&self) {
        let Ok(entries) = std::fs::read_dir(&self.folder) else {
            return;
        };
        let mut views: Vec<JobView> = entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
            .collect();
        views.sort_by(|a, b| a.created.cmp(&b.created));
        let mut inner = self.lock();
        for mut view in views {
            if !view.is_finished() {
                view.state = view::INTERRUPTED.into();
                view.queued_reason = None;
                view.failure_message = Some(
                    "the service stopped while the job ran; an interrupted backup is resumed as a job of its own"
                        .into(),
                );
                if let Ok(json) = serde_json::to_vec_pretty(&view) {
                    let _ = write_replace(&self.folder.join(format!("{}.json", view.id)), &json);
                }
            }
            inner.order.push(view.id.clone());
            inner.jobs.insert(
                view.id.clone(),
                Entry {
                    view,
                    stop: StopSignal::new(),
                    log: JobLog::new(),
                    locations: Vec::new(),
                    plan: None,
                },
            );
        }
    }

    /// Keeps the newest [`KEEP_FINISHED`] finished jobs.
    fn forget_old(&self) {
        let mut inner = self.lock();
        let finished: Vec<String> = inner
            .order
            .iter()
            .filter(|id| inner.jobs.get(*id).is_some_and(|e| e.view.is_finished()))
            .cloned()
            .collect();
        if finished.len() <= KEEP_FINISHED {
            return;
        }
        for id in &finished[..finished.len() - KEEP_FINISHED] {
            inner.jobs.remove(id);
            inner.order.retain(|o| o != id);
            let _ = std::fs::remove_file(self.folder.join(format!("{id}.json")));
            let _ = std::fs::remove_file(self.folder.join(format!("{id}.log")));
        }
    }
}

/// Replaces `path` atomically with `bytes` (owner-only).
fn write_replace(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let temp = sstore_core::fsutil::temp_sibling(path, "save");
    let mut file = sstore_core::fsutil::create_private_file(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temp, path)
}
