//! `backup`, `restore`, `history`, `verify`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Result, bail};
use sstore_core::backup::{
    self, BackupOptions, History, JobKind, JobLog, RestoreMethod, RestoreRequest,
};
use sstore_core::format::Compression;

use super::{Context, print_json};
use crate::args::{BackupArgs, HistoryArgs, RestoreArgs, RestoreMethodArg, VerifyArgs};
use crate::passphrase;

fn job_log(verbose: bool) -> JobLog {
    if verbose {
        JobLog::with_observer(|line| eprintln!("{line}"))
    } else {
        JobLog::new()
    }
}

fn human_bytes(n: u64) -> String {
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

/// The backup passphrase. When it falls back to the store passphrase, check that it opens the
/// store's Master Key first, so a mistyped passphrase never produces a backup nobody can open.
fn backup_passphrase(ctx: &Context, check_store: bool) -> Result<sstore_core::Passphrase> {
    let (passphrase, fell_back) = passphrase::backup(
        ctx.global.backup_passphrase_file.as_deref(),
        ctx.global.passphrase_file.as_deref(),
    )?;
    if fell_back && check_store {
        ctx.open_store()?.check_passphrase(&passphrase)?;
    }
    Ok(passphrase)
}

pub async fn backup(ctx: &Context, args: BackupArgs) -> Result<()> {
    if args.show_tree {
        print!("{}", backup::show_tree(&ctx.store_path)?);
        println!();
        return Ok(());
    }
    let dir = ctx
        .backup_directory(args.directory.as_ref(), args.staging.as_deref())
        .await?;
    // Fail early, before asking for a passphrase, if there is no store.
    ctx.open_store()?;
    let passphrase = backup_passphrase(ctx, true)?;
    passphrase.check_policy()?;
    let options = BackupOptions {
        item: args.item,
        compression: if ctx.config.backup.compress.unwrap_or(true) {
            Compression::Zstd
        } else {
            Compression::None
        },
        ..BackupOptions::default()
    };
    let log = job_log(args.verbose);
    let report = backup::run_backup(&ctx.store_path, &dir, &passphrase, &options, &log).await?;
    let m = &report.manifest;
    println!(
        "Backup {} succeeded ({} backup of {}).",
        report.entry.id, report.entry.method, report.entry.item
    );
    println!("  Folder:      {}", report.location);
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
    println!(
        "  Started:     {}   Finished: {}",
        report.entry.started, report.entry.finished
    );
    println!(
        "Restoring it needs the backup passphrase used now; the restored store opens with the store passphrase in force now."
    );
    Ok(())
}

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
        .backup_directory(args.directory.as_ref(), args.staging.as_deref())
        .await?;
    let (method, destination) = match args.method {
        RestoreMethodArg::Overwrite => (RestoreMethod::Overwrite, ctx.store_path.clone()),
        RestoreMethodArg::New => match args.new_store {
            Some(path) => (RestoreMethod::New, path),
            None => bail!("--method new needs --new-store PATH"),
        },
    };
    if method == RestoreMethod::Overwrite && !args.force && destination.exists() {
        confirm_overwrite(&destination)?;
    }
    let passphrase = backup_passphrase(ctx, false)?;
    let request = RestoreRequest {
        backup_id: args.backup_id,
        method,
        destination,
        force: args.force,
        store_passphrase: passphrase::store_given(ctx.global.passphrase_file.as_deref())?,
    };
    let log = job_log(args.verbose);
    let report = backup::run_restore(&dir, &request, &passphrase, &log).await?;
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
    let dir = ctx.backup_directory(args.directory.as_ref(), None).await?;
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
    }
    Ok(())
}

pub async fn verify(ctx: &Context, args: VerifyArgs) -> Result<()> {
    let dir = ctx
        .backup_directory(args.directory.as_ref(), args.staging.as_deref())
        .await?;
    let passphrase = backup_passphrase(ctx, false)?;
    let report = backup::run_verify(&dir, args.backup_id.as_deref(), &passphrase).await?;
    let m = &report.manifest;
    println!(
        "Backup {} in {}/{} verified: every chunk authenticated, {} bytes decrypted with SHA-256 {}, \
         SQLite integrity ok, {} applications and {} credential sets as recorded.",
        m.backup_id,
        dir.location(),
        report.entry.folder,
        m.plaintext_size,
        m.plaintext_sha256,
        m.applications,
        m.credential_sets
    );
    Ok(())
}
