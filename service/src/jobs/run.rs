//! Running a planned job through the engine, and what it came to.

use sstore_core::backup::EventSink;
use sstore_core::backup::{
    self, BackupJob, BackupOptions, JobOutcome, JobState, OpenKeys, StopReason, StopSignal,
};
use sstore_core::format::Compression;

use super::plan::{Plan, Runtime};
use super::view::{self, JobView};

/// How a job ended.
pub struct Outcome {
    pub state: String,
    pub failure_message: Option<String>,
    pub summary: Option<String>,
    pub backup_id: Option<String>,
    pub folder: Option<String>,
    pub key_generation: Option<u64>,
    /// The engine's own counts, where it ran (its job log counts what the events may not
    /// have carried, such as a failure while settling).
    pub counts: Option<(u32, u32)>,
}

impl Outcome {
    pub fn failed(message: String) -> Self {
        Self {
            state: view::FAILED.into(),
            failure_message: Some(message),
            summary: None,
            backup_id: None,
            folder: None,
            key_generation: None,
            counts: None,
        }
    }

    fn succeeded(summary: String) -> Self {
        Self {
            state: view::SUCCEEDED.into(),
            failure_message: None,
            summary: Some(summary),
            backup_id: None,
            folder: None,
            key_generation: None,
            counts: None,
        }
    }

    pub fn apply(self, view: &mut JobView) {
        view.state = self.state;
        view.failure_message = self.failure_message;
        view.summary = self.summary.or(view.summary.take());
        if self.backup_id.is_some() {
            view.backup_id = self.backup_id;
        }
        if self.folder.is_some() {
            view.folder = self.folder;
        }
        if self.key_generation.is_some() {
            view.key_generation = self.key_generation;
        }
        if let Some((warnings, errors)) = self.counts {
            view.warnings = view.warnings.max(warnings);
            view.errors = view.errors.max(errors);
        }
        // A job that failed, or failed somewhere, had at least that error.
        if view.failure_message.is_some()
            && view.errors == 0
            && [view::FAILED, view::PARTIALLY_SUCCEEDED].contains(&view.state.as_str())
        {
            view.errors = 1;
        }
    }
}

/// The message a stopped job ends with.
fn stopped(stop: &StopSignal) -> Option<Outcome> {
    match stop.reason()? {
        (StopReason::Cancelled, by) => Some(Outcome {
            state: view::CANCELLED.into(),
            failure_message: Some(format!("cancelled by {by}")),
            ..Outcome::failed(String::new())
        }),
        (StopReason::ShutDown, _) => Some(Outcome {
            state: view::INTERRUPTED.into(),
            failure_message: Some(
                "the service stopped; a backup is resumed at its next start".into(),
            ),
            ..Outcome::failed(String::new())
        }),
    }
}

