//! Staging: snapshot the store, encrypt it into the staging folder (fsynced), and read it back
//! through the decoder, so only a backup known to decrypt is ever sent anywhere.

use std::fs::File;
use std::path::Path;

use super::decode::{HashingWriter, decode_stream};
use super::directory::BACKUP_FILE;
use super::{BackupError, BackupOptions, JobLog, Manifest};
use crate::format::{Compression, FORMAT_VERSION, PayloadWriter, StreamOptions};
use crate::fsutil::{self, WriteBehindFile};
use crate::kdf::KdfParams;
use crate::secret::Passphrase;
use crate::store::SecureStore;

/// Removes a work file when dropped.
pub(crate) struct WorkFile(pub(crate) std::path::PathBuf);

impl Drop for WorkFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub(crate) fn skeleton_manifest(
    backup_id: &str,
    item: &str,
    started: &str,
    requested_by: &str,
) -> Manifest {
    Manifest {
        manifest_version: super::manifest::MANIFEST_VERSION,
        backup_id: backup_id.to_owned(),
        item: item.to_owned(),
        method: "full".into(),
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
        started: started.to_owned(),
        finished: String::new(),
        requested_by: requested_by.to_owned(),
    }
}

/// Snapshot, encrypt to `staged_path` (fsynced), and read it back through the decoder.
pub(crate) fn stage(
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
