//! The sstore backup stream (specified in docs/FORMAT.md): format version 2 is written, versions
//! 1 and 2 are read.
//!
//! A header carrying the backup's key slots, then AES-256-GCM chunks in the STREAM construction.
//! A random per-backup data key is wrapped once per key: a passphrase slot (Argon2id) and/or
//! X25519 recipient slots ([`crate::recipient`]); a header MAC and the chunks' associated data
//! bind every slot. [`PayloadWriter`] and [`PayloadReader`] add optional zstd compression on top
//! of [`StreamWriter`]/[`StreamReader`]. Both directions stream: memory is bounded by the chunk
//! size whatever the payload size.
//!
//! # API
//!
//! - Writing: `PayloadWriter::new(inner, recipients, &StreamOptions)` where `recipients` is a
//!   [`Recipients`] (`Recipients::new(Some(&passphrase), &[recipient, …])`) or just a
//!   `&Passphrase`. The passphrase slot uses `StreamOptions::kdf`. New streams are version 2.
//! - Reading: `PayloadReader::open(inner, keys)` where `keys` is a [`Keys`]
//!   (`Keys::new(Some(&passphrase), &identities)`, `Keys::identities(&ids)`) or just a
//!   `&Passphrase`. Version 1 and 2 streams are told apart by the header's version field. Any
//!   wrong or missing key gives [`FormatError::WrongPassphrase`].
//! - Reading back what was just written, holding none of its keys (a recipient-only job
//!   verifying its staged copy): `let key = writer.read_back_key();` before `finish`, then
//!   `PayloadReader::open(staged, Keys::read_back(&key))`.
//! - The header: [`Header::slots`] (public slot descriptions for the manifest and history),
//!   [`Header::passphrase_kdf`], [`Header::recipients`], [`Header::encoded_len`] (where the first
//!   chunk starts), [`Header::read_from`] (the header alone, e.g. to say what opens a backup).

mod error;
mod header;
mod length;
mod payload;
mod reader;
mod slots;
mod writer;

pub use error::FormatError;
pub use header::{
    Compression, HEADER_LEN, HEADER_LEN_V1, Header, MAGIC, MAX_HEADER_LEN, SlotDescription,
};
pub use length::ExpectedLength;
pub use payload::{PayloadReader, PayloadWriter};
pub use reader::StreamReader;
pub use slots::{Keys, ReadBackKey, Recipients};
pub use writer::{StreamOptions, StreamWriter};

/// The format version this build writes (it reads versions 1 and 2).
pub const FORMAT_VERSION: u16 = 2;

/// The most key slots a version-2 header may have; a reader refuses more before reading them.
pub const MAX_SLOTS: usize = 16;

/// Default plaintext bytes per chunk.
pub const DEFAULT_CHUNK_SIZE: u32 = 1024 * 1024;
/// Smallest chunk size a reader accepts.
pub const MIN_CHUNK_SIZE: u32 = 4 * 1024;
/// Largest chunk size a reader accepts (bounds its memory).
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;

#[cfg(test)]
mod slot_tests;
#[cfg(test)]
mod tests;
