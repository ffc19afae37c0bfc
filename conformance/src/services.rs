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
        self.entries.get(key).map(String::as_str).unwrap_or_else(|| {
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