pub async fn execute(
    runtime: &Runtime,
    plan: Plan,
    requested_by: &str,
    events: &EventSink,
    stop: &StopSignal,
) -> Outcome {
    match plan {
        Plan::Backup {
            staging,
            destinations,
            keys,
            resume_only,
            verify_after,
            prune,
        } => {
            let destinations_again = destinations.clone();
            let job = BackupJob {
                store_path: runtime.store_path.clone(),
                staging,
                destinations,
                journal: Some(runtime.config.journal()),
                transfer: runtime.config.transfer_options(),
                events: events.clone(),
                resume_only,
                force: false,
                stop: stop.clone(),
                requested_by: Some(requested_by.to_owned()),
            };
            let options = BackupOptions {
                compression: if runtime.config.backup.compress.unwrap_or(true) {
                    Compression::Zstd
                } else {
                    Compression::None
                },
                ..BackupOptions::default()
            };
            let report = match backup::run_job(&job, keys.as_ref(), &options).await {
                Ok(report) => report,
                Err(e) => return stopped(stop).unwrap_or_else(|| Outcome::failed(e.to_string())),
            };
            let outcome = match report.new.or(report.resumed) {
                Some(outcome) => backup_outcome(outcome, stop),
                None => Outcome::failed("the job took no backup".into()),
            };
            if outcome.state != view::SUCCEEDED {
                return outcome;
            }
            after_backup(
                runtime,
                &destinations_again,
                &outcome,
                verify_after,
                prune,
                requested_by,
                events,
            )
            .await
            .unwrap_or(outcome)
        }
        Plan::Verify {
            dir,
            selection,
            keys,
        } => {
            let history = match dir.load_history().await {
                Ok(h) => h,
                Err(e) => return Outcome::failed(e.to_string()),
            };
            let ids: Vec<String> = match history.select(&selection, &dir.location()) {
                Ok(entries) => entries.iter().map(|e| e.id.clone()).collect(),
                Err(e) => return Outcome::failed(e.to_string()),
            };
            verify_all(&dir, &ids, &keys, events, stop).await
        }
        Plan::Prune {
            dir,
            rules,
            dry_run,
        } => match backup::run_prune_as(&dir, &rules, dry_run, Some(requested_by), events).await {
            Ok(report) => Outcome::succeeded(format!(
                "{} {} backup(s), {} bytes{}",
                if dry_run { "would remove" } else { "removed" },
                report.removed.len(),
                report.freed_bytes,
                if dry_run { " would be freed" } else { " freed" }
            )),
            Err(e) => Outcome::failed(e.to_string()),
        },
        Plan::Restore {
            dir,
            mut request,
            keys,
            backup_first,
        } => {
            let mut undo = None;
            if let Some(first) = backup_first {
                match backup_before_overwrite(
                    runtime,
                    &dir,
                    &mut request,
                    first,
                    requested_by,
                    events,
                    stop,
                )
                .await
                {
                    Ok(taken) => undo = Some(taken),
                    Err(outcome) => return outcome,
                }
            }
            if let Some(outcome) = stopped(stop) {
                return outcome;
            }
            match backup::run_restore(&dir, &request, &keys, events).await {
                Ok(report) => Outcome {
                    backup_id: Some(report.manifest.backup_id.clone()),
                    key_generation: Some(report.manifest.master_key_generation),
                    ..Outcome::succeeded(format!(
                        "backup {} restored to {}{}",
                        report.manifest.backup_id,
                        report.restored_to.display(),
                        undo.map(|u| format!("; the store it replaced is {u}"))
                            .unwrap_or_default()
                    ))
                },
                Err(e) => Outcome::failed(format!(
                    "{e}{}",
                    undo.map(|u| format!(" (the live store was backed up first: {u})"))
                        .unwrap_or_default()
                )),
            }
        }
    }
}

/// Before a restore over the live store: pins the backup to restore (the newest successful
/// one, when none was named, must not become the backup taken now), then backs the live store
/// up. Returns what was taken (`backup ID in FOLDER`), or the outcome that ends the job with
/// the live store untouched.
async fn backup_before_overwrite(
    runtime: &Runtime,
    dir: &backup::BackupDirectory,
    request: &mut backup::RestoreRequest,
    first: super::plan::BackupFirst,
    requested_by: &str,
    events: &EventSink,
    stop: &StopSignal,
) -> Result<String, Outcome> {
    if request.backup_id.is_none() {
        let history = dir
            .load_history()
            .await
            .map_err(|e| Outcome::failed(e.to_string()))?;
        let newest = history.newest_successful_backup().ok_or_else(|| {
            Outcome::failed(format!(
                "{} holds no successful backup to restore; the live store was left as it was",
                dir.location()
            ))
        })?;
        request.backup_id = Some(newest.id.clone());
    }
    events
        .info("backing up the live store before it is overwritten, so this restore can be undone");
    let plan = Plan::Backup {
        staging: first.staging,
        destinations: first.destinations,
        keys: Some(first.keys),
        resume_only: false,
        verify_after: false,
        prune: None,
    };
    let taken = Box::pin(execute(runtime, plan, requested_by, events, stop)).await;
    if taken.state != view::SUCCEEDED {
        let why = taken.failure_message.unwrap_or_else(|| taken.state.clone());
        return Err(Outcome {
            state: if taken.state == view::CANCELLED || taken.state == view::INTERRUPTED {
                taken.state
            } else {
                view::FAILED.into()
            },
            failure_message: Some(format!(
                "the backup of the live store before the overwrite did not succeed, so nothing was restored and the live store was left as it was: {why}"
            )),
            ..Outcome::failed(String::new())
        });
    }
    let what = format!(
        "backup {} in {}",
        taken.backup_id.as_deref().unwrap_or("?"),
        taken.folder.as_deref().unwrap_or("?")
    );
    events.info(format!(
        "the live store was backed up as {what}: restore it to undo this overwrite"
    ));
    Ok(what)
}

