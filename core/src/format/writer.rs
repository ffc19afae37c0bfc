//! The encrypting half of the STREAM construction.

use std::io::{self, Write};

use zeroize::Zeroizing;

use super::header::{Compression, Header, chunk_nonce};
use super::slots::{ReadBackKey, Recipients, StreamKeys};
use super::{DEFAULT_CHUNK_SIZE, FormatError};
use crate::crypto::TAG_LEN;
use crate::kdf::KdfParams;

/// What a new stream is written with.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Argon2id parameters of the passphrase slot (unused without a passphrase).
    pub kdf: KdfParams,
    pub chunk_size: u32,
    pub compression: Compression,
    pub backup_id: [u8; 16],
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            kdf: KdfParams::RECOMMENDED,
            chunk_size: DEFAULT_CHUNK_SIZE,
            compression: Compression::Zstd,
            backup_id: crate::random::bytes(),
        }
    }
}

/// Encrypts everything written to it into `inner`, one chunk at a time. Call
/// [`StreamWriter::finish`]: a stream dropped without it has no final chunk and every reader
/// rejects it as truncated.
pub struct StreamWriter<W: Write> {
    inner: W,
    keys: StreamKeys,
    header: Header,
    read_back: ReadBackKey,
    chunk_size: usize,
    /// Plaintext waiting for its chunk; wiped on drop.
    buf: Zeroizing<Vec<u8>>,
    index: u64,
}

impl<W: Write> StreamWriter<W> {
    /// Writes a version-2 header with a key slot for each of `recipients` (or just a
    /// `&Passphrase`) to `inner` and returns a writer for the payload.
    pub fn new<'k>(
        mut inner: W,
        recipients: impl Into<Recipients<'k>>,
        options: &StreamOptions,
    ) -> Result<Self, FormatError> {
        let (header, keys, read_back) = Header::seal(recipients.into(), options)?;
        inner.write_all(&header.encode())?;
        let chunk_size = options.chunk_size as usize;
        Ok(Self {
            inner,
            keys,
            header,
            read_back,
            chunk_size,
            buf: Zeroizing::new(Vec::with_capacity(chunk_size + TAG_LEN)),
            index: 0,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The stream's data key, to read this stream back with [`super::Keys::read_back`] (e.g.
    /// to verify a staged copy) when the writer holds none of the keys it wrote to.
    pub fn read_back_key(&self) -> ReadBackKey {
        self.read_back.duplicate()
    }

    fn seal_chunk(&mut self, last: bool) -> io::Result<()> {
        let nonce = chunk_nonce(self.index, last);
        let tag = self
            .keys
            .payload
            .seal_in_place(&nonce, &self.keys.header_digest, &mut self.buf);
        self.buf.extend_from_slice(&tag);
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        self.index += 1;
        Ok(())
    }

    /// Seals the final chunk and returns the inner writer (not flushed to disk: that is the
    /// caller's business).
    pub fn finish(mut self) -> Result<W, FormatError> {
        self.seal_chunk(true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for StreamWriter<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let written = data.len();
        while !data.is_empty() {
            // A full buffer is sealed only once more data arrives: the final chunk must carry
            // the last-chunk flag, and it may be a full one.
            if self.buf.len() == self.chunk_size {
                self.seal_chunk(false)?;
            }
            let room = self.chunk_size - self.buf.len();
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
