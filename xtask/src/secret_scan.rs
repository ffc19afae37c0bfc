//! The secret scan that follows the suite in `cargo xtask ci`. While the tests run they keep
//! every file they write (`sstore_tests::scratch_dir` under SSTORE_TEST_KEEP_FILES, in a
//! TMPDIR of their own) and every `sstore` command line they start (a wrapper named in
//! SSTORE_TEST_ARGV_WRAPPER records it, then execs the binary). Afterwards those files, those
//! command lines and the command lines of every process still running (the test servers) are
//! searched for every secret the tests use: the passphrases, passwords, tokens and credential
//! values in the test sources, and the test servers' credentials. A hit fails the run and names
//! the file or process and where the secret comes from, never the secret itself.
//!
//! Allowed: a secret file handed to sstore on purpose (owner-only, holding exactly the secret),
//! and the S3 test server's keys on its own command line (s3s-fs takes them nowhere else).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Files larger than this are encrypted stores and backups; they are counted, not read.
const MAX_SCANNED: u64 = 64 * 1024 * 1024;
/// Processes that can only take their credentials on the command line.
const ARGV_EXEMPT: &[&str] = &["s3s-fs"];

pub struct Scan {
    dir: PathBuf,
    tmp: PathBuf,
    wrapper: PathBuf,
    argv_log: PathBuf,
}

/// One secret: where it comes from (shown) and its value (never shown).
struct Secret {
    origin: String,
    value: String,
}

impl Scan {
    /// A fresh scan folder with the command-line wrapper. It is short and under the system's
    /// temporary folder, not the target folder: ssh (the SFTP target) puts its control
    /// socket in TMPDIR, and a socket's path may not exceed 108 bytes.
    pub fn prepare() -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("sstore-scan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        let argv_log = dir.join("argv.log");
        let wrapper = dir.join("sstore-argv");
        let script = format!(
            "#!/bin/sh\n# cargo xtask ci: records this sstore command line for the secret scan\n\
             printf '%s\\n' \"$*\" >> '{}'\nexec \"$SSTORE_TEST_BIN\" \"$@\"\n",
            argv_log.display()
        );
        std::fs::write(&wrapper, script).map_err(|e| format!("{}: {e}", wrapper.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("{}: {e}", wrapper.display()))?;
        }
        Ok(Self {
            dir,
            tmp,
            wrapper,
            argv_log,
        })
    }

    /// Makes a test run keep its files and record its command lines for this scan.
    pub fn attach(&self, cmd: &mut Command) {
        cmd.env("TMPDIR", &self.tmp)
            .env("SSTORE_TEST_KEEP_FILES", "1")
            .env("SSTORE_TEST_ARGV_WRAPPER", &self.wrapper);
    }

    /// Searches what the tests left; removes it afterwards. Returns the summary line, or the
    /// hits as an error.
    pub fn finish(self, root: &Path, services_env: &Path) -> Result<String, String> {
        let secrets = secrets(root, services_env)?;
        let finder = Finder::new(&secrets);
        let mut hits = Vec::new();
        let (mut files, mut bytes, mut skipped) = (0u64, 0u64, 0u64);
        for file in walk(&self.tmp) {
            let Ok(meta) = std::fs::symlink_metadata(&file) else {
                continue;
            };
            if meta.len() > MAX_SCANNED {
                skipped += 1;
                continue;
            }
            let Ok(content) = std::fs::read(&file) else {
                continue;
            };
            files += 1;
            bytes += content.len() as u64;
            for secret in finder.found_in(&content) {
                if !is_secret_file(&meta, &content, &secret.value) {
                    hits.push(format!("{}: {}", file.display(), secret.origin));
                }
            }
        }
        let argv = std::fs::read(&self.argv_log).unwrap_or_default();
        let command_lines = argv.iter().filter(|b| **b == b'\n').count();
        for (n, line) in argv.split(|b| *b == b'\n').enumerate() {
            for secret in finder.found_in(line) {
                {
                    hits.push(format!(
                        "sstore command line {} of {}: {}",
                        n + 1,
                        self.argv_log.display(),
                        secret.origin
                    ));
                }
            }
        }
        let processes = scan_processes(&secrets, &mut hits);
        if !hits.is_empty() {
            return Err(format!(
                "the secret scan found {} secret(s) written out (the files are kept in {}):\n  {}",
                hits.len(),
                self.dir.display(),
                hits.join("\n  ")
            ));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(format!(
            "secret scan: {} secrets, {files} files ({:.1} MiB; {skipped} encrypted stores/backups over {} MiB not read), {command_lines} sstore command lines, {processes} running processes: no secret found",
            secrets.len(),
            bytes as f64 / 1_048_576.0,
            MAX_SCANNED / 1_048_576
        ))
    }
}

/// A secret file given to sstore on purpose: owner-only and holding just the secret.
fn is_secret_file(meta: &std::fs::Metadata, content: &[u8], secret: &str) -> bool {
    #[cfg(unix)]
    let private = {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o077 == 0
    };
    #[cfg(not(unix))]
    let private = meta.is_file();
    private && content.trim_ascii() == secret.as_bytes()
}

/// Finds every secret in a buffer in one pass: a position is looked at further only when its
/// first two bytes begin some secret (a 64 Ki-bit table), then compared with those secrets.
struct Finder<'a> {
    secrets: &'a [Secret],
    /// Which secrets begin with each two-byte prefix.
    by_prefix: std::collections::HashMap<[u8; 2], Vec<usize>>,
    table: Vec<bool>,
}

