//! The test servers `cargo xtask services up` starts (S3, Azurite, SFTP, WebDAV, Samba), as
//! target tests find them.
//!
//! `services up` writes `KEY=VALUE` lines to `<workspace>/.services/services.env`;
//! `SSTORE_SERVICES_ENV` names another file. A test asks for the keys it needs with
//! [`require`]: when they are missing it is skipped with a printed reason, unless
//! `SSTORE_REQUIRE_SERVICES=1` (set by `cargo xtask ci`), where it fails instead, so CI never
//! passes a server test that did not run.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The entries of the services file.
#[derive(Debug, Clone)]
pub struct Services {
    file: PathBuf,
    entries: BTreeMap<String, String>,
}

impl Services {
    /// The value of `key` (which [`require`] checked is present).
    pub fn get(&self, key: &str) -> &str {
        self.entries
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| {
                panic!(
                    "{} has no {key}; run `cargo xtask services up`",
                    self.file.display()
                )
            })
    }

    /// The file the entries came from.
    pub fn file(&self) -> &PathBuf {
        &self.file
    }
}

/// Where the services file is: `SSTORE_SERVICES_ENV`, or `.services/services.env` in the
/// nearest ancestor of the working folder that has one.
fn locate() -> Option<PathBuf> {
    if let Some(file) = std::env::var_os("SSTORE_SERVICES_ENV") {
        return Some(PathBuf::from(file));
    }
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .map(|dir| dir.join(".services").join("services.env"))
        .find(|file| file.is_file())
}

fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// The services, if every key in `keys` is present. Otherwise prints why the calling test is
/// skipped and returns `None`, or panics when `SSTORE_REQUIRE_SERVICES=1`.
pub fn require(keys: &[&str]) -> Option<Services> {
    let required = std::env::var("SSTORE_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
    let found = locate().and_then(|file| {
        let text = std::fs::read_to_string(&file).ok()?;
        Some(Services {
            entries: parse(&text),
            file,
        })
    });
    let missing: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| found.as_ref().is_none_or(|s| !s.entries.contains_key(*k)))
        .collect();
    if missing.is_empty() {
        return found;
    }
    let reason = format!(
        "the test servers are not up ({} missing); run `cargo xtask services up`",
        missing.join(", ")
    );
    if required {
        panic!("{reason} (SSTORE_REQUIRE_SERVICES=1)");
    }
    eprintln!("skipped: {reason}");
    None
}

/// A daemon `services up` started, found through its pid file, for tests that crash a server
/// mid-transfer: [`Daemon::kill`] stops it as a crash would (SIGKILL to its process group),
/// [`Daemon::start`] starts it again with the same command line, folder and environment.
#[derive(Debug, Clone)]
pub struct Daemon {
    pid_file: PathBuf,
    argv: Vec<std::ffi::OsString>,
    cwd: PathBuf,
    env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
}

impl Daemon {
    /// Reads the running daemon's command line from `/proc`.
    pub fn from_pid_file(pid_file: impl Into<PathBuf>) -> std::io::Result<Self> {
        use std::os::unix::ffi::OsStrExt;
        let pid_file = pid_file.into();
        let pid = Self::pid(&pid_file)?;
        let split = |bytes: Vec<u8>| -> Vec<std::ffi::OsString> {
            bytes
                .split(|b| *b == 0)
                .filter(|part| !part.is_empty())
                .map(|part| std::ffi::OsStr::from_bytes(part).to_owned())
                .collect()
        };
        // A process started a moment ago shows an empty command line until its exec is
        // complete: wait for it, briefly.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let argv = loop {
            let argv = split(std::fs::read(format!("/proc/{pid}/cmdline"))?);
            if !argv.is_empty() {
                break argv;
            }
            if std::time::Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "process {pid} of {} has no command line",
                    pid_file.display()
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        let env = split(std::fs::read(format!("/proc/{pid}/environ"))?)
            .into_iter()
            .filter_map(|pair| {
                let bytes = pair.as_bytes();
                let at = bytes.iter().position(|b| *b == b'=')?;
                Some((
                    std::ffi::OsStr::from_bytes(&bytes[..at]).to_owned(),
                    std::ffi::OsStr::from_bytes(&bytes[at + 1..]).to_owned(),
                ))
            })
            .collect();
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"))?;
        Ok(Self {
            pid_file,
            argv,
            cwd,
            env,
        })
    }

    fn pid(pid_file: &std::path::Path) -> std::io::Result<u32> {
        std::fs::read_to_string(pid_file)?
            .trim()
            .parse()
            .map_err(|_| std::io::Error::other(format!("{} holds no pid", pid_file.display())))
    }

    /// Kills the daemon's process group with SIGKILL and waits until it is gone.
    pub fn kill(&self) -> std::io::Result<()> {
        let pid = Self::pid(&self.pid_file)?;
        std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status()?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists()
            && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(())
    }

    /// Starts the daemon again in its own process group and records its new pid.
    pub fn start(&self) -> std::io::Result<()> {
        use std::os::unix::process::CommandExt;
        let (program, args) = self
            .argv
            .split_first()
            .ok_or_else(|| std::io::Error::other("empty command line"))?;
        let child = std::process::Command::new(program)
            .args(args)
            .current_dir(&self.cwd)
            .env_clear()
            .envs(self.env.iter().cloned())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()?;
        std::fs::write(&self.pid_file, format!("{}\n", child.id()))?;
        Ok(())
    }
}

/// Waits until `127.0.0.1:port` accepts connections (after [`Daemon::start`]).
pub fn wait_for_port(port: u16, timeout: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        if std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200))
            .is_ok()
        {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_lines_parse() {
        let map = parse("# comment\nA=1\n\n B = x=y \nnot a line\n");
        assert_eq!(map.get("A").map(String::as_str), Some("1"));
        assert_eq!(map.get("B").map(String::as_str), Some("x=y"));
        assert_eq!(map.len(), 2);
    }
}
