//! opendal errors as target errors.
//!
//! The retry status cannot come from opendal's own: its `RetryLayer` marks every error it
//! passes on "persistent", whatever it was. So it comes from the kind: not found, exists,
//! denied, misconfigured, unsupported are permanent; a throttled request is temporary; and an
//! unexpected failure (a reset connection, a dead or stalled server) is temporary unless its
//! text says a login was refused (HTTP 401/403, ssh's "Permission denied" or a host key
//! mismatch), which is permanent.

use opendal::ErrorKind as K;
use sstore_target_api::{ObjectKey, RetryStatus, TargetError, TargetErrorKind};

/// The whole error chain as text.
fn chain_text(err: &opendal::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Whether an unexpected error is a refused login.
fn login_refused(text: &str) -> bool {
    [
        "status: 401",
        "status: 403",
        "Permission denied",
        "Host key verification failed",
        "REMOTE HOST IDENTIFICATION HAS CHANGED",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// Maps an opendal error from an operation on `key` of target `location`.
pub fn map(location: &str, key: Option<&ObjectKey>, err: opendal::Error) -> TargetError {
    use RetryStatus::{Permanent, Temporary};
    let (kind, retry, message) = match err.kind() {
        K::NotFound | K::IsADirectory | K::NotADirectory => {
            (TargetErrorKind::NotFound, Permanent, "not found")
        }
        K::AlreadyExists | K::ConditionNotMatch => {
            (TargetErrorKind::AlreadyExists, Permanent, "already exists")
        }
        K::PermissionDenied => (
            TargetErrorKind::PermissionDenied,
            Permanent,
            "permission denied (check the user, key or password, and write access)",
        ),
        K::ConfigInvalid => (
            TargetErrorKind::InvalidConfig,
            Permanent,
            "invalid configuration",
        ),
        K::Unsupported => (
            TargetErrorKind::Unsupported,
            Permanent,
            "not supported by the service",
        ),
        K::RangeNotSatisfied => (
            TargetErrorKind::InvalidData,
            Permanent,
            "range not satisfiable",
        ),
        K::RateLimited => (
            TargetErrorKind::Network,
            Temporary,
            "the service asked to slow down",
        ),
        _ if login_refused(&chain_text(&err)) => (
            TargetErrorKind::PermissionDenied,
            Permanent,
            "the server refused the login (check the user and the password or key, and the \
             server's host key)",
        ),
        _ => (
            TargetErrorKind::Network,
            Temporary,
            "the request failed (the server could not be reached, or failed)",
        ),
    };
    TargetError::new(kind, location, key, message)
        .with_retry(retry)
        .with_source(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_retry_status() {
        let key = ObjectKey::new("a").unwrap();
        let e = map("t", Some(&key), opendal::Error::new(K::NotFound, "gone"));
        assert!(e.is_not_found() && !e.is_temporary());
        let e = map(
            "t",
            Some(&key),
            opendal::Error::new(K::Unexpected, "reset").set_temporary(),
        );
        assert_eq!(e.kind, TargetErrorKind::Network);
        assert!(e.is_temporary());
        // What RetryLayer returns once its own attempts are spent.
        let spent = opendal::Error::new(K::Unexpected, "reset")
            .set_temporary()
            .set_persistent();
        assert!(map("t", None, spent).is_temporary());
        let e = map("t", None, opendal::Error::new(K::PermissionDenied, "no"));
        assert!(!e.is_temporary());
        assert!(e.to_string().contains("permission denied"), "{e}");
        let refused = opendal::Error::new(K::Unexpected, "response: status: 401").set_persistent();
        let e = map("t", None, refused);
        assert_eq!(e.kind, TargetErrorKind::PermissionDenied);
        assert!(!e.is_temporary());
        let gone = opendal::Error::new(K::NotFound, "gone").set_persistent();
        assert!(!map("t", None, gone).is_temporary());
    }
}
