//! The backup job. [`run_job`] locks the staging folder, finishes an interrupted job found
//! there, then takes a new backup. New and resumed jobs go through the same steps, one file
//! each:
//!
//! 1. [`pending`]: find pending work (a staged backup an earlier run did not finish);
//! 2. [`lock`]: lock every destination, and number the new backup's folder;
//! 3. [`stage`]: snapshot, encrypt and read back into the staging folder (new jobs only);
//! 4. [`fan_out`]: send the staged copy to every destination ([`send`] does one);
//! 5. [`settle`]: list it on each destination that verified it, decide the final state.
//!
//! [`tracker`] journals the job record at every change; everything the job reports goes out
//! as events ([`super::EventSink`]), and the job log is one observer of them.

mod fan_out;
mod lock;
mod pending;
mod send;
mod settle;
mod stage;
mod tracker;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

pub use send::Destination;

use super::journal::{
    self, CopyRecord, CopyState, JOURNAL_FORMAT, JobJournal, JobRecord, JobState,
};
use super::retry::RetryPolicy;
use super::{
    BackupDirectory, BackupError, BackupKey, EventSink, HistoryEntry, JobEvent, JobKind, JobLock,
    JobLog, Manifest, StoreTree,
};
use crate::format::{Compression, DEFAULT_CHUNK_SIZE};
use crate::kdf::KdfParams;
use crate::secret::Passphrase;
use fan_out::{CopyOutcome, fan_out};
use lock::{LockedDestinations, lock_destinations};
use pending::{PendingJob, STAGED_RECORD, find_pending};
use settle::{Settling, settle};
use stage::{StagedBackup, stage_backup};
use tracker::Tracker;

/// The item that `--item` selects: the store together with its Master Key.
pub const ITEM_NAME: &str = "SecureStore";

#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// Must name [`ITEM_NAME`] when given.
    pub item: Option<String>,
    pub kdf: KdfParams,
    pub compression: Compression,
    pub chunk_size: u32,
}

