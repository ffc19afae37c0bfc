//! Owner-only files: the permission check that refuses a file others can read, an atomic
//! replace (temporary file, fsync, rename, folder fsync), and an owner-only append.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sstore_core::fsutil;

/// A file that group or other users may read or write.
#[derive(Debug, thiserror::Error)]
#[error(
    "{what} {} can be read or changed by other users (mode {mode:o}); restrict it with `chmod 600 {}`",
    path.display(),
    path.display()
)]
pub struct NotOwnerOnly {
    pub what: &'static str,
    pub path: PathBuf,
    pub mode: u32,
}

/// Refuses `meta` when group or others have any permission on it (Unix only).
pub fn check_owner_only(
    what: &'static str,
    path: &Path,
    meta: &std::fs::Metadata,
) -> Result<(), NotOwnerOnly> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(NotOwnerOnly {
                what,
                path: path.to_owned(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = (what, path, meta);
    Ok(())
}

/// What identifies one version of a file on disk: a replace by rename changes the inode, a
/// write in place changes the time or the length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    inode: (u64, u64),
}

impl Stamp {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            modified: meta.modified().ok(),
            len: meta.len(),
            #[cfg(unix)]
            inode: {
                use std::os::unix::fs::MetadataExt;
                (meta.dev(), meta.ino())
            },
        }
    }
}

/// Replaces `path` with `bytes` atomically: an owner-only temporary file beside it, written
/// and flushed to disk, renamed over it, then the folder flushed. Missing parent folders are
/// created owner-only.
pub fn replace_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    if !parent.exists() {
        fsutil::create_private_dir_all(&parent)?;
    }
    let temp = fsutil::temp_sibling(path, "write");
    let result = (|| {
        let mut file = fsutil::create_private_file(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, path)?;
        fsutil::sync_dir(&parent)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Takes an exclusive advisory lock on `path` (created owner-only when missing, with its
/// folder), held until the returned file is dropped. Serialises writers in different processes
/// (two `sstore operator` commands at once); readers do not take it.
pub fn lock_exclusive(path: &Path) -> io::Result<File> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
        && !parent.exists()
    {
        fsutil::create_private_dir_all(parent)?;
    }
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    file.lock()?;
    Ok(file)
}

/// Opens `path` for appending, creating it owner-only (and its folder) when missing.
pub fn open_append_owner_only(path: &Path) -> io::Result<File> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
        && !parent.exists()
    {
        fsutil::create_private_dir_all(parent)?;
    }
    let mut options = OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_replace_leaves_one_owner_only_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("f.json");
        replace_atomically(&path, b"one").unwrap();
        replace_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f.json")]);
        let meta = std::fs::metadata(&path).unwrap();
        check_owner_only("file", &path, &meta).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_file_others_can_read_is_refused_with_its_name_and_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let err = check_owner_only("the file", &path, &meta).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("chmod 600"), "{text}");
    }
}