fn backup_outcome(outcome: JobOutcome, stop: &StopSignal) -> Outcome {
    let record = &outcome.record;
    let state = match record.state {
        JobState::Succeeded => view::SUCCEEDED,
        JobState::PartiallySucceeded => view::PARTIALLY_SUCCEEDED,
        JobState::Cancelled => view::CANCELLED,
        JobState::Failed => view::FAILED,
        // Not finished: stopped for a shutdown, to be resumed.
        _ => view::INTERRUPTED,
    };
    let mut result = match stop.reason() {
        Some((StopReason::ShutDown, _)) if state == view::INTERRUPTED => {
            stopped(stop).unwrap_or_else(|| Outcome::failed(String::new()))
        }
        _ => Outcome {
            state: state.into(),
            failure_message: outcome.error.as_ref().map(ToString::to_string),
            summary: None,
            backup_id: None,
            folder: None,
            key_generation: None,
            counts: None,
        },
    };
    result.counts = Some((record.warnings, record.errors));
    result.summary = Some(format!(
        "backup {} in {}: {} of {} destinations",
        record.id,
        record.folder,
        record.succeeded_copies().count(),
        record.copies.len()
    ));
    result.backup_id = Some(record.id.clone());
    result.folder = Some(record.folder.clone());
    result.key_generation = record.key_generation;
    result
}

/// A schedule's steps after a successful backup: verify the new backup on each destination,
/// then prune each by the schedule's rules. A failure there fails the job, naming the step.
async fn after_backup(
    runtime: &Runtime,
    destinations: &[backup::Destination],
    outcome: &Outcome,
    verify_after: bool,
    prune: Option<backup::PruneRules>,
    requested_by: &str,
    events: &EventSink,
) -> Option<Outcome> {
    let id = outcome.backup_id.clone()?;
    if verify_after {
        let keys = match runtime.open_keys() {
            Ok(keys) => keys,
            Err(m) => {
                return Some(Outcome::failed(format!(
                    "backup {id} succeeded, but cannot be verified: {m}"
                )));
            }
        };
        for dest in destinations {
            if let Err(e) = backup::run_verify(&dest.dir, Some(&id), &keys).await {
                return Some(Outcome::failed(format!(
                    "backup {id} succeeded, but its copy on {} failed verification: {e}",
                    dest.name
                )));
            }
            events.info(format!("{}: backup {id} verified", dest.name));
        }
    }
    if let Some(rules) = prune {
        for dest in destinations {
            if let Err(e) =
                backup::run_prune_as(&dest.dir, &rules, false, Some(requested_by), events).await
            {
                return Some(Outcome::failed(format!(
                    "backup {id} succeeded, but pruning {} failed: {e}",
                    dest.name
                )));
            }
        }
    }
    None
}

async fn verify_all(
    dir: &backup::BackupDirectory,
    ids: &[String],
    keys: &OpenKeys,
    events: &EventSink,
    stop: &StopSignal,
) -> Outcome {
    let mut failed = Vec::new();
    for id in ids {
        if let Some(outcome) = stopped(stop) {
            return outcome;
        }
        match backup::run_verify(dir, Some(id), keys).await {
            Ok(_) => events.info(format!("backup {id} in {} verified", dir.location())),
            Err(e) => {
                events.error(format!("backup {id} in {}: {e}", dir.location()));
                failed.push(format!("{id}: {e}"));
            }
        }
    }
    if failed.is_empty() {
        Outcome {
            backup_id: (ids.len() == 1).then(|| ids[0].clone()),
            ..Outcome::succeeded(format!("{} backup(s) verified", ids.len()))
        }
    } else {
        Outcome::failed(format!(
            "{} of {} backups failed verification: {}",
            failed.len(),
            ids.len(),
            failed.join("; ")
        ))
    }
}
