//! Step 4: fan out. The staged backup goes to every locked destination at once, at most
//! `[transfer] concurrency` at a time ([`super::send`] does one); each copy's state, attempts
//! and bytes are kept in the job record as it goes. The locks stay held: settling lists the
//! backup and releases them. A stop request abandons the transfers still running (nothing
//! partial is visible: every put publishes atomically).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::super::{BackupError, CopyState, EventSink, JobLog, JobState, StopSignal};
use super::TransferOptions;
use super::lock::Locked;
use super::send::{CopyJob, send_copy};
use super::stage::StagedBackup;
use super::tracker::Tracker;

/// What became of one locked destination.
pub(crate) struct CopyOutcome {
    pub locked: Locked,
    /// `Err` holds why the copy failed (its message for the record and the history).
    pub result: Result<(), String>,
}

/// Sends `staged` to every destination in `ready`. Returns each one's outcome (in the order
/// given) and the first error. A copy abandoned because the job was stopped fails with the
/// stop's reason.
pub(crate) async fn fan_out(
    ready: Vec<Locked>,
    staged: Arc<StagedBackup>,
    transfer: &TransferOptions,
    tracker: &Arc<Tracker>,
    events: &EventSink,
    log: &JobLog,
    stop: &StopSignal,
) -> (Vec<CopyOutcome>, Option<BackupError>) {
    tracker.set_state(JobState::Transferring);
    let semaphore = Arc::new(tokio::sync::Semaphore::new(transfer.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut results: Vec<Option<Result<(), String>>> = ready.iter().map(|_| None).collect();
    for (index, locked) in ready.iter().enumerate() {
        let dest = locked.dest.clone();
        let name = dest.name.clone();
        let on_state = {
            let (tracker, name) = (tracker.clone(), name.clone());
            Arc::new(move |state| tracker.set_copy(&name, state, None))
        };
        let copy = CopyJob {
            staged: staged.clone(),
            folder: locked.folder.clone(),
            retry: transfer.retry,
            events: events.clone(),
            log: log.clone(),
            percentage: transfer.percentage,
            on_state,
            attempts: Arc::new(AtomicU32::new(0)),
            bytes_sent: Arc::new(AtomicU64::new(0)),
        };
        let (semaphore, tracker, events) = (semaphore.clone(), tracker.clone(), events.clone());
        tasks.spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            tracker.set_copy(&name, CopyState::Transferring, None);
            events.info(format!(
                "{name}: sending to {}/{}",
                dest.dir.location(),
                copy.folder
            ));
            let result = send_copy(&dest, &copy).await;
            tracker.count_transfer(
                &name,
                copy.attempts.load(Ordering::Relaxed),
                copy.bytes_sent.load(Ordering::Relaxed),
            );
            if let Err(e) = &result {
                events.error(format!("{name}: copy failed: {e}"));
                tracker.set_copy(&name, CopyState::Failed, Some(e.to_string()));
            }
            (index, result)
        });
    }
    let mut first_error = None;
    let mut stopping = false;
    loop {
        let joined = tokio::select! {
            joined = tasks.join_next() => joined,
            () = stop.stopped(), if !stopping => {
                stopping = true;
                tasks.abort_all();
                continue;
            }
        };
        let Some(joined) = joined else { break };
        match joined {
            Ok((index, result)) => {
                results[index] = Some(result.map_err(|e| {
                    let message = e.to_string();
                    first_error.get_or_insert(e);
                    message
                }));
            }
            Err(e) if e.is_cancelled() => {}
            // A copy task that panicked: its copy stays unfinished in the record and the next
            // run resumes it.
            Err(e) => {
                first_error.get_or_insert(BackupError::Task(format!(
                    "a transfer stopped unexpectedly: {e}"
                )));
            }
        }
    }
    let unfinished = match stop.reason() {
        Some((_, by)) => format!("stopped by {by}"),
        None => "the transfer stopped unexpectedly".to_owned(),
    };
    let outcomes = ready
        .into_iter()
        .zip(results)
        .map(|(locked, result)| CopyOutcome {
            locked,
            result: result.unwrap_or_else(|| Err(unfinished.clone())),
        })
        .collect();
    (outcomes, first_error)
}
