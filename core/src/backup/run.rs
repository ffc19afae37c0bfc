//! The backup job: snapshot the store, encrypt it into the staging folder (fsynced and read
//! back), publish it into a new numbered folder, then record it in the history.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::decode::{HashingWriter, decode_stream};
use super::directory::{BACKUP_FILE, LOG_FILE, MANIFEST_FILE};
use super::{
    BackupDirectory, BackupError, HistoryEntry, JobKind, JobLock, JobLog, JobStatus, Manifest,
};
use crate::format::{
    Compression, DEFAULT_CHUNK_SIZE, FORMAT_VERSION, PayloadWriter, StreamOptions,
};
use crate::fsutil::{self, WriteBehindFile};
use crate::kdf::KdfParams;
use crate::secret::Passphrase;
use crate::store::{SecureStore, StoreSummary};
use crate::target::{self, PutMode};

/// The item that `--item` selects: the store together with its Master Key.
pub const ITEM_NAME: &str = "SecureStore";

#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// Must name [`ITEM_NAME`] when given.
    pub item: Option<String>,
    pub kdf: KdfParams,
    pub compression: Compression,
    pub chunk_size: u32,
}

impl Default for BackupOptions {
    fn default() -> Self {
        Self {
            item: None,
            kdf: KdfParams::RECOMMENDED,
            compression: Compression::Zstd,
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

#[derive(Debug, Clone)]
pub struct BackupReport {
    pub entry: HistoryEntry,
    pub manifest: Manifest,
    /// Where the folder went, for messages.
    pub location: String,
}

/// What can be backed up (`sstore backup --show-tree`).
#[derive(Debug, Clone)]
pub struct StoreTree {
    pub store_path: PathBuf,
    pub summary: StoreSummary,
}

impl std::fmt::Display for StoreTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.summary;
        writeln!(
            f,
            "{ITEM_NAME}  (store {}, {})",
            s.store_id,
            self.store_path.display()
        )?;
        writeln!(
            f,
            "  MasterKey     generation {}, key id {} (always backed up with the store)",
            s.master_key.generation, s.master_key.key_id
        )?;
        write!(
            f,
            "  Applications  {} target applications, {} credential sets",
            s.applications, s.credential_sets
        )
    }
}

/// Describes what a backup of the store at `store_path` would hold.
pub fn show_tree(store_path: &Path) -> Result<StoreTree, BackupError> {
    let store = SecureStore::open(store_path)?;
    Ok(StoreTree {
        store_path: store_path.to_owned(),
        summary: store.summary()?,
    })
}

fn check_item(item: Option<&str>) -> Result<String, BackupError> {
    match item {
        None => Ok(ITEM_NAME.to_owned()),
        Some(name) if name.eq_ignore_ascii_case(ITEM_NAME) => Ok(ITEM_NAME.to_owned()),
        Some(name) => Err(BackupError::UnknownItem {
            item: name.to_owned(),
            available: vec![ITEM_NAME.to_owned()],
        }),
    }
}

/// Removes a work file when dropped, unless kept.
struct WorkFile(PathBuf);

impl Drop for WorkFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs one full backup of the store at `store_path` into `dir`.
pub async fn run_backup(
    store_path: &Path,
    dir: &BackupDirectory,
    passphrase: &Passphrase,
    options: &BackupOptions,
    log: &JobLog,
) -> Result<BackupReport, BackupError> {
    let item = check_item(options.item.as_deref())?;
    let lock = JobLock::acquire(dir.staging(), "backup")?;
    let leftovers = lock.remove_leftovers();
    let started = super::now_rfc3339();
    let history = dir.load_history().await?;
    let folder = dir.next_folder(&history).await?;
    let backup_id = crate::random::hex_id::<16>();
    log.info(format!(
        "backup {backup_id} of {item} from {} to {}/{folder} started",
        store_path.display(),
        dir.location()
    ));
    if leftovers > 0 {
        log.warn(format!(
            "removed {leftovers} work files left in {} by an interrupted job",
            dir.staging().display()
        ));
    }

    let mut entry = HistoryEntry {
        id: backup_id.clone(),
        kind: JobKind::Backup,
        requested_by: super::requested_by(),
        method: "full".into(),
        item,
        folder: folder.clone(),
        started,
        finished: String::new(),
        status: JobStatus::Failed,
        warnings: 0,
        errors: 0,
        failure_message: None,
        backup_size: None,
        plaintext_size: None,
        key_generation: None,
        backup_id: None,
        restored_to: None,
    };
    match stage_and_publish(store_path, dir, passphrase, options, log, &mut entry).await {
        Ok(manifest) => Ok(BackupReport {
            location: format!("{}/{folder}", dir.location()),
            entry,
            manifest,
        }),
        Err(err) => {
            log.error(format!("backup failed: {err}"));
            // The entry may already say succeeded if only the last writes failed.
            entry.status = JobStatus::Failed;
            entry.finished = super::now_rfc3339();
            entry.failure_message = Some(err.to_string());
            entry.warnings = log.warnings();
            entry.errors = log.errors();
            // Best effort: leave the log where the folder would have been, and list the failure.
            if let Ok(key) = dir.object(&folder, LOG_FILE) {
                let _ =
                    target::put_bytes(dir.target(), &key, log.render().as_bytes(), PutMode::Create)
                        .await;
            }
            let _ = dir.record(entry).await;
            Err(err)
        }
    }
}

async fn stage_and_publish(
    store_path: &Path,
    dir: &BackupDirectory,
    passphrase: &Passphrase,
    options: &BackupOptions,
    log: &JobLog,
    entry: &mut HistoryEntry,
) -> Result<Manifest, BackupError> {
    let staged_path = dir.staging().join(format!("{}.bak", entry.id));
    let staged = WorkFile(staged_path.clone());
    let manifest = {
        let (store_path, staging, passphrase, options) = (
            store_path.to_owned(),
            dir.staging().to_owned(),
            passphrase.clone(),
            options.clone(),
        );
        let mut manifest = skeleton_manifest(entry);
        let log = log.clone();
        tokio::task::spawn_blocking(move || {
            stage(
                &store_path,
                &staging,
                &staged_path,
                &passphrase,
                &options,
                &mut manifest,
                &log,
            )?;
            Ok::<_, BackupError>(manifest)
        })
        .await
        .map_err(|e| BackupError::Task(e.to_string()))??
    };

    let key = dir.object(&entry.folder, BACKUP_FILE)?;
    dir.target()
        .put_file(&key, &staged.0, PutMode::Create)
        .await?;
    log.info(format!(
        "published {} ({} bytes)",
        dir.describe(&key),
        manifest.backup_size
    ));
    let manifest_json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Task(e.to_string()))?;
    target::put_bytes(
        dir.target(),
        &dir.object(&entry.folder, MANIFEST_FILE)?,
        &manifest_json,
        PutMode::Create,
    )
    .await?;

