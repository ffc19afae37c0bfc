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
//! [`run`] strings the steps together for a new and for a resumed job; [`tracker`] journals
//! the job record at every change; everything the job reports goes out as events
//! ([`super::EventSink`]), and the job log is one observer of them.

mod fan_out;
mod lock;
mod pending;
mod run;
mod send;
mod settle;
mod stage;
mod tracker;

use std::path::PathBuf;

pub use send::Destination;
pub(crate) use stage::WorkFile;

use super::journal::{JobJournal, JobRecord, JobState};
use super::retry::RetryPolicy;
use super::{
    BackupDirectory, BackupError, BackupKeys, EventSink, HistoryEntry, JobLock, Manifest,
    StopSignal, StoreTree,
};
use crate::format::{Compression, DEFAULT_CHUNK_SIZE};
use crate::kdf::KdfParams;
use crate::secret::Passphrase;
use pending::find_pending;
use run::JobRun;

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
    /// Lets a front end cancel the job, or stop it to be resumed later.
    pub stop: StopSignal,
    /// Who asked, as recorded in the journal and the history (an operator, `schedule:NAME`);
    /// `None`: this process's `user@host`.
    pub requested_by: Option<String>,
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
        stop: StopSignal::default(),
        requested_by: None,
    };
    let keys = BackupKeys::passphrase(passphrase.clone());
    let report = run_job(&job, Some(&keys), options).await?;
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
/// `resume_only`) takes and sends a new backup written with `keys`. Errors are returned only
/// when nothing could be attempted (the item is unknown; no keys, or keys that may not write
/// this store's backup; the staging folder is locked, unusable or too small); a failed or
/// partial job is a [`JobOutcome`] with its error.
pub async fn run_job(
    job: &BackupJob,
    keys: Option<&BackupKeys>,
    options: &BackupOptions,
) -> Result<BackupReport, BackupError> {
    let item = check_item(options.item.as_deref())?;
    let new_backup = match (job.resume_only, keys) {
        (true, _) => None,
        (false, Some(keys)) => Some(keys),
        (false, None) => return Err(BackupError::PassphraseNeeded),
    };
    if let Some(keys) = new_backup {
        keys.check(&job.store_path)?;
    }
    let lock = JobLock::acquire(&job.staging, "backup")?;
    if new_backup.is_some() {
        super::preflight::check_staging_space(&job.staging, &job.store_path, job.force).await?;
    }
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
        Some(keys) => Some(JobRun::new_backup(job, &item, keys, options).await),
        None => None,
    };
    drop(lock);
    Ok(BackupReport { resumed, new })
}

/// What can be backed up (`sstore backup --show-tree`).
pub fn show_tree(store_path: &std::path::Path) -> Result<StoreTree, BackupError> {
    StoreTree::read(store_path)
}
