//! The storage target contract of sstore.
//!
//! A target is any place a backup directory can live: a local folder, a share, a bucket, or a
//! run-time plugin. Every target implements the small, streaming [`Target`] trait; the engine
//! needs nothing else. Built-in targets register a [`registry::BuiltinKind`] with `inventory`;
//! [`location`] turns `--directory`-style strings into a kind and a URL, and [`secret`] resolves
//! the `*_env` / `*_file` references that keep secrets out of config files.
//!
//! - [`key`]: validated object keys (no traversal, no absolute paths).
//! - [`error`]: the one error type, with a kind and a retry status.

use std::ops::Range;
use std::path::Path;
use std::time::SystemTime;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt};

pub mod error;
pub mod key;
pub mod location;
pub mod registry;
pub mod secret;

pub use error::{RetryStatus, TargetError, TargetErrorKind};
pub use key::{InvalidKey, ObjectKey};
pub use registry::{BuiltinKind, KindInfo, KindOrigin, OpenRequest, Registry, TargetFactory};

/// A byte stream read from a target.
pub type ObjectReader = Box<dyn AsyncRead + Send + Unpin>;

/// A byte stream a put reads from.
pub type PutBody<'a> = &'a mut (dyn AsyncRead + Send + Unpin);

/// What a put may do to an existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// Fail with `AlreadyExists` if the key exists (published backups are never overwritten).
    Create,
    /// Replace atomically (the history file).
    Overwrite,
}

/// How to put an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutOptions {
    pub mode: PutMode,
    /// The body's exact length when known in advance. A target may use it to choose part
    /// sizes; every target must refuse to publish a body of another length.
    pub length: Option<u64>,
}

impl PutOptions {
    pub fn create() -> Self {
        Self {
            mode: PutMode::Create,
            length: None,
        }
    }

    pub fn overwrite() -> Self {
        Self {
            mode: PutMode::Overwrite,
            length: None,
        }
    }

    pub fn with_length(mut self, length: u64) -> Self {
        self.length = Some(length);
        self
    }
}

impl From<PutMode> for PutOptions {
    fn from(mode: PutMode) -> Self {
        Self { mode, length: None }
    }
}

/// An object's key, size and modification time, and a checksum where the target keeps one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: ObjectKey,
    pub size: u64,
    pub modified: Option<SystemTime>,
    /// Lower-case hex SHA-256 of the object's bytes, when the target computed or stored it
    /// (see [`Capabilities::server_sha256`]).
    pub sha256: Option<String>,
    /// Set by [`Target::put_file`] when the object is the source file itself (a hard link
    /// on the same disk), so its bytes are the source's without reading them back.
    pub same_file_as_source: bool,
}

impl ObjectMeta {
    pub fn new(key: ObjectKey, size: u64) -> Self {
        Self {
            key,
            size,
            modified: None,
            sha256: None,
            same_file_as_source: false,
        }
    }
}

/// What a target can do beyond the primitives every target has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Capabilities {
    /// Publishing uses a native atomic step (rename, multipart completion), not a
    /// check-then-write. Every target publishes atomically; this says how strongly.
    pub atomic_publish: bool,
    /// `PutMode::Create` is enforced by the service itself (hard link, if-none-match), so
    /// two writers can never both succeed. Lock objects rely on it.
    pub conditional_create: bool,
    /// Large uploads go up in parts that can be resumed or retried one by one.
    pub multipart: bool,
    /// `stat` reports a SHA-256 the service computed over the stored bytes.
    pub server_sha256: bool,
    /// `get_range` reads only the requested bytes (otherwise it reads and skips).
    pub native_ranges: bool,
}

/// The result of a readiness check: the target answered and said what it could.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Readiness {
    /// A write (and delete) of a probe object succeeded.
    pub writable: bool,
    /// Free space in bytes, where the target can tell.
    pub free_bytes: Option<u64>,
    /// Anything worth telling the operator (server version, a quota).
    pub detail: Option<String>,
}

/// A storage target. Every put publishes atomically: the object is visible under its key only
/// once complete, and a failed or abandoned put leaves nothing under the key.
#[async_trait]
pub trait Target: Send + Sync + std::fmt::Debug {
    /// Where this target points, for messages (`local:/srv/backups`). Never holds a secret.
    fn location(&self) -> String;

    fn capabilities(&self) -> Capabilities;

    /// Stores the bytes of `body` under `key`.
    async fn put(
        &self,
        key: &ObjectKey,
        body: PutBody<'_>,
        options: PutOptions,
    ) -> Result<ObjectMeta, TargetError>;

    /// Stores a local file under `key`. Targets that can do better than streaming it (a hard
    /// link on the same disk) override this.
    async fn put_file(
        &self,
        key: &ObjectKey,
        path: &Path,
        mode: PutMode,
    ) -> Result<ObjectMeta, TargetError> {
        let read_err = |e| {
            TargetError::from_io(&self.location(), Some(key), e)
                .context(format!("reading {}", path.display()))
        };
        let mut file = tokio::fs::File::open(path).await.map_err(read_err)?;
        let length = file.metadata().await.map_err(read_err)?.len();
        let options = PutOptions::from(mode).with_length(length);
        self.put(key, &mut file, options).await
    }

    /// Streams the whole object stored under `key`.
    async fn get(&self, key: &ObjectKey) -> Result<ObjectReader, TargetError>;

