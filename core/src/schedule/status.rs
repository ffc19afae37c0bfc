//! What the job journal says about each schedule: its last run, last outcome, last success,
//! next run and staleness. Read from the config and the journal only, so `sstore schedules`
//! works with the service stopped, and the service's `GET /api/v1/schedules` shows the same.

use std::path::PathBuf;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Schedule, ScheduleError, Timezone, Trigger, schedules};
use crate::backup::{JobRecord, JobState};
use crate::config::Config;

/// One run of a schedule, from its journal record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScheduleRun {
    /// The job (backup) id.
    pub id: String,
    pub state: JobState,
    /// The state for people: `interrupted (transferring)` when its process is gone.
    pub shown_state: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub finished: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_message: Option<String>,
}

impl ScheduleRun {
    /// `None` for a record whose start time is not RFC 3339 (not one the engine wrote).
    fn of(job: &JobRecord) -> Option<Self> {
        Some(Self {
            id: job.id.clone(),
            state: job.state,
            shown_state: job.shown_state(),
            started: parse_time(&job.started)?,
            finished: parse_time(&job.finished),
            failure_message: job.failure_message.clone(),
        })
    }
}

/// One schedule as `sstore schedules` and `GET /api/v1/schedules` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScheduleStatus {
    pub name: String,
    /// `every 6h`, or `cron "0 2 * * *" (UTC)`.
    pub trigger: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<Timezone>,
    /// The backup directory (the schedule's, else the config's `[backup] directory`).
    pub directory: Option<String>,
    /// The targets (the schedule's, else the config's `[backup] targets`).
    pub targets: Vec<String>,
    pub on_key_change: bool,
    pub verify_after: bool,
    /// When the next run is due (before any random delay).
    #[serde(with = "time::serde::rfc3339")]
    pub next_run: OffsetDateTime,
    /// The next run is already due: a running service starts it now.
    pub due: bool,
    /// The newest run, finished or not.
    pub last_run: Option<ScheduleRun>,
    /// The state of the newest finished run.
    pub last_outcome: Option<JobState>,
    /// When the newest fully successful run finished.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_success: Option<OffsetDateTime>,
    /// With `alert_after`: why the schedule is stale (see [`Schedule::stale`]).
    pub stale: Option<String>,
}

/// Every schedule of a config, in config order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SchedulesStatus {
    pub schedules: Vec<ScheduleStatus>,
    /// Journal records that could not be read (skipped).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreadable_records: Vec<PathBuf>,
}

/// The status of every schedule in `config`, from its job journal, at `now` (to the second,
/// like the journal's times).
pub fn read_status(config: &Config, now: OffsetDateTime) -> Result<SchedulesStatus, ScheduleError> {
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let schedules = schedules(config)?;
    if schedules.is_empty() {
        return Ok(SchedulesStatus::default());
    }
    let (jobs, unreadable_records) = config.journal().list().map_err(ScheduleError::Journal)?;
    let schedules = schedules
        .iter()
        .map(|s| {
            let (directory, targets) = s.destinations(config);
            ScheduleStatus::new(s, directory, targets, &jobs, now)
        })
        .collect();
    Ok(SchedulesStatus {
        schedules,
        unreadable_records,
    })
}

fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

impl Schedule {
    /// This schedule's journal records, oldest first (`jobs` as [`crate::backup::JobJournal::list`]
    /// returns them: oldest first).
    pub fn runs<'a>(
        &self,
        jobs: &'a [JobRecord],
    ) -> impl DoubleEndedIterator<Item = &'a JobRecord> {
        let requested_by = self.requested_by();
        jobs.iter().filter(move |j| j.requested_by == requested_by)
    }

    /// When this schedule's newest run started (what [`Schedule::due`] counts from).
    pub fn last_run(&self, jobs: &[JobRecord]) -> Option<OffsetDateTime> {
        self.runs(jobs).rev().find_map(|j| parse_time(&j.started))
    }

    /// When this schedule's newest fully successful run finished (what [`Schedule::stale`]
    /// looks at).
    pub fn last_success(&self, jobs: &[JobRecord]) -> Option<OffsetDateTime> {
        self.runs(jobs)
            .rev()
            .filter(|j| j.state == JobState::Succeeded)
            .find_map(|j| parse_time(&j.finished).or_else(|| parse_time(&j.started)))
    }
}

