//! `cargo xtask soak --minutes N [--seed S]`: the randomized kill soak (`cli/tests/soak.rs`)
//! for N minutes; `cargo xtask ci` runs a short one (30 kills). Either way the soak ends with
//! one line of counts (kills, jobs interrupted, backups verified, `lost: 0` or what was lost),
//! printed again here; anything lost fails the run.

use std::io::BufRead;
use std::process::{Command, Stdio};

/// How long the soak runs.
pub enum Length {
    Kills(u64),
    Minutes(u64),
}

/// Parses `--minutes N [--seed S]` and runs the soak.
pub fn command(args: &[String]) -> Result<(), String> {
    let mut minutes = None;
    let mut seed = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("soak: {flag} needs a value"))?;
        let number = value
            .parse::<u64>()
            .map_err(|_| format!("soak: {flag} takes a whole number, not {value}"))?;
        match flag.as_str() {
            "--minutes" => minutes = Some(number),
            "--seed" => seed = Some(number),
            _ => return Err(format!("soak: unexpected argument {flag}")),
        }
    }
    let minutes = minutes.ok_or("soak: give --minutes N")?;
    run(Length::Minutes(minutes), seed)
}

/// Runs the soak test, passing its output through; fails unless it ends with `lost: 0`.
pub fn run(length: Length, seed: Option<u64>) -> Result<(), String> {
    let mut cmd = super::ci_cargo();
    cmd.args([
        "test",
        "-p",
        "sstore-cli",
        "--test",
        "soak",
        "--",
        "--ignored",
        "--exact",
        "kill_soak",
        "--nocapture",
    ]);
    match length {
        Length::Kills(n) => cmd.env("SSTORE_SOAK_KILLS", n.to_string()),
        Length::Minutes(m) => cmd.env("SSTORE_SOAK_MINUTES", m.to_string()),
    };
    if let Some(seed) = seed {
        cmd.env("SSTORE_SOAK_SEED", seed.to_string());
    }
    let line = run_capturing(&mut cmd, "soak: ")?;
    match line {
        Some(line) if line.ends_with("lost: 0") => {
            eprintln!("==> {line}");
            Ok(())
        }
        Some(line) => Err(line),
        None => Err("the soak printed no closing line".into()),
    }
}

/// Runs `cmd`, passing its output through, and returns the last stdout line starting with
/// `prefix`; fails if the command fails.
fn run_capturing(cmd: &mut Command, prefix: &str) -> Result<Option<String>, String> {
    eprintln!("==> kill soak");
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("soak: cannot start cargo test: {e}"))?;
    let mut last = None;
    if let Some(stdout) = child.stdout.take() {
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.map_err(|e| e.to_string())?;
            println!("{line}");
            if line.starts_with(prefix) {
                last = Some(line);
            }
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!(
            "the soak failed ({status}): {}",
            last.unwrap_or_default()
        ));
    }
    Ok(last)
}
