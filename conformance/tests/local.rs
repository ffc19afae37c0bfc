//! The conformance kit against the local target, at full size; and against deliberately
//! broken decorators of it, to prove the kit notices each flaw and names the right check:
//! a small misbehaving wrapper for the contract's semantics, the kit's own [`FaultyTarget`]
//! for faults (a panic, a hang).

// Helpers outside `#[test]` functions unwrap too.
#![allow(clippy::unwrap_used)]

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sstore_conformance::faults::{FaultKind, FaultPlan, FaultyTarget, Operation, Rule};
use sstore_conformance::{KitOptions, Outcome, Report, assert_conforms, check_list, run};
use sstore_target_api::{
    Capabilities, ObjectKey, ObjectMeta, ObjectReader, PutBody, PutMode, PutOptions, Readiness,
    Target, TargetError, put_bytes,
};
use sstore_target_local::LocalTarget;
use tokio::io::AsyncReadExt;

/// A local target that can never be reached: its root's parent is a regular file.
fn unreachable_local(dir: &Path) -> Arc<dyn Target> {
    let file = dir.join("a-regular-file");
    std::fs::write(&file, b"not a folder").unwrap();
    Arc::new(LocalTarget::new(file.join("root")))
}

/// Every regular file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                out.extend(files_under(&entry.path()));
            } else {
                out.push(entry.path());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_target_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let options = KitOptions {
        unreachable: Some(unreachable_local(dir.path())),
        ..KitOptions::default()
    };
    let started = Instant::now();
    let report = assert_conforms(Arc::new(LocalTarget::new(&root)), &options).await;
    println!("{report}\n(the local run took {:.2?})", started.elapsed());

    assert_eq!(report.checks.len(), check_list().count());
    assert!(report.checks.iter().all(|c| c.passed()), "{report}");
    assert!(report.prefix.starts_with("sstore-conformance-"));
    // Nothing is left behind (empty folders aside: the contract has no folders to delete).
    assert_eq!(files_under(&root), Vec::<PathBuf>::new());
}

/// What a [`Broken`] target gets wrong: the contract's semantics, which no fault injection
/// produces (faults come from [`FaultyTarget`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    /// `PutMode::Create` replaces existing objects.
    CreateOverwrites,
    /// Listings come back in reverse order.
    UnsortedList,
    /// A put whose body fails publishes what it had read.
    PublishesPartial,
    /// `get_range` ignores the end of the range.
    RangeIgnoresEnd,
}

/// The local target with one [`Flaw`].
#[derive(Debug)]
struct Broken {
    inner: LocalTarget,
    flaw: Flaw,
}

impl Broken {
    fn mode(&self, mode: PutMode) -> PutMode {
        if self.flaw == Flaw::CreateOverwrites {
            PutMode::Overwrite
        } else {
            mode
        }
    }
}

#[async_trait]
impl Target for Broken {
    fn location(&self) -> String {
        format!("broken({:?}):{}", self.flaw, self.inner.location())
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn put(
        &self,
        key: &ObjectKey,
        body: PutBody<'_>,
        options: PutOptions,
    ) -> Result<ObjectMeta, TargetError> {
        let options = PutOptions {
            mode: self.mode(options.mode),
            ..options
        };
        if self.flaw == Flaw::PublishesPartial {
            let mut read = Vec::new();
            let result = body.read_to_end(&mut read).await;
            put_bytes(&self.inner, key, &read, options.mode).await?;
            return match result {
                Ok(_) => self.inner.stat(key).await,
                Err(e) => Err(TargetError::from_io(&self.location(), Some(key), e)),
            };
        }
        self.inner.put(key, body, options).await
    }

    async fn put_file(
        &self,
        key: &ObjectKey,
        path: &Path,
        mode: PutMode,
    ) -> Result<ObjectMeta, TargetError> {
        self.inner.put_file(key, path, self.mode(mode)).await
    }

    async fn get(&self, key: &ObjectKey) -> Result<ObjectReader, TargetError> {
        self.inner.get(key).await
    }

    async fn get_range(
        &self,
        key: &ObjectKey,
        range: Range<u64>,
    ) -> Result<ObjectReader, TargetError> {
        let range = if self.flaw == Flaw::RangeIgnoresEnd {
            range.start..u64::MAX
        } else {
            range
        };
        self.inner.get_range(key, range).await
    }

    async fn stat(&self, key: &ObjectKey) -> Result<ObjectMeta, TargetError> {
        self.inner.stat(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, TargetError> {
        let mut listed = self.inner.list(prefix).await?;
        if self.flaw == Flaw::UnsortedList {
            listed.reverse();
        }
        Ok(listed)
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), TargetError> {
        self.inner.delete(key).await
    }

    async fn readiness(&self) -> Result<Readiness, TargetError> {
        self.inner.readiness().await
    }
}

/// The local target at `root` with faults injected by `rules`.
fn faulty(root: &Path, rules: impl IntoIterator<Item = Rule>) -> FaultyTarget {
    FaultyTarget::new(Arc::new(LocalTarget::new(root)), FaultPlan::new(rules))
}

/// Small sizes: these runs only need to show which check fails.
fn quick_options() -> KitOptions {
    KitOptions {
        large_object_bytes: 3 * 1024 * 1024 + 1,
        many_keys: 60,
        concurrency: 4,
        readiness_deadline: Duration::from_millis(500),
        ..KitOptions::default()
    }
}

/// Runs the kit against the target `make` builds on a local root, and returns the report
/// after checking that nothing was left behind.
async fn run_on(make: impl FnOnce(&Path) -> Arc<dyn Target>, options: KitOptions) -> Report {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let report = run(make(&root), &options).await;
    println!("{report}");
    assert_eq!(files_under(&root), Vec::<PathBuf>::new(), "{report}");
    report
}

/// Runs the quick kit against the local target with `flaw`.
async fn run_broken(flaw: Flaw, options: KitOptions) -> Report {
    let make = |root: &Path| {
        Arc::new(Broken {
            inner: LocalTarget::new(root),
            flaw,
        }) as Arc<dyn Target>
    };
    run_on(make, options).await
}

fn failed(report: &Report) -> Vec<&'static str> {
    report.failures().map(|c| c.name).collect()
}

fn message<'a>(report: &'a Report, check: &str) -> &'a str {
    match &report.check(check).unwrap().result {
        Outcome::Failed(m) => m,
        other => panic!("{check} did not fail: {other:?}\n{report}"),
    }
}

