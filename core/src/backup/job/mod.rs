//! The backup job, in one place: lock the staging folder, finish an interrupted job found
//! there, then snapshot and stage a new backup (encrypted, fsynced, read back) and send it to
//! every destination concurrently, each copy verified before it is listed in that destination's
//! history. The job's state is journaled from the start; the staged copy stays until every
//! destination has it, so a failed or killed transfer resumes on the next run.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::directory::{LOG_FILE, MANIFEST_FILE};
use super::events::{EventSink, JobEvent};
use super::journal::{
    self, CopyRecord, CopyState, JOURNAL_FORMAT, JobJournal, JobRecord, JobState,
};
use super::retry::{RetryPolicy, with_retry};
use super::stage::{skeleton_manifest, stage};
use super::target_lock::TargetLock;
use super::transfer::{CopyJob, Destination, StagedBackup, send_copy};
use super::{
    BackupDirectory, BackupError, HistoryEntry, JobKind, JobLock, JobLog, JobStatus, Manifest,
};
use crate::format::{Compression, DEFAULT_CHUNK_SIZE};
use crate::kdf::KdfParams;
use crate::secret::Passphrase;
use crate::store::{SecureStore, StoreSummary};
use crate::target::{self, PutMode};

/// The staged job's record, inside its staging subfolder.
const STAGED_RECORD: &str = "job.json";

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

/// What can be backed up (`sstore backup --show-tree`).
#[derive(Debug, Clone)]
pub struct StoreTree {
    pub store_path: PathBuf,
    pub summary: StoreSummary,
}

impl std::fmt::Display for StoreTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.summary;
        writeln!(
            f,
            "{ITEM_NAME}  (store {}, {})",
            s.store_id,
            self.store_path.display()
        )?;
        writeln!(
            f,
            "  MasterKey     generation {}, key id {} (always backed up with the store)",
            s.master_key.generation, s.master_key.key_id
        )?;
        write!(
            f,
            "  Applications  {} target applications, {} credential sets",
            s.applications, s.credential_sets
        )
    }
}

/// Describes what a backup of the store at `store_path` would hold.
pub fn show_tree(store_path: &Path) -> Result<StoreTree, BackupError> {
    let store = SecureStore::open(store_path)?;
    Ok(StoreTree {
        store_path: store_path.to_owned(),
        summary: store.summary()?,
    })
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
    pub events: EventSink,
    /// Only finish an interrupted job; take no new backup.
    pub resume_only: bool,
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

/// Backs up the store at `store_path` into one backup directory (staging in `dir.staging()`),
/// failing unless the backup is published and listed there.
pub async fn run_backup(
    store_path: &Path,
    dir: &BackupDirectory,
    passphrase: &Passphrase,
    options: &BackupOptions,
    log: &JobLog,
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
        events: EventSink::default(),
        resume_only: false,
    };
    let report = run_job(&job, Some(passphrase), options, log).await?;
    let mut outcome = report
        .new
        .ok_or_else(|| BackupError::Task("the job took no backup".into()))?;
    match (outcome.error.take(), outcome.manifest) {
        (Some(err), _) => Err(err),
        (None, Some(manifest)) => Ok(PublishedBackup {
            entry: outcome.entry,
            manifest,
            record: outcome.record,
        }),
        (None, None) => Err(BackupError::Task("the job staged no backup".into())),
    }
}

/// Runs a backup job: finishes an interrupted one found in the staging folder, then (unless
/// `resume_only`) takes and sends a new backup. Errors are returned only when nothing could be
/// attempted (the staging folder is locked or unusable); a failed or partial job is an
/// [`JobOutcome`] with its error.
pub async fn run_job(
    job: &BackupJob,
    passphrase: Option<&Passphrase>,
    options: &BackupOptions,
    log: &JobLog,
) -> Result<BackupReport, BackupError> {
    let item = check_item(options.item.as_deref())?;
    let lock = JobLock::acquire(&job.staging, "backup")?;
    let leftovers = lock.remove_leftovers();
    if leftovers > 0 {
        log.warn(format!(
            "removed {leftovers} work files left in {} by an interrupted job",
            job.staging.display()
        ));
    }
    let pending = pending_jobs(&job.staging, log);
    let resumed = match pending {
        Some((dir, record)) => Some(resume(job, dir, record, &log.fresh()).await),
        None if job.resume_only => {
            return Err(BackupError::NothingToResume {
                staging: job.staging.clone(),
            });
        }
        None => None,
    };
    let new = match (job.resume_only, passphrase) {
        (true, _) => None,
        (false, Some(passphrase)) => Some(run_new(job, &item, passphrase, options, log).await),
        (false, None) => {
            return Err(BackupError::Task(
                "a new backup needs the backup passphrase".into(),
            ));
        }
    };
    drop(lock);
    Ok(BackupReport { resumed, new })
}

