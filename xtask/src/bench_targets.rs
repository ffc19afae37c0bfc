//! `cargo xtask bench-targets [--size-mib N] [--rounds R] [--only s3,azure,smb]
//! [--download-dir DIR]`: a staged backup-sized file (default 1 GiB of random bytes, as an
//! encrypted backup is) uploaded to and downloaded from the real servers `services up` starts,
//! by sstore's targets and, in the same run and against the same server, by the reference tool:
//!
//! - S3 (s3s-fs) and Azure Blob (Azurite): `rclone copyto`;
//! - SMB (Samba, signing only and encryption required): `smbclient` put and get; sstore with
//!   the default pure-Rust client on the signing server and the opt-in libsmbclient client on
//!   both (the benchmark is built with the `libsmbclient` feature).
//!
//! Each transfer is its own process under GNU time, which measures the wall time (start-up and
//! connection included) and the peak RSS of both tools the same way. sstore's side is the
//! `target_bench` example (`cli/examples`): `put_file` and `get` of the kind, as the engine
//! uses them. Who goes first alternates by round (default 4 rounds: keep it even). Downloads go to a file in `--download-dir`
//! (default `/dev/shm`, so this machine's disk writeback is not what is measured), are compared
//! with the staged file byte for byte, and removed.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bench_util;
use crate::services::{self, Ctx};

pub const USAGE: &str =
    "bench-targets [--size-mib N] [--rounds R] [--only s3,azure,smb] [--download-dir DIR]";

/// Where sstore's copy and the reference tool's copy live on a server.
const SSTORE_KEY: &str = "bench/staged.bak";
const REFERENCE_NAME: &str = "bench-reference.bak";

/// One server, and how each tool reaches it.
struct Case {
    name: &'static str,
    /// The group `--only` selects it by.
    group: &'static str,
    /// sstore's target kind, its settings (TOML) and the environment they refer to.
    kind: &'static str,
    config: String,
    env: Vec<(String, String)>,
    reference: Reference,
}

enum Reference {
    /// `rclone copyto` to and from `path` (`remote:bucket/key`), the remote configured through
    /// `RCLONE_CONFIG_*` variables.
    Rclone {
        env: Vec<(String, String)>,
        path: String,
    },
    /// `smbclient` on `//127.0.0.1/share` at `port`, logged on with an owner-only auth file.
    Smbclient {
        port: String,
        share: String,
        auth: PathBuf,
    },
}

impl Reference {
    fn tool(&self) -> &'static str {
        match self {
            Reference::Rclone { .. } => "rclone",
            Reference::Smbclient { .. } => "smbclient",
        }
    }

    fn upload(&self, staged: &Path) -> Command {
        match self {
            Reference::Rclone { env, path } => rclone(env, &staged.display().to_string(), path),
            Reference::Smbclient { port, share, auth } => smbclient(
                port,
                share,
                auth,
                &format!("put {} {REFERENCE_NAME}", staged.display()),
            ),
        }
    }

    fn download(&self, to: &Path) -> Command {
        match self {
            Reference::Rclone { env, path } => rclone(env, path, &to.display().to_string()),
            Reference::Smbclient { port, share, auth } => smbclient(
                port,
                share,
                auth,
                &format!("get {REFERENCE_NAME} {}", to.display()),
            ),
        }
    }

    /// Removes what the reference tool stored (best effort).
    fn clean_up(&self) {
        let mut cmd = match self {
            Reference::Rclone { env, path } => {
                let mut cmd = Command::new("rclone");
                cmd.args(["--config", "/dev/null", "deletefile", path])
                    .env_remove("AWS_CA_BUNDLE")
                    .envs(env.iter().map(|(k, v)| (k, v)));
                cmd
            }
            Reference::Smbclient { port, share, auth } => {
                smbclient(port, share, auth, &format!("del {REFERENCE_NAME}"))
            }
        };
        let _ = services::run_quiet("clean up", &mut cmd);
    }
}

/// `smbclient` on `//127.0.0.1/share` at `port`, running `commands`.
fn smbclient(port: &str, share: &str, auth: &Path, commands: &str) -> Command {
    let mut cmd = Command::new("smbclient");
    cmd.args(["-p", port, &format!("//127.0.0.1/{share}"), "-A"])
        .arg(auth)
        .args(["-c", commands]);
    cmd
}

