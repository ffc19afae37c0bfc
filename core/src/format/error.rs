//! What can go wrong reading or writing a backup stream; each case has its own variant so the
//! caller can tell the user exactly what happened.

use crate::kdf::KdfError;

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("not an sstore backup (the file does not start with the sstore magic bytes)")]
    NotSstoreBackup,
    #[error(
        "unsupported backup format version {found} (this sstore reads format versions 1 to {supported}); use a newer sstore to read it"
    )]
    UnsupportedVersion { found: u16, supported: u16 },
    #[error("invalid backup header: {0}")]
    InvalidHeader(String),
    #[error("backup header: {0}")]
    Kdf(#[from] KdfError),
    /// None of the keys given opens the backup: a wrong or missing passphrase, no identity for
    /// any of its recipients, or a header altered in a field the slots bind. One error for all
    /// of them, so it says nothing about which slot was tried.
    #[error(
        "wrong passphrase or identity (the passphrase does not open this backup, no identity given is one of its recipients', or the backup header was altered)"
    )]
    WrongPassphrase,
    /// A key opened the data key but the header MAC does not match: key slots were added,
    /// removed, reordered or altered after the backup was written.
    #[error(
        "the backup header was altered: its key slots do not match the header's authentication code"
    )]
    HeaderAltered,
    /// The keys given for a new backup cannot be written as key slots.
    #[error("cannot write the backup's key slots: {0}")]
    Recipients(String),
    #[error(
        "chunk {index} at byte offset {offset} failed authentication: the backup is corrupted (or was cut short inside its last chunk)"
    )]
    CorruptedChunk { index: u64, offset: u64 },
    #[error("the backup is truncated: it ends at byte offset {offset} without its final chunk")]
    Truncated { offset: u64 },
    #[error("unexpected data after the end of the backup at byte offset {offset}")]
    TrailingData { offset: u64 },
    #[error("decompressing the payload failed: {0}")]
    Decompress(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl FormatError {
    /// Wraps this error in an `io::Error` so it can travel through `Read`/`Write` adapters.
    pub(crate) fn into_io(self) -> std::io::Error {
        match self {
            FormatError::Io(e) => e,
            other => std::io::Error::other(other),
        }
    }

    /// Recovers a typed error that travelled through an `io::Error`.
    pub fn from_io(err: std::io::Error) -> Self {
        if err.get_ref().is_some_and(|inner| inner.is::<FormatError>()) {
            if let Some(inner) = err.into_inner() {
                if let Ok(format) = inner.downcast::<FormatError>() {
                    return *format;
                }
                // Unreachable: checked above.
                return FormatError::InvalidHeader("unexpected error type".into());
            }
            return FormatError::InvalidHeader("unexpected error type".into());
        }
        FormatError::Io(err)
    }

    /// The stream itself is damaged (as opposed to a wrong passphrase or an I/O failure).
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            FormatError::NotSstoreBackup
                | FormatError::InvalidHeader(_)
                | FormatError::HeaderAltered
                | FormatError::Kdf(_)
                | FormatError::CorruptedChunk { .. }
                | FormatError::Truncated { .. }
                | FormatError::TrailingData { .. }
                | FormatError::Decompress(_)
        )
    }
}
