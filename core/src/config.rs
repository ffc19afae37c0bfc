//! The configuration file (TOML). Unknown keys are errors that name the key (and, inside a
//! `[[target]]`, the target). Default location: `sstore/config.toml` in the platform's config
//! folder (`~/.config/sstore/config.toml` on Linux); `--config` or `SSTORE_CONFIG` overrides.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The store file.
    pub store: Option<PathBuf>,
    /// A folder of run-time target plugins (shared libraries), loaded when a command needs
    /// targets.
    pub plugins: Option<PathBuf>,
    #[serde(default)]
    pub backup: BackupSection,
    #[serde(default)]
    pub transfer: TransferSection,
    /// Named targets: `[[target]] name = "nas" kind = "smb" ...`.
    #[serde(default, rename = "target")]
    targets: Vec<toml::Table>,
    #[serde(skip)]
    pub named_targets: Vec<NamedTarget>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSection {
    /// Default backup directory for backup, restore, history and verify: a folder, a URL or
    /// the name of a `[[target]]`.
    pub directory: Option<String>,
    /// Where work files go when the backup directory is not a local folder (the job lock, the
    /// staged backup). Default: `sstore/staging` in the platform's data folder.
    pub staging: Option<PathBuf>,
    /// Compress the store before encryption (default true).
    pub compress: Option<bool>,
    /// Targets every `sstore backup` sends to when no `--target` is given (names or URLs).
    #[serde(default)]
    pub targets: Vec<String>,
    /// Keep the staged copy after every target verified it (default false).
    pub keep_local: Option<bool>,
    /// Folder of job records (`sstore history --jobs`, `sstore status`). Default:
    /// `sstore/jobs` in the platform's data folder.
    pub jobs: Option<PathBuf>,
    /// Progress lines in the job log every N percent (default 5; 0 for none).
    pub percentage: Option<u8>,
}

/// `[transfer]`: how staged backups reach the targets.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferSection {
    /// Targets receiving at the same time (default 4).
    pub concurrency: Option<usize>,
    /// Attempts per step, the first included (default 10).
    pub attempts: Option<u32>,
    /// First wait before a retry, in milliseconds; doubles each time (default 1000).
    pub retry_delay_ms: Option<u64>,
    /// Longest wait between retries, in milliseconds (default 60000).
    pub max_retry_delay_ms: Option<u64>,
    /// No retry starts after this many seconds of one step (default 1800).
    pub deadline_secs: Option<u64>,
}

/// A `[[target]]` entry: its name, kind, optional URL, and the kind's own settings.
#[derive(Debug, Clone)]
pub struct NamedTarget {
    pub name: String,
    pub kind: String,
    pub url: Option<String>,
    pub settings: toml::Table,
}

impl NamedTarget {
    fn parse(index: usize, mut table: toml::Table) -> Result<Self> {
        let mut take_string = |key: &str| -> Result<Option<String>> {
            match table.remove(key) {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s)),
                Some(other) => bail!(
                    "[[target]] #{}: `{key}` must be a string, not {}",
                    index + 1,
                    other.type_str()
                ),
            }
        };
        let name = take_string("name")?;
        let kind = take_string("kind")?;
        let url = take_string("url")?;
        let Some(name) = name.filter(|n| !n.trim().is_empty()) else {
            bail!("[[target]] #{} has no `name`", index + 1);
        };
        let Some(kind) = kind else {
            bail!("target '{name}' has no `kind` (see `sstore targets` for the kinds available)");
        };
        Ok(Self {
            name,
            kind,
            url,
            settings: table,
        })
    }
}

impl Config {
    /// Loads `explicit`, or the default file when it exists, or an empty config. Relative paths
    /// in the file are taken relative to the file's folder.
    pub fn load(explicit: Option<&Path>) -> Result<Self> {
        let path = match explicit {
            Some(p) => p.to_owned(),
            None => match default_path() {
                Some(p) if p.is_file() => p,
                _ => return Ok(Self::default()),
            },
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the config file {}", path.display()))?;
        let mut config: Config =
            toml::from_str(&text).with_context(|| format!("config file {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.store = config.store.map(|p| base.join(p));
        config.plugins = config.plugins.map(|p| base.join(p));
        config.backup.staging = config.backup.staging.map(|p| base.join(p));
        config.backup.jobs = config.backup.jobs.map(|p| base.join(p));
        config.backup.directory = config.backup.directory.map(|d| {
            let is_local = !d.contains("://") && !d.starts_with("\\\\");
            if is_local && Path::new(&d).is_relative() && !config_names_target(&config.targets, &d)
            {
                base.join(d).to_string_lossy().into_owned()
            } else {
                d
            }
        });
        let mut named = Vec::new();
        for (i, table) in std::mem::take(&mut config.targets).into_iter().enumerate() {
            let target = NamedTarget::parse(i, table)
                .with_context(|| format!("config file {}", path.display()))?;
            if named.iter().any(|t: &NamedTarget| t.name == target.name) {
                bail!(
                    "config file {}: two targets are named '{}'",
                    path.display(),
                    target.name
                );
            }
            named.push(target);
        }
        config.named_targets = named;
        Ok(config)
    }

    pub fn target(&self, name: &str) -> Option<&NamedTarget> {
        self.named_targets.iter().find(|t| t.name == name)
    }
}

fn config_names_target(targets: &[toml::Table], name: &str) -> bool {
    targets
        .iter()
        .any(|t| t.get("name").and_then(|v| v.as_str()) == Some(name))
}

pub fn default_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("sstore").join("config.toml"))
}

/// The platform's default store location.
pub fn default_store_path() -> PathBuf {
    data_folder().join("store.db")
}

/// The default staging folder for backup directories that are not local folders.
pub fn default_staging_path() -> PathBuf {
    data_folder().join("staging")
}

/// The default folder of job records.
pub fn default_jobs_path() -> PathBuf {
    data_folder().join("jobs")
}

fn data_folder() -> PathBuf {
    dirs::data_local_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("sstore")
}
