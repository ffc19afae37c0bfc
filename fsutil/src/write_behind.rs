//! A file written by a background thread, so that computing the bytes (compression,
//! encryption) and writing them overlap.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;

use crate::direct::{self, ALIGN, AlignedBuffer};

/// Sees every byte a [`WriteBehindFile`] writes, in order, on its thread (e.g. to hash them
/// off the producer's thread).
pub trait Inspect: Send + 'static {
    fn inspect(&mut self, bytes: &[u8]);
}

/// Inspects nothing.
impl Inspect for () {
    fn inspect(&mut self, _: &[u8]) {}
}

/// How what a [`WriteBehindFile`] writes reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Straight to the disk past the page cache where the filesystem allows it (`O_DIRECT`),
    /// else as [`Durability::Durable`]; fsynced by [`WriteBehindFile::finish`]. For a large
    /// file written once and read back once: a staged backup.
    Direct,
    /// Through the page cache, flushed as it is written (a second thread syncs the file's data
    /// every 32 MiB (`SYNC_EVERY`), so the disk works while the writer goes on) and fsynced
    /// by [`WriteBehindFile::finish`], which then has little left to wait for. For a file that
    /// is read right after (a restored store).
    Durable,
    /// A work file that is read soon and removed: left to the page cache, never flushed.
    Scratch,
}

/// How many bytes a [`Durability::Durable`] file's thread writes between two data syncs.
const SYNC_EVERY: u64 = 32 * 1024 * 1024;

const BUFFER_SIZE: usize = 4 * 1024 * 1024;
const BUFFERS: usize = 3;

/// How far a [`WriteBehindFile`] has written, for a reader that follows it
/// ([`crate::ReadAheadFile::follow`]).
#[derive(Clone, Default)]
pub struct WriteProgress(Arc<(Mutex<Progress>, Condvar)>);

#[derive(Default)]
struct Progress {
    written: u64,
    /// `Some(true)`: every byte is written; `Some(false)`: writing stopped short.
    end: Option<bool>,
}

impl WriteProgress {
    /// The progress of a file already complete.
    pub fn complete() -> Self {
        let progress = Self::default();
        progress.end(true);
        progress
    }

    fn update(&self, change: impl FnOnce(&mut Progress)) {
        let (state, changed) = &*self.0;
        change(&mut state.lock().unwrap_or_else(PoisonError::into_inner));
        changed.notify_all();
    }

    fn advance(&self, bytes: u64) {
        self.update(|p| p.written += bytes);
    }

    /// Writing ended, completely or not; the first call counts.
    fn end(&self, complete: bool) {
        self.update(|p| {
            p.end.get_or_insert(complete);
        });
    }

    /// Waits until the file's first `bytes` are written or the file is complete; fails if
    /// writing stopped short.
    pub(crate) fn wait_for(&self, bytes: u64) -> io::Result<()> {
        let (state, changed) = &*self.0;
        let mut p = state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match p.end {
                Some(false) => {
                    return Err(io::Error::other("writing the file stopped before its end"));
                }
                Some(true) => return Ok(()),
                None if p.written >= bytes => return Ok(()),
                None => p = changed.wait(p).unwrap_or_else(PoisonError::into_inner),
            }
        }
    }
}

/// A file written by a background thread: `write` copies into a buffer and hands full buffers
/// to the thread, so encryption and disk writes overlap; the thread also shows each buffer to
/// an [`Inspect`]. Memory is bounded by `BUFFERS × BUFFER_SIZE`. [`WriteBehindFile::finish`]
/// waits for the thread and, unless it is a scratch file, fsyncs.
pub struct WriteBehindFile<I: Inspect = ()> {
    durability: Durability,
    current: AlignedBuffer,
    full: Option<mpsc::SyncSender<AlignedBuffer>>,
    empty: mpsc::Receiver<AlignedBuffer>,
    worker: Option<JoinHandle<io::Result<(File, I)>>>,
    progress: WriteProgress,
    path: PathBuf,
}

impl WriteBehindFile {
    /// A durable file.
    pub fn new(file: File, path: PathBuf) -> Self {
        Self::inspected(file, path, ())
    }
}