fn rclone(env: &[(String, String)], from: &str, to: &str) -> Command {
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
    .envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

#[derive(Clone, Copy)]
struct Sample {
    mib_per_s: f64,
    peak_rss_mib: f64,
}

/// The four transfers of one round, in this order.
const COLUMNS: [&str; 4] = ["sstore up", "ref up", "sstore down", "ref down"];

struct Options {
    size_mib: u64,
    rounds: usize,
    only: Option<Vec<String>>,
    download_dir: PathBuf,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        size_mib: 1024,
        rounds: 4,
        only: None,
        download_dir: PathBuf::from("/dev/shm"),
    };
    if !options.download_dir.is_dir() {
        options.download_dir = std::env::temp_dir();
    }
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value; usage: cargo xtask {USAGE}"))?;
        match flag.as_str() {
            "--size-mib" => options.size_mib = value.parse().map_err(|_| "bad --size-mib")?,
            "--rounds" => options.rounds = value.parse().map_err(|_| "bad --rounds")?,
            "--only" => options.only = Some(value.split(',').map(str::to_owned).collect()),
            "--download-dir" => options.download_dir = PathBuf::from(value),
            _ => return Err(format!("unexpected {flag}; usage: cargo xtask {USAGE}")),
        }
    }
    if options.size_mib == 0 || options.rounds == 0 {
        return Err("--size-mib and --rounds must be at least 1".into());
    }
    if let Some(only) = &options.only
        && let Some(bad) = only
            .iter()
            .find(|g| !["s3", "azure", "smb"].contains(&g.as_str()))
    {
        return Err(format!("--only: unknown '{bad}' (s3, azure, smb)"));
    }
    Ok(options)
}

