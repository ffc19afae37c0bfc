//! One job as it runs ([`JobRun`]): a new backup (lock and number, stage, fan out, settle)
//! or an interrupted one resumed (lock, fan out, settle). Both call the same step methods, so
//! they cannot drift apart.

use std::sync::Arc;
use std::time::Instant;

use super::super::journal::{self, CopyRecord, CopyState, JOURNAL_FORMAT, JobRecord, JobState};
use super::super::{
    BackupError, BackupKeys, EventSink, HistoryEntry, JobEvent, JobKind, JobLog, Manifest,
};
use super::fan_out::{CopyOutcome, fan_out};
use super::lock::{self, LockedDestinations, Resuming, lock_destinations};
use super::pending::{PendingJob, STAGED_RECORD};
use super::settle::{Settling, settle};
use super::stage::{StagedBackup, stage_backup};
use super::tracker::Tracker;
use super::{BackupJob, BackupOptions, Destination, JobOutcome};

/// One job as it runs: its record, its log, and where it reports.
pub(super) struct JobRun<'a> {
    job: &'a BackupJob,
    tracker: Arc<Tracker>,
    events: EventSink,
    log: JobLog,
    clock: Instant,
}

impl<'a> JobRun<'a> {
    fn start(job: &'a BackupJob, record: JobRecord, log: JobLog) -> Self {
        let events = log.attach(&job.events);
        let tracker = Arc::new(Tracker::new(record, job.journal.clone(), events.clone()));
        Self {
            job,
            tracker,
            events,
            log,
            clock: Instant::now(),
        }
    }

