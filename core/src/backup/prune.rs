//! Retention: remove old backups from a backup directory by rules (keep the newest N, keep
//! everything younger than a duration). The newest successful backup is never removed, the
//! directory is locked against running jobs while pruning, and the history is updated before
//! any file goes, so an interrupted prune leaves at worst an unlisted folder, never a listed
//! backup without its files.

use std::time::Duration;

use super::target_lock::TargetLock;
use super::{BackupDirectory, BackupError, EventSink, HistoryEntry, JobKind, JobStatus};
use crate::target::TargetError;

/// What to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneRules {
    /// The newest N successful backups (at least one is always kept).
    pub keep_last: usize,
    /// Every successful backup started within this long before now.
    pub keep_within: Option<Duration>,
}

/// What a prune removed (or, for a dry run, would remove).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PruneReport {
    pub kept: Vec<String>,
    /// Folders removed, with their backup id.
    pub removed: Vec<(String, String)>,
    pub freed_bytes: u64,
    pub dry_run: bool,
}

/// Parses `30d`, `12h`, `2w`, `90m`, `45s`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(n.checked_mul(seconds)?))
}

fn age_of(entry: &HistoryEntry, now: time::OffsetDateTime) -> Option<Duration> {
    let started = time::OffsetDateTime::parse(
        &entry.started,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()?;
    Some((now - started).try_into().unwrap_or(Duration::ZERO))
}

/// Which backup entries go: successful ones beyond the rules, and failed ones older than the
/// newest backup kept (their folders hold only leftovers).
pub fn plan(entries: &[HistoryEntry], rules: &PruneRules) -> (Vec<String>, Vec<HistoryEntry>) {
    let now = time::OffsetDateTime::now_utc();
    let backups: Vec<&HistoryEntry> = entries
        .iter()
        .filter(|e| e.kind == JobKind::Backup && e.status != JobStatus::Pruned)
        .collect();
    let mut successful: Vec<&HistoryEntry> = backups
        .iter()
        .copied()
        .filter(|e| e.status == JobStatus::Succeeded)
        .collect();
    // Newest first; backups started in the same second are ordered by folder number.
    let folder = |e: &HistoryEntry| super::directory::folder_number(&e.folder);
    successful.sort_by(|a, b| {
        b.started
            .cmp(&a.started)
            .then_with(|| folder(b).cmp(&folder(a)))
    });
    let keep_last = rules.keep_last.max(1);
    let mut kept = Vec::new();
    let mut remove = Vec::new();
    for (i, entry) in successful.iter().enumerate() {
        let young = rules
            .keep_within
            .zip(age_of(entry, now))
            .is_some_and(|(limit, age)| age <= limit);
        if i < keep_last || young {
            kept.push(entry.id.clone());
        } else {
            remove.push((*entry).clone());
        }
    }
    let oldest_kept = successful
        .iter()
        .filter(|e| kept.contains(&e.id))
        .map(|e| e.started.as_str())
        .min()
        .unwrap_or("");
    for entry in backups.iter().filter(|e| e.status == JobStatus::Failed) {
        if !oldest_kept.is_empty() && entry.started.as_str() < oldest_kept {
            remove.push((*entry).clone());
        }
    }
    (kept, remove)
}

/// Prunes `dir` by `rules`. With `dry_run`, changes nothing.
pub async fn run_prune(
    dir: &BackupDirectory,
    rules: &PruneRules,
    dry_run: bool,
    log: &EventSink,
) -> Result<PruneReport, BackupError> {
    run_prune_as(dir, rules, dry_run, None, log).await
}

/// [`run_prune`] on behalf of `requested_by` (an operator, `schedule:NAME`), as the history
/// records it; `None`: this process's `user@host`.
pub async fn run_prune_as(
    dir: &BackupDirectory,
    rules: &PruneRules,
    dry_run: bool,
    requested_by: Option<&str>,
    log: &EventSink,
) -> Result<PruneReport, BackupError> {
    let job_id = format!("prune-{}", crate::random::hex_id::<8>());
    let lock = if dry_run {
        None
    } else {
        Some(TargetLock::acquire(dir, &job_id, None).await?)
    };
    let result = prune_locked(dir, rules, dry_run, log, &job_id, requested_by).await;
    if let Some(lock) = lock
        && let Err(e) = lock.release().await
    {
        log.warn(format!(
            "the lock on {} could not be removed: {e}",
            dir.location()
        ));
    }
    result
}

async fn prune_locked(
    dir: &BackupDirectory,
    rules: &PruneRules,
    dry_run: bool,
    log: &EventSink,
    job_id: &str,
    requested_by: Option<&str>,
) -> Result<PruneReport, BackupError> {
    let mut history = dir.load_history().await?;
    let (kept, remove) = plan(&history.entries, rules);
    let mut report = PruneReport {
        kept,
        removed: remove
            .iter()
            .map(|e| (e.folder.clone(), e.id.clone()))
            .collect(),
        freed_bytes: 0,
        dry_run,
    };
    for entry in &remove {
        let prefix = format!("{}/", entry.folder);
        report.freed_bytes += dir
            .target()
            .list(&prefix)
            .await?
            .iter()
            .map(|m| m.size)
            .sum::<u64>();
    }
    if dry_run || remove.is_empty() {
        return Ok(report);
    }

    // The history first: a listed backup always has its files.
    let started = super::now_rfc3339();
    for entry in history.entries.iter_mut() {
        if remove
            .iter()
            .any(|r| r.id == entry.id && r.kind == entry.kind)
        {
            entry.status = JobStatus::Pruned;
        }
    }
    history.entries.push(HistoryEntry {
        method: format!(
            "keep-last {}{}",
            rules.keep_last.max(1),
            rules
                .keep_within
                .map(|d| format!(", keep-within {}s", d.as_secs()))
                .unwrap_or_default()
        ),
        started,
        finished: super::now_rfc3339(),
        status: JobStatus::Succeeded,
        backup_size: Some(report.freed_bytes),
        removed: remove.iter().map(|e| e.folder.clone()).collect(),
        requested_by: requested_by.map_or_else(super::requested_by, str::to_owned),
        ..HistoryEntry::begin(
            JobKind::Prune,
            job_id.to_owned(),
            super::ITEM_NAME.into(),
            String::new(),
        )
    });
    dir.save_history(&history).await?;

    for entry in &remove {
        let prefix = format!("{}/", entry.folder);
        let objects = dir.target().list(&prefix).await?;
        for meta in objects {
            match dir.target().delete(&meta.key).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(with_hint(e, &entry.folder)),
            }
        }
        log.info(format!(
            "removed {}/{} (backup {})",
            dir.location(),
            entry.folder,
            entry.id
        ));
    }
    Ok(report)
}

