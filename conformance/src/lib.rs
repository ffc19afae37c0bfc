//! The sstore target conformance kit: one suite every storage target must pass.
//!
//! [`run`] exercises a [`Target`] against the contract of `sstore-target-api` (atomic
//! publishing, create-only puts, `NotFound` for missing keys, clamped ranges, sorted listings,
//! aborted and mis-announced puts, concurrency, readiness) and returns a [`Report`] with one
//! result per check; it never panics on a misbehaving target. Every target crate's tests call
//! it (see `tests/local.rs`, or [`assert_conforms`]), and `sstore targets test NAME` runs it
//! against any configured target.
//!
//! Everything is written under a fresh prefix `sstore-conformance-<pid>-<nanos>/`, one folder
//! per check; each check removes its objects whether it passed or not, and a final `cleanup`
//! check removes anything left and verifies that nothing is listed under the prefix. The kit
//! never deletes a key outside its prefix.
//!
//! The checks, in the order run ([`check_list`] gives the same list with descriptions):
//!
//! | check | what the target must do |
//! |---|---|
//! | `readiness` | answer its readiness check in time, writable |
//! | `round_trip` | store and return empty and small objects (announced length or not, trickled bodies); `stat` gives the size |
//! | `large_object` | stream [`KitOptions::large_object_bytes`] up and down intact (SHA-256), with and without an announced length; ranged reads across it |
//! | `put_file` | store local files; create-only and overwrite as `put`; a missing file is an error |
//! | `create_and_overwrite` | `Create` on an existing key is `AlreadyExists` (permanent), old content intact; `Overwrite` replaces |
//! | `missing_keys` | `get`, `get_range`, `stat`, `delete` of a missing key are `NotFound`, permanent |
//! | `ranged_reads` | ranges at the start, middle and end; an end past the object clamped; empty ranges; a start past the end is `InvalidData` |
//! | `listing` | [`KitOptions::many_keys`] keys listed exactly, sorted, with sizes; sub-prefixes and partial names are string prefixes |
//! | `delete` | a deleted object is gone from `get`, `stat` and `list`; siblings stay |
//! | `key_names` | `ObjectKey` refuses traversal; unusual but valid names (spaces, unicode, `%`, `+`, `#`, dot names) round-trip; a traversal prefix lists nothing |
//! | `aborted_put` | a body failing mid-way publishes nothing and leaves an overwritten object intact |
//! | `length_mismatch` | a body shorter or longer than announced is `InvalidData` and publishes nothing |
//! | `invisible_until_complete` | while a put is in progress nothing is visible under its key or listed |
//! | `concurrent_puts` | [`KitOptions::concurrency`] puts of different keys at once all land intact |
//! | `create_race` | of several `Create` puts of one key at once, one wins (exactly one if the target claims `conditional_create`) and its content is stored whole |
//! | `unreachable` | readiness of [`KitOptions::unreachable`] fails, in time, without panicking |
//! | `cleanup` | nothing is left listed under the run's prefix |
//!
//! - [`data`]: deterministic streamed bodies, including ones that fail or pause part-way.
//! - [`faults`]: a fault-injecting decorator for any target (and the plan a test plugin
//!   shares), for testing what the engine does when a target fails or stalls.
//! - [`proxy`]: a fault-injecting TCP proxy (latency, throttling, connections dropped or
//!   reset mid-body, a black hole) to put between a target and its real server.
//! - [`report`]: per-check outcomes and the printable report.
//! - [`scenarios`]: tests every target's own suite runs against its real server (a server
//!   killed mid-upload, conditional create, a failed upload), written once.
//! - [`services`]: where the test servers of `cargo xtask services up` are.
//! - [`unique`]: a name no other test or run uses, for test folders, prefixes and buckets.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sstore_target_api::Target;

mod checks;
pub mod data;
pub mod faults;
pub mod proxy;
pub mod report;
pub mod scenarios;
pub mod services;

pub use report::{CheckOutcome, Outcome, Report};

/// How hard the kit pushes the target.
#[derive(Debug, Clone)]
pub struct KitOptions {
    /// Size of the large object, streamed from a generator and read back as a stream (never
    /// held in memory). Default 256 MiB.
    pub large_object_bytes: u64,
    /// How many keys the listing check writes; the default, 1500, crosses the page size of
    /// S3 (1000), Azure (5000 is the maximum, 1000 usual) and most WebDAV servers.
    pub many_keys: usize,
    /// How many puts run at once: the concurrency check's width, and the bound for writing
    /// and deleting the listing check's keys. Default 8.
    pub concurrency: usize,
    /// How long a readiness check may take. Default 30 s.
    pub readiness_deadline: Duration,
    /// How long one check may take before it is abandoned and failed as hanging. Default
    /// 10 minutes.
    pub check_timeout: Duration,
    /// A target of the same kind that cannot be reached (a closed port, a missing share);
    /// its readiness must fail in time. `None` skips that check.
    pub unreachable: Option<Arc<dyn Target>>,
    /// The length of the long name the `key_names` check writes (default 200 bytes). Lower it
    /// only for a test server with a file-name limit of its own (s3s-fs keeps a metadata file
    /// named after the whole key, so its keys must stay well under 255 bytes).
    pub long_name_bytes: usize,
}

impl Default for KitOptions {
    fn default() -> Self {
        Self {
            large_object_bytes: 256 * 1024 * 1024,
            many_keys: 1500,
            concurrency: 8,
            readiness_deadline: Duration::from_secs(30),
            check_timeout: Duration::from_secs(600),
            unreachable: None,
            long_name_bytes: 200,
        }
    }
}

