//! `backup` (stage locally, then send to every target) and `readiness` / `backup --what-if`
//! (check that a backup can run, writing nothing).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Result, anyhow, bail};
use sstore_core::backup::{
    self, BackupJob, BackupOptions, CopyState, EventSink, JobEvent, JobLog, JobOutcome, JobState,
    RetryPolicy, TransferOptions,
};
use sstore_core::format::Compression;
use sstore_core::target::Target;

use super::Context;
use super::backup::{backup_passphrase, human_bytes};
use crate::args::BackupArgs;
use crate::exit::Partial;
use crate::progress::{self, Mode};

fn transfer_options(ctx: &Context, args: &BackupArgs) -> TransferOptions {
    let t = &ctx.config.transfer;
    let defaults = RetryPolicy::default();
    TransferOptions {
        concurrency: t.concurrency.unwrap_or(4).max(1),
        retry: RetryPolicy {
            first_delay: t
                .retry_delay_ms
                .map(std::time::Duration::from_millis)
                .unwrap_or(defaults.first_delay),
            max_delay: t
                .max_retry_delay_ms
                .map(std::time::Duration::from_millis)
                .unwrap_or(defaults.max_delay),
            deadline: t
                .deadline_secs
                .map(std::time::Duration::from_secs)
                .unwrap_or(defaults.deadline),
            max_attempts: t.attempts.unwrap_or(defaults.max_attempts).max(1),
        },
        keep_local: args.keep_local || ctx.config.backup.keep_local.unwrap_or(false),
        percentage: args
            .percentage
            .or(ctx.config.backup.percentage)
            .unwrap_or(5),
    }
}

/// The job log: shown on stderr with `--verbose`; with `--json`, warnings and errors become
/// events.
fn job_log(args: &BackupArgs) -> JobLog {
    if args.json {
        let verbose = args.verbose;
        JobLog::with_observer(move |line| {
            if let Some((_, message)) = line.split_once(" [warning] ") {
                progress::print_json_event(&JobEvent::Warning {
                    message: message.to_owned(),
                });
            } else if let Some((_, message)) = line.split_once(" [error] ") {
                progress::print_json_event(&JobEvent::Error {
                    message: message.to_owned(),
                });
            } else if verbose {
                eprintln!("{line}");
            }
        })
    } else {
        super::backup::job_log(args.verbose)
    }
}

/// Refuses to stage when the staging folder's disk looks too small (the snapshot and the staged
/// backup each take at most about the store's size), unless `force`.
async fn check_staging_space(staging: &Path, store_path: &Path, force: bool) -> Result<()> {
    let needed = std::fs::metadata(store_path).map(|m| m.len()).unwrap_or(0) * 2 + 1024 * 1024;
    sstore_core::fsutil::create_private_dir_all(staging).map_err(|e| {
        anyhow!(
            "cannot create the staging folder {}: {e}",
            staging.display()
        )
    })?;
    let readiness = sstore_target_local::LocalTarget::new(staging)
        .readiness()
        .await
        .map_err(|e| {
            anyhow!(
                "the staging folder {} is not usable: {e}",
                staging.display()
            )
        })?;
    if !readiness.writable {
        bail!(
            "the staging folder {} is not writable; choose another with --staging",
            staging.display()
        );
    }
    if let Some(free) = readiness.free_bytes
        && free < needed
        && !force
    {
        return Err(backup::BackupError::NoSpace {
            path: staging.to_owned(),
            needed,
            free,
        }
        .into());
    }
    Ok(())
}

