//! A file read a thread ahead of its reader, past the page cache where the filesystem allows it
//! (see [`crate::direct`]), possibly while a [`crate::WriteBehindFile`] still writes it: the
//! read-back of a backup being staged, so that it reads what the disk holds while the rest is
//! still being encrypted.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::pin::Pin;
use std::sync::mpsc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc as async_mpsc;

use crate::WriteProgress;
use crate::direct::{self, AlignedBuffer};

const BUFFER_SIZE: usize = 4 * 1024 * 1024;
/// One being read into, one waiting for the reader, one being read from.
const BUFFERS: usize = 3;

/// Reads a whole file in order, as a blocking [`Read`] or an [`AsyncRead`]; memory is bounded
/// by `BUFFERS × BUFFER_SIZE`.
pub struct ReadAheadFile {
    current: Option<AlignedBuffer>,
    pos: usize,
    ended: bool,
    full: async_mpsc::Receiver<io::Result<AlignedBuffer>>,
    empty: mpsc::SyncSender<AlignedBuffer>,
}

impl ReadAheadFile {
    /// Reads the complete file at `path`.
    pub fn open(path: &Path) -> io::Result<Self> {
        Self::from_file(File::open(path)?, path)
    }

    /// Reads the complete file `file`, already open (after a look at its size, say) and found
    /// at `path`: its handle serves the cached reads, and a second one opened on `path` the
    /// direct ones while `path` still names the same file.
    pub fn from_file(file: File, path: &Path) -> io::Result<Self> {
        Self::start(Files::new(file, path), WriteProgress::complete())
    }

    /// Reads the file at `path` while a [`crate::WriteBehindFile`] writes it, never past what
    /// `progress` says is written; a read fails if the writer stops short.
    pub fn follow(path: &Path, progress: WriteProgress) -> io::Result<Self> {
        Self::start(Files::new(File::open(path)?, path), progress)
    }

    fn start(files: Files, progress: WriteProgress) -> io::Result<Self> {
        let (full_tx, full_rx) = async_mpsc::channel(BUFFERS);
        let (empty_tx, empty_rx) = mpsc::sync_channel(BUFFERS);
        for _ in 0..BUFFERS {
            let _ = empty_tx.send(AlignedBuffer::new(BUFFER_SIZE));
        }
        // The thread ends at the end of the file, on an error, or when this reader is dropped
        // (once the writer it follows ends).
        std::thread::Builder::new()
            .name("sstore-read-ahead".into())
            .spawn(move || read_blocks(&files, &progress, empty_rx, full_tx))?;
        Ok(Self {
            current: None,
            pos: 0,
            ended: false,
            full: full_rx,
            empty: empty_tx,
        })
    }
}

/// The file, opened for direct I/O where the filesystem allows it, and through the cache.
struct Files {
    direct: Option<File>,
    cached: File,
}

impl Files {
    /// `file` for cached reads, and a second handle on `path` for direct ones.
    fn new(file: File, path: &Path) -> Self {
        Self {
            direct: direct::reopen(&file, path),
            cached: file,
        }
    }
}

/// The reading thread: fills each empty buffer with the next block and sends it on, until the
/// file ends.
fn read_blocks(
    files: &Files,
    progress: &WriteProgress,
    empty: mpsc::Receiver<AlignedBuffer>,
    full: async_mpsc::Sender<io::Result<AlignedBuffer>>,
) {
    let mut offset = 0u64;
    for mut buf in empty {
        let result = progress
            .wait_for(offset + BUFFER_SIZE as u64)
            .and_then(|()| read_block(files, offset, &mut buf));
        let end = result.is_err() || !buf.is_full();
        if full.blocking_send(result.map(|()| buf)).is_err() || end {
            return;
        }
        offset += BUFFER_SIZE as u64;
    }
}

