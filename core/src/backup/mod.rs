//! Backup, restore, verify and history over a backup directory laid out as Backup-SPFarm's:
//! `sstorebrtoc.json` (the history) and one numbered folder per backup, `sstorebrNNNN/`,
//! holding the encrypted backup, its manifest and its job log.
//!
//! The rules live here once, for every front end (the CLI, the service, the console):
//! - [`job`]: the backup job, as its steps (find pending work, lock and number, stage, fan
//!   out, settle), and [`run_restore`], [`run_verify`], [`run_prune`];
//! - [`preflight`]: whether a backup can run; [`status`]: what the job journal says;
//!   [`select`]: which backups a restore or verify works on;
//! - [`events`]: what a running job reports (the job log is one observer).
//!
//! Directories are reached through [`crate::target::Target`]s; work files go to a local
//! staging folder, which also holds a backup until every destination has verified its copy.

mod decode;
mod digest;
mod directory;
mod error;
pub mod events;
mod history;
pub mod job;
mod job_log;
pub mod journal;
mod keys;
mod lock;
mod manifest;
pub mod preflight;
pub mod prune;
mod restore;
pub mod retry;
pub mod select;
pub mod status;
mod stop;
pub mod target_lock;
mod tree;
mod verify;

pub use directory::{
    BACKUP_FILE, BackupDirectory, LOG_FILE, MANIFEST_FILE, RESTORE_LOG_FILE, TOC_FILE,
};
pub use error::BackupError;
pub use events::{EventSink, JobEvent, Level};
pub use history::{History, HistoryEntry, JobKind, JobStatus};
pub use job::{
    BackupJob, BackupOptions, BackupReport, Destination, ITEM_NAME, JobOutcome, PublishedBackup,
    TransferOptions, run_backup, run_job, show_tree,
};
pub use job_log::JobLog;
pub use journal::{CopyRecord, CopyState, JobJournal, JobRecord, JobState};
pub use keys::{BackupKeys, OpenKeys};
pub use lock::JobLock;
pub use manifest::Manifest;
pub use preflight::{Check, CheckStatus, PreflightRequest, preflight};
pub use prune::{PruneReport, PruneRules, run_prune, run_prune_as};
pub use restore::{RestoreMethod, RestoreReport, RestoreRequest, run_restore};
pub use retry::RetryPolicy;
pub use select::Selection;
pub use status::JobsStatus;
pub use stop::{StopReason, StopSignal};
pub use tree::StoreTree;
pub use verify::{VerifyReport, run_verify};

/// The current time as RFC 3339 (UTC, second precision).
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

/// A new random job id (32 hex digits).
pub fn new_job_id() -> String {
    crate::random::hex_id::<16>()
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