/// Also shows the kit runs on a current-thread runtime.
#[tokio::test]
async fn the_quick_kit_passes_a_sound_target_and_skips_without_an_unreachable_one() {
    let dir = tempfile::tempdir().unwrap();
    let report = run(Arc::new(LocalTarget::new(dir.path())), &quick_options()).await;
    assert!(report.passed(), "{report}");
    assert!(report.check("unreachable").unwrap().skipped(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_overwrites_is_caught() {
    let report = run_broken(Flaw::CreateOverwrites, quick_options()).await;
    assert!(!report.passed());
    let failed = failed(&report);
    for check in ["create_and_overwrite", "put_file", "create_race"] {
        assert!(failed.contains(&check), "{check} passed:\n{report}");
    }
    assert!(
        message(&report, "create_and_overwrite").contains("must fail with already exists"),
        "{report}"
    );
    // The other checks still ran, and the unaffected ones passed.
    for check in [
        "readiness",
        "round_trip",
        "large_object",
        "listing",
        "aborted_put",
    ] {
        assert!(report.check(check).unwrap().passed(), "{check}:\n{report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsorted_listing_is_caught() {
    let report = run_broken(Flaw::UnsortedList, quick_options()).await;
    assert!(
        message(&report, "listing").contains("is not sorted by key"),
        "{report}"
    );
    assert!(report.check("round_trip").unwrap().passed(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_publish_is_caught() {
    let report = run_broken(Flaw::PublishesPartial, quick_options()).await;
    assert!(
        message(&report, "aborted_put").contains("stat of"),
        "{report}"
    );
    assert!(report.check("listing").unwrap().passed(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_read_past_its_end_is_caught() {
    let report = run_broken(Flaw::RangeIgnoresEnd, quick_options()).await;
    assert_eq!(
        failed(&report),
        ["large_object", "ranged_reads", "delete_after_read"],
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_readiness_is_reported_and_the_rest_still_runs() {
    let make = |root: &Path| {
        let rule = Rule::new(Operation::Readiness, FaultKind::Panic);
        Arc::new(faulty(root, [rule])) as Arc<dyn Target>
    };
    let report = run_on(make, quick_options()).await;
    assert_eq!(failed(&report), ["readiness"], "{report}");
    assert!(
        message(&report, "readiness").contains("panicked: injected panic in readiness"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_target_that_hangs_or_answers_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    // Its readiness never answers (an hour is forever for the kit's half-second deadline).
    let hanging = faulty(
        &dir.path().join("never"),
        [Rule::new(Operation::Readiness, FaultKind::Stall).ms(3_600_000)],
    );
    let options = KitOptions {
        unreachable: Some(Arc::new(hanging)),
        ..quick_options()
    };
    let report = run_broken(Flaw::UnsortedList, options).await;
    assert!(
        message(&report, "unreachable").starts_with("hangs:"),
        "{report}"
    );

    // A "unreachable" target that is in fact reachable.
    let options = KitOptions {
        unreachable: Some(Arc::new(LocalTarget::new(dir.path().join("reachable")))),
        ..quick_options()
    };
    let report = run(
        Arc::new(LocalTarget::new(dir.path().join("main"))),
        &options,
    )
    .await;
    assert_eq!(failed(&report), ["unreachable"], "{report}");
    assert!(
        message(&report, "unreachable").contains("succeeded"),
        "{report}"
    );
}
