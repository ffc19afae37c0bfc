//! A backup directory on a target: the history file, the numbered folders and the files in
//! them, plus the local staging folder the job works in.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{BackupError, History, HistoryEntry, Manifest};
use crate::target::{self, ObjectKey, PutMode, Target};

/// The history (table of contents) of the directory.
pub const TOC_FILE: &str = "sstorebrtoc.json";
/// The encrypted backup stream, in each folder.
pub const BACKUP_FILE: &str = "sstorebackup.bak";
/// What the backup holds and how to check it, in each folder.
pub const MANIFEST_FILE: &str = "sstoremanifest.json";
/// The backup job's log, in each folder.
pub const LOG_FILE: &str = "sstorebackup.log";
/// The log of restores made from the folder's backup.
pub const RESTORE_LOG_FILE: &str = "sstorerestore.log";

const FOLDER_PREFIX: &str = "sstorebr";
const MAX_SMALL_OBJECT: u64 = 64 * 1024 * 1024;

/// `sstorebr0003` for 3.
pub fn folder_name(number: u32) -> String {
    format!("{FOLDER_PREFIX}{number:04}")
}

/// 3 for `sstorebr0003`; `None` for anything else.
pub fn folder_number(name: &str) -> Option<u32> {
    let digits = name.strip_prefix(FOLDER_PREFIX)?;
    if digits.len() < 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn key(name: &str) -> Result<ObjectKey, BackupError> {
    ObjectKey::new(name).map_err(|e| BackupError::History {
        file: name.to_owned(),
        reason: e.to_string(),
    })
}

/// A backup directory reached through a target, with a local staging folder for work files.
#[derive(Debug, Clone)]
pub struct BackupDirectory {
    target: Arc<dyn Target>,
    staging: PathBuf,
}

impl BackupDirectory {
    pub fn new(target: Arc<dyn Target>, staging: PathBuf) -> Self {
        Self { target, staging }
    }

    pub fn target(&self) -> &dyn Target {
        self.target.as_ref()
    }

    /// The target, shareable (for work that outlives a borrow, such as a spawned check).
    pub fn target_arc(&self) -> Arc<dyn Target> {
        self.target.clone()
    }

    pub fn staging(&self) -> &Path {
        &self.staging
    }

    /// For messages.
    pub fn location(&self) -> String {
        self.target.location()
    }

    pub fn object(&self, folder: &str, file: &str) -> Result<ObjectKey, BackupError> {
        key(&format!("{folder}/{file}"))
    }

    /// Describes an object for messages: `local:/srv/backups/sstorebr0001/sstorebackup.bak`.
    pub fn describe(&self, key: &ObjectKey) -> String {
        format!("{}/{key}", self.location())
    }

    /// The history; empty when the directory has none yet.
    pub async fn load_history(&self) -> Result<History, BackupError> {
        let toc = key(TOC_FILE)?;
        let bytes = match target::get_bytes(self.target(), &toc, MAX_SMALL_OBJECT).await {
            Ok(bytes) => bytes,
            Err(e) if e.is_not_found() => return Ok(History::default()),
            Err(e) => return Err(e.into()),
        };
        let history: History =
            serde_json::from_slice(&bytes).map_err(|e| BackupError::History {
                file: self.describe(&toc),
                reason: e.to_string(),
            })?;
        if history.format != super::history::HISTORY_FORMAT {
            return Err(BackupError::History {
                file: self.describe(&toc),
                reason: format!(
                    "history format {} is not supported by this sstore",
                    history.format
                ),
            });
        }
        Ok(history)
    }

    /// Replaces the history atomically.
    pub async fn save_history(&self, history: &History) -> Result<(), BackupError> {
        let bytes =
            serde_json::to_vec_pretty(history).map_err(|e| BackupError::Task(e.to_string()))?;
        target::put_bytes(self.target(), &key(TOC_FILE)?, &bytes, PutMode::Overwrite).await?;
        Ok(())
    }

    /// Adds `entry` to the history, replacing an earlier entry of the same job (re-read first
    /// so nothing recorded meanwhile is lost).
    pub async fn record(&self, entry: HistoryEntry) -> Result<(), BackupError> {
        let mut history = self.load_history().await?;
        history.upsert(entry);
        self.save_history(&history).await
    }

    /// The next free folder: above every folder in the history and every folder present on
    /// the target (a killed job may have left an unlisted one; it is never reused).
    pub async fn next_folder(&self, history: &History) -> Result<String, BackupError> {
        let listed = self.target.list(FOLDER_PREFIX).await?;
        let on_target = listed
            .iter()
            .filter_map(|meta| meta.key.segments().next().and_then(folder_number))
            .max();
        let next = match history.highest_folder_number().max(on_target) {
            Some(n) => n + 1,
            None => 0,
        };
        Ok(folder_name(next))
    }

    /// Folders present on the target that the history does not list: left by a job that was
    /// killed while publishing. They are never reused and not restorable from the history.
    pub async fn unlisted_folders(&self, history: &History) -> Result<Vec<String>, BackupError> {
        let listed: std::collections::BTreeSet<&str> =
            history.entries.iter().map(|e| e.folder.as_str()).collect();
        let mut found: Vec<String> = self
            .target
            .list(FOLDER_PREFIX)
            .await?
            .iter()
            .filter_map(|meta| meta.key.segments().next().map(str::to_owned))
            .filter(|folder| folder_number(folder).is_some() && !listed.contains(folder.as_str()))
            .collect();
        found.dedup();
        Ok(found)
    }

    pub async fn read_manifest(&self, entry: &HistoryEntry) -> Result<Manifest, BackupError> {
        let key = self.object(&entry.folder, MANIFEST_FILE)?;
        let bytes = target::get_bytes(self.target(), &key, MAX_SMALL_OBJECT).await?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| BackupError::ManifestMismatch {
                file: self.describe(&key),
                what: format!("the manifest cannot be read ({e})"),
            })?;
        if manifest.manifest_version != super::manifest::MANIFEST_VERSION {
            return Err(BackupError::ManifestMismatch {
                file: self.describe(&key),
                what: format!(
                    "manifest version {} is not supported by this sstore (it reads version {})",
                    manifest.manifest_version,
                    super::manifest::MANIFEST_VERSION
                ),
            });
        }
        if manifest.backup_id != entry.id {
            return Err(BackupError::ManifestMismatch {
                file: self.describe(&key),
                what: format!(
                    "it describes backup {}, the history says {}",
                    manifest.backup_id, entry.id
                ),
            });
        }
        Ok(manifest)
    }

    /// Reads a small text object, or `None` if absent.
    pub async fn read_text(&self, key: &ObjectKey) -> Result<Option<String>, BackupError> {
        match target::get_bytes(self.target(), key, MAX_SMALL_OBJECT).await {
            Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_round_trip() {
        assert_eq!(folder_name(3), "sstorebr0003");
        assert_eq!(folder_name(12345), "sstorebr12345");
        assert_eq!(folder_number("sstorebr0003"), Some(3));
        assert_eq!(folder_number("sstorebr12345"), Some(12345));
        assert_eq!(folder_number("sstorebrtoc.json"), None);
        assert_eq!(folder_number("sstorebr01"), None);
    }
}
