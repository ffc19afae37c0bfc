//! Filesystem helpers shared by the engine (`sstore-core`) and the local target: owner-only
//! files and folders, temporary names, folder fsync, free space, a write-behind file that
//! overlaps disk writes with encryption, and a read-ahead file for read-backs. A crate of its
//! own so a target crate depends only on the target contract and this, never on the engine.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

mod direct;
mod read_ahead;
mod write_behind;

pub use direct::AlignedBuffer;
pub use read_ahead::ReadAheadFile;
pub use write_behind::{Durability, Inspect, WriteBehindFile, WriteProgress};

/// Creates `path` and its missing parents; folders created are owner-only (0700 on Unix).
pub fn create_private_dir_all(path: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// Options that create a new file, owner-only (0600 on Unix), failing if it exists.
pub fn private_new_file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// Creates an empty owner-only file; fails if it exists.
pub fn create_private_file(path: &Path) -> io::Result<File> {
    private_new_file_options().open(path)
}

/// A temporary name next to `path`, hidden, unique, and recognisable as sstore's.
pub fn temp_sibling(path: &Path, purpose: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut random = [0u8; 6];
    // A failed read leaves zeros: the name is then less unique, and a clash fails the
    // exclusive create that every caller uses, rather than overwriting anything.
    let _ = getrandom::fill(&mut random);
    let unique: String = random.iter().map(|b| format!("{b:02x}")).collect();
    path.with_file_name(format!(".{name}.{purpose}-{unique}.tmp"))
}

/// Flushes a folder's entries (new names, renames) to disk. A no-op where folders cannot be
/// opened as files (Windows).
pub fn sync_dir(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(path)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

/// Bytes free to this user on the filesystem holding `path` (`None` where the platform does
/// not say).
pub fn free_space(path: &Path) -> io::Result<Option<u64>> {
    #[cfg(unix)]
    {
        let stat = rustix::fs::statvfs(path).map_err(io::Error::from)?;
        Ok(Some(stat.f_bavail.saturating_mul(stat.f_frsize)))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn private_files_and_folders_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("a/b");
        create_private_dir_all(&folder).unwrap();
        let path = folder.join("secret");
        create_private_file(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(&folder).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert!(
            create_private_file(&path).is_err(),
            "an existing file must not be reused"
        );
    }
}
