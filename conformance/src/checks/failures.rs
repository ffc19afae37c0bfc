//! Checks of puts that go wrong or overlap: bodies that fail or lie about their length, puts
//! observed while in progress, concurrent puts and create races, and an unreachable target.

use std::sync::Arc;
use std::time::Instant;

use sstore_target_api::{ObjectKey, PutMode, PutOptions, TargetError, TargetErrorKind};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use super::{
    CheckResult, During, Scope, Verdict, describe, expect_absent, expect_error, expect_listing,
    first_error, put_pattern, put_small, read_small, verify_object,
};
use crate::data::{Digest, FailingReader, Gate, GatedReader, PatternReader, read_digest};
use crate::join_failure;

const MIB: u64 = 1024 * 1024;

/// The keys listed under the check's folder must be exactly `keys` (no work files).
async fn expect_listed(s: &Scope, keys: &[&ObjectKey], when: &str) -> Result<(), String> {
    let want = keys.iter().map(|k| (k.as_str(), None)).collect();
    expect_listing(s, &s.prefix, want, when).await
}

/// A body that fails part-way (with or without an announced length, or at once) makes the put
/// fail and publishes nothing; over an existing object, the old content stays.
pub(super) async fn aborted_put(s: Arc<Scope>) -> CheckResult {
    let mut kinds = Vec::new();
    for (name, length, fail_at, announced) in [
        ("after-3-MiB", 8 * MIB, 3 * MIB, false),
        ("after-3-MiB-announced", 8 * MIB, 3 * MIB, true),
        ("at-once", 1000, 0, false),
    ] {
        let key = s.key(name)?;
        let mut body = FailingReader::new(61, length, fail_at);
        let options = if announced {
            PutOptions::create().with_length(length)
        } else {
            PutOptions::create()
        };
        let doing = format!("put to {key} of a body that fails after {fail_at} bytes");
        match s.target.put(&key, &mut body, options).await {
            Ok(meta) => return Err(format!("{doing} succeeded ({} bytes)", meta.size)),
            Err(e) => kinds.push(e.kind.to_string()),
        }
        expect_absent(&s, &key, &format!("after the {doing}")).await?;
    }
    expect_listed(&s, &[], "after aborted puts").await?;

    let kept = s.key("kept")?;
    put_small(&s, &kept, b"original", PutMode::Create).await?;
    let mut body = FailingReader::new(62, 8 * MIB, 3 * MIB);
    let result = s
        .target
        .put(&kept, &mut body, PutOptions::overwrite())
        .await;
    ensure!(
        result.is_err(),
        "put (Overwrite) to {kept} of a body that fails after 3 MiB succeeded"
    );
    let now = read_small(&s, &kept, 16 * MIB).await?;
    ensure!(
        now == b"original",
        "after an aborted Overwrite, {kept} holds {} bytes instead of its old content",
        now.len()
    );
    expect_listed(&s, &[&kept], "after an aborted Overwrite").await?;
    s.delete(&kept).await.during(format!("delete of {kept}"))?;
    kinds.dedup();
    Ok(Verdict::Passed(Some(format!(
        "failed puts reported: {}",
        kinds.join(", ")
    ))))
}

