//! The job benchmark of `cargo xtask bench`: sstore's backup, restore, verify and masterkey
//! update against reference tools, in one run, on two stores that it makes itself:
//!
//! - the *sets* store: N credential sets (default 1,000,000) of one application with two
//!   fields (a user name and a 96-character secret), about 335 MiB and compressible (zstd
//!   takes it to about 55%);
//! - the *payload* store: about M MiB (default 1024) of incompressible values (fewer sets of
//!   64 KiB each).
//!
//! Both are made by the `make_store` example and cached under `target/bench-job/stores/`,
//! keyed by their parameters, so a second run reuses them. Every command is its own process
//! under GNU time (`/usr/bin/time -f '%e %M'`), sstore and the references alternate (who goes
//! first swaps every round), each destination is cleared and `sync` run before each command,
//! and the table shows medians over R rounds and the largest peak RSS of the rounds:
//!
//! - `sstore backup --directory DIR --recipient R` (to an sstore recipient, as age writes to
//!   its own) against `restic init` + `restic backup` of the store file
//!   (goal: at least 2x faster, ratio <= 0.50) and against `age -R RECIPIENTS -o FILE` + `sync
//!   FILE` (goal: ratio <= 1.25);
//! - `sstore restore --method new --identity FILE` against `age -d -o FILE` (goal: ratio <= 1.5);
//! - `sstore verify --identity FILE` against `age -d -o /dev/null` (goal: ratio <= 1.5);
//! - the peak RSS of backup, restore and verify (goal: Argon2id's 64 MiB + 32 MiB);
//! - `sstore masterkey update` on a fresh copy of the sets store (goal: 200,000 sets/s).
//!
//! Secrets reach the tools through the environment or owner-only files only (SSTORE_PASSPHRASE,
//! SSTORE_NEW_PASSPHRASE, RESTIC_PASSWORD_FILE, age's and sstore's identity files),
//! and every command runs with a private HOME and XDG folders under `target/bench-job/home`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bench_util::{self, Timed, median, timed};
use crate::services;

/// The secret of each set of the sets store: with the user name, the target id and SQLite's
/// own overhead, about 351 bytes of store per set (1,000,000 sets: 335 MiB).
const SETS_VALUE_BYTES: u64 = 96;
/// The secret of each set of the payload store.
const PAYLOAD_VALUE_BYTES: u64 = 64 * 1024;

/// Goals from issue 17.
const GOAL_VS_RESTIC: f64 = 0.5;
const GOAL_VS_AGE_BACKUP: f64 = 1.25;
const GOAL_VS_AGE_DECRYPT: f64 = 1.5;
const GOAL_RSS_MIB: f64 = 64.0 + 32.0;
const GOAL_SETS_PER_S: f64 = 200_000.0;

pub struct Options {
    pub sets: u64,
    pub payload_mib: u64,
    pub rounds: usize,
}

/// One store the benchmark runs on.
struct Store {
    /// "sets" or "payload", the prefix of its rows.
    label: &'static str,
    path: PathBuf,
    passphrase: String,
    sets: u64,
    bytes: u64,
}

/// What every command runs with.
struct Bench {
    sstore: PathBuf,
    base: PathBuf,
    work: PathBuf,
    home: PathBuf,
    identity: PathBuf,
    recipients: PathBuf,
    restic_password: PathBuf,
    /// The sstore identity that opens the backups, and its recipient: the backup is written
    /// to a recipient, as age's is, so neither pays for a passphrase's key derivation.
    sstore_identity: PathBuf,
    sstore_recipient: String,
}

/// One measure: the samples of both sides, one per round.
struct Measure {
    name: String,
    sstore: Vec<Timed>,
    reference: Vec<Timed>,
}

/// A row of the table.
struct Row {
    measure: String,
    ours: String,
    theirs: String,
    ratio: String,
    goal: String,
    met: Option<bool>,
    ours_rss: String,
    theirs_rss: String,
}

