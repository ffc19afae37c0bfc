//! Step 2: lock and number. Every destination of the job is locked (a create-only
//! `sstore.lock` object, taken with retries, taken over from a process gone from this host);
//! a new job also picks the folder number: the first one free on every destination. New and
//! resumed jobs lock the same way; only the numbering is the new job's own.

use super::super::retry::{RetryPolicy, with_retry};
use super::super::target_lock::TargetLock;
use super::super::{BackupError, EventSink};
use super::send::Destination;

/// A destination this job holds the lock of.
pub(crate) struct Locked {
    pub dest: Destination,
    pub lock: TargetLock,
}

/// The outcome of locking every destination.
pub(crate) struct LockedDestinations {
    pub ready: Vec<Locked>,
    /// Destinations that could not be locked (or numbered), with why.
    pub failed: Vec<(String, BackupError)>,
    /// For a new job: the first folder number free on every locked destination.
    pub next_folder: u32,
}

/// Locks every destination in `dests` for job `job_id`; `resuming` is the id of the job being
/// resumed (its own lock, left by a killed run, is taken back). A new job (`resuming` is
/// `None`) also reads each destination's history for the next free folder number.
pub(crate) async fn lock_destinations(
    dests: &[Destination],
    job_id: &str,
    resuming: Option<&str>,
    retry: &RetryPolicy,
    events: &EventSink,
) -> LockedDestinations {
    let mut locked = LockedDestinations {
        ready: Vec::new(),
        failed: Vec::new(),
        next_folder: 0,
    };
    for dest in dests {
        match lock_one(dest, job_id, resuming, retry, events).await {
            Ok((lock, next)) => {
                locked.next_folder = locked.next_folder.max(next);
                locked.ready.push(Locked {
                    dest: dest.clone(),
                    lock,
                });
            }
            Err(err) => {
                events.error(format!("{}: {err}", dest.name));
                locked.failed.push((dest.name.clone(), err));
            }
        }
    }
    locked
}

async fn lock_one(
    dest: &Destination,
    job_id: &str,
    resuming: Option<&str>,
    retry: &RetryPolicy,
    events: &EventSink,
) -> Result<(TargetLock, u32), BackupError> {
    let lock = with_retry(retry, &format!("{}: locking", dest.name), events, |_| {
        TargetLock::acquire(&dest.dir, job_id, resuming)
    })
    .await?;
    if let Some(old) = &lock.took_over {
        events.warn(format!(
            "{}: took over the lock of {old}, whose process is gone",
            dest.name
        ));
    }
    if resuming.is_some() {
        return Ok((lock, 0));
    }
    let number = async {
        let history = dest.dir.load_history().await?;
        let next = dest.dir.next_folder(&history).await?;
        Ok::<_, BackupError>(super::super::directory::folder_number(&next).unwrap_or(0))
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

/// Releases a lock (a failure to release is a warning: the lock is then stale, and the next
/// job takes it over or `sstore unlock` breaks it).
pub(crate) async fn release(dest: &Destination, lock: TargetLock, events: &EventSink) {
    if let Err(e) = lock.release().await {
        events.warn(format!("{}: the lock could not be removed: {e}", dest.name));
    }
}