impl<'a> Finder<'a> {
    fn new(secrets: &'a [Secret]) -> Self {
        let mut by_prefix: std::collections::HashMap<[u8; 2], Vec<usize>> = Default::default();
        let mut table = vec![false; 1 << 16];
        for (i, secret) in secrets.iter().enumerate() {
            let b = secret.value.as_bytes();
            if b.len() >= 2 {
                by_prefix.entry([b[0], b[1]]).or_default().push(i);
                table[usize::from(b[0]) << 8 | usize::from(b[1])] = true;
            }
        }
        Self {
            secrets,
            by_prefix,
            table,
        }
    }

    fn found_in(&self, haystack: &[u8]) -> Vec<&'a Secret> {
        let mut found = vec![false; self.secrets.len()];
        for (at, pair) in haystack.windows(2).enumerate() {
            if !self.table[usize::from(pair[0]) << 8 | usize::from(pair[1])] {
                continue;
            }
            for &i in self
                .by_prefix
                .get(&[pair[0], pair[1]])
                .into_iter()
                .flatten()
            {
                if haystack[at..].starts_with(self.secrets[i].value.as_bytes()) {
                    found[i] = true;
                }
            }
        }
        self.secrets
            .iter()
            .zip(found)
            .filter_map(|(s, f)| f.then_some(s))
            .collect()
    }
}

#[cfg(test)]
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The command lines of the processes running now; returns how many were read.
fn scan_processes(secrets: &[Secret], hits: &mut Vec<String>) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut read = 0;
    for entry in entries.flatten() {
        let pid = entry.file_name();
        if !pid.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        read += 1;
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if ARGV_EXEMPT.contains(&comm.trim()) {
            continue;
        }
        for secret in Finder::new(secrets).found_in(&cmdline) {
            {
                hits.push(format!(
                    "process {} ({}): {}",
                    pid.to_string_lossy(),
                    comm.trim(),
                    secret.origin
                ));
            }
        }
    }
    read
}

/// Every file under `dir` (symbolic links not followed).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_file() => found.push(entry.path()),
                _ => {}
            }
        }
    }
    found
}

/// The secrets the tests use: named constants and literals in the test sources, and the test
/// servers' credentials from the services' environment file.
fn secrets(root: &Path, services_env: &Path) -> Result<Vec<Secret>, String> {
    let mut found: Vec<Secret> = Vec::new();
    let mut add = |origin: String, value: &str| {
        let looks_like_a_name = value
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'_' || b.is_ascii_digit());
        if value.len() >= 8
            && !looks_like_a_name
            && !value.contains(['{', '/', ' '])
            && !found.iter().any(|s| s.value == value)
        {
            found.push(Secret {
                origin,
                value: value.to_owned(),
            });
        }
    };
    for folder in [
        "cli/tests",
        "tests",
        "service/src",
        "conformance",
        "targets",
    ] {
        for file in walk(&root.join(folder)) {
            if file.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let shown = file
                .strip_prefix(root)
                .unwrap_or(&file)
                .display()
                .to_string();
            for (n, line) in text.lines().enumerate() {
                for value in literals_in(line) {
                    add(format!("{shown}:{}", n + 1), value);
                }
            }
        }
    }
    let env = std::fs::read_to_string(services_env)
        .map_err(|e| format!("{}: {e}", services_env.display()))?;
    for line in env.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        // (An S3 access key id names the key; its secret is SECRET_KEY.)
        if ["PASSWORD", "SECRET", "SAS", "TOKEN", "AZURE_KEY"]
            .iter()
            .any(|k| key.contains(k))
        {
            add(format!("the test server credential {key}"), value.trim());
        }
    }
    if found.len() < 10 {
        return Err(format!(
            "the secret scan found only {} secrets in the test sources: its patterns no longer match them",
            found.len()
        ));
    }
    Ok(found)
}

