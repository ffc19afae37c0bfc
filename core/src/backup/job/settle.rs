//! Step 5: settle. Once every copy has an outcome, each destination's history gets exactly
//! one entry for this job: the backup, listed, where its copy verified; the failure (with the
//! job log beside it) where it did not. Then the locks are released, the job's final state is
//! decided ([`final_state`], a pure function), the staged copy is removed (or kept for a later
//! run), and the summary is reported. A job stopped for a shutdown settles nothing: it releases
//! its locks and stays pending, to be resumed.

use std::sync::Arc;
use std::time::Instant;

use super::super::directory::LOG_FILE;
use super::super::{
    BackupDirectory, BackupError, CopyRecord, CopyState, EventSink, HistoryEntry, JobEvent, JobLog,
    JobState, JobStatus, StopReason, StopSignal,
};
use super::fan_out::CopyOutcome;
use super::lock;
use super::pending::STAGED_RECORD;
use super::stage::StagedBackup;
use super::tracker::Tracker;
use super::{JobOutcome, TransferOptions};
use crate::target::{self, PutMode};

/// The job's final state: `cancelled` when an operator cancelled it, `succeeded` when the
/// backup was staged and every copy is listed, `partially succeeded` when some are, `failed`
/// otherwise (nothing staged, or no copy).
pub(crate) fn final_state(staged: bool, copies: &[CopyRecord], cancelled: bool) -> JobState {
    let listed = copies
        .iter()
        .filter(|c| c.state == CopyState::Succeeded)
        .count();
    if cancelled {
        return JobState::Cancelled;
    }
    match (staged, listed) {
        (true, n) if n > 0 && n == copies.len() => JobState::Succeeded,
        (true, n) if n > 0 => JobState::PartiallySucceeded,
        _ => JobState::Failed,
    }
}

/// What settling needs from the job run.
pub(crate) struct Settling<'a> {
    pub tracker: &'a Arc<Tracker>,
    pub events: &'a EventSink,
    pub log: &'a JobLog,
    pub transfer: &'a TransferOptions,
    pub clock: Instant,
    pub stop: &'a StopSignal,
}

/// Settles the job: lists or records the failure on every destination that was locked,
/// releases the locks, and decides and reports the outcome.
pub(crate) async fn settle(
    s: Settling<'_>,
    staged: Option<Arc<StagedBackup>>,
    mut entry: HistoryEntry,
    outcomes: Vec<CopyOutcome>,
    error: Option<BackupError>,
) -> JobOutcome {
    if let Some((StopReason::ShutDown, _)) = s.stop.reason()
        && staged.is_some()
    {
        return leave_to_resume(s, staged, entry, outcomes).await;
    }
    // The copies as they will be listed: the ones that verified, and the rest as they are.
    let mut copies = s.tracker.snapshot().copies;
    for outcome in outcomes.iter().filter(|o| o.result.is_ok()) {
        if let Some(c) = copies
            .iter_mut()
            .find(|c| c.name == outcome.locked.dest.name)
        {
            c.state = CopyState::Succeeded;
            c.message = None;
        }
    }
    if copies.len() > 1 && staged.is_some() {
        entry.copies = copies;
    }
    for outcome in outcomes {
        let name = outcome.locked.dest.name.clone();
        let dir = &outcome.locked.dest.dir;
        match outcome.result {
            Ok(()) => {
                let mut listed = entry.clone();
                listed.folder.clone_from(&outcome.locked.folder);
                listed.status = JobStatus::Succeeded;
                listed.finished = super::super::now_rfc3339();
                listed.warnings = s.log.warnings();
                listed.errors = s.log.errors();
                let recorded = super::super::retry::with_retry(
                    &s.transfer.retry,
                    &format!("{name}: recording the history"),
                    s.events,
                    |_| dir.record(listed.clone()),
                )
                .await;
                match recorded {
                    Ok(()) => {
                        s.tracker.set_copy(&name, CopyState::Succeeded, None);
                        s.events.info(format!("{name}: copy published and listed"));
                        s.events.emit(JobEvent::TargetDone {
                            target: name.clone(),
                            ok: true,
                            message: None,
                        });
                    }
                    Err(e) => {
                        let message = e.to_string();
                        s.events.error(format!("{name}: {message}"));
                        s.tracker
                            .set_copy(&name, CopyState::Failed, Some(message.clone()));
                        done_failed(s.events, &name, message);
                    }
                }
            }
            Err(message) => {
                let entry = HistoryEntry {
                    folder: outcome.locked.folder.clone(),
                    ..entry.clone()
                };
                record_failure(dir, &entry, &message, s.log).await;
                done_failed(s.events, &name, message);
            }
        }
        lock::release(&outcome.locked.dest, outcome.locked.lock, s.events).await;
    }
    conclude(s, staged, entry, error)
}

