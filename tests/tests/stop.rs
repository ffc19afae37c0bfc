//! Stopping a running backup job, as the service does: a cancelled job ends `cancelled`,
//! lists nothing, removes its staged copy and releases its locks; a job stopped for a
//! shutdown releases its locks and stays pending, and the next run resumes it to success.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use sstore_conformance::faults::{FaultKind, FaultPlan, FaultyTarget, Operation, Rule};
use sstore_core::backup::{
    BackupDirectory, BackupError, BackupJob, BackupKeys, CopyState, Destination, EventSink,
    JobEvent, JobState, JobStatus, StopSignal, TransferOptions, run_job,
};
use sstore_core::target::Target;
use sstore_target_local::LocalTarget;
use sstore_tests::*;

/// A job to a local folder whose backup-file upload crawls (a paused body), with an event
/// observer that says when the transfer is under way.
fn slow_job(
    root: &std::path::Path,
    store_path: &std::path::Path,
    stop: StopSignal,
) -> (BackupJob, Arc<tokio::sync::Notify>) {
    let target: Arc<dyn Target> = Arc::new(FaultyTarget::new(
        Arc::new(LocalTarget::new(root)),
        FaultPlan::new([Rule::new(Operation::Put, FaultKind::SlowBody)
            .on_keys_ending(".bak")
            .ms(60_000)]),
    ));
    let dir = BackupDirectory::new(target, root.join(".sstore-staging"));
    let transferring = Arc::new(tokio::sync::Notify::new());
    let seen = transferring.clone();
    let job = BackupJob {
        store_path: store_path.to_owned(),
        staging: dir.staging().to_owned(),
        destinations: vec![Destination {
            name: "slow".into(),
            dir,
            // Streamed through `put`, so the slow body applies.
            local: false,
        }],
        journal: None,
        transfer: TransferOptions::default(),
        events: EventSink::new(move |event| {
            if let JobEvent::TargetState { state, .. } = event
                && state == &CopyState::Transferring.to_string()
            {
                seen.notify_one();
            }
        }),
        resume_only: false,
        force: false,
        stop,
        requested_by: None,
    };
    (job, transferring)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_lists_nothing_and_leaves_nothing_behind() {
    let tmp = sstore_tests::scratch_dir();
    let store_path = tmp.path().join("store.db");
    populate(&store_path, 3, 2);
    let root = tmp.path().join("backups");
    let stop = StopSignal::new();
    let (job, transferring) = slow_job(&root, &store_path, stop.clone());
    let keys = BackupKeys::passphrase(passphrase());
    let options = fast_options();
    let running = tokio::spawn(async move { run_job(&job, Some(&keys), &options).await });
    transferring.notified().await;
    stop.cancel("operator alice");
    let report = tokio::time::timeout(std::time::Duration::from_secs(30), running)
        .await
        .expect("the cancelled job did not stop")
        .unwrap()
        .unwrap();
    let outcome = report.new.unwrap();
    assert_eq!(outcome.record.state, JobState::Cancelled);
    assert!(
        matches!(&outcome.error, Some(BackupError::Cancelled { by, .. }) if by == "operator alice"),
        "{:?}",
        outcome.error
    );
    let dir = local_directory(&root);
    let history = dir.load_history().await.unwrap();
    assert!(history.newest_successful_backup().is_none());
    assert_eq!(history.entries.len(), 1);
    assert_eq!(history.entries[0].status, JobStatus::Failed);
    assert!(
        history.entries[0]
            .failure_message
            .as_deref()
            .unwrap()
            .contains("stopped by operator alice"),
        "{:?}",
        history.entries[0]
    );
    // No lock, no staged copy; the next backup runs.
    assert!(!root.join("sstore.lock").exists());
    assert_eq!(staging_entries(&root), ["sstore.lock"]);
    let published = sstore_core::backup::run_backup(
        &store_path,
        &dir,
        &passphrase(),
        &fast_options(),
        &EventSink::default(),
    )
    .await
    .unwrap();
    assert_eq!(published.entry.folder, "sstorebr0001");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_stopped_for_a_shutdown_is_resumed_by_the_next_run() {
    let tmp = sstore_tests::scratch_dir();
    let store_path = tmp.path().join("store.db");
    populate(&store_path, 3, 2);
    let root = tmp.path().join("backups");
    let stop = StopSignal::new();
    let (job, transferring) = slow_job(&root, &store_path, stop.clone());
    let keys = BackupKeys::passphrase(passphrase());
    let options = fast_options();
    let running = tokio::spawn(async move { run_job(&job, Some(&keys), &options).await });
    transferring.notified().await;
    stop.shut_down();
    let report = tokio::time::timeout(std::time::Duration::from_secs(30), running)
        .await
        .expect("the stopped job did not stop")
        .unwrap()
        .unwrap();
    let outcome = report.new.unwrap();
    assert!(
        !outcome.record.state.is_finished(),
        "{}",
        outcome.record.state
    );
    assert!(matches!(outcome.error, Some(BackupError::Stopped { .. })));
    assert!(
        !root.join("sstore.lock").exists(),
        "the lock was not released"
    );
    let dir = local_directory(&root);
    assert!(dir.load_history().await.unwrap().entries.is_empty());

    // The next run, on a healthy target, finishes it: the same backup, listed.
    let job = BackupJob {
        store_path: store_path.clone(),
        staging: dir.staging().to_owned(),
        destinations: vec![Destination {
            name: "slow".into(),
            dir: dir.clone(),
            local: true,
        }],
        journal: None,
        transfer: TransferOptions::default(),
        events: EventSink::default(),
        resume_only: true,
        force: false,
        stop: StopSignal::default(),
        requested_by: None,
    };
    let report = run_job(&job, None, &fast_options()).await.unwrap();
    let resumed = report.resumed.unwrap();
    assert!(resumed.succeeded(), "{:?}", resumed.error);
    assert_eq!(resumed.record.id, outcome.record.id);
    let history = dir.load_history().await.unwrap();
    assert_eq!(
        history.newest_successful_backup().unwrap().id,
        outcome.record.id
    );
}
