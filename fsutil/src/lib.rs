//! Filesystem helpers shared by the engine (`sstore-core`) and the local target: owner-only
//! files and folders, temporary names, folder fsync, free space, and a write-behind file that
//! overlaps disk writes with encryption. A crate of its own so a target crate depends only on
//! the target contract and this, never on the engine.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

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

/// Sees every byte a [`WriteBehindFile`] writes, in order, on its thread (e.g. to hash them
/// off the producer's thread).
pub trait Inspect: Send + 'static {
    fn inspect(&mut self, bytes: &[u8]);
}

/// Inspects nothing.
impl Inspect for () {
    fn inspect(&mut self, _: &[u8]) {}
}

/// A file written by a background thread: `write` copies into a buffer and hands full buffers
/// to the thread, so encryption and disk writes overlap; the thread also shows each buffer to
/// an [`Inspect`]. Memory is bounded by `BUFFERS × BUFFER_SIZE`. [`WriteBehindFile::finish`]
/// waits for the thread and fsyncs.
pub struct WriteBehindFile<I: Inspect = ()> {
    current: Vec<u8>,
    full: Option<mpsc::SyncSender<Vec<u8>>>,
    empty: mpsc::Receiver<Vec<u8>>,
    worker: Option<JoinHandle<io::Result<(File, I)>>>,
    path: PathBuf,
}

const BUFFER_SIZE: usize = 4 * 1024 * 1024;
const BUFFERS: usize = 3;

impl WriteBehindFile {
    pub fn new(file: File, path: PathBuf) -> Self {
        Self::inspected(file, path, ())
    }
}

impl<I: Inspect> WriteBehindFile<I> {
    /// Shows every buffer to `inspect` (on the writer thread) before writing it.
    pub fn inspected(file: File, path: PathBuf, mut inspect: I) -> Self {
        let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u8>>(BUFFERS);
        let (empty_tx, empty_rx) = mpsc::sync_channel::<Vec<u8>>(BUFFERS);
        for _ in 1..BUFFERS {
            let _ = empty_tx.send(Vec::with_capacity(BUFFER_SIZE));
        }
        let worker = std::thread::Builder::new()
            .name("sstore-write-behind".into())
            .spawn(move || {
                let mut file = file;
                for mut buf in full_rx {
                    inspect.inspect(&buf);
                    file.write_all(&buf)?;
                    buf.clear();
                    // The writer may already be gone (finishing); that is fine.
                    let _ = empty_tx.send(buf);
                }
                Ok((file, inspect))
            });
        let (worker, current) = match worker {
            Ok(handle) => (Some(handle), Vec::with_capacity(BUFFER_SIZE)),
            Err(_) => (None, Vec::new()),
        };
        Self {
            current,
            full: Some(full_tx),
            empty: empty_rx,
            worker,
            path,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn worker_failed(&mut self) -> io::Error {
        self.full = None;
        match self.worker.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => e,
            _ => io::Error::other(format!(
                "the writer thread for {} stopped",
                self.path.display()
            )),
        }
    }

    fn hand_off(&mut self) -> io::Result<()> {
        let Some(sender) = self.full.as_ref() else {
            return Err(self.worker_failed());
        };
        let next = match self.empty.recv() {
            Ok(buf) => buf,
            Err(_) => return Err(self.worker_failed()),
        };
        let full = std::mem::replace(&mut self.current, next);
        if sender.send(full).is_err() {
            return Err(self.worker_failed());
        }
        Ok(())
    }

    /// Writes what is buffered, waits for the thread, and fsyncs the file; returns it and the
    /// inspector.
    pub fn finish(mut self) -> io::Result<(File, I)> {
        if self.worker.is_none() {
            return Err(io::Error::other("could not start the writer thread"));
        }
        if !self.current.is_empty() {
            self.hand_off()?;
        }
        self.full = None;
        let file = match self.worker.take().map(JoinHandle::join) {
            Some(Ok(result)) => result?,
            _ => {
                return Err(io::Error::other(format!(
                    "the writer thread for {} panicked",
                    self.path.display()
                )));
            }
        };
        file.0.sync_all()?;
        Ok(file)
    }
}

impl<I: Inspect> Write for WriteBehindFile<I> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        if self.worker.is_none() {
            return Err(io::Error::other("could not start the writer thread"));
        }
        let written = data.len();
        while !data.is_empty() {
            let room = BUFFER_SIZE - self.current.len();
            let take = room.min(data.len());
            self.current.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.current.len() == BUFFER_SIZE {
                self.hand_off()?;
            }
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<I: Inspect> Drop for WriteBehindFile<I> {
    fn drop(&mut self) {
        self.full = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_behind_writes_everything_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let file = create_private_file(&path).unwrap();
        /// Keeps a copy of what it is shown.
        struct Seen(Vec<u8>);
        impl Inspect for Seen {
            fn inspect(&mut self, bytes: &[u8]) {
                self.0.extend_from_slice(bytes);
            }
        }
        let mut w = WriteBehindFile::inspected(file, path.clone(), Seen(Vec::new()));
        let data: Vec<u8> = (0..(3 * BUFFER_SIZE + 12345))
            .map(|i| (i % 251) as u8)
            .collect();
        for piece in data.chunks(100_003) {
            w.write_all(piece).unwrap();
        }
        let (_, seen) = w.finish().unwrap();
        assert_eq!(fs::read(&path).unwrap(), data);
        assert_eq!(seen.0, data);
    }

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
