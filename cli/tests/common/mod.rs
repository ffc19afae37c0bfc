//! Runs the real `sstore` binary in a private sandbox (its own HOME, config and data folders).

#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const PASS: &str = "Cli-Test-Pass-7";

pub struct Sandbox {
    pub tmp: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        Self {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn store(&self) -> PathBuf {
        self.path("store.db")
    }

    pub fn backups(&self) -> PathBuf {
        self.path("backups")
    }

    /// `sstore` with the store passphrase in the environment and nothing inherited that could
    /// point it at a real store or config.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sstore"));
        for (key, _) in std::env::vars() {
            if key.starts_with("SSTORE_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("HOME", self.tmp.path())
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("XDG_DATA_HOME", self.path("data"))
            .env("SSTORE_STORE", self.store())
            .env("SSTORE_PASSPHRASE", PASS)
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        output_with_input(self.cmd().args(args), stdin)
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "sstore {args:?} failed: {}",
            text(&out)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A store with two applications and a few credential sets, through the CLI.
    pub fn sample_store(&self) {
        self.ok(&["store", "init"]);
        self.ok(&[
            "app",
            "new",
            "crm",
            "--type",
            "individual",
            "--friendly-name",
            "CRM",
        ]);
        self.ok(&[
            "app",
            "new",
            "payroll",
            "--type",
            "group",
            "--field",
            "User:user-name",
            "--field",
            "Pin:pin:masked",
        ]);
        for user in ["alice", "bob"] {
            let out = self.run_with_stdin(
                &[
                    "cred",
                    "set",
                    "crm",
                    "--principal",
                    &format!("CONTOSO\\{user}"),
                ],
                &format!("Windows User Name={user}\nWindows Password=Secret-of-{user}\n"),
            );
            assert!(out.status.success(), "{}", text(&out));
        }
        let out = self.run_with_stdin(
            &["cred", "set", "payroll", "--principal", "CONTOSO\\Payroll"],
            "User=svc-payroll\nPin=Secret-Pin-9\n",
        );
        assert!(out.status.success(), "{}", text(&out));
    }
}

/// Runs `cmd`, writing `input` to its standard input; returns what it printed.
pub fn output_with_input(cmd: &mut Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// The names in the staging folder of the backup directory at `root`.
pub fn staging_entries(root: &Path) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(root.join(".sstore-staging"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect()
}

/// stdout and stderr together, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// Every file below `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}
