//! Helpers the checks share: target calls that turn errors into check failures saying what
//! was being done, streamed verification, listing comparison, bounded concurrency and the
//! formatting of sizes and rates.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::future::Future;

use sstore_target_api::{
    ObjectKey, ObjectMeta, PutMode, PutOptions, RetryStatus, TargetError, TargetErrorKind,
    read_limited,
};
use tokio::task::JoinSet;

use super::Scope;
use crate::data::{Digest, PatternReader, read_digest};

/// Runs `f` over `items` with at most `limit` tasks at once; returns the errors. With
/// `stop_on_error`, starts no new task after the first error.
pub(crate) async fn bounded<T, F, Fut>(
    items: impl IntoIterator<Item = T>,
    limit: usize,
    stop_on_error: bool,
    f: F,
) -> Vec<String>
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    let mut errors = Vec::new();
    let note = |errors: &mut Vec<String>, joined| match joined {
        Ok(Ok(())) => {}
        Ok(Err(e)) => errors.push(e),
        Err(e) => errors.push(format!("a task {}", crate::join_failure(e))),
    };
    for item in items {
        while tasks.len() >= limit.max(1) {
            if let Some(joined) = tasks.join_next().await {
                note(&mut errors, joined);
            }
        }
        if stop_on_error && !errors.is_empty() {
            break;
        }
        tasks.spawn(f(item));
    }
    while let Some(joined) = tasks.join_next().await {
        note(&mut errors, joined);
    }
    errors
}

/// `Err` with the first of `errors` (and how many there were), if any.
pub(crate) fn first_error(errors: Vec<String>, what: &str) -> Result<(), String> {
    match errors.first() {
        None => Ok(()),
        Some(first) if errors.len() == 1 => Err(first.clone()),
        Some(first) => Err(format!("{} {what}; the first: {first}", errors.len())),
    }
}

/// Up to five items, for messages.
pub(crate) fn sample<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let items: Vec<&str> = items.collect();
    let mut out = items
        .iter()
        .take(5)
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > 5 {
        out.push_str(&format!(" and {} more", items.len() - 5));
    }
    out
}

/// An error with its kind and retry status, for messages.
pub(crate) fn describe(e: &TargetError) -> String {
    let retry = match e.retry {
        RetryStatus::Permanent => "permanent",
        RetryStatus::Temporary => "temporary",
    };
    format!("{e} [{}, {retry}]", e.kind)
}

/// Turns a target error into a check failure saying what was being done.
pub(crate) trait During<T> {
    fn during(self, doing: impl Display) -> Result<T, String>;
}

impl<T> During<T> for Result<T, TargetError> {
    fn during(self, doing: impl Display) -> Result<T, String> {
        self.map_err(|e| format!("{doing} failed: {}", describe(&e)))
    }
}

/// The error of `result`, which must be one of `kind`.
pub(crate) fn expect_error<T>(
    result: Result<T, TargetError>,
    kind: TargetErrorKind,
    doing: impl Display,
) -> Result<TargetError, String> {
    match result {
        Ok(_) => Err(format!("{doing} succeeded; it must fail with {kind}")),
        Err(e) if e.kind == kind => Ok(e),
        Err(e) => Err(format!(
            "{doing} failed with {}; it must fail with {kind}",
            describe(&e)
        )),
    }
}

/// `stat` of `key` must be `NotFound`.
pub(crate) async fn expect_absent(s: &Scope, key: &ObjectKey, why: &str) -> Result<(), String> {
    expect_error(
        s.target.stat(key).await,
        TargetErrorKind::NotFound,
        format!("stat of {key} ({why})"),
    )
    .map(drop)
}

/// Stores a small in-memory object.
pub(crate) async fn put_small(
    s: &Scope,
    key: &ObjectKey,
    bytes: &[u8],
    mode: PutMode,
) -> Result<ObjectMeta, String> {
    let meta = sstore_target_api::put_bytes(&*s.target, key, bytes, mode)
        .await
        .during(format!("put ({mode:?}) of {key}"))?;
    ensure!(
        meta.size == bytes.len() as u64,
        "put of {key} reported {} bytes; {} were stored",
        meta.size,
        bytes.len()
    );
    Ok(meta)
}

/// Reads a small object whole.
pub(crate) async fn read_small(s: &Scope, key: &ObjectKey, limit: u64) -> Result<Vec<u8>, String> {
    sstore_target_api::get_bytes(&*s.target, key, limit)
        .await
        .during(format!("get of {key}"))
}

/// Reads the bytes `range` of `key`.
pub(crate) async fn read_range(
    s: &Scope,
    key: &ObjectKey,
    range: std::ops::Range<u64>,
    limit: u64,
) -> Result<Vec<u8>, String> {
    let doing = format!("get_range {}..{} of {key}", range.start, range.end);
    let reader = s.target.get_range(key, range).await.during(&doing)?;
    read_limited(&*s.target, key, reader, limit)
        .await
        .during(doing)
}