/// A body shorter or longer than its announced length is `InvalidData` and publishes
/// nothing; over an existing object, the old content stays.
pub(super) async fn length_mismatch(s: Arc<Scope>) -> CheckResult {
    let size = 3 * MIB + 5;
    for (name, length, announced) in [
        ("short", size, size + 1),
        ("long", size, size - 1),
        ("nothing-announced", 10, 0),
    ] {
        let key = s.key(name)?;
        let mut body = PatternReader::new(71, length);
        let options = PutOptions::create().with_length(announced);
        let doing = format!("put to {key} of {length} bytes announced as {announced}");
        expect_error(
            s.target.put(&key, &mut body, options).await,
            TargetErrorKind::InvalidData,
            &doing,
        )?;
        expect_absent(&s, &key, &format!("after the refused {doing}")).await?;
    }
    expect_listed(&s, &[], "after refused puts").await?;

    let kept = s.key("kept")?;
    put_small(&s, &kept, b"original", PutMode::Create).await?;
    let mut body = PatternReader::new(72, size);
    expect_error(
        s.target
            .put(
                &kept,
                &mut body,
                PutOptions::overwrite().with_length(size + 1000),
            )
            .await,
        TargetErrorKind::InvalidData,
        format!(
            "put (Overwrite) to {kept} of {size} bytes announced as {}",
            size + 1000
        ),
    )?;
    let now = read_small(&s, &kept, 16 * MIB).await?;
    ensure!(
        now == b"original",
        "after a refused Overwrite, {kept} holds {} bytes instead of its old content",
        now.len()
    );
    expect_listed(&s, &[&kept], "after a refused Overwrite").await?;
    s.delete(&kept).await.during(format!("delete of {kept}"))?;
    Ok(Verdict::Passed(None))
}

/// While a put waits half-way through its body, neither `stat`, `get` nor `list` show
/// anything; once the body completes, the object is there whole.
pub(super) async fn invisible_until_complete(s: Arc<Scope>) -> CheckResult {
    let length = 4 * MIB;
    let key = s.key("object")?;
    let (mut body, Gate { reached, release }) = GatedReader::new(81, length, 2 * MIB);
    let target = s.target.clone();
    let put_key = key.clone();
    let put = tokio::spawn(async move {
        let options = PutOptions::create().with_length(length);
        let result = target.put(&put_key, &mut body, options).await;
        (result, body.digest())
    });

    if reached.await.is_err() {
        // The body was dropped before the gate: the put ended early.
        let (result, digest) = put
            .await
            .map_err(|e| format!("the put {}", join_failure(e)))?;
        return Err(match result {
            Ok(_) => format!(
                "put of {key} returned success after reading {} of {length} bytes",
                digest.length
            ),
            Err(e) => format!(
                "put of {key} failed before reading half its body: {}",
                describe(&e)
            ),
        });
    }
    let while_in_progress = async {
        let when = "while its put is in progress";
        expect_absent(&s, &key, when).await?;
        expect_error(
            s.target.get(&key).await,
            TargetErrorKind::NotFound,
            format!("get of {key} {when}"),
        )?;
        expect_listed(&s, &[], "while a put is in progress").await
    }
    .await;
    let _ = release.send(());
    let (result, digest) = put
        .await
        .map_err(|e| format!("the put {}", join_failure(e)))?;
    while_in_progress?;
    result.during(format!("put of {key} (once its body went on)"))?;
    ensure!(
        digest.length == length,
        "put of {key} returned success after reading {} of {length} bytes",
        digest.length
    );
    verify_object(&s, &key, &digest).await?;
    expect_listed(&s, &[&key], "after the put completed").await?;
    s.delete(&key).await.during(format!("delete of {key}"))?;
    Ok(Verdict::Passed(None))
}

/// [`crate::KitOptions::concurrency`] puts of different keys, started together, all succeed
/// and read back intact.
pub(super) async fn concurrent_puts(s: Arc<Scope>) -> CheckResult {
    let n = s.options.concurrency.max(1);
    let mut keys = Vec::with_capacity(n);
    for i in 0..n {
        keys.push(s.key(&format!("object-{i}"))?);
    }
    let barrier = Arc::new(Barrier::new(n));
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    for (i, key) in keys.iter().enumerate() {
        let (s, key, barrier) = (s.clone(), key.clone(), barrier.clone());
        tasks.spawn(async move {
            let seed = 100 + i as u64;
            let length = 512 * 1024 + i as u64 * 4099;
            let options = if i % 2 == 0 {
                PutOptions::create().with_length(length)
            } else {
                PutOptions::create()
            };
            barrier.wait().await;
            let digest = put_pattern(&s, &key, seed, length, options).await?;
            Ok::<_, String>((key, digest))
        });
    }
    let mut stored = Vec::with_capacity(n);
    let mut errors = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(done)) => stored.push(done),
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(format!("a put {}", join_failure(e))),
        }
    }
    let elapsed = started.elapsed();
    first_error(errors, &format!("of {n} concurrent puts failed"))?;
    for (key, digest) in &stored {
        verify_object(&s, key, digest).await?;
    }
    let all: Vec<&ObjectKey> = keys.iter().collect();
    expect_listed(&s, &all, "after concurrent puts").await?;
    for key in &keys {
        s.delete(key).await.during(format!("delete of {key}"))?;
    }
    Ok(Verdict::Passed(Some(format!(
        "{n} puts at once in {elapsed:.2?}"
    ))))
}

