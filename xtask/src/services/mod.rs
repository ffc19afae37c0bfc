//! `cargo xtask services up|down|status`: the real servers the tests run against, on loopback.
//!
//! Each service lives in `<workspace>/.services/<name>/` (git-ignored): its data folder, its
//! generated credentials (owner-only), its log, a `pid` file and an `env` file with the
//! `SSTORE_TEST_*` entries tests read. `up` installs what is missing (Debian packages, npm,
//! `cargo install`), starts what is not running, creates the buckets, containers and folders
//! the tests use, waits until each answers, and writes `.services/services.env` (every
//! service's entries); it is idempotent. The tests find that file through
//! `sstore_conformance::services`.
//!
//! One module per service: [`s3`] (s3s-fs), [`azurite`] (Azure Blob), [`sftp`] (OpenSSH),
//! [`webdav`] (rclone serve webdav), [`samba`] (SMB, two variants).

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub mod azurite;
pub mod s3;
pub mod samba;
pub mod sftp;
pub mod webdav;

/// Where the services live.
pub struct Ctx {
    /// The workspace root.
    pub root: PathBuf,
    /// `<root>/.services`.
    pub dir: PathBuf,
}

impl Ctx {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            dir: root.join(".services"),
        }
    }

    /// `<dir>/<name>`, created owner-only.
    pub fn service_dir(&self, name: &str) -> Result<PathBuf, String> {
        let dir = self.dir.join(name);
        create_private_dir(&dir)?;
        Ok(dir)
    }

    /// Where installed tools go (`cargo install --root`, npm packages).
    pub fn tools(&self) -> PathBuf {
        self.dir.join("tools")
    }

    /// The file with every service's `KEY=VALUE` entries.
    pub fn env_file(&self) -> PathBuf {
        self.dir.join("services.env")
    }
}

/// Environment entries a service publishes for the tests.
pub type EnvEntries = Vec<(String, String)>;

/// One service: how to start it (idempotently) and stop it.
struct Service {
    name: &'static str,
    up: fn(&Ctx) -> Result<EnvEntries, String>,
    down: fn(&Ctx),
}

const SERVICES: &[Service] = &[
    Service {
        name: "s3",
        up: s3::up,
        down: s3::down,
    },
    Service {
        name: "azurite",
        up: azurite::up,
        down: azurite::down,
    },
    Service {
        name: "sftp",
        up: sftp::up,
        down: sftp::down,
    },
    Service {
        name: "webdav",
        up: webdav::up,
        down: webdav::down,
    },
    Service {
        name: "samba",
        up: samba::up,
        down: samba::down,
    },
];

/// Debian packages that the SMB target's opt-in `libsmbclient` feature needs to build (the
/// default build needs none).
pub const LIBSMBCLIENT_BUILD_PACKAGES: &[&str] = &["libsmbclient-dev", "pkg-config"];

pub const USAGE: &str = "services up [NAME...] | down [NAME...] | status";

/// `cargo xtask services ...`.
pub fn command(root: &Path, args: &[String]) -> Result<(), String> {
    let ctx = Ctx::new(root);
    let (verb, names) = match args.split_first() {
        Some((verb, names)) => (verb.as_str(), names),
        None => return Err(format!("usage: cargo xtask {USAGE}")),
    };
    let selected: Vec<&Service> = if names.is_empty() {
        SERVICES.iter().collect()
    } else {
        names
            .iter()
            .map(|n| {
                SERVICES
                    .iter()
                    .find(|s| s.name == n)
                    .ok_or_else(|| format!("unknown service '{n}'"))
            })
            .collect::<Result<_, _>>()?
    };
    match verb {
        "up" => up(&ctx, &selected),
        "down" => {
            for service in selected {
                (service.down)(&ctx);
                let _ = std::fs::remove_file(ctx.dir.join(service.name).join("env"));
                eprintln!("{}: stopped", service.name);
            }
            write_env_file(&ctx)
        }
        "status" => {
            status(&ctx);
            Ok(())
        }
        _ => Err(format!("usage: cargo xtask {USAGE}")),
    }
}

