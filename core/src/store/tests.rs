//! The store's promises, on real SQLite files.

use super::*;

fn pass() -> Passphrase {
    Passphrase::new("Store-Pass-123")
}

/// A second connection to the store file, to change it behind sstore's back.
fn raw(store: &SecureStore) -> rusqlite::Connection {
    rusqlite::Connection::open(store.path().unwrap()).unwrap()
}

fn new_store(dir: &tempfile::TempDir) -> UnlockedStore {
    let path = dir.path().join("s.db");
    let mut store = SecureStore::create(&path, &pass(), KdfParams::MINIMUM).unwrap();
    store
        .create_app(&TargetApp::new("crm", AppType::Individual))
        .unwrap();
    store
        .create_app(&TargetApp::new("payroll", AppType::Group))
        .unwrap();
    let mut store = store.unlock(&pass()).unwrap();
    for user in ["alice", "bob"] {
        store
            .set_credentials(
                &CredentialSet::new("crm", user)
                    .with("Windows User Name", user)
                    .with("Windows Password", format!("pw-{user}")),
            )
            .unwrap();
    }
    store
}

#[test]
fn values_round_trip_and_wrong_passphrase_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = new_store(&dir);
    assert_eq!(
        store
            .credentials("crm", "bob")
            .unwrap()
            .value("Windows Password"),
        Some("pw-bob")
    );
    let path = store.path().unwrap().to_owned();
    drop(store);
    let err = SecureStore::open(&path)
        .unwrap()
        .unlock(&Passphrase::new("Wrong-Pass-123"))
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::WrongPassphrase));
}

#[test]
fn a_value_moved_to_another_row_no_longer_decrypts() {
    let dir = tempfile::tempdir().unwrap();
    let store = new_store(&dir);
    // Copy bob's encrypted password over alice's, as someone editing the file could.
    raw(&store)
        .execute(
            "UPDATE credentials SET nonce = (SELECT nonce FROM credentials WHERE principal = 'bob' AND field = 'Windows Password'),
                                    value = (SELECT value FROM credentials WHERE principal = 'bob' AND field = 'Windows Password')
             WHERE principal = 'alice' AND field = 'Windows Password'",
            [],
        )
        .unwrap();
    let err = store.credentials("crm", "alice").unwrap_err();
    assert!(
        matches!(err, StoreError::Tampered { ref principal, .. } if principal == "alice"),
        "{err}"
    );
    assert!(store.credentials("crm", "bob").is_ok());
}

/// The encrypted values as stored, in row order.
fn sealed_values(store: &UnlockedStore) -> Vec<Vec<u8>> {
    raw(store)
        .prepare("SELECT value FROM credentials ORDER BY rowid")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn changing_the_master_key_reencrypts_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = new_store(&dir);
    let before = sealed_values(&store);
    let old_info = store.master_key_info().unwrap();
    let new_pass = Passphrase::new("Brand-New-Pass-9");
    let info = store
        .change_master_key(&new_pass, KdfParams::MINIMUM)
        .unwrap();
    assert_eq!(info.generation, old_info.generation + 1);
    assert_ne!(info.key_id, old_info.key_id);
    let after = sealed_values(&store);
    assert_eq!(before.len(), after.len());
    assert!(
        before.iter().zip(&after).all(|(a, b)| a != b),
        "every value must be re-encrypted"
    );
    let path = store.path().unwrap().to_owned();
    drop(store);
    let reopened = SecureStore::open(&path).unwrap();
    assert!(matches!(
        reopened.check_passphrase(&pass()),
        Err(StoreError::WrongPassphrase)
    ));
    let store = reopened.unlock(&new_pass).unwrap();
    assert_eq!(
        store
            .credentials("crm", "alice")
            .unwrap()
            .value("Windows Password"),
        Some("pw-alice")
    );
    // The policy applies to the new passphrase.
    let mut store = store;
    assert!(matches!(
        store.change_master_key(&Passphrase::new("short"), KdfParams::MINIMUM),
        Err(StoreError::Policy(_))
    ));
}

/// A store with `count` more sets in `crm` than [`new_store`] has, two values each: enough
/// for several of the re-encryption's pages.
fn store_with_sets(dir: &tempfile::TempDir, count: usize) -> UnlockedStore {
    let mut store = new_store(dir);
    let sets: Vec<CredentialSet> = (0..count)
        .map(|i| {
            CredentialSet::new("crm", format!("user{i:05}"))
                .with("Windows User Name", format!("name-{i}"))
                .with("Windows Password", format!("pw-{i}"))
        })
        .collect();
    store.set_many(&sets).unwrap();
    store
}

