//! Preflight: whether a backup can run, writing nothing but probes (`sstore readiness`,
//! `backup --what-if`, the service's readiness and the console's "check readiness"). Each
//! check says what it looked at and, when it fails, what to do. The rules a job applies
//! itself (the backup key, the staging space) are the same functions, so a preflight that
//! passes means the job will not refuse to start.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::{BackupError, BackupKeys, Destination};
use crate::store::{SecureStore, StoreSummary};
use crate::target::Target;

/// How long a destination's readiness check may take by default.
pub const DEFAULT_READINESS_TIMEOUT: Duration = Duration::from_secs(30);

/// Refuses to stage when the staging folder's disk looks too small, unless `force`: the
/// staged backup of an SQLite store takes at most its size plus the chunks' tags and the
/// header (the snapshot is streamed, never written there), so the store's size plus 0.1% and
/// 1 MiB must be free. (A store on SQL Server has no file to measure.) Creates the staging
/// folder (owner-only) and checks it is writable.
pub async fn check_staging_space(
    staging: &Path,
    store_path: &Path,
    force: bool,
) -> Result<(), BackupError> {
    let store_size = std::fs::metadata(store_path).map(|m| m.len()).unwrap_or(0);
    let needed = store_size + store_size / 1024 + 1024 * 1024;
    let staging = staging.to_owned();
    tokio::task::spawn_blocking(move || -> Result<(), BackupError> {
        crate::fsutil::create_private_dir_all(&staging).map_err(BackupError::io(&staging))?;
        let probe = crate::fsutil::temp_sibling(&staging.join("probe"), "space");
        // A job holding the staging folder's lock removes stray files there, this probe
        // included: gone before it is removed is as good as removed.
        crate::fsutil::create_private_file(&probe)
            .and_then(|_| match std::fs::remove_file(&probe) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            })
            .map_err(|source| BackupError::StagingNotWritable {
                path: staging.clone(),
                source,
            })?;
        let free = crate::fsutil::free_space(&staging).map_err(BackupError::io(&staging))?;
        match free {
            Some(free) if free < needed && !force => Err(BackupError::NoSpace {
                path: staging,
                needed,
                free,
            }),
            _ => Ok(()),
        }
    })
    .await
    .map_err(|e| BackupError::Task(format!("the staging check stopped unexpectedly: {e}")))?
}

/// What a preflight checks.
pub struct PreflightRequest<'a> {
    pub store_path: &'a Path,
    /// The keys the backup would be written with, or why the front end could not get them.
    pub keys: Result<BackupKeys, String>,
    pub staging: &'a Path,
    pub destinations: &'a [Destination],
    /// A backup run with `--force` skips the free-space rule; so does its preflight.
    pub force: bool,
    /// How long each destination's readiness check may take.
    pub readiness_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Ok,
    Warning,
    Failed,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// `store`, `passphrase`, `staging`, `target NAME`, `master key`.
    pub check: String,
    pub status: CheckStatus,
    pub detail: String,
}

impl Check {
    fn ok(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(check, CheckStatus::Ok, detail)
    }

    fn warning(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(check, CheckStatus::Warning, detail)
    }

    fn failed(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(check, CheckStatus::Failed, detail)
    }

    fn new(check: impl Into<String>, status: CheckStatus, detail: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            status,
            detail: detail.into(),
        }
    }
}

/// Whether a backup can run: no check failed (warnings allowed).
pub fn ready(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.status != CheckStatus::Failed)
}

/// Runs every check: the store opens; the key may write a backup; the staging folder is
/// writable with room; every destination is reachable and writable (concurrently, each
/// within the timeout); and whether the Master Key changed since the last successful backup.
pub async fn preflight(request: PreflightRequest<'_>) -> Vec<Check> {
    let mut checks = Vec::new();
    let summary = store_check(request.store_path, &mut checks);
    if summary.is_some() {
        checks.push(match &request.keys {
            Ok(keys) => match keys.check(request.store_path) {
                Ok(()) => Check::ok("keys", keys_detail(keys)),
                Err(e) => Check::failed("keys", e.to_string()),
            },
            Err(why) => Check::failed("keys", why.clone()),
        });
    }
    checks.push(
        match check_staging_space(request.staging, request.store_path, request.force).await {
            Ok(()) => Check::ok(
                "staging",
                format!(
                    "{} is writable with room for the backup",
                    request.staging.display()
                ),
            ),
            Err(e) => Check::failed("staging", e.to_string()),
        },
    );
    checks.extend(destination_checks(request.destinations, request.readiness_timeout).await);
    if let (Some(summary), Some(primary)) = (&summary, request.destinations.first())
        && let Some(check) = key_change_check(summary, primary).await
    {
        checks.push(check);
    }
    checks
}

