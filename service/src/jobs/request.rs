//! What a client may ask the service to run (`POST /api/v1/jobs`), and the checks that keep
//! a request inside what the configuration allows: a location must be a configured target, a
//! location the config already names (`[backup]`, a schedule), or a local folder below one of
//! `[serve] allowed_paths`. A refused request changes nothing.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sstore_core::config::Config;
use sstore_core::target::location::{self, Location};

use crate::error::ApiError;

/// The kinds of job the service runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Backup,
    Verify,
    Prune,
    Restore,
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JobKind::Backup => "backup",
            JobKind::Verify => "verify",
            JobKind::Prune => "prune",
            JobKind::Restore => "restore",
        })
    }
}

/// A job as a client asks for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    pub kind: Option<JobKind>,
    /// The backup directory (default: the config's `[backup] directory`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    /// More destinations of a backup (default: the config's `[backup] targets`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// Backup: `full`. Restore: `new` or `overwrite`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Backup: recipients instead of `[backup] recipients`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients: Option<Vec<String>>,
    /// Verify, restore: the backup (default the newest successful one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// Verify: every successful backup.
    #[serde(default)]
    pub all: bool,
    /// Restore `new`: the store file to write (below an allowed path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_store: Option<String>,
    /// Prune: the rules, as `sstore prune`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
}

/// The restore methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreMethod {
    New,
    Overwrite,
}

impl JobRequest {
    pub fn kind(&self) -> Result<JobKind, ApiError> {
        self.kind.ok_or_else(|| {
            ApiError::invalid("give \"kind\": \"backup\", \"verify\", \"prune\" or \"restore\"")
        })
    }

    /// A restore's method (`new` when not given).
    pub fn restore_method(&self) -> Result<RestoreMethod, ApiError> {
        match self.method.as_deref() {
            None | Some("new") => Ok(RestoreMethod::New),
            Some("overwrite") => Ok(RestoreMethod::Overwrite),
            Some(other) => Err(ApiError::invalid(format!(
                "restore method \"{other}\": use \"new\" or \"overwrite\""
            ))),
        }
    }

    /// Refuses what does not fit the kind, and locations outside what `config` allows.
    pub fn validate(&self, config: &Config) -> Result<(), ApiError> {
        let kind = self.kind()?;
        use JobKind::*;
        let fields: [(&str, bool, &[JobKind]); 6] = [
            ("targets", !self.targets.is_empty(), &[Backup]),
            ("recipients", self.recipients.is_some(), &[Backup]),
            ("all", self.all, &[Verify]),
            ("new_store", self.new_store.is_some(), &[Restore]),
            ("backup_id", self.backup_id.is_some(), &[Verify, Restore]),
            (
                "keep_last / keep_within / dry_run",
                self.keep_last.is_some() || self.keep_within.is_some() || self.dry_run,
                &[Prune],
            ),
        ];
        for (field, set, kinds) in fields {
            if set && !kinds.contains(&kind) {
                return Err(ApiError::invalid(format!(
                    "\"{field}\" does not apply to a {kind} job"
                )));
            }
        }
        match kind {
            JobKind::Backup => {
                if let Some(method) = &self.method
                    && method != "full"
                {
                    return Err(ApiError::invalid(format!(
                        "backup method \"{method}\": only \"full\" exists"
                    )));
                }
                for text in self.recipients.iter().flatten() {
                    text.parse::<sstore_core::recipient::Recipient>()
                        .map_err(|e| ApiError::invalid(format!("recipient {text}: {e}")))?;
                }
            }
            JobKind::Restore => {
                let method = self.restore_method()?;
                match (method, &self.new_store) {
                    (RestoreMethod::New, None) => {
                        return Err(ApiError::invalid(
                            "a restore with method \"new\" needs \"new_store\" (a store file below an allowed path)",
                        ));
                    }
                    (RestoreMethod::Overwrite, Some(_)) => {
                        return Err(ApiError::invalid(
                            "\"new_store\" is for method \"new\"; \"overwrite\" replaces the service's own store",
                        ));
                    }
                    (RestoreMethod::New, Some(path)) => {
                        allowed_local_path(config, Path::new(path), "new_store")?;
                    }
                    (RestoreMethod::Overwrite, None) => {}
                }
            }
            JobKind::Prune => {
                if self.keep_last.is_none() {
                    return Err(ApiError::invalid("a prune needs \"keep_last\""));
                }
                if let Some(text) = &self.keep_within
                    && sstore_core::backup::prune::parse_duration(text).is_none()
                {
                    return Err(ApiError::invalid(format!(
                        "keep_within \"{text}\": give a number and a unit, e.g. 30d, 12h, 2w"
                    )));
                }
            }
            JobKind::Verify => {}
        }
        for text in self.directory.iter().chain(&self.targets) {
            allowed_location(config, text)?;
        }
        if self.directory.is_none() && config.backup.directory.is_none() && self.targets.is_empty()
        {
            return Err(ApiError::invalid(
                "no \"directory\" given and the config has no [backup] directory",
            ));
        }
        Ok(())
    }
}

/// A location a request may name: a configured target, a location the config already names,
/// or a local folder below an allowed path.
pub fn allowed_location(config: &Config, text: &str) -> Result<(), ApiError> {
    let configured = config.target(text).is_some()
        || config.backup.directory.as_deref() == Some(text)
        || config.backup.targets.iter().any(|t| t == text)
        || config
            .schedules
            .iter()
            .any(|s| s.directory.as_deref() == Some(text) || s.targets.iter().any(|t| t == text));
    if configured {
        return Ok(());
    }
    let path = match location::parse(text) {
        Ok(Location::Path(path)) => path,
        Ok(Location::Url { scheme, url }) if scheme == "file" => location::file_url_path(&url)
            .ok_or_else(|| ApiError::invalid(format!("{text} is not a file:// URL of a folder")))?,
        Ok(Location::Url { .. }) => {
            return Err(not_allowed(format!(
                "{text} is not a configured target or location; configure it ([[target]] or [backup]) to use it through the service"
            )));
        }
        Err(e) => return Err(ApiError::invalid(e.to_string())),
    };
    allowed_local_path(config, &path, "directory").map(|_| ())
}

/// A local path below one of `[serve] allowed_paths`, with no `..` in it.
pub fn allowed_local_path(config: &Config, path: &Path, field: &str) -> Result<PathBuf, ApiError> {
    if !path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(ApiError::invalid(format!(
            "{field} {}: give an absolute path without \"..\"",
            path.display()
        )));
    }
    if config
        .serve
        .allowed_paths
        .iter()
        .any(|allowed| path.starts_with(allowed))
    {
        Ok(path.to_owned())
    } else {
        Err(not_allowed(format!(
            "{field} {} is outside the paths the service may use ([serve] allowed_paths)",
            path.display()
        )))
    }
}

fn not_allowed(message: String) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "location-not-allowed",
        message,
    )
}
