//! The checks: one async function each, run by [`crate::run`] as its own task in its own
//! folder ([`Scope::prefix`]) under the run's prefix; `helpers` has what they share.
//!
//! A check returns `Err(message)` on the first broken rule; the message says what was done
//! and what the target answered. Every key a check writes is made with [`Scope::key`], so the
//! runner can remove it afterwards whatever happened.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use sstore_target_api::{ObjectKey, Target, TargetError};

use crate::KitOptions;

/// Returns `Err(format!(...))` from the check unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($message:tt)+) => {
        if !$cond {
            return Err(format!($($message)+));
        }
    };
}

mod failures;
mod helpers;
mod listing;
mod names;
mod objects;

pub(crate) use helpers::*;

/// How a check that did not fail ended.
pub(crate) enum Verdict {
    /// With an optional note (throughput, an observation).
    Passed(Option<String>),
    Skipped(String),
}

pub(crate) type CheckResult = Result<Verdict, String>;

type CheckFuture = Pin<Box<dyn Future<Output = CheckResult> + Send>>;

pub(crate) struct Check {
    pub name: &'static str,
    pub about: &'static str,
    pub run: fn(Arc<Scope>) -> CheckFuture,
}

/// Every check, in the order run.
pub(crate) const CHECKS: &[Check] = &[
    Check {
        name: "readiness",
        about: "readiness answers within the deadline and reports the target writable",
        run: |s| Box::pin(objects::readiness(s)),
    },
    Check {
        name: "round_trip",
        about: "empty and small objects round-trip, with and without an announced length",
        run: |s| Box::pin(objects::round_trip(s)),
    },
    Check {
        name: "large_object",
        about: "a large object streams up and down intact, with and without an announced length",
        run: |s| Box::pin(objects::large_object(s)),
    },
    Check {
        name: "put_file",
        about: "local files are stored like bodies; create-only and overwrite hold",
        run: |s| Box::pin(objects::put_file(s)),
    },
    Check {
        name: "create_and_overwrite",
        about: "Create on an existing key is AlreadyExists and keeps the old content; Overwrite replaces",
        run: |s| Box::pin(objects::create_and_overwrite(s)),
    },
    Check {
        name: "missing_keys",
        about: "get, get_range, stat and delete of a missing key are NotFound, permanent",
        run: |s| Box::pin(objects::missing_keys(s)),
    },
    Check {
        name: "ranged_reads",
        about: "ranges read the right bytes; ends are clamped; a start past the end is InvalidData",
        run: |s| Box::pin(objects::ranged_reads(s)),
    },
    Check {
        name: "delete_after_read",
        about: "an object just read (whole, by range, or empty) can be deleted at once: no handle stays open",
        run: |s| Box::pin(objects::delete_after_read(s)),
    },
    Check {
        name: "listing",
        about: "many keys are listed exactly and sorted; prefixes are string prefixes",
        run: |s| Box::pin(listing::listing(s)),
    },
    Check {
        name: "delete",
        about: "a deleted object is gone from get, stat and list; its siblings stay",
        run: |s| Box::pin(objects::delete(s)),
    },
    Check {
        name: "key_names",
        about: "invalid keys are refused; unusual valid names round-trip and list",
        run: |s| Box::pin(names::key_names(s)),
    },
    Check {
        name: "aborted_put",
        about: "a body that fails part-way publishes nothing and keeps an overwritten object",
        run: |s| Box::pin(failures::aborted_put(s)),
    },
    Check {
        name: "length_mismatch",
        about: "a body shorter or longer than announced is InvalidData and publishes nothing",
        run: |s| Box::pin(failures::length_mismatch(s)),
    },
    Check {
        name: "invisible_until_complete",
        about: "nothing is visible or listed under a key while its put is in progress",
        run: |s| Box::pin(failures::invisible_until_complete(s)),
    },
    Check {
        name: "concurrent_puts",
        about: "concurrent puts of different keys all land intact",
        run: |s| Box::pin(failures::concurrent_puts(s)),
    },
    Check {
        name: "create_race",
        about: "of concurrent Create puts of one key, one wins and its content is whole",
        run: |s| Box::pin(failures::create_race(s)),
    },
    Check {
        name: "unreachable",
        about: "readiness of an unreachable target fails in time, without panicking",
        run: |s| Box::pin(failures::unreachable(s)),
    },
];

/// What a check works with: the target, the options, its own folder, and the keys it wrote.
pub(crate) struct Scope {
    pub target: Arc<dyn Target>,
    pub options: KitOptions,
    /// `<run prefix><check name>/`.
    pub prefix: String,
    written: Mutex<BTreeSet<ObjectKey>>,
}

impl Scope {
    pub fn new(target: Arc<dyn Target>, options: KitOptions, prefix: String) -> Self {
        Self {
            target,
            options,
            prefix,
            written: Mutex::new(BTreeSet::new()),
        }
    }

    /// The key `<prefix><name>`, remembered so the runner removes it after the check.
    pub fn key(&self, name: &str) -> Result<ObjectKey, String> {
        let key = ObjectKey::new(format!("{}{name}", self.prefix))
            .map_err(|e| format!("the kit built an invalid key: {e}"))?;
        self.written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.clone());
        Ok(key)
    }

    /// Deletes `key`, forgetting it once it is gone.
    pub async fn delete(&self, key: &ObjectKey) -> Result<(), TargetError> {
        let result = self.target.delete(key).await;
        if result.as_ref().is_ok() || result.as_ref().is_err_and(TargetError::is_not_found) {
            self.written
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(key);
        }
        result
    }

    /// Removes every key the check wrote and did not delete itself (gone already is fine).
    pub async fn cleanup(self: &Arc<Self>) -> Result<(), String> {
        let keys: Vec<ObjectKey> = self
            .written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        let errors = bounded(keys, self.options.concurrency, false, |key| {
            let scope = self.clone();
            async move {
                match scope.delete(&key).await {
                    Err(e) if !e.is_not_found() => Err(describe(&e)),
                    _ => Ok(()),
                }
            }
        })
        .await;
        first_error(errors, "objects could not be removed")
    }
}

/// Removes whatever is still listed under the run's prefix, then checks nothing is.
pub(crate) async fn sweep(
    target: Arc<dyn Target>,
    prefix: String,
    concurrency: usize,
) -> Result<(), String> {
    let listed = target
        .list(&prefix)
        .await
        .during(format!("listing {prefix}"))?;
    // Never delete outside the prefix, even if the target lists more than asked.
    let leftovers: Vec<ObjectKey> = listed
        .into_iter()
        .map(|m| m.key)
        .filter(|k| k.as_str().starts_with(&prefix))
        .collect();
    let left = leftovers.len();
    let errors = bounded(leftovers, concurrency, false, |key| {
        let target = target.clone();
        async move {
            match target.delete(&key).await {
                Err(e) if !e.is_not_found() => Err(describe(&e)),
                _ => Ok(()),
            }
        }
    })
    .await;
    first_error(errors, "leftover objects could not be removed")?;
    let still = target
        .list(&prefix)
        .await
        .during(format!("listing {prefix} after removing everything"))?;
    ensure!(
        still.is_empty(),
        "{} object(s) are still listed under {prefix} after deleting them: {}",
        still.len(),
        sample(still.iter().map(|m| m.key.as_str()))
    );
    ensure!(
        left == 0,
        "{left} object(s) were left under {prefix} after every check had cleaned up (removed now)"
    );
    Ok(())
}
