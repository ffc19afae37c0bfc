//! Write a storage target for sstore as a shared library that sstore loads at run time.
//!
//! Implement [`Plugin`] (and [`Upload`] and [`Download`] for its transfers) in safe Rust, then
//! export it with [`export_plugin!`]. The macro emits the one `extern "C"` entry symbol that
//! returns the [`abi::PluginTable`]; every exported function catches panics, so a bug in a
//! plugin becomes an error in sstore, not a crash. Build the crate as a `cdylib`, with
//! `panic = "unwind"` (the default; with `panic = "abort"` a panic kills sstore) and for the same
//! target triple as sstore. docs/PLUGINS.md walks through it.
//!
//! This crate has no dependencies and does not depend on sstore's engine or on an async
//! runtime: sstore calls a plugin from its own blocking threads.
//!
//! ```ignore
//! struct Spool { /* ... */ }
//! impl sstore_plugin::Plugin for Spool { /* ... */ }
//! sstore_plugin::export_plugin!(Spool);
//! ```

pub mod abi;
#[doc(hidden)]
pub mod export;

use std::fmt;
use std::ops::Range;
use std::time::SystemTime;

/// What went wrong, as sstore's target error kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The object does not exist.
    NotFound,
    /// The object exists and the put was create-only.
    AlreadyExists,
    /// The service refused the operation.
    PermissionDenied,
    /// The credentials were refused.
    Unauthenticated,
    /// The settings are wrong.
    InvalidConfig,
    /// The operation is not supported.
    Unsupported,
    /// The target is full.
    NoSpace,
    /// The content is not what was expected.
    InvalidData,
    /// A local or remote I/O error (temporary by default).
    Io,
    /// The connection failed (temporary by default).
    Network,
    /// An operation took too long (temporary by default).
    Timeout,
}

impl ErrorKind {
    fn status(self) -> abi::Status {
        use abi::status as s;
        match self {
            Self::NotFound => s::NOT_FOUND,
            Self::AlreadyExists => s::ALREADY_EXISTS,
            Self::PermissionDenied => s::PERMISSION_DENIED,
            Self::Unauthenticated => s::UNAUTHENTICATED,
            Self::InvalidConfig => s::INVALID_CONFIG,
            Self::Unsupported => s::UNSUPPORTED,
            Self::NoSpace => s::NO_SPACE,
            Self::InvalidData => s::INVALID_DATA,
            Self::Io => s::IO,
            Self::Network => s::NETWORK,
            Self::Timeout => s::TIMEOUT,
        }
    }
}

/// A plugin's error: a kind, whether trying again may help, and a message (never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The kind sstore's engine sees.
    pub kind: ErrorKind,
    /// Whether a retry may succeed.
    pub temporary: bool,
    /// For the operator.
    pub message: String,
}

impl Error {
    /// An error of `kind`; I/O, network and timeout errors are temporary, the rest permanent.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            temporary: matches!(
                kind,
                ErrorKind::Io | ErrorKind::Network | ErrorKind::Timeout
            ),
            message: message.into(),
        }
    }

    /// Overrides whether a retry may help.
    pub fn temporary(mut self, temporary: bool) -> Self {
        self.temporary = temporary;
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let kind = match e.kind() {
            K::NotFound => ErrorKind::NotFound,
            K::AlreadyExists => ErrorKind::AlreadyExists,
            K::PermissionDenied | K::ReadOnlyFilesystem => ErrorKind::PermissionDenied,
            K::StorageFull | K::QuotaExceeded => ErrorKind::NoSpace,
            K::Unsupported => ErrorKind::Unsupported,
            K::TimedOut => ErrorKind::Timeout,
            K::ConnectionRefused | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
                ErrorKind::Network
            }
            _ => ErrorKind::Io,
        };
        Self::new(kind, e.to_string())
    }
}