fn with_hint(e: TargetError, folder: &str) -> BackupError {
    BackupError::Target(e.context(format!(
        "removing {folder} (already unlisted from the history; run prune again to finish)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, started: &str, status: JobStatus) -> HistoryEntry {
        HistoryEntry {
            started: started.into(),
            status,
            ..HistoryEntry::begin(
                JobKind::Backup,
                id.into(),
                "SecureStore".into(),
                format!("f-{id}"),
            )
        }
    }

    #[test]
    fn durations_parse() {
        assert_eq!(
            parse_duration("30d"),
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(parse_duration("12h"), Some(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("2w"), Some(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_duration("d"), None);
        assert_eq!(parse_duration("5x"), None);
    }

    #[test]
    fn the_plan_keeps_the_newest_and_the_young() {
        let now = time::OffsetDateTime::now_utc();
        let fmt = |days: i64| {
            (now - time::Duration::days(days))
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        };
        let entries = vec![
            entry("a", &fmt(40), JobStatus::Succeeded),
            entry("b", &fmt(35), JobStatus::Failed),
            entry("c", &fmt(30), JobStatus::Succeeded),
            entry("d", &fmt(3), JobStatus::Succeeded),
            entry("e", &fmt(1), JobStatus::Succeeded),
            entry("p", &fmt(50), JobStatus::Pruned),
        ];
        let ids = |v: &[HistoryEntry]| v.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
        let (kept, remove) = plan(
            &entries,
            &PruneRules {
                keep_last: 1,
                keep_within: None,
            },
        );
        assert_eq!(kept, ["e"]);
        assert_eq!(ids(&remove), ["d", "c", "a", "b"]);
        let (kept, remove) = plan(
            &entries,
            &PruneRules {
                keep_last: 1,
                keep_within: Some(Duration::from_secs(7 * 86_400)),
            },
        );
        assert_eq!(kept, ["e", "d"]);
        assert_eq!(ids(&remove), ["c", "a", "b"]);
        // keep-last 0 still keeps the newest successful backup.
        let (kept, _) = plan(
            &entries,
            &PruneRules {
                keep_last: 0,
                keep_within: None,
            },
        );
        assert_eq!(kept, ["e"]);
    }
}