pub fn run(root: &Path, options: &Options) -> Result<(), String> {
    let started = std::time::Instant::now();
    services::apt_install(&["age", "restic", "time"])?;
    crate::run(
        "build sstore and make_store (release)",
        crate::cargo().args([
            "build",
            "--release",
            "-p",
            "sstore-cli",
            "--bin",
            "sstore",
            "--example",
            "make_store",
        ]),
    )?;
    let release = bench_util::release_dir(root);
    let base = crate::target_dir().join("bench-job");
    let bench = prepare(&base, release.join("sstore"))?;
    let machine = machine_line(&bench.work);
    let load_before = load_average();

    let stores = [
        store(
            &bench,
            &release,
            "sets",
            options.sets.max(1),
            SETS_VALUE_BYTES,
        )?,
        store(
            &bench,
            &release,
            "payload",
            (options.payload_mib.max(1) * 1024 * 1024).div_ceil(PAYLOAD_VALUE_BYTES),
            PAYLOAD_VALUE_BYTES,
        )?,
    ];
    let mut rows = Vec::new();
    let outcome = (|| -> Result<(), String> {
        for store in &stores {
            rows.extend(measure_store(&bench, store, options.rounds)?);
        }
        rows.push(masterkey_update(&bench, &stores[0], options.rounds)?);
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&bench.work);
    outcome?;

    println!();
    println!(
        "sstore job benchmark, {}; {machine}",
        command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
    );
    println!(
        "{}; age {}; {}",
        command_line(&bench.sstore.to_string_lossy(), &["--version"]),
        command_line("age", &["--version"]).trim_start_matches('v'),
        command_line("restic", &["version"])
            .split(" compiled")
            .next()
            .unwrap_or_default()
    );
    for store in &stores {
        println!(
            "{:<7} store: {} credential sets, {} MiB ({})",
            store.label,
            store.sets,
            mib(store.bytes),
            if store.label == "sets" {
                "one application, two fields each; compressible"
            } else {
                "64 KiB incompressible values"
            }
        );
    }
    println!(
        "{} round(s), each command its own process under GNU time, sstore and the reference \
         alternating; medians of the wall time; peak RSS is the largest of the rounds; warm page cache",
        options.rounds
    );
    println!(
        "load average {load_before} before, {} after; {:.0} s in all",
        load_average(),
        started.elapsed().as_secs_f64()
    );
    print_table(&rows);
    Ok(())
}

/// The private folders, the age identity and the restic password.
fn prepare(base: &Path, sstore: PathBuf) -> Result<Bench, String> {
    services::create_private_dir(base)?;
    let work = base.join("work");
    let home = base.join("home");
    for dir in [&work, &home] {
        let _ = std::fs::remove_dir_all(dir);
        services::create_private_dir(dir)?;
    }
    for sub in ["config", "data", "cache"] {
        services::create_private_dir(&home.join(sub))?;
    }
    let identity = base.join("age-identity.txt");
    if !identity.exists() {
        services::run_quiet(
            "age-keygen",
            Command::new("age-keygen").arg("-o").arg(&identity),
        )?;
    }
    let recipient = services::run_quiet(
        "age-keygen -y",
        Command::new("age-keygen").arg("-y").arg(&identity),
    )?;
    let recipients = base.join("age-recipients.txt");
    services::write_private(&recipients, &recipient)?;
    let restic_password = base.join("restic-password.txt");
    services::stored_secret(&restic_password, 32)?;
    let sstore_identity = base.join("sstore-identity.txt");
    if !sstore_identity.exists() {
        services::run_quiet(
            "sstore backup-key generate",
            Command::new(&sstore)
                .args(["backup-key", "generate", "--out"])
                .arg(&sstore_identity),
        )?;
    }
    let shown = services::run_quiet(
        "sstore backup-key show",
        Command::new(&sstore)
            .args(["backup-key", "show"])
            .arg(&sstore_identity),
    )?;
    let sstore_recipient = shown
        .split_whitespace()
        .find(|word| word.starts_with("sstore1"))
        .ok_or_else(|| format!("`sstore backup-key show` printed no recipient: {shown}"))?
        .to_owned();
    Ok(Bench {
        sstore,
        base: base.to_path_buf(),
        work,
        home,
        identity,
        recipients,
        restic_password,
        sstore_identity,
        sstore_recipient,
    })
}

/// The cached store for these parameters, made when missing.
fn store(
    bench: &Bench,
    release: &Path,
    label: &'static str,
    sets: u64,
    value_bytes: u64,
) -> Result<Store, String> {
    let dir = bench.base.join("stores");
    services::create_private_dir(&dir)?;
    let name = format!("sets-{sets}-value-{value_bytes}");
    let path = dir.join(format!("{name}.db"));
    let pass_file = dir.join(format!("{name}.passphrase"));
    if !path.exists() || !pass_file.exists() {
        let passphrase = crate::generate_passphrase();
        let partial = dir.join(format!("{name}.partial"));
        for stale in [&partial, &path, &pass_file] {
            let _ = std::fs::remove_file(stale);
        }
        let mut make = Command::new(release.join("examples/make_store"));
        bench.env(&mut make);
        make.env("SSTORE_PASSPHRASE", &passphrase)
            .arg("--out")
            .arg(&partial)
            .args([
                "--sets",
                &sets.to_string(),
                "--value-bytes",
                &value_bytes.to_string(),
            ]);
        let made = std::time::Instant::now();
        crate::run(
            &format!("make the {label} store ({sets} sets of {value_bytes}-byte values)"),
            &mut make,
        )?;
        eprintln!("    made in {:.0} s", made.elapsed().as_secs_f64());
        services::write_private(&pass_file, &passphrase)?;
        std::fs::rename(&partial, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    } else {
        eprintln!("==> reusing the {label} store {}", path.display());
    }
    let passphrase = std::fs::read_to_string(&pass_file)
        .map_err(|e| format!("{}: {e}", pass_file.display()))?
        .trim()
        .to_owned();
    let bytes = std::fs::metadata(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    Ok(Store {
        label,
        path,
        passphrase,
        sets,
        bytes,
    })
}

impl Bench {
    /// The private HOME and XDG folders, and none of the caller's sstore or restic settings.
    fn env(&self, cmd: &mut Command) {
        cmd.env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join("config"))
            .env("XDG_DATA_HOME", self.home.join("data"))
            .env("XDG_CACHE_HOME", self.home.join("cache"));
        for key in [
            "SSTORE_CONFIG",
            "SSTORE_STORE",
            "SSTORE_PASSPHRASE",
            "SSTORE_BACKUP_PASSPHRASE",
            "SSTORE_NEW_PASSPHRASE",
            "SSTORE_IDENTITY_FILE",
            "RESTIC_REPOSITORY",
            "RESTIC_REPOSITORY_FILE",
            "RESTIC_PASSWORD",
            "RESTIC_PASSWORD_COMMAND",
            "RESTIC_CACHE_DIR",
        ] {
            cmd.env_remove(key);
        }
    }

    /// `sstore ARGS` on `store`, its passphrase in the environment and the bench's identity
    /// named (`backup` gets `--recipient`, `restore` and `verify` `--identity`).
    fn sstore(&self, store: &Path, passphrase: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.sstore);
        self.env(&mut cmd);
        cmd.env("SSTORE_STORE", store)
            .env("SSTORE_PASSPHRASE", passphrase)
            .args(args);
        match args.first() {
            Some(&"backup") => {
                cmd.arg("--recipient").arg(&self.sstore_recipient);
            }
            Some(&"restore" | &"verify") => {
                cmd.arg("--identity").arg(&self.sstore_identity);
            }
            _ => {}
        }
        cmd
    }

    fn restic(&self, repo: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("restic");
        self.env(&mut cmd);
        cmd.env("RESTIC_PASSWORD_FILE", &self.restic_password)
            .arg("--repo")
            .arg(repo)
            .args(args);
        cmd
    }

    fn age(&self) -> Command {
        let mut cmd = Command::new("age");
        self.env(&mut cmd);
        cmd
    }
}

/// Removes a file or folder, then flushes the disk so no earlier run's writeback lands on the
/// next measured one.
fn clear(path: &Path) {
    let _ = std::fs::remove_dir_all(path);
    let _ = std::fs::remove_file(path);
    let _ = Command::new("sync").status();
}

/// Runs the steps of one round in turn, forward in odd rounds and backward in even ones.
fn alternate(
    round: usize,
    steps: &mut [&mut dyn FnMut() -> Result<(), String>],
) -> Result<(), String> {
    let n = steps.len();
    for i in 0..n {
        let k = if round % 2 == 1 { i } else { n - 1 - i };
        (steps[k])()?;
    }
    Ok(())
}

/// Backup, restore and verify of one store against restic and age.
fn measure_store(bench: &Bench, store: &Store, rounds: usize) -> Result<Vec<Row>, String> {
    let work = &bench.work;
    let backups = work.join("sstore-backups");
    let repo = work.join("restic-repo");
    let encrypted = work.join("store.age");
    let store_arg = store.path.to_string_lossy().into_owned();
    let backups_arg = backups.to_string_lossy().into_owned();
    let label = store.label;
    let report = |what: &str, t: &Timed| {
        eprintln!(
            "    {label:<7} {what:<28} {:>8.2} s {:>6.0} MiB peak RSS",
            t.seconds, t.peak_rss_mib
        )
    };

    // Backup: sstore, restic (init + backup), age + sync.
    let (mut ours, mut vs_restic, mut vs_age) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        eprintln!("==> {label} store, backup, round {round}/{rounds}");
        alternate(
            round,
            &mut [
                &mut || {
                    clear(&backups);
                    let t = timed(&bench.sstore(
                        &store.path,
                        &store.passphrase,
                        &["backup", "--directory", &backups_arg],
                    ))?;
                    report("sstore backup", &t);
                    ours.push(t);
                    Ok(())
                },
                &mut || {
                    clear(&repo);
                    clear(&bench.home.join("cache/restic"));
                    let init = timed(&bench.restic(&repo, &["init", "--quiet"]))?;
                    let backup = timed(&bench.restic(&repo, &["backup", "--quiet", &store_arg]))?;
                    let t = init.then(backup);
                    report("restic init + backup", &t);
                    vs_restic.push(t);
                    Ok(())
                },
                &mut || {
                    clear(&encrypted);
                    let mut age = bench.age();
                    age.arg("-R")
                        .arg(&bench.recipients)
                        .arg("-o")
                        .arg(&encrypted)
                        .arg(&store.path);
                    let mut sync = Command::new("sync");
                    sync.arg(&encrypted);
                    let t = timed(&age)?.then(timed(&sync)?);
                    report("age -R + sync", &t);
                    vs_age.push(t);
                    Ok(())
                },
            ],
        )?;
    }
    let backup_ours = ours;

    // Restore: sstore restore --method new against age -d to a file. The newest backup and
    // the age file of the last round are the inputs.
    let restored = work.join("restored.db");
    let restored_age = work.join("restored-age.db");
    let restored_arg = restored.to_string_lossy().into_owned();
    let (mut restore_ours, mut restore_theirs) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        eprintln!("==> {label} store, restore, round {round}/{rounds}");
        alternate(
            round,
            &mut [
                &mut || {
                    clear(&restored);
                    let t = timed(&bench.sstore(
                        &store.path,
                        &store.passphrase,
                        &[
                            "restore",
                            "--directory",
                            &backups_arg,
                            "--method",
                            "new",
                            "--new-store",
                            &restored_arg,
                        ],
                    ))?;
                    report("sstore restore --method new", &t);
                    restore_ours.push(t);
                    clear(&restored);
                    Ok(())
                },
                &mut || {
                    clear(&restored_age);
                    let mut age = bench.age();
                    age.arg("-d")
                        .arg("-i")
                        .arg(&bench.identity)
                        .arg("-o")
                        .arg(&restored_age)
                        .arg(&encrypted);
                    let t = timed(&age)?;
                    report("age -d -o FILE", &t);
                    restore_theirs.push(t);
                    same_size(&store.path, &restored_age)?;
                    clear(&restored_age);
                    Ok(())
                },
            ],
        )?;
    }

    // Verify: sstore verify against age -d to /dev/null.
    let (mut verify_ours, mut verify_theirs) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        eprintln!("==> {label} store, verify, round {round}/{rounds}");
        alternate(
            round,
            &mut [
                &mut || {
                    let _ = Command::new("sync").status();
                    let t = timed(&bench.sstore(
                        &store.path,
                        &store.passphrase,
                        &["verify", "--directory", &backups_arg],
                    ))?;
                    report("sstore verify", &t);
                    verify_ours.push(t);
                    Ok(())
                },
                &mut || {
                    let _ = Command::new("sync").status();
                    let mut age = bench.age();
                    age.arg("-d")
                        .arg("-i")
                        .arg(&bench.identity)
                        .arg("-o")
                        .arg("/dev/null")
                        .arg(&encrypted);
                    let t = timed(&age)?;
                    report("age -d -o /dev/null", &t);
                    verify_theirs.push(t);
                    Ok(())
                },
            ],
        )?;
    }
    let backup_size = dir_size(&backups);
    for path in [&backups, &repo, &encrypted] {
        clear(path);
    }

    let measures = [
        (
            Measure {
                name: format!("{label}: backup vs restic init+backup"),
                sstore: backup_ours.clone(),
                reference: vs_restic,
            },
            GOAL_VS_RESTIC,
        ),
        (
            Measure {
                name: format!("{label}: backup vs age -R + sync"),
                sstore: backup_ours,
                reference: vs_age,
            },
            GOAL_VS_AGE_BACKUP,
        ),
        (
            Measure {
                name: format!("{label}: restore --method new vs age -d"),
                sstore: restore_ours,
                reference: restore_theirs,
            },
            GOAL_VS_AGE_DECRYPT,
        ),
        (
            Measure {
                name: format!("{label}: verify vs age -d >/dev/null"),
                sstore: verify_ours,
                reference: verify_theirs,
            },
            GOAL_VS_AGE_DECRYPT,
        ),
    ];
    let peak_rss = measures
        .iter()
        .flat_map(|(m, _)| m.sstore.iter().map(|t| t.peak_rss_mib))
        .fold(0.0, f64::max);
    let mut rows: Vec<Row> = measures
        .iter()
        .map(|(m, goal)| ratio_row(m, *goal, store.bytes))
        .collect();
    rows.push(Row {
        measure: format!("{label}: peak RSS of backup/restore/verify"),
        ours: format!("{peak_rss:.0} MiB"),
        theirs: String::new(),
        ratio: String::new(),
        goal: format!("<= {GOAL_RSS_MIB:.0} MiB"),
        met: Some(peak_rss <= GOAL_RSS_MIB),
        ours_rss: String::new(),
        theirs_rss: String::new(),
    });
    eprintln!(
        "    {label} store: the backup is {} MiB ({:.0}% of the store)",
        mib(backup_size),
        100.0 * backup_size as f64 / store.bytes.max(1) as f64
    );
    Ok(rows)
}

