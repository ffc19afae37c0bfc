//! Writers and readers that count and hash what passes through them, for the sizes and SHA-256
//! digests a manifest records.

use std::io::{self, Read, Write};
use std::sync::mpsc;
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use crate::fsutil::AlignedBuffer;

/// Counts what passes through to `inner`.
pub(crate) struct CountingWriter<W: Write> {
    inner: W,
    bytes: u64,
}

impl<W: Write> CountingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self { inner, bytes: 0 }
    }

    /// The inner writer and the byte count.
    pub(crate) fn finish(self) -> (W, u64) {
        (self.inner, self.bytes)
    }
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// SHA-256 of what a [`crate::fsutil::WriteBehindFile`] writes, taken on its thread.
#[derive(Default)]
pub(crate) struct Sha256Inspector(Sha256);

impl crate::fsutil::Inspect for Sha256Inspector {
    fn inspect(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl Sha256Inspector {
    pub(crate) fn hex(self) -> String {
        hex::encode(self.0.finalize())
    }
}

/// SHA-256 taken on a thread of its own: [`BackgroundSha256::update`] copies into a buffer
/// and hands full buffers over, so hashing overlaps with the caller's work (decrypting,
/// compressing). Memory is bounded by `BUFFERS × BUFFER_SIZE`. Dropped without
/// [`BackgroundSha256::finish`], the thread ends by itself once its channel closes.
pub(crate) struct BackgroundSha256 {
    current: AlignedBuffer,
    full: Option<mpsc::SyncSender<AlignedBuffer>>,
    empty: mpsc::Receiver<AlignedBuffer>,
    worker: Option<JoinHandle<Sha256>>,
}

const BUFFER_SIZE: usize = 1024 * 1024;
const BUFFERS: usize = 4;

fn stopped() -> io::Error {
    io::Error::other("the hashing thread stopped")
}

impl BackgroundSha256 {
    pub(crate) fn new() -> io::Result<Self> {
        let (full_tx, full_rx) = mpsc::sync_channel::<AlignedBuffer>(BUFFERS);
        let (empty_tx, empty_rx) = mpsc::sync_channel::<AlignedBuffer>(BUFFERS);
        for _ in 1..BUFFERS {
            let _ = empty_tx.send(AlignedBuffer::new(BUFFER_SIZE));
        }
        let worker = std::thread::Builder::new()
            .name("sstore-hash".into())
            .spawn(move || {
                let mut hasher = Sha256::new();
                for mut buf in full_rx {
                    hasher.update(buf.filled());
                    buf.clear();
                    // The owner may be finishing and gone; that is fine.
                    let _ = empty_tx.send(buf);
                }
                hasher
            })?;
        Ok(Self {
            current: AlignedBuffer::new(BUFFER_SIZE),
            full: Some(full_tx),
            empty: empty_rx,
            worker: Some(worker),
        })
    }

    pub(crate) fn update(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let taken = self.current.push(data);
            data = &data[taken..];
            if self.current.is_full() {
                self.hand_off()?;
            }
        }
        Ok(())
    }

    fn hand_off(&mut self) -> io::Result<()> {
        let next = self.empty.recv().map_err(|_| stopped())?;
        let full = std::mem::replace(&mut self.current, next);
        let sender = self.full.as_ref().ok_or_else(stopped)?;
        sender.send(full).map_err(|_| stopped())
    }

    /// The hex SHA-256 of everything given to `update`.
    pub(crate) fn finish(mut self) -> io::Result<String> {
        if !self.current.is_empty() {
            self.hand_off()?;
        }
        self.full = None;
        let hasher = self
            .worker
            .take()
            .map(JoinHandle::join)
            .and_then(Result::ok)
            .ok_or_else(stopped)?;
        Ok(hex::encode(hasher.finalize()))
    }
}

/// Counts what passes through to `inner` and hashes it with a [`BackgroundSha256`].
pub(crate) struct BackgroundHashingWriter<W: Write> {
    inner: W,
    hash: BackgroundSha256,
    bytes: u64,
}

impl<W: Write> BackgroundHashingWriter<W> {
    pub(crate) fn new(inner: W) -> io::Result<Self> {
        Ok(Self {
            inner,
            hash: BackgroundSha256::new()?,
            bytes: 0,
        })
    }

    /// The inner writer, the byte count and the hex SHA-256.
    pub(crate) fn finish(self) -> io::Result<(W, u64, String)> {
        Ok((self.inner, self.bytes, self.hash.finish()?))
    }
}

impl<W: Write> Write for BackgroundHashingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        self.bytes += n as u64;
        self.hash.update(&data[..n])?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes what is read through it with a [`BackgroundSha256`].
pub(crate) struct BackgroundHashingReader<R: Read> {
    pub(crate) inner: R,
    pub(crate) hash: BackgroundSha256,
}

impl<R: Read> Read for BackgroundHashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_hash_is_the_sha256_of_everything_written() {
        let data: Vec<u8> = (0..(3 * BUFFER_SIZE + 4321))
            .map(|i| (i % 253) as u8)
            .collect();
        let mut background = BackgroundHashingWriter::new(Vec::new()).unwrap();
        for piece in data.chunks(77_777) {
            background.write_all(piece).unwrap();
        }
        let (out, bytes, digest) = background.finish().unwrap();
        assert_eq!(out, data);
        assert_eq!(bytes, data.len() as u64);
        assert_eq!(digest, hex::encode(Sha256::digest(&data)));
    }
}
