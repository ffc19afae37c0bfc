//! Faults injected by the conformance kit's decorator around the real local target: the job
//! fails at the step that failed, says so, and the history tells the truth; locks are taken
//! with retries by new and resumed jobs alike.

// Helpers outside `#[test]` functions unwrap too.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sstore_conformance::faults::{FaultKind, FaultPlan, FaultyTarget, Operation, Rule};
use sstore_core::backup::target_lock::TARGET_LOCK_FILE;
use sstore_core::backup::{
    BackupDirectory, BackupJob, BackupKeys, Destination, EventSink, JobEvent, JobStatus, LOG_FILE,
    RetryPolicy, TransferOptions, run_backup, run_job, run_verify,
};
use sstore_target_local::LocalTarget;
use sstore_tests::*;

/// The local target at `root` with faults injected by `rules`.
fn faulty(root: &Path, rules: impl IntoIterator<Item = Rule>) -> FaultyTarget {
    FaultyTarget::new(Arc::new(LocalTarget::new(root)), FaultPlan::new(rules))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_at_any_publishing_step_is_recorded_as_failed() {
    for (step, suffix) in [
        ("backup file", "sstorebackup.bak"),
        ("manifest", "sstoremanifest.json"),
        ("log", LOG_FILE),
    ] {
        let tmp = sstore_tests::scratch_dir();
        let store_path = tmp.path().join("store.db");
        populate(&store_path, 3, 2);
        let root = tmp.path().join("backups");
        let target = faulty(
            &root,
            [Rule::new(Operation::Put, FaultKind::NoSpace).on_keys_ending(suffix)],
        );
        let dir = BackupDirectory::new(Arc::new(target), root.join(".sstore-staging"));
        let options = fast_options();
        let err = run_backup(
            &store_path,
            &dir,
            &passphrase(),
            &options,
            &EventSink::default(),
        )
        .await
        .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(suffix) && message.contains("no space left"),
            "{step}: {message}"
        );
        let history = dir.load_history().await.unwrap();
        assert_eq!(history.entries.len(), 1, "{step}");
        let entry = &history.entries[0];
        assert_eq!(entry.status, JobStatus::Failed, "{step}");
        assert!(
            entry.failure_message.as_deref().unwrap().contains(suffix),
            "{step}"
        );
        assert!(history.newest_successful_backup().is_none(), "{step}");
        // The staged copy stays for the next run, which resumes the transfer: the same backup
        // ends up published, verified and listed as succeeded.
        let mut staged = staging_entries(&root);
        staged.sort();
        let mut expected = vec![std::ffi::OsString::from(&entry.id), "sstore.lock".into()];
        expected.sort();
        assert_eq!(staged, expected, "{step}");
        let healthy = local_directory(&root);
        let job = BackupJob {
            store_path: store_path.clone(),
            staging: healthy.staging().to_owned(),
            destinations: vec![Destination {
                name: "backups".into(),
                dir: healthy.clone(),
                local: true,
            }],
            journal: None,
            transfer: TransferOptions::default(),
            events: EventSink::default(),
            resume_only: true,
            force: false,
            stop: Default::default(),
            requested_by: None,
        };
        let report = run_job(&job, None, &options).await.unwrap();
        let resumed = report.resumed.unwrap();
        assert!(resumed.succeeded(), "{step}: {:?}", resumed.error);
        assert!(report.new.is_none());
        let history = healthy.load_history().await.unwrap();
        assert_eq!(history.entries.len(), 1, "{step}");
        assert_eq!(history.entries[0].status, JobStatus::Succeeded, "{step}");
        assert_eq!(history.entries[0].id, entry.id, "{step}");
        assert_eq!(staging_entries(&root), ["sstore.lock"], "{step}");
        run_verify(&healthy, None, &passphrase()).await.unwrap();
        // Nothing left to resume.
        let err = run_job(&job, None, &options).await.unwrap_err();
        assert!(err.to_string().contains("nothing to resume"), "{err}");
    }
}

/// Retries that are quick but real: up to 4 attempts a few milliseconds apart.
fn fast_retries() -> TransferOptions {
    TransferOptions {
        retry: RetryPolicy {
            first_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(10),
            deadline: Duration::from_secs(30),
            max_attempts: 4,
        },
        ..TransferOptions::default()
    }
}