/// A row comparing sstore's median wall time with the reference's: the ratio is sstore's time
/// over the reference's (below 1: sstore is faster).
fn ratio_row(m: &Measure, goal: f64, bytes: u64) -> Row {
    let seconds = |v: &[Timed]| median(&v.iter().map(|t| t.seconds).collect::<Vec<_>>());
    let peak = |v: &[Timed]| v.iter().map(|t| t.peak_rss_mib).fold(0.0, f64::max);
    let (ours, theirs) = (seconds(&m.sstore), seconds(&m.reference));
    let ratio = ours / theirs;
    let rate = |s: f64| bytes as f64 / 1_048_576.0 / s.max(0.001);
    Row {
        measure: m.name.clone(),
        ours: format!("{ours:.2} s ({:.0} MiB/s)", rate(ours)),
        theirs: format!("{theirs:.2} s ({:.0} MiB/s)", rate(theirs)),
        ratio: format!("{ratio:.2}x"),
        goal: format!("<= {goal:.2}x"),
        met: Some(ratio <= goal),
        ours_rss: format!("{:.0} MiB", peak(&m.sstore)),
        theirs_rss: format!("{:.0} MiB", peak(&m.reference)),
    }
}

/// `sstore masterkey update` of a fresh copy of the store, R rounds; the new passphrase through
/// SSTORE_NEW_PASSPHRASE. No reference: the goal is absolute.
fn masterkey_update(bench: &Bench, store: &Store, rounds: usize) -> Result<Row, String> {
    let copy = bench.work.join("masterkey.db");
    let mut samples = Vec::new();
    for round in 1..=rounds {
        eprintln!(
            "==> {} store, masterkey update, round {round}/{rounds}",
            store.label
        );
        clear(&copy);
        std::fs::copy(&store.path, &copy).map_err(|e| format!("{}: {e}", copy.display()))?;
        let _ = Command::new("sync").status();
        let mut cmd = bench.sstore(&copy, &store.passphrase, &["masterkey", "update"]);
        cmd.env("SSTORE_NEW_PASSPHRASE", crate::generate_passphrase());
        let t = timed(&cmd)?;
        eprintln!(
            "    {:<7} {:<28} {:>8.2} s {:>6.0} MiB peak RSS ({:.0} sets/s)",
            store.label,
            "sstore masterkey update",
            t.seconds,
            t.peak_rss_mib,
            store.sets as f64 / t.seconds.max(0.001)
        );
        samples.push(t);
        clear(&copy);
    }
    let seconds = median(&samples.iter().map(|t| t.seconds).collect::<Vec<_>>());
    let rate = store.sets as f64 / seconds.max(0.001);
    Ok(Row {
        measure: format!("{}: masterkey update", store.label),
        ours: format!("{seconds:.2} s ({} sets/s)", thousands(rate as u64)),
        theirs: "(none)".into(),
        ratio: String::new(),
        goal: format!(">= {} sets/s", thousands(GOAL_SETS_PER_S as u64)),
        met: Some(rate >= GOAL_SETS_PER_S),
        ours_rss: format!(
            "{:.0} MiB",
            samples.iter().map(|t| t.peak_rss_mib).fold(0.0, f64::max)
        ),
        theirs_rss: String::new(),
    })
}