impl Default for BackupOptions {
    fn default() -> Self {
        Self {
            item: None,
            kdf: KdfParams::RECOMMENDED,
            compression: Compression::Zstd,
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

/// How the staged backup reaches the destinations.
#[derive(Debug, Clone)]
pub struct TransferOptions {
    /// How many destinations receive the backup at the same time.
    pub concurrency: usize,
    pub retry: RetryPolicy,
    /// Keep the staged copy after every destination has verified it.
    pub keep_local: bool,
    /// A progress line in the job log every this many percent (0: none).
    pub percentage: u8,
}

impl Default for TransferOptions {
    fn default() -> Self {
        Self {
            concurrency: 4,
            retry: RetryPolicy::default(),
            keep_local: false,
            percentage: 5,
        }
    }
}

/// Everything a backup job needs besides the passphrase and the stream options.
#[derive(Debug, Clone)]
pub struct BackupJob {
    pub store_path: PathBuf,
    /// The local staging folder (locked for the whole job).
    pub staging: PathBuf,
    /// Where the backup goes; the first is the `--directory`.
    pub destinations: Vec<Destination>,
    /// Where job records go (`sstore history --jobs`), if anywhere.
    pub journal: Option<JobJournal>,
    pub transfer: TransferOptions,
    /// Where the job reports what it does (the job log is added to these observers).
    pub events: EventSink,
    /// Only finish an interrupted job; take no new backup.
    pub resume_only: bool,
    /// Stage even when the staging disk looks too small.
    pub force: bool,
}

/// The outcome of one job (a new one, or a resumed one).
#[derive(Debug)]
pub struct JobOutcome {
    pub record: JobRecord,
    pub manifest: Option<Manifest>,
    /// The history entry as recorded on the destinations that have the backup.
    pub entry: HistoryEntry,
    /// The first error, for the exit code and the message, when the job did not succeed.
    pub error: Option<BackupError>,
}

impl JobOutcome {
    pub fn succeeded(&self) -> bool {
        self.record.state == JobState::Succeeded
    }
}

/// What a run of `sstore backup` did.
#[derive(Debug)]
pub struct BackupReport {
    /// An interrupted job finished first.
    pub resumed: Option<JobOutcome>,
    /// The new backup (absent with `resume_only`).
    pub new: Option<JobOutcome>,
}

/// A backup that reached every destination.
#[derive(Debug, Clone)]
pub struct PublishedBackup {
    pub entry: HistoryEntry,
    pub manifest: Manifest,
    pub record: JobRecord,
}

fn check_item(item: Option<&str>) -> Result<String, BackupError> {
    match item {
        None => Ok(ITEM_NAME.to_owned()),
        Some(name) if name.eq_ignore_ascii_case(ITEM_NAME) => Ok(ITEM_NAME.to_owned()),
        Some(name) => Err(BackupError::UnknownItem {
            item: name.to_owned(),
            available: vec![ITEM_NAME.to_owned()],
        }),
    }
}

/// Backs up the store at `store_path` into one backup directory (staging in `dir.staging()`),
/// failing unless the backup is published and listed there.
pub async fn run_backup(
    store_path: &std::path::Path,
    dir: &BackupDirectory,
    passphrase: &Passphrase,
    options: &BackupOptions,
    events: &EventSink,
) -> Result<PublishedBackup, BackupError> {
    let job = BackupJob {
        store_path: store_path.to_owned(),
        staging: dir.staging().to_owned(),
        destinations: vec![Destination {
            name: dir.location(),
            dir: dir.clone(),
            local: true,
        }],
        journal: None,
        transfer: TransferOptions::default(),
        events: events.clone(),
        resume_only: false,
        force: false,
    };
    let key = BackupKey {
        passphrase: passphrase.clone(),
        is_store_passphrase: false,
    };
    let report = run_job(&job, Some(&key), options).await?;
    let Some(mut outcome) = report.new else {
        return Err(BackupError::NothingToResume {
            staging: job.staging,
        });
    };
    match (outcome.error.take(), outcome.manifest) {
        (Some(err), _) => Err(err),
        (None, Some(manifest)) => Ok(PublishedBackup {
            entry: outcome.entry,
            manifest,
            record: outcome.record,
        }),
        (None, None) => Err(BackupError::NotEveryDestination {
            id: outcome.record.id,
            failed: Vec::new(),
        }),
    }
}

/// Runs a backup job: finishes an interrupted one found in the staging folder, then (unless
/// `resume_only`) takes and sends a new backup written with `key`. Errors are returned only
/// when nothing could be attempted (the item is unknown; no key, or a key that may not write
/// this store's backup; the staging folder is locked, unusable or too small); a failed or
/// partial job is a [`JobOutcome`] with its error.
pub async fn run_job(
    job: &BackupJob,
    key: Option<&BackupKey>,
    options: &BackupOptions,
) -> Result<BackupReport, BackupError> {
    let item = check_item(options.item.as_deref())?;
    let new_backup = match (job.resume_only, key) {
        (true, _) => None,
        (false, Some(key)) => Some(&key.passphrase),
        (false, None) => return Err(BackupError::PassphraseNeeded),
    };
    if let (Some(key), false) = (key, job.resume_only) {
        key.check(&job.store_path)?;
        super::preflight::check_staging_space(&job.staging, &job.store_path, job.force).await?;
    }
    let lock = JobLock::acquire(&job.staging, "backup")?;
    let leftovers = lock.remove_leftovers();
    if leftovers > 0 {
        job.events.warn(format!(
            "removed {leftovers} work files left in {} by an interrupted job",
            job.staging.display()
        ));
    }
    let resumed = match find_pending(&job.staging, &job.events) {
        Some(pending) => Some(JobRun::resume(job, pending).await),
        None if job.resume_only => {
            return Err(BackupError::NothingToResume {
                staging: job.staging.clone(),
            });
        }
        None => None,
    };
    let new = match new_backup {
        Some(passphrase) => Some(JobRun::new_backup(job, &item, passphrase, options).await),
        None => None,
    };
    drop(lock);
    Ok(BackupReport { resumed, new })
}

/// One job as it runs: its record, its log, and where it reports.
struct JobRun<'a> {
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
    async fn new_backup(
        job: &'a BackupJob,
        item: &str,
        passphrase: &Passphrase,
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
        let folder = super::directory::folder_name(locked.next_folder);
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

        let staged_dir = job.staging.join(&id);
        let staged = match stage_backup(
            &job.store_path,
            &staged_dir,
            &entry,
            passphrase,
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
                let outcomes = locked
                    .ready
                    .into_iter()
                    .map(|locked| {
                        run.tracker.set_copy(
                            &locked.dest.name,
                            CopyState::Failed,
                            Some(message.clone()),
                        );
                        CopyOutcome {
                            locked,
                            result: Err(message.clone()),
                        }
                    })
                    .collect();
                return run.settle(None, entry, outcomes, Some(err)).await;
            }
        };
        run.tracker
            .keep_beside_staged_copy(staged_dir.join(STAGED_RECORD));
        fill_entry(&mut entry, &staged.manifest);
        run.tracker
            .update(|r| r.backup_size = Some(staged.manifest.backup_size));
        let (outcomes, error) = run.fan_out(locked.ready, staged.clone()).await;
        run.settle(Some(staged), entry, outcomes, first_failure.or(error))
            .await
    }

    /// An interrupted job: its staged copy goes to every destination of this run that does
    /// not have it yet (lock, fan out, settle).
    async fn resume(job: &'a BackupJob, pending: PendingJob) -> JobOutcome {
        let PendingJob { dir, mut record } = pending;
        let log = JobLog::new();
        if let Ok(text) = std::fs::read_to_string(dir.join(super::LOG_FILE)) {
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
        let staged = match StagedBackup::load(dir.clone(), record.folder.clone()) {
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
        let locked = run.lock(&unfinished, &record.id, Some(&record.id)).await;
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
        resuming: Option<&str>,
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
        requested_by: super::requested_by(),
        host: journal::host_name(),
        pid: std::process::id(),
        started: super::now_rfc3339(),
        finished: String::new(),
        backup_size: None,
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
            })
            .collect(),
    }
}

fn fill_entry(entry: &mut HistoryEntry, manifest: &Manifest) {
    entry.status = super::JobStatus::Succeeded;
    entry.backup_size = Some(manifest.backup_size);
    entry.plaintext_size = Some(manifest.plaintext_size);
    entry.key_generation = Some(manifest.master_key_generation);
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

/// What can be backed up (`sstore backup --show-tree`).
pub fn show_tree(store_path: &std::path::Path) -> Result<StoreTree, BackupError> {
    StoreTree::read(store_path)
}
