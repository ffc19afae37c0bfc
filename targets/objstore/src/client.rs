//! HTTP client settings shared by the S3 and Azure targets: bounded connects and stalls, and
//! a short in-request retry so the engine's own retry (with its logging) stays in charge.

use std::time::Duration;

use object_store::{BackoffConfig, ClientOptions, RetryConfig};

/// A connection must open within this time.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A response (or the next bytes of a streamed one) must arrive within this time; a stalled
/// server is a temporary error, never a hang. There is no limit on a whole transfer.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Client options: the timeouts above, and plain HTTP only when `allow_http`.
pub fn client_options(allow_http: bool) -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(allow_http)
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_timeout_disabled()
        .with_read_timeout(READ_TIMEOUT)
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