/// The newest staged job that has not finished (older ones are discarded: the newer job
/// supersedes them); staging subfolders without a record (a job killed while staging) are
/// removed.
fn pending_jobs(staging: &Path, log: &JobLog) -> Option<(PathBuf, JobRecord)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(staging).ok()?.flatten() {
        let path = entry.path();
        if !entry.file_type().is_ok_and(|t| t.is_dir())
            || path.file_name().is_some_and(|n| n == "jobs")
        {
            continue;
        }
        match journal::read_record(&path.join(STAGED_RECORD)) {
            Ok(Some(record))
                if !record.state.is_finished()
                    || record
                        .copies
                        .iter()
                        .any(|c| c.state != CopyState::Succeeded) =>
            {
                found.push((path, record));
            }
            Ok(Some(_)) => {}
            _ => {
                if std::fs::remove_dir_all(&path).is_ok() {
                    log.warn(format!(
                        "removed {}: left by a job interrupted while staging",
                        path.display()
                    ));
                }
            }
        }
    }
    found.sort_by(|a, b| a.1.started.cmp(&b.1.started));
    let newest = found.pop();
    for (path, record) in found {
        if std::fs::remove_dir_all(&path).is_ok() {
            log.warn(format!(
                "discarded the staged copy of interrupted backup {} ({}): a newer interrupted backup supersedes it",
                record.id, record.folder
            ));
        }
    }
    newest
}

/// Shared, journaled state of a running job.
struct Tracker {
    record: Mutex<JobRecord>,
    journal: Option<JobJournal>,
    /// The staged record (present once staging is done).
    staged_record: Mutex<Option<PathBuf>>,
}

impl Tracker {
    fn new(record: JobRecord, journal: Option<JobJournal>) -> Self {
        Self {
            record: Mutex::new(record),
            journal,
            staged_record: Mutex::new(None),
        }
    }