    /// Streams the bytes `range` of the object (clamped to its end; a start past the end is
    /// `InvalidData`). Targets with native ranged reads override this.
    async fn get_range(
        &self,
        key: &ObjectKey,
        range: Range<u64>,
    ) -> Result<ObjectReader, TargetError> {
        let size = self.stat(key).await?.size;
        check_range(&self.location(), key, &range, size)?;
        let mut reader = self.get(key).await?;
        let skipped = tokio::io::copy(&mut (&mut reader).take(range.start), &mut tokio::io::sink())
            .await
            .map_err(|e| TargetError::from_io(&self.location(), Some(key), e))?;
        if skipped < range.start {
            return Err(TargetError::new(
                TargetErrorKind::InvalidData,
                &self.location(),
                Some(key),
                "object ended before the requested range",
            ));
        }
        Ok(Box::new(reader.take(range.end.min(size) - range.start)))
    }

    async fn stat(&self, key: &ObjectKey) -> Result<ObjectMeta, TargetError>;

    /// Every object whose key starts with `prefix` (a folder prefix ends with `/`), sorted by
    /// key. Work files of unfinished puts are never listed.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, TargetError>;

    /// Removes `key`; `NotFound` if it does not exist.
    async fn delete(&self, key: &ObjectKey) -> Result<(), TargetError>;

    /// Checks that the target answers and accepts writes, within a bounded time. An
    /// unreachable target is an error (temporary when trying later may help).
    async fn readiness(&self) -> Result<Readiness, TargetError>;

    /// How the connection to the service is protected, for the job log and `sstore targets`
    /// (`SMB 3.1.1 session, signed, not encrypted`). Connects when needed. `None` where there
    /// is nothing to say (local folders, HTTPS clients that only say so in their URL).
    async fn connection(&self) -> Result<Option<String>, TargetError> {
        Ok(None)
    }
}

/// Refuses a range that is empty-reversed or starts past the object's end.
pub fn check_range(
    location: &str,
    key: &ObjectKey,
    range: &Range<u64>,
    size: u64,
) -> Result<(), TargetError> {
    if range.start > range.end || range.start > size {
        return Err(TargetError::new(
            TargetErrorKind::InvalidData,
            location,
            Some(key),
            format!(
                "range {}..{} is outside the object's {size} bytes",
                range.start, range.end
            ),
        ));
    }
    Ok(())
}

/// Writes and deletes a small probe object: the readiness check of targets that have no
/// cheaper way to prove they accept writes.
pub async fn probe_write(target: &dyn Target) -> Result<(), TargetError> {
    let key = ObjectKey::new(format!(".sstore-probe-{}", std::process::id())).map_err(|e| {
        TargetError::new(TargetErrorKind::Io, &target.location(), None, e.to_string())
    })?;
    put_bytes(target, &key, b"sstore readiness probe", PutMode::Overwrite)
        .await
        .map_err(|e| e.context("writing a probe object"))?;
    target
        .delete(&key)
        .await
        .map_err(|e| e.context("deleting the probe object"))
}

/// Stores a small in-memory object.
pub async fn put_bytes(
    target: &dyn Target,
    key: &ObjectKey,
    bytes: &[u8],
    mode: PutMode,
) -> Result<ObjectMeta, TargetError> {
    let mut body = bytes;
    let options = PutOptions::from(mode).with_length(bytes.len() as u64);
    target.put(key, &mut body, options).await
}

/// Reads a small object whole, refusing one larger than `limit` bytes.
pub async fn get_bytes(
    target: &dyn Target,
    key: &ObjectKey,
    limit: u64,
) -> Result<Vec<u8>, TargetError> {
    let reader = target.get(key).await?;
    read_limited(target, key, reader, limit).await
}

/// Reads `reader` whole, refusing more than `limit` bytes.
pub async fn read_limited(
    target: &dyn Target,
    key: &ObjectKey,
    reader: ObjectReader,
    limit: u64,
) -> Result<Vec<u8>, TargetError> {
    let mut out = Vec::new();
    reader
        .take(limit + 1)
        .read_to_end(&mut out)
        .await
        .map_err(|e| TargetError::from_io(&target.location(), Some(key), e))?;
    if out.len() as u64 > limit {
        return Err(TargetError::new(
            TargetErrorKind::InvalidData,
            &target.location(),
            Some(key),
            format!("object is larger than the {limit} bytes expected"),
        ));
    }
    Ok(out)
}

/// Copies `body` into `sink`, then checks the count against the promised length: the common
/// part of every put.
pub async fn copy_body<W>(
    location: &str,
    key: &ObjectKey,
    body: PutBody<'_>,
    sink: &mut W,
    expected: Option<u64>,
) -> Result<u64, TargetError>
where
    W: tokio::io::AsyncWrite + Unpin + ?Sized,
{
    let written = tokio::io::copy(body, sink)
        .await
        .map_err(|e| TargetError::from_io(location, Some(key), e))?;
    check_length(location, key, written, expected)?;
    Ok(written)
}

/// Refuses a body whose length differs from the one promised in [`PutOptions::length`].
pub fn check_length(
    location: &str,
    key: &ObjectKey,
    written: u64,
    expected: Option<u64>,
) -> Result<(), TargetError> {
    match expected {
        Some(expected) if expected != written => Err(TargetError::new(
            TargetErrorKind::InvalidData,
            location,
            Some(key),
            format!("the body had {written} bytes, {expected} were announced; nothing was stored"),
        )),
        _ => Ok(()),
    }
}
