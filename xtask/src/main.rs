//! Developer automation: `cargo xtask ci | services | demo | bench`. Standard library only, so it builds
//! in seconds.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod bench_job;
mod bench_mssql;
mod bench_serve;
mod bench_targets;
mod bench_util;
mod fuzz;
mod secret_scan;
mod services;
mod soak;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  ci                      start the test servers (services up), then cargo fmt --check,
                          cargo clippy -D warnings, and the whole test suite against them
  bench-targets [--size-mib N] [--rounds R] [--only s3,azure,smb] [--download-dir DIR]
                          N MiB (default 1024) up to and down from s3s-fs, Azurite and Samba by
                          sstore's targets and, same run, by rclone copyto / smbclient: MiB/s
                          and peak RSS, medians over R rounds (default 4, keep it even; release)
  bench-serve [--size-mib N] [--clients C] [--rounds R]
                          a backup of an N MiB store (default 1024) through sstore serve to two
                          destinations, idle and with C clients (default 200) polling status
                          and holding event streams: rate ratio, status p99, peak RSS
  bench-mssql [--sets N]  with SSTORE_TEST_MSSQL_URL (+ SSTORE_MSSQL_PASSWORD): backup and
                          masterkey update of N credential sets (default 100000) on that SQL
                          Server / Azure SQL / Babelfish and in SQLite, in sets per second
  services up [NAME...] | down [NAME...] | status
                          the real servers the tests use (s3, azurite, sftp, webdav, samba), on
                          loopback, with private data under .services/; up installs what is missing
  soak --minutes N [--seed S]
                          the randomized kill soak (cli/tests/soak.rs) for N minutes: kill -9
                          at random moments of backup, transfer, resume, prune, restore and
                          masterkey update, every invariant checked after each; ends with a
                          line of counts and lost: 0 (anything lost fails)
  fuzz [--seconds N] [--sanitizer address|none] [TARGET...]
                          the cargo-fuzz targets under fuzz/ (stream, header, records, config,
                          location, keys, plugin_abi, request) for N seconds each (default 60) on their
                          corpora, with AddressSanitizer unless --sanitizer none
  secret-scan [CARGO TEST ARGS...]
                          cargo test --no-fail-fast (default: the workspace) against the
                          servers, then the secret scan that cargo xtask ci runs after its suite
  demo [--out DIR]        build sstore, create a sample Secure Store, back it up, verify it
  bench [--only stream|job] [--rounds R] [--size-mib N] [--sets N] [--payload-mib M]
                          R rounds (default 3) of, first, the stream: N MiB (default 1024)
                          through the backup stream writer to an fsynced file, decrypted back,
                          and dd conv=fsync of the same size for the disk's ceiling; then the
                          jobs, on a store of N credential sets (default 1000000, ~335 MiB) and
                          one of M MiB (default 1024) of incompressible values, made and cached
                          under target/bench-job: sstore backup against restic init + backup
                          and against age + sync, restore --method new and verify against
                          age -d, and masterkey update, each its own process under GNU time,
                          alternating with the reference (installs age, restic, time); one
                          table of medians, ratios, the issue's goals met or not, and peak RSS
                          (release mode)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("demo") => demo(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("services") => services::command(&root(), &args[1..]),
        Some("bench-targets") => bench_targets::run(&root(), &args[1..]),
        Some("bench-serve") => bench_serve::run(&root(), &args[1..]),
        Some("bench-mssql") => bench_mssql::run_bench(&args[1..]),
        Some("soak") => soak::command(&args[1..]),
        Some("fuzz") => fuzz::command(&root(), &args[1..]),
        Some("secret-scan") => secret_scan_only(&args[1..]),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Cargo for the one-shot CI run: no incremental state, which a clean clone never reuses and
/// which would add gigabytes to the target folder.
fn ci_cargo() -> Command {
    let mut cmd = cargo();
    cmd.env("CARGO_INCREMENTAL", "0");
    cmd
}

/// Runs a command, failing with its description if it fails.
fn run(what: &str, cmd: &mut Command) -> Result<(), String> {
    eprintln!("==> {what}");
    let status = cmd
        .status()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

fn ci() -> Result<(), String> {
    run(
        "cargo fmt --check",
        ci_cargo().args(["fmt", "--all", "--", "--check"]),
    )?;
    run(
        "cargo clippy",
        ci_cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    // The target tests run against real servers; with SSTORE_REQUIRE_SERVICES a test whose
    // server is missing fails instead of skipping.
    let env_file = services::up_all(&root())?;
    // The web console's browser tests drive Debian's Chromium through chromedriver; its page
    // tests validate every page with the Nu HTML Checker.
    services::apt_install(&["chromium", "chromium-driver"])?;
    let html_checker = services::install_html_checker(&root())?;
    let with_services = |cmd: &mut Command| {
        cmd.env("SSTORE_SERVICES_ENV", &env_file)
            .env("SSTORE_VNU_JAR", &html_checker)
            .env("SSTORE_REQUIRE_SERVICES", "1")
            .env_remove("AWS_CA_BUNDLE");
    };
    // The tests keep what they write and record their command lines for the secret scan.
    let scan = secret_scan::Scan::prepare()?;
    let mut workspace = ci_cargo();
    workspace.args(["test", "--workspace", "--all-targets", "--no-fail-fast"]);
    with_services(&mut workspace);
    scan.attach(&mut workspace);
    let (mut passed, mut failed) = test_and_count(&mut workspace)?;
    let scanned = scan.finish(&root(), &env_file);

    // A short kill soak (30 kills; `cargo xtask soak --minutes N` runs a long one).
    let soak = soak::run(soak::Length::Kills(30), None);

    // The opt-in libsmbclient client of the SMB target (the default build has no C library):
    // its build packages, clippy, then the SMB tests once more, through both clients.
    services::apt_install(services::LIBSMBCLIENT_BUILD_PACKAGES)?;
    run(
        "cargo clippy -p sstore-target-smb --features libsmbclient",
        ci_cargo().args([
            "clippy",
            "-p",
            "sstore-target-smb",
            "--features",
            "libsmbclient",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    let mut smb = ci_cargo();
    smb.args([
        "test",
        "-p",
        "sstore-target-smb",
        "--features",
        "libsmbclient",
        "--no-fail-fast",
    ]);
    with_services(&mut smb);
    let (smb_passed, smb_failed) = test_and_count(&mut smb)?;
    passed += smb_passed;
    failed += smb_failed;
    // The network faults on SMB once more through libsmbclient, the client that reaches the
    // server requiring encryption (the default build can only say it cannot).
    let mut smb_faults = ci_cargo();
    smb_faults.args([
        "test",
        "-p",
        "sstore-cli",
        "--features",
        "libsmbclient",
        "--test",
        "network_faults",
        "--no-fail-fast",
        "--",
        "smb_",
    ]);
    with_services(&mut smb_faults);
    let (faults_passed, faults_failed) = test_and_count(&mut smb_faults)?;
    passed += faults_passed;
    failed += faults_failed;

    // Every fuzz target for a bounded time (`cargo xtask fuzz --seconds N` runs longer).
    let fuzzed = fuzz::command(
        &root(),
        &[
            "--seconds".to_owned(),
            CI_FUZZ_SECONDS.to_string(),
            "--sanitizer".to_owned(),
            "none".to_owned(),
        ],
    );

    // One closing line for the whole suite (each test binary prints its own result line).
    println!("tests: {passed} passed, {failed} failed");
    report_target_size();
    if failed > 0 || passed == 0 {
        return Err(format!("cargo test: {passed} passed, {failed} failed"));
    }
    soak.map_err(|e| format!("kill soak: {e}"))?;
    println!("{}", scanned?);
    fuzzed?;
    eprintln!("==> all checks passed");
    Ok(())
}

/// `cargo xtask secret-scan [CARGO TEST ARGS...]`: some tests, then the secret scan.
fn secret_scan_only(args: &[String]) -> Result<(), String> {
    let env_file = services::up_all(&root())?;
    let scan = secret_scan::Scan::prepare()?;
    let mut tests = ci_cargo();
    tests.arg("test");
    if args.is_empty() {
        tests.args(["--workspace", "--all-targets"]);
    }
    // Every test binary runs, so the scan sees everything they wrote even when one fails.
    if !args.iter().any(|a| a == "--no-fail-fast") {
        tests.arg("--no-fail-fast");
    }
    tests
        .args(args)
        .env("SSTORE_SERVICES_ENV", &env_file)
        .env_remove("AWS_CA_BUNDLE");
    scan.attach(&mut tests);
    let (passed, failed) = test_and_count(&mut tests)?;
    println!("tests: {passed} passed, {failed} failed");
    println!("{}", scan.finish(&root(), &env_file)?);
    Ok(())
}

/// How long `cargo xtask ci` runs each fuzz target.
const CI_FUZZ_SECONDS: u64 = 20;

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// Prints how much disk the target folder took (CI machines have little to spare).
fn report_target_size() {
    let target = target_dir();
    if let Ok(out) = Command::new("du").arg("-sh").arg(&target).output() {
        eprint!(
            "==> target folder: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// Runs `cargo test`, passing its output through, and adds up the `test result:` lines.
fn test_and_count(cmd: &mut Command) -> Result<(u64, u64), String> {
    use std::io::BufRead;
    eprintln!("==> cargo test");
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cargo test: cannot start: {e}"))?;
    let (mut passed, mut failed) = (0, 0);
    if let Some(stdout) = child.stdout.take() {
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.map_err(|e| e.to_string())?;
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                passed += count_before(rest, " passed");
                failed += count_before(rest, " failed");
            }
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() && failed == 0 {
        return Err(format!("cargo test failed ({status})"));
    }
    Ok((passed, failed))
}

/// The number just before `label` in a `test result:` line ("ok. 30 passed; 0 failed; ...").
fn count_before(text: &str, label: &str) -> u64 {
    text.find(label)
        .and_then(|end| text[..end].rsplit([' ', '.']).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A passphrase that meets the store policy, from the process's random hasher keys.
fn generate_passphrase() -> String {
    use std::hash::{BuildHasher, Hasher};
    let alphabet = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut out = String::from("Demo-");
    for i in 0..4u64 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(i);
        let mut x = hasher.finish();
        for _ in 0..6 {
            out.push(alphabet[(x % alphabet.len() as u64) as usize] as char);
            x /= alphabet.len() as u64;
        }
    }
    out.push('7');
    out
}

fn write_private(path: &Path, contents: &str) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    std::io::Write::write_all(&mut file, contents.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn demo(args: &[String]) -> Result<(), String> {
    let out = match args {
        [] => root().join("target").join("sstore-demo"),
        [flag, dir] if flag == "--out" => PathBuf::from(dir),
        _ => return Err(format!("demo: unexpected arguments {args:?}\n{USAGE}")),
    };
    run(
        "cargo build -p sstore-cli",
        cargo().args(["build", "--quiet", "-p", "sstore-cli"]),
    )?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let sstore = target_dir
        .join("debug")
        .join(format!("sstore{}", std::env::consts::EXE_SUFFIX));
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let store = out.join("store.db");
    let pass_file = out.join("passphrase.txt");
    let backups = out.join("backups");
    let sstore_cmd = |args: &[&str]| {
        let mut cmd = Command::new(&sstore);
        cmd.arg("--store")
            .arg(&store)
            .arg("--passphrase-file")
            .arg(&pass_file)
            .args(args);
        cmd.env_remove("SSTORE_PASSPHRASE")
            .env_remove("SSTORE_BACKUP_PASSPHRASE")
            .env_remove("SSTORE_STORE")
            .env_remove("SSTORE_CONFIG");
        cmd
    };
    if !store.exists() {
        if !pass_file.exists() {
            write_private(&pass_file, &format!("{}\n", generate_passphrase()))?;
        }
        run("sstore store init", &mut sstore_cmd(&["store", "init"]))?;
        let apps: [&[&str]; 3] = [
            &[
                "app",
                "new",
                "ContosoCRM",
                "--type",
                "individual",
                "--friendly-name",
                "Contoso CRM",
                "--contact-email",
                "crm-admins@contoso.example",
            ],
            &[
                "app",
                "new",
                "PayrollDB",
                "--type",
                "group",
                "--friendly-name",
                "Payroll database",
                "--field",
                "SQL Login:user-name",
                "--field",
                "SQL Password:password:masked",
            ],
            &[
                "app",
                "new",
                "HRPortal",
                "--type",
                "individual",
                "--field",
                "User:user-name",
                "--field",
                "Password:password:masked",
                "--field",
                "PIN:pin:masked",
            ],
        ];
        for args in apps {
            run(
                &format!("sstore {}", args[..3].join(" ")),
                &mut sstore_cmd(args),
            )?;
        }
        let sets: [(&str, &str, String); 5] = [
            (
                "ContosoCRM",
                "CONTOSO\\alice",
                "Windows User Name=CONTOSO\\svc-crm-alice\nWindows Password=demo-only-Crm#1\n"
                    .into(),
            ),
            (
                "ContosoCRM",
                "CONTOSO\\bob",
                "Windows User Name=CONTOSO\\svc-crm-bob\nWindows Password=demo-only-Crm#2\n".into(),
            ),
            (
                "PayrollDB",
                "CONTOSO\\Payroll Team",
                "SQL Login=payroll_reader\nSQL Password=demo-only-Sql#3\n".into(),
            ),
            (
                "HRPortal",
                "CONTOSO\\alice",
                "User=alice\nPassword=demo-only-Hr#4\nPIN=4711\n".into(),
            ),
            (
                "HRPortal",
                "CONTOSO\\carol",
                "User=carol\nPassword=demo-only-Hr#5\nPIN=0815\n".into(),
            ),
        ];
        for (app, principal, values) in sets {
            let mut child = sstore_cmd(&["cred", "set", app, "--principal", principal])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| format!("sstore cred set: {e}"))?;
            if let Some(mut stdin) = child.stdin.take() {
                std::io::Write::write_all(&mut stdin, values.as_bytes())
                    .map_err(|e| e.to_string())?;
            }
            let status = child.wait().map_err(|e| e.to_string())?;
            if !status.success() {
                return Err(format!("sstore cred set {app} failed"));
            }
        }
    }
    let backup_dir = backups.to_string_lossy().into_owned();
    run(
        "sstore backup --show-tree",
        &mut sstore_cmd(&["backup", "--show-tree"]),
    )?;
    run(
        "sstore backup --directory ... --method full --item SecureStore --verbose",
        &mut sstore_cmd(&[
            "backup",
            "--directory",
            &backup_dir,
            "--method",
            "full",
            "--item",
            "SecureStore",
            "--verbose",
        ]),
    )?;
    run(
        "sstore history",
        &mut sstore_cmd(&["history", "--directory", &backup_dir]),
    )?;
    run(
        "sstore verify",
        &mut sstore_cmd(&["verify", "--directory", &backup_dir]),
    )?;
    println!();
    println!("Demo store:      {}", store.display());
    println!(
        "Its passphrase:  in {} (owner-only; demo data only)",
        pass_file.display()
    );
    println!("Backups:         {}", backups.display());
    println!(
        "Try:             {} --store {} --passphrase-file {} history --directory {}",
        sstore.display(),
        store.display(),
        pass_file.display(),
        backups.display()
    );
    Ok(())
}

fn bench(args: &[String]) -> Result<(), String> {
    let mut size = 1024u64;
    let mut rounds = 3usize;
    let mut job = bench_job::Options {
        sets: 1_000_000,
        payload_mib: 1024,
        rounds,
    };
    let (mut stream, mut jobs) = (true, true);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("bench: {flag} needs a value"))?;
        let number = || -> Result<u64, String> {
            value
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("bench: {flag} needs a positive number, not {value}"))
        };
        match flag.as_str() {
            "--size-mib" => size = number()?,
            "--rounds" => rounds = number()? as usize,
            "--sets" => job.sets = number()?,
            "--payload-mib" => job.payload_mib = number()?,
            "--only" => match value.as_str() {
                "stream" => jobs = false,
                "job" | "jobs" => stream = false,
                _ => return Err(format!("bench: --only stream or --only job, not {value}")),
            },
            _ => return Err(format!("bench: unexpected argument {flag}\n{USAGE}")),
        }
    }
    job.rounds = rounds;
    if stream {
        bench_stream(size, rounds)?;
    }
    if jobs {
        bench_job::run(&root(), &job)?;
    }
    Ok(())
}

/// The stream benchmark: core's stream writer and reader against `dd conv=fsync`.
fn bench_stream(size: u64, rounds: usize) -> Result<(), String> {
    run(
        "build the stream benchmark (release)",
        cargo().args([
            "bench",
            "-p",
            "sstore-core",
            "--bench",
            "stream",
            "--no-run",
        ]),
    )?;
    let size_arg = size.to_string();
    let dd_file = std::env::temp_dir().join("sstore-bench-dd.out");
    let mut rows: Vec<[f64; 6]> = Vec::new();
    for round in 1..=rounds {
        eprintln!("==> round {round}/{rounds}");
        // Encrypt and decrypt in separate processes so each reports its own peak RSS.
        let enc = bench_phase(&["encrypt", "--size-mib", &size_arg, "--keep"])?;
        let dec = bench_phase(&["decrypt", "--size-mib", &size_arg])?;
        let dd = dd_fsync(&dd_file, size)?;
        rows.push([enc.0, enc.1, enc.2, dec.0, dec.2, dd]);
    }
    println!();
    println!(
        "{size} MiB, {rounds} rounds (encrypt includes the fsync; decrypt reads a warm page cache):"
    );
    println!(
        "round  encrypt MiB/s  RSS whole/stream MiB  decrypt MiB/s  stream RSS MiB  dd conv=fsync MiB/s"
    );
    for (i, r) in rows.iter().enumerate() {
        println!(
            "{:>5}  {:>13.0}  {:>12.1} / {:<6.1}  {:>13.0}  {:>14.1}  {:>19.0}",
            i + 1,
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5]
        );
    }
    let median = |k: usize| {
        let mut v: Vec<f64> = rows.iter().map(|r| r[k]).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "median encrypt {:.0} MiB/s ({:.2}x dd), decrypt {:.0} MiB/s, dd {:.0} MiB/s; peak RSS {:.1} MiB (Argon2id's 64 MiB included), streaming {:.1} MiB",
        median(0),
        median(0) / median(5),
        median(3),
        median(5),
        median(1),
        median(2)
    );
    Ok(())
}

/// Runs one phase of the stream benchmark; returns (MiB/s, peak RSS, streaming peak RSS).
fn bench_phase(args: &[&str]) -> Result<(f64, f64, f64), String> {
    let out = cargo()
        .args([
            "bench",
            "-q",
            "-p",
            "sstore-core",
            "--bench",
            "stream",
            "--",
        ])
        .args(args)
        .output()
        .map_err(|e| format!("stream benchmark: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    if !out.status.success() {
        return Err(format!(
            "stream benchmark {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let line = stdout
        .lines()
        .find(|l| l.starts_with("BENCH "))
        .ok_or("the benchmark printed no BENCH line")?;
    Ok((
        json_number(line, "mib_per_s")?,
        json_number(line, "peak_rss_mib")?,
        json_number(line, "stream_peak_rss_mib")?,
    ))
}

/// The number after `"key":` in a one-line JSON object.
fn json_number(line: &str, key: &str) -> Result<f64, String> {
    let pattern = format!("\"{key}\":");
    let start = line
        .find(&pattern)
        .ok_or_else(|| format!("no {key} in {line}"))?
        + pattern.len();
    let rest = &line[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end]
        .trim()
        .parse()
        .map_err(|_| format!("bad {key} in {line}"))
}

/// The disk's own ceiling: `dd conv=fsync` of the same size; returns MiB/s.
fn dd_fsync(path: &Path, size_mib: u64) -> Result<f64, String> {
    let _ = std::fs::remove_file(path);
    let start = std::time::Instant::now();
    let status = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", path.display()))
        .args([
            "bs=1M",
            &format!("count={size_mib}"),
            "conv=fsync",
            "status=none",
        ])
        .status()
        .map_err(|e| format!("dd: {e}"))?;
    let seconds = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(path);
    if !status.success() {
        return Err("dd failed".into());
    }
    Ok(size_mib as f64 / seconds)
}
