//! HTTP client settings shared by the S3 and Azure targets: bounded connects and stalls, and
//! a short in-request retry so the engine's own retry (with its logging) stays in charge.

use std::time::Duration;

use object_store::{BackoffConfig, ClientOptions, RetryConfig};

/// A connection must open within this time.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A response (or the next bytes of a streamed one) must arrive within this time; a stalled
/// server is a temporary error, never a hang. There is no limit on a whole transfer.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a stalled connection is waited for, and how many times object_store retries one
/// request itself, as a `[[target]]` table sets them (`timeout_secs`, `retries`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection {
    /// A response, or the next bytes of one, must arrive within this time; connecting gets at
    /// most [`CONNECT_TIMEOUT`], or this when it is shorter.
    pub timeout: Duration,
    /// Retries of one request (throttling, 5xx, resets) before the error reaches the engine.
    pub retries: usize,
}

impl Default for Connection {
    fn default() -> Self {
        Self {
            timeout: READ_TIMEOUT,
            retries: 3,
        }
    }
}

impl Connection {
    /// `timeout_secs` (1 to 3600, default 60) and `retries` (0 to 10, default 3), checked.
    pub fn from_settings(
        request: &sstore_target_api::OpenRequest,
        timeout_secs: Option<u64>,
        retries: Option<usize>,
    ) -> Result<Self, sstore_target_api::TargetError> {
        let defaults = Self::default();
        let timeout = match timeout_secs {
            None => defaults.timeout,
            Some(secs @ 1..=3600) => Duration::from_secs(secs),
            Some(secs) => {
                return Err(request.invalid(format!(
                    "timeout_secs = {secs} is out of range: give a value from 1 to 3600"
                )));
            }
        };
        let retries = match retries {
            None => defaults.retries,
            Some(n @ 0..=10) => n,
            Some(n) => {
                return Err(request.invalid(format!(
                    "retries = {n} is out of range: give a value from 0 to 10"
                )));
            }
        };
        Ok(Self { timeout, retries })
    }

    /// Client options: the timeouts, and plain HTTP only when `allow_http`.
    pub fn client_options(&self, allow_http: bool) -> ClientOptions {
        ClientOptions::new()
            .with_allow_http(allow_http)
            .with_connect_timeout(CONNECT_TIMEOUT.min(self.timeout))
            .with_timeout_disabled()
            .with_read_timeout(self.timeout)
    }

    /// object_store's own retries of one request, within two minutes.
    pub fn retry_config(&self) -> RetryConfig {
        RetryConfig {
            max_retries: self.retries,
            ..retry_config()
        }
    }
}

/// Client options with the default timeouts: plain HTTP only when `allow_http`.
pub fn client_options(allow_http: bool) -> ClientOptions {
    Connection::default().client_options(allow_http)
}

/// object_store's own retries (throttling, 5xx, resets within one request or part): three,
/// within two minutes. Anything beyond is returned to the engine as a temporary error.
pub fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(120),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_settings_are_checked() {
        let request = sstore_target_api::OpenRequest::for_url("s3://b/p");
        assert_eq!(
            Connection::from_settings(&request, None, None).ok(),
            Some(Connection::default())
        );
        assert_eq!(
            Connection::from_settings(&request, Some(2), Some(0)).ok(),
            Some(Connection {
                timeout: Duration::from_secs(2),
                retries: 0
            })
        );
        for (timeout, retries, name) in [
            (Some(0), None, "timeout_secs = 0"),
            (Some(3601), None, "timeout_secs = 3601"),
            (None, Some(11), "retries = 11"),
        ] {
            let err = Connection::from_settings(&request, timeout, retries)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(name), "{err}");
        }
    }
}
