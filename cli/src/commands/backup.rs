//! `backup`, `restore`, `history`, `verify`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Result, bail};
use sstore_core::backup::{self, History, JobKind, RestoreMethod, RestoreRequest, Selection};

use super::{Context, print_json};
use crate::args::{HistoryArgs, RestoreArgs, RestoreMethodArg, VerifyArgs};
use crate::passphrase;

pub(super) use sstore_core::backup::preflight::human_bytes;

fn confirm_overwrite(path: &std::path::Path) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "restore --method overwrite replaces the live store at {}: add --force to confirm when not running interactively",
            path.display()
        );
    }
    eprint!(
        "This replaces the live store at {} with the backup. Type 'yes' to continue: ",
        path.display()
    );
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        bail!("restore cancelled; the live store was not changed");
    }
    Ok(())
}

pub async fn restore(ctx: &Context, args: RestoreArgs) -> Result<()> {
    let dir = ctx
        .directory_or_target(
            args.directory.as_ref(),
            args.target.as_ref(),
            args.staging.as_deref(),
        )
        .await?;
    let (method, destination) = match args.method {
        RestoreMethodArg::Overwrite => (RestoreMethod::Overwrite, ctx.store_path.clone()),
        RestoreMethodArg::New => match args.new_store {
            Some(path) => (RestoreMethod::New, path),
            None => bail!("--method new needs --new-store PATH"),
        },
    };
    if method == RestoreMethod::Overwrite
        && !args.force
        && (ctx.store.is_sql_server() || destination.exists())
    {
        confirm_overwrite(&destination)?;
    }
    let keys = crate::keys::open_keys(ctx, &args.identities)?;
    let request = RestoreRequest {
        backup_id: args.backup_id,
        method,
        destination,
        force: args.force,
        store_passphrase: passphrase::store_given(ctx.global.passphrase_file.as_deref())?,
        requested_by: None,
    };
    let events = crate::progress::log_lines(args.verbose);
    let report = backup::run_restore(&dir, &request, &keys, &events).await?;
    let m = &report.manifest;
    println!(
        "Restored backup {} ({}, {} applications, {} credential sets) to {}.",
        m.backup_id,
        m.finished,
        m.applications,
        m.credential_sets,
        report.restored_to.display()
    );
    match report.store_passphrase_opens {
        Some(true) => println!(
            "The store passphrase given opens its Master Key (generation {}).",
            m.master_key_generation
        ),
        Some(false) => println!(
            "warning: the store passphrase given does not open the restored Master Key (generation {}); \
             it opens with the passphrase in force when the backup was taken. Check with `sstore key refresh`.",
            m.master_key_generation
        ),
        None => println!(
            "The restored store opens with the passphrase in force when the backup was taken (Master Key generation {}); check with `sstore key refresh`.",
            m.master_key_generation
        ),
    }
    Ok(())
}

