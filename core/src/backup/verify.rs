//! Verify: decrypt and check a backup completely without restoring it.

use super::restore::{CopyPurpose, fetch_and_check, select_backup};
use super::{BackupDirectory, BackupError, HistoryEntry, JobLock, Manifest, OpenKeys, Selection};

#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub entry: HistoryEntry,
    pub manifest: Manifest,
}

/// Decrypts the backup (the newest successful one when `backup_id` is `None`) into a private
/// work file in the staging folder (holding the directory's job lock), checks it against its
/// manifest and SQLite's quick check, and removes the work file. To verify several, see
/// [`super::Selection::All`] and [`super::History::select`].
pub async fn run_verify(
    dir: &BackupDirectory,
    backup_id: Option<&str>,
    keys: impl Into<OpenKeys>,
) -> Result<VerifyReport, BackupError> {
    let keys = &keys.into();
    let lock = JobLock::acquire(dir.staging(), "verify")?;
    lock.remove_leftovers();
    let (entry, manifest) = select_backup(dir, &Selection::id_or_newest(backup_id)).await?;
    let work = dir
        .staging()
        .join(format!("verify-{}.db", crate::random::hex_id::<6>()));
    let result = fetch_and_check(dir, &entry, &manifest, keys, &work, CopyPurpose::Verify).await;
    let _ = std::fs::remove_file(&work);
    result?;
    Ok(VerifyReport { entry, manifest })
}
