//! The configuration file (TOML), read the same way by every front end. Unknown keys are
//! errors that name the key (and, inside a `[[target]]`, the target). Default location:
//! `sstore/config.toml` in the platform's config folder (`~/.config/sstore/config.toml` on
//! Linux); `--config` or `SSTORE_CONFIG` overrides. Relative paths are relative to the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::backup::{JobJournal, RetryPolicy, TransferOptions, preflight};
use crate::store::StoreLocation;

/// Why a config file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The store: `store = "path"` (an SQLite file), `store = "mssql://..."`, or a `[store]`
    /// table (`kind = "sqlite" | "sqlserver"`, see [`StoreLocation::from_config`]).
    #[serde(rename = "store")]
    store_setting: Option<toml::Value>,
    /// Where the store lives, as the file says (`None`: not said).
    #[serde(skip)]
    pub store: Option<StoreLocation>,
    /// A folder of run-time target plugins (shared libraries), loaded when a command needs
    /// targets.
    pub plugins: Option<PathBuf>,
    #[serde(default)]
    pub backup: BackupSection,
    #[serde(default)]
    pub transfer: TransferSection,
    /// `[serve]`: the backup service (`sstore serve`).
    #[serde(default)]
    pub serve: ServeSection,
    /// Timer jobs: `[[schedule]] name = "nightly" cron = "0 2 * * *" ...`.
    #[serde(default, rename = "schedule")]
    pub schedules: Vec<crate::schedule::ScheduleConfig>,
    /// Named targets: `[[target]] name = "nas" kind = "smb" ...`.
    #[serde(default, rename = "target")]
    targets: Vec<toml::Table>,
    #[serde(skip)]
    pub named_targets: Vec<NamedTarget>,
    /// The file this was read from (`None`: no file).
    #[serde(skip)]
    pub path: Option<PathBuf>,
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
    /// Recipients (`sstore1...`) every backup is written to, besides or instead of a
    /// passphrase; `--recipient` overrides the list.
    #[serde(default)]
    pub recipients: Vec<String>,
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
    /// How long a target's readiness check may take in a preflight (default 30).
    pub readiness_timeout_secs: Option<u64>,
}

