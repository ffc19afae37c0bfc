//! `cargo xtask bench-mssql [--sets N]`: backup and `masterkey update` of one store of N
//! credential sets (default 100,000) on the SQL Server, Azure SQL or Babelfish that
//! `SSTORE_TEST_MSSQL_URL` names (password in `SSTORE_MSSQL_PASSWORD`), against the same store
//! in SQLite, in sets per second. Runs the release `sstore` binary; the database it uses is
//! `<DATABASE>_bench`, replaced on every run (the login needs dbcreator the first time).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::{cargo, root, run};

const PASSPHRASE: &str = "Test-Passphrase-42";
const NEW_PASSPHRASE: &str = "Bench-Rotated-Pass-9";

pub fn run_bench(args: &[String]) -> Result<(), String> {
    let mut sets = 100_000usize;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match (flag.as_str(), it.next()) {
            ("--sets", Some(v)) => {
                sets = v
                    .parse()
                    .map_err(|_| format!("bench-mssql: bad --sets {v}"))?
            }
            _ => return Err(format!("bench-mssql: unexpected argument {flag}")),
        }
    }
    let Ok(url) = std::env::var("SSTORE_TEST_MSSQL_URL") else {
        return Err("bench-mssql: set SSTORE_TEST_MSSQL_URL (mssql://USER@HOST[:PORT]/DATABASE?...) and SSTORE_MSSQL_PASSWORD; no SQL Server can run on this machine".into());
    };
    let bench_url = with_database_suffix(&url, "_bench")?;
    run(
        "cargo build --release -p sstore-cli",
        cargo().args(["build", "--release", "--quiet", "-p", "sstore-cli"]),
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let sstore = target
        .join("release")
        .join(format!("sstore{}", std::env::consts::EXE_SUFFIX));
    let work = target.join("bench-mssql");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let file = work.join("store.db");
    // 10 sets per application, as populate makes them (every tenth application has one).
    let apps = (sets as f64 / 9.1).ceil() as usize;
    let per_app = 10usize;
    run(
        "populate the SQLite store",
        cargo()
            .args([
                "run",
                "--release",
                "--quiet",
                "-p",
                "sstore-tests",
                "--example",
                "populate",
                "--",
            ])
            .arg(&file)
            .arg(apps.to_string())
            .arg(per_app.to_string()),
    )?;
    let count = count_sets(&sstore, file.to_str().unwrap_or_default())?;
    eprintln!("==> {count} credential sets");

    let sqlite = file.to_string_lossy().into_owned();
    let sqlite_backup = timed(
        &sstore,
        &sqlite,
        &["backup", "--directory", &dir(&work, "b-sqlite")],
        &[],
    )?;
    // Load the same store into SQL Server from that backup (replacing an earlier run's).
    let load = timed(
        &sstore,
        &sqlite,
        &[
            "restore",
            "--directory",
            &dir(&work, "b-sqlite"),
            "--method",
            "new",
            "--force",
            "--new-store",
            &bench_url,
        ],
        &[],
    )?;
    let server_backup = timed(
        &sstore,
        &bench_url,
        &["backup", "--directory", &dir(&work, "b-server")],
        &[],
    )?;
    let rotate = [("SSTORE_NEW_PASSPHRASE", NEW_PASSPHRASE)];
    let sqlite_update = timed(&sstore, &sqlite, &["masterkey", "update"], &rotate)?;
    let server_update = timed(&sstore, &bench_url, &["masterkey", "update"], &rotate)?;

    let rate = |secs: f64| count as f64 / secs;
    println!(
        "\n{count} credential sets; sets per second (wall time of the whole command, Argon2id included)"
    );
    println!("{:<24} {:>12} {:>12}", "", "SQLite", "SQL Server");
    println!(
        "{:<24} {:>12.0} {:>12.0}",
        "backup",
        rate(sqlite_backup),
        rate(server_backup)
    );
    println!(
        "{:<24} {:>12.0} {:>12.0}",
        "masterkey update",
        rate(sqlite_update),
        rate(server_update)
    );
    println!(
        "{:<24} {:>12} {:>12.0}",
        "load (restore --new)",
        "-",
        rate(load)
    );
    println!("\nThe SQL Server store is {bench_url}; drop its database when done.");
    Ok(())
}

fn dir(work: &Path, name: &str) -> String {
    work.join(name).to_string_lossy().into_owned()
}

fn sstore_cmd(sstore: &Path, store: &str, passphrase: &str) -> Command {
    let mut cmd = Command::new(sstore);
    cmd.env_remove("SSTORE_CONFIG")
        .env_remove("SSTORE_BACKUP_PASSPHRASE")
        .env("SSTORE_STORE", store)
        .env("SSTORE_PASSPHRASE", passphrase);
    cmd
}

/// Runs one command and returns its wall time in seconds; the passphrase follows an update.
fn timed(sstore: &Path, store: &str, args: &[&str], env: &[(&str, &str)]) -> Result<f64, String> {
    let passphrase = current_passphrase(sstore, store);
    let mut cmd = sstore_cmd(sstore, store, &passphrase);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    run(&format!("sstore {}", args.join(" ")), &mut cmd)?;
    Ok(started.elapsed().as_secs_f64())
}

fn current_passphrase(sstore: &Path, store: &str) -> String {
    let ok = sstore_cmd(sstore, store, PASSPHRASE)
        .args(["key", "refresh"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        PASSPHRASE.into()
    } else {
        NEW_PASSPHRASE.into()
    }
}

fn count_sets(sstore: &Path, store: &str) -> Result<u64, String> {
    let out = sstore_cmd(sstore, store, PASSPHRASE)
        .args(["store", "info", "--json"])
        .output()
        .map_err(|e| format!("sstore store info: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("\"credential_sets\":"))
        .and_then(|v| v.trim().trim_end_matches(',').parse().ok())
        .ok_or_else(|| format!("sstore store info: no count in {text}"))
}

/// The URL with `suffix` appended to its database name.
fn with_database_suffix(url: &str, suffix: &str) -> Result<String, String> {
    let (main, query) = url
        .split_once('?')
        .map_or((url, None), |(m, q)| (m, Some(q)));
    let slash = main
        .rfind('/')
        .filter(|i| *i > "mssql://".len())
        .ok_or("SSTORE_TEST_MSSQL_URL names no database")?;
    let mut out = format!("{}{suffix}", main.trim_end_matches('/'));
    if slash == main.len() - 1 {
        return Err("SSTORE_TEST_MSSQL_URL names no database".into());
    }
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}
