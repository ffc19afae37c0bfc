//! The folder a restore writes into: locked while the restore runs, and swept of the work files
//! a killed restore left there (the kill soak found them piling up beside restored stores).

#![allow(clippy::unwrap_used)]

use sstore_core::ErrorCategory;
use sstore_core::backup::{
    EventSink, JobEvent, RestoreMethod, RestoreRequest, run_backup, run_restore,
};
use sstore_tests::*;

fn request(destination: std::path::PathBuf) -> RestoreRequest {
    RestoreRequest {
        backup_id: None,
        method: RestoreMethod::New,
        destination,
        force: false,
        store_passphrase: None,
        requested_by: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_sweeps_what_a_killed_restore_left_and_holds_its_folder() {
    let tmp = scratch_dir();
    let store = tmp.path().join("store.db");
    populate(&store, 3, 2);
    let dir = local_directory(&tmp.path().join("backups"));
    run_backup(
        &store,
        &dir,
        &passphrase(),
        &fast_options(),
        &EventSink::default(),
    )
    .await
    .unwrap();
    let restores = tmp.path().join("restores");
    std::fs::create_dir_all(&restores).unwrap();
    // What a restore killed before its rename leaves, and files that are not that.
    let left = restores.join(".earlier.db.restore-0123456789ab.tmp");
    std::fs::write(&left, b"half a store").unwrap();
    let kept = [
        restores.join("notes.tmp"),
        restores.join(".earlier.db.snapshot-0123456789ab.tmp"),
    ];
    for file in &kept {
        std::fs::write(file, b"not a restore's").unwrap();
    }

    // Another restore holds the folder: this one is refused and writes nothing.
    let folder = std::fs::File::open(&restores).unwrap();
    folder.lock().unwrap();
    let err = run_restore(
        &dir,
        &request(restores.join("copy.db")),
        &passphrase(),
        &EventSink::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Locked, "{err}");
    assert!(
        err.to_string()
            .contains("another restore is writing into this folder"),
        "{err}"
    );
    assert!(!restores.join("copy.db").exists());
    assert!(left.exists(), "nothing is swept without the folder's lock");
    folder.unlock().unwrap();

    // With the folder free, the restore removes the leftover (and says so), and only it.
    let warnings = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let events = {
        let warnings = warnings.clone();
        EventSink::new(move |e| {
            if let JobEvent::Warning { message } = e {
                warnings.lock().unwrap().push(message.clone());
            }
        })
    };
    run_restore(
        &dir,
        &request(restores.join("copy.db")),
        &passphrase(),
        &events,
    )
    .await
    .unwrap();
    assert!(!left.exists());
    for file in &kept {
        assert!(file.exists(), "{}", file.display());
    }
    assert_all_values(&restores.join("copy.db"));
    let warnings = warnings.lock().unwrap().clone();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("removed 1 work file(s)") && w.contains("interrupted restore")),
        "{warnings:#?}"
    );
}