impl<I: Inspect> WriteBehindFile<I> {
    /// A durable file whose every buffer is shown to `inspect` (on the writer thread) before
    /// it is written.
    pub fn inspected(file: File, path: PathBuf, inspect: I) -> Self {
        Self::with_durability(file, path, inspect, Durability::Durable)
    }

    pub fn with_durability(file: File, path: PathBuf, inspect: I, durability: Durability) -> Self {
        let (full_tx, full_rx) = mpsc::sync_channel::<AlignedBuffer>(BUFFERS);
        let (empty_tx, empty_rx) = mpsc::sync_channel::<AlignedBuffer>(BUFFERS);
        for _ in 1..BUFFERS {
            let _ = empty_tx.send(AlignedBuffer::new(BUFFER_SIZE));
        }
        let progress = WriteProgress::default();
        let worker_progress = progress.clone();
        let worker = std::thread::Builder::new()
            .name("sstore-write-behind".into())
            .spawn(move || {
                write_all_buffers(
                    file,
                    durability,
                    inspect,
                    full_rx,
                    empty_tx,
                    &worker_progress,
                )
            });
        let (worker, current) = match worker {
            Ok(handle) => (Some(handle), AlignedBuffer::new(BUFFER_SIZE)),
            Err(_) => (None, AlignedBuffer::new(0)),
        };
        Self {
            durability,
            current,
            full: Some(full_tx),
            empty: empty_rx,
            worker,
            progress,
            path,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How far the file is written, for a reader that follows it.
    pub fn progress(&self) -> WriteProgress {
        self.progress.clone()
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

    /// Writes what is buffered, waits for the thread, and fsyncs unless this is a scratch
    /// file; returns the file and the inspector.
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
        self.progress.end(true);
        if self.durability != Durability::Scratch {
            file.0.sync_all()?;
        }
        Ok(file)
    }
}

/// The writer thread: writes each full buffer, then hands it back.
fn write_all_buffers<I: Inspect>(
    mut file: File,
    durability: Durability,
    mut inspect: I,
    full: mpsc::Receiver<AlignedBuffer>,
    empty: mpsc::SyncSender<AlignedBuffer>,
    progress: &WriteProgress,
) -> io::Result<(File, I)> {
    let result = write_buffers(&mut file, durability, &mut inspect, full, empty, progress);
    if result.is_err() {
        progress.end(false);
    }
    result.map(|()| (file, inspect))
}

fn write_buffers<I: Inspect>(
    file: &mut File,
    durability: Durability,
    inspect: &mut I,
    full: mpsc::Receiver<AlignedBuffer>,
    empty: mpsc::SyncSender<AlignedBuffer>,
    progress: &WriteProgress,
) -> io::Result<()> {
    let mut direct = durability == Durability::Direct && direct::enable(file);
    let syncer = match durability {
        Durability::Durable => Some(Syncer::start(file.try_clone()?)?),
        Durability::Direct | Durability::Scratch => None,
    };
    let mut unsynced = 0u64;
    let written = (|| {
        for mut buf in full {
            inspect.inspect(buf.filled());
            if direct {
                direct = write_direct(file, buf.filled(), buf.is_aligned())?;
            } else {
                file.write_all(buf.filled())?;
            }
            progress.advance(buf.len() as u64);
            unsynced += buf.len() as u64;
            if let Some(syncer) = &syncer
                && unsynced >= SYNC_EVERY
            {
                syncer.sync()?;
                unsynced = 0;
            }
            buf.clear();
            // The producer may already be gone (finishing); that is fine.
            let _ = empty.send(buf);
        }
        Ok(())
    })();
    // A sync's failure counts even when the writes went on (the descriptor reports a writeback
    // error once, so the final fsync may no longer see it), and comes first: a write stopped
    // by it only says that it was.
    syncer.map_or(Ok(()), Syncer::finish).and(written)
}

/// Flushes a durable file's data on a thread of its own while the writer goes on: the disk
/// writes what is written so far, and the writer never waits for it. A request while a sync
/// runs is folded into the next one.
struct Syncer {
    requests: Option<mpsc::SyncSender<()>>,
    worker: JoinHandle<io::Result<()>>,
}

impl Syncer {
    fn start(file: File) -> io::Result<Self> {
        let (requests, pending) = mpsc::sync_channel::<()>(1);
        let worker = std::thread::Builder::new()
            .name("sstore-sync".into())
            .spawn(move || {
                for () in pending {
                    file.sync_data()?;
                }
                Ok(())
            })?;
        Ok(Self {
            requests: Some(requests),
            worker,
        })
    }

    /// Asks for a sync; fails if an earlier one failed.
    fn sync(&self) -> io::Result<()> {
        match self.requests.as_ref().map(|r| r.try_send(())) {
            Some(Ok(())) | Some(Err(mpsc::TrySendError::Full(()))) => Ok(()),
            // The thread stopped: a sync failed (its error comes from `finish`).
            Some(Err(mpsc::TrySendError::Disconnected(()))) | None => {
                Err(io::Error::other("flushing the file to disk failed"))
            }
        }
    }

    /// Waits for the syncs asked for; the first failure, if any.
    fn finish(mut self) -> io::Result<()> {
        self.requests = None;
        match self.worker.join() {
            Ok(result) => result,
            Err(_) => Err(io::Error::other("the file's sync thread panicked")),
        }
    }
}

/// Writes `bytes` with direct I/O: its whole blocks directly, a last partial block through the
/// cache. Falls back to the cache for good when the buffer is not aligned or the filesystem
/// refuses a direct write. Returns whether direct I/O is still on.
fn write_direct(file: &mut File, bytes: &[u8], aligned: bool) -> io::Result<bool> {
    let whole = if aligned {
        bytes.len() / ALIGN * ALIGN
    } else {
        0
    };
    let mut done = 0;
    while done < whole {
        match file.write(&bytes[done..whole]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if direct::refused(&e) => break,
            Err(e) => return Err(e),
        }
    }
    if done == bytes.len() {
        return Ok(true);
    }
    direct::disable(file)?;
    file.write_all(&bytes[done..])?;
    Ok(false)
}

impl<I: Inspect> Write for WriteBehindFile<I> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        if self.worker.is_none() {
            return Err(io::Error::other("could not start the writer thread"));
        }
        let written = data.len();
        while !data.is_empty() {
            let took = self.current.push(data);
            data = &data[took..];
            if self.current.is_full() {
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
        // Dropped without `finish`: a reader following the file must not wait for the rest.
        self.progress.end(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::create_private_file;

    /// Keeps a copy of what it is shown.
    struct Seen(Vec<u8>);
    impl Inspect for Seen {
        fn inspect(&mut self, bytes: &[u8]) {
            self.0.extend_from_slice(bytes);
        }
    }

    #[test]
    fn write_behind_writes_everything_in_order_whatever_the_durability() {
        let dir = tempfile::tempdir().unwrap();
        // Past two of a durable file's syncs, which run while the writes go on.
        let data: Vec<u8> = (0..(2 * SYNC_EVERY as usize + 12345))
            .map(|i| (i % 251) as u8)
            .collect();
        for (i, durability) in [Durability::Direct, Durability::Durable, Durability::Scratch]
            .into_iter()
            .enumerate()
        {
            let path = dir.path().join(format!("out{i}"));
            let file = create_private_file(&path).unwrap();
            let mut w =
                WriteBehindFile::with_durability(file, path.clone(), Seen(Vec::new()), durability);
            for piece in data.chunks(100_003) {
                w.write_all(piece).unwrap();
            }
            let (_, seen) = w.finish().unwrap();
            assert!(std::fs::read(&path).unwrap() == data, "{durability:?}");
            assert!(seen.0 == data, "{durability:?}");
        }
    }

    #[test]
    fn a_direct_file_of_whole_blocks_and_an_empty_one_are_written_exactly() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0, ALIGN, BUFFER_SIZE, 2 * BUFFER_SIZE + ALIGN] {
            let path = dir.path().join(format!("out{len}"));
            let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            let file = create_private_file(&path).unwrap();
            let mut w =
                WriteBehindFile::with_durability(file, path.clone(), (), Durability::Direct);
            w.write_all(&data).unwrap();
            w.finish().unwrap();
            assert!(std::fs::read(&path).unwrap() == data, "{len} bytes");
        }
    }
}
