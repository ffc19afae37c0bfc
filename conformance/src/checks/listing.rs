//! The listing check: many keys over a few folders, listed whole and by sub-prefixes.

use std::sync::Arc;
use std::time::Instant;

use sstore_target_api::PutMode;

use super::{
    CheckResult, During, Scope, Verdict, bounded, compare_listing, first_error, list_keys,
    put_small, sample,
};

/// Folders the keys are spread over: `d1` is a string prefix of `d1x`, `d2/deep` is nested.
const FOLDERS: [&str; 4] = ["d0/", "d1/", "d1x/", "d2/deep/"];

/// [`crate::KitOptions::many_keys`] keys (unpadded numbers, so byte order differs from
/// numeric order), put with bounded concurrency; listings of the check's folder, a sub-folder,
/// partial names, an exact key and prefixes that match nothing must return exactly the
/// matching keys, sorted, with their sizes, and never anything outside the prefix.
pub(super) async fn listing(s: Arc<Scope>) -> CheckResult {
    let n = s.options.many_keys;
    let mut objects = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("{}k{i}", FOLDERS[i % FOLDERS.len()]);
        objects.push(s.key(&name)?);
    }

    let started = Instant::now();
    let errors = bounded(objects.clone(), s.options.concurrency, true, |key| {
        let s = s.clone();
        async move {
            put_small(&s, &key, key.as_str().as_bytes(), PutMode::Create)
                .await
                .map(drop)
        }
    })
    .await;
    first_error(errors, "puts failed")?;
    let put_time = started.elapsed();

    // Each object's body is its key, so its size is the key's length.
    let expected: Vec<(&str, Option<u64>)> = objects
        .iter()
        .map(|k| (k.as_str(), Some(k.as_str().len() as u64)))
        .collect();

    let p = &s.prefix;
    let prefixes = [
        p.clone(),
        format!("{p}d1/"),
        format!("{p}d1"),
        format!("{p}d0/k1"),
        format!("{p}d2/"),
        format!("{p}d2/deep/k1"),
        format!("{p}d0/k4"),
        format!("{p}d3"),
        format!("{p}nothing/"),
        format!("{p}d1/k1x"),
    ];
    let started = Instant::now();
    for prefix in &prefixes {
        let want: Vec<(&str, Option<u64>)> = expected
            .iter()
            .filter(|(k, _)| k.starts_with(prefix.as_str()))
            .copied()
            .collect();
        let got = list_keys(&s, prefix).await?;
        compare_listing(prefix, &got, want)?;
    }
    let list_time = started.elapsed();

    drop(expected);
    let errors = bounded(objects, s.options.concurrency, true, |key| {
        let s = s.clone();
        async move { s.delete(&key).await.during(format!("delete of {key}")) }
    })
    .await;
    first_error(errors, "deletes failed")?;
    let left = list_keys(&s, p).await?;
    ensure!(
        left.is_empty(),
        "after deleting every key, list of {p} still returns {}",
        sample(left.iter().map(|m| m.key.as_str()))
    );
    Ok(Verdict::Passed(Some(format!(
        "{n} keys put in {}, {} listings in {list_time:.2?}",
        rate_keys(n, put_time),
        prefixes.len()
    ))))
}

fn rate_keys(n: usize, elapsed: std::time::Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        format!("{elapsed:.2?} ({:.0}/s)", n as f64 / seconds)
    } else {
        format!("{elapsed:.2?}")
    }
}