/// `[serve]`: how `sstore serve` listens, who may use it, and where an unattended service
/// finds the secrets it needs (never at a prompt).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSection {
    /// `ADDR:PORT` (default `127.0.0.1:7443`).
    pub listen: Option<String>,
    /// TLS certificate and key (PEM). Without them the service generates a self-signed
    /// certificate beside the config (or in its state folder) and prints its fingerprint.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP (only on a loopback address, unless `insecure_listen`).
    #[serde(default)]
    pub plain_http: bool,
    /// Allow a non-loopback address without TLS (not recommended).
    #[serde(default)]
    pub insecure_listen: bool,
    /// The operators file (owner-only; default `operators.json` beside the config, or in the
    /// state folder).
    pub operators: Option<PathBuf>,
    /// The service's own files: state, certificate, audit log (default
    /// `sstore/service` in the platform's data folder).
    pub state: Option<PathBuf>,
    /// Owner-only files holding the store passphrase and the backup passphrase (else
    /// `SSTORE_PASSPHRASE` / `SSTORE_BACKUP_PASSPHRASE`, or `$CREDENTIALS_DIRECTORY`).
    pub store_passphrase_file: Option<PathBuf>,
    pub backup_passphrase_file: Option<PathBuf>,
    /// Folders a job requested through the API may use as a directory or restore into
    /// (besides configured targets and the `[backup] directory`). Empty: none.
    #[serde(default)]
    pub allowed_paths: Vec<PathBuf>,
    /// How often the store is checked for a Master Key change made outside the service
    /// (default 30 s).
    pub key_check_secs: Option<u64>,
    /// Identity files (owner-only) the service may use to verify and restore backups written
    /// to recipients. Leave empty to keep the service unable to read any backup.
    #[serde(default)]
    pub identity_files: Vec<PathBuf>,
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
    fn parse(index: usize, mut table: toml::Table) -> Result<Self, String> {
        let mut take_string = |key: &str| -> Result<Option<String>, String> {
            match table.remove(key) {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s)),
                Some(other) => Err(format!(
                    "[[target]] #{}: `{key}` must be a string, not {}",
                    index + 1,
                    other.type_str()
                )),
            }
        };
        let name = take_string("name")?;
        let kind = take_string("kind")?;
        let url = take_string("url")?;
        let Some(name) = name.filter(|n| !n.trim().is_empty()) else {
            return Err(format!("[[target]] #{} has no `name`", index + 1));
        };
        let Some(kind) = kind else {
            return Err(format!(
                "target '{name}' has no `kind` (see `sstore targets` for the kinds available)"
            ));
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
    pub fn load(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        let path = match explicit {
            Some(p) => p.to_owned(),
            None => match default_path() {
                Some(p) if p.is_file() => p,
                _ => return Ok(Self::default()),
            },
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(&text, &path)
    }

    /// Reads a config file's text; `path` names it in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let mut config: Config = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.store = match config.store_setting.take() {
            Some(value) => {
                Some(StoreLocation::from_config(value, base).map_err(|e| invalid(e.to_string()))?)
            }
            None => None,
        };
        config.plugins = config.plugins.map(|p| base.join(p));
        config.backup.staging = config.backup.staging.map(|p| base.join(p));
        config.backup.jobs = config.backup.jobs.map(|p| base.join(p));
        let serve = &mut config.serve;
        for path in [
            &mut serve.tls_cert,
            &mut serve.tls_key,
            &mut serve.operators,
            &mut serve.state,
            &mut serve.store_passphrase_file,
            &mut serve.backup_passphrase_file,
        ] {
            *path = path.take().map(|p| base.join(p));
        }
        serve.allowed_paths = std::mem::take(&mut serve.allowed_paths)
            .into_iter()
            .map(|p| base.join(p))
            .collect();
        serve.identity_files = std::mem::take(&mut serve.identity_files)
            .into_iter()
            .map(|p| base.join(p))
            .collect();
        // A relative folder (not a URL, a UNC path or a target's name) follows the file, for
        // `[backup] directory` and every schedule's `directory` alike.
        let anchored = |d: String| {
            let is_local = !d.contains("://") && !d.starts_with("\\\\");
            if is_local && Path::new(&d).is_relative() && !names_target(&config.targets, &d) {
                base.join(d).to_string_lossy().into_owned()
            } else {
                d
            }
        };
        let directory = config.backup.directory.take().map(anchored);
        let schedule_directories: Vec<Option<String>> = config
            .schedules
            .iter_mut()
            .map(|s| s.directory.take().map(anchored))
            .collect();
        config.backup.directory = directory;
        for (schedule, directory) in config.schedules.iter_mut().zip(schedule_directories) {
            schedule.directory = directory;
        }
        let mut named: Vec<NamedTarget> = Vec::new();
        for (i, table) in std::mem::take(&mut config.targets).into_iter().enumerate() {
            let target = NamedTarget::parse(i, table).map_err(invalid)?;
            if named.iter().any(|t| t.name == target.name) {
                return Err(invalid(format!("two targets are named '{}'", target.name)));
            }
            named.push(target);
        }
        config.named_targets = named;
        for text in &config.backup.recipients {
            text.parse::<crate::recipient::Recipient>()
                .map_err(|e| invalid(format!("[backup] recipients: {e}")))?;
        }
        crate::schedule::parse_schedules(&config.schedules).map_err(|e| invalid(e.to_string()))?;
        config.path = Some(path.to_owned());
        Ok(config)
    }

    pub fn target(&self, name: &str) -> Option<&NamedTarget> {
        self.named_targets.iter().find(|t| t.name == name)
    }

    /// The job journal (`[backup] jobs`, else the platform's data folder).
    pub fn journal(&self) -> JobJournal {
        JobJournal::new(self.backup.jobs.clone().unwrap_or_else(default_jobs_path))
    }

    /// How staged backups reach their destinations: `[transfer]` and `[backup]` settings over
    /// the defaults of [`TransferOptions`] and [`RetryPolicy`].
    pub fn transfer_options(&self) -> TransferOptions {
        let t = &self.transfer;
        let defaults = TransferOptions::default();
        let retry = defaults.retry;
        TransferOptions {
            concurrency: t.concurrency.unwrap_or(defaults.concurrency).max(1),
            retry: RetryPolicy {
                first_delay: t
                    .retry_delay_ms
                    .map_or(retry.first_delay, Duration::from_millis),
                max_delay: t
                    .max_retry_delay_ms
                    .map_or(retry.max_delay, Duration::from_millis),
                deadline: t.deadline_secs.map_or(retry.deadline, Duration::from_secs),
                max_attempts: t.attempts.unwrap_or(retry.max_attempts).max(1),
            },
            keep_local: self.backup.keep_local.unwrap_or(defaults.keep_local),
            percentage: self.backup.percentage.unwrap_or(defaults.percentage),
        }
    }

    /// The recipients of `[backup] recipients` (checked when the file was read).
    pub fn recipients(&self) -> Vec<crate::recipient::Recipient> {
        self.backup
            .recipients
            .iter()
            .filter_map(|r| r.parse().ok())
            .collect()
    }

    /// How long a destination's readiness check may take in a preflight.
    pub fn readiness_timeout(&self) -> Duration {
        self.transfer
            .readiness_timeout_secs
            .map_or(preflight::DEFAULT_READINESS_TIMEOUT, Duration::from_secs)
    }
}