fn done_failed(events: &EventSink, name: &str, message: String) {
    events.emit(JobEvent::TargetDone {
        target: name.to_owned(),
        ok: false,
        message: Some(message),
    });
}

/// A job stopped for a shutdown with its backup staged: the locks are released, the record
/// stays as it is (pending), and the next run resumes it from the staged copy.
async fn leave_to_resume(
    s: Settling<'_>,
    staged: Option<Arc<StagedBackup>>,
    entry: HistoryEntry,
    outcomes: Vec<CopyOutcome>,
) -> JobOutcome {
    for outcome in outcomes {
        lock::release(&outcome.locked.dest, outcome.locked.lock, s.events).await;
    }
    let record = s.tracker.snapshot();
    s.events.warn(format!(
        "backup {} stopped ({}); the staged copy stays in {} and the next run resumes it",
        record.id,
        s.stop.reason().map_or("stopped", |(_, by)| by),
        record.staging.display()
    ));
    let _ = std::fs::write(record.staging.join(LOG_FILE), s.log.render());
    JobOutcome {
        error: Some(BackupError::Stopped {
            id: record.id.clone(),
        }),
        manifest: staged.map(|s| s.manifest.clone()),
        record,
        entry,
    }
}

/// Best effort: the job log where the folder would be, and the failure in the history.
async fn record_failure(dir: &BackupDirectory, entry: &HistoryEntry, message: &str, log: &JobLog) {
    if let Ok(key) = dir.object(&entry.folder, LOG_FILE) {
        let _ = target::put_bytes(
            dir.target(),
            &key,
            log.render().as_bytes(),
            PutMode::Overwrite,
        )
        .await;
    }
    let mut failed = entry.clone();
    failed.status = JobStatus::Failed;
    failed.failure_message = Some(message.to_owned());
    failed.finished = super::super::now_rfc3339();
    failed.warnings = log.warnings();
    failed.errors = log.errors();
    let _ = dir.record(failed).await;
}

