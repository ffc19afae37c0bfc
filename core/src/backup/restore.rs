//! Restore: decrypt a backup into a temporary file beside the destination, check it fully,
//! then swap it in with one rename. Any failure before the rename leaves the live store as it was.

use std::path::{Path, PathBuf};

use super::decode::{check_store_copy, decode_stream};
use super::directory::RESTORE_LOG_FILE;
use super::{
    BackupDirectory, BackupError, EventSink, HistoryEntry, JobKind, JobLock, JobLog, JobStatus,
    Manifest, OpenKeys, Selection,
};
use crate::fsutil::{self, Durability, WriteBehindFile};
use crate::secret::Passphrase;
use crate::store::{SecureStore, StoreLocation};
use crate::target::{self, PutMode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreMethod {
    /// Replace the live store.
    Overwrite,
    /// Write a new store file elsewhere.
    New,
}

impl RestoreMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            RestoreMethod::Overwrite => "overwrite",
            RestoreMethod::New => "new",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// The backup to restore; the newest successful one when `None`.
    pub backup_id: Option<String>,
    pub method: RestoreMethod,
    /// The store file to write: the live store (`Overwrite`) or the new one (`New`).
    pub destination: PathBuf,
    /// For `New`: replace an existing file at the destination.
    pub force: bool,
    /// When given, the restored store is checked to open with it.
    pub store_passphrase: Option<Passphrase>,
    /// Who asked, as recorded in the history; `None`: this process's `user@host`.
    pub requested_by: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RestoreReport {
    pub entry: HistoryEntry,
    pub manifest: Manifest,
    pub restored_to: PathBuf,
    /// Whether the store passphrase supplied opens the restored Master Key (`None`: not checked).
    pub store_passphrase_opens: Option<bool>,
}

/// The backup a restore or verify works on, with its manifest.
pub(crate) async fn select_backup(
    dir: &BackupDirectory,
    selection: &Selection,
) -> Result<(HistoryEntry, Manifest), BackupError> {
    let history = dir.load_history().await?;
    let entry = history
        .select(selection, &dir.location())?
        .last()
        .copied()
        .cloned()
        .ok_or_else(|| BackupError::NoBackups {
            directory: dir.location(),
        })?;
    let manifest = dir.read_manifest(&entry).await?;
    Ok((entry, manifest))
}

/// What a decrypted copy is for, which decides whether it is flushed to disk.
#[derive(Debug, Clone)]
pub(crate) enum CopyPurpose {
    /// A restored store: flushed to disk, since it is then renamed into place. When a store
    /// passphrase is given, whether it opens the restored Master Key is checked too.
    Restore {
        store_passphrase: Option<Passphrase>,
    },
    /// Verify's work file: read once by the checks and removed, so never flushed (an fsync
    /// would write the whole store to the disk for nothing).
    Verify,
}

/// Streams the backup of `entry` from the directory and decrypts it into the new file `dest`,
/// checked against the manifest (and flushed to disk when `purpose` is a restore). Returns
/// whether the restore's store passphrase opens the copy's Master Key (`None`: none given).
pub(crate) async fn fetch_and_check(
    dir: &BackupDirectory,
    entry: &HistoryEntry,
    manifest: &Manifest,
    keys: &OpenKeys,
    dest: &Path,
    purpose: CopyPurpose,
) -> Result<Option<bool>, BackupError> {
    let key = dir.object(&entry.folder, &manifest.backup_file)?;
    let reader = dir.target().get(&key).await?;
    let file = dir.describe(&key);
    let (manifest, keys, dest, handle) = (
        manifest.clone(),
        keys.clone(),
        dest.to_owned(),
        tokio::runtime::Handle::current(),
    );
    tokio::task::spawn_blocking(move || {
        let raw = tokio_util::io::SyncIoBridge::new_with_handle(reader, handle);
        let out = fsutil::create_private_file(&dest).map_err(BackupError::io(&dest))?;
        let (durability, store_passphrase) = match purpose {
            CopyPurpose::Restore { store_passphrase } => (Durability::Durable, store_passphrase),
            CopyPurpose::Verify => (Durability::Scratch, None),
        };
        // Disk writes (and a restore's flushing) on a thread of their own, off the decoder's.
        let out = WriteBehindFile::with_durability(out, dest.clone(), (), durability);
        let mut out = WriteFailure::new(out);
        // A failed write (a full disk) is the destination's error, not the backup file's.
        if let Err(e) = decode_stream(raw, &file, &manifest, keys.format_keys(), &mut out) {
            return Err(match out.failure.take() {
                Some(source) => BackupError::Io {
                    path: dest.clone(),
                    source,
                },
                None => e,
            });
        }
        out.inner.finish().map_err(BackupError::io(&dest))?;
        // The passphrase's key derivation (64 MiB, one core) runs beside the checks (a core
        // and a connection each).
        let (checked, opens) = std::thread::scope(|scope| {
            let opening = store_passphrase.map(|passphrase| {
                let dest = &dest;
                scope.spawn(move || passphrase_opens(dest, passphrase))
            });
            (
                check_store_copy(&dest, &manifest),
                opening.map(|t| t.join()),
            )
        });
        checked.map_err(|reason| BackupError::RestoredCopyInvalid {
            id: manifest.backup_id.clone(),
            reason,
        })?;
        opens
            .map(|joined| {
                joined.map_err(|_| {
                    BackupError::Task("checking the store passphrase stopped unexpectedly".into())
                })?
            })
            .transpose()
    })
    .await
    .map_err(|e| BackupError::Task(format!("decrypting the backup stopped unexpectedly: {e}")))?
}

/// Whether `passphrase` opens the Master Key of the store copy at `path`.
fn passphrase_opens(path: &Path, passphrase: Passphrase) -> Result<bool, BackupError> {
    Ok(SecureStore::open_read_only(path)?
        .check_passphrase(&passphrase)
        .is_ok())
}

/// A writer that remembers its first failure, so the caller can tell a failed write to the
/// destination from a damaged backup file (both surface as the decoder's error).
struct WriteFailure<W> {
    inner: W,
    failure: Option<std::io::Error>,
}

impl<W> WriteFailure<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            failure: None,
        }
    }

    fn note<T>(&mut self, result: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &result
            && self.failure.is_none()
        {
            self.failure = Some(std::io::Error::new(e.kind(), e.to_string()));
        }
        result
    }
}