/// Several `Create` puts of one key at once: at least one wins, the others are
/// `AlreadyExists`, and the object is one winner's body whole. A target that claims
/// `conditional_create` must let exactly one win.
pub(super) async fn create_race(s: Arc<Scope>) -> CheckResult {
    let n = s.options.concurrency.max(2);
    let length = 256 * 1024;
    let key = s.key("contended")?;
    let barrier = Arc::new(Barrier::new(n));
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let (s, key, barrier) = (s.clone(), key.clone(), barrier.clone());
        tasks.spawn(async move {
            let seed = 200 + i as u64;
            let mut body = PatternReader::new(seed, length);
            barrier.wait().await;
            let options = PutOptions::create().with_length(length);
            let result: Result<_, TargetError> = s.target.put(&key, &mut body, options).await;
            (seed, result.map(drop))
        });
    }
    let mut winners = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (seed, result) = joined.map_err(|e| format!("a put {}", join_failure(e)))?;
        match result {
            Ok(()) => winners.push(seed),
            Err(e) if e.kind == TargetErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(format!(
                    "a losing Create put of {key} failed with {}; it must be AlreadyExists",
                    describe(&e)
                ));
            }
        }
    }
    ensure!(
        !winners.is_empty(),
        "none of {n} concurrent Create puts of {key} succeeded"
    );
    let conditional = s.target.capabilities().conditional_create;
    ensure!(
        !conditional || winners.len() == 1,
        "{} of {n} concurrent Create puts of {key} succeeded; the target claims \
         conditional_create, so exactly one may",
        winners.len()
    );
    let mut reader = s.target.get(&key).await.during(format!("get of {key}"))?;
    let got = read_digest(&mut reader, length)
        .await
        .map_err(|e| format!("reading {key} back failed: {e}"))?;
    drop(reader);
    ensure!(
        winners
            .iter()
            .any(|&seed| Digest::of_pattern(seed, length) == got),
        "after concurrent Create puts, {key} holds {got}, which is no winner's body"
    );
    s.delete(&key).await.during(format!("delete of {key}"))?;
    let note = if conditional {
        format!("1 of {n} won")
    } else {
        format!(
            "{} of {n} won (the target does not claim conditional_create)",
            winners.len()
        )
    };
    Ok(Verdict::Passed(Some(note)))
}

/// Readiness of [`crate::KitOptions::unreachable`] is an error, within the readiness deadline,
/// and not a panic.
pub(super) async fn unreachable(s: Arc<Scope>) -> CheckResult {
    let Some(target) = s.options.unreachable.clone() else {
        return Ok(Verdict::Skipped(
            "no unreachable target was given".to_owned(),
        ));
    };
    let deadline = s.options.readiness_deadline;
    let location = target.location();
    let started = Instant::now();
    let mut task = tokio::spawn(async move { target.readiness().await });
    match tokio::time::timeout(deadline, &mut task).await {
        Err(_) => {
            task.abort();
            Err(format!(
                "hangs: readiness of the unreachable {location} gave no answer within {deadline:?}"
            ))
        }
        Ok(Err(e)) => Err(format!(
            "readiness of the unreachable {location} {}",
            join_failure(e)
        )),
        Ok(Ok(Ok(readiness))) => Err(format!(
            "readiness of the unreachable {location} succeeded: {readiness:?}"
        )),
        Ok(Ok(Err(e))) => Ok(Verdict::Passed(Some(format!(
            "{} after {:.2?}",
            describe(&e),
            started.elapsed()
        )))),
    }
}
