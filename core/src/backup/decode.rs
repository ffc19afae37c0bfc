//! Decrypting a backup and checking it against its manifest: shared by restore, verify and the
//! read-back of a freshly staged backup.

use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{BackupError, Manifest};
use crate::format::{ExpectedLength, FormatError, PayloadReader};
use crate::secret::Passphrase;
use crate::store::{SecureStore, StoreSummary};

/// Counts and hashes what passes through to `inner`.
pub(crate) struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The inner writer, the byte count and the hex SHA-256.
    pub(crate) fn finish(self) -> (W, u64, String) {
        (self.inner, self.bytes, hex::encode(self.hasher.finalize()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Decrypts the backup stream `raw` (described as `file` in messages) into `out`, checking
/// its length, backup id, plaintext size and digest against `manifest`.
pub(crate) fn decode_stream(
    raw: impl Read,
    file: &str,
    manifest: &Manifest,
    passphrase: &Passphrase,
    out: impl Write,
) -> Result<(), BackupError> {
    let stream_err = |source: FormatError| BackupError::Stream {
        file: file.to_owned(),
        source,
    };
    let mismatch = |what: String| BackupError::ManifestMismatch {
        file: file.to_owned(),
        what,
    };
    let mut payload =
        PayloadReader::open(ExpectedLength::new(raw, manifest.backup_size), passphrase)
            .map_err(stream_err)?;
    let id = hex::encode(payload.header().backup_id);
    if id != manifest.backup_id {
        return Err(mismatch(format!(
            "the stream belongs to backup {id}, the manifest to {}",
            manifest.backup_id
        )));
    }
    let mut sink = HashingWriter::new(out);
    payload.copy_to(&mut sink).map_err(stream_err)?;
    let (_, size, digest) = sink.finish();
    if size != manifest.plaintext_size || digest != manifest.plaintext_sha256 {
        return Err(mismatch(format!(
            "decrypted {size} bytes with SHA-256 {digest}, the manifest records {} bytes with {}",
            manifest.plaintext_size, manifest.plaintext_sha256
        )));
    }
    Ok(())
}

/// Checks a decrypted store copy: SQLite integrity, and the store id, Master Key and counts the
/// manifest recorded.
pub(crate) fn check_store_copy(path: &Path, manifest: &Manifest) -> Result<StoreSummary, String> {
    let copy = SecureStore::open_read_only(path).map_err(|e| e.to_string())?;
    let problems = copy.integrity_problems().map_err(|e| e.to_string())?;
    if !problems.is_empty() {
        return Err(format!("SQLite integrity check: {}", problems.join("; ")));
    }
    let summary = copy.summary().map_err(|e| e.to_string())?;
    let expected = (
        &manifest.store_id,
        &manifest.master_key_id,
        manifest.master_key_generation,
        manifest.applications,
        manifest.credential_sets,
    );
    let found = (
        &summary.store_id,
        &summary.master_key.key_id,
        summary.master_key.generation,
        summary.applications,
        summary.credential_sets,
    );
    if expected != found {
        return Err(format!(
            "the copy holds store {} key {} generation {} with {} applications and {} credential sets; \
             the manifest records store {} key {} generation {} with {} and {}",
            found.0,
            found.1,
            found.2,
            found.3,
            found.4,
            expected.0,
            expected.1,
            expected.2,
            expected.3,
            expected.4
        ));
    }
    Ok(summary)
}