/// What a backup written with `keys` will open with.
fn keys_detail(keys: &BackupKeys) -> String {
    let mut slots = Vec::new();
    if keys.passphrase.is_some() {
        slots.push(if keys.passphrase_is_store {
            "the store passphrase (it opens the Master Key)".to_owned()
        } else {
            "the backup passphrase".to_owned()
        });
    }
    slots.extend(keys.recipients.iter().map(|r| format!("recipient {r}")));
    let mut detail = format!("the backup will open with: {}", slots.join(", "));
    if keys.passphrase.is_none() {
        detail.push_str("; this job holds no secret that can read it");
    }
    detail
}

fn store_check(store_path: &Path, checks: &mut Vec<Check>) -> Option<StoreSummary> {
    let opened = SecureStore::open_locator(store_path);
    let summary = opened.and_then(|store| Ok((store.summary()?, store.permissions())));
    match summary {
        Ok((s, permissions)) => {
            checks.push(Check::ok(
                "store",
                format!(
                    "{} opens: {} applications, {} credential sets, Master Key generation {}",
                    store_path.display(),
                    s.applications,
                    s.credential_sets,
                    s.master_key.generation
                ),
            ));
            match permissions {
                Ok(found) => checks.extend(found.into_iter().map(|p| {
                    let status = match (p.granted, p.required) {
                        (true, _) => CheckStatus::Ok,
                        (false, true) => CheckStatus::Failed,
                        (false, false) => CheckStatus::Warning,
                    };
                    Check::new(format!("store permission: {}", p.what), status, p.detail)
                })),
                Err(e) => checks.push(Check::warning("store permissions", e.to_string())),
            }
            Some(s)
        }
        Err(e) => {
            checks.push(Check::failed("store", e.to_string()));
            None
        }
    }
}

/// Every destination's readiness, checked at once, in the order given.
async fn destination_checks(destinations: &[Destination], timeout: Duration) -> Vec<Check> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, dest) in destinations.iter().enumerate() {
        let target: Arc<dyn Target> = dest.dir.target_arc();
        tasks.spawn(async move { (i, tokio::time::timeout(timeout, target.readiness()).await) });
    }
    let mut answers = tasks.join_all().await;
    answers.sort_by_key(|(i, _)| *i);
    answers
        .into_iter()
        .map(|(i, answer)| {
            let dest = &destinations[i];
            let (what, location) = (format!("target {}", dest.name), dest.dir.location());
            match answer {
                Ok(Ok(r)) if r.writable => Check::ok(
                    what,
                    format!(
                        "{location} reachable and writable{}{}",
                        r.free_bytes
                            .map(|f| format!(", {} free", human_bytes(f)))
                            .unwrap_or_default(),
                        r.detail.map(|d| format!("; {d}")).unwrap_or_default()
                    ),
                ),
                Ok(Ok(_)) => Check::failed(what, format!("{location} is not writable")),
                Ok(Err(e)) => Check::failed(what, e.to_string()),
                Err(_) => Check::failed(
                    what,
                    format!(
                        "{location} did not answer within {} s; check the network and the service, or raise [transfer] readiness_timeout_secs",
                        timeout.as_secs()
                    ),
                ),
            }
        })
        .collect()
}

/// A warning when the store's Master Key is newer than the last successful backup on the
/// primary destination (or there is none): back up now.
async fn key_change_check(summary: &StoreSummary, primary: &Destination) -> Option<Check> {
    let history = primary.dir.load_history().await.ok()?;
    match history.newest_successful_backup() {
        Some(last) if last.key_generation == Some(summary.master_key.generation) => None,
        Some(last) => Some(Check::warning(
            "master key",
            format!(
                "the Master Key changed (generation {}) since the last successful backup {} (generation {}): back up now",
                summary.master_key.generation,
                last.id,
                last.key_generation
                    .map(|g| g.to_string())
                    .unwrap_or_else(|| "?".into())
            ),
        )),
        None => Some(Check::warning(
            "master key",
            format!("{} has no successful backup yet", primary.dir.location()),
        )),
    }
}

/// `1.5 GiB`, as people read sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