/// An event sink that keeps every warning, and the warnings kept.
fn warnings() -> (EventSink, Arc<Mutex<Vec<String>>>) {
    let kept = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let kept = kept.clone();
        EventSink::new(move |event| {
            if let JobEvent::Warning { message } = event {
                kept.lock().unwrap().push(message.clone());
            }
        })
    };
    (sink, kept)
}

/// A rule failing the first two puts of the destination lock with a temporary error.
fn lock_fails_twice() -> Rule {
    Rule::new(Operation::Put, FaultKind::Temporary)
        .on_keys_ending(TARGET_LOCK_FILE)
        .times(2)
}

/// Asserts that `dest`'s lock was retried twice: 3 lock puts, and a warning for each retry.
fn assert_lock_retried(dest: &str, lock: &FaultyTarget, warnings: &[String]) {
    assert_eq!(lock.plan().calls(), [3], "{dest}: lock puts; {warnings:#?}");
    let retries: Vec<&String> = warnings
        .iter()
        .filter(|w| w.starts_with(&format!("{dest}: locking: ")))
        .collect();
    assert_eq!(retries.len(), 2, "{dest}: {warnings:#?}");
    for (attempt, warning) in retries.iter().enumerate() {
        assert!(
            warning.contains(&format!(
                "attempt {} failed with a temporary error",
                attempt + 1
            )) && warning.contains("injected fault"),
            "{dest}: {warning}"
        );
    }
}

/// Since the engine took one job path, a resumed job and a new job lock their destinations
/// the same way (with the job's retry policy): a lock put failing twice with a temporary
/// error is retried by both, and both jobs succeed where a lock taken without retries would
/// have failed the destination.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_job_and_a_new_job_take_their_locks_with_the_same_retries() {
    let tmp = sstore_tests::scratch_dir();
    let store_path = tmp.path().join("store.db");
    populate(&store_path, 3, 2);
    let staging = tmp.path().join("staging");
    let (root_a, root_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let key = BackupKeys::passphrase(passphrase());
    let destination = |name: &str, target: &FaultyTarget| Destination {
        name: name.into(),
        dir: BackupDirectory::new(Arc::new(target.clone()), staging.clone()),
        local: true,
    };

    // (a) A new job: destination a's lock fails twice, then works; destination b refuses the
    // backup file for good, so the staged copy stays pending for it.
    let a = faulty(&root_a, [lock_fails_twice()]);
    let b = faulty(
        &root_b,
        [Rule::new(Operation::Put, FaultKind::Permanent).on_keys_ending(".bak")],
    );
    let (events, seen) = warnings();
    let job = BackupJob {
        store_path: store_path.clone(),
        staging: staging.clone(),
        destinations: vec![destination("a", &a), destination("b", &b)],
        journal: None,
        transfer: fast_retries(),
        events,
        resume_only: false,
        force: false,
        stop: Default::default(),
        requested_by: None,
    };
    let report = run_job(&job, Some(&key), &fast_options()).await.unwrap();
    assert!(report.resumed.is_none());
    let new = report.new.unwrap();
    assert!(!new.succeeded(), "b refused the backup file");
    let seen = seen.lock().unwrap().clone();
    assert_lock_retried("a", &a, &seen);
    // a has the backup, listed as succeeded; b does not.
    let history = local_directory(&root_a).load_history().await.unwrap();
    assert_eq!(history.entries.len(), 1);
    assert_eq!(history.entries[0].status, JobStatus::Succeeded);
    assert_eq!(history.entries[0].id, new.record.id);
    let history = local_directory(&root_b).load_history().await.unwrap();
    assert!(history.newest_successful_backup().is_none());
    assert!(!root_a.join(TARGET_LOCK_FILE).exists(), "a's lock released");

    // (b) A resume-only job: b works again, but its lock fails twice, then works.
    let b = faulty(&root_b, [lock_fails_twice()]);
    let (events, seen) = warnings();
    let job = BackupJob {
        destinations: vec![destination("b", &b)],
        events,
        resume_only: true,
        ..job
    };
    let report = run_job(&job, None, &fast_options()).await.unwrap();
    assert!(report.new.is_none());
    let resumed = report.resumed.unwrap();
    assert!(resumed.succeeded(), "{:?}", resumed.error);
    assert_eq!(resumed.record.id, new.record.id);
    let seen = seen.lock().unwrap().clone();
    assert_lock_retried("b", &b, &seen);
    let healthy = local_directory(&root_b);
    let history = healthy.load_history().await.unwrap();
    assert_eq!(
        history.newest_successful_backup().map(|e| e.id.as_str()),
        Some(new.record.id.as_str())
    );
    assert!(!root_b.join(TARGET_LOCK_FILE).exists(), "b's lock released");
    run_verify(&healthy, None, &passphrase()).await.unwrap();
}

