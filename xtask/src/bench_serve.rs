//! `cargo xtask bench-serve [--size-mib N] [--clients C] [--rounds R]`: the service under
//! load. A store of about N MiB (default 1024; its values are encrypted, so the backup is as
//! large) is backed up through `sstore serve` to two destinations, once with the service idle
//! and once while C clients (default 200) each poll `/api/v1/status` every 200 ms and hold an
//! event stream open, alternating over R rounds (default 3). Reports the backup's rate under
//! load against idle (goal: at least 0.9x), the p99 latency of the status requests made while
//! the backup runs (goal: under 50 ms; those made before it, as the 2C connections open, are
//! reported apart) and the service's peak RSS (goal: under 100 MiB), each run its own service
//! process.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::bench_util;
use crate::services::{self, Ctx};

pub const USAGE: &str = "bench-serve [--size-mib N] [--clients C] [--rounds R]";

struct Options {
    size_mib: u64,
    clients: u64,
    rounds: u64,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        size_mib: 1024,
        clients: 200,
        rounds: 3,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| format!("{flag} needs a number\nusage: cargo xtask {USAGE}"))?;
        match flag.as_str() {
            "--size-mib" => options.size_mib = value.max(1),
            "--clients" => options.clients = value,
            "--rounds" => options.rounds = value.max(1),
            _ => return Err(format!("unknown option {flag}\nusage: cargo xtask {USAGE}")),
        }
    }
    Ok(options)
}

/// One measured run.
struct Run {
    mib_s: f64,
    p99_ms: f64,
    /// Before the backup, while the clients connect (reported, not the goal's measure).
    warmup_p99_ms: f64,
    p50_ms: f64,
    requests: u64,
    failures: u64,
    peak_rss_mib: f64,
}