impl<W: std::io::Write> std::io::Write for WriteFailure<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let result = self.inner.write(buf);
        self.note(result)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let result = self.inner.flush();
        self.note(result)
    }
}

/// Restores a backup from `dir` as the request says. What it does goes to `events` and to the
/// backup folder's restore log.
pub async fn run_restore(
    dir: &BackupDirectory,
    request: &RestoreRequest,
    keys: impl Into<OpenKeys>,
    events: &EventSink,
) -> Result<RestoreReport, BackupError> {
    let keys = &keys.into();
    let _lock = JobLock::acquire(dir.staging(), "restore")?;
    let job_log = JobLog::new();
    let log = &job_log.attach(events);
    let started = super::now_rfc3339();
    let selection = Selection::id_or_newest(request.backup_id.as_deref());
    let (backup, manifest) = select_backup(dir, &selection).await?;
    let dest = &request.destination;
    log.info(format!(
        "restore ({}) of backup {} from {}/{} to {} started",
        request.method.as_str(),
        backup.id,
        dir.location(),
        backup.folder,
        dest.display()
    ));
    let mut entry = HistoryEntry {
        method: request.method.as_str().into(),
        started,
        backup_size: Some(manifest.backup_size),
        plaintext_size: Some(manifest.plaintext_size),
        key_generation: Some(manifest.master_key_generation),
        backup_id: Some(backup.id.clone()),
        restored_to: Some(dest.display().to_string()),
        requested_by: request
            .requested_by
            .clone()
            .unwrap_or_else(super::requested_by),
        ..HistoryEntry::begin(
            JobKind::Restore,
            crate::random::hex_id::<16>(),
            backup.item.clone(),
            backup.folder.clone(),
        )
    };
    let result = restore_into(dir, request, keys, log, &backup, &manifest).await;
    entry.finished = super::now_rfc3339();
    match &result {
        Ok(opens) => {
            entry.status = JobStatus::Succeeded;
            match opens {
                Some(false) => log.warn(
                    "the store passphrase supplied does not open the restored Master Key: the store opens with the passphrase in force when the backup was taken",
                ),
                Some(true) => log.info("the store passphrase supplied opens the restored Master Key"),
                None => {}
            }
            log.info(format!("restore of backup {} succeeded", backup.id));
        }
        Err(err) => {
            log.error(format!("restore failed: {err}"));
            entry.failure_message = Some(err.to_string());
        }
    }
    entry.warnings = job_log.warnings();
    entry.errors = job_log.errors();
    let recorded = record_restore(dir, &backup, entry.clone(), &job_log).await;
    let opens = result?;
    recorded?;
    Ok(RestoreReport {
        entry,
        manifest,
        restored_to: dest.clone(),
        store_passphrase_opens: opens,
    })
}

async fn record_restore(
    dir: &BackupDirectory,
    backup: &HistoryEntry,
    entry: HistoryEntry,
    log: &JobLog,
) -> Result<(), BackupError> {
    let key = dir.object(&backup.folder, RESTORE_LOG_FILE)?;
    let mut text = dir.read_text(&key).await?.unwrap_or_default();
    text.push_str(&log.render());
    target::put_bytes(dir.target(), &key, text.as_bytes(), PutMode::Overwrite).await?;
    dir.record(entry).await
}

