//! Step 3 (new jobs): stage. Snapshot the store, encrypt it into `<staging>/<job id>/`
//! (fsynced), read it back through the decoder, and write its manifest beside it, so only a
//! backup known to decrypt is ever sent anywhere. Staging produces the manifest: everything
//! it records is known only once the stream is written.

use std::path::{Path, PathBuf};

use super::super::decode::authenticate_stream;
use super::super::digest::{BackgroundHashingWriter, CountingWriter, Sha256Inspector};
use super::super::directory::{BACKUP_FILE, MANIFEST_FILE};
use super::super::manifest::MANIFEST_VERSION;
use super::super::{BackupError, BackupKeys, EventSink, HistoryEntry, Manifest};
use super::BackupOptions;
use crate::format::{Compression, FORMAT_VERSION, Keys, PayloadWriter, StreamOptions};
use crate::fsutil::{self, Durability, ReadAheadFile, WriteBehindFile};
use crate::store::{SecureStore, SnapshotError};

/// A staged backup ready to send: its folder in the staging area and what it is. (The numbered
/// folder it goes to is each destination's: see [`super::lock::Locked`].)
#[derive(Debug, Clone)]
pub(crate) struct StagedBackup {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl StagedBackup {
    pub fn backup_path(&self) -> PathBuf {
        self.dir.join(BACKUP_FILE)
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join(MANIFEST_FILE)
    }