pub fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let options = parse(args)?;
    crate::run(
        "build sstore and the service benchmark (release)",
        crate::cargo().args([
            "build",
            "--release",
            "-p",
            "sstore-cli",
            "--bin",
            "sstore",
            "--example",
            "make_store",
            "--example",
            "service_load",
        ]),
    )?;
    let release = bench_util::release_dir(root);
    let sstore = release.join("sstore");
    let ctx = Ctx::new(root);
    let dir = ctx.service_dir("bench-serve")?;
    for name in ["home", "a", "b", "store.db"] {
        let path = dir.join(name);
        let _ = std::fs::remove_dir_all(&path);
        let _ = std::fs::remove_file(&path);
    }
    services::create_private_dir(&dir.join("home"))?;
    let passphrase = crate::generate_passphrase();
    let env = |cmd: &mut Command| {
        cmd.env("HOME", dir.join("home"))
            .env("XDG_CONFIG_HOME", dir.join("home/config"))
            .env("XDG_DATA_HOME", dir.join("home/data"))
            .env("SSTORE_STORE", dir.join("store.db"))
            .env("SSTORE_PASSPHRASE", &passphrase)
            .env_remove("SSTORE_CONFIG");
    };
    let config_dir = dir.join("home/config/sstore");
    services::create_private_dir(&config_dir)?;
    services::write_private(
        &config_dir.join("config.toml"),
        &format!(
            "[backup]\ndirectory = {:?}\ntargets = [{:?}]\n[serve]\nstate = {:?}\n",
            dir.join("a"),
            dir.join("b"),
            dir.join("home/service")
        ),
    )?;
    let sets = options.size_mib * 1024;
    eprintln!(
        "==> a store of {sets} credential sets (about {} MiB)",
        options.size_mib
    );
    let mut make = Command::new(release.join("examples/make_store"));
    env(&mut make);
    crate::run(
        "make the store",
        make.args(["--out"]).arg(dir.join("store.db")).args([
            "--sets",
            &sets.to_string(),
            "--value-bytes",
            "1000",
        ]),
    )?;
    let mut add = Command::new(&sstore);
    env(&mut add);
    let mut child = add
        .args(["operator", "add", "bench", "--role", "operator"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("sstore operator add: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        let _ = writeln!(stdin, "Bench-Operator-Password-1");
    }
    child.wait().map_err(|e| e.to_string())?;
    let mut token = Command::new(&sstore);
    env(&mut token);
    let out = token
        .args(["operator", "token", "bench"])
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("sstore operator token: {e}"))?;
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();

    let mut idle = Vec::new();
    let mut loaded = Vec::new();
    for round in 1..=options.rounds {
        // Alternate which goes first, so neither always meets a warmer disk.
        let order: [u64; 2] = if round % 2 == 1 {
            [0, options.clients]
        } else {
            [options.clients, 0]
        };
        for clients in order {
            eprintln!("==> round {round}/{}: {clients} clients", options.rounds);
            for name in ["a", "b"] {
                let _ = std::fs::remove_dir_all(dir.join(name));
            }
            let run = measure(&sstore, &release, &env, &token, clients)?;
            eprintln!(
                "    backup {:.0} MiB/s; status p50 {:.1} ms p99 {:.1} ms ({} requests, {} failed; p99 {:.1} ms before the backup); peak RSS {:.0} MiB",
                run.mib_s,
                run.p50_ms,
                run.p99_ms,
                run.requests,
                run.failures,
                run.warmup_p99_ms,
                run.peak_rss_mib
            );
            if clients == 0 {
                idle.push(run);
            } else {
                loaded.push(run);
            }
        }
    }
    let median = |runs: &[Run], f: fn(&Run) -> f64| -> f64 {
        bench_util::median(&runs.iter().map(f).collect::<Vec<_>>())
    };
    let idle_rate = median(&idle, |r| r.mib_s);
    let loaded_rate = median(&loaded, |r| r.mib_s);
    println!();
    println!(
        "{} MiB backup to two destinations, {} clients, {} round(s); medians",
        options.size_mib, options.clients, options.rounds
    );
    println!("measure                         value      goal");
    println!("backup rate, idle               {idle_rate:>6.0} MiB/s");
    println!(
        "backup rate, loaded             {loaded_rate:>6.0} MiB/s  ({:.2}x idle; goal >= 0.9x)",
        loaded_rate / idle_rate
    );
    println!(
        "status p99 latency, loaded      {:>6.1} ms     (goal < 50 ms; p50 {:.1} ms)",
        median(&loaded, |r| r.p99_ms),
        median(&loaded, |r| r.p50_ms)
    );
    println!(
        "status p99 as clients connect   {:>6.1} ms     (before the backup; not the goal's measure)",
        median(&loaded, |r| r.warmup_p99_ms)
    );
    println!(
        "service peak RSS, loaded        {:>6.0} MiB    (goal < 100 MiB; idle {:.0} MiB)",
        loaded.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max),
        idle.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max)
    );
    let failures: u64 = loaded.iter().map(|r| r.failures).sum();
    println!("failed status requests          {failures:>6}");
    Ok(())
}

/// Starts a service, runs the backup with `clients` polling it, and stops the service.
fn measure(
    sstore: &Path,
    release: &Path,
    env: &dyn Fn(&mut Command),
    token: &str,
    clients: u64,
) -> Result<Run, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let mut serve = Command::new(sstore);
    env(&mut serve);
    let mut service = serve
        .args([
            "serve",
            "--plain-http",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("sstore serve: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let _ = service.kill();
            return Err("the service did not start".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = Command::new(release.join("examples/service_load"))
        .args(["--url", &format!("http://127.0.0.1:{port}")])
        .args(["--clients", &clients.to_string()])
        .env("SSTORE_BENCH_TOKEN", token)
        .output()
        .map_err(|e| format!("service_load: {e}"))?;
    let peak_rss_mib = bench_util::peak_rss_kib(service.id()) as f64 / 1024.0;
    let _ = Command::new("kill").arg(service.id().to_string()).status();
    let _ = service.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("LOAD "))
        .ok_or_else(|| {
            format!(
                "service_load printed no result: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    let number = |key: &str| -> f64 {
        line.split(&format!("\"{key}\":"))
            .nth(1)
            .and_then(|rest| rest.split([',', '}']).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(f64::NAN)
    };
    Ok(Run {
        mib_s: number("backup_mib_s"),
        p99_ms: number("p99_ms"),
        warmup_p99_ms: number("warmup_p99_ms"),
        p50_ms: number("p50_ms"),
        requests: number("requests") as u64,
        failures: number("failures") as u64,
        peak_rss_mib,
    })
}