async fn restore_into(
    dir: &BackupDirectory,
    request: &RestoreRequest,
    keys: &OpenKeys,
    log: &EventSink,
    backup: &HistoryEntry,
    manifest: &Manifest,
) -> Result<Option<bool>, BackupError> {
    let dest = &request.destination;
    if let location @ StoreLocation::SqlServer(_) = StoreLocation::from_locator(dest)? {
        return restore_into_server(dir, request, keys, log, backup, manifest, location).await;
    }
    if request.method == RestoreMethod::New && dest.exists() && !request.force {
        return Err(BackupError::DestinationExists { path: dest.clone() });
    }
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fsutil::create_private_dir_all(parent).map_err(BackupError::io(parent))?;
    let _folder = RestoreFolder::lock(parent, log)?;
    let temp = fsutil::temp_sibling(dest, "restore");
    let result = async {
        let purpose = CopyPurpose::Restore {
            store_passphrase: request.store_passphrase.clone(),
        };
        let opens = fetch_and_check(dir, backup, manifest, keys, &temp, purpose).await?;
        log.info(format!("decrypted and verified into {}", temp.display()));
        if request.method == RestoreMethod::Overwrite {
            SecureStore::settle_before_replace(dest);
        }
        std::fs::rename(&temp, dest).map_err(BackupError::io(dest))?;
        SecureStore::remove_stale_journal(dest);
        fsutil::sync_dir(parent).map_err(BackupError::io(parent))?;
        Ok(opens)
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// The folder a restore writes its store file into, locked for the restore (an OS lock on the
/// folder itself, released by the OS when the process ends). Holding it, any restore work file
/// found there (`.NAME.restore-*.tmp`) was left by a restore that was killed: it is removed.
struct RestoreFolder {
    #[cfg(unix)]
    _lock: std::fs::File,
}

impl RestoreFolder {
    fn lock(folder: &Path, log: &EventSink) -> Result<Self, BackupError> {
        #[cfg(unix)]
        {
            let file = std::fs::File::open(folder).map_err(BackupError::io(folder))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(BackupError::Locked {
                        path: folder.to_owned(),
                        holder: "another restore is writing into this folder".into(),
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(BackupError::io(folder)(e)),
            }
            let removed = std::fs::read_dir(folder)
                .map(|entries| {
                    entries
                        .flatten()
                        .filter(|e| is_restore_work_file(&e.file_name().to_string_lossy()))
                        .filter(|e| std::fs::remove_file(e.path()).is_ok())
                        .count()
                })
                .unwrap_or(0);
            if removed > 0 {
                log.warn(format!(
                    "removed {removed} work file(s) left in {} by an interrupted restore",
                    folder.display()
                ));
            }
            Ok(Self { _lock: file })
        }
        #[cfg(not(unix))]
        {
            let _ = (folder, log);
            Ok(Self {})
        }
    }
}

/// A restore's work file, as [`fsutil::temp_sibling`] names it: `.NAME.restore-HEX.tmp`.
fn is_restore_work_file(name: &str) -> bool {
    name.starts_with('.')
        && name.ends_with(".tmp")
        && name.rsplit_once(".restore-").is_some_and(|(_, rest)| {
            rest.trim_end_matches(".tmp")
                .bytes()
                .all(|b| b.is_ascii_hexdigit())
        })
}

/// A restore into a store on SQL Server: the backup is decrypted and checked completely into
/// a work file in the staging folder first, then loaded into the database in one transaction
/// (for `Overwrite`, or `New` with `force`, replacing what the database holds).
async fn restore_into_server(
    dir: &BackupDirectory,
    request: &RestoreRequest,
    keys: &OpenKeys,
    log: &EventSink,
    backup: &HistoryEntry,
    manifest: &Manifest,
    location: StoreLocation,
) -> Result<Option<bool>, BackupError> {
    let staging = dir.staging();
    fsutil::create_private_dir_all(staging).map_err(BackupError::io(staging))?;
    let temp = super::job::WorkFile(staging.join(format!("restore-{}.db", backup.id)));
    let _ = std::fs::remove_file(&temp.0);
    let purpose = CopyPurpose::Restore {
        store_passphrase: request.store_passphrase.clone(),
    };
    let opens = fetch_and_check(dir, backup, manifest, keys, &temp.0, purpose).await?;
    log.info(format!("decrypted and verified into {}", temp.0.display()));
    let replace = request.method == RestoreMethod::Overwrite || request.force;
    let copy = temp.0.clone();
    let target = location.clone();
    let summary =
        tokio::task::spawn_blocking(move || SecureStore::load_copy(&copy, &target, replace))
            .await
            .map_err(|e| {
                BackupError::Task(format!("loading the store stopped unexpectedly: {e}"))
            })??;
    log.info(format!(
        "loaded into {location} in one transaction: {} applications, {} credential sets",
        summary.applications, summary.credential_sets
    ));
    Ok(opens)
}

#[cfg(test)]
mod work_file_tests {
    #[test]
    fn only_restore_work_files_are_swept() {
        assert!(super::is_restore_work_file(
            ".store.db.restore-0a1b2c3d4e5f.tmp"
        ));
        assert!(!super::is_restore_work_file("store.db"));
        assert!(!super::is_restore_work_file(
            ".store.db.snapshot-0a1b2c3d4e5f.tmp"
        ));
        assert!(!super::is_restore_work_file(".notes.restore-plan.tmp"));
        assert!(!super::is_restore_work_file("store.db.restore-0a1b.tmp"));
    }
}
