//! Timer jobs: the service's loop over `[[schedule]]` (the rules are core's
//! `sstore_core::schedule`). A schedule whose time came submits a backup job requested by
//! `schedule:NAME`, after its random delay; one that became due while the service was down
//! runs once at start (logged); one whose last job is still queued or running is not
//! submitted again. Schedules with `on_key_change = true` also run after every Master Key
//! change the key watcher notices.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sstore_core::schedule::{self, Due, OffsetDateTime, Schedule, SchedulesStatus};
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::jobs::{JobKind, JobManager, JobRequest, JobView, Plan};

/// The longest the loop sleeps between looks (a config's schedules do not change while it
/// runs, but the journal does: a CLI run of a schedule's destination is seen within this).
const TICK: Duration = Duration::from_secs(20);

pub struct Scheduler {
    jobs: Arc<JobManager>,
    schedules: Vec<Schedule>,
    /// When the service began watching (a cron schedule that never ran waits for its first
    /// match after this).
    since: OffsetDateTime,
    /// Per schedule: its last job here, and when it was submitted.
    submitted: Mutex<HashMap<String, (String, OffsetDateTime)>>,
    stop: CancellationToken,
}

impl Scheduler {
    /// The config's schedules (already checked when it was read).
    pub fn new(jobs: Arc<JobManager>) -> Arc<Self> {
        let schedules = schedule::schedules(&jobs.runtime().config).unwrap_or_default();
        Arc::new(Self {
            jobs,
            schedules,
            since: OffsetDateTime::now_utc(),
            submitted: Mutex::new(HashMap::new()),
            stop: CancellationToken::new(),
        })
    }

    pub fn start(self: &Arc<Self>) {
        if self.schedules.is_empty() {
            return;
        }
        let scheduler = self.clone();
        tokio::spawn(async move { scheduler.run().await });
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// What `GET /api/v1/schedules` and `sstore schedules` show.
    pub fn status(&self) -> Result<SchedulesStatus, String> {
        schedule::read_status(&self.jobs.runtime().config, OffsetDateTime::now_utc())
            .map_err(|e| e.to_string())
    }

    async fn run(self: Arc<Self>) {
        loop {
            let now = OffsetDateTime::now_utc();
            let mut sleep = TICK;
            let journal = self
                .jobs
                .runtime()
                .config
                .journal()
                .list()
                .map(|(jobs, _)| jobs)
                .unwrap_or_default();
            for schedule in &self.schedules {
                match self.due(schedule, &journal, now) {
                    Some(Due::Now { slot, missed }) => {
                        if missed {
                            eprintln!(
                                "sstore serve: schedule '{}' was due at {} while the service was down; running it once now",
                                schedule.name,
                                schedule.trigger.format(slot)
                            );
                        }
                        self.mark_submitted(schedule, now, String::new());
                        let delay = schedule.pick_random_delay();
                        let scheduler = self.clone();
                        let name = schedule.name.clone();
                        tokio::spawn(async move {
                            tokio::select! {
                                () = tokio::time::sleep(delay) => {}
                                () = scheduler.stop.cancelled() => return,
                            }
                            if let Err(e) = scheduler.submit(&name, None).await {
                                eprintln!(
                                    "sstore serve: schedule '{name}' could not start: {}",
                                    e.message
                                );
                            }
                        });
                    }
                    Some(Due::At(next)) => {
                        let wait = Duration::try_from(next - now).unwrap_or(TICK);
                        sleep = sleep.min(wait.max(Duration::from_secs(1)));
                    }
                    None => {}
                }
            }
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                () = self.stop.cancelled() => return,
            }
        }
    }

    /// Whether `schedule` should run at `now`: `None` while its last job here is queued or
    /// running.
    fn due(
        &self,
        schedule: &Schedule,
        journal: &[sstore_core::backup::JobRecord],
        now: OffsetDateTime,
    ) -> Option<Due> {
        let submitted = self
            .submitted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&schedule.name)
            .cloned();
        if let Some((id, _)) = &submitted
            && (id.is_empty() || self.jobs.view(id).is_some_and(|job| !job.is_finished()))
        {
            return None;
        }
        let last_run = match (schedule.last_run(journal), submitted.map(|(_, at)| at)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        Some(schedule.due(last_run, self.since, now))
    }

    fn mark_submitted(&self, schedule: &Schedule, at: OffsetDateTime, job: String) {
        self.submitted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(schedule.name.clone(), (job, at));
    }

    /// Submits a run of schedule `name` (on behalf of `by`, else the schedule itself).
    pub async fn submit(&self, name: &str, by: Option<&str>) -> Result<JobView, ApiError> {
        let schedule = self
            .schedules
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| ApiError::not_found(format!("no schedule named '{name}'")))?;
        let runtime = self.jobs.runtime();
        let (directory, targets) = schedule.destinations(&runtime.config);
        let request = JobRequest {
            kind: Some(JobKind::Backup),
            directory,
            targets,
            recipients: schedule
                .recipients
                .as_ref()
                .map(|list| list.iter().map(ToString::to_string).collect()),
            ..JobRequest::default()
        };
        let requested_by = by.map_or_else(|| schedule.requested_by(), str::to_owned);
        let mut plan = Plan::resolve(runtime, &request, &requested_by).await?;
        if let Plan::Backup {
            verify_after,
            prune,
            ..
        } = &mut plan
        {
            *verify_after = schedule.verify_after;
            *prune = schedule.prune_rules();
        }
        let job = self.jobs.enqueue(request, &requested_by, plan);
        self.mark_submitted(schedule, OffsetDateTime::now_utc(), job.id.clone());
        Ok(job)
    }

    /// After a Master Key change: every `on_key_change` schedule runs now (no random delay).
    pub fn key_changed(self: &Arc<Self>, from: u64, to: u64) {
        for schedule in self.schedules.iter().filter(|s| s.on_key_change) {
            eprintln!(
                "sstore serve: the Master Key changed (generation {from} to {to}); schedule '{}' backs up now",
                schedule.name
            );
            let scheduler = self.clone();
            let name = schedule.name.clone();
            tokio::spawn(async move {
                if let Err(e) = scheduler.submit(&name, None).await {
                    eprintln!(
                        "sstore serve: schedule '{name}' could not start after the key change: {}",
                        e.message
                    );
                }
            });
        }
    }
}
