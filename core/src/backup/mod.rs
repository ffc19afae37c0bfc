//! Backup, restore, verify and history over a backup directory laid out as Backup-SPFarm's:
//! `sstorebrtoc.json` (the history) and one numbered folder per backup, `sstorebrNNNN/`,
//! holding the encrypted backup, its manifest and its job log.
//!
//! The job runs in one place ([`run_backup`], [`run_restore`], [`run_verify`]); the directory
//! is reached through a [`crate::target::Target`] and work files go to a local staging folder.

mod decode;
mod directory;
mod error;
mod history;
mod job_log;
mod lock;
mod manifest;
mod restore;
mod run;
mod verify;

pub use directory::{
    BACKUP_FILE, BackupDirectory, LOG_FILE, MANIFEST_FILE, RESTORE_LOG_FILE, TOC_FILE,
};
pub use error::BackupError;
pub use history::{History, HistoryEntry, JobKind, JobStatus};
pub use job_log::JobLog;
pub use lock::JobLock;
pub use manifest::Manifest;
pub use restore::{RestoreMethod, RestoreReport, RestoreRequest, run_restore};
pub use run::{BackupOptions, BackupReport, ITEM_NAME, StoreTree, run_backup, show_tree};
pub use verify::{VerifyReport, run_verify};

/// The current time as RFC 3339 (UTC, second precision).
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

/// `user@host` of the process, recorded as "requested by".
pub fn requested_by() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .or_else(|_| std::env::var("USERNAME"))
        .ok()
        .or_else(user_from_uid)
        .unwrap_or_else(|| "unknown".into());
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    format!("{user}@{host}")
}

/// The account name of this process's user, from its uid, where the environment does not say.
#[cfg(unix)]
fn user_from_uid() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid().to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.get(2) == Some(&uid.as_str())).then(|| fields[0].to_owned())
    });
    Some(name.unwrap_or(format!("uid {uid}")))
}

#[cfg(not(unix))]
fn user_from_uid() -> Option<String> {
    None
}
