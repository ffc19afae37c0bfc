//! The storage target contract: a small set of streaming primitives every backup destination
//! implements (local folder now; network targets and plugins build on the same trait).

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

mod key {
    //! Object keys: relative, `/`-separated, validated so no target can be made to write outside
    //! its root.

    use std::fmt;

    /// A validated object key: no empty, `.` or `..` segments, no leading `/`, no `\`, NUL or other
    /// control characters.
    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub struct ObjectKey(String);

    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    #[error("invalid object key '{key}': {reason}")]
    pub struct InvalidKey {
        pub key: String,
        pub reason: &'static str,
    }

    impl ObjectKey {
        pub fn new(key: impl Into<String>) -> Result<Self, InvalidKey> {
            let key = key.into();
            let reason = if key.is_empty() {
                Some("empty")
            } else if key.starts_with('/') {
                Some("absolute")
            } else if key.contains('\\') {
                Some("contains a backslash")
            } else if key.chars().any(char::is_control) {
                Some("contains a control character")
            } else if key.split('/').any(|s| s.is_empty()) {
                Some("has an empty segment")
            } else if key.split('/').any(|s| s == "." || s == "..") {
                Some("has a '.' or '..' segment")
            } else {
                None
            };
            match reason {
                Some(reason) => Err(InvalidKey { key, reason }),
                None => Ok(Self(key)),
            }
        }

        pub fn as_str(&self) -> &str {
            &self.0
        }

        /// The segments of the key.
        pub fn segments(&self) -> impl Iterator<Item = &str> {
            self.0.split('/')
        }
    }

    impl fmt::Display for ObjectKey {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.0)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn traversal_and_malformed_keys_are_refused() {
            for bad in [
                "",
                "/etc/passwd",
                "a/../b",
                "..",
                "a//b",
                "a/",
                "./a",
                "a\\b",
                "a\0b",
                "a\nb",
            ] {
                assert!(ObjectKey::new(bad).is_err(), "{bad:?} accepted");
            }
            for good in [
                "sstorebrtoc.json",
                "sstorebr0001/sstorebackup.bak",
                "a/b.c/d..e",
            ] {
                assert_eq!(ObjectKey::new(good).unwrap().as_str(), good);
            }
        }
    }
}

mod error {
    //! The one error type of every target: a kind, a retry status, the target and the key.

    use std::fmt;

    use super::ObjectKey;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[non_exhaustive]
    pub enum TargetErrorKind {
        NotFound,
        AlreadyExists,
        PermissionDenied,
        Unauthenticated,
        InvalidConfig,
        Unsupported,
        /// The target is full.
        NoSpace,
        /// The object's content is not what was expected.
        InvalidData,
        Io,
        Network,
    }

    /// Whether trying again may help. The engine decides retries from this, never from messages.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum RetryStatus {
        Permanent,
        Temporary,
    }

    #[derive(Debug, thiserror::Error)]
    pub struct TargetError {
        pub kind: TargetErrorKind,
        pub retry: RetryStatus,
        pub target: String,
        pub key: Option<String>,
        pub message: String,
        #[source]
        pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
    }

    impl fmt::Display for TargetError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "target {}", self.target)?;
            if let Some(key) = &self.key {
                write!(f, ", object {key}")?;
            }
            write!(f, ": {}", self.message)?;
            if let Some(source) = &self.source {
                write!(f, ": {source}")?;
            }
            Ok(())
        }
    }

    impl TargetError {
        pub fn new(
            kind: TargetErrorKind,
            target: &str,
            key: Option<&ObjectKey>,
            message: impl Into<String>,
        ) -> Self {
            let retry = match kind {
                TargetErrorKind::Io | TargetErrorKind::Network => RetryStatus::Temporary,
                _ => RetryStatus::Permanent,
            };
            Self {
                kind,
                retry,
                target: target.to_owned(),
                key: key.map(|k| k.to_string()),
                message: message.into(),
                source: None,
            }
        }

        /// Classifies an I/O error.
        pub fn from_io(target: &str, key: Option<&ObjectKey>, err: std::io::Error) -> Self {
            use std::io::ErrorKind as K;
            let (kind, message) = match err.kind() {
                K::NotFound => (TargetErrorKind::NotFound, "not found"),
                K::AlreadyExists => (TargetErrorKind::AlreadyExists, "already exists"),
                K::PermissionDenied | K::ReadOnlyFilesystem => {
                    (TargetErrorKind::PermissionDenied, "permission denied")
                }
                K::StorageFull | K::QuotaExceeded => (TargetErrorKind::NoSpace, "no space left"),
                K::Unsupported => (TargetErrorKind::Unsupported, "operation not supported"),
                K::ConnectionRefused
                | K::ConnectionReset
                | K::ConnectionAborted
                | K::TimedOut
                | K::BrokenPipe => (TargetErrorKind::Network, "connection failed"),
                _ => (TargetErrorKind::Io, "I/O error"),
            };
            let mut e = Self::new(kind, target, key, message);
            e.source = Some(Box::new(err));
            e
        }

        /// Replaces the message with a description of what was being done.
        pub fn context(mut self, doing: impl Into<String>) -> Self {
            self.message = format!("{}: {}", doing.into(), self.message);
            self
        }

        pub fn is_not_found(&self) -> bool {
            self.kind == TargetErrorKind::NotFound
        }
    }
}