#[test]
fn changing_the_master_key_reencrypts_every_page_of_a_large_store() {
    let dir = tempfile::tempdir().unwrap();
    // 5,000 sets: 10,004 values, two full pages of 4,096 and a partial third.
    let mut store = store_with_sets(&dir, 5_000);
    let before = sealed_values(&store);
    let new_pass = Passphrase::new("Brand-New-Pass-9");
    store
        .change_master_key(&new_pass, KdfParams::MINIMUM)
        .unwrap();
    let after = sealed_values(&store);
    assert_eq!(before.len(), 10_004);
    assert_eq!(after.len(), before.len());
    let unchanged = before.iter().zip(&after).filter(|(a, b)| a == b).count();
    assert_eq!(unchanged, 0, "every value must be re-encrypted");
    let path = store.path().unwrap().to_owned();
    drop(store);
    let store = SecureStore::open(&path).unwrap().unlock(&new_pass).unwrap();
    // Each set decrypts under the new key, on every page and across the page boundaries.
    for i in 0..5_000 {
        let set = store.credentials("crm", &format!("user{i:05}")).unwrap();
        assert_eq!(
            set.value("Windows Password"),
            Some(format!("pw-{i}").as_str())
        );
        assert_eq!(
            set.value("Windows User Name"),
            Some(format!("name-{i}").as_str())
        );
    }
}

#[test]
fn a_tampered_value_on_a_later_page_stops_the_key_change_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_with_sets(&dir, 5_000);
    // A value on the third page no longer authenticates.
    raw(&store)
        .execute(
            "UPDATE credentials SET value = zeroblob(length(value))
             WHERE principal = 'user04500' AND field = 'Windows Password'",
            [],
        )
        .unwrap();
    let before = sealed_values(&store);
    let old_info = store.master_key_info().unwrap();
    let err = store
        .change_master_key(&Passphrase::new("Brand-New-Pass-9"), KdfParams::MINIMUM)
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Tampered { ref principal, ref field, .. }
            if principal == "user04500" && field == "Windows Password"),
        "{err}"
    );
    // The transaction rolled back: the pages already re-encrypted are on the old key again.
    assert_eq!(sealed_values(&store), before);
    assert_eq!(store.master_key_info().unwrap(), old_info);
    let path = store.path().unwrap().to_owned();
    drop(store);
    let store = SecureStore::open(&path).unwrap().unlock(&pass()).unwrap();
    assert_eq!(
        store
            .credentials("crm", "user00001")
            .unwrap()
            .value("Windows Password"),
        Some("pw-1")
    );
}

#[test]
fn sets_must_be_complete_and_group_apps_have_one_set() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = new_store(&dir);
    let err = store
        .set_credentials(&CredentialSet::new("crm", "carol").with("Windows User Name", "carol"))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::MissingFields { ref fields, .. } if fields == &["Windows Password"]),
        "{err}"
    );
    let err = store
        .set_credentials(&CredentialSet::new("crm", "carol").with("Nope", "x"))
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownField { .. }), "{err}");
    let group = |g: &str| {
        CredentialSet::new("payroll", g)
            .with("Windows User Name", "svc")
            .with("Windows Password", "pw")
    };
    store.set_credentials(&group("CONTOSO\\Payroll")).unwrap();
    store.set_credentials(&group("CONTOSO\\Payroll")).unwrap();
    let err = store.set_credentials(&group("CONTOSO\\Other")).unwrap_err();
    assert!(
        matches!(err, StoreError::GroupAlreadyMapped { .. }),
        "{err}"
    );
    store
        .clear_credentials("payroll", "CONTOSO\\Payroll")
        .unwrap();
    store.set_credentials(&group("CONTOSO\\Other")).unwrap();
}

#[test]
fn apps_are_validated_and_removal_cascades() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = new_store(&dir);
    assert!(matches!(
        store.create_app(&TargetApp::new("crm", AppType::Individual)),
        Err(StoreError::AppExists { .. })
    ));
    let mut bad = TargetApp::new("dup", AppType::Individual);
    bad.fields.push(bad.fields[0].clone());
    assert!(matches!(
        store.create_app(&bad),
        Err(StoreError::InvalidApp { .. })
    ));
    assert!(matches!(
        store.create_app(&TargetApp::new("a\nb", AppType::Group)),
        Err(StoreError::InvalidApp { .. })
    ));
    store.remove_app("crm").unwrap();
    assert!(matches!(
        store.credentials("crm", "alice"),
        Err(StoreError::AppNotFound { .. })
    ));
    assert_eq!(store.summary().unwrap().credential_sets, 0);
}