    entry.finished = super::now_rfc3339();
    entry.status = JobStatus::Succeeded;
    entry.backup_size = Some(manifest.backup_size);
    entry.plaintext_size = Some(manifest.plaintext_size);
    entry.key_generation = Some(manifest.master_key_generation);
    log.info(format!(
        "backup {} succeeded: {} applications, {} credential sets, Master Key generation {}",
        entry.id, manifest.applications, manifest.credential_sets, manifest.master_key_generation
    ));
    entry.warnings = log.warnings();
    entry.errors = log.errors();
    let log_key = dir.object(&entry.folder, LOG_FILE)?;
    target::put_bytes(
        dir.target(),
        &log_key,
        log.render().as_bytes(),
        PutMode::Create,
    )
    .await?;
    // Last: the history. Until this write the backup is not listed.
    dir.record(entry.clone()).await?;
    drop(staged);
    Ok(manifest)
}

fn skeleton_manifest(entry: &HistoryEntry) -> Manifest {
    Manifest {
        manifest_version: super::manifest::MANIFEST_VERSION,
        backup_id: entry.id.clone(),
        item: entry.item.clone(),
        method: entry.method.clone(),
        store_id: String::new(),
        master_key_id: String::new(),
        master_key_generation: 0,
        applications: 0,
        credential_sets: 0,
        backup_file: BACKUP_FILE.into(),
        backup_size: 0,
        backup_sha256: String::new(),
        plaintext_size: 0,
        plaintext_sha256: String::new(),
        compression: String::new(),
        format_version: FORMAT_VERSION,
        chunk_size: 0,
        kdf: KdfParams::RECOMMENDED,
        tool_version: format!("sstore {}", env!("CARGO_PKG_VERSION")),
        started: entry.started.clone(),
        finished: String::new(),
        requested_by: entry.requested_by.clone(),
    }
}

