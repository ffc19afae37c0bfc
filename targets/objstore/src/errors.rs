//! object_store errors as target errors: a kind, a retry status, and the bucket or container
//! and key in the message.
//!
//! object_store already turns 404, 409, 412, 401 and 403 into their own variants. What is left
//! is `Generic`: a transport failure (temporary), or an HTTP status object_store's own retries
//! gave up on. Its status is not exposed as a type, so it is read from the message: 429 and
//! 5xx are temporary, any other 4xx permanent, and anything unrecognised temporary (a
//! failure with no answer from the server is usually a network one).

use object_store::Error as StoreError;
use sstore_target_api::{ObjectKey, RetryStatus, TargetError, TargetErrorKind};

/// Which container the errors are about (`bucket sstore-test`, `container backups`).
#[derive(Debug, Clone)]
pub struct ErrorContext {
    pub location: String,
    /// "bucket" or "container".
    pub container_word: &'static str,
    pub container: String,
}

impl ErrorContext {
    /// Maps `err` from an operation on `key` (or on the container itself).
    pub fn map(&self, key: Option<&ObjectKey>, err: StoreError) -> TargetError {
        let (kind, retry, message) = classify(&err);
        let message = match kind {
            TargetErrorKind::Unauthenticated | TargetErrorKind::PermissionDenied => format!(
                "{message}: the credentials were refused for {} {} (check the access key / \
                 account key / SAS token and its permissions)",
                self.container_word, self.container
            ),
            _ => message,
        };
        TargetError::new(kind, &self.location, key, message)
            .with_retry(retry)
            .with_source(err)
    }

    /// Maps an error of a write, where `NotFound` means the container itself is missing.
    pub fn map_write(&self, key: &ObjectKey, err: StoreError) -> TargetError {
        self.container_missing(self.map(Some(key), err))
    }

    /// Turns `NotFound` from a write or a listing into "the container does not exist".
    pub fn container_missing(&self, err: TargetError) -> TargetError {
        if err.kind != TargetErrorKind::NotFound {
            return err;
        }
        TargetError {
            message: format!(
                "the {} '{}' does not exist; create it first (sstore never creates {}s)",
                self.container_word, self.container, self.container_word
            ),
            ..err
        }
    }
}

fn classify(err: &StoreError) -> (TargetErrorKind, RetryStatus, String) {
    use RetryStatus::Permanent;
    use TargetErrorKind as K;
    match err {
        StoreError::NotFound { .. } => (K::NotFound, Permanent, "not found".into()),
        StoreError::AlreadyExists { .. } | StoreError::Precondition { .. } => {
            (K::AlreadyExists, Permanent, "already exists".into())
        }
        StoreError::PermissionDenied { .. } => {
            (K::PermissionDenied, Permanent, "permission denied".into())
        }
        StoreError::Unauthenticated { .. } => {
            (K::Unauthenticated, Permanent, "unauthenticated".into())
        }
        StoreError::NotSupported { .. } | StoreError::NotImplemented { .. } => (
            K::Unsupported,
            Permanent,
            "not supported by the service".into(),
        ),
        StoreError::UnknownConfigurationKey { key, .. } => (
            K::InvalidConfig,
            Permanent,
            format!("unknown setting {key}"),
        ),
        StoreError::InvalidPath { .. } => {
            (K::InvalidConfig, Permanent, "invalid object path".into())
        }
        _ => classify_generic(err),
    }
}

fn classify_generic(err: &StoreError) -> (TargetErrorKind, RetryStatus, String) {
    let mut chain: Vec<String> = Vec::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if e.downcast_ref::<object_store::client::HttpError>()
            .is_some()
        {
            return (
                TargetErrorKind::Network,
                RetryStatus::Temporary,
                "the service could not be reached or the connection failed".into(),
            );
        }
        chain.push(e.to_string());
        current = e.source();
    }
    match chain.iter().find_map(|text| http_status(text)) {
        Some(429) => (
            TargetErrorKind::Network,
            RetryStatus::Temporary,
            "the service asked to slow down (HTTP 429)".into(),
        ),
        Some(status @ 500..=599) => (
            TargetErrorKind::Network,
            RetryStatus::Temporary,
            format!("the service failed (HTTP {status})"),
        ),
        Some(401) => (
            TargetErrorKind::Unauthenticated,
            RetryStatus::Permanent,
            "unauthenticated (HTTP 401)".into(),
        ),
        Some(403) => (
            TargetErrorKind::PermissionDenied,
            RetryStatus::Permanent,
            "permission denied (HTTP 403)".into(),
        ),
        Some(404) => (
            TargetErrorKind::NotFound,
            RetryStatus::Permanent,
            "not found (HTTP 404)".into(),
        ),
        Some(status @ 400..=499) => (
            TargetErrorKind::Io,
            RetryStatus::Permanent,
            format!("the service refused the request (HTTP {status})"),
        ),
        _ => (
            TargetErrorKind::Network,
            RetryStatus::Temporary,
            "the request failed".into(),
        ),
    }
}

/// The HTTP status in an object_store error message ("... status code: 503 ...").
fn http_status(text: &str) -> Option<u16> {
    let (_, rest) = text.split_once("status code: ")?;
    rest.get(..3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> ErrorContext {
        ErrorContext {
            location: "s3://b/p".into(),
            container_word: "bucket",
            container: "b".into(),
        }
    }

    #[test]
    fn statuses_in_messages() {
        assert_eq!(
            http_status("Server returned non-2xx status code: 503 Service Unavailable: x"),
            Some(503)
        );
        assert_eq!(http_status("no status here"), None);
    }

    #[test]
    fn variants_map_to_kinds_and_retry() {
        let key = ObjectKey::new("a/b").unwrap();
        let denied = StoreError::PermissionDenied {
            path: "p".into(),
            source: "403".into(),
        };
        let e = context().map(Some(&key), denied);
        assert_eq!(e.kind, TargetErrorKind::PermissionDenied);
        assert!(!e.is_temporary());
        assert!(e.message.contains("bucket b"), "{e}");

        let missing = StoreError::NotFound {
            path: "p".into(),
            source: "404".into(),
        };
        let e = context().map_write(&key, missing);
        assert!(e.message.contains("'b' does not exist"), "{e}");

        let throttled = StoreError::Generic {
            store: "S3",
            source: "Server returned non-2xx status code: 429 Too Many Requests".into(),
        };
        assert!(context().map(Some(&key), throttled).is_temporary());
        let bad = StoreError::Generic {
            store: "S3",
            source: "Server returned non-2xx status code: 400 Bad Request".into(),
        };
        assert!(!context().map(Some(&key), bad).is_temporary());
    }
}