    fn snapshot(&self) -> JobRecord {
        self.record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Changes the record and saves it (journal and staged copy). A failure to save is a
    /// warning: it never fails the backup itself.
    fn update(&self, log: &JobLog, change: impl FnOnce(&mut JobRecord)) {
        let record = {
            let mut record = self.record.lock().unwrap_or_else(|p| p.into_inner());
            change(&mut record);
            record.clone()
        };
        if let Some(journal) = &self.journal
            && let Err(e) = journal.save(&record)
        {
            log.warn(format!("cannot update the job journal: {e}"));
        }
        let staged = self
            .staged_record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(path) = staged
            && let Err(e) = journal::write_record(&path, &record)
        {
            log.warn(format!("cannot update the staged job record: {e}"));
        }
    }

    fn set_staged_record(&self, path: PathBuf) {
        *self.staged_record.lock().unwrap_or_else(|p| p.into_inner()) = Some(path);
    }
}

async fn run_new(
    job: &BackupJob,
    item: &str,
    passphrase: &Passphrase,
    options: &BackupOptions,
    log: &JobLog,
) -> JobOutcome {
    let clock = Instant::now();
    let id = crate::random::hex_id::<16>();
    let started = super::now_rfc3339();
    let requested_by = super::requested_by();
    let record = JobRecord {
        format: JOURNAL_FORMAT,
        id: id.clone(),
        state: JobState::Queued,
        item: item.to_owned(),
        folder: String::new(),
        requested_by: requested_by.clone(),
        host: journal::host_name(),
        pid: std::process::id(),
        started: started.clone(),
        finished: String::new(),
        staging: job.staging.join(&id),
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
    };
    let tracker = Arc::new(Tracker::new(record, job.journal.clone()));
    tracker.update(log, |_| {});
    log.info(format!(
        "backup {id} of {item} from {} started; destinations: {}",
        job.store_path.display(),
        job.destinations
            .iter()
            .map(|d| format!("{} ({})", d.name, d.dir.location()))
            .collect::<Vec<_>>()
            .join(", ")
    ));

    // Lock every destination and pick one folder name free on all of them.
    let mut failures: Vec<(String, BackupError)> = Vec::new();
    let mut ready: Vec<(Destination, TargetLock)> = Vec::new();
    let mut folder_number = None::<u32>;
    for dest in &job.destinations {
        match lock_and_number(dest, &id, None, &job.transfer.retry, log).await {
            Ok((lock, next)) => {
                folder_number = folder_number.max(Some(next));
                ready.push((dest.clone(), lock));
            }
            Err(err) => {
                log.error(format!("{}: {err}", dest.name));
                failures.push((dest.name.clone(), err));
            }
        }
    }
    let folder = super::directory::folder_name(folder_number.unwrap_or(0));
    for (name, err) in &failures {
        mark_failed(&tracker, log, name, err);
    }
    tracker.update(log, |r| {
        r.folder = folder.clone();
        r.state = JobState::Staging;
    });
    let mut entry = bare_entry(&tracker.snapshot());
    job.events.emit(JobEvent::Started {
        job_id: id.clone(),
        folder: folder.clone(),
        destinations: job.destinations.iter().map(|d| d.name.clone()).collect(),
        resumed: false,
    });
    job.events.emit(JobEvent::State {
        state: JobState::Staging.to_string(),
    });
    if ready.is_empty() {
        let err = failures
            .into_iter()
            .next()
            .map(|(_, e)| e)
            .unwrap_or_else(|| BackupError::Task("no destination".into()));
        return finish(job, &tracker, entry, None, Some(err), clock, log).await;
    }

    let staged_dir = job.staging.join(&id);
    let staged = match stage_backup(job, &staged_dir, &entry, passphrase, options, log).await {
        Ok(staged) => staged,
        Err(err) => {
            log.error(format!("backup failed while staging: {err}"));
            let _ = std::fs::remove_dir_all(&staged_dir);
            let message = err.to_string();
            for (dest, _) in &ready {
                tracker.update(log, |r| {
                    if let Some(c) = r.copy_mut(&dest.name) {
                        c.state = CopyState::Failed;
                        c.message = Some(message.clone());
                    }
                });
            }
            entry.failure_message = Some(message);
            record_failure_on(&ready, &mut entry, log).await;
            release_all(ready, log).await;
            return finish(job, &tracker, entry, None, Some(err), clock, log).await;
        }
    };
    tracker.set_staged_record(staged_dir.join(STAGED_RECORD));
    fill_entry(&mut entry, &staged.manifest);
    tracker.update(log, |r| {
        r.state = JobState::Transferring;
        r.backup_size = Some(staged.manifest.backup_size);
    });
    let manifest = staged.manifest.clone();
    let error = transfer_all(job, &tracker, Arc::new(staged), &entry, ready, log).await;
    let error = failures.into_iter().next().map(|(_, e)| e).or(error);
    finish(job, &tracker, entry, Some(manifest), error, clock, log).await
}

/// Locks a destination (with retries) and finds its next free folder number.
async fn lock_and_number(
    dest: &Destination,
    job_id: &str,
    resuming: Option<&str>,
    retry: &RetryPolicy,
    log: &JobLog,
) -> Result<(TargetLock, u32), BackupError> {
    let lock = with_retry(retry, &format!("{}: locking", dest.name), log, |_| {
        TargetLock::acquire(&dest.dir, job_id, resuming)
    })
    .await?;
    if let Some(old) = &lock.took_over {
        log.warn(format!(
            "{}: took over the lock of {old}, whose process is gone",
            dest.name
        ));
    }
    let number = async {
        let history = dest.dir.load_history().await?;
        let next = dest.dir.next_folder(&history).await?;
        Ok::<_, BackupError>(super::directory::folder_number(&next).unwrap_or(0))
    }
    .await;
    match number {
        Ok(n) => Ok((lock, n)),
        Err(e) => {
            let _ = lock.release().await;
            Err(e)
        }
    }
}

/// Stages the backup into `staged_dir`: the encrypted file, read back; its manifest; the
/// record a resumed run starts from.
async fn stage_backup(
    job: &BackupJob,
    staged_dir: &Path,
    entry: &HistoryEntry,
    passphrase: &Passphrase,
    options: &BackupOptions,
    log: &JobLog,
) -> Result<StagedBackup, BackupError> {
    crate::fsutil::create_private_dir_all(staged_dir).map_err(BackupError::io(staged_dir))?;
    let backup_path = staged_dir.join(super::BACKUP_FILE);
    let mut manifest =
        skeleton_manifest(&entry.id, &entry.item, &entry.started, &entry.requested_by);
    let (store_path, dir, passphrase, options, log2) = (
        job.store_path.clone(),
        staged_dir.to_owned(),
        passphrase.clone(),
        options.clone(),
        log.clone(),
    );
    let manifest = tokio::task::spawn_blocking(move || {
        stage(
            &store_path,
            &dir,
            &backup_path,
            &passphrase,
            &options,
            &mut manifest,
            &log2,
        )?;
        Ok::<_, BackupError>(manifest)
    })
    .await
    .map_err(|e| BackupError::Task(e.to_string()))??;
    let manifest_path = staged_dir.join(MANIFEST_FILE);
    let json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Task(e.to_string()))?;
    write_private(&manifest_path, &json)?;
    Ok(StagedBackup {
        dir: staged_dir.to_owned(),
        folder: entry.folder.clone(),
        manifest,
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    use std::io::Write;
    let mut file = crate::fsutil::create_private_file(path).map_err(BackupError::io(path))?;
    file.write_all(bytes).map_err(BackupError::io(path))?;
    file.sync_all().map_err(BackupError::io(path))
}

fn fill_entry(entry: &mut HistoryEntry, manifest: &Manifest) {
    entry.status = JobStatus::Succeeded;
    entry.backup_size = Some(manifest.backup_size);
    entry.plaintext_size = Some(manifest.plaintext_size);
    entry.key_generation = Some(manifest.master_key_generation);
}

fn mark_failed(tracker: &Tracker, log: &JobLog, name: &str, err: &BackupError) {
    let message = err.to_string();
    tracker.update(log, |r| {
        if let Some(c) = r.copy_mut(name) {
            c.state = CopyState::Failed;
            c.message = Some(message);
        }
    });
}

/// Sends the staged backup to every locked destination, at most `concurrency` at a time;
/// releases each lock. Returns the first error.
async fn transfer_all(
    job: &BackupJob,
    tracker: &Arc<Tracker>,
    staged: Arc<StagedBackup>,
    entry: &HistoryEntry,
    ready: Vec<(Destination, TargetLock)>,
    log: &JobLog,
) -> Option<BackupError> {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(job.transfer.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    job.events.emit(JobEvent::State {
        state: JobState::Transferring.to_string(),
    });
    for (dest, lock) in ready {
        let copy = CopyJob {
            staged: staged.clone(),
            entry: entry.clone(),
            retry: job.transfer.retry,
            log: log.clone(),
            events: job.events.clone(),
            percentage: job.transfer.percentage,
            attempts: Arc::new(AtomicU32::new(0)),
            bytes_sent: Arc::new(AtomicU64::new(0)),
        };
        let (semaphore, tracker, log) = (semaphore.clone(), tracker.clone(), log.clone());
        tasks.spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            tracker.update(&log, |r| {
                if let Some(c) = r.copy_mut(&dest.name) {
                    c.state = CopyState::Transferring;
                }
            });
            log.info(format!(
                "{}: sending to {}/{}",
                dest.name,
                dest.dir.location(),
                copy.staged.folder
            ));
            let result = send_copy(&dest, &copy).await;
            if let Err(e) = lock.release().await {
                log.warn(format!("{}: the lock could not be removed: {e}", dest.name));
            }
            let (attempts, sent) = (
                copy.attempts.load(Ordering::Relaxed),
                copy.bytes_sent.load(Ordering::Relaxed),
            );
            tracker.update(&log, |r| {
                if let Some(c) = r.copy_mut(&dest.name) {
                    c.attempts += attempts;
                    c.bytes_sent = sent;
                    match &result {
                        Ok(()) => {
                            c.state = CopyState::Succeeded;
                            c.message = None;
                        }
                        Err(e) => {
                            c.state = CopyState::Failed;
                            c.message = Some(e.to_string());
                        }
                    }
                }
            });
            copy.events.emit(JobEvent::TargetDone {
                target: dest.name.clone(),
                ok: result.is_ok(),
                message: result.as_ref().err().map(ToString::to_string),
            });
            match &result {
                Ok(()) => log.info(format!("{}: copy published and listed", dest.name)),
                Err(e) => {
                    log.error(format!("{}: copy failed: {e}", dest.name));
                    // Best effort: the log where the folder would be, and the failure listed.
                    let mut failed = copy.entry.clone();
                    failed.status = JobStatus::Failed;
                    failed.failure_message = Some(e.to_string());
                    failed.finished = super::now_rfc3339();
                    record_failure(&dest.dir, &failed, &log).await;
                }
            }
            result.err()
        });
    }
    let mut first = None;
    while let Some(joined) = tasks.join_next().await {
        let err = match joined {
            Ok(err) => err,
            Err(e) => Some(BackupError::Task(e.to_string())),
        };
        if first.is_none() {
            first = err;
        }
    }
    first
}

async fn record_failure(dir: &BackupDirectory, entry: &HistoryEntry, log: &JobLog) {
    if let Ok(key) = dir.object(&entry.folder, LOG_FILE) {
        let _ = target::put_bytes(
            dir.target(),
            &key,
            log.render().as_bytes(),
            PutMode::Overwrite,
        )
        .await;
    }
    let mut entry = entry.clone();
    entry.warnings = log.warnings();
    entry.errors = log.errors();
    let _ = dir.record(entry).await;
}

async fn record_failure_on(
    ready: &[(Destination, TargetLock)],
    entry: &mut HistoryEntry,
    log: &JobLog,
) {
    entry.status = JobStatus::Failed;
    entry.finished = super::now_rfc3339();
    for (dest, _) in ready {
        record_failure(&dest.dir, entry, log).await;
    }
}

async fn release_all(ready: Vec<(Destination, TargetLock)>, log: &JobLog) {
    for (dest, lock) in ready {
        if let Err(e) = lock.release().await {
            log.warn(format!("{}: the lock could not be removed: {e}", dest.name));
        }
    }
}

/// Settles the job: its final state, the summary on every destination that has the backup,
/// the staged copy removed when every destination verified it (unless kept).
async fn finish(
    job: &BackupJob,
    tracker: &Arc<Tracker>,
    mut entry: HistoryEntry,
    manifest: Option<Manifest>,
    error: Option<BackupError>,
    clock: Instant,
    log: &JobLog,
) -> JobOutcome {
    let record = tracker.snapshot();
    let ok: Vec<&CopyRecord> = record
        .copies
        .iter()
        .filter(|c| c.state == CopyState::Succeeded)
        .collect();
    let state = if manifest.is_some() && ok.len() == record.copies.len() {
        JobState::Succeeded
    } else if manifest.is_some() && !ok.is_empty() {
        JobState::PartiallySucceeded
    } else {
        JobState::Failed
    };
    let seconds = clock.elapsed().as_secs_f64();
    let sent: u64 = record.copies.iter().map(|c| c.bytes_sent).sum();
    let message = error.as_ref().map(ToString::to_string);
    match state {
        JobState::Succeeded => log.info(format!(
            "backup {} succeeded on every destination",
            record.id
        )),
        JobState::PartiallySucceeded => log.warn(format!(
            "backup {} partially succeeded: {} of {} destinations have it",
            record.id,
            ok.len(),
            record.copies.len()
        )),
        _ => log.error(format!("backup {} failed", record.id)),
    }
    tracker.update(log, |r| {
        r.state = state;
        r.finished = super::now_rfc3339();
        r.rate_mib_s = (seconds > 0.0 && sent > 0).then(|| sent as f64 / 1_048_576.0 / seconds);
        r.warnings = log.warnings();
        r.errors = log.errors();
        r.failure_message = message.clone();
    });
    let record = tracker.snapshot();

    // The other copies' outcome, on each destination that has the backup (best effort).
    if record.copies.len() > 1 && manifest.is_some() {
        entry.copies = record.copies.clone();
        entry.finished = record.finished.clone();
        for dest in &job.destinations {
            if record
                .copies
                .iter()
                .any(|c| c.name == dest.name && c.state == CopyState::Succeeded)
            {
                let mut listed = entry.clone();
                if let Ok(history) = dest.dir.load_history().await
                    && let Some(existing) = history.backup(&entry.id)
                {
                    listed.warnings = existing.warnings;
                    listed.errors = existing.errors;
                    listed.finished = existing.finished.clone();
                }
                if let Err(e) = dest.dir.record(listed).await {
                    log.warn(format!(
                        "{}: cannot add the job summary to the history: {e}",
                        dest.name
                    ));
                }
            }
        }
    }

    let staged_dir = record.staging.clone();
    if state == JobState::Succeeded && !job.transfer.keep_local {
        let _ = std::fs::remove_dir_all(&staged_dir);
    } else if state == JobState::Succeeded {
        let _ = std::fs::remove_file(staged_dir.join(STAGED_RECORD));
        let _ = std::fs::write(staged_dir.join(LOG_FILE), log.render());
        log.info(format!(
            "the staged copy is kept in {}",
            staged_dir.display()
        ));
    } else if manifest.is_some() {
        let _ = std::fs::write(staged_dir.join(LOG_FILE), log.render());
        log.warn(format!(
            "the staged copy stays in {} until every destination has it; the next `sstore backup` resumes the transfer",
            staged_dir.display()
        ));
    }
    job.events.emit(JobEvent::Summary {
        job_id: record.id.clone(),
        status: state.to_string(),
        folder: record.folder.clone(),
        bytes: record.backup_size.unwrap_or(0),
        seconds,
        succeeded: ok.iter().map(|c| c.name.clone()).collect(),
        failed: record
            .copies
            .iter()
            .filter(|c| c.state != CopyState::Succeeded)
            .map(|c| c.name.clone())
            .collect(),
    });
    entry.finished = record.finished.clone();
    if state != JobState::Succeeded && entry.failure_message.is_none() {
        entry.failure_message = message;
    }
    JobOutcome {
        error: if state == JobState::Succeeded {
            None
        } else {
            error.or_else(|| {
                Some(BackupError::Task(format!(
                    "backup {} did not reach every destination",
                    record.id
                )))
            })
        },
        record,
        manifest,
        entry,
    }
}

/// Finishes an interrupted job: sends its staged copy to every destination of this run that
/// does not have it yet; what is already verified there is not sent again.
async fn resume(
    job: &BackupJob,
    staged_dir: PathBuf,
    mut record: JobRecord,
    log: &JobLog,
) -> JobOutcome {
    let clock = Instant::now();
    if let Ok(text) = std::fs::read_to_string(staged_dir.join(LOG_FILE)) {
        log.continue_from(&text);
    }
    log.info(format!(
        "resuming backup {} ({}), interrupted in state {}, from {}",
        record.id,
        record.folder,
        record.state,
        staged_dir.display()
    ));
    record.resumed += 1;
    record.pid = std::process::id();
    record.host = journal::host_name();
    record.staging = staged_dir.clone();
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
    let tracker = Arc::new(Tracker::new(record.clone(), job.journal.clone()));
    tracker.set_staged_record(staged_dir.join(STAGED_RECORD));
    tracker.update(log, |r| r.state = JobState::Transferring);
    job.events.emit(JobEvent::Started {
        job_id: record.id.clone(),
        folder: record.folder.clone(),
        destinations: record.copies.iter().map(|c| c.name.clone()).collect(),
        resumed: true,
    });

    let manifest = match std::fs::read(staged_dir.join(MANIFEST_FILE))
        .map_err(BackupError::io(staged_dir.join(MANIFEST_FILE)))
        .and_then(|b| {
            serde_json::from_slice::<Manifest>(&b).map_err(|e| BackupError::Task(e.to_string()))
        }) {
        Ok(m) => m,
        Err(err) => {
            let entry = bare_entry(&record);
            let _ = std::fs::remove_dir_all(&staged_dir);
            return finish(job, &tracker, entry, None, Some(err), clock, log).await;
        }
    };
    let mut entry = bare_entry(&record);
    fill_entry(&mut entry, &manifest);
    let mut ready = Vec::new();
    let mut failures = Vec::new();
    for copy in record
        .copies
        .iter()
        .filter(|c| c.state != CopyState::Succeeded)
    {
        let Some(dest) = job
            .destinations
            .iter()
            .find(|d| d.dir.location() == copy.location)
        else {
            continue;
        };
        let dest = Destination {
            name: copy.name.clone(),
            ..dest.clone()
        };
        match TargetLock::acquire(&dest.dir, &record.id, Some(&record.id)).await {
            Ok(lock) => ready.push((dest, lock)),
            Err(err) => {
                log.error(format!("{}: {err}", dest.name));
                mark_failed(&tracker, log, &dest.name, &err);
                failures.push(err);
            }
        }
    }
    let staged = Arc::new(StagedBackup {
        dir: staged_dir,
        folder: record.folder.clone(),
        manifest: manifest.clone(),
    });
    let error = transfer_all(job, &tracker, staged, &entry, ready, log).await;
    let error = failures.into_iter().next().or(error);
    finish(job, &tracker, entry, Some(manifest), error, clock, log).await
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
