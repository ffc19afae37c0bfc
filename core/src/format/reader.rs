//! The decrypting half of the STREAM construction, with a distinct error for each kind of
//! damage.

use std::io::{self, Read};

use zeroize::Zeroize;

use super::FormatError;
use super::header::{Header, chunk_nonce, read_full};
use super::slots::{Keys, StreamKeys};
use crate::crypto::TAG_LEN;

/// Reads and authenticates a stream written by [`super::StreamWriter`], yielding plaintext.
/// Plaintext is released one authenticated chunk at a time; the end of the stream is reported
/// only after a chunk authenticated as final at the end of the input. Without an expected
/// length ([`super::ExpectedLength`]) a cut inside a chunk, or bytes appended after a short final
/// chunk, are reported as a corrupted chunk.
pub struct StreamReader<R: Read> {
    inner: R,
    header: Header,
    keys: StreamKeys,
    /// Where the first chunk starts.
    header_len: u64,
    chunk_size: usize,
    /// Holds one sealed chunk plus one look-ahead byte.
    pub(super) buf: Vec<u8>,
    /// Plaintext of the current chunk is `buf[pos..end]`.
    pos: usize,
    end: usize,
    carry: Option<u8>,
    index: u64,
    done: bool,
}

impl<R: Read> StreamReader<R> {
    /// Reads the header (version 1 or 2) and opens the data key with one of `keys` (or just a
    /// `&Passphrase`).
    pub fn open<'k>(mut inner: R, keys: impl Into<Keys<'k>>) -> Result<Self, FormatError> {
        let header = Header::read_from(&mut inner)?;
        let keys = header.open(keys.into())?;
        let header_len = header.encoded_len() as u64;
        let chunk_size = header.chunk_size as usize;
        Ok(Self {
            inner,
            header,
            keys,
            header_len,
            chunk_size,
            buf: vec![0; chunk_size + TAG_LEN + 1],
            pos: 0,
            end: 0,
            carry: None,
            index: 0,
            done: false,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    fn chunk_offset(&self) -> u64 {
        self.header_len + self.index * (self.chunk_size + TAG_LEN) as u64
    }

    /// Reads, authenticates and decrypts the next chunk into `buf`. Returns `false` at the end.
    fn next_chunk(&mut self) -> Result<bool, FormatError> {
        if self.done {
            return Ok(false);
        }
        let sealed_len = self.chunk_size + TAG_LEN;
        let mut filled = 0;
        if let Some(byte) = self.carry.take() {
            self.buf[0] = byte;
            filled = 1;
        }
        filled += read_full(&mut self.inner, &mut self.buf[filled..])?;
        let offset = self.chunk_offset();
        let (len, last) = if filled == sealed_len + 1 {
            self.carry = Some(self.buf[sealed_len]);
            (sealed_len, false)
        } else {
            (filled, true)
        };
        if len < TAG_LEN {
            return Err(FormatError::Truncated {
                offset: offset + len as u64,
            });
        }
        let body_len = len - TAG_LEN;
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&self.buf[body_len..len]);
        let aad = self.keys.header_digest;
        let attempt = |buf: &mut [u8], last_flag: bool| {
            self.keys
                .payload
                .open_in_place(&chunk_nonce(self.index, last_flag), &aad, buf, &tag)
        };
        if attempt(&mut self.buf[..body_len], last).is_err() {
            return Err(self.diagnose(body_len, last, offset));
        }
        if last && self.index > 0 && body_len == 0 {
            return Err(FormatError::CorruptedChunk {
                index: self.index,
                offset,
            });
        }
        self.pos = 0;
        self.end = body_len;
        self.index += 1;
        if last {
            self.done = true;
        }
        Ok(true)
    }

    /// A chunk failed to authenticate with the flag its position implies. Decrypting failed
    /// without modifying the buffer, so try the other flag to tell truncation and trailing data
    /// apart from corruption.
    fn diagnose(&mut self, body_len: usize, last: bool, offset: u64) -> FormatError {
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&self.buf[body_len..body_len + TAG_LEN]);
        let nonce = chunk_nonce(self.index, !last);
        let other_flag_opens = self
            .keys
            .payload
            .open_in_place(
                &nonce,
                &self.keys.header_digest,
                &mut self.buf[..body_len],
                &tag,
            )
            .is_ok();
        if other_flag_opens {
            self.buf[..body_len].zeroize();
        }
        let end = offset + (body_len + TAG_LEN) as u64;
        match (other_flag_opens, last) {
            // A complete non-final chunk followed by end of input: cut at a chunk boundary.
            (true, true) => FormatError::Truncated { offset: end },
            // A valid final chunk followed by more bytes.
            (true, false) => FormatError::TrailingData { offset: end },
            _ => FormatError::CorruptedChunk {
                index: self.index,
                offset,
            },
        }
    }
}

impl<R: Read> Read for StreamReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.end {
            if !self.next_chunk().map_err(FormatError::into_io)? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.end - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl<R: Read> Drop for StreamReader<R> {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}
