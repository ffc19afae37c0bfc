//! Runs the real `sstore` binary in a private sandbox (its own HOME, config and data folders).

#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sstore_core::store::{AppType, CredentialSet, FieldDef, FieldType, SecureStore, TargetApp};
use sstore_core::{KdfParams, Passphrase};

pub const PASS: &str = "Cli-Test-Pass-7";

pub struct Sandbox {
    pub tmp: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        Self {
            tmp: sstore_tests::scratch_dir(),
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
        let mut cmd = sstore_command();
        for (key, _) in std::env::vars() {
            if key.starts_with("SSTORE_") && key != "SSTORE_TEST_BIN" {
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

/// The `sstore` binary; under `cargo xtask ci`, through the wrapper it names in
/// SSTORE_TEST_ARGV_WRAPPER, which records each command line for the secret scan and then
/// execs the binary (same process, same arguments).
pub fn sstore_command() -> Command {
    let binary = env!("CARGO_BIN_EXE_sstore");
    match std::env::var_os("SSTORE_TEST_ARGV_WRAPPER") {
        Some(wrapper) => {
            let mut cmd = Command::new(wrapper);
            cmd.env("SSTORE_TEST_BIN", binary);
            cmd
        }
        None => Command::new(binary),
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

/// Creates a store (minimum KDF, passphrase [`PASS`]) with `apps` × `per_app` credential
/// sets, each with an incompressible value of `value_len` bytes: work on it takes long enough
/// to be interrupted, and its backup is about as large as the values.
pub fn big_store(path: &Path, apps: usize, per_app: usize, value_len: usize) {
    let mut store = SecureStore::create(path, &Passphrase::new(PASS), KdfParams::MINIMUM).unwrap();
    let defs: Vec<TargetApp> = (0..apps)
        .map(|i| {
            let mut app = TargetApp::new(format!("app{i:04}"), AppType::Individual);
            app.fields = vec![
                FieldDef::new("User", FieldType::UserName, false),
                FieldDef::new("Cert", FieldType::Certificate, true),
            ];
            app
        })
        .collect();
    store.create_apps(&defs).unwrap();
    let mut store = store.unlock(&sstore_core::Passphrase::new(PASS)).unwrap();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut sets = Vec::new();
    for app in &defs {
        for p in 0..per_app {
            let cert: String = (0..value_len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    alphabet[(x % 64) as usize] as char
                })
                .collect();
            sets.push(
                CredentialSet::new(&app.name, format!("user{p}"))
                    .with("User", format!("{}-user{p}", app.name))
                    .with("Cert", cert),
            );
        }
    }
    store.set_many(&sets).unwrap();
}
