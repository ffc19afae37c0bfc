//! Damaged backups are refused with their own clear error, and the live store is never touched.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use sstore_core::backup::{
    BACKUP_FILE, BackupError, EventSink, MANIFEST_FILE, RestoreMethod, RestoreRequest, run_backup,
    run_restore, run_verify,
};
use sstore_core::format::{FormatError, HEADER_LEN, MIN_CHUNK_SIZE};
use sstore_core::{ErrorCategory, Passphrase};
use sstore_tests::*;

const SEALED_CHUNK: usize = MIN_CHUNK_SIZE as usize + 16;

struct Fixture {
    _tmp: tempfile::TempDir,
    store: PathBuf,
    dir: sstore_core::backup::BackupDirectory,
    backup_file: PathBuf,
    original: Vec<u8>,
    other: Vec<u8>,
}

async fn fixture() -> Fixture {
    let tmp = sstore_tests::scratch_dir();
    let store = tmp.path().join("store.db");
    populate(&store, 30, 4);
    let root = tmp.path().join("backups");
    let dir = local_directory(&root);
    let first = run_backup(
        &store,
        &dir,
        &passphrase(),
        &many_chunk_options(),
        &EventSink::default(),
    )
    .await
    .unwrap();
    let second = run_backup(
        &store,
        &dir,
        &passphrase(),
        &many_chunk_options(),
        &EventSink::default(),
    )
    .await
    .unwrap();
    let backup_file = root.join(&first.entry.folder).join(BACKUP_FILE);
    let original = std::fs::read(&backup_file).unwrap();
    assert!(
        original.len() > HEADER_LEN + 8 * SEALED_CHUNK,
        "the backup must span many chunks"
    );
    let other = std::fs::read(root.join(&second.entry.folder).join(BACKUP_FILE)).unwrap();
    Fixture {
        _tmp: tmp,
        store,
        dir,
        backup_file,
        original,
        other,
    }
}

impl Fixture {
    /// Restores the first backup over the live store and returns the error, checking that the
    /// live store's bytes did not change.
    async fn restore_err(&self, id: &str, passphrase: &Passphrase) -> BackupError {
        let before = std::fs::read(&self.store).unwrap();
        let request = RestoreRequest {
            backup_id: Some(id.to_owned()),
            method: RestoreMethod::Overwrite,
            destination: self.store.clone(),
            force: true,
            store_passphrase: None,
            requested_by: None,
        };
        let err = run_restore(&self.dir, &request, passphrase, &EventSink::default())
            .await
            .unwrap_err();
        assert_eq!(
            std::fs::read(&self.store).unwrap(),
            before,
            "the live store changed after: {err}"
        );
        assert_no_temp_files(self.store.parent().unwrap());
        err
    }

    async fn first_id(&self) -> String {
        self.dir.load_history().await.unwrap().entries[0].id.clone()
    }

    async fn damaged(&self, bytes: &[u8]) -> FormatError {
        std::fs::write(&self.backup_file, bytes).unwrap();
        let id = self.first_id().await;
        let err = self.restore_err(&id, &passphrase()).await;
        // verify reports the same thing
        let verify = run_verify(&self.dir, Some(&id), &passphrase())
            .await
            .unwrap_err();
        assert_eq!(verify.to_string(), err.to_string());
        std::fs::write(&self.backup_file, &self.original).unwrap();
        match err {
            BackupError::Stream { file, source } => {
                assert!(file.ends_with(BACKUP_FILE), "error names {file}");
                source
            }
            other => panic!("expected a stream error, got {other}"),
        }
    }
}

