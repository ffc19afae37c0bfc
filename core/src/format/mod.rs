//! The sstore backup stream, format version 1 (specified in docs/FORMAT.md).
//!
//! A header carrying the Argon2id parameters, salts and a per-backup data key wrapped under the
//! passphrase, then AES-256-GCM chunks in the STREAM construction. [`PayloadWriter`] and
//! [`PayloadReader`] add optional zstd compression on top of [`StreamWriter`]/[`StreamReader`].
//! Both directions stream: memory is bounded by the chunk size whatever the payload size.

mod error;
mod header;
mod length;
mod payload;
mod reader;
mod writer;

pub use error::FormatError;
pub use header::{Compression, HEADER_LEN, Header, MAGIC};
pub use length::ExpectedLength;
pub use payload::{PayloadReader, PayloadWriter};
pub use reader::StreamReader;
pub use writer::{StreamOptions, StreamWriter};

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;

/// Default plaintext bytes per chunk.
pub const DEFAULT_CHUNK_SIZE: u32 = 1024 * 1024;
/// Smallest chunk size a reader accepts.
pub const MIN_CHUNK_SIZE: u32 = 4 * 1024;
/// Largest chunk size a reader accepts (bounds its memory).
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;

#[cfg(test)]
mod tests;