/// The table, as Markdown (aligned, so it reads as well in a terminal), and how many goals
/// were met.
fn print_table(rows: &[Row]) {
    const HEADER: [&str; 8] = [
        "measure",
        "sstore median",
        "reference median",
        "ratio",
        "goal",
        "met?",
        "sstore peak RSS",
        "ref peak RSS",
    ];
    // Which columns are numbers, aligned right.
    const RIGHT: [bool; 8] = [false, true, true, true, false, false, true, true];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                r.measure.clone(),
                r.ours.clone(),
                r.theirs.clone(),
                r.ratio.clone(),
                r.goal.clone(),
                match r.met {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => String::new(),
                },
                r.ours_rss.clone(),
                r.theirs_rss.clone(),
            ]
        })
        .collect();
    let mut widths = HEADER.map(|h| h.len().max(3));
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |row: &[String; 8]| {
        let mut out = String::from("|");
        for ((cell, w), right) in row.iter().zip(widths).zip(RIGHT) {
            if right {
                out.push_str(&format!(" {cell:>w$} |"));
            } else {
                out.push_str(&format!(" {cell:<w$} |"));
            }
        }
        out
    };
    println!();
    println!("{}", line(&HEADER.map(String::from)));
    let mut rule = String::from("|");
    for (w, right) in widths.iter().zip(RIGHT) {
        if right {
            rule.push_str(&format!("{}:|", "-".repeat(w + 1)));
        } else {
            rule.push_str(&format!("{}|", "-".repeat(w + 2)));
        }
    }
    println!("{rule}");
    for row in &cells {
        println!("{}", line(row));
    }
    let goals = rows.iter().filter(|r| r.met.is_some()).count();
    let met = rows.iter().filter(|r| r.met == Some(true)).count();
    println!();
    println!(
        "goals met: {met} of {goals}; ratio = sstore's median wall time / the reference's (below 1: sstore is faster)"
    );
}

/// Refuses an age round trip whose output is not the store's size.
fn same_size(a: &Path, b: &Path) -> Result<(), String> {
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(u64::MAX);
    if size(a) == size(b) {
        Ok(())
    } else {
        Err(format!(
            "{} is not the size of {}",
            b.display(),
            a.display()
        ))
    }
}

/// The bytes of the files in a folder tree.
fn dir_size(path: &Path) -> u64 {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| dir_size(&e.path()))
            .sum(),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.0}", bytes as f64 / 1_048_576.0)
}

/// 1234567 -> "1,234,567".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The first line a command prints, or "?".
fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "?".into())
}

/// CPUs, memory, CPU model and the file system the work folder is on.
fn machine_line(work: &Path) -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kib| kib.parse::<f64>().ok())
        .map(|kib| kib / 1_048_576.0)
        .unwrap_or(0.0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let fs = Command::new("df")
        .args(["--output=fstype,source"])
        .arg(work)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .nth(1)
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" on "))
        })
        .unwrap_or_else(|| "?".into());
    format!("nproc {cpus}, {mem_gib:.1} GiB memory, {model}; work folder on {fs}")
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
