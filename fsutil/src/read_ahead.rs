//! A file read a thread ahead of its reader, past the page cache where the filesystem allows
//! it (see [`crate::direct`]): the read-back of a freshly written backup, so that it reads
//! what the disk holds, while the reader authenticates what came before.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::mpsc;

use crate::direct::{self, AlignedBuffer};

const BUFFER_SIZE: usize = 8 * 1024 * 1024;
const BUFFERS: usize = 3;

/// Reads a whole file in order; memory is bounded by `BUFFERS × BUFFER_SIZE`.
pub struct ReadAheadFile {
    current: Option<AlignedBuffer>,
    pos: usize,
    full: mpsc::Receiver<io::Result<AlignedBuffer>>,
    empty: mpsc::SyncSender<AlignedBuffer>,
}

impl ReadAheadFile {
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let (full_tx, full_rx) = mpsc::sync_channel(BUFFERS);
        let (empty_tx, empty_rx) = mpsc::sync_channel(BUFFERS);
        for _ in 0..BUFFERS {
            let _ = empty_tx.send(AlignedBuffer::new(BUFFER_SIZE));
        }
        // The thread ends at the end of the file, on an error, or when this reader is dropped.
        std::thread::Builder::new()
            .name("sstore-read-ahead".into())
            .spawn(move || read_all_buffers(file, empty_rx, full_tx))?;
        Ok(Self {
            current: None,
            pos: 0,
            full: full_rx,
            empty: empty_tx,
        })
    }
}

/// The reader thread: fills each empty buffer in turn and sends it on.
fn read_all_buffers(
    mut file: File,
    empty: mpsc::Receiver<AlignedBuffer>,
    full: mpsc::SyncSender<io::Result<AlignedBuffer>>,
) {
    let mut direct = direct::enable(&file);
    for mut buf in empty {
        let result = fill(&mut file, &mut buf, &mut direct);
        let end = result.is_err() || !buf.is_full();
        if full.send(result.map(|()| buf)).is_err() || end {
            return;
        }
    }
}

/// Reads into `buf` until it is full or the file ends.
fn fill(file: &mut File, buf: &mut AlignedBuffer, direct: &mut bool) -> io::Result<()> {
    if *direct && !buf.is_aligned() {
        direct::disable(file)?;
        *direct = false;
    }
    let space = buf.space();
    let mut got = 0;
    while got < space.len() {
        match file.read(&mut space[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Refused by the filesystem, or an unaligned read after a short one at the end:
            // go on through the cache from the same place.
            Err(e) if *direct && direct::refused(&e) => {
                direct::disable(file)?;
                *direct = false;
            }
            Err(e) => return Err(e),
        }
    }
    buf.set_len(got);
    Ok(())
}

impl Read for ReadAheadFile {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(buf) = &self.current {
                let rest = &buf.filled()[self.pos..];
                if !rest.is_empty() || buf.len() == 0 {
                    let n = rest.len().min(out.len());
                    out[..n].copy_from_slice(&rest[..n]);
                    self.pos += n;
                    return Ok(n);
                }
            }
            if let Some(mut used) = self.current.take() {
                used.clear();
                // The thread may be done (the file ended); that is fine.
                let _ = self.empty.try_send(used);
            }
            match self.full.recv() {
                Ok(Ok(buf)) => {
                    self.current = Some(buf);
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The thread sent the last (partial) buffer and ended.
                Err(_) => return Ok(0),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_byte_in_order_whatever_the_length() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0, 1, 4095, 4096, BUFFER_SIZE, 2 * BUFFER_SIZE + 12345] {
            let path = dir.path().join(format!("in{len}"));
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            std::fs::write(&path, &data).unwrap();
            let mut read = Vec::new();
            ReadAheadFile::open(&path)
                .unwrap()
                .read_to_end(&mut read)
                .unwrap();
            assert!(read == data, "{len} bytes");
        }
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ReadAheadFile::open(&dir.path().join("none")).is_err());
    }
}