    /// A staged backup left by an interrupted job: its manifest is read back.
    pub fn load(dir: PathBuf) -> Result<Self, BackupError> {
        let path = dir.join(MANIFEST_FILE);
        let bytes = std::fs::read(&path).map_err(BackupError::io(&path))?;
        let manifest = serde_json::from_slice(&bytes).map_err(|e| BackupError::Unreadable {
            file: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self { dir, manifest })
    }
}

/// Removes a work file when dropped.
pub(crate) struct WorkFile(pub(crate) PathBuf);

impl Drop for WorkFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Stages the backup described by `entry` into `staged_dir` (created owner-only), off the
/// async workers: the encrypted file, read back, and its manifest.
pub(crate) async fn stage_backup(
    store_path: &Path,
    staged_dir: &Path,
    entry: &HistoryEntry,
    keys: &BackupKeys,
    options: &BackupOptions,
    events: &EventSink,
) -> Result<StagedBackup, BackupError> {
    fsutil::create_private_dir_all(staged_dir).map_err(BackupError::io(staged_dir))?;
    let (store_path, dir, entry_copy, keys, options, events) = (
        store_path.to_owned(),
        staged_dir.to_owned(),
        entry.clone(),
        keys.clone(),
        options.clone(),
        events.clone(),
    );
    let manifest = tokio::task::spawn_blocking(move || {
        stage(&store_path, &dir, &entry_copy, &keys, &options, &events)
    })
    .await
    .map_err(|e| BackupError::Task(format!("staging stopped unexpectedly: {e}")))??;
    let manifest_path = staged_dir.join(MANIFEST_FILE);
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Unreadable {
        file: manifest_path.display().to_string(),
        reason: e.to_string(),
    })?;
    write_private(&manifest_path, &json)?;
    Ok(StagedBackup {
        dir: staged_dir.to_owned(),
        manifest,
    })
}

/// Snapshot, encrypt to `<dir>/sstorebackup.bak` (fsynced), read it back through the decoder;
/// returns the manifest that describes it. The read-back uses a key that opens only this
/// stream, so a job that holds recipients only (no secret) still proves its copy decrypts.
fn stage(
    store_path: &Path,
    dir: &Path,
    entry: &HistoryEntry,
    keys: &BackupKeys,
    options: &BackupOptions,
    events: &EventSink,
) -> Result<Manifest, BackupError> {
    let staged_path = dir.join(BACKUP_FILE);
    let store = SecureStore::open_locator(store_path)?;

    let mut backup_id = [0u8; 16];
    hex::decode_to_slice(&entry.id, &mut backup_id).map_err(|_| BackupError::Unreadable {
        file: staged_path.display().to_string(),
        reason: format!("the backup id {} is not 32 hex digits", entry.id),
    })?;
    let stream_options = StreamOptions {
        kdf: options.kdf,
        chunk_size: options.chunk_size,
        compression: options.compression,
        backup_id,
    };
    let out = fsutil::create_private_file(&staged_path).map_err(BackupError::io(&staged_path))?;
    // Written past the page cache and read back from the disk: see `fsutil::direct`.
    let sink = CountingWriter::new(WriteBehindFile::with_durability(
        out,
        staged_path.clone(),
        Sha256Inspector::default(),
        Durability::Direct,
    ));
    let stream_err = |source| BackupError::Stream {
        file: staged_path.display().to_string(),
        source,
    };
    // The key slots (and a passphrase's key derivation) come before the snapshot, so the
    // store is read only while its pages are compressed and encrypted.
    let mut writer =
        PayloadWriter::new(sink, keys.format_recipients(), &stream_options).map_err(stream_err)?;
    let read_back = writer.read_back_key();
    let header = writer.header().clone();
    let mut plain =
        BackgroundHashingWriter::new(&mut writer).map_err(BackupError::io(&staged_path))?;
    // Used only by a store home that cannot stream its snapshot (SQL Server).
    let scratch = dir.join(format!("{}.snapshot", entry.id));
    let taken = store
        .snapshot_into(&mut plain, &scratch)
        .map_err(|e| match e {
            SnapshotError::Store(e) => BackupError::from(e),
            SnapshotError::Write(e) => BackupError::io(&staged_path)(e),
        })?;
    for retry in &taken.method.retries {
        events.warn(format!("snapshot retried: {retry}"));
    }
    let summary = taken.summary;
    events.info(format!(
        "snapshot read in {}: store {}, Master Key {} generation {}, {} applications, {} credential sets",
        taken.method.consistency,
        summary.store_id,
        summary.master_key.key_id,
        summary.master_key.generation,
        summary.applications,
        summary.credential_sets
    ));
    let (_, plaintext_size, plaintext_sha256) =
        plain.finish().map_err(BackupError::io(&staged_path))?;
    let (file, backup_size) = writer.finish().map_err(stream_err)?.finish();
    let (_, file_hash) = file.finish().map_err(BackupError::io(&staged_path))?;
    fsutil::sync_dir(dir).map_err(BackupError::io(dir))?;

    let manifest = Manifest {
        manifest_version: MANIFEST_VERSION,
        backup_id: entry.id.clone(),
        item: entry.item.clone(),
        method: "full".into(),
        store_id: summary.store_id.clone(),
        master_key_id: summary.master_key.key_id.clone(),
        master_key_generation: summary.master_key.generation,
        applications: summary.applications,
        credential_sets: summary.credential_sets,
        backup_file: BACKUP_FILE.into(),
        backup_size,
        backup_sha256: file_hash.hex(),
        plaintext_size,
        plaintext_sha256,
        compression: compression_name(options.compression).into(),
        format_version: FORMAT_VERSION,
        chunk_size: options.chunk_size,
        kdf: header.passphrase_kdf(),
        key_slots: header.slots().iter().map(ToString::to_string).collect(),
        tool_version: format!("sstore {}", env!("CARGO_PKG_VERSION")),
        started: entry.started.clone(),
        finished: super::super::now_rfc3339(),
        requested_by: entry.requested_by.clone(),
    };
    events.info(format!(
        "encrypted {plaintext_size} bytes into {backup_size} bytes ({}, AES-256-GCM); it opens with {}",
        manifest.compression,
        header.opens_with()
    ));

    let staged = ReadAheadFile::open(&staged_path).map_err(BackupError::io(&staged_path))?;
    authenticate_stream(
        staged,
        &staged_path.display().to_string(),
        &manifest,
        Keys::read_back(&read_back),
    )?;
    events.info(
        "staged copy read back and verified: every chunk authenticated (so its bytes and their SHA-256 are as written), length as written",
    );
    Ok(manifest)
}

fn compression_name(compression: Compression) -> &'static str {
    match compression {
        Compression::None => "none",
        Compression::Zstd => "zstd",
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    use std::io::Write;
    let mut file = fsutil::create_private_file(path).map_err(BackupError::io(path))?;
    file.write_all(bytes).map_err(BackupError::io(path))?;
    file.sync_all().map_err(BackupError::io(path))
}