pub async fn backup(ctx: &Context, args: BackupArgs) -> Result<()> {
    if args.show_tree {
        print!("{}", backup::show_tree(&ctx.store_path)?);
        println!();
        return Ok(());
    }
    if args.what_if {
        return readiness(ctx, args).await;
    }
    let (staging, destinations) = ctx
        .destinations(
            args.directory.as_ref(),
            &args.targets,
            args.staging.as_deref(),
        )
        .await?;
    let passphrase = if args.resume {
        None
    } else {
        // Fail early, before asking for a passphrase, if there is no store.
        ctx.open_store()?;
        let passphrase = backup_passphrase(ctx, true)?;
        passphrase.check_policy()?;
        check_staging_space(&staging, &ctx.store_path, args.force).await?;
        Some(passphrase)
    };
    let options = BackupOptions {
        item: args.item.clone(),
        compression: if ctx.config.backup.compress.unwrap_or(true) {
            Compression::Zstd
        } else {
            Compression::None
        },
        ..BackupOptions::default()
    };
    let mode = Mode::choose(args.json);
    let job = BackupJob {
        store_path: ctx.store_path.clone(),
        staging,
        destinations,
        journal: Some(ctx.journal()),
        transfer: transfer_options(ctx, &args),
        events: if args.json || !args.verbose {
            progress::sink(mode)
        } else {
            EventSink::default()
        },
        resume_only: args.resume,
    };
    let log = job_log(&args);
    let report = backup::run_job(&job, passphrase.as_ref(), &options, &log).await?;

    if let Some(resumed) = &report.resumed
        && !args.json
    {
        print_outcome(resumed, true);
    }
    let outcome = match (report.new, report.resumed) {
        (Some(new), resumed) => {
            if let Some(r) = resumed.filter(|r| !r.succeeded())
                && !args.json
            {
                eprintln!(
                    "warning: interrupted backup {} is still not on every target; the next run tries again",
                    r.record.id
                );
            }
            new
        }
        (None, Some(resumed)) => resumed,
        (None, None) => return Ok(()),
    };
    if !args.json {
        print_outcome(&outcome, false);
    }
    conclude(outcome)
}

/// The exit status of a job: ok, partial (7), or its first error.
fn conclude(mut outcome: JobOutcome) -> Result<()> {
    match outcome.record.state {
        JobState::Succeeded => Ok(()),
        JobState::PartiallySucceeded => Err(Partial(format!(
            "backup {} partially succeeded: {}",
            outcome.record.id,
            failed_targets(&outcome)
        ))
        .into()),
        _ => Err(outcome
            .error
            .take()
            .map(anyhow::Error::from)
            .unwrap_or_else(|| anyhow!("backup {} failed", outcome.record.id))),
    }
}

fn failed_targets(outcome: &JobOutcome) -> String {
    outcome
        .record
        .copies
        .iter()
        .filter(|c| c.state != CopyState::Succeeded)
        .map(|c| format!("{} failed ({})", c.name, c.message.as_deref().unwrap_or("")))
        .collect::<Vec<_>>()
        .join("; ")
}

fn print_outcome(outcome: &JobOutcome, resumed: bool) {
    let r = &outcome.record;
    let what = if resumed {
        "Interrupted backup"
    } else {
        "Backup"
    };
    println!("{what} {} {} (full backup of {}).", r.id, r.state, r.item);
    if let Some(m) = &outcome.manifest {
        println!("  Folder:      {}", r.folder);
        println!(
            "  Store:       {} (Master Key {} generation {})",
            m.store_id, m.master_key_id, m.master_key_generation
        );
        println!(
            "  Contents:    {} applications, {} credential sets",
            m.applications, m.credential_sets
        );
        println!(
            "  Size:        {} encrypted ({} snapshot, compression {})",
            human_bytes(m.backup_size),
            human_bytes(m.plaintext_size),
            m.compression
        );
    }
    for c in &r.copies {
        match c.state {
            CopyState::Succeeded => println!("  Target:      {}  {}  verified", c.name, c.location),
            _ => println!(
                "  Target:      {}  {}  {}: {}",
                c.name,
                c.location,
                c.state,
                c.message.as_deref().unwrap_or("")
            ),
        }
    }
    println!("  Started:     {}   Finished: {}", r.started, r.finished);
    if let Some(rate) = r.rate_mib_s.filter(|r| *r >= 0.1) {
        println!("  Rate:        {rate:.1} MiB/s");
    }
    if r.state == JobState::Succeeded && !resumed {
        println!(
            "Restoring it needs the backup passphrase used now; the restored store opens with the store passphrase in force now."
        );
    }
}

/// One preflight check's result.
struct Check {
    what: String,
    ok: bool,
    warning: bool,
    detail: String,
}