/// Decides the final state, records it, keeps or removes the staged copy, and reports the
/// summary.
fn conclude(
    s: Settling<'_>,
    staged: Option<Arc<StagedBackup>>,
    mut entry: HistoryEntry,
    error: Option<BackupError>,
) -> JobOutcome {
    let record = s.tracker.snapshot();
    let cancelled = s.stop.reason().is_some();
    let state = final_state(staged.is_some(), &record.copies, cancelled);
    let listed = record.succeeded_copies().count();
    match state {
        JobState::Succeeded => s.events.info(format!(
            "backup {} succeeded on every destination",
            record.id
        )),
        JobState::PartiallySucceeded => s.events.warn(format!(
            "backup {} partially succeeded: {listed} of {} destinations have it",
            record.id,
            record.copies.len()
        )),
        JobState::Cancelled => s.events.warn(format!(
            "backup {} cancelled ({}); nothing was listed",
            record.id,
            s.stop.reason().map_or("stopped", |(_, by)| by)
        )),
        _ => s.events.error(format!("backup {} failed", record.id)),
    }
    let seconds = s.clock.elapsed().as_secs_f64();
    let sent: u64 = record.copies.iter().map(|c| c.bytes_sent).sum();
    let message = error.as_ref().map(ToString::to_string);
    s.tracker.update(|r| {
        r.state = state;
        r.finished = super::super::now_rfc3339();
        r.rate_mib_s = (seconds > 0.0 && sent > 0).then(|| sent as f64 / 1_048_576.0 / seconds);
        r.warnings = s.log.warnings();
        r.errors = s.log.errors();
        r.failure_message = message.clone();
    });
    let record = s.tracker.snapshot();

    let staged_dir = record.staging.clone();
    if state == JobState::Cancelled || (state == JobState::Succeeded && !s.transfer.keep_local) {
        let _ = std::fs::remove_dir_all(&staged_dir);
    } else if state == JobState::Succeeded {
        let _ = std::fs::remove_file(staged_dir.join(STAGED_RECORD));
        let _ = std::fs::write(staged_dir.join(LOG_FILE), s.log.render());
        s.events.info(format!(
            "the staged copy is kept in {}",
            staged_dir.display()
        ));
    } else if staged.is_some() {
        let _ = std::fs::write(staged_dir.join(LOG_FILE), s.log.render());
        s.events.warn(format!(
            "the staged copy stays in {} until every destination has it; the next `sstore backup` resumes the transfer",
            staged_dir.display()
        ));
    }
    s.events.emit(JobEvent::Summary {
        job_id: record.id.clone(),
        status: state.to_string(),
        folder: record.folder.clone(),
        bytes: record.backup_size.unwrap_or(0),
        seconds,
        succeeded: record.succeeded_copies().map(|c| c.name.clone()).collect(),
        failed: record.unfinished_copies().map(|c| c.name.clone()).collect(),
    });
    entry.finished = record.finished.clone();
    if state != JobState::Succeeded && entry.failure_message.is_none() {
        entry.failure_message = message;
    }
    let error = match state {
        JobState::Succeeded => None,
        JobState::Cancelled => Some(BackupError::Cancelled {
            id: record.id.clone(),
            by: s
                .stop
                .reason()
                .map_or_else(String::new, |(_, by)| by.to_owned()),
        }),
        _ => Some(error.unwrap_or_else(|| BackupError::NotEveryDestination {
            id: record.id.clone(),
            failed: record.unfinished_copies().map(|c| c.name.clone()).collect(),
        })),
    };
    JobOutcome {
        error,
        manifest: staged.map(|s| s.manifest.clone()),
        record,
        entry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(state: CopyState) -> CopyRecord {
        CopyRecord {
            name: format!("{state}"),
            location: "x".into(),
            state,
            bytes_sent: 0,
            attempts: 0,
            message: None,
            folder: None,
        }
    }

    #[test]
    fn the_final_state_follows_what_was_staged_and_listed() {
        use CopyState::*;
        let cases: &[(bool, &[CopyState], JobState)] = &[
            (true, &[Succeeded], JobState::Succeeded),
            (true, &[Succeeded, Succeeded], JobState::Succeeded),
            (true, &[Succeeded, Failed], JobState::PartiallySucceeded),
            (
                true,
                &[Failed, Succeeded, Verifying],
                JobState::PartiallySucceeded,
            ),
            (true, &[Failed], JobState::Failed),
            (true, &[Failed, Pending], JobState::Failed),
            (true, &[Verifying], JobState::Failed),
            (true, &[], JobState::Failed),
            // Nothing staged: copies listed earlier (a resumed job's) do not make it a success.
            (false, &[Succeeded], JobState::Failed),
            (false, &[], JobState::Failed),
        ];
        for (staged, states, expected) in cases {
            let copies: Vec<CopyRecord> = states.iter().map(|s| copy(*s)).collect();
            assert_eq!(
                final_state(*staged, &copies, false),
                *expected,
                "staged {staged}, copies {states:?}"
            );
            assert_eq!(final_state(*staged, &copies, true), JobState::Cancelled);
        }
    }
}
