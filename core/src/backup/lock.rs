//! One job at a time per backup directory: an OS file lock in the staging folder, released by
//! the OS when the process ends (so a killed job never leaves a stale lock).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::BackupError;

pub const LOCK_FILE: &str = "sstore.lock";

#[derive(Debug)]
pub struct JobLock {
    _file: File,
    path: PathBuf,
}

impl JobLock {
    /// Takes the lock in `staging`, or says who holds it.
    pub fn acquire(staging: &Path, job: &str) -> Result<Self, BackupError> {
        crate::fsutil::create_private_dir_all(staging).map_err(BackupError::io(staging))?;
        let path = staging.join(LOCK_FILE);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path).map_err(BackupError::io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(BackupError::Locked {
                    path: path.clone(),
                    holder: if holder.is_empty() {
                        "unknown job".into()
                    } else {
                        holder.to_owned()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(BackupError::Io { path, source: e }),
        }
        let info = format!(
            "{job} by {} (pid {}) since {}",
            super::requested_by(),
            std::process::id(),
            super::now_rfc3339()
        );
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = file.write_all(info.as_bytes());
        Ok(Self { _file: file, path })
    }

    /// Removes work files that an interrupted job left in the staging folder. Only the lock
    /// holder may call this, so no running job's files are touched. Returns how many went.
    pub fn remove_leftovers(&self) -> usize {
        let Some(staging) = self.path.parent() else {
            return 0;
        };
        let Ok(entries) = std::fs::read_dir(staging) else {
            return 0;
        };
        entries
            .flatten()
            .filter(|e| e.file_name() != LOCK_FILE && e.file_type().is_ok_and(|t| t.is_file()))
            .filter(|e| std::fs::remove_file(e.path()).is_ok())
            .count()
    }
}
