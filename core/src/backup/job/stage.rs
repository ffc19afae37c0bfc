//! Step 3 (new jobs): stage. Snapshot the store, encrypt it into `<staging>/<job id>/`
//! (fsynced), read it back through the decoder, and write its manifest beside it, so only a
//! backup known to decrypt is ever sent anywhere. Staging produces the manifest: everything
//! it records is known only once the stream is written.

use std::path::{Path, PathBuf};

use super::super::decode::{authenticate_stream, check_read_back};
use super::super::digest::{BackgroundHashingWriter, CountingWriter, Sha256Inspector};
use super::super::directory::{BACKUP_FILE, MANIFEST_FILE};
use super::super::manifest::MANIFEST_VERSION;
use super::super::{BackupError, BackupKeys, EventSink, HistoryEntry, Manifest};
use super::BackupOptions;
use crate::format::{Compression, FORMAT_VERSION, FormatError, Keys, PayloadWriter, StreamOptions};
use crate::fsutil::{self, Durability, ReadAheadFile, WriteBehindFile};
use crate::store::{SecureStore, SnapshotError, StoreSummary};

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
/// returns the manifest that describes it. The read-back follows the writer on threads of its
/// own (reading from the disk what is already written while the rest is encrypted) and uses a
/// key that opens only this stream, so a job that holds recipients only (no secret) still
/// proves its copy decrypts.
fn stage(
    store_path: &Path,
    dir: &Path,
    entry: &HistoryEntry,
    keys: &BackupKeys,
    options: &BackupOptions,
    events: &EventSink,
) -> Result<Manifest, BackupError> {
    let staged_path = dir.join(BACKUP_FILE);
    let staged_name = staged_path.display().to_string();
    let store = SecureStore::open_locator(store_path)?;

    let mut backup_id = [0u8; 16];
    hex::decode_to_slice(&entry.id, &mut backup_id).map_err(|_| BackupError::Unreadable {
        file: staged_name.clone(),
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
    let file = WriteBehindFile::with_durability(
        out,
        staged_path.clone(),
        Sha256Inspector::default(),
        Durability::Direct,
    );
    let progress = file.progress();
    // The key slots (and a passphrase's key derivation) come before the snapshot, so the
    // store is read only while its pages are compressed and encrypted.
    let writer = PayloadWriter::new(
        CountingWriter::new(file),
        keys.format_recipients(),
        &stream_options,
    )
    .map_err(stream_error(&staged_name))?;
    let read_back_key = writer.read_back_key();
    let header = writer.header().clone();
    let scratch = dir.join(format!("{}.snapshot", entry.id));

    let (written, read_back) = std::thread::scope(|scope| {
        let read_back = scope.spawn(|| {
            let raw = ReadAheadFile::follow(&staged_path, progress)
                .map_err(BackupError::io(&staged_path))?;
            authenticate_stream(raw, &staged_name, Keys::read_back(&read_back_key))
        });
        // `write_snapshot` owns the writer: on failure it is dropped there, which ends the
        // read-back, so the join below never waits for bytes that will not come.
        let written = write_snapshot(&store, writer, &staged_path, &scratch, events);
        let read_back = read_back.join().map_err(|_| {
            BackupError::Task(format!("reading back {staged_name} stopped unexpectedly"))
        });
        (written, read_back)
    });
    // The writer's error explains a failed read-back, not the other way round.
    let written = written?;
    let read_back = read_back??;
    fsutil::sync_dir(dir).map_err(BackupError::io(dir))?;

    let summary = written.summary;
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
        backup_size: written.backup_size,
        backup_sha256: written.backup_sha256,
        plaintext_size: written.plaintext_size,
        plaintext_sha256: written.plaintext_sha256,
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
        "encrypted {} bytes into {} bytes ({}, AES-256-GCM); it opens with {}",
        manifest.plaintext_size,
        manifest.backup_size,
        manifest.compression,
        header.opens_with()
    ));
    check_read_back(&read_back, &manifest, &staged_name)?;
    events.info(
        "staged copy read back and verified: every chunk authenticated (so its bytes and their SHA-256 are as written), length as written",
    );
    Ok(manifest)
}

/// What the snapshot and the stream writer produced.
struct Written {
    summary: StoreSummary,
    plaintext_size: u64,
    plaintext_sha256: String,
    backup_size: u64,
    backup_sha256: String,
}

/// Streams the store's snapshot through `writer` into the staged file and finishes it
/// (fsynced).
fn write_snapshot(
    store: &SecureStore,
    mut writer: PayloadWriter<CountingWriter<WriteBehindFile<Sha256Inspector>>>,
    staged_path: &Path,
    scratch: &Path,
    events: &EventSink,
) -> Result<Written, BackupError> {
    let staged_name = staged_path.display().to_string();
    let mut plain =
        BackgroundHashingWriter::new(&mut writer).map_err(BackupError::io(staged_path))?;
    // `scratch` is used only by a store home that cannot stream its snapshot (SQL Server).
    let taken = store
        .snapshot_into(&mut plain, scratch)
        .map_err(|e| match e {
            SnapshotError::Store(e) => BackupError::from(e),
            SnapshotError::Write(e) => BackupError::io(staged_path)(e),
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
        plain.finish().map_err(BackupError::io(staged_path))?;
    let (file, backup_size) = writer
        .finish()
        .map_err(stream_error(&staged_name))?
        .finish();
    let (_, file_hash) = file.finish().map_err(BackupError::io(staged_path))?;
    Ok(Written {
        summary,
        plaintext_size,
        plaintext_sha256,
        backup_size,
        backup_sha256: file_hash.hex(),
    })
}

fn stream_error(file: &str) -> impl Fn(FormatError) -> BackupError + '_ {
    move |source| BackupError::Stream {
        file: file.to_owned(),
        source,
    }
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
