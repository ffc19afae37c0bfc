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
    /// An operation did not finish within its time limit (the target may be stalled).
    Timeout,
    /// A run-time plugin failed internally (for example, it panicked).
    PluginFailure,
}

impl fmt::Display for TargetErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::NotFound => "not found",
            Self::AlreadyExists => "already exists",
            Self::PermissionDenied => "permission denied",
            Self::Unauthenticated => "unauthenticated",
            Self::InvalidConfig => "invalid configuration",
            Self::Unsupported => "unsupported",
            Self::NoSpace => "no space",
            Self::InvalidData => "invalid data",
            Self::Io => "I/O error",
            Self::Network => "network error",
            Self::Timeout => "timed out",
            Self::PluginFailure => "plugin failure",
        };
        f.write_str(name)
    }
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
            TargetErrorKind::Io | TargetErrorKind::Network | TargetErrorKind::Timeout => {
                RetryStatus::Temporary
            }
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
            K::StorageFull | K::QuotaExceeded => (
                TargetErrorKind::NoSpace,
                "no space left; free space there (or raise the quota), then try again",
            ),
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

    /// Overrides the retry status derived from the kind.
    pub fn with_retry(mut self, retry: RetryStatus) -> Self {
        self.retry = retry;
        self
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Whether trying again may help.
    pub fn is_temporary(&self) -> bool {
        self.retry == RetryStatus::Temporary
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_says_to_free_space_and_is_permanent() {
        let key = ObjectKey::new("sstorebr0001/sstorebackup.bak").ok();
        let err = TargetError::from_io(
            "local:/mnt/nas",
            key.as_ref(),
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        );
        assert_eq!(err.kind, TargetErrorKind::NoSpace);
        assert!(!err.is_temporary());
        let text = err.to_string();
        assert!(
            text.contains("sstorebr0001/sstorebackup.bak") && text.contains("free space"),
            "{text}"
        );
    }
}
