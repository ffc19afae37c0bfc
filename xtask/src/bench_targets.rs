//! `cargo xtask bench-targets`: a staged backup-sized file (default 1 GiB of random bytes, as
//! an encrypted backup is) uploaded to and downloaded from the S3 server (s3s-fs) and Azure
//! emulator (Azurite) that `services up` starts, by sstore's targets and, in the same run, by
//! `rclone copyto` against the same server. Each transfer runs in its own process under GNU
//! time, which gives its wall time and peak RSS the same way for both tools.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::services::{self, Ctx};

struct Service {
    name: &'static str,
    /// The sstore target kind and its settings (TOML).
    kind: &'static str,
    config: String,
    /// rclone's remote, configured through RCLONE_CONFIG_* variables.
    rclone_env: Vec<(String, String)>,
    rclone_path: String,
}

#[derive(Clone, Copy)]
struct Sample {
    mib_per_s: f64,
    peak_rss_mib: f64,
}

pub fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let mut size_mib = 1024u64;
    let mut rounds = 3usize;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--size-mib" => size_mib = value.parse().map_err(|_| format!("bad size {value}"))?,
            "--rounds" => rounds = value.parse().map_err(|_| format!("bad rounds {value}"))?,
            _ => return Err(format!("bench-targets: unexpected argument {flag}")),
        }
    }
    services::command(root, &["up".into(), "s3".into(), "azurite".into()])?;
    services::apt_install(&["rclone", "time"])?;
    crate::run(
        "build the transfer benchmark (release)",
        crate::cargo().args([
            "build",
            "--release",
            "-p",
            "sstore-cli",
            "--example",
            "target_bench",
        ]),
    )?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bench_bin = target_dir.join("release/examples/target_bench");

    let ctx = Ctx::new(root);
    let dir = ctx.service_dir("bench")?;
    let staged = dir.join("staged.bak");
    let downloaded = dir.join("downloaded.bak");
    let meta_len = std::fs::metadata(&staged).map(|m| m.len()).unwrap_or(0);
    if meta_len != size_mib * 1024 * 1024 {
        eprintln!(
            "==> writing {size_mib} MiB of random bytes to {}",
            staged.display()
        );
        services::run_quiet(
            "dd",
            Command::new("dd")
                .arg("if=/dev/urandom")
                .arg(format!("of={}", staged.display()))
                .args(["bs=1M", &format!("count={size_mib}"), "status=none"]),
        )?;
    }
    let targets = service_configs(&ctx, &dir)?;

    let mut table: Vec<(String, [Sample; 4])> = Vec::new();
    for round in 1..=rounds {
        for service in &targets {
            eprintln!("==> round {round}/{rounds}: {}", service.name);
            let config = dir.join(format!("{}.toml", service.name));
            services::write_private(&config, &service.config)?;
            let ours = |phase: &str, file: &Path| -> Result<Sample, String> {
                let mut cmd = Command::new(&bench_bin);
                cmd.args([phase, "--kind", service.kind, "--config"])
                    .arg(&config)
                    .args(["--key", "bench/staged.bak", "--file"])
                    .arg(file);
                timed(&mut cmd, size_mib)
            };
            let up = ours("upload", &staged)?;
            let _ = std::fs::remove_file(&downloaded);
            let down = ours("download", &downloaded)?;
            same_bytes(&staged, &downloaded)?;
            let rclone = |from: &str, to: &str| -> Result<Sample, String> {
                let mut cmd = Command::new("rclone");
                // --ignore-times: transfer even when the destination looks the same.
                cmd.args([
                    "--config",
                    "/dev/null",
                    "--ignore-times",
                    "copyto",
                    from,
                    to,
                ])
                .env_remove("AWS_CA_BUNDLE")
                .envs(service.rclone_env.iter().map(|(k, v)| (k, v)));
                timed(&mut cmd, size_mib)
            };
            let staged_text = staged.display().to_string();
            let down_text = downloaded.display().to_string();
            let rclone_up = rclone(&staged_text, &service.rclone_path)?;
            let _ = std::fs::remove_file(&downloaded);
            let rclone_down = rclone(&service.rclone_path, &down_text)?;
            same_bytes(&staged, &downloaded)?;
            table.push((service.name.to_owned(), [up, rclone_up, down, rclone_down]));
        }
    }
    let _ = std::fs::remove_file(&downloaded);

    println!();
    println!("{size_mib} MiB, {rounds} rounds; MiB/s (peak RSS MiB)");
    println!(
        "{:<8} {:>20} {:>20} {:>20} {:>20}",
        "server", "sstore upload", "rclone upload", "sstore download", "rclone download"
    );
    for (name, s) in &table {
        let cell = |x: &Sample| format!("{:.0} ({:.0})", x.mib_per_s, x.peak_rss_mib);
        println!(
            "{name:<8} {:>20} {:>20} {:>20} {:>20}",
            cell(&s[0]),
            cell(&s[1]),
            cell(&s[2]),
            cell(&s[3])
        );
    }
    for service in &targets {
        let rows: Vec<&[Sample; 4]> = table
            .iter()
            .filter(|(n, _)| n == service.name)
            .map(|(_, s)| s)
            .collect();
        let median = |k: usize, f: fn(&Sample) -> f64| {
            let mut v: Vec<f64> = rows.iter().map(|r| f(&r[k])).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let rate = |s: &Sample| s.mib_per_s;
        let rss = |s: &Sample| s.peak_rss_mib;
        println!(
            "median {}: upload {:.0} vs rclone {:.0} MiB/s ({:.2}x), download {:.0} vs {:.0} MiB/s ({:.2}x); peak RSS upload {:.0} / download {:.0} MiB (rclone {:.0} / {:.0})",
            service.name,
            median(0, rate),
            median(1, rate),
            median(0, rate) / median(1, rate),
            median(2, rate),
            median(3, rate),
            median(2, rate) / median(3, rate),
            median(0, rss),
            median(2, rss),
            median(1, rss),
            median(3, rss),
        );
    }
    Ok(())
}

