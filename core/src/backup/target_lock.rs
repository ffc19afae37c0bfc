//! The lock object a job holds on each destination (`sstore.lock`), created with a conditional
//! put, so two jobs never interleave writes on one backup directory even from different hosts.
//! A lock is stale when its job's process is gone (same host) or it is older than
//! [`STALE_LOCK_AGE`]. A job takes over a lock whose process is gone from this host (it cannot
//! be writing) and logs it; any other stale lock is broken with `sstore unlock`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BackupDirectory, BackupError, journal};
use crate::target::{self, ObjectKey, PutMode, TargetErrorKind};

/// The lock object, at the root of the backup directory.
pub const TARGET_LOCK_FILE: &str = "sstore.lock";
/// A lock older than this is stale whatever host holds it.
pub const STALE_LOCK_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Who holds a lock (the lock object's content; no secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub job_id: String,
    pub requested_by: String,
    pub host: String,
    pub pid: u32,
    pub since: String,
    pub since_unix: i64,
}

impl LockHolder {
    fn mine(job_id: &str) -> Self {
        Self {
            job_id: job_id.to_owned(),
            requested_by: super::requested_by(),
            host: journal::host_name(),
            pid: std::process::id(),
            since: super::now_rfc3339(),
            since_unix: time::OffsetDateTime::now_utc().unix_timestamp(),
        }
    }

    /// Why the lock is stale, if it is.
    pub fn stale_because(&self) -> Option<String> {
        if self.host == journal::host_name() && !journal::process_alive(self.pid) {
            return Some(format!(
                "process {} on {} is no longer running",
                self.pid, self.host
            ));
        }
        let age = time::OffsetDateTime::now_utc().unix_timestamp() - self.since_unix;
        let limit = i64::try_from(STALE_LOCK_AGE.as_secs()).unwrap_or(i64::MAX);
        (age > limit).then(|| format!("it is older than {} hours", limit / 3600))
    }
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "job {} of {} (pid {} on {}) since {}",
            self.job_id, self.requested_by, self.pid, self.host, self.since
        )
    }
}

fn lock_key() -> Result<ObjectKey, BackupError> {
    ObjectKey::new(TARGET_LOCK_FILE).map_err(|e| BackupError::Task(e.to_string()))
}

/// A lock held on one destination; release it with [`TargetLock::release`].
#[derive(Debug)]
pub struct TargetLock {
    dir: BackupDirectory,
    holder: LockHolder,
    /// The stale lock this one replaced, if any (to log).
    pub took_over: Option<LockHolder>,
}

impl TargetLock {
    /// Creates the lock object. When it exists, it is taken over only if it belongs to
    /// `resuming` (a job this run resumes) and that job's process is gone; otherwise the error
    /// says who holds it and, if stale, how to break it.
    pub async fn acquire(
        dir: &BackupDirectory,
        job_id: &str,
        resuming: Option<&str>,
    ) -> Result<Self, BackupError> {
        let key = lock_key()?;
        let holder = LockHolder::mine(job_id);
        let bytes = serde_json::to_vec(&holder).map_err(|e| BackupError::Task(e.to_string()))?;
        match target::put_bytes(dir.target(), &key, &bytes, PutMode::Create).await {
            Ok(_) => {}
            Err(e) if e.kind == TargetErrorKind::AlreadyExists => {
                let existing = read_holder(dir).await?;
                // A lock whose process is gone from this very host cannot be protecting
                // anything: take it over. Other stale locks need `sstore unlock`.
                let dead_here = |h: &LockHolder| {
                    h.host == journal::host_name() && !journal::process_alive(h.pid)
                };
                let ours = match &existing {
                    Some(h) => {
                        dead_here(h)
                            || (resuming == Some(h.job_id.as_str()) && h.stale_because().is_some())
                    }
                    // Vanished meanwhile, or unreadable: let the next attempt decide.
                    None => false,
                };
                if !ours {
                    return Err(locked_error(dir, existing));
                }
                target::put_bytes(dir.target(), &key, &bytes, PutMode::Overwrite).await?;
                return Ok(Self {
                    dir: dir.clone(),
                    holder,
                    took_over: existing,
                });
            }
            Err(e) => return Err(e.into()),
        }
        Ok(Self {
            dir: dir.clone(),
            holder,
            took_over: None,
        })
    }

    /// Removes the lock object if it is still ours.
    pub async fn release(self) -> Result<(), BackupError> {
        let key = lock_key()?;
        match read_holder(&self.dir).await? {
            Some(h) if h == self.holder => {
                self.dir.target().delete(&key).await?;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn locked_error(dir: &BackupDirectory, holder: Option<LockHolder>) -> BackupError {
    let (holder_text, stale) = match &holder {
        Some(h) => (h.to_string(), h.stale_because()),
        None => ("a job whose lock cannot be read".to_owned(), None),
    };
    BackupError::TargetLocked {
        location: dir.location(),
        holder: holder_text,
        stale,
    }
}

/// Who holds the lock on `dir`, if anyone.
pub async fn read_holder(dir: &BackupDirectory) -> Result<Option<LockHolder>, BackupError> {
    let key = lock_key()?;
    match target::get_bytes(dir.target(), &key, 64 * 1024).await {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Breaks the lock on `dir` (`sstore unlock`): only a stale one unless `force`. Returns the
/// holder removed, or `None` when there was no lock.
pub async fn break_lock(
    dir: &BackupDirectory,
    force: bool,
) -> Result<Option<LockHolder>, BackupError> {
    let key = lock_key()?;
    let holder = match target::get_bytes(dir.target(), &key, 64 * 1024).await {
        Ok(bytes) => serde_json::from_slice::<LockHolder>(&bytes).ok(),
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let stale = holder.as_ref().and_then(LockHolder::stale_because);
    let unreadable = holder.is_none();
    if stale.is_none() && !unreadable && !force {
        return Err(BackupError::LockInUse {
            location: dir.location(),
            holder: holder.map(|h| h.to_string()).unwrap_or_default(),
        });
    }
    dir.target().delete(&key).await?;
    Ok(holder.or_else(|| {
        Some(LockHolder {
            job_id: "unknown (unreadable lock)".into(),
            requested_by: String::new(),
            host: String::new(),
            pid: 0,
            since: String::new(),
            since_unix: 0,
        })
    }))
}