/// Reads the block at `offset` into `buf`, until it is full or the file ends (a short read
/// is the end of the file). What the direct handle cannot read (a refusing filesystem, an
/// unaligned buffer) is read through the cache.
fn read_block(files: &Files, offset: u64, buf: &mut AlignedBuffer) -> io::Result<()> {
    let mut direct = files.direct.as_ref().filter(|_| buf.is_aligned());
    let space = buf.space();
    let mut got = 0;
    while got < space.len() {
        let file = direct.unwrap_or(&files.cached);
        match direct::read_at(file, &mut space[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => {
                got += n;
                if got < space.len() && direct.is_some() && n % direct::ALIGN != 0 {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if direct.is_some() && direct::refused(&e) => direct = None,
            Err(e) => return Err(e),
        }
    }
    buf.set_len(got);
    Ok(())
}

impl ReadAheadFile {
    /// The unread rest of the current buffer (empty when there is none).
    fn unread(&self) -> &[u8] {
        self.current
            .as_ref()
            .map_or(&[][..], |buf| &buf.filled()[self.pos..])
    }

    /// Hands a used-up buffer back to the thread; one it did not fill was the file's last.
    fn recycle(&mut self) {
        if let Some(mut used) = self.current.take() {
            self.ended = !used.is_full();
            used.clear();
            // The thread may be done; that is fine.
            let _ = self.empty.try_send(used);
        }
    }

    /// Takes the thread's next buffer; `false` at the end of the file.
    fn accept(&mut self, received: Option<io::Result<AlignedBuffer>>) -> io::Result<bool> {
        match received {
            Some(Ok(buf)) => {
                self.current = Some(buf);
                self.pos = 0;
                Ok(true)
            }
            Some(Err(e)) => Err(e),
            None => Ok(false),
        }
    }
}

impl Read for ReadAheadFile {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let rest = self.unread();
            if !rest.is_empty() {
                let n = rest.len().min(out.len());
                out[..n].copy_from_slice(&rest[..n]);
                self.pos += n;
                return Ok(n);
            }
            self.recycle();
            if self.ended || out.is_empty() {
                return Ok(0);
            }
            let received = self.full.blocking_recv();
            if !self.accept(received)? {
                return Ok(0);
            }
        }
    }
}

impl AsyncRead for ReadAheadFile {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let rest = this.unread();
            if !rest.is_empty() {
                let n = rest.len().min(out.remaining());
                out.put_slice(&rest[..n]);
                this.pos += n;
                return Poll::Ready(Ok(()));
            }
            this.recycle();
            if this.ended || out.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            let received = ready!(this.full.poll_recv(cx));
            if !this.accept(received)? {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Durability, WriteBehindFile, create_private_file};
    use std::io::Write;

    #[test]
    fn reads_every_byte_in_order_whatever_the_length() {
        let dir = tempfile::tempdir().unwrap();
        for len in [
            0,
            1,
            4095,
            4096,
            BUFFER_SIZE,
            2 * BUFFER_SIZE,
            3 * BUFFER_SIZE + 12345,
        ] {
            let path = dir.path().join(format!("in{len}"));
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            std::fs::write(&path, &data).unwrap();
            let mut read = Vec::new();
            let mut file = ReadAheadFile::open(&path).unwrap();
            file.read_to_end(&mut read).unwrap();
            assert!(read == data, "{len} bytes");
            assert_eq!(
                file.read(&mut [0u8; 16]).unwrap(),
                0,
                "{len} bytes: read past the end"
            );
        }
    }

    #[test]
    fn a_follower_reads_what_the_writer_wrote_and_fails_when_it_stops_short() {
        let dir = tempfile::tempdir().unwrap();
        // Not a whole number of blocks: the writer's last one goes through the cache.
        let data: Vec<u8> = (0..(5 * BUFFER_SIZE / 2 + 1234))
            .map(|i| (i % 249) as u8)
            .collect();
        for (i, durability) in [Durability::Direct, Durability::Durable]
            .into_iter()
            .enumerate()
        {
            let path = dir.path().join(format!("out{i}"));
            let file = create_private_file(&path).unwrap();
            let mut w = WriteBehindFile::with_durability(file, path.clone(), (), durability);
            let mut follower = ReadAheadFile::follow(&path, w.progress()).unwrap();
            let reader = std::thread::spawn(move || {
                let mut read = Vec::new();
                follower.read_to_end(&mut read).map(|_| read)
            });
            for piece in data.chunks(300_007) {
                w.write_all(piece).unwrap();
            }
            w.finish().unwrap();
            assert!(reader.join().unwrap().unwrap() == data, "{durability:?}");
        }
        // A writer dropped half-way: the follower fails rather than waiting or ending early.
        let path = dir.path().join("short");
        let file = create_private_file(&path).unwrap();
        let mut w = WriteBehindFile::with_durability(file, path.clone(), (), Durability::Direct);
        let mut follower = ReadAheadFile::follow(&path, w.progress()).unwrap();
        w.write_all(&data[..BUFFER_SIZE * 2]).unwrap();
        drop(w);
        let mut read = Vec::new();
        assert!(follower.read_to_end(&mut read).is_err());
    }

    #[tokio::test]
    async fn reads_asynchronously_too() {
        use tokio::io::AsyncReadExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in");
        let data: Vec<u8> = (0..(2 * BUFFER_SIZE + 777))
            .map(|i| (i % 247) as u8)
            .collect();
        std::fs::write(&path, &data).unwrap();
        let mut read = Vec::new();
        let mut file = ReadAheadFile::open(&path).unwrap();
        AsyncReadExt::read_to_end(&mut file, &mut read)
            .await
            .unwrap();
        assert!(read == data);
    }

    #[test]
    fn an_open_file_is_read_even_when_its_name_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in");
        let data: Vec<u8> = (0..(2 * BUFFER_SIZE + 4096))
            .map(|i| (i % 241) as u8)
            .collect();
        std::fs::write(&path, &data).unwrap();
        let opened = File::open(&path).unwrap();
        // Another file renamed over the name before the reader starts (a backup replaced).
        let other = dir.path().join("other");
        std::fs::write(&other, vec![0xAA; data.len()]).unwrap();
        std::fs::rename(&other, &path).unwrap();
        let mut read = Vec::new();
        ReadAheadFile::from_file(opened, &path)
            .unwrap()
            .read_to_end(&mut read)
            .unwrap();
        assert!(read == data, "read the file renamed over the one opened");
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ReadAheadFile::open(&dir.path().join("none")).is_err());
    }
}
