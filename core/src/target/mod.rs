//! The storage target contract: a small set of streaming primitives every backup destination
//! implements (local folder now; network targets and plugins build on the same trait).

mod error;
mod key;

use std::path::Path;
use std::time::SystemTime;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt};

pub use error::{RetryStatus, TargetError, TargetErrorKind};
pub use key::ObjectKey;

/// A byte stream read from a target.
pub type ObjectReader = Box<dyn AsyncRead + Send + Unpin>;

/// What a put may do to an existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// Fail with `AlreadyExists` if the key exists (published backups are never overwritten).
    Create,
    /// Replace atomically (the history file).
    Overwrite,
}

/// An object's key, size and modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: ObjectKey,
    pub size: u64,
    pub modified: Option<SystemTime>,
}

/// A storage target. Every put publishes atomically: the object is visible under its key only
/// once complete, and a failed put leaves nothing under the key.
#[async_trait]
pub trait Target: Send + Sync + std::fmt::Debug {
    /// Where this target points, for messages (`local:/srv/backups`).
    fn location(&self) -> String;

    /// Stores the bytes of `body` under `key`.
    async fn put(
        &self,
        key: &ObjectKey,
        body: &mut (dyn AsyncRead + Send + Unpin),
        mode: PutMode,
    ) -> Result<ObjectMeta, TargetError>;

    /// Stores a local file under `key`. Targets that can do better than streaming it (a hard
    /// link on the same disk) override this.
    async fn put_file(
        &self,
        key: &ObjectKey,
        path: &Path,
        mode: PutMode,
    ) -> Result<ObjectMeta, TargetError> {
        let mut file = tokio::fs::File::open(path).await.map_err(|e| {
            TargetError::from_io(&self.location(), Some(key), e)
                .context(format!("reading {}", path.display()))
        })?;
        self.put(key, &mut file, mode).await
    }

    /// Streams the object stored under `key`.
    async fn get(&self, key: &ObjectKey) -> Result<ObjectReader, TargetError>;

    async fn stat(&self, key: &ObjectKey) -> Result<ObjectMeta, TargetError>;

    /// Every object whose key starts with `prefix` (a folder prefix ends with `/`), sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, TargetError>;

    /// Removes `key`; `NotFound` if it does not exist.
    async fn delete(&self, key: &ObjectKey) -> Result<(), TargetError>;
}

/// Stores a small in-memory object.
pub async fn put_bytes(
    target: &dyn Target,
    key: &ObjectKey,
    bytes: &[u8],
    mode: PutMode,
) -> Result<ObjectMeta, TargetError> {
    let mut body = bytes;
    target.put(key, &mut body, mode).await
}

/// Reads a small object whole, refusing one larger than `limit` bytes.
pub async fn get_bytes(
    target: &dyn Target,
    key: &ObjectKey,
    limit: u64,
) -> Result<Vec<u8>, TargetError> {
    let reader = target.get(key).await?;
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