    /// A new backup: lock and number, stage, fan out, settle.
    pub(super) async fn new_backup(
        job: &'a BackupJob,
        item: &str,
        keys: &BackupKeys,
        options: &BackupOptions,
    ) -> JobOutcome {
        let run = Self::start(job, new_record(job, item), JobLog::new());
        run.tracker.update(|_| {});
        let id = run.tracker.snapshot().id;
        run.events.info(format!(
            "backup {id} of {item} from {} started; destinations: {}",
            job.store_path.display(),
            job.destinations
                .iter()
                .map(|d| format!("{} ({})", d.name, d.dir.location()))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let locked = run.lock(&job.destinations, &id, None).await;
        let folder = super::super::directory::folder_name(locked.next_folder);
        run.tracker.update(|r| r.folder = folder.clone());
        run.announce(
            &job.destinations
                .iter()
                .map(|d| d.name.clone())
                .collect::<Vec<_>>(),
            false,
        );
        run.fail_unlocked(&locked.failed);
        run.tracker.set_state(JobState::Staging);
        let mut entry = bare_entry(&run.tracker.snapshot());
        let first_failure = locked.failed.into_iter().next().map(|(_, e)| e);
        if locked.ready.is_empty() {
            let error = first_failure.unwrap_or(BackupError::NoDestination);
            return run.settle(None, entry, Vec::new(), Some(error)).await;
        }
        // Asked to stop before anything was staged: nothing to resume, the job ends here.
        if let Some((_, by)) = job.stop.reason() {
            let outcomes = run.fail_all(locked.ready, &format!("stopped by {by} before staging"));
            return run.settle(None, entry, outcomes, None).await;
        }

        let staged_dir = job.staging.join(&id);
        let staged = match stage_backup(
            &job.store_path,
            &staged_dir,
            &entry,
            keys,
            options,
            &run.events,
        )
        .await
        {
            Ok(staged) => Arc::new(staged),
            Err(err) => {
                run.events
                    .error(format!("backup failed while staging: {err}"));
                let _ = std::fs::remove_dir_all(&staged_dir);
                let message = err.to_string();
                entry.failure_message = Some(message.clone());
                let outcomes = run.fail_all(locked.ready, &message);
                return run.settle(None, entry, outcomes, Some(err)).await;
            }
        };
        run.tracker
            .keep_beside_staged_copy(staged_dir.join(STAGED_RECORD));
        fill_entry(&mut entry, &staged.manifest);
        run.tracker.update(|r| {
            r.backup_size = Some(staged.manifest.backup_size);
            r.key_generation = Some(staged.manifest.master_key_generation);
        });
        let (outcomes, error) = run.fan_out(locked.ready, staged.clone()).await;
        run.settle(Some(staged), entry, outcomes, first_failure.or(error))
            .await
    }

    /// An interrupted job: its staged copy goes to every destination of this run that does
    /// not have it yet (lock, fan out, settle).
    pub(super) async fn resume(job: &'a BackupJob, pending: PendingJob) -> JobOutcome {
        let PendingJob { dir, mut record } = pending;
        let log = JobLog::new();
        if let Ok(text) = std::fs::read_to_string(dir.join(super::super::LOG_FILE)) {
            log.continue_from(&text);
        }
        let interrupted_in = record.state;
        record.resumed += 1;
        record.pid = std::process::id();
        record.host = journal::host_name();
        record.staging = dir.clone();
        // Destinations of this run that the record does not know are left to the new backup.
        for copy in &mut record.copies {
            if copy.state != CopyState::Succeeded
                && !job
                    .destinations
                    .iter()
                    .any(|d| d.dir.location() == copy.location)
            {
                copy.state = CopyState::Failed;
                copy.message = Some("not a destination of the run that resumed this job".into());
            }
        }
        let run = Self::start(job, record.clone(), log);
        run.tracker.keep_beside_staged_copy(dir.join(STAGED_RECORD));
        run.events.info(format!(
            "resuming backup {} ({}), interrupted in state {interrupted_in}, from {}",
            record.id,
            record.folder,
            dir.display()
        ));
        run.tracker.set_state(JobState::Transferring);
        run.announce(
            &record
                .copies
                .iter()
                .map(|c| c.name.clone())
                .collect::<Vec<_>>(),
            true,
        );
        let mut entry = bare_entry(&record);
        let staged = match StagedBackup::load(dir.clone()) {
            Ok(staged) => Arc::new(staged),
            Err(err) => {
                let _ = std::fs::remove_dir_all(&dir);
                return run.settle(None, entry, Vec::new(), Some(err)).await;
            }
        };
        fill_entry(&mut entry, &staged.manifest);
        // This run's destinations that the job has not reached yet, under the job's names.
        let unfinished: Vec<Destination> = record
            .unfinished_copies()
            .filter_map(|copy| {
                job.destinations
                    .iter()
                    .find(|d| d.dir.location() == copy.location)
                    .map(|d| Destination {
                        name: copy.name.clone(),
                        ..d.clone()
                    })
            })
            .collect();
        let resuming = Resuming {
            id: &record.id,
            folder: &record.folder,
        };
        let locked = run.lock(&unfinished, &record.id, Some(resuming)).await;
        for ready in locked.ready.iter().filter(|r| r.folder != record.folder) {
            let folder = ready.folder.clone();
            run.tracker.update(|r| {
                if let Some(copy) = r.copy_mut(&ready.dest.name) {
                    copy.folder = Some(folder);
                }
            });
        }
        run.fail_unlocked(&locked.failed);
        let first_failure = locked.failed.into_iter().next().map(|(_, e)| e);
        let (outcomes, error) = run.fan_out(locked.ready, staged.clone()).await;
        run.settle(Some(staged), entry, outcomes, first_failure.or(error))
            .await
    }

    /// Locks `dests` (step 2), with the same retries for a new and a resumed job.
    async fn lock(
        &self,
        dests: &[Destination],
        job_id: &str,
        resuming: Option<Resuming<'_>>,
    ) -> LockedDestinations {
        lock_destinations(
            dests,
            job_id,
            resuming,
            &self.job.transfer.retry,
            &self.events,
        )
        .await
    }

    /// A destination that could not be locked fails its copy (reported once the job has
    /// announced itself).
    fn fail_unlocked(&self, failed: &[(String, BackupError)]) {
        for (name, err) in failed {
            self.tracker
                .set_copy(name, CopyState::Failed, Some(err.to_string()));
            self.events.emit(JobEvent::TargetDone {
                target: name.clone(),
                ok: false,
                message: Some(err.to_string()),
            });
        }
    }

    /// Every locked destination's copy fails with `message` (nothing was sent).
    fn fail_all(&self, ready: Vec<lock::Locked>, message: &str) -> Vec<CopyOutcome> {
        ready
            .into_iter()
            .map(|locked| {
                self.tracker.set_copy(
                    &locked.dest.name,
                    CopyState::Failed,
                    Some(message.to_owned()),
                );
                CopyOutcome {
                    locked,
                    result: Err(message.to_owned()),
                }
            })
            .collect()
    }

    fn announce(&self, destinations: &[String], resumed: bool) {
        let record = self.tracker.snapshot();
        self.events.emit(JobEvent::Started {
            job_id: record.id,
            folder: record.folder,
            destinations: destinations.to_vec(),
            resumed,
        });
    }

    async fn fan_out(
        &self,
        ready: Vec<lock::Locked>,
        staged: Arc<StagedBackup>,
    ) -> (Vec<CopyOutcome>, Option<BackupError>) {
        fan_out(
            ready,
            staged,
            &self.job.transfer,
            &self.tracker,
            &self.events,
            &self.log,
            &self.job.stop,
        )
        .await
    }

    async fn settle(
        &self,
        staged: Option<Arc<StagedBackup>>,
        entry: HistoryEntry,
        outcomes: Vec<CopyOutcome>,
        error: Option<BackupError>,
    ) -> JobOutcome {
        let settling = Settling {
            tracker: &self.tracker,
            events: &self.events,
            log: &self.log,
            transfer: &self.job.transfer,
            clock: self.clock,
            stop: &self.job.stop,
        };
        settle(settling, staged, entry, outcomes, error).await
    }
}

/// The record a new job starts with.
fn new_record(job: &BackupJob, item: &str) -> JobRecord {
    let id = crate::random::hex_id::<16>();
    JobRecord {
        format: JOURNAL_FORMAT,
        staging: job.staging.join(&id),
        id,
        state: JobState::Queued,
        item: item.to_owned(),
        folder: String::new(),
        requested_by: job
            .requested_by
            .clone()
            .unwrap_or_else(super::super::requested_by),
        host: journal::host_name(),
        pid: std::process::id(),
        started: super::super::now_rfc3339(),
        finished: String::new(),
        backup_size: None,
        key_generation: None,
        rate_mib_s: None,
        warnings: 0,
        errors: 0,
        failure_message: None,
        resumed: 0,
        copies: job
            .destinations
            .iter()
            .map(|d| CopyRecord {
                name: d.name.clone(),
                location: d.dir.location(),
                state: CopyState::Pending,
                bytes_sent: 0,
                attempts: 0,
                message: None,
                folder: None,
            })
            .collect(),
    }
}

fn fill_entry(entry: &mut HistoryEntry, manifest: &Manifest) {
    entry.status = super::super::JobStatus::Succeeded;
    entry.backup_size = Some(manifest.backup_size);
    entry.plaintext_size = Some(manifest.plaintext_size);
    entry.key_generation = Some(manifest.master_key_generation);
    entry.key_slots = manifest.key_slots.clone();
}

fn bare_entry(record: &JobRecord) -> HistoryEntry {
    HistoryEntry {
        requested_by: record.requested_by.clone(),
        started: record.started.clone(),
        ..HistoryEntry::begin(
            JobKind::Backup,
            record.id.clone(),
            record.item.clone(),
            record.folder.clone(),
        )
    }
}
