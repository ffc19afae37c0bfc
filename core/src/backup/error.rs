//! Errors of backup, restore and verify, each naming the directory, folder or file concerned
//! and what to do next.

use std::path::PathBuf;

use crate::format::FormatError;
use crate::store::StoreError;
use crate::target::TargetError;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("{file}: {source}{}", hint(source))]
    Stream { file: String, source: FormatError },
    #[error("{}: {source}{}", path.display(), io_hint(source))]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no successful backup in {directory}: run `sstore backup --directory ...` first")]
    NoBackups { directory: String },
    #[error("no backup with id {id} in {directory} (see `sstore history --directory ...`)")]
    BackupNotFound { id: String, directory: String },
    #[error(
        "backup {id} in {directory} did not succeed (status {status}); choose another with --backup-id"
    )]
    BackupNotUsable {
        id: String,
        directory: String,
        status: String,
    },
    #[error(
        "{file} does not match its manifest: {what}; the backup was altered or mixed with another; use another backup"
    )]
    ManifestMismatch { file: String, what: String },
    #[error(
        "the history {file} cannot be read: {reason}; fix or move it away (backup folders stay intact)"
    )]
    History { file: String, reason: String },
    #[error("another sstore job is using {}: {holder}; wait for it to finish", path.display())]
    Locked { path: PathBuf, holder: String },
    #[error("{location} is locked by {holder}{}", lock_hint(location, stale.as_deref()))]
    TargetLocked {
        location: String,
        holder: String,
        /// Why the lock is stale, when it is.
        stale: Option<String>,
    },
    #[error(
        "the lock on {location} belongs to a running job ({holder}); add --force only if you are sure it is not running"
    )]
    LockInUse { location: String, holder: String },
    #[error("nothing to resume in {}: no interrupted job was found there", staging.display())]
    NothingToResume { staging: PathBuf },
    #[error(
        "not enough free space for the backup in {}: about {needed} bytes needed, {free} free; free some space, choose another --staging, or add --force",
        path.display()
    )]
    NoSpace {
        path: PathBuf,
        needed: u64,
        free: u64,
    },
    #[error("unknown item '{item}'; items that can be backed up: {}", available.join(", "))]
    UnknownItem {
        item: String,
        available: Vec<String>,
    },
    #[error("{} already exists: choose another --new-store path, or add --force to replace it", path.display())]
    DestinationExists { path: PathBuf },
    #[error(
        "the restored copy of backup {id} failed its checks: {reason}; the live store was not changed"
    )]
    RestoredCopyInvalid { id: String, reason: String },
    #[error("the staging folder {} is not writable ({source}); choose another with --staging or [backup] staging", path.display())]
    StagingNotWritable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "a new backup needs the backup passphrase: set SSTORE_BACKUP_PASSPHRASE or --backup-passphrase-file (or the store passphrase, SSTORE_PASSPHRASE)"
    )]
    PassphraseNeeded,
    #[error("the job has no destination: give --directory or --target")]
    NoDestination,
    #[error(
        "no backup directory: give --directory DIR or --target TARGET (a folder, URL or configured target), or set [backup] directory in the config file"
    )]
    NoDirectory,
    #[error("{name} names {location} twice in one job")]
    SameDestinationTwice { name: String, location: String },
    #[error("backup {id} did not reach every destination{}", failed_list(failed))]
    NotEveryDestination { id: String, failed: Vec<String> },
    #[error(
        "backup {id} was stopped before it reached every destination; the next `sstore backup` on the same staging folder resumes it"
    )]
    Stopped { id: String },
    #[error("backup {id} was cancelled by {by}; nothing of it was listed")]
    Cancelled { id: String, by: String },
    #[error("{file} cannot be read: {reason}")]
    Unreadable { file: String, reason: String },
    /// A worker thread or task of the job stopped without an answer (a panic): a defect.
    #[error("{0}; please report this")]
    Task(String),
}

fn failed_list(failed: &[String]) -> String {
    if failed.is_empty() {
        String::new()
    } else {
        format!(
            " (not on {}); see `sstore history --jobs`",
            failed.join(", ")
        )
    }
}

fn lock_hint(location: &str, stale: Option<&str>) -> String {
    match stale {
        Some(why) => format!(
            "; the lock is stale ({why}): break it with `sstore unlock --directory {location}`"
        ),
        None => "; wait for that job to finish".to_owned(),
    }
}

fn io_hint(err: &std::io::Error) -> &'static str {
    use std::io::ErrorKind as K;
    match err.kind() {
        K::StorageFull | K::QuotaExceeded | K::FileTooLarge => {
            "; free space there (or raise the quota), then try again"
        }
        K::PermissionDenied | K::ReadOnlyFilesystem => {
            "; check that the folder is writable by this user"
        }
        _ => "",
    }
}

fn hint(err: &FormatError) -> &'static str {
    match err {
        FormatError::WrongPassphrase => {
            "; give the backup passphrase in force when the backup was taken (SSTORE_BACKUP_PASSPHRASE or --backup-passphrase-file; by default the store passphrase), or the identity file of a recipient it was written to (--identity FILE or SSTORE_IDENTITY_FILE)"
        }
        e if e.is_damage() => "; restore from another backup (see `sstore history`)",
        _ => "",
    }
}

impl BackupError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| BackupError::Io { path, source }
    }
}
