//! `cargo xtask bench-smb [--size-mib N] [--rounds R]`: the SMB target against `smbclient`
//! on the same loopback shares, in the same run.
//!
//! Starts the Samba services if needed, builds `targets/smb/examples/smb_bench.rs` in release
//! mode, writes a staged file of N MiB (default 1024, random so nothing compresses), then for
//! each server (signing only, encryption required) runs R rounds (default 3) of: smbclient
//! put, sstore put (`put_file`), smbclient get, sstore get (both gets into /dev/null: the
//! transfer is measured, not this machine's disk). Each is a separate process, timed
//! from start to exit, its peak RSS sampled from `/proc/PID/status` (VmHWM). Prints the
//! median MiB/s and the largest peak RSS of each, and sstore's ratio to smbclient.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::services;

pub const USAGE: &str = "bench-smb [--size-mib N] [--rounds R]";

struct Run {
    secs: f64,
    peak_kib: u64,
}

/// Runs `cmd` to completion, timing it and sampling its peak RSS.
fn measure(what: &str, cmd: &mut Command) -> Result<Run, String> {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_kib = peak_kib.max(kib);
        }
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break status,
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let secs = started.elapsed().as_secs_f64();
    if !status.success() {
        let mut err = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            use std::io::Read;
            let _ = stderr.read_to_string(&mut err);
        }
        return Err(format!("{what} failed ({status}): {err}"));
    }
    Ok(Run { secs, peak_kib })
}

/// Reads `KEY=VALUE` lines.
fn env_value(text: &str, key: &str) -> Result<String, String> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
        .ok_or_else(|| format!("the Samba service published no {key}"))
}

/// A file of `size` random bytes at `path` (kept between runs when the size matches).
fn staged_file(path: &Path, size: u64) -> Result<(), String> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == size) {
        return Ok(());
    }
    eprintln!("==> writing a staged file of {} MiB", size >> 20);
    let out = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let status = Command::new("head")
        .args(["-c", &size.to_string(), "/dev/urandom"])
        .stdout(out)
        .status()
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err("head -c /dev/urandom failed".into())
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

pub fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let (mut size_mib, mut rounds) = (1024u64, 3usize);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--size-mib" => size_mib = value.parse().map_err(|_| "bad --size-mib")?,
            "--rounds" => rounds = value.parse().map_err(|_| "bad --rounds")?,
            _ => return Err(format!("usage: cargo xtask {USAGE}")),
        }
    }
    if rounds == 0 || size_mib == 0 {
        return Err("--size-mib and --rounds must be at least 1".into());
    }
    services::command(root, &["up".into(), "samba".into()])?;
    let env = std::fs::read_to_string(root.join(".services/samba/env"))
        .map_err(|e| format!("the Samba service's env file: {e}"))?;
    let user = env_value(&env, "SSTORE_TEST_SMB_USER")?;
    let password = env_value(&env, "SSTORE_TEST_SMB_PASSWORD")?;
    let share = env_value(&env, "SSTORE_TEST_SMB_SHARE")?;
    let servers = [
        ("signing only", env_value(&env, "SSTORE_TEST_SMB_PORT")?),
        (
            "encryption required",
            env_value(&env, "SSTORE_TEST_SMB_ENCRYPTED_PORT")?,
        ),
    ];

    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "sstore-target-smb",
            "--example",
            "smb_bench",
        ])
        .status()
        .map_err(|e| format!("cargo build: {e}"))?;
    if !status.success() {
        return Err("building the smb_bench example failed".into());
    }
    let bench = root.join("target/release/examples/smb_bench");
    let work: PathBuf = root.join("target/bench-smb");
    services::create_private_dir(&work)?;
    let size = size_mib << 20;
    let staged = work.join("staged.bin");
    staged_file(&staged, size)?;
    let auth = work.join("smbclient.auth");
    let _ = std::fs::remove_file(&auth);
    services::write_private(
        &auth,
        &format!("username = {user}\npassword = {password}\n"),
    )?;

    println!(
        "SMB loopback benchmark: {size_mib} MiB, {rounds} round(s); median MiB/s, largest peak RSS"
    );
    println!(
        "{:<20} {:<10} {:>10} {:>10} {:>12} {:>8}",
        "server", "direction", "smbclient", "sstore", "sstore RSS", "ratio"
    );
    for (label, port) in &servers {
        let url = format!("smb://{user}@127.0.0.1:{port}/{share}/bench-smb");
        let smbclient = |command: &str| {
            let mut cmd = Command::new("smbclient");
            cmd.current_dir(&work)
                .args(["-p", port, &format!("//127.0.0.1/{share}"), "-A"])
                .arg(&auth)
                .args(["-c", command]);
            cmd
        };
        let ours = |args: &[&str]| {
            let mut cmd = Command::new(&bench);
            cmd.current_dir(&work)
                .env("SSTORE_SMB_PASSWORD", &password)
                .arg(args[0])
                .arg(&url)
                .args(&args[1..]);
            cmd
        };
        let mut results: [(Vec<f64>, u64); 4] = Default::default();
        for round in 1..=rounds {
            eprintln!("==> {label}: round {round}/{rounds}");
            let mut steps: [(&str, Command); 4] = [
                (
                    "smbclient put",
                    smbclient("put staged.bin bench-smbclient.bin"),
                ),
                ("sstore put", ours(&["put", "staged.bin", "bench.bin"])),
                (
                    "smbclient get",
                    smbclient("get bench-smbclient.bin /dev/null"),
                ),
                ("sstore get", ours(&["get", "bench.bin", "/dev/null"])),
            ];
            // Alternate who goes first, and start each from clean page cache writeback, so
            // neither pays for the other's dirty pages.
            let order: [usize; 4] = if round % 2 == 1 {
                [0, 1, 2, 3]
            } else {
                [1, 0, 3, 2]
            };
            let mut measured: [Option<Run>; 4] = Default::default();
            for i in order {
                let _ = Command::new("sync").status();
                let (what, cmd) = &mut steps[i];
                measured[i] = Some(measure(what, cmd)?);
            }
            let runs = measured.map(|r| {
                r.unwrap_or(Run {
                    secs: f64::INFINITY,
                    peak_kib: 0,
                })
            });
            for (slot, run) in results.iter_mut().zip(runs) {
                slot.0.push(size as f64 / 1_048_576.0 / run.secs);
                slot.1 = slot.1.max(run.peak_kib);
            }
        }
        let [sc_put, our_put, sc_get, our_get] = results;
        for (direction, sc, ours) in [("put", sc_put, our_put), ("get", sc_get, our_get)] {
            let (sc_speed, our_speed) = (median(sc.0), median(ours.0));
            println!(
                "{:<20} {:<10} {:>10.0} {:>10.0} {:>9} MiB {:>7.2}x   (smbclient RSS {} MiB)",
                label,
                direction,
                sc_speed,
                our_speed,
                ours.1 / 1024,
                our_speed / sc_speed,
                sc.1 / 1024
            );
        }
        let _ = smbclient("del bench-smbclient.bin; deltree bench-smb")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let _ = std::fs::remove_file(&auth);
    Ok(())
}