/// Starts every service in `selected`, then writes `services.env`.
/// The Nu HTML Checker (npm's vnu-jar, run by Java) that the console's page tests validate
/// every page with; installed under `.services/tools/npm` when missing. Returns the jar.
pub fn install_html_checker(root: &Path) -> Result<PathBuf, String> {
    const VNU_VERSION: &str = "26.9.27";
    let ctx = Ctx::new(root);
    create_private_dir(&ctx.dir)?;
    let npm_dir = ctx.tools().join("npm");
    let jar = npm_dir.join("node_modules/vnu-jar/build/dist/vnu.jar");
    if Command::new("java").arg("-version").output().is_err() {
        apt_install(&["default-jre-headless"])?;
    }
    if !jar.exists() {
        eprintln!("==> installing the Nu HTML Checker (vnu-jar {VNU_VERSION}, npm)");
        create_private_dir(&npm_dir)?;
        run_quiet(
            "npm install vnu-jar",
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(&npm_dir)
                .arg(format!("vnu-jar@{VNU_VERSION}")),
        )?;
    }
    Ok(jar)
}

pub fn up_all(root: &Path) -> Result<PathBuf, String> {
    let ctx = Ctx::new(root);
    up(&ctx, &SERVICES.iter().collect::<Vec<_>>())?;
    Ok(ctx.env_file())
}

fn up(ctx: &Ctx, selected: &[&Service]) -> Result<(), String> {
    create_private_dir(&ctx.dir)?;
    for service in selected {
        let started = Instant::now();
        eprintln!("==> service {}", service.name);
        let entries = (service.up)(ctx).map_err(|e| format!("service {}: {e}", service.name))?;
        let text: String = entries.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        write_private(&ctx.service_dir(service.name)?.join("env"), &text)?;
        eprintln!(
            "{}: ready ({:.1} s)",
            service.name,
            started.elapsed().as_secs_f64()
        );
    }
    write_env_file(ctx)
}

fn status(ctx: &Ctx) {
    for service in SERVICES {
        let dir = ctx.dir.join(service.name);
        let pids: Vec<String> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let daemon = name.strip_suffix(".pid")?.to_owned();
                let state = match pid_alive(ctx, service.name, &daemon) {
                    Some(pid) => format!("{daemon} running (pid {pid})"),
                    None => format!("{daemon} stopped"),
                };
                Some(state)
            })
            .collect();
        let state = if pids.is_empty() {
            "not started".to_owned()
        } else {
            pids.join(", ")
        };
        println!("{:<8} {state}", service.name);
    }
    println!("env file: {}", ctx.env_file().display());
}

/// Concatenates every running service's `env` file into `services.env`.
fn write_env_file(ctx: &Ctx) -> Result<(), String> {
    let mut text = String::from("# Written by `cargo xtask services up`; read by the tests.\n");
    for service in SERVICES {
        if let Ok(entries) = std::fs::read_to_string(ctx.dir.join(service.name).join("env")) {
            text.push_str(&entries);
        }
    }
    let path = ctx.env_file();
    let _ = std::fs::remove_file(&path);
    write_private(&path, &text)
}

/// Installs the Debian packages that are not installed yet (one `apt-get install`).
pub fn apt_install(packages: &[&str]) -> Result<(), String> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .map(|o| !String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
                .unwrap_or(true)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("installing Debian packages: {}", missing.join(" "));
    let install = |update: bool| -> bool {
        if update {
            let _ = Command::new("apt-get")
                .args(["update", "-q"])
                .stdout(Stdio::null())
                .status();
        }
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if install(false) || install(true) {
        Ok(())
    } else {
        Err(format!(
            "apt-get install {} failed (run it by hand as root to see why)",
            missing.join(" ")
        ))
    }
}

/// The pid file of daemon `daemon` of service `service`.
pub fn pid_file(ctx: &Ctx, service: &str, daemon: &str) -> PathBuf {
    ctx.dir.join(service).join(format!("{daemon}.pid"))
}

/// The pid of a running daemon, from its pid file.
pub fn pid_alive(ctx: &Ctx, service: &str, daemon: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file(ctx, service, daemon))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The state follows the parenthesised command name; Z is a zombie.
    let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
    (state != 'Z').then_some(pid)
}

