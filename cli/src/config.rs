//! The configuration file (TOML). Unknown keys are errors that name the key.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The store file.
    pub store: Option<PathBuf>,
    #[serde(default)]
    pub backup: BackupSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSection {
    /// Default backup directory for backup, restore, history and verify.
    pub directory: Option<PathBuf>,
    /// Compress the store before encryption (default true).
    pub compress: Option<bool>,
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
        config.backup.directory = config.backup.directory.map(|p| base.join(p));
        Ok(config)
    }
}

pub fn default_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("sstore").join("config.toml"))
}

/// The platform's default store location.
pub fn default_store_path() -> PathBuf {
    dirs::data_local_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("sstore")
        .join("store.db")
}
