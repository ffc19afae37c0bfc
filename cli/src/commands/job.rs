//! `backup` (stage locally, then send to every target) and `readiness` / `backup --what-if`
//! (check that a backup can run, writing nothing): arguments in, the core job or preflight,
//! results rendered.

use anyhow::{Result, anyhow, bail};
use sstore_core::backup::retry::Retryable as _;
use sstore_core::backup::{
    self, BackupJob, BackupKeys, BackupOptions, Check, CheckStatus, CopyState, JobOutcome,
    JobState, PreflightRequest,
};
use sstore_core::format::Compression;

use super::Context;
use super::backup::human_bytes;
use crate::args::BackupArgs;
use crate::exit::Partial;
use crate::keys::backup_keys;
use crate::progress;

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
    let keys: Option<BackupKeys> = if args.resume {
        None
    } else {
        // Fail early, before asking for a passphrase, if there is no store.
        ctx.open_store()?;
        Some(backup_keys(ctx, &args.recipients)?)
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
    let mut transfer = ctx.config.transfer_options();
    transfer.keep_local |= args.keep_local;
    if let Some(percentage) = args.percentage {
        transfer.percentage = percentage;
    }
    let job = BackupJob {
        store_path: ctx.store_path.clone(),
        staging,
        destinations,
        journal: Some(ctx.journal()),
        transfer,
        events: progress::observers(args.json, args.verbose),
        resume_only: args.resume,
        force: args.force,
        stop: Default::default(),
        requested_by: None,
    };
    let report = backup::run_job(&job, keys.as_ref(), &options).await?;

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
    conclude(outcome, &job.staging)
}

/// The exit status of a job: ok, partial (7), or its first error (said to be temporary when
/// it is: the next run tries again).
fn conclude(mut outcome: JobOutcome, staging: &std::path::Path) -> Result<()> {
    match outcome.record.state {
        JobState::Succeeded => Ok(()),
        JobState::PartiallySucceeded => Err(Partial(format!(
            "backup {} partially succeeded: {}",
            outcome.record.id,
            failed_targets(&outcome)
        ))
        .into()),
        _ => {
            let id = outcome.record.id.clone();
            match outcome.error.take() {
                // A network or server failure: the next run tries again, sending the staged
                // backup when it got that far.
                Some(e) if e.is_temporary() => {
                    let next = if staging.join(&id).is_dir() {
                        "it stays staged, and the next `sstore backup` (or `sstore backup \
                         --resume`) sends it again"
                    } else {
                        "run the backup again once the target is reachable"
                    };
                    Err(anyhow::Error::from(e)
                        .context(format!("backup {id} failed with a temporary error; {next}")))
                }
                Some(e) => Err(e.into()),
                None => Err(anyhow!("backup {id} failed")),
            }
        }
    }
}

fn failed_targets(outcome: &JobOutcome) -> String {
    outcome
        .record
        .unfinished_copies()
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
        let location = match &c.folder {
            Some(folder) => format!("{} (in {folder})", c.location),
            None => c.location.clone(),
        };
        match c.state {
            CopyState::Succeeded => println!("  Target:      {}  {location}  verified", c.name),
            _ => println!(
                "  Target:      {}  {location}  {}: {}",
                c.name,
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

/// `sstore readiness` / `sstore backup --what-if`: every preflight check, nothing written but
/// probes.
pub async fn readiness(ctx: &Context, args: BackupArgs) -> Result<()> {
    let (staging, destinations) = match ctx
        .destinations(
            args.directory.as_ref(),
            &args.targets,
            args.staging.as_deref(),
        )
        .await
    {
        Ok(found) => found,
        Err(e) => {
            let failed = Check {
                check: "targets".into(),
                status: CheckStatus::Failed,
                detail: format!("{e:#}"),
            };
            return report_checks(&[failed], args.json);
        }
    };
    // The keys are asked for only when the store opens (a missing store is its own failure).
    let keys = match ctx.open_store() {
        Ok(_) => backup_keys(ctx, &args.recipients).map_err(|e| format!("{e:#}")),
        Err(_) => Err("the store does not open".to_owned()),
    };
    let checks = backup::preflight(PreflightRequest {
        store_path: &ctx.store_path,
        keys,
        staging: &staging,
        destinations: &destinations,
        force: args.force,
        readiness_timeout: ctx.config.readiness_timeout(),
    })
    .await;
    report_checks(&checks, args.json)
}

fn report_checks(checks: &[Check], json: bool) -> Result<()> {
    if json {
        let rows: Vec<_> = checks
            .iter()
            .map(|c| {
                serde_json::json!({
                    "check": c.check,
                    "ok": c.status != CheckStatus::Failed,
                    "warning": c.status == CheckStatus::Warning,
                    "status": c.status,
                    "detail": c.detail,
                })
            })
            .collect();
        super::print_json(&rows)?;
    } else {
        for c in checks {
            let mark = match c.status {
                CheckStatus::Failed => "FAIL",
                CheckStatus::Warning => "WARN",
                CheckStatus::Ok => "ok",
            };
            println!("{mark:<4}  {:<16}  {}", c.check, c.detail);
        }
    }
    let failures = checks
        .iter()
        .filter(|c| c.status == CheckStatus::Failed)
        .count();
    if failures > 0 {
        bail!("{failures} readiness checks failed; no backup was written");
    }
    if !json {
        println!("Ready: a backup can run (nothing was written).");
    }
    Ok(())
}