/// `sstore readiness` / `sstore backup --what-if`: every check, nothing written but probes.
pub async fn readiness(ctx: &Context, args: BackupArgs) -> Result<()> {
    let mut checks = Vec::new();
    let store = ctx.open_store();
    let summary = match &store {
        Ok(store) => match store.summary() {
            Ok(s) => {
                checks.push(Check {
                    what: "store".into(),
                    ok: true,
                    warning: false,
                    detail: format!(
                        "{} opens: {} applications, {} credential sets, Master Key generation {}",
                        ctx.store_path.display(),
                        s.applications,
                        s.credential_sets,
                        s.master_key.generation
                    ),
                });
                Some(s)
            }
            Err(e) => {
                checks.push(failed("store", e.to_string()));
                None
            }
        },
        Err(e) => {
            checks.push(failed("store", format!("{e:#}")));
            None
        }
    };
    if store.is_ok() {
        checks.push(match backup_passphrase(ctx, true) {
            Ok(_) => Check {
                what: "passphrase".into(),
                ok: true,
                warning: false,
                detail: "the backup passphrase given is usable (and opens the Master Key when it is the store passphrase)".into(),
            },
            Err(e) => failed("passphrase", format!("{e:#}")),
        });
    }
    let destinations = ctx
        .destinations(
            args.directory.as_ref(),
            &args.targets,
            args.staging.as_deref(),
        )
        .await;
    let (staging, destinations) = match destinations {
        Ok(found) => found,
        Err(e) => {
            checks.push(failed("targets", format!("{e:#}")));
            return report_checks(&checks, args.json);
        }
    };
    checks.push(
        match check_staging_space(&staging, &ctx.store_path, args.force).await {
            Ok(()) => Check {
                what: "staging".into(),
                ok: true,
                warning: false,
                detail: format!("{} is writable with room for the backup", staging.display()),
            },
            Err(e) => failed("staging", format!("{e:#}")),
        },
    );
    let mut tasks = tokio::task::JoinSet::new();
    for (i, dest) in destinations.iter().enumerate() {
        let target: Arc<dyn Target> = dest.dir.target_arc();
        tasks.spawn(async move {
            let result =
                tokio::time::timeout(std::time::Duration::from_secs(30), target.readiness()).await;
            (i, result)
        });
    }
    let mut answers: Vec<_> = tasks.join_all().await;
    answers.sort_by_key(|(i, _)| *i);
    for (i, answer) in answers {
        let dest = &destinations[i];
        let what = format!("target {}", dest.name);
        checks.push(match answer {
            Ok(Ok(r)) if r.writable => Check {
                what,
                ok: true,
                warning: false,
                detail: format!(
                    "{} reachable and writable{}{}",
                    dest.dir.location(),
                    r.free_bytes
                        .map(|f| format!(", {} free", human_bytes(f)))
                        .unwrap_or_default(),
                    r.detail.map(|d| format!("; {d}")).unwrap_or_default()
                ),
            },
            Ok(Ok(_)) => failed(&what, format!("{} is not writable", dest.dir.location())),
            Ok(Err(e)) => failed(&what, e.to_string()),
            Err(_) => failed(
                &what,
                format!("{} did not answer within 30 s", dest.dir.location()),
            ),
        });
    }
    if let (Some(summary), Some(primary)) = (&summary, destinations.first())
        && let Ok(history) = primary.dir.load_history().await
    {
        match history.newest_successful_backup() {
            Some(last) if last.key_generation == Some(summary.master_key.generation) => {}
            Some(last) => checks.push(Check {
                what: "master key".into(),
                ok: true,
                warning: true,
                detail: format!(
                    "the Master Key changed (generation {}) since the last successful backup {} (generation {}): back up now",
                    summary.master_key.generation,
                    last.id,
                    last.key_generation.map(|g| g.to_string()).unwrap_or("?".into())
                ),
            }),
            None => checks.push(Check {
                what: "master key".into(),
                ok: true,
                warning: true,
                detail: format!("{} has no successful backup yet", primary.dir.location()),
            }),
        }
    }
    report_checks(&checks, args.json)
}

fn failed(what: &str, detail: String) -> Check {
    Check {
        what: what.to_owned(),
        ok: false,
        warning: false,
        detail,
    }
}

fn report_checks(checks: &[Check], json: bool) -> Result<()> {
    if json {
        let rows: Vec<_> = checks
            .iter()
            .map(|c| {
                serde_json::json!({
                    "check": c.what,
                    "ok": c.ok,
                    "warning": c.warning,
                    "detail": c.detail,
                })
            })
            .collect();
        super::print_json(&rows)?;
    } else {
        for c in checks {
            let mark = match (c.ok, c.warning) {
                (false, _) => "FAIL",
                (true, true) => "WARN",
                (true, false) => "ok",
            };
            println!("{mark:<4}  {:<16}  {}", c.what, c.detail);
        }
    }
    let failures = checks.iter().filter(|c| !c.ok).count();
    if failures > 0 {
        bail!("{failures} readiness checks failed; no backup was written");
    }
    if !json {
        println!("Ready: a backup can run (nothing was written).");
    }
    Ok(())
}
