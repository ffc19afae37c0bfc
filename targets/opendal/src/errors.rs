//! opendal errors as target errors. opendal says itself whether an error is temporary; the
//! kind comes from its error kind.

use opendal::ErrorKind as K;
use sstore_target_api::{ObjectKey, RetryStatus, TargetError, TargetErrorKind};

/// Maps an opendal error from an operation on `key` of target `location`.
pub fn map(location: &str, key: Option<&ObjectKey>, err: opendal::Error) -> TargetError {
    // HTTP services report a refused login as an unexpected response; its status says it.
    let text = err.to_string();
    let refused = err.kind() == K::Unexpected
        && (text.contains("status: 401") || text.contains("status: 403"));
    let (kind, message) = match err.kind() {
        _ if refused => (
            TargetErrorKind::PermissionDenied,
            "the server refused the login or the request (HTTP 401/403): check the user and \
             password",
        ),
        K::NotFound | K::IsADirectory | K::NotADirectory => {
            (TargetErrorKind::NotFound, "not found")
        }
        K::AlreadyExists | K::ConditionNotMatch => {
            (TargetErrorKind::AlreadyExists, "already exists")
        }
        K::PermissionDenied => (
            TargetErrorKind::PermissionDenied,
            "permission denied (check the user, key or password, and write access)",
        ),
        K::ConfigInvalid => (TargetErrorKind::InvalidConfig, "invalid configuration"),
        K::Unsupported => (TargetErrorKind::Unsupported, "not supported by the service"),
        K::RateLimited => (TargetErrorKind::Network, "the service asked to slow down"),
        K::RangeNotSatisfied => (TargetErrorKind::InvalidData, "range not satisfiable"),
        _ if err.is_temporary() => (TargetErrorKind::Network, "the request failed"),
        _ => (TargetErrorKind::Io, "the request failed"),
    };
    let retry = if err.is_temporary() || err.kind() == K::RateLimited {
        RetryStatus::Temporary
    } else {
        RetryStatus::Permanent
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
        let e = map("t", None, opendal::Error::new(K::PermissionDenied, "no"));
        assert!(!e.is_temporary());
        assert!(e.to_string().contains("permission denied"), "{e}");
    }
}