#[cfg(unix)]
#[test]
fn the_store_file_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = new_store(&dir);
    let mode = std::fs::metadata(store.path().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn snapshots_are_consistent_copies() {
    let dir = tempfile::tempdir().unwrap();
    let store = new_store(&dir);
    let copy = dir.path().join("copy.db");
    let summary = store.snapshot_to(&copy).unwrap();
    assert_eq!(summary, store.summary().unwrap());
    assert_eq!(summary.credential_sets, 2);
    let copy = SecureStore::open(&copy).unwrap().unlock(&pass()).unwrap();
    assert_eq!(
        copy.credentials("crm", "alice")
            .unwrap()
            .value("Windows User Name"),
        Some("alice")
    );
}

#[test]
fn a_streamed_snapshot_is_the_store_file_page_for_page() {
    let dir = tempfile::tempdir().unwrap();
    let store = new_store(&dir);
    let scratch = dir.path().join("scratch.db");
    let mut out = Vec::new();
    let taken = store.snapshot_into(&mut out, &scratch).unwrap();
    assert_eq!(taken.method.consistency, "one SQLite read transaction");
    assert!(
        !scratch.exists(),
        "a streamed snapshot needs no scratch file"
    );
    assert_eq!(taken.summary, store.summary().unwrap());
    assert_eq!(out, std::fs::read(store.path().unwrap()).unwrap());
    let copy = dir.path().join("copy.db");
    std::fs::write(&copy, &out).unwrap();
    let copy = SecureStore::open(&copy).unwrap().unlock(&pass()).unwrap();
    assert_eq!(
        copy.credentials("crm", "bob")
            .unwrap()
            .value("Windows Password"),
        Some("pw-bob")
    );
}

#[test]
fn a_writer_during_a_streamed_snapshot_waits_so_its_counts_and_pages_agree() {
    /// Collects the pages; on the first one, starts a writer adding a set and gives it time
    /// to try (the counts are taken on a second connection meanwhile).
    struct Sink {
        path: std::path::PathBuf,
        writer: Option<std::thread::JoinHandle<Result<(), StoreError>>>,
        out: Vec<u8>,
    }
    impl std::io::Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if self.writer.is_none() {
                let path = self.path.clone();
                self.writer = Some(std::thread::spawn(move || {
                    SecureStore::open(&path)?.unlock(&pass())?.set_credentials(
                        &CredentialSet::new("crm", "carol")
                            .with("Windows User Name", "carol")
                            .with("Windows Password", "pw"),
                    )
                }));
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
            self.out.extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let store = new_store(&dir);
    let mut sink = Sink {
        path: store.path().unwrap().to_owned(),
        writer: None,
        out: Vec::new(),
    };
    let taken = store
        .snapshot_into(&mut sink, &dir.path().join("scratch.db"))
        .unwrap();
    // The writer got through once the snapshot's transaction ended.
    sink.writer.take().unwrap().join().unwrap().unwrap();
    assert_eq!(taken.summary.credential_sets, 2);
    let copy = dir.path().join("copy.db");
    std::fs::write(&copy, &sink.out).unwrap();
    assert_eq!(
        SecureStore::open(&copy).unwrap().summary().unwrap(),
        taken.summary
    );
    assert_eq!(store.summary().unwrap().credential_sets, 3);
}

#[test]
fn a_snapshot_that_cannot_be_written_says_so_and_the_store_stays_writable() {
    struct Full;
    impl std::io::Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "no space",
            ))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut store = new_store(&dir);
    let err = store
        .snapshot_into(&mut Full, &dir.path().join("scratch.db"))
        .unwrap_err();
    assert!(
        matches!(&err, SnapshotError::Write(e) if e.kind() == std::io::ErrorKind::StorageFull),
        "{err:?}"
    );
    // The read transaction ended with the failure: a writer gets through at once.
    store
        .set_credentials(
            &CredentialSet::new("crm", "carol")
                .with("Windows User Name", "carol")
                .with("Windows Password", "pw"),
        )
        .unwrap();
    assert_eq!(store.summary().unwrap().credential_sets, 3);
}

#[test]
fn non_store_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.db");
    std::fs::write(
        &path,
        b"this is not sqlite at all, just text that is long enough",
    )
    .unwrap();
    assert!(matches!(
        SecureStore::open(&path),
        Err(StoreError::NotAStore { .. })
    ));
    assert!(matches!(
        SecureStore::open(&dir.path().join("missing.db")),
        Err(StoreError::NotFound { .. })
    ));
}