/// The settings for both tools, from what `services up` recorded.
fn service_configs(ctx: &Ctx, dir: &Path) -> Result<Vec<Service>, String> {
    let env_text = std::fs::read_to_string(ctx.env_file())
        .map_err(|e| format!("{}: {e}", ctx.env_file().display()))?;
    let get = |key: &str| -> Result<String, String> {
        env_text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_owned)
            .ok_or_else(|| format!("{key} missing from services.env"))
    };
    let s3_secret = dir.join("s3-secret");
    services::write_private(&s3_secret, &get("SSTORE_TEST_S3_SECRET_KEY")?)?;
    let azure_key = dir.join("azure-key");
    services::write_private(&azure_key, &get("SSTORE_TEST_AZURE_KEY")?)?;
    let bucket = get("SSTORE_TEST_S3_BUCKET")?;
    let container = get("SSTORE_TEST_AZURE_CONTAINER")?;
    let pair = |k: &str, v: String| (k.to_owned(), v);
    Ok(vec![
        Service {
            name: "s3s-fs",
            kind: "s3",
            config: format!(
                "bucket = '{bucket}'\nendpoint = '{}'\nallow_http = true\n\
                 access_key_id = '{}'\nsecret_access_key_file = '{}'\n",
                get("SSTORE_TEST_S3_ENDPOINT")?,
                get("SSTORE_TEST_S3_ACCESS_KEY")?,
                s3_secret.display()
            ),
            rclone_env: vec![
                pair("RCLONE_CONFIG_BENCHS3_TYPE", "s3".into()),
                pair("RCLONE_CONFIG_BENCHS3_PROVIDER", "Other".into()),
                pair(
                    "RCLONE_CONFIG_BENCHS3_ENDPOINT",
                    get("SSTORE_TEST_S3_ENDPOINT")?,
                ),
                pair("RCLONE_CONFIG_BENCHS3_REGION", "us-east-1".into()),
                pair(
                    "RCLONE_CONFIG_BENCHS3_ACCESS_KEY_ID",
                    get("SSTORE_TEST_S3_ACCESS_KEY")?,
                ),
                pair(
                    "RCLONE_CONFIG_BENCHS3_SECRET_ACCESS_KEY",
                    get("SSTORE_TEST_S3_SECRET_KEY")?,
                ),
            ],
            rclone_path: format!("benchs3:{bucket}/bench-rclone/staged.bak"),
        },
        Service {
            name: "azurite",
            kind: "azure",
            config: format!(
                "container = '{container}'\nendpoint = '{}'\nallow_http = true\n\
                 account = '{}'\naccount_key_file = '{}'\n",
                get("SSTORE_TEST_AZURE_ENDPOINT")?,
                get("SSTORE_TEST_AZURE_ACCOUNT")?,
                azure_key.display()
            ),
            rclone_env: vec![
                // Debian's rclone 1.60 reaches Azurite only through a SAS URL (its
                // use_emulator and endpoint options do not work with it).
                pair("RCLONE_CONFIG_BENCHAZ_TYPE", "azureblob".into()),
                pair(
                    "RCLONE_CONFIG_BENCHAZ_SAS_URL",
                    format!(
                        "{}/{container}?{}",
                        get("SSTORE_TEST_AZURE_ENDPOINT")?,
                        get("SSTORE_TEST_AZURE_SAS")?
                    ),
                ),
            ],
            rclone_path: format!("benchaz:{container}/bench-rclone/staged.bak"),
        },
    ])
}

/// Runs `cmd` under GNU time; the rate is the size over the wall time of the whole process
/// (start-up and connection included, for both tools).
fn timed(cmd: &mut Command, size_mib: u64) -> Result<Sample, String> {
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let envs: Vec<_> = cmd
        .get_envs()
        .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
        .collect();
    let mut timed = Command::new("/usr/bin/time");
    timed.args(["-f", "TIME %e %M"]).arg(&program).args(&args);
    for (key, value) in envs {
        match value {
            Some(v) => timed.env(key, v),
            None => timed.env_remove(key),
        };
    }
    let out = timed
        .output()
        .map_err(|e| format!("{}: {e}", program.to_string_lossy()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "{} {args:?} failed: {stderr}{}",
            program.to_string_lossy(),
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("TIME "))
        .ok_or("GNU time printed nothing")?;
    let mut fields = line.split_whitespace().skip(1);
    let seconds: f64 = fields
        .next()
        .and_then(|f| f.parse().ok())
        .ok_or("bad time")?;
    let rss_kib: f64 = fields
        .next()
        .and_then(|f| f.parse().ok())
        .ok_or("bad rss")?;
    Ok(Sample {
        mib_per_s: size_mib as f64 / seconds.max(0.001),
        peak_rss_mib: rss_kib / 1024.0,
    })
}

/// Refuses a download that differs from the staged file.
fn same_bytes(a: &Path, b: &Path) -> Result<(), String> {
    let status = Command::new("cmp")
        .args(["-s"])
        .arg(a)
        .arg(b)
        .status()
        .map_err(|e| format!("cmp: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} differs from {}", b.display(), a.display()))
    }
}
