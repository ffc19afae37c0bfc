//! Step 2: lock and number. Every destination of the job is locked (a create-only
//! `sstore.lock` object, taken with retries, taken over from a process gone from this host);
//! a new job also picks the folder number: the first one free on every destination it locked.
//! New and resumed jobs lock the same way. A resumed job keeps its folder, except on a
//! destination where another backup was listed under that folder meanwhile (a job from
//! another staging folder, which could lock the destination when this one could not): there
//! its copy goes to the next free folder, so a folder never holds two backups and the pending
//! copy can still be finished.

use super::super::directory::folder_name;
use super::super::retry::{RetryPolicy, with_retry};
use super::super::target_lock::TargetLock;
use super::super::{BackupError, EventSink, JobKind};
use super::send::Destination;

/// A destination this job holds the lock of.
pub(crate) struct Locked {
    pub dest: Destination,
    pub lock: TargetLock,
    /// The numbered folder the copy goes to on this destination.
    pub folder: String,
}

/// The job a run resumes: its id (its own lock, left by a killed run, is taken back) and the
/// folder it was numbered.
#[derive(Clone, Copy)]
pub(crate) struct Resuming<'a> {
    pub id: &'a str,
    pub folder: &'a str,
}

/// The outcome of locking every destination.
pub(crate) struct LockedDestinations {
    pub ready: Vec<Locked>,
    /// Destinations that could not be locked (or numbered), with why.
    pub failed: Vec<(String, BackupError)>,
    /// For a new job: the first folder number free on every locked destination.
    pub next_folder: u32,
}

/// Locks every destination in `dests` for job `job_id` and numbers its folder there. A new
/// job (`resuming` is `None`) reads each destination's history for the next free folder
/// number and takes the highest on all of them.
pub(crate) async fn lock_destinations(
    dests: &[Destination],
    job_id: &str,
    resuming: Option<Resuming<'_>>,
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
            Ok((lock, folder)) => {
                if resuming.is_none() {
                    locked.next_folder = locked.next_folder.max(folder_number(&folder));
                }
                locked.ready.push(Locked {
                    dest: dest.clone(),
                    lock,
                    folder,
                });
            }
            Err(err) => {
                events.error(format!("{}: {err}", dest.name));
                locked.failed.push((dest.name.clone(), err));
            }
        }
    }
    if resuming.is_none() {
        let folder = folder_name(locked.next_folder);
        for ready in &mut locked.ready {
            ready.folder.clone_from(&folder);
        }
    }
    locked
}

/// Locks `dest`; returns the lock and the folder for this job there (for a new job, the next
/// free one on this destination).
async fn lock_one(
    dest: &Destination,
    job_id: &str,
    resuming: Option<Resuming<'_>>,
    retry: &RetryPolicy,
    events: &EventSink,
) -> Result<(TargetLock, String), BackupError> {
    let lock = with_retry(retry, &format!("{}: locking", dest.name), events, |_| {
        TargetLock::acquire(&dest.dir, job_id, resuming.map(|r| r.id))
    })
    .await?;
    if let Some(old) = &lock.took_over {
        events.warn(format!(
            "{}: took over the lock of {old}, whose process is gone",
            dest.name
        ));
    }
    let folder = async {
        let history = dest.dir.load_history().await?;
        let Some(resumed) = resuming else {
            return dest.dir.next_folder(&history).await;
        };
        let taken_by = history
            .entries
            .iter()
            .find(|e| e.kind == JobKind::Backup && e.folder == resumed.folder && e.id != resumed.id);
        match taken_by {
            None => Ok(resumed.folder.to_owned()),
            Some(other) => {
                let next = dest.dir.next_folder(&history).await?;
                events.warn(format!(
                    "{}: folder {} there holds backup {}, listed while this job waited; this backup goes to {next} there",
                    dest.name, resumed.folder, other.id
                ));
                Ok(next)
            }
        }
    }
    .await;
    match folder {
        Ok(folder) => Ok((lock, folder)),
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

fn folder_number(folder: &str) -> u32 {
    super::super::directory::folder_number(folder).unwrap_or(0)
}