/// Starts `cmd` as a daemon in its own process group, output to `<daemon>.log`, and records
/// its pid. Returns the pid.
pub fn spawn_daemon(
    ctx: &Ctx,
    service: &str,
    daemon: &str,
    cmd: &mut Command,
) -> Result<u32, String> {
    use std::os::unix::process::CommandExt;
    let dir = ctx.service_dir(service)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{daemon}.log")))
        .map_err(|e| format!("{daemon} log: {e}"))?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {daemon}: {e}"))?;
    let pid = child.id();
    // The child is reaped by nobody until it exits; it outlives xtask on purpose.
    std::mem::forget(child);
    let path = pid_file(ctx, service, daemon);
    let _ = std::fs::remove_file(&path);
    write_private(&path, &format!("{pid}\n"))?;
    Ok(pid)
}

/// Stops a daemon (SIGTERM to its process group, then SIGKILL after 5 s) and removes its pid
/// file.
pub fn stop(ctx: &Ctx, service: &str, daemon: &str) {
    if let Some(pid) = pid_alive(ctx, service, daemon) {
        let group = format!("-{pid}");
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while pid_alive(ctx, service, daemon).is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if pid_alive(ctx, service, daemon).is_some() {
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        }
    }
    let _ = std::fs::remove_file(pid_file(ctx, service, daemon));
}

/// Whether something accepts connections on `127.0.0.1:port`.
pub fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

/// Waits until `127.0.0.1:port` accepts connections.
pub fn wait_port(port: u16, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if port_open(port) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "nothing answered on 127.0.0.1:{port} after {timeout:?}"
    ))
}

/// A running daemon is reused; a dead one is started with `start` and waited for on `port`.
/// The port must be free before a start (another program on it is an error, not reused).
pub fn ensure_daemon(
    ctx: &Ctx,
    service: &str,
    daemon: &str,
    port: u16,
    start: impl FnOnce() -> Result<Command, String>,
) -> Result<(), String> {
    if pid_alive(ctx, service, daemon).is_some() && port_open(port) {
        eprintln!("{service}: {daemon} already running");
        return Ok(());
    }
    stop(ctx, service, daemon);
    if port_open(port) {
        return Err(format!(
            "port {port} is taken by another program; stop it or free the port"
        ));
    }
    let mut cmd = start()?;
    spawn_daemon(ctx, service, daemon, &mut cmd)?;
    wait_port(port, Duration::from_secs(60)).map_err(|e| {
        let log = ctx.dir.join(service).join(format!("{daemon}.log"));
        format!("{daemon}: {e}; see {}", log.display())
    })
}

/// A random secret of `len` characters from /dev/urandom (alphanumeric).
pub fn random_secret(len: usize) -> Result<String, String> {
    use std::io::Read;
    let alphabet = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = vec![0u8; len];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    Ok(bytes
        .iter()
        .map(|b| alphabet[*b as usize % alphabet.len()] as char)
        .collect())
}

/// A secret kept in an owner-only file: read if present, generated and written if not, so
/// a restarted service keeps its credentials.
pub fn stored_secret(path: &Path, len: usize) -> Result<String, String> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let text = text.trim().to_owned();
        if !text.is_empty() {
            return Ok(text);
        }
    }
    let secret = random_secret(len)?;
    let _ = std::fs::remove_file(path);
    write_private(path, &secret)?;
    Ok(secret)
}

pub fn create_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))
}

/// Writes an owner-only file (replacing any).
pub fn write_private(path: &Path, contents: &str) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(contents.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs a command to completion, failing with its output if it fails.
pub fn run_quiet(what: &str, cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
