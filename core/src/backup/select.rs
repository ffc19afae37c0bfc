//! Which backups a restore or verify works on: one named by id, the newest successful one,
//! or every successful one. Only a backup listed as succeeded in the directory's history is
//! ever selected.

use super::{BackupError, History, HistoryEntry, JobKind, JobStatus};

/// A choice of backups in one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// The newest successful backup.
    Newest,
    /// The backup with this id (it must have succeeded).
    Id(String),
    /// Every successful backup, oldest first.
    All,
}

impl Selection {
    /// `--backup-id ID` when given, else the newest.
    pub fn id_or_newest(id: Option<&str>) -> Self {
        id.map_or(Selection::Newest, |id| Selection::Id(id.to_owned()))
    }
}

impl History {
    /// The backups `selection` names in this history of `location`; an error says why none
    /// can be used.
    pub fn select(
        &self,
        selection: &Selection,
        location: &str,
    ) -> Result<Vec<&HistoryEntry>, BackupError> {
        match selection {
            Selection::Id(id) => {
                let entry = self.backup(id).ok_or_else(|| BackupError::BackupNotFound {
                    id: id.clone(),
                    directory: location.to_owned(),
                })?;
                if entry.status != JobStatus::Succeeded {
                    return Err(BackupError::BackupNotUsable {
                        id: id.clone(),
                        directory: location.to_owned(),
                        status: entry.status.to_string(),
                    });
                }
                Ok(vec![entry])
            }
            Selection::Newest => {
                self.newest_successful_backup()
                    .map(|e| vec![e])
                    .ok_or_else(|| BackupError::NoBackups {
                        directory: location.to_owned(),
                    })
            }
            Selection::All => {
                let all: Vec<&HistoryEntry> = self
                    .entries
                    .iter()
                    .filter(|e| e.kind == JobKind::Backup && e.status == JobStatus::Succeeded)
                    .collect();
                if all.is_empty() {
                    return Err(BackupError::NoBackups {
                        directory: location.to_owned(),
                    });
                }
                Ok(all)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn entry(id: &str, status: JobStatus) -> HistoryEntry {
        HistoryEntry {
            status,
            ..HistoryEntry::begin(JobKind::Backup, id.into(), "SecureStore".into(), "f".into())
        }
    }

    #[test]
    fn selections_pick_succeeded_backups_only() {
        let history = History {
            entries: vec![
                entry("a", JobStatus::Succeeded),
                entry("b", JobStatus::Failed),
                entry("c", JobStatus::Succeeded),
                HistoryEntry {
                    kind: JobKind::Restore,
                    ..entry("r", JobStatus::Succeeded)
                },
            ],
            ..History::default()
        };
        let ids = |s: &Selection| -> Vec<String> {
            history
                .select(s, "dir")
                .unwrap()
                .iter()
                .map(|e| e.id.clone())
                .collect()
        };
        assert_eq!(ids(&Selection::Newest), ["c"]);
        assert_eq!(ids(&Selection::All), ["a", "c"]);
        assert_eq!(ids(&Selection::Id("a".into())), ["a"]);
        assert!(matches!(
            history.select(&Selection::Id("b".into()), "dir"),
            Err(BackupError::BackupNotUsable { .. })
        ));
        assert!(matches!(
            history.select(&Selection::Id("zz".into()), "dir"),
            Err(BackupError::BackupNotFound { .. })
        ));
        let empty = History::default();
        assert!(matches!(
            empty.select(&Selection::All, "dir"),
            Err(BackupError::NoBackups { .. })
        ));
        assert_eq!(Selection::id_or_newest(None), Selection::Newest);
    }
}