/// The secret literals on one source line: the value of a `const` whose name says it holds a
/// passphrase, password, secret or token; a `Passphrase::new("...")` argument; a credential
/// value written `Secret-...` (the tests' convention).
fn literals_in(line: &str) -> Vec<&str> {
    let mut values = Vec::new();
    if let Some(rest) = line.trim_start().strip_prefix("const ").or_else(|| {
        line.trim_start()
            .strip_prefix("pub const ")
            .or_else(|| line.trim_start().strip_prefix("pub(crate) const "))
    }) && let Some((name, value)) = rest.split_once(": &str = \"")
        && ["PASS", "SECRET", "TOKEN", "_PW", "PASSWORD"]
            .iter()
            .any(|k| name.contains(k))
        && let Some((value, _)) = value.split_once('"')
    {
        values.push(value);
    }
    // (marker, how many of its bytes precede the value)
    for (marker, skip) in [("Passphrase::new(\"", 17), ("Secret-", 0)] {
        let mut rest = line;
        while let Some(at) = rest.find(marker) {
            let tail = &rest[at + skip..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                .unwrap_or(tail.len());
            values.push(&tail[..end]);
            rest = &tail[end..];
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_secret_literals_of_a_line() {
        assert_eq!(
            literals_in(r#"const BACKUP_PASS: &str = "Soak-Backup-Pass-0";"#),
            ["Soak-Backup-Pass-0"]
        );
        assert_eq!(
            literals_in(r#"pub const PASSWORD_ENV: &str = "SSTORE_SMB_PASSWORD";"#),
            ["SSTORE_SMB_PASSWORD"]
        );
        assert_eq!(
            literals_in(r#"    let p = Passphrase::new("Not-The-Passphrase-1");"#),
            ["Not-The-Passphrase-1"]
        );
        assert_eq!(
            literals_in(r#"&format!("Windows Password=Secret-of-{user}\n"), "Secret-Pin-9""#),
            ["Secret-of-", "Secret-Pin-9"]
        );
        assert_eq!(
            literals_in(r#"const ELEMENT_KEY: &str = "element-6066";"#),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn a_secret_file_is_owner_only_and_only_the_secret() {
        let dir = std::env::temp_dir().join(format!("xtask-scan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pass");
        std::fs::write(&file, "Pass-Word-1\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
            let meta = std::fs::metadata(&file).unwrap();
            assert!(is_secret_file(&meta, b"Pass-Word-1\n", "Pass-Word-1"));
            assert!(!is_secret_file(&meta, b"x Pass-Word-1", "Pass-Word-1"));
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            let meta = std::fs::metadata(&file).unwrap();
            assert!(!is_secret_file(&meta, b"Pass-Word-1", "Pass-Word-1"));
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert!(contains(b"a Secret-Pin-9 b", b"Secret-Pin-9"));
        assert!(!contains(b"a Secret-Pin-8 b", b"Secret-Pin-9"));
        let secrets = [
            Secret {
                origin: "a".into(),
                value: "Secret-Pin-9".into(),
            },
            Secret {
                origin: "b".into(),
                value: "Secret-Other-1".into(),
            },
            Secret {
                origin: "c".into(),
                value: "Pass-Word-1".into(),
            },
        ];
        let finder = Finder::new(&secrets);
        let found: Vec<&str> = finder
            .found_in(b"x Secret-Pin-8 Secret-Other-1 ... Pass-Word-1")
            .iter()
            .map(|s| s.origin.as_str())
            .collect();
        assert_eq!(found, ["b", "c"]);
        assert!(finder.found_in(b"Secret-Pin-").is_empty());
        assert_eq!(finder.found_in(b"Secret-Pin-9").len(), 1);
    }
}
