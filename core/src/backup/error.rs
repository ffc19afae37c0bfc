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
    #[error("a background task failed: {0}")]
    Task(String),
}

fn io_hint(err: &std::io::Error) -> &'static str {
    use std::io::ErrorKind as K;
    match err.kind() {
        K::StorageFull | K::QuotaExceeded | K::FileTooLarge => {
            "; free some space (or raise the quota) there, then try again"
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
            "; give the backup passphrase in force when the backup was taken (SSTORE_BACKUP_PASSPHRASE or --backup-passphrase-file; by default the store passphrase)"
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