pub fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let options = parse(args)?;
    let wanted = |group: &str| {
        options
            .only
            .as_ref()
            .is_none_or(|only| only.iter().any(|g| g == group))
    };
    let mut up = vec!["up".to_owned()];
    for (group, service) in [("s3", "s3"), ("azure", "azurite"), ("smb", "samba")] {
        if wanted(group) {
            up.push(service.to_owned());
        }
    }
    services::command(root, &up)?;
    services::apt_install(&["rclone", "smbclient", "time"])?;
    // With the libsmbclient client too, so both SMB clients are measured.
    services::apt_install(services::LIBSMBCLIENT_BUILD_PACKAGES)?;
    crate::run(
        "build the transfer benchmark (release)",
        crate::cargo().args([
            "build",
            "--release",
            "-p",
            "sstore-cli",
            "--features",
            "libsmbclient",
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
    staged_file(&staged, options.size_mib)?;
    let downloads = options
        .download_dir
        .join(format!("sstore-bench-{}", std::process::id()));
    services::create_private_dir(&downloads)?;
    let downloaded = downloads.join("downloaded.bak");
    let cases: Vec<Case> = cases(&ctx, &dir)?
        .into_iter()
        .filter(|c| wanted(c.group))
        .collect();

    let mut table: Vec<(&'static str, [Sample; 4])> = Vec::new();
    let outcome = (|| -> Result<(), String> {
        for round in 1..=options.rounds {
            for case in &cases {
                eprintln!("==> round {round}/{}: {}", options.rounds, case.name);
                let config = dir.join(format!("{}.toml", case.name));
                services::write_private(&config, &case.config)?;
                let ours = |phase: &str, file: &Path| {
                    let mut cmd = Command::new(&bench_bin);
                    cmd.args([phase, "--kind", case.kind, "--config"])
                        .arg(&config)
                        .args(["--key", SSTORE_KEY, "--file"])
                        .arg(file)
                        .envs(case.env.iter().map(|(k, v)| (k, v)));
                    cmd
                };
                let steps = [
                    ours("upload", &staged),
                    case.reference.upload(&staged),
                    ours("download", &downloaded),
                    case.reference.download(&downloaded),
                ];
                // Who goes first alternates, so neither always meets a warmer server (the
                // first download after the uploads is measurably slower on Azurite whoever makes
                // it); an even number of rounds gives each tool the first place equally often.
                let order: [usize; 4] = if round % 2 == 1 {
                    [0, 1, 2, 3]
                } else {
                    [1, 0, 3, 2]
                };
                let mut samples = [Sample {
                    mib_per_s: 0.0,
                    peak_rss_mib: 0.0,
                }; 4];
                for i in order {
                    let _ = std::fs::remove_file(&downloaded);
                    let _ = Command::new("sync").status();
                    samples[i] = timed(&steps[i], options.size_mib)?;
                    if i >= 2 {
                        same_bytes(&staged, &downloaded)?;
                        let _ = std::fs::remove_file(&downloaded);
                    }
                    eprintln!(
                        "    {:<12} {:>6.0} MiB/s  {:>4.0} MiB peak RSS",
                        COLUMNS[i].replace("ref", case.reference.tool()),
                        samples[i].mib_per_s,
                        samples[i].peak_rss_mib
                    );
                }
                table.push((case.name, samples));
            }
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&downloads);
    for case in &cases {
        case.reference.clean_up();
        let config = dir.join(format!("{}.toml", case.name));
        let _ = services::run_quiet(
            "clean up",
            Command::new(&bench_bin)
                .args(["delete", "--kind", case.kind, "--config"])
                .arg(&config)
                .args(["--key", SSTORE_KEY])
                .envs(case.env.iter().map(|(k, v)| (k, v))),
        );
    }
    outcome?;

    println!();
    println!(
        "{} MiB, {} round(s); medians (MiB/s); peak RSS is the largest of the rounds",
        options.size_mib, options.rounds
    );
    println!(
        "{:<22} {:<9} {:>10} {:>10} {:>7} {:>11} {:>11}",
        "server", "direction", "reference", "sstore", "ratio", "sstore RSS", "ref RSS"
    );
    for case in &cases {
        let rows: Vec<&[Sample; 4]> = table
            .iter()
            .filter(|(n, _)| *n == case.name)
            .map(|(_, s)| s)
            .collect();
        let median = |k: usize| {
            let mut v: Vec<f64> = rows.iter().map(|r| r[k].mib_per_s).collect();
            v.sort_by(f64::total_cmp);
            let n = v.len();
            if n.is_multiple_of(2) {
                (v[n / 2 - 1] + v[n / 2]) / 2.0
            } else {
                v[n / 2]
            }
        };
        let peak = |k: usize| rows.iter().map(|r| r[k].peak_rss_mib).fold(0.0, f64::max);
        for (direction, ours, theirs) in [("upload", 0, 1), ("download", 2, 3)] {
            println!(
                "{:<22} {:<9} {:>10.0} {:>10.0} {:>6.2}x {:>7.0} MiB {:>7.0} MiB   ({})",
                case.name,
                direction,
                median(theirs),
                median(ours),
                median(ours) / median(theirs),
                peak(ours),
                peak(theirs),
                case.reference.tool(),
            );
        }
    }
    Ok(())
}

/// `size_mib` MiB of random bytes at `path` (kept between runs when the size matches).
fn staged_file(path: &Path, size_mib: u64) -> Result<(), String> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == size_mib << 20) {
        return Ok(());
    }
    eprintln!(
        "==> writing {size_mib} MiB of random bytes to {}",
        path.display()
    );
    services::run_quiet(
        "dd",
        Command::new("dd")
            .arg("if=/dev/urandom")
            .arg(format!("of={}", path.display()))
            .args(["bs=1M", &format!("count={size_mib}"), "status=none"]),
    )
    .map(|_| ())
}

/// Every case, with the settings both tools need, from what `services up` recorded.
fn cases(ctx: &Ctx, dir: &Path) -> Result<Vec<Case>, String> {
    let env_text = std::fs::read_to_string(ctx.env_file())
        .map_err(|e| format!("{}: {e}", ctx.env_file().display()))?;
    let get = |key: &str| -> Result<String, String> {
        env_text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_owned)
            .ok_or_else(|| format!("{key} missing from services.env (is the service up?)"))
    };
    let pair = |k: &str, v: String| (k.to_owned(), v);
    let mut cases = Vec::new();

    if let Ok(secret) = get("SSTORE_TEST_S3_SECRET_KEY") {
        let bucket = get("SSTORE_TEST_S3_BUCKET")?;
        let endpoint = get("SSTORE_TEST_S3_ENDPOINT")?;
        let access_key = get("SSTORE_TEST_S3_ACCESS_KEY")?;
        let secret_file = dir.join("s3-secret");
        services::write_private(&secret_file, &secret)?;
        cases.push(Case {
            name: "s3s-fs",
            group: "s3",
            kind: "s3",
            config: format!(
                "bucket = '{bucket}'\nendpoint = '{endpoint}'\nallow_http = true\n\
                 access_key_id = '{access_key}'\nsecret_access_key_file = '{}'\n",
                secret_file.display()
            ),
            env: Vec::new(),
            reference: Reference::Rclone {
                env: vec![
                    pair("RCLONE_CONFIG_BENCHS3_TYPE", "s3".into()),
                    pair("RCLONE_CONFIG_BENCHS3_PROVIDER", "Other".into()),
                    pair("RCLONE_CONFIG_BENCHS3_ENDPOINT", endpoint),
                    pair("RCLONE_CONFIG_BENCHS3_REGION", "us-east-1".into()),
                    pair("RCLONE_CONFIG_BENCHS3_ACCESS_KEY_ID", access_key),
                    pair("RCLONE_CONFIG_BENCHS3_SECRET_ACCESS_KEY", secret),
                ],
                path: format!("benchs3:{bucket}/{REFERENCE_NAME}"),
            },
        });
    }

    if let Ok(key) = get("SSTORE_TEST_AZURE_KEY") {
        let container = get("SSTORE_TEST_AZURE_CONTAINER")?;
        let endpoint = get("SSTORE_TEST_AZURE_ENDPOINT")?;
        let key_file = dir.join("azure-key");
        services::write_private(&key_file, &key)?;
        cases.push(Case {
            name: "azurite",
            group: "azure",
            kind: "azure",
            config: format!(
                "container = '{container}'\nendpoint = '{endpoint}'\nallow_http = true\n\
                 account = '{}'\naccount_key_file = '{}'\n",
                get("SSTORE_TEST_AZURE_ACCOUNT")?,
                key_file.display()
            ),
            env: Vec::new(),
            reference: Reference::Rclone {
                // Debian's rclone 1.60 reaches Azurite only through a SAS URL (its
                // use_emulator and endpoint options do not work with it).
                env: vec![
                    pair("RCLONE_CONFIG_BENCHAZ_TYPE", "azureblob".into()),
                    pair(
                        "RCLONE_CONFIG_BENCHAZ_SAS_URL",
                        format!("{endpoint}/{container}?{}", get("SSTORE_TEST_AZURE_SAS")?),
                    ),
                ],
                path: format!("benchaz:{container}/{REFERENCE_NAME}"),
            },
        });
    }

    if let Ok(password) = get("SSTORE_TEST_SMB_PASSWORD") {
        let user = get("SSTORE_TEST_SMB_USER")?;
        let share = get("SSTORE_TEST_SMB_SHARE")?;
        let auth = dir.join("smbclient.auth");
        services::write_private(
            &auth,
            &format!("username = {user}\npassword = {password}\n"),
        )?;
        // The default build's pure-Rust client on the signing server, and the opt-in
        // libsmbclient client on both (the only one that can serve the encrypting server).
        for (name, port_key, client) in [
            ("samba signed", "SSTORE_TEST_SMB_PORT", "smb2"),
            (
                "samba signed libsmbclient",
                "SSTORE_TEST_SMB_PORT",
                "libsmbclient",
            ),
            (
                "samba encrypted libsmbclient",
                "SSTORE_TEST_SMB_ENCRYPTED_PORT",
                "libsmbclient",
            ),
        ] {
            let port = get(port_key)?;
            cases.push(Case {
                name,
                group: "smb",
                kind: "smb",
                config: format!(
                    "server = '127.0.0.1'\nport = {port}\nshare = '{share}'\nfolder = 'bench'\n\
                     user = '{user}'\npassword_env = 'SSTORE_BENCH_SMB_PASSWORD'\n\
                     client = '{client}'\n"
                ),
                env: vec![pair("SSTORE_BENCH_SMB_PASSWORD", password.clone())],
                reference: Reference::Smbclient {
                    port,
                    share: share.clone(),
                    auth: auth.clone(),
                },
            });
        }
    }
    Ok(cases)
}

/// One transfer of `size_mib` MiB under GNU time: its rate and peak RSS.
fn timed(cmd: &Command, size_mib: u64) -> Result<Sample, String> {
    let t = bench_util::timed(cmd)?;
    Ok(Sample {
        mib_per_s: size_mib as f64 / t.seconds.max(0.001),
        peak_rss_mib: t.peak_rss_mib,
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
