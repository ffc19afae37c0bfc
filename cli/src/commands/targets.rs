//! `targets`: list target kinds and configured targets with their readiness; `targets test`
//! runs the conformance kit against one.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use serde::Serialize;
use sstore_core::target::{KindOrigin, Readiness, Registry, Target};

use super::{Context, print_json};
use crate::args::{TargetsArgs, TargetsCommand, TargetsTestArgs};
use sstore_core::config::NamedTarget;

pub async fn run(ctx: &Context, args: TargetsArgs) -> Result<()> {
    match args.command {
        None => list(ctx, args.json).await,
        Some(TargetsCommand::List { json }) => list(ctx, json || args.json).await,
        Some(TargetsCommand::Test(test)) => conformance(ctx, test).await,
    }
}

#[derive(Serialize)]
struct KindRow {
    kind: String,
    schemes: Vec<String>,
    origin: String,
    plugin_file: Option<String>,
    abi_version: Option<u32>,
    replaces_builtin: bool,
    description: String,
}

#[derive(Serialize)]
struct TargetRow {
    name: String,
    kind: String,
    location: Option<String>,
    ready: bool,
    readiness: Option<Readiness>,
    error: Option<String>,
}

fn kind_rows(registry: &Registry) -> Vec<KindRow> {
    registry
        .kinds()
        .map(|k| {
            let (origin, plugin_file, abi_version) = match &k.origin {
                KindOrigin::BuiltIn => ("built-in".to_owned(), None, None),
                KindOrigin::Plugin { file, abi_version } => (
                    "plugin".to_owned(),
                    Some(file.display().to_string()),
                    Some(*abi_version),
                ),
            };
            KindRow {
                kind: k.name.clone(),
                schemes: k.schemes.clone(),
                origin,
                plugin_file,
                abi_version,
                replaces_builtin: k.replaced_builtin,
                description: k.description.clone(),
            }
        })
        .collect()
}

/// Opens a configured target and checks its readiness within `readiness_limit`.
async fn check(registry: &Registry, target: &NamedTarget, readiness_limit: Duration) -> TargetRow {
    let mut row = TargetRow {
        name: target.name.clone(),
        kind: target.kind.clone(),
        location: None,
        ready: false,
        readiness: None,
        error: None,
    };
    let opened = match sstore_core::locations::open_named(registry, target).await {
        Ok(t) => t,
        Err(e) => {
            row.error = Some(e.to_string());
            return row;
        }
    };
    row.location = Some(opened.location());
    match tokio::time::timeout(readiness_limit, opened.readiness()).await {
        Ok(Ok(readiness)) => {
            row.ready = readiness.writable;
            row.readiness = Some(readiness);
        }
        Ok(Err(e)) => row.error = Some(e.to_string()),
        Err(_) => row.error = Some(format!("no answer within {} s", readiness_limit.as_secs())),
    }
    row
}

fn human_free(bytes: Option<u64>) -> String {
    match bytes {
        Some(b) => format!("{:.1} GiB free", b as f64 / (1024.0 * 1024.0 * 1024.0)),
        None => "free space unknown".to_owned(),
    }
}

async fn list(ctx: &Context, json: bool) -> Result<()> {
    let registry = Arc::new(ctx.registry()?);
    let kinds = kind_rows(&registry);
    // Every target is checked at once, each under its own time limit.
    let mut checks = tokio::task::JoinSet::new();
    let limit = ctx.config.readiness_timeout();
    for (index, target) in ctx.config.named_targets.iter().cloned().enumerate() {
        let registry = Arc::clone(&registry);
        checks.spawn(async move { (index, check(&registry, &target, limit).await) });
    }
    let mut targets: Vec<(usize, TargetRow)> = checks.join_all().await;
    targets.sort_by_key(|(index, _)| *index);
    let targets: Vec<TargetRow> = targets.into_iter().map(|(_, row)| row).collect();
    if json {
        #[derive(Serialize)]
        struct Listing {
            kinds: Vec<KindRow>,
            targets: Vec<TargetRow>,
        }
        return print_json(&Listing { kinds, targets });
    }
    println!("Target kinds:");
    for k in &kinds {
        let schemes = if k.schemes.is_empty() {
            "(config only)".to_owned()
        } else {
            k.schemes
                .iter()
                .map(|s| format!("{s}://"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let origin = match (&k.plugin_file, k.abi_version) {
            (Some(file), Some(abi)) => {
                let replaces = if k.replaces_builtin {
                    ", replaces the built-in kind"
                } else {
                    ""
                };
                format!("plugin {file} (ABI {abi}{replaces})")
            }
            _ => k.origin.clone(),
        };
        println!("  {:<12} {:<24} {origin}", k.kind, schemes);
        println!("  {:<12} {}", "", k.description);
    }
    println!();
    if targets.is_empty() {
        println!("No targets configured ([[target]] entries in the config file).");
        return Ok(());
    }
    println!("Configured targets:");
    for t in &targets {
        let state = match (&t.readiness, &t.error) {
            (Some(r), _) if r.writable => format!(
                "ready, {}{}",
                human_free(r.free_bytes),
                r.detail
                    .as_deref()
                    .map(|d| format!("; {d}"))
                    .unwrap_or_default()
            ),
            (Some(_), _) => "reachable, not writable".to_owned(),
            (None, Some(e)) => format!("NOT READY: {e}"),
            (None, None) => "unknown".to_owned(),
        };
        println!(
            "  {:<12} {:<10} {}",
            t.name,
            t.kind,
            t.location.as_deref().unwrap_or("-")
        );
        println!("  {:<12} {state}", "");
    }
    Ok(())
}

async fn conformance(ctx: &Context, args: TargetsTestArgs) -> Result<()> {
    let registry = ctx.registry()?;
    let opened = sstore_core::locations::open(&registry, &ctx.config, &args.target).await?;
    let target: Arc<dyn Target> = opened.target;
    let options = sstore_conformance::KitOptions {
        large_object_bytes: args.large_mib * 1024 * 1024,
        many_keys: args.keys,
        ..sstore_conformance::KitOptions::default()
    };
    eprintln!(
        "Running the conformance kit against {} (objects under a fresh sstore-conformance-* prefix)...",
        target.location()
    );
    let report = sstore_conformance::run(target, &options).await;
    println!("{report}");
    if !report.passed() {
        bail!(
            "{} does not conform: see the failed checks above",
            report.location
        );
    }
    Ok(())
}