pub async fn history(ctx: &Context, args: HistoryArgs) -> Result<()> {
    if args.jobs {
        return job_history(ctx, args.json);
    }
    let dir = ctx
        .directory_or_target(args.directory.as_ref(), args.target.as_ref(), None)
        .await?;
    let history: History = dir.load_history().await?;
    if args.json {
        return print_json(&history);
    }
    for folder in dir.unlisted_folders(&history).await? {
        eprintln!(
            "warning: {}/{folder} is not in the history: a backup job was interrupted while publishing it; \
             it is not used by restore and can be removed",
            dir.location()
        );
    }
    if history.entries.is_empty() {
        println!("No backups recorded in {}.", dir.location());
        return Ok(());
    }
    println!(
        "{:<32}  {:<7}  {:<9}  {:<9}  {:<12}  {:<20}  {:>10}  {:>3}  REQUESTED BY",
        "ID", "KIND", "METHOD", "STATUS", "FOLDER", "STARTED", "SIZE", "GEN"
    );
    for e in &history.entries {
        let kind = match e.kind {
            JobKind::Backup => "backup",
            JobKind::Restore => "restore",
            JobKind::Prune => "prune",
        };
        println!(
            "{:<32}  {:<7}  {:<9}  {:<9}  {:<12}  {:<20}  {:>10}  {:>3}  {}",
            e.id,
            kind,
            e.method,
            e.status.to_string(),
            e.folder,
            e.started,
            e.backup_size.map(human_bytes).unwrap_or_default(),
            e.key_generation.map(|g| g.to_string()).unwrap_or_default(),
            e.requested_by
        );
        if let Some(message) = &e.failure_message {
            println!("    failure: {message}");
        }
        if !e.removed.is_empty() {
            println!("    removed: {}", e.removed.join(", "));
        }
        for c in &e.copies {
            println!(
                "    copy on {} ({}): {}{}",
                c.name,
                c.location,
                c.state,
                c.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}

pub async fn verify(ctx: &Context, args: VerifyArgs) -> Result<()> {
    let dir = ctx
        .directory_or_target(
            args.directory.as_ref(),
            args.target.as_ref(),
            args.staging.as_deref(),
        )
        .await?;
    let keys = crate::keys::open_keys(ctx, &args.identities)?;
    let ids: Vec<Option<String>> = if args.all {
        let history = dir.load_history().await?;
        history
            .select(&Selection::All, &dir.location())?
            .into_iter()
            .map(|e| Some(e.id.clone()))
            .collect()
    } else {
        vec![args.backup_id.clone()]
    };
    let mut failures = 0;
    for id in &ids {
        match backup::run_verify(&dir, id.as_deref(), &keys).await {
            Ok(report) => {
                let m = &report.manifest;
                println!(
                    "Backup {} in {}/{} verified: every chunk authenticated, {} bytes decrypted with SHA-256 {}, \
                     SQLite quick check ok, {} applications and {} credential sets as recorded.",
                    m.backup_id,
                    dir.location(),
                    report.entry.folder,
                    m.plaintext_size,
                    m.plaintext_sha256,
                    m.applications,
                    m.credential_sets
                );
            }
            Err(e)
                if ids.len() > 1 && e.category() == sstore_core::ErrorCategory::WrongPassphrase =>
            {
                failures += 1;
                println!(
                    "Backup {} in {} cannot be opened with the keys given ({})",
                    id.as_deref().unwrap_or("?"),
                    dir.location(),
                    keys.describe()
                );
            }
            Err(e) if ids.len() > 1 => {
                failures += 1;
                println!(
                    "Backup {} in {} FAILED verification: {e}",
                    id.as_deref().unwrap_or("?"),
                    dir.location()
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
    if failures > 0 {
        bail!(
            "{failures} of {} backups in {} failed verification",
            ids.len(),
            dir.location()
        );
    }
    Ok(())
}

/// `history --jobs`: the local job records.
fn job_history(ctx: &Context, json: bool) -> Result<()> {
    let (jobs, unreadable) = ctx.journal().list()?;
    for path in unreadable {
        eprintln!("warning: cannot read the job record {}", path.display());
    }
    if json {
        return print_json(&jobs);
    }
    if jobs.is_empty() {
        println!(
            "No backup jobs recorded in {}.",
            ctx.journal().dir().display()
        );
        return Ok(());
    }
    println!(
        "{:<32}  {:<20}  {:<12}  {:<20}  {:>10}  {:>9}  TARGETS",
        "ID", "STATE", "FOLDER", "STARTED", "SIZE", "MIB/S"
    );
    for j in &jobs {
        let state = j.shown_state();
        let targets: Vec<String> = j
            .copies
            .iter()
            .map(|c| format!("{}={}", c.name, c.state))
            .collect();
        println!(
            "{:<32}  {:<20}  {:<12}  {:<20}  {:>10}  {:>9}  {}",
            j.id,
            state,
            j.folder,
            j.started,
            j.backup_size.map(human_bytes).unwrap_or_default(),
            j.rate_mib_s.map(|r| format!("{r:.1}")).unwrap_or_default(),
            targets.join(" ")
        );
        for c in j.copies.iter().filter(|c| c.message.is_some()) {
            println!(
                "    {}: {}",
                c.name,
                c.message.as_deref().unwrap_or_default()
            );
        }
        if let Some(m) = &j.failure_message {
            println!("    failure: {m}");
        }
    }
    Ok(())
}
