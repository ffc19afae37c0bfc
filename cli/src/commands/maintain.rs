//! `status` (the running job and the targets' readiness), `prune` (retention) and `unlock`
//! (break a stale lock on a backup directory or target).

use anyhow::Result;
use sstore_core::backup::{self, JobsStatus, PruneRules, target_lock};

use super::{Context, print_json};
use crate::args::{PruneArgs, StatusArgs, UnlockArgs};

pub async fn status(ctx: &Context, args: StatusArgs) -> Result<()> {
    let jobs = JobsStatus::read(&ctx.journal())?;
    if args.json {
        print_json(&serde_json::json!({
            "running": jobs.running,
            "queued": jobs.queued,
            "interrupted": jobs.interrupted,
            "last": jobs.last_finished(),
        }))?;
    } else {
        if jobs.running.is_empty() && jobs.queued.is_empty() {
            println!("No backup job is running.");
        }
        for job in jobs.running.iter().chain(&jobs.queued) {
            println!(
                "Running: backup {} ({}), {} since {}, pid {}",
                job.id, job.folder, job.state, job.started, job.pid
            );
            for c in &job.copies {
                println!(
                    "  {:<16} {:<13} {} bytes sent{}",
                    c.name,
                    c.state.to_string(),
                    c.bytes_sent,
                    c.message
                        .as_deref()
                        .map(|m| format!("  ({m})"))
                        .unwrap_or_default()
                );
            }
        }
        for job in &jobs.interrupted {
            println!(
                "Interrupted: backup {} ({}) stopped while {}; the next `sstore backup` on the same directory resumes it",
                job.id, job.folder, job.state
            );
        }
        if let Some(last) = jobs.last_finished() {
            println!(
                "Last job: backup {} {} at {}",
                last.id, last.state, last.finished
            );
        }
        println!();
    }
    if !args.json {
        super::targets::run(
            ctx,
            crate::args::TargetsArgs {
                command: None,
                json: false,
            },
        )
        .await?;
    }
    Ok(())
}

pub async fn prune(ctx: &Context, args: PruneArgs) -> Result<()> {
    let keep_within = match &args.keep_within {
        Some(text) => Some(backup::prune::parse_duration(text).ok_or_else(|| {
            anyhow::anyhow!("--keep-within {text}: give a number and a unit, e.g. 30d, 12h, 2w")
        })?),
        None => None,
    };
    let dir = ctx
        .directory_or_target(args.directory.as_ref(), args.target.as_ref(), None)
        .await?;
    let report = backup::run_prune(
        &dir,
        &PruneRules {
            keep_last: args.keep_last,
            keep_within,
        },
        args.dry_run,
        &crate::progress::warnings(),
    )
    .await?;
    if args.json {
        return print_json(&report);
    }
    let verb = if args.dry_run {
        "Would remove"
    } else {
        "Removed"
    };
    if report.removed.is_empty() {
        println!("Nothing to prune in {}.", dir.location());
    }
    for (folder, id) in &report.removed {
        println!("{verb} {}/{folder} (backup {id})", dir.location());
    }
    println!(
        "Kept {} successful backups; {} {}.",
        report.kept.len(),
        super::backup::human_bytes(report.freed_bytes),
        if args.dry_run {
            "would be freed"
        } else {
            "freed"
        }
    );
    Ok(())
}

pub async fn unlock(ctx: &Context, args: UnlockArgs) -> Result<()> {
    let dir = ctx
        .directory_or_target(args.directory.as_ref(), args.target.as_ref(), None)
        .await?;
    match target_lock::break_lock(&dir, args.force).await? {
        None => println!("{} is not locked.", dir.location()),
        Some(holder) => println!("Removed the lock on {} held by {holder}.", dir.location()),
    }
    Ok(())
}