/// Snapshot, encrypt to `staged_path` (fsynced), and read it back through the decoder.
fn stage(
    store_path: &Path,
    staging: &Path,
    staged_path: &Path,
    passphrase: &Passphrase,
    options: &BackupOptions,
    manifest: &mut Manifest,
    log: &JobLog,
) -> Result<(), BackupError> {
    let snapshot = WorkFile(staging.join(format!("{}.snapshot", manifest.backup_id)));
    let summary = SecureStore::open(store_path)?.snapshot_to(&snapshot.0)?;
    log.info(format!(
        "snapshot taken: store {}, Master Key {} generation {}, {} applications, {} credential sets",
        summary.store_id, summary.master_key.key_id, summary.master_key.generation, summary.applications, summary.credential_sets
    ));

    let mut backup_id = [0u8; 16];
    hex::decode_to_slice(&manifest.backup_id, &mut backup_id)
        .map_err(|e| BackupError::Task(e.to_string()))?;
    let stream_options = StreamOptions {
        kdf: options.kdf,
        chunk_size: options.chunk_size,
        compression: options.compression,
        backup_id,
    };
    let out = fsutil::create_private_file(staged_path).map_err(BackupError::io(staged_path))?;
    let sink = HashingWriter::new(WriteBehindFile::new(out, staged_path.to_owned()));
    let stream_err = |source| BackupError::Stream {
        file: staged_path.display().to_string(),
        source,
    };
    let mut writer = PayloadWriter::new(sink, passphrase, &stream_options).map_err(stream_err)?;
    let mut plain = HashingWriter::new(&mut writer);
    let mut input = File::open(&snapshot.0).map_err(BackupError::io(&snapshot.0))?;
    std::io::copy(&mut input, &mut plain).map_err(BackupError::io(staged_path))?;
    let (_, plaintext_size, plaintext_sha256) = plain.finish();
    let (file, backup_size, backup_sha256) = writer.finish().map_err(stream_err)?.finish();
    file.finish().map_err(BackupError::io(staged_path))?;
    fsutil::sync_dir(staging).map_err(BackupError::io(staging))?;
    drop(snapshot);

    manifest.store_id = summary.store_id;
    manifest.master_key_id = summary.master_key.key_id;
    manifest.master_key_generation = summary.master_key.generation;
    manifest.applications = summary.applications;
    manifest.credential_sets = summary.credential_sets;
    manifest.backup_size = backup_size;
    manifest.backup_sha256 = backup_sha256;
    manifest.plaintext_size = plaintext_size;
    manifest.plaintext_sha256 = plaintext_sha256;
    manifest.compression = match options.compression {
        Compression::None => "none".into(),
        Compression::Zstd => "zstd".into(),
    };
    manifest.chunk_size = options.chunk_size;
    manifest.kdf = options.kdf;
    manifest.finished = super::now_rfc3339();
    log.info(format!(
        "encrypted {plaintext_size} bytes into {backup_size} bytes ({}, AES-256-GCM, {})",
        manifest.compression, options.kdf
    ));

    let staged = File::open(staged_path).map_err(BackupError::io(staged_path))?;
    decode_stream(
        staged,
        &staged_path.display().to_string(),
        manifest,
        passphrase,
        std::io::sink(),
    )?;
    log.info("staged copy read back and verified");
    Ok(())
}
