//! A large store goes through backup and restore (as `new`) and every value comes back.

#![allow(clippy::unwrap_used)]

use sstore_core::backup::{
    EventSink, JobKind, JobStatus, RestoreMethod, RestoreRequest, run_backup, run_restore,
    run_verify,
};
use sstore_core::store::{CredentialSet, SecureStore};
use sstore_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_apps_and_ten_thousand_sets_round_trip() {
    let tmp = sstore_tests::scratch_dir();
    let store_path = tmp.path().join("store.db");
    let sets = populate(&store_path, 1000, 11);
    assert!(sets >= 10_000, "{sets} sets");
    let dir = local_directory(&tmp.path().join("backups"));
    let options = fast_options();

    let report = run_backup(
        &store_path,
        &dir,
        &passphrase(),
        &options,
        &EventSink::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.manifest.applications, 1000);
    assert_eq!(report.manifest.credential_sets, sets);
    assert_eq!(report.entry.folder, "sstorebr0000");
    assert!(
        report.manifest.backup_size < report.manifest.plaintext_size,
        "zstd is on by default"
    );

    let restored = tmp.path().join("restored").join("store.db");
    let request = RestoreRequest {
        backup_id: None,
        method: RestoreMethod::New,
        destination: restored.clone(),
        force: false,
        store_passphrase: Some(passphrase()),
        requested_by: None,
    };
    let restore = run_restore(&dir, &request, &passphrase(), &EventSink::default())
        .await
        .unwrap();
    assert_eq!(restore.store_passphrase_opens, Some(true));
    assert_eq!(assert_all_values(&restored), sets);
    let original = SecureStore::open(&store_path).unwrap().summary().unwrap();
    assert_eq!(
        SecureStore::open(&restored).unwrap().summary().unwrap(),
        original
    );

    // Restoring again as `new` onto the same path is refused without force.
    let err = run_restore(&dir, &request, &passphrase(), &EventSink::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");

    let history = dir.load_history().await.unwrap();
    let kinds: Vec<_> = history.entries.iter().map(|e| (e.kind, e.status)).collect();
    assert_eq!(
        kinds,
        [
            (JobKind::Backup, JobStatus::Succeeded),
            (JobKind::Restore, JobStatus::Succeeded),
            (JobKind::Restore, JobStatus::Failed)
        ]
    );
    assert!(run_verify(&dir, None, &passphrase()).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_backups_share_a_directory_and_restore_by_id() {
    let tmp = sstore_tests::scratch_dir();
    let store_path = tmp.path().join("store.db");
    populate(&store_path, 20, 3);
    let dir = local_directory(&tmp.path().join("backups"));
    let options = fast_options();
    let first = run_backup(
        &store_path,
        &dir,
        &passphrase(),
        &options,
        &EventSink::default(),
    )
    .await
    .unwrap();

    // Change the store, back it up again.
    let mut store = SecureStore::open(&store_path)
        .unwrap()
        .unlock(&passphrase())
        .unwrap();
    store
        .set_credentials(
            &CredentialSet::new("app-00001", "CONTOSO\\user000")
                .with("Windows User Name", "changed")
                .with("Windows Password", "changed-too"),
        )
        .unwrap();
    drop(store);
    let second = run_backup(
        &store_path,
        &dir,
        &passphrase(),
        &options,
        &EventSink::default(),
    )
    .await
    .unwrap();
    assert_eq!(second.entry.folder, "sstorebr0001");

    // Overwrite the live store with the first backup, chosen by id.
    let request = RestoreRequest {
        backup_id: Some(first.entry.id.clone()),
        method: RestoreMethod::Overwrite,
        destination: store_path.clone(),
        force: true,
        store_passphrase: None,
        requested_by: None,
    };
    run_restore(&dir, &request, &passphrase(), &EventSink::default())
        .await
        .unwrap();
    assert_all_values(&store_path);

    // Without an id, the newest successful backup is chosen.
    let newest = RestoreRequest {
        backup_id: None,
        ..request
    };
    let report = run_restore(&dir, &newest, &passphrase(), &EventSink::default())
        .await
        .unwrap();
    assert_eq!(report.manifest.backup_id, second.entry.id);
    let store = SecureStore::open(&store_path)
        .unwrap()
        .unlock(&passphrase())
        .unwrap();
    assert_eq!(
        store
            .credentials("app-00001", "CONTOSO\\user000")
            .unwrap()
            .value("Windows User Name"),
        Some("changed")
    );

    // An unknown id is a clear error naming it.
    let err = run_verify(&dir, Some("0123"), &passphrase())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no backup with id 0123"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_job_on_the_same_directory_is_refused() {
    let tmp = sstore_tests::scratch_dir();
    let store_path = tmp.path().join("store.db");
    populate(&store_path, 2, 1);
    let dir = local_directory(&tmp.path().join("backups"));
    let held = sstore_core::backup::JobLock::acquire(dir.staging(), "backup").unwrap();
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
    assert_eq!(err.category(), sstore_core::ErrorCategory::Locked, "{err}");
    assert!(err.to_string().contains("another sstore job"), "{err}");
    drop(held);
    run_backup(
        &store_path,
        &dir,
        &passphrase(),
        &options,
        &EventSink::default(),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlisted_folder_is_reported_and_never_reused() {
    let tmp = sstore_tests::scratch_dir();
    let store_path = tmp.path().join("store.db");
    populate(&store_path, 2, 1);
    let root = tmp.path().join("backups");
    let dir = local_directory(&root);
    let options = fast_options();
    run_backup(
        &store_path,
        &dir,
        &passphrase(),
        &options,
        &EventSink::default(),
    )
    .await
    .unwrap();
    // What a job killed while publishing leaves: a folder with files, not in the history.
    std::fs::create_dir_all(root.join("sstorebr0004")).unwrap();
    std::fs::write(root.join("sstorebr0004/sstorebackup.bak"), b"partial").unwrap();
    let history = dir.load_history().await.unwrap();
    assert_eq!(
        dir.unlisted_folders(&history).await.unwrap(),
        ["sstorebr0004"]
    );
    let next = run_backup(
        &store_path,
        &dir,
        &passphrase(),
        &options,
        &EventSink::default(),
    )
    .await
    .unwrap();
    assert_eq!(next.entry.folder, "sstorebr0005");
    // Restore ignores it: the newest listed backup is used.
    let report = run_verify(&dir, None, &passphrase()).await.unwrap();
    assert_eq!(report.entry.id, next.entry.id);
}