/// Runs every check against `target` and reports each one's outcome. A failing, panicking or
/// hanging check never stops the others.
///
/// Must be called inside a Tokio runtime with the time driver enabled (as `#[tokio::main]`
/// and `#[tokio::test]` set up, of either flavour): checks run as tasks, under time limits.
pub async fn run(target: Arc<dyn Target>, options: &KitOptions) -> Report {
    let started = Instant::now();
    let prefix = run_prefix();
    let mut outcomes = Vec::with_capacity(checks::CHECKS.len() + 1);
    for check in checks::CHECKS {
        let check_started = Instant::now();
        let scope = Arc::new(checks::Scope::new(
            target.clone(),
            options.clone(),
            format!("{prefix}{}/", check.name),
        ));
        let (mut result, note) = run_check(check, scope.clone(), options.check_timeout).await;
        let cleaned = tokio::time::timeout(options.check_timeout, scope.cleanup()).await;
        let cleanup_error = match cleaned {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some(format!(
                "removing its objects did not finish within {:?}",
                options.check_timeout
            )),
        };
        if let Some(e) = cleanup_error {
            result = match result {
                Outcome::Failed(m) => Outcome::Failed(format!("{m}; cleanup: {e}")),
                _ => Outcome::Failed(format!("cleanup: {e}")),
            };
        }
        outcomes.push(CheckOutcome {
            name: check.name,
            result,
            note,
            elapsed: check_started.elapsed(),
        });
    }

    let sweep_started = Instant::now();
    let swept = tokio::time::timeout(
        options.check_timeout,
        checks::sweep(target.clone(), prefix.clone(), options.concurrency),
    )
    .await;
    let result = match swept {
        Ok(Ok(())) => Outcome::Passed,
        Ok(Err(e)) => Outcome::Failed(e),
        Err(_) => Outcome::Failed(format!("did not finish within {:?}", options.check_timeout)),
    };
    outcomes.push(CheckOutcome {
        name: "cleanup",
        result,
        note: None,
        elapsed: sweep_started.elapsed(),
    });

    Report {
        location: target.location(),
        capabilities: target.capabilities(),
        prefix,
        checks: outcomes,
        elapsed: started.elapsed(),
    }
}

/// Runs the kit and panics with the report if any check failed; returns the report otherwise.
/// For target crates' tests.
pub async fn assert_conforms(target: Arc<dyn Target>, options: &KitOptions) -> Report {
    let report = run(target, options).await;
    if !report.passed() {
        let failed: Vec<&str> = report.failures().map(|c| c.name).collect();
        panic!(
            "the target does not conform (failed: {}):\n{report}",
            failed.join(", ")
        );
    }
    report
}

/// The name and a one-line description of every check, in the order run (the final
/// `cleanup` included).
pub fn check_list() -> impl Iterator<Item = (&'static str, &'static str)> {
    checks::CHECKS
        .iter()
        .map(|c| (c.name, c.about))
        .chain(std::iter::once((
            "cleanup",
            "nothing is left listed under the run's prefix once every check removed its objects",
        )))
}

/// Runs one check as its own task, so a panic or a hang is reported instead of spreading.
async fn run_check(
    check: &checks::Check,
    scope: Arc<checks::Scope>,
    limit: Duration,
) -> (Outcome, Option<String>) {
    let mut task = tokio::spawn((check.run)(scope));
    match tokio::time::timeout(limit, &mut task).await {
        Ok(Ok(Ok(checks::Verdict::Passed(note)))) => (Outcome::Passed, note),
        Ok(Ok(Ok(checks::Verdict::Skipped(why)))) => (Outcome::Skipped(why), None),
        Ok(Ok(Err(message))) => (Outcome::Failed(message), None),
        Ok(Err(join)) => (Outcome::Failed(join_failure(join)), None),
        Err(_) => {
            task.abort();
            let message = format!("hangs: did not finish within {limit:?}");
            (Outcome::Failed(message), None)
        }
    }
}

/// Describes a task that panicked or was cancelled.
pub(crate) fn join_failure(e: tokio::task::JoinError) -> String {
    if e.is_panic() {
        format!("panicked: {}", panic_message(e.into_panic()))
    } else {
        "was cancelled".to_owned()
    }
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

/// `<name>-<pid>-<nanos>-<n>`: a name no other test or run uses (another process has another
/// pid, a later run of this one another time, and `n` counts the calls of this process), for
/// the folders, prefixes and buckets of tests. Lower-case ASCII when `name` is, and short
/// enough for an S3 bucket name when `name` is under 20 bytes.
pub fn unique(name: &str) -> String {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = CALLS.fetch_add(1, Ordering::Relaxed);
    format!("{name}-{}-{nanos}-{n}", std::process::id())
}

/// `sstore-conformance-<pid>-<nanos>/`, unique within the process even for runs started in
/// the same nanosecond.
fn run_prefix() -> String {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or_default();
    let previous = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last.saturating_add(1)))
        })
        .unwrap_or(now);
    let nanos = now.max(previous.saturating_add(1));
    format!("sstore-conformance-{}-{nanos}/", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_start_with_the_name() {
        let a = unique("kit");
        let b = unique("kit");
        assert_ne!(a, b);
        assert!(
            a.starts_with(&format!("kit-{}-", std::process::id())),
            "{a}"
        );
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'),
            "{a}"
        );
    }

    #[test]
    fn run_prefixes_are_unique_valid_folders() {
        let a = run_prefix();
        let b = run_prefix();
        assert_ne!(a, b);
        assert!(a.starts_with("sstore-conformance-") && a.ends_with('/'));
        assert!(sstore_target_api::ObjectKey::new(format!("{a}x")).is_ok());
    }

    #[test]
    fn check_names_are_unique() {
        let mut names: Vec<&str> = check_list().map(|(n, _)| n).collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count);
    }
}
