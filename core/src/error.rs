//! The top-level error of sstore-core and its category, which the CLI turns into an exit code.

use crate::backup::BackupError;
use crate::format::FormatError;
use crate::store::{SqlServerError, StoreError};
use crate::target::TargetError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(transparent)]
    Target(#[from] TargetError),
}

/// What kind of failure an error is, for exit codes and scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCategory {
    /// Anything not listed below.
    Failed,
    /// A passphrase did not open the store's Master Key or a backup.
    WrongPassphrase,
    /// There is no store at the path given.
    NoStore,
    /// A backup is corrupted, truncated, or does not match its manifest.
    Damaged,
    /// Another job holds the backup directory.
    Locked,
}

impl StoreError {
    pub fn category(&self) -> ErrorCategory {
        match self {
            StoreError::WrongPassphrase => ErrorCategory::WrongPassphrase,
            StoreError::NotFound { .. }
            | StoreError::SqlServer(
                SqlServerError::NoStore { .. } | SqlServerError::DatabaseMissing { .. },
            ) => ErrorCategory::NoStore,
            _ => ErrorCategory::Failed,
        }
    }
}

impl BackupError {
    pub fn category(&self) -> ErrorCategory {
        match self {
            BackupError::Store(e) => e.category(),
            BackupError::Stream {
                source: FormatError::WrongPassphrase,
                ..
            } => ErrorCategory::WrongPassphrase,
            BackupError::Stream { source, .. } if source.is_damage() => ErrorCategory::Damaged,
            BackupError::ManifestMismatch { .. } | BackupError::RestoredCopyInvalid { .. } => {
                ErrorCategory::Damaged
            }
            BackupError::Locked { .. }
            | BackupError::TargetLocked { .. }
            | BackupError::LockInUse { .. } => ErrorCategory::Locked,
            _ => ErrorCategory::Failed,
        }
    }
}

impl Error {
    pub fn category(&self) -> ErrorCategory {
        match self {
            Error::Store(e) => e.category(),
            Error::Backup(e) => e.category(),
            Error::Target(_) => ErrorCategory::Failed,
        }
    }
}
