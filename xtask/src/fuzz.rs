//! `cargo xtask fuzz [--seconds N] [--sanitizer address|none] [TARGET...]`: runs the cargo-fuzz
//! targets under `fuzz/` (libFuzzer, with AddressSanitizer unless `--sanitizer none`, which
//! `cargo xtask ci` uses to build in half the time) for N seconds each (default 60), on their corpora under
//! `fuzz/corpus/TARGET` (kept in the repo; what a run adds stays there). Installs cargo-fuzz
//! when missing. Nightly-only compiler flags are enabled with RUSTC_BOOTSTRAP on the stable
//! toolchain. A crash, a timeout (10 s for one input) or more than 2 GiB of memory fails the
//! run, with the reproducer under `fuzz/artifacts/`. Ends with one line per target: executions
//! and corpus size.

use std::process::{Command, Stdio};

pub const TARGETS: &[&str] = &[
    "stream",
    "header",
    "records",
    "config",
    "location",
    "keys",
    "plugin_abi",
    "request",
];

pub fn command(root: &std::path::Path, args: &[String]) -> Result<(), String> {
    let mut seconds = 60u64;
    let mut sanitizer = "address".to_owned();
    let mut targets: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--seconds" {
            seconds = it
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or("fuzz: --seconds needs a whole number")?;
        } else if arg == "--sanitizer" {
            sanitizer = it
                .next()
                .filter(|s| ["address", "none"].contains(&s.as_str()))
                .ok_or("fuzz: --sanitizer takes address or none")?
                .clone();
        } else if TARGETS.contains(&arg.as_str()) {
            targets.push(arg.clone());
        } else {
            return Err(format!(
                "fuzz: unknown target {arg} (targets: {})",
                TARGETS.join(", ")
            ));
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| (*t).to_owned()).collect();
    }
    ensure_cargo_fuzz()?;
    let fuzz_dir = root.join("fuzz");
    let mut lines = Vec::new();
    for target in &targets {
        eprintln!("==> fuzz {target} for {seconds} s");
        let corpus = fuzz_dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
        let out = Command::new("cargo")
            .current_dir(&fuzz_dir)
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "run", "--sanitizer", &sanitizer, target])
            .arg(&corpus)
            .args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-timeout=10",
                "-rss_limit_mb=2048",
                "-print_final_stats=1",
            ])
            .stdout(Stdio::inherit())
            .output()
            .map_err(|e| format!("fuzz: cannot run cargo fuzz: {e}"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(format!(
                "fuzz target {target} failed ({}); reproducer under fuzz/artifacts/{target}/:\n{}",
                out.status,
                tail.join("\n")
            ));
        }
        let runs = stat(&log, "stat::number_of_executed_units:");
        let files = std::fs::read_dir(&corpus).map(|d| d.count()).unwrap_or(0);
        lines.push(format!(
            "fuzz {target}: {runs} executions in {seconds} s, corpus {files} inputs, no crash"
        ));
    }
    for line in &lines {
        println!("{line}");
    }
    Ok(())
}

/// The number after `key` in libFuzzer's final statistics.
fn stat(log: &str, key: &str) -> String {
    log.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| "?".into())
}

fn ensure_cargo_fuzz() -> Result<(), String> {
    let present = Command::new("cargo")
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    eprintln!("==> installing cargo-fuzz (cargo install, a few minutes)");
    let status = Command::new("cargo")
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .map_err(|e| format!("cargo install cargo-fuzz: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo install cargo-fuzz failed ({status})"))
    }
}