fn assert_no_temp_files(dir: &Path) {
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

fn chunk_at(i: usize) -> usize {
    HEADER_LEN + i * SEALED_CHUNK
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_damage_has_its_own_error() {
    let f = fixture().await;
    let o = &f.original;

    // A flipped bit in the header (the KDF salt): the key no longer unwraps.
    let mut bytes = o.clone();
    bytes[30] ^= 0x04;
    assert!(matches!(
        f.damaged(&bytes).await,
        FormatError::WrongPassphrase
    ));

    // A flipped bit in chunk 3.
    let mut bytes = o.clone();
    bytes[chunk_at(3) + 77] ^= 0x80;
    let err = f.damaged(&bytes).await;
    assert!(
        matches!(err, FormatError::CorruptedChunk { index: 3, offset } if offset == chunk_at(3) as u64),
        "{err}"
    );

    // Truncated at a chunk boundary, and inside a chunk.
    let err = f.damaged(&o[..chunk_at(5)]).await;
    assert!(
        matches!(err, FormatError::Truncated { offset } if offset == chunk_at(5) as u64),
        "{err}"
    );
    let err = f.damaged(&o[..chunk_at(5) + 1000]).await;
    assert!(
        matches!(err, FormatError::Truncated { offset } if offset == (chunk_at(5) + 1000) as u64),
        "{err}"
    );

    // Two chunks swapped.
    let mut bytes = o.clone();
    let (a, b) = (chunk_at(2), chunk_at(4));
    let first = bytes[a..a + SEALED_CHUNK].to_vec();
    bytes.copy_within(b..b + SEALED_CHUNK, a);
    bytes[b..b + SEALED_CHUNK].copy_from_slice(&first);
    assert!(matches!(
        f.damaged(&bytes).await,
        FormatError::CorruptedChunk { index: 2, .. }
    ));

    // Bytes appended.
    let mut bytes = o.clone();
    bytes.extend_from_slice(b"appended");
    let err = f.damaged(&bytes).await;
    assert!(
        matches!(err, FormatError::TrailingData { offset } if offset == o.len() as u64),
        "{err}"
    );

    // A chunk from another backup made with the same passphrase.
    let mut bytes = o.clone();
    bytes[chunk_at(1)..chunk_at(2)].copy_from_slice(&f.other[chunk_at(1)..chunk_at(2)]);
    assert!(matches!(
        f.damaged(&bytes).await,
        FormatError::CorruptedChunk { index: 1, .. }
    ));

    // Not a backup at all.
    assert!(matches!(
        f.damaged(b"SQLite format 3\0").await,
        FormatError::NotSstoreBackup
    ));

    // And the untouched backup still restores.
    let id = f.first_id().await;
    let request = RestoreRequest {
        backup_id: Some(id),
        method: RestoreMethod::New,
        destination: f.store.with_file_name("copy.db"),
        force: false,
        store_passphrase: None,
        requested_by: None,
    };
    run_restore(&f.dir, &request, &passphrase(), &EventSink::default())
        .await
        .unwrap();
    assert_all_values(&f.store.with_file_name("copy.db"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passphrase_changes_nothing() {
    let f = fixture().await;
    let id = f.first_id().await;
    let err = f
        .restore_err(&id, &Passphrase::new("Not-The-Passphrase-1"))
        .await;
    assert_eq!(err.category(), ErrorCategory::WrongPassphrase);
    let text = err.to_string();
    assert!(
        text.contains("passphrase does not open this backup") && text.contains(BACKUP_FILE),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_that_does_not_match_is_refused() {
    let f = fixture().await;
    let id = f.first_id().await;
    let manifest_path = f.backup_file.with_file_name(MANIFEST_FILE);
    let original = std::fs::read_to_string(&manifest_path).unwrap();
    let sha = "0".repeat(64);
    // Each recorded fact is checked against the stream or the decrypted store.
    let cases = [
        ("credential_sets", serde_json::json!(1), "credential sets"),
        (
            "backup_sha256",
            serde_json::json!(sha),
            "the file's SHA-256",
        ),
        ("plaintext_sha256", serde_json::json!(sha), "decrypted"),
        ("chunk_size", serde_json::json!(8192), "chunk size"),
        ("compression", serde_json::json!("zstd"), "compression"),
        ("master_key_generation", serde_json::json!(7), "generation"),
        (
            "manifest_version",
            serde_json::json!(2),
            "manifest version 2",
        ),
    ];
    for (field, value, expected) in cases {
        let mut manifest: serde_json::Value = serde_json::from_str(&original).unwrap();
        manifest[field] = value;
        std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
        let err = f.restore_err(&id, &passphrase()).await;
        assert_eq!(err.category(), ErrorCategory::Damaged, "{field}: {err}");
        assert!(err.to_string().contains(expected), "{field}: {err}");
    }
    std::fs::write(&manifest_path, &original).unwrap();
    assert!(run_verify(&f.dir, Some(&id), &passphrase()).await.is_ok());
}

/// What a case puts in place of the first backup's files.
#[derive(Debug, Clone)]
enum Damage {
    /// Any bytes as the backup file.
    Bytes(Vec<u8>),
    /// The real backup with bytes changed at positions given as fractions of its length.
    Edits(Vec<(f64, u8)>),
    /// The real backup cut at a fraction of its length.
    Cut(f64),
    /// The real backup's first bytes (a fraction of its length), then any bytes.
    Tail(f64, Vec<u8>),
    /// Any bytes as the manifest.
    Manifest(Vec<u8>),
}

impl Damage {
    /// The backup file's and the manifest's new content.
    fn apply(&self, original: &[u8], manifest: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let at = |fraction: f64| ((original.len() as f64) * fraction) as usize;
        match self {
            Damage::Bytes(bytes) => (bytes.clone(), manifest.to_vec()),
            Damage::Edits(edits) => {
                let mut bytes = original.to_vec();
                for (fraction, xor) in edits {
                    let i = at(*fraction).min(bytes.len() - 1);
                    bytes[i] ^= xor;
                }
                (bytes, manifest.to_vec())
            }
            Damage::Cut(fraction) => (original[..at(*fraction)].to_vec(), manifest.to_vec()),
            Damage::Tail(fraction, tail) => {
                let mut bytes = original[..at(*fraction)].to_vec();
                bytes.extend_from_slice(tail);
                (bytes, manifest.to_vec())
            }
            Damage::Manifest(bytes) => (original.to_vec(), bytes.clone()),
        }
    }
}

/// A bounded property test: whatever bytes stand in for a backup or its manifest, restore and
/// verify fail with an error, the live store keeps every byte, no temporary file is left, and
/// the history still reads.
#[test]
fn any_bytes_in_place_of_a_backup_fail_and_change_nothing() {
    use proptest::prelude::*;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let f = rt.block_on(fixture());
    let id = rt.block_on(f.first_id());
    let manifest_path = f.backup_file.with_file_name(MANIFEST_FILE);
    let manifest = std::fs::read(&manifest_path).unwrap();
    let store_before = std::fs::read(&f.store).unwrap();
    let bytes = || proptest::collection::vec(any::<u8>(), 0..4096);
    let fraction = || 0.0..1.0f64;
    let damage = prop_oneof![
        bytes().prop_map(Damage::Bytes),
        proptest::collection::vec((fraction(), 1..=255u8), 1..8).prop_map(Damage::Edits),
        fraction().prop_map(Damage::Cut),
        (fraction(), bytes()).prop_map(|(f, b)| Damage::Tail(f, b)),
        bytes().prop_map(Damage::Manifest),
    ];
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 300,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    });
    let tried = std::cell::Cell::new(0u32);
    runner
        .run(&damage, |damage| {
            tried.set(tried.get() + 1);
            let (backup, new_manifest) = damage.apply(&f.original, &manifest);
            std::fs::write(&f.backup_file, &backup).unwrap();
            std::fs::write(&manifest_path, &new_manifest).unwrap();
            let request = RestoreRequest {
                backup_id: Some(id.clone()),
                method: RestoreMethod::Overwrite,
                destination: f.store.clone(),
                force: true,
                store_passphrase: None,
                requested_by: None,
            };
            let restored = rt.block_on(run_restore(
                &f.dir,
                &request,
                &passphrase(),
                &EventSink::default(),
            ));
            prop_assert!(restored.is_err(), "restore accepted {damage:?}");
            prop_assert!(
                std::fs::read(&f.store).unwrap() == store_before,
                "the live store changed after {damage:?}"
            );
            assert_no_temp_files(f.store.parent().unwrap());
            let verified = rt.block_on(run_verify(&f.dir, Some(&id), &passphrase()));
            prop_assert!(verified.is_err(), "verify accepted {damage:?}");
            let history = rt.block_on(f.dir.load_history());
            prop_assert!(history.is_ok(), "the history no longer reads: {history:?}");
            Ok(())
        })
        .unwrap();
    assert!(tried.get() >= 300, "{} cases", tried.get());

    // The real files back: the backup restores.
    std::fs::write(&f.backup_file, &f.original).unwrap();
    std::fs::write(&manifest_path, &manifest).unwrap();
    rt.block_on(run_verify(&f.dir, Some(&id), &passphrase()))
        .unwrap();
}
