//! The small interface the `smb` target needs from an SMB client, and the two clients behind
//! it: [`smb2`] (pure Rust, every build) and `libsmbclient` (Samba's C library, the opt-in
//! `libsmbclient` feature). The target (`crate::target`) holds the publishing rules, the
//! time limits and the error messages once, for both.
//!
//! Paths are share-relative, `/`-separated and not encoded (`sstore/sstorebr0000/x.bak`);
//! each client encodes them for its own wire or library. File operations return
//! [`io::Error`]s whose kind the target classifies; logging on returns a [`TargetError`]
//! that already says what failed.

use std::io;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use sstore_target_api::{ObjectReader, TargetError};

use crate::config::{ClientKind, SmbConfig};
use crate::security::SessionSecurity;

#[cfg(feature = "libsmbclient")]
mod libsmbclient;
mod smb2;

/// What `stat` and a listing say about a file or folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    pub is_dir: bool,
    pub size: u64,
    pub modified: Option<SystemTime>,
}

/// One entry of a folder listing (`.` and `..` left out).
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub name: String,
    pub stat: Stat,
}

/// A file being written: chunks in order, then `finish` (everything on the server's disk
/// and the handle closed) or `abort` (the handle closed and the file removed).
#[async_trait]
pub(crate) trait Upload: Send {
    async fn write(&mut self, chunk: Vec<u8>) -> io::Result<()>;
    /// Returns the number of bytes the server confirmed.
    async fn finish(self: Box<Self>) -> io::Result<u64>;
    async fn abort(self: Box<Self>);
}

/// One share, through one client. A session is opened on first use and again after
/// [`Share::reset`].
#[async_trait]
pub(crate) trait Share: Send + Sync {
    /// Logs on when there is no session (proving the password and the share) and says how
    /// the session is protected.
    async fn connect(&self) -> Result<SessionSecurity, TargetError>;
    /// Forgets the session: the next call logs on again.
    async fn reset(&self);
    /// `None` when nothing is at `path`.
    async fn stat(&self, path: &str) -> io::Result<Option<Stat>>;
    /// `None` when `dir` does not exist or is not a folder.
    async fn list(&self, dir: &str) -> io::Result<Option<Vec<Entry>>>;
    /// Creates a new file (failing with `AlreadyExists` if one is there, `NotFound` if its
    /// folder is missing).
    async fn create(&self, path: &str) -> io::Result<Box<dyn Upload>>;
    /// Opens `path` for reading from `start` to `end` (the file's end when `None`): its size
    /// and a reader that ends only after the file's handle is closed.
    async fn open(
        &self,
        path: &str,
        start: u64,
        end: Option<u64>,
    ) -> io::Result<(u64, ObjectReader)>;
    /// Creates one folder (`AlreadyExists` when it is there).
    async fn mkdir(&self, path: &str) -> io::Result<()>;
    async fn rmdir(&self, path: &str) -> io::Result<()>;
    async fn remove(&self, path: &str) -> io::Result<()>;
    /// Sets or clears the DOS read-only attribute.
    async fn set_read_only(&self, path: &str, read_only: bool) -> io::Result<()>;
    /// Renames `from` to `to`. With `replace` false, an existing `to` is an `AlreadyExists`
    /// error where the client can say so (see [`Share::renames_exclusively`]).
    async fn rename(&self, from: &str, to: &str, replace: bool) -> io::Result<()>;
    /// Bytes free to this user, where the server tells.
    async fn free_space(&self) -> io::Result<Option<u64>>;
    /// A rename without `replace` is refused by the server when `to` exists, and one with
    /// `replace` swaps the file in one step (smb2). libsmbclient always replaces, by unlinking
    /// first; the target then relies on read-only published files instead.
    fn renames_exclusively(&self) -> bool;
}

/// The share of `config`, through the client it names.
pub(crate) fn open(config: Arc<SmbConfig>) -> Result<Arc<dyn Share>, TargetError> {
    match config.client {
        ClientKind::Smb2 => Ok(Arc::new(smb2::Smb2Share::new(config))),
        #[cfg(feature = "libsmbclient")]
        ClientKind::Libsmbclient => Ok(Arc::new(libsmbclient::LibsmbclientShare::new(config))),
        #[cfg(not(feature = "libsmbclient"))]
        ClientKind::Libsmbclient => Err(sstore_target_api::TargetError::new(
            sstore_target_api::TargetErrorKind::InvalidConfig,
            &config.location(),
            None,
            format!(
                "client = \"libsmbclient\", but this sstore was built without it; build with the \
                 libsmbclient feature ({}), or use the built-in client (client = \"smb2\")",
                crate::security::LIBSMBCLIENT_BUILD
            ),
        )),
    }
}
