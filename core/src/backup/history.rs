//! The history of a backup directory (`sstorebrtoc.json`): every backup and restore, as
//! Get-SPBackupHistory shows them.

use serde::{Deserialize, Serialize};

/// Version of the history file layout.
pub const HISTORY_FORMAT: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Backup,
    Restore,
    Prune,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobStatus {
    Succeeded,
    Failed,
    /// A backup removed by `sstore prune`: listed for the record, its folder is gone.
    Pruned,
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Pruned => "pruned",
        })
    }
}

/// One backup or restore job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Backup id (for a backup) or job id (for a restore).
    pub id: String,
    pub kind: JobKind,
    pub requested_by: String,
    /// `full` for backups; `overwrite` or `new` for restores.
    pub method: String,
    pub item: String,
    /// The numbered folder, e.g. `sstorebr0003`.
    pub folder: String,
    pub started: String,
    pub finished: String,
    pub status: JobStatus,
    pub warnings: u32,
    pub errors: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plaintext_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_generation: Option<u64>,
    /// For a restore: the backup that was restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// For a restore: the store file written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_to: Option<String>,
    /// For a backup sent to several destinations: how the job went on each (this directory's
    /// own copy is `status`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<super::journal::CopyRecord>,
    /// For a prune: the folders removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    /// For a backup: what opens it, as its key slots' public descriptions (`passphrase`,
    /// recipient strings); absent for backups before format version 2.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_slots: Vec<String>,
}

impl HistoryEntry {
    /// A job starting now, requested by this process's user: `failed` until it says otherwise,
    /// method `full`, nothing else known yet.
    pub fn begin(kind: JobKind, id: String, item: String, folder: String) -> Self {
        Self {
            id,
            kind,
            requested_by: super::requested_by(),
            method: "full".into(),
            item,
            folder,
            started: super::now_rfc3339(),
            finished: String::new(),
            status: JobStatus::Failed,
            warnings: 0,
            errors: 0,
            failure_message: None,
            backup_size: None,
            plaintext_size: None,
            key_generation: None,
            backup_id: None,
            restored_to: None,
            copies: Vec::new(),
            key_slots: Vec::new(),
            removed: Vec::new(),
        }
    }
}

/// The whole history, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub format: u32,
    pub entries: Vec<HistoryEntry>,
}

impl Default for History {
    fn default() -> Self {
        Self {
            format: HISTORY_FORMAT,
            entries: Vec::new(),
        }
    }
}

impl History {
    /// The backup entry with this id.
    pub fn backup(&self, id: &str) -> Option<&HistoryEntry> {
        self.entries
            .iter()
            .find(|e| e.kind == JobKind::Backup && e.id == id)
    }

    /// The newest successful backup.
    pub fn newest_successful_backup(&self) -> Option<&HistoryEntry> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.kind == JobKind::Backup && e.status == JobStatus::Succeeded)
    }

    /// Adds `entry`, or replaces the entry of the same job (a resumed job recording its
    /// outcome again).
    pub fn upsert(&mut self, entry: HistoryEntry) {
        match self
            .entries
            .iter_mut()
            .find(|e| e.kind == entry.kind && e.id == entry.id)
        {
            Some(existing) => *existing = entry,
            None => self.entries.push(entry),
        }
    }

    /// The highest folder number any entry uses.
    pub fn highest_folder_number(&self) -> Option<u32> {
        self.entries
            .iter()
            .filter_map(|e| super::directory::folder_number(&e.folder))
            .max()
    }
}
