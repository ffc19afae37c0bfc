//! Decrypting a backup and checking it against its manifest: shared by restore, verify and the
//! read-back of a freshly staged backup.

use std::io::{self, Read, Write};
use std::path::Path;

use super::digest::{BackgroundHashingReader, BackgroundHashingWriter, BackgroundSha256};
use super::{BackupError, Manifest};
use crate::format::{
    Compression, ExpectedLength, FormatError, Header, Keys, PayloadReader, StreamReader,
};
use crate::store::{SecureStore, StoreSummary};

/// Decrypts the backup stream `raw` (described as `file` in messages) into `out`, checking
/// against `manifest`: the file's length and SHA-256, the header's backup id, format version,
/// chunk size, KDF parameters, compression and key slots, and the plaintext's size and
/// SHA-256.
pub(crate) fn decode_stream(
    raw: impl Read,
    file: &str,
    manifest: &Manifest,
    keys: Keys<'_>,
    out: impl Write,
) -> Result<(), BackupError> {
    // The file and the plaintext are each hashed on a thread of their own while this one
    // decrypts and decompresses.
    let thread_error = |e| stream_error(file)(FormatError::from_io(e));
    let mut raw = BackgroundHashingReader {
        inner: raw,
        hash: BackgroundSha256::new().map_err(thread_error)?,
    };
    let mut payload =
        PayloadReader::open(ExpectedLength::new(&mut raw, manifest.backup_size), keys)
            .map_err(stream_error(file))?;
    check_header(payload.header(), manifest, file)?;
    let mut sink = BackgroundHashingWriter::new(out).map_err(thread_error)?;
    payload.copy_to(&mut sink).map_err(stream_error(file))?;
    drop(payload);
    let (_, size, digest) = sink.finish().map_err(thread_error)?;
    if size != manifest.plaintext_size || digest != manifest.plaintext_sha256 {
        return Err(mismatch(
            file,
            format!(
                "decrypted {size} bytes with SHA-256 {digest}, the manifest records {} bytes with {}",
                manifest.plaintext_size, manifest.plaintext_sha256
            ),
        ));
    }
    let file_digest = raw.hash.finish().map_err(thread_error)?;
    check_file_digest(&file_digest, manifest, file)
}

/// What the read-back of a staged backup found, for [`check_read_back`] once the manifest
/// exists.
pub(crate) struct ReadBack {
    header: Header,
    length: u64,
}

/// Authenticates every chunk of the backup stream `raw` without decompressing: the read-back
/// of a backup being staged, which runs while the stream is still written (so before its
/// manifest exists). The file's SHA-256 is the writer's: since every chunk's tag (bound to its
/// index, the last-chunk flag and the header) proves the stored bytes are those it wrote,
/// hashing them again here would only repeat it.
pub(crate) fn authenticate_stream(
    raw: impl Read,
    file: &str,
    keys: Keys<'_>,
) -> Result<ReadBack, BackupError> {
    let mut raw = CountingReader {
        inner: raw,
        read: 0,
    };
    let mut stream = StreamReader::open(&mut raw, keys).map_err(stream_error(file))?;
    let header = stream.header().clone();
    io::copy(&mut stream, &mut io::sink())
        .map_err(|e| stream_error(file)(FormatError::from_io(e)))?;
    drop(stream);
    Ok(ReadBack {
        header,
        length: raw.read,
    })
}

/// The read-back's header and length against the manifest of the stream written.
pub(crate) fn check_read_back(
    read_back: &ReadBack,
    manifest: &Manifest,
    file: &str,
) -> Result<(), BackupError> {
    check_header(&read_back.header, manifest, file)?;
    if read_back.length != manifest.backup_size {
        return Err(mismatch(
            file,
            format!(
                "read back {} bytes; {} were written",
                read_back.length, manifest.backup_size
            ),
        ));
    }
    Ok(())
}

/// Counts the bytes read through it.
struct CountingReader<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

fn stream_error(file: &str) -> impl Fn(FormatError) -> BackupError + '_ {
    move |source| BackupError::Stream {
        file: file.to_owned(),
        source,
    }
}

fn mismatch(file: &str, what: String) -> BackupError {
    BackupError::ManifestMismatch {
        file: file.to_owned(),
        what,
    }
}

/// The header's backup id, format version, chunk size, KDF parameters, compression and key
/// slots against the manifest.
fn check_header(header: &Header, manifest: &Manifest, file: &str) -> Result<(), BackupError> {
    let compression = match header.compression {
        Compression::None => "none",
        Compression::Zstd => "zstd",
    };
    let recorded = (
        manifest.backup_id.as_str(),
        manifest.format_version,
        manifest.chunk_size,
        manifest.kdf,
        manifest.compression.as_str(),
    );
    let id = hex::encode(header.backup_id);
    let found = (
        id.as_str(),
        header.version,
        header.chunk_size,
        header.passphrase_kdf(),
        compression,
    );
    let kdf_text = |kdf: Option<crate::kdf::KdfParams>| {
        kdf.map_or_else(|| "no passphrase slot".to_owned(), |k| k.to_string())
    };
    if recorded != found {
        return Err(mismatch(
            file,
            format!(
                "the stream header says backup {}, format {}, chunk size {}, {}, compression {}; \
                 the manifest says backup {}, format {}, chunk size {}, {}, compression {}",
                found.0,
                found.1,
                found.2,
                kdf_text(found.3),
                found.4,
                recorded.0,
                recorded.1,
                recorded.2,
                kdf_text(recorded.3),
                recorded.4
            ),
        ));
    }
    // Version 2 manifests list the key slots; they must be the header's.
    let slots: Vec<String> = header.slots().iter().map(ToString::to_string).collect();
    if !manifest.key_slots.is_empty() && manifest.key_slots != slots {
        return Err(mismatch(
            file,
            format!(
                "the stream header's key slots are [{}]; the manifest lists [{}]",
                slots.join(", "),
                manifest.key_slots.join(", ")
            ),
        ));
    }
    Ok(())
}

fn check_file_digest(digest: &str, manifest: &Manifest, file: &str) -> Result<(), BackupError> {
    if digest != manifest.backup_sha256 {
        return Err(mismatch(
            file,
            format!(
                "the file's SHA-256 is {digest}, the manifest records {}",
                manifest.backup_sha256
            ),
        ));
    }
    Ok(())
}

/// Checks a decrypted store copy: SQLite's quick check, and the store id, Master Key and counts the
/// manifest recorded. The counts are read on a second connection while the quick check runs
/// (the copy does not change).
pub(crate) fn check_store_copy(path: &Path, manifest: &Manifest) -> Result<StoreSummary, String> {
    let copy = SecureStore::open_read_only(path).map_err(|e| e.to_string())?;
    let count = || {
        SecureStore::open_read_only(path)
            .and_then(|second| second.summary())
            .map_err(|e| e.to_string())
    };
    let summary = std::thread::scope(|scope| {
        let counting = scope.spawn(count);
        let problems = copy.integrity_problems().map_err(|e| e.to_string())?;
        if !problems.is_empty() {
            return Err(format!("SQLite quick check: {}", problems.join("; ")));
        }
        counting
            .join()
            .map_err(|_| "counting the copy's credential sets stopped unexpectedly".to_owned())?
    })?;
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
