//! The payload layer: optional zstd compression inside the encrypted stream.

use std::io::{self, BufReader, Read, Write};

use super::header::Compression;
use super::{
    FormatError, Header, Keys, ReadBackKey, Recipients, StreamOptions, StreamReader, StreamWriter,
};

/// zstd level used for store payloads. A store's sealed values do not compress, its structure
/// does, so the fast levels are as small: on a 1M-set store level 3 made 191.5 MB, level 1
/// 190.1 MB at half level 3's CPU time, and level -1 190.4 MB (+0.12%) with backups 12% faster
/// again (0.65 vs 0.74 s, medians of 3 alternating runs; the backup is CPU-bound on 2 cores).
/// Any level decodes the same way, so this is no format change.
const ZSTD_LEVEL: i32 = -1;

/// The input each compression worker takes at a time.
const JOB_SIZE: u32 = 4 * 1024 * 1024;

/// Compression workers: one per core, at most 4; none (compress on the calling thread) on a
/// single core.
fn compression_workers() -> Option<u32> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    (cores > 1).then(|| cores.min(4) as u32)
}

/// Writes plaintext into an encrypted stream, compressing it first when the options ask for it.
pub enum PayloadWriter<W: Write> {
    Plain(StreamWriter<W>),
    Zstd(zstd::stream::write::Encoder<'static, StreamWriter<W>>),
}

impl<W: Write> PayloadWriter<W> {
    /// A version-2 stream with a key slot for each of `recipients` (or just a `&Passphrase`).
    pub fn new<'k>(
        inner: W,
        recipients: impl Into<Recipients<'k>>,
        options: &StreamOptions,
    ) -> Result<Self, FormatError> {
        let stream = StreamWriter::new(inner, recipients, options)?;
        Ok(match options.compression {
            Compression::None => Self::Plain(stream),
            Compression::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(stream, ZSTD_LEVEL)?;
                // Compression runs on worker threads while this one encrypts and writes what
                // they produced; jobs of JOB_SIZE bound the memory it takes.
                if let Some(workers) = compression_workers() {
                    encoder.multithread(workers)?;
                    encoder.set_parameter(zstd::stream::raw::CParameter::JobSize(JOB_SIZE))?;
                }
                Self::Zstd(encoder)
            }
        })
    }

    pub fn header(&self) -> &Header {
        match self {
            Self::Plain(w) => w.header(),
            Self::Zstd(w) => w.get_ref().header(),
        }
    }

    /// See [`StreamWriter::read_back_key`].
    pub fn read_back_key(&self) -> ReadBackKey {
        match self {
            Self::Plain(w) => w.read_back_key(),
            Self::Zstd(w) => w.get_ref().read_back_key(),
        }
    }

    /// Ends the compressed frame and seals the final chunk; returns the inner writer.
    pub fn finish(self) -> Result<W, FormatError> {
        match self {
            Self::Plain(w) => w.finish(),
            Self::Zstd(w) => w.finish().map_err(FormatError::from_io)?.finish(),
        }
    }
}

impl<W: Write> Write for PayloadWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(w) => w.write(buf),
            Self::Zstd(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(w) => w.flush(),
            Self::Zstd(w) => w.flush(),
        }
    }
}

/// Reads plaintext out of an encrypted stream, decompressing it when the header says so.
pub enum PayloadReader<R: Read> {
    Plain(Box<StreamReader<R>>),
    Zstd(Box<zstd::stream::read::Decoder<'static, BufReader<StreamReader<R>>>>),
}

impl<R: Read> PayloadReader<R> {
    /// Opens a version-1 or -2 stream with one of `keys` (or just a `&Passphrase`).
    pub fn open<'k>(inner: R, keys: impl Into<Keys<'k>>) -> Result<Self, FormatError> {
        let stream = StreamReader::open(inner, keys)?;
        Ok(match stream.header().compression {
            Compression::None => Self::Plain(Box::new(stream)),
            Compression::Zstd => Self::Zstd(Box::new(zstd::stream::read::Decoder::new(stream)?)),
        })
    }

    pub fn header(&self) -> &Header {
        match self {
            Self::Plain(r) => r.header(),
            Self::Zstd(r) => r.get_ref().get_ref().header(),
        }
    }

    /// Copies the whole payload to `out`; errors come back typed (corruption, truncation ...).
    pub fn copy_to(&mut self, out: &mut impl Write) -> Result<u64, FormatError> {
        let copied = io::copy(self, out).map_err(FormatError::from_io)?;
        Ok(copied)
    }
}

impl<R: Read> Read for PayloadReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(r) => r.read(buf),
            Self::Zstd(r) => match r.read(buf) {
                Ok(n) => Ok(n),
                // Errors from the stream below pass through typed; anything else comes from
                // zstd itself, which only sees authenticated bytes.
                Err(e) if e.get_ref().is_some_and(|i| i.is::<FormatError>()) => Err(e),
                Err(e)
                    if e.kind() == io::ErrorKind::Other
                        || e.kind() == io::ErrorKind::InvalidData =>
                {
                    Err(FormatError::Decompress(e.to_string()).into_io())
                }
                Err(e) => Err(e),
            },
        }
    }
}
