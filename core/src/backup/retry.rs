//! Retries of target operations: exponential backoff with full jitter inside a total deadline.
//! Whether an error is retried comes only from its retry status ([`TargetError::is_temporary`]),
//! never from its message.

use std::future::Future;
use std::time::{Duration, Instant};

use super::{BackupError, EventSink};
use crate::target::TargetError;

/// An error that says whether trying again may help.
pub trait Retryable: std::fmt::Display {
    fn is_temporary(&self) -> bool;
}

impl Retryable for TargetError {
    fn is_temporary(&self) -> bool {
        TargetError::is_temporary(self)
    }
}

/// Only a target's temporary failure is worth retrying; every other backup error is final.
impl Retryable for BackupError {
    fn is_temporary(&self) -> bool {
        matches!(self, BackupError::Target(e) if e.is_temporary())
    }
}

/// How transient failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first wait; each further wait doubles, up to `max_delay`.
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// No new attempt starts after this much time since the first one.
    pub deadline: Duration,
    /// At most this many attempts in all (the first included).
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            deadline: Duration::from_secs(30 * 60),
            max_attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (attempt counts from 1): a random duration up to
    /// the exponential bound ("full jitter"), so clients failing together do not retry together.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let bound = self
            .first_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay);
        let bound_ms = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX);
        if bound_ms == 0 {
            return Duration::ZERO;
        }
        let random = u64::from_le_bytes(crate::random::bytes::<8>());
        // At least half the bound, so a retry never comes immediately.
        Duration::from_millis(bound_ms / 2 + random % (bound_ms / 2 + 1))
    }
}

/// Runs `operation` until it succeeds, fails permanently, or the policy gives up; reports each
/// retry with its cause (a warning) and giving up (an error). `what` names the operation in
/// the log (`upload to nas`).
pub async fn with_retry<T, E, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    log: &EventSink,
    mut operation: F,
) -> Result<T, E>
where
    E: Retryable,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    let mut attempt = 1;
    loop {
        match operation(attempt).await {
            Ok(value) => return Ok(value),
            Err(err) if !err.is_temporary() => return Err(err),
            Err(err) => {
                let wait = policy.delay(attempt);
                let out_of_attempts = attempt >= policy.max_attempts;
                let out_of_time = started.elapsed() + wait > policy.deadline;
                if out_of_attempts || out_of_time {
                    log.error(format!(
                        "{what}: giving up after {attempt} attempts in {:.1}s: {err}",
                        started.elapsed().as_secs_f64()
                    ));
                    return Err(err);
                }
                log.warn(format!(
                    "{what}: attempt {attempt} failed with a temporary error, retrying in {} ms: {err}",
                    wait.as_millis()
                ));
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::backup::JobLog;
    use crate::target::{RetryStatus, TargetErrorKind};

    fn policy() -> RetryPolicy {
        RetryPolicy {
            first_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(8),
            deadline: Duration::from_secs(5),
            max_attempts: 5,
        }
    }

    fn error(retry: RetryStatus) -> TargetError {
        TargetError::new(TargetErrorKind::Network, "t", None, "reset").with_retry(retry)
    }

    #[test]
    fn delays_grow_within_their_bounds() {
        let p = RetryPolicy {
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        for _ in 0..50 {
            let first = p.delay(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let fourth = p.delay(4);
            assert!(fourth >= Duration::from_millis(400) && fourth <= Duration::from_millis(800));
            assert!(p.delay(30) <= Duration::from_millis(1000));
        }
    }

    #[tokio::test]
    async fn temporary_errors_are_retried_and_logged() {
        let calls = AtomicU32::new(0);
        let log = JobLog::new();
        let events = log.attach(&EventSink::default());
        let value = with_retry(&policy(), "upload to t", &events, |_| async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(error(RetryStatus::Temporary))
            } else {
                Ok(7)
            }
        })
        .await
        .unwrap();
        assert_eq!(value, 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(log.warnings(), 2);
        assert!(
            log.render().contains("attempt 2 failed"),
            "{}",
            log.render()
        );
    }

    #[tokio::test]
    async fn permanent_errors_and_exhausted_attempts_stop() {
        let calls = AtomicU32::new(0);
        let log = JobLog::new();
        let events = log.attach(&EventSink::default());
        let err = with_retry(&policy(), "x", &events, |_| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), TargetError>(error(RetryStatus::Permanent))
        })
        .await
        .unwrap_err();
        assert!(!err.is_temporary());
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        calls.store(0, Ordering::SeqCst);
        with_retry(&policy(), "x", &events, |_| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), TargetError>(error(RetryStatus::Temporary))
        })
        .await
        .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 5);
        assert!(log.render().contains("giving up after 5 attempts"));
    }
}