fn names_target(targets: &[toml::Table], name: &str) -> bool {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn transfer_settings_override_the_defaults_and_relative_paths_follow_the_file() {
        let config = Config::parse(
            "store = 'store.db'\n[backup]\ndirectory = 'backups'\nkeep_local = true\n\
             [transfer]\nattempts = 3\nretry_delay_ms = 10\nreadiness_timeout_secs = 5\n\
             [[target]]\nname = 'nas'\nkind = 'local'\npath = '/srv'\n\
             [[schedule]]\nname = 'here'\nevery = '6h'\ndirectory = 'nightly'\n\
             [[schedule]]\nname = 'there'\nevery = '6h'\ndirectory = 'nas'\n\
             [[schedule]]\nname = 'away'\nevery = '6h'\ndirectory = 's3://bucket/x'\n",
            Path::new("/etc/sstore/config.toml"),
        )
        .unwrap();
        let schedule_directories: Vec<Option<&str>> = config
            .schedules
            .iter()
            .map(|s| s.directory.as_deref())
            .collect();
        assert_eq!(
            schedule_directories,
            [
                Some("/etc/sstore/nightly"),
                Some("nas"),
                Some("s3://bucket/x")
            ]
        );
        assert_eq!(
            config.store,
            Some(StoreLocation::Sqlite("/etc/sstore/store.db".into()))
        );
        assert_eq!(
            config.backup.directory.as_deref(),
            Some("/etc/sstore/backups")
        );
        let t = config.transfer_options();
        assert_eq!(t.retry.max_attempts, 3);
        assert_eq!(t.retry.first_delay, Duration::from_millis(10));
        assert_eq!(t.retry.max_delay, RetryPolicy::default().max_delay);
        assert_eq!(t.concurrency, TransferOptions::default().concurrency);
        assert!(t.keep_local);
        assert_eq!(config.readiness_timeout(), Duration::from_secs(5));
        assert_eq!(config.target("nas").unwrap().kind, "local");
    }

    #[test]
    fn unknown_keys_and_duplicate_targets_are_named() {
        let path = Path::new("/x/config.toml");
        let e = Config::parse("[backup]\ndirectroy = 'x'\n", path).unwrap_err();
        assert!(e.to_string().contains("directroy"), "{e}");
        assert!(e.to_string().contains("/x/config.toml"), "{e}");
        let e = Config::parse(
            "[[target]]\nname='a'\nkind='local'\n[[target]]\nname='a'\nkind='local'\n",
            path,
        )
        .unwrap_err();
        assert!(e.to_string().contains("two targets are named 'a'"), "{e}");
        let e = Config::parse("[[target]]\nname='a'\n", path).unwrap_err();
        assert!(e.to_string().contains("has no `kind`"), "{e}");
    }

    #[test]
    fn the_store_is_a_path_a_url_or_a_table() {
        use crate::store::{Encryption, PasswordSource, SqlAuth};
        let path = Path::new("/etc/sstore/config.toml");
        let config =
            Config::parse("store = 'mssql://sstore@db1/Vault?encrypt=on'\n", path).unwrap();
        let Some(StoreLocation::SqlServer(c)) = config.store else {
            panic!("not SQL Server")
        };
        assert_eq!(
            (c.host.as_str(), c.database.as_str(), c.encrypt),
            ("db1", "Vault", Encryption::On)
        );
        let config = Config::parse(
            "[store]\nkind = 'sqlserver'\nserver = 'db1.example.com'\nport = 14330\ndatabase = 'Vault'\n\
             user = 'sstore'\npassword_file = 'mssql.pw'\nencrypt = 'required'\nca_file = 'ca.pem'\n",
            path,
        )
        .unwrap();
        let Some(StoreLocation::SqlServer(c)) = config.store else {
            panic!("not SQL Server")
        };
        assert_eq!((c.host.as_str(), c.port), ("db1.example.com", 14330));
        assert_eq!(c.ca_file.as_deref(), Some(Path::new("/etc/sstore/ca.pem")));
        assert!(
            matches!(&c.auth, SqlAuth::Sql { user, password: PasswordSource::File(f) }
            if user == "sstore" && f == Path::new("/etc/sstore/mssql.pw"))
        );
        let config = Config::parse("[store]\nkind = 'sqlite'\npath = 's.db'\n", path).unwrap();
        assert_eq!(
            config.store,
            Some(StoreLocation::Sqlite("/etc/sstore/s.db".into()))
        );
        for (text, says) in [
            (
                "[store]\nkind = 'sqlserver'\nserver = 'h'\ndatabase = 'd'\nuser = 'u'\npassword = 'x'\n",
                "password",
            ),
            ("[store]\nkind = 'oracle'\n", "oracle"),
            (
                "[store]\nkind = 'sqlserver'\nserver = 'h'\nuser = 'u'\n",
                "database",
            ),
        ] {
            let e = Config::parse(text, path).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