/// A job that could not lock a destination (held by a job from another staging folder) keeps
/// its staged copy pending for it. When that other job lists a backup there under the same
/// folder number, the resumed copy goes to the next free folder there instead of failing
/// forever on an occupied folder: no folder holds two backups, and both are listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_copy_whose_folder_was_taken_meanwhile_goes_to_the_next_free_one() {
    let tmp = sstore_tests::scratch_dir();
    let store_path = tmp.path().join("store.db");
    populate(&store_path, 3, 2);
    let (staging_1, staging_2) = (tmp.path().join("staging-1"), tmp.path().join("staging-2"));
    let (root_a, root_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let key = BackupKeys::passphrase(passphrase());
    let destination = |name: &str, target: FaultyTarget, staging: &Path| Destination {
        name: name.into(),
        dir: BackupDirectory::new(Arc::new(target), staging.to_owned()),
        local: false,
    };

    // Job 1 reaches a; b's lock cannot be taken, so b has no entry and the copy stays pending.
    let b_locked = Rule::new(Operation::Put, FaultKind::Permanent).on_keys_ending(TARGET_LOCK_FILE);
    let job_1 = BackupJob {
        store_path: store_path.clone(),
        staging: staging_1.clone(),
        destinations: vec![
            destination("a", faulty(&root_a, []), &staging_1),
            destination("b", faulty(&root_b, [b_locked]), &staging_1),
        ],
        journal: None,
        transfer: fast_retries(),
        events: EventSink::default(),
        resume_only: false,
        force: false,
        stop: Default::default(),
        requested_by: None,
    };
    let first = run_job(&job_1, Some(&key), &fast_options())
        .await
        .unwrap()
        .new
        .unwrap();
    assert!(!first.succeeded());
    assert_eq!(first.record.folder, "sstorebr0000");
    assert!(
        local_directory(&root_b)
            .load_history()
            .await
            .unwrap()
            .entries
            .is_empty()
    );

    // Job 2, from another staging folder, lists its backup on b as sstorebr0000.
    let job_2 = BackupJob {
        staging: staging_2.clone(),
        destinations: vec![destination("b", faulty(&root_b, []), &staging_2)],
        ..job_1.clone()
    };
    let second = run_job(&job_2, Some(&key), &fast_options())
        .await
        .unwrap()
        .new
        .unwrap();
    assert!(second.succeeded(), "{:?}", second.error);
    assert_eq!(second.record.folder, "sstorebr0000");

    // Job 1 resumed: its copy goes to sstorebr0001 on b, and says so.
    let (events, seen) = warnings();
    let resume = BackupJob {
        destinations: vec![destination("b", faulty(&root_b, []), &staging_1)],
        events,
        resume_only: true,
        ..job_1
    };
    let resumed = run_job(&resume, None, &fast_options())
        .await
        .unwrap()
        .resumed
        .unwrap();
    assert!(resumed.succeeded(), "{:?}", resumed.error);
    assert_eq!(resumed.record.id, first.record.id);
    let copy = resumed
        .record
        .copies
        .iter()
        .find(|c| c.name == "b")
        .unwrap();
    assert_eq!(copy.folder.as_deref(), Some("sstorebr0001"));
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|w| w.contains("folder sstorebr0000 there holds backup")
                && w.contains(&second.record.id)
                && w.contains("goes to sstorebr0001")),
        "{seen:#?}"
    );
    let b = local_directory(&root_b);
    let history = b.load_history().await.unwrap();
    let listed: Vec<(&str, &str)> = history
        .entries
        .iter()
        .map(|e| (e.folder.as_str(), e.id.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            ("sstorebr0000", second.record.id.as_str()),
            ("sstorebr0001", first.record.id.as_str())
        ]
    );
    for id in [&first.record.id, &second.record.id] {
        run_verify(&b, Some(id), &passphrase()).await.unwrap();
    }
    let left: Vec<_> = std::fs::read_dir(&staging_1)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        ["sstore.lock"],
        "the staged copy is gone once b has it"
    );
}