/// The result type of plugin operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a put may do to an existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// Fail with [`ErrorKind::AlreadyExists`] if the key exists.
    Create,
    /// Replace the object atomically.
    Overwrite,
}

/// An object's size, modification time and (if the plugin keeps one) SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    /// Size in bytes.
    pub size: u64,
    /// Last modification.
    pub modified: Option<SystemTime>,
    /// SHA-256 of the stored bytes.
    pub sha256: Option<[u8; 32]>,
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its key.
    pub key: String,
    /// Its description.
    pub stat: Stat,
}

/// The result of a readiness check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Readiness {
    /// A probe write succeeded.
    pub writable: bool,
    /// Free space in bytes, when known.
    pub free_bytes: Option<u64>,
}

/// What [`Plugin::open`] receives.
#[derive(Debug, Clone)]
pub struct OpenRequest {
    /// The configured target's name or the location as typed: for messages.
    pub name: String,
    /// The URL, when the target was named by one (`myscheme://...`).
    pub url: Option<String>,
    /// The `[[target]]` settings (without `name`, `kind`, `url`) as a JSON object. Secrets
    /// appear as `*_env` / `*_file` references, which the plugin resolves itself.
    pub settings_json: String,
}

/// A storage target implemented in a plugin. Keys reaching it are already validated: relative,
/// `/`-separated, no empty, `.` or `..` segments, no backslash or control characters.
///
/// Calls may come from several threads at once. Every put must publish atomically: the object
/// becomes visible under its key only in [`Upload::finish`], and [`Upload::abort`] (or a failed
/// finish) leaves nothing under the key.
pub trait Plugin: Send + Sync + Sized + 'static {
    /// The kind name users write in config (`kind = "..."`).
    const KIND: &'static str;
    /// URL schemes served (may be empty).
    const SCHEMES: &'static [&'static str];
    /// One line for `sstore targets`.
    const DESCRIPTION: &'static str;
    /// [`abi::capability`] bits.
    const CAPABILITIES: u32 = abi::capability::ATOMIC_PUBLISH;

    /// An in-progress upload.
    type Upload: Upload;
    /// An in-progress download.
    type Download: Download;

    /// Opens a target from its settings.
    fn open(request: OpenRequest) -> Result<Self>;
    /// Starts storing `key`; `length` is the exact size when known.
    fn put(&self, key: &str, mode: PutMode, length: Option<u64>) -> Result<Self::Upload>;
    /// Reads `key`, whole (`None`) or the bytes of `range` (its end clamped to the size).
    fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Self::Download>;
    /// Describes `key`.
    fn stat(&self, key: &str) -> Result<Stat>;
    /// Every object whose key starts with `prefix`, in any order.
    fn list(&self, prefix: &str) -> Result<Vec<Entry>>;
    /// Removes `key`.
    fn delete(&self, key: &str) -> Result<()>;
    /// Checks that the target answers and accepts writes, in bounded time.
    fn readiness(&self) -> Result<Readiness>;
}

/// An upload in progress.
pub trait Upload: Send + 'static {
    /// Appends bytes.
    fn write(&mut self, data: &[u8]) -> Result<()>;
    /// Publishes the object under its key.
    fn finish(self) -> Result<Stat>;
    /// Abandons the upload; nothing may remain visible.
    fn abort(self);
}

/// A download in progress.
pub trait Download: Send + 'static {
    /// Reads into `buf`; 0 means the end of the object.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize>;
}

/// Exports `$plugin` (a type implementing [`Plugin`]) as an sstore plugin: emits the
/// `sstore_plugin_entry` symbol returning its function table.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        /// The sstore plugin entry point.
        #[unsafe(no_mangle)]
        pub extern "C" fn sstore_plugin_entry() -> *const $crate::abi::PluginHeader {
            static TABLE: $crate::export::TableCell = $crate::export::TableCell::new();
            TABLE.get::<$plugin>(env!("CARGO_PKG_VERSION"))
        }
    };
}