impl ScheduleStatus {
    /// `schedule`'s status from the journal records `jobs` (oldest first), with its resolved
    /// destinations, at `now`.
    pub fn new(
        schedule: &Schedule,
        directory: Option<String>,
        targets: Vec<String>,
        jobs: &[JobRecord],
        now: OffsetDateTime,
    ) -> Self {
        let last_run = schedule.runs(jobs).rev().find_map(ScheduleRun::of);
        let last_finished = schedule.runs(jobs).rev().find(|j| j.state.is_finished());
        let last_success = schedule.last_success(jobs);
        let next_run = schedule.next_run(schedule.last_run(jobs), now);
        let (every, cron, timezone) = match &schedule.trigger {
            Trigger::Every { text, .. } => (Some(text.clone()), None, None),
            Trigger::Cron(c) => (None, Some(c.expression().to_owned()), Some(c.timezone())),
        };
        Self {
            name: schedule.name.clone(),
            trigger: schedule.trigger.to_string(),
            every,
            cron,
            timezone,
            directory,
            targets,
            on_key_change: schedule.on_key_change,
            verify_after: schedule.verify_after,
            next_run,
            due: next_run <= now,
            last_run,
            last_outcome: last_finished.map(|j| j.state),
            last_success,
            stale: schedule.stale(last_success, now),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use time::macros::datetime;

    use super::*;
    use crate::backup::journal::{JOURNAL_FORMAT, host_name};
    use crate::schedule::ScheduleConfig;

    fn job(id: &str, by: &str, state: JobState, started: &str, finished: &str) -> JobRecord {
        JobRecord {
            format: JOURNAL_FORMAT,
            id: id.into(),
            state,
            item: "SecureStore".into(),
            folder: "sstorebr0000".into(),
            requested_by: by.into(),
            host: host_name(),
            pid: u32::MAX,
            started: started.into(),
            finished: finished.into(),
            staging: PathBuf::from("/nowhere"),
            backup_size: None,
            key_generation: None,
            rate_mib_s: None,
            warnings: 0,
            errors: 0,
            failure_message: (state == JobState::Failed).then(|| "the NAS is offline".into()),
            resumed: 0,
            copies: Vec::new(),
        }
    }

    fn nightly() -> Schedule {
        let config: ScheduleConfig = toml::from_str(
            "name = 'nightly'\ncron = '0 2 * * *'\ntimezone = 'UTC'\nalert_after = '26h'\n",
        )
        .unwrap();
        Schedule::parse(0, &config).unwrap()
    }

    #[test]
    fn the_newest_record_of_the_schedule_is_its_last_run() {
        let s = nightly();
        let by = "schedule:nightly";
        let jobs = vec![
            job(
                "a1",
                by,
                JobState::Succeeded,
                "2025-03-01T02:00:03Z",
                "2025-03-01T02:04:00Z",
            ),
            job(
                "x9",
                "alice@host",
                JobState::Succeeded,
                "2025-03-02T01:00:00Z",
                "2025-03-02T01:01:00Z",
            ),
            job(
                "b2",
                by,
                JobState::Failed,
                "2025-03-02T02:00:05Z",
                "2025-03-02T02:01:00Z",
            ),
            job(
                "c3",
                "schedule:other",
                JobState::Succeeded,
                "2025-03-02T03:00:00Z",
                "2025-03-02T03:01:00Z",
            ),
        ];
        let now = datetime!(2025-03-02 02:30 UTC);
        let st = ScheduleStatus::new(&s, Some("/srv/b".into()), vec!["nas".into()], &jobs, now);
        let last = st.last_run.as_ref().unwrap();
        assert_eq!(last.id, "b2");
        assert_eq!(last.state, JobState::Failed);
        assert_eq!(last.started, datetime!(2025-03-02 02:00:05 UTC));
        assert_eq!(last.finished, Some(datetime!(2025-03-02 02:01 UTC)));
        assert_eq!(last.failure_message.as_deref(), Some("the NAS is offline"));
        assert_eq!(st.last_outcome, Some(JobState::Failed));
        assert_eq!(st.last_success, Some(datetime!(2025-03-01 02:04 UTC)));
        assert_eq!(st.next_run, datetime!(2025-03-03 02:00 UTC));
        assert!(!st.due);
        assert_eq!(st.trigger, "cron \"0 2 * * *\" (UTC)");
        assert_eq!(st.cron.as_deref(), Some("0 2 * * *"));
        assert_eq!(st.timezone, Some(Timezone::Utc));
        assert_eq!(st.every, None);
        assert_eq!(st.stale, None);
        assert_eq!(s.last_run(&jobs), Some(datetime!(2025-03-02 02:00:05 UTC)));

        // A day and a half later with no new run: due (missed), and stale.
        let later = datetime!(2025-03-03 09:00 UTC);
        let st = ScheduleStatus::new(&s, None, Vec::new(), &jobs, later);
        assert!(st.due);
        assert!(
            st.stale
                .as_deref()
                .unwrap()
                .contains("2025-03-01 02:04:00 UTC")
        );

        // JSON: RFC 3339 times and kebab-case states, as the journal writes them.
        let json = serde_json::to_value(&st).unwrap();
        assert_eq!(json["next_run"], "2025-03-03T02:00:00Z");
        assert_eq!(json["last_success"], "2025-03-01T02:04:00Z");
        assert_eq!(json["last_outcome"], "failed");
        assert_eq!(json["last_run"]["id"], "b2");
        assert_eq!(json["last_run"]["started"], "2025-03-02T02:00:05Z");
        assert_eq!(json["timezone"], "UTC");
    }

    #[test]
    fn an_unfinished_run_is_the_last_run_but_not_the_last_outcome() {
        let s = nightly();
        let by = "schedule:nightly";
        let jobs = vec![
            job(
                "a1",
                by,
                JobState::PartiallySucceeded,
                "2025-03-01T02:00:03Z",
                "2025-03-01T02:04:00Z",
            ),
            job("b2", by, JobState::Transferring, "2025-03-02T02:00:05Z", ""),
        ];
        let now = datetime!(2025-03-02 02:30 UTC);
        let st = ScheduleStatus::new(&s, None, Vec::new(), &jobs, now);
        let last = st.last_run.as_ref().unwrap();
        assert_eq!(last.id, "b2");
        assert_eq!(last.finished, None);
        // pid u32::MAX is no process: its process is gone.
        assert_eq!(last.shown_state, "interrupted (transferring)");
        assert_eq!(st.last_outcome, Some(JobState::PartiallySucceeded));
        // Only a full success counts as a success.
        assert_eq!(st.last_success, None);
        assert!(
            st.stale
                .as_deref()
                .unwrap()
                .contains("no successful backup yet")
        );
        assert_eq!(st.next_run, datetime!(2025-03-03 02:00 UTC));
    }

    #[test]
    fn a_schedule_that_never_ran() {
        let config: ScheduleConfig = toml::from_str("name = 'often'\nevery = '6h'\n").unwrap();
        let s = Schedule::parse(0, &config).unwrap();
        let now = datetime!(2025-03-02 12:00 UTC);
        let st = ScheduleStatus::new(&s, None, Vec::new(), &[], now);
        assert_eq!(st.last_run, None);
        assert_eq!(st.last_outcome, None);
        assert_eq!(st.next_run, now);
        assert!(st.due);
        assert_eq!(st.stale, None);
        assert_eq!(st.every.as_deref(), Some("6h"));
        assert_eq!(st.trigger, "every 6h");
        let st = ScheduleStatus::new(&nightly(), None, Vec::new(), &[], now);
        assert_eq!(st.next_run, datetime!(2025-03-03 02:00 UTC));
        assert!(!st.due);
    }

    #[test]
    fn read_status_reads_the_config_and_its_journal() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[backup]\ndirectory = '/srv/b'\njobs = '{}'\n\
             [[schedule]]\nname = 'nightly'\ncron = '0 2 * * *'\ntimezone = 'utc'\n\
             [[schedule]]\nname = 'often'\nevery = '6h'\ntargets = ['nas']\n",
            dir.path().join("jobs").display()
        );
        let config = Config::parse(&text, &dir.path().join("config.toml")).unwrap();
        let journal = config.journal();
        journal
            .save(&job(
                "a1",
                "schedule:often",
                JobState::Succeeded,
                "2025-03-02T06:00:00Z",
                "2025-03-02T06:01:00Z",
            ))
            .unwrap();
        std::fs::write(journal.dir().join("broken.json"), "{").unwrap();
        let now = datetime!(2025-03-02 08:00 UTC);
        let status = read_status(&config, now).unwrap();
        assert_eq!(status.unreadable_records.len(), 1);
        let [nightly, often] = &status.schedules[..] else {
            panic!("{status:?}")
        };
        assert_eq!(nightly.name, "nightly");
        assert_eq!(nightly.last_run, None);
        assert_eq!(nightly.directory.as_deref(), Some("/srv/b"));
        assert_eq!(often.last_run.as_ref().unwrap().id, "a1");
        assert_eq!(often.targets, vec!["nas".to_string()]);
        assert_eq!(often.next_run, datetime!(2025-03-02 12:00 UTC));

        // No journal folder yet: no runs, no error.
        let text = "[backup]\njobs = 'missing'\n[[schedule]]\nname = 'x'\nevery = '1h'\n";
        let config = Config::parse(text, &dir.path().join("c2.toml")).unwrap();
        let status = read_status(&config, now).unwrap();
        assert_eq!(status.schedules[0].last_run, None);
    }
}