/// Puts `length` bytes of the pattern `seed` as a stream; checks the whole body was read and
/// the reported size. Returns the body's digest.
pub(crate) async fn put_pattern(
    s: &Scope,
    key: &ObjectKey,
    seed: u64,
    length: u64,
    options: PutOptions,
) -> Result<Digest, String> {
    let mut body = PatternReader::new(seed, length);
    let meta = s
        .target
        .put(key, &mut body, options)
        .await
        .during(format!("put of {length} bytes to {key}"))?;
    ensure!(
        body.position() == length,
        "put of {key} returned success after reading {} of the body's {length} bytes",
        body.position()
    );
    ensure!(
        meta.size == length,
        "put of {key} reported {} bytes; {length} were stored",
        meta.size
    );
    Ok(body.digest())
}

/// Reads `key` back as a stream and compares it with `expected`; `stat` must agree on the size
/// (and on the SHA-256, when the target reports one).
pub(crate) async fn verify_object(
    s: &Scope,
    key: &ObjectKey,
    expected: &Digest,
) -> Result<(), String> {
    let mut reader = s.target.get(key).await.during(format!("get of {key}"))?;
    let got = read_digest(&mut reader, expected.length)
        .await
        .map_err(|e| format!("reading {key} back failed: {e}"))?;
    drop(reader);
    ensure!(
        got == *expected,
        "{key} read back as {got}; {expected} were stored"
    );
    let meta = s.target.stat(key).await.during(format!("stat of {key}"))?;
    ensure!(
        meta.size == expected.length,
        "stat of {key} reports {} bytes; {} were stored",
        meta.size,
        expected.length
    );
    ensure!(
        meta.key == *key,
        "stat of {key} reports the key {}",
        meta.key
    );
    match &meta.sha256 {
        Some(sha) => ensure!(
            *sha == expected.sha256_hex(),
            "stat of {key} reports SHA-256 {sha}; the stored bytes have {}",
            expected.sha256_hex()
        ),
        None => ensure!(
            !s.target.capabilities().server_sha256,
            "stat of {key} reports no SHA-256 though the target claims server_sha256"
        ),
    }
    Ok(())
}

/// `got`, the listing of `prefix`, must be exactly the keys `want` (in any order here), sorted
/// by bytes, without repeats, and with the given sizes.
pub(crate) fn compare_listing(
    prefix: &str,
    got: &[ObjectMeta],
    mut want: Vec<(&str, Option<u64>)>,
) -> Result<(), String> {
    want.sort_unstable();
    if let Some(outside) = got.iter().find(|m| !m.key.as_str().starts_with(prefix)) {
        return Err(format!(
            "list of {prefix:?} returns {}, which does not start with the prefix",
            outside.key
        ));
    }
    if let Some(pair) = got.windows(2).find(|w| w[0].key >= w[1].key) {
        return Err(format!(
            "list of {prefix:?} is not sorted by key: {} comes before {}",
            pair[0].key, pair[1].key
        ));
    }
    let got_keys: BTreeSet<&str> = got.iter().map(|m| m.key.as_str()).collect();
    let want_keys: BTreeSet<&str> = want.iter().map(|(k, _)| *k).collect();
    if got_keys != want_keys {
        let missing = want_keys.difference(&got_keys).copied();
        let extra = got_keys.difference(&want_keys).copied();
        return Err(format!(
            "list of {prefix:?} returns {} keys; expected {}. Missing: [{}]; unexpected: [{}]",
            got.len(),
            want.len(),
            sample(missing),
            sample(extra)
        ));
    }
    for (meta, (key, size)) in got.iter().zip(&want) {
        if let Some(size) = size
            && meta.size != *size
        {
            return Err(format!(
                "list of {prefix:?} reports {} bytes for {key}; {size} were stored",
                meta.size
            ));
        }
    }
    Ok(())
}

/// Lists `prefix` and compares with `want` as [`compare_listing`] does.
pub(crate) async fn expect_listing(
    s: &Scope,
    prefix: &str,
    want: Vec<(&str, Option<u64>)>,
    when: &str,
) -> Result<(), String> {
    let got = list_keys(s, prefix).await?;
    compare_listing(prefix, &got, want).map_err(|e| format!("{when}: {e}"))
}

/// The keys listed under `prefix`.
pub(crate) async fn list_keys(s: &Scope, prefix: &str) -> Result<Vec<ObjectMeta>, String> {
    s.target
        .list(prefix)
        .await
        .during(format!("list of {prefix:?}"))
}

/// A byte count for people: `256 MiB`, `1.5 KiB`, `12 bytes`.
pub(crate) fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A transfer's time and throughput: `1.20s (213 MiB/s)`.
pub(crate) fn rate(bytes: u64, elapsed: std::time::Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    if seconds <= 0.0 {
        return format!("{elapsed:.2?}");
    }
    let per_second = (bytes as f64 / seconds) as u64;
    format!("{elapsed:.2?} ({}/s)", human(per_second))
}
