//! A reader that knows how long the stream must be (from the manifest), so a file cut short
//! anywhere, even inside its last chunk, reports `Truncated`, and extra bytes `TrailingData`.

use std::io::{self, Read};

use super::FormatError;

pub struct ExpectedLength<R: Read> {
    inner: R,
    expected: u64,
    seen: u64,
}

impl<R: Read> ExpectedLength<R> {
    pub fn new(inner: R, expected: u64) -> Self {
        Self {
            inner,
            expected,
            seen: 0,
        }
    }
}

impl<R: Read> Read for ExpectedLength<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.seen == self.expected {
            // Anything beyond the recorded length is trailing data.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(FormatError::TrailingData {
                    offset: self.expected,
                }
                .into_io()),
            };
        }
        let room = usize::try_from(self.expected - self.seen).unwrap_or(usize::MAX);
        let want = buf.len().min(room);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 && want > 0 {
            return Err(FormatError::Truncated { offset: self.seen }.into_io());
        }
        self.seen += n as u64;
        Ok(n)
    }
}
