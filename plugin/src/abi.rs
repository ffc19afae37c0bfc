//! The C ABI between sstore and a run-time plugin, version 1.
//!
//! A plugin is a shared library that exports one function, [`ENTRY_SYMBOL`], returning a
//! pointer to a [`PluginTable`]. The host reads only the [`PluginHeader`] at the start of the
//! table first, and trusts the rest only if the ABI version matches and the table is large
//! enough. Everything crossing the boundary is a plain pointer, length, integer or `#[repr(C)]`
//! struct; no Rust type layouts are shared. Every function reports failure as a [`Status`]
//! code plus a message written into a buffer the host owns ([`ErrorOut`]).
//!
//! Handles (`*mut c_void`) are created and freed by the plugin: a target handle by `open` /
//! `close`, an upload by `put_begin` / `put_finish` or `put_abort`, a download by `get_begin` /
//! `get_close`. The host may call a target handle's functions from several threads at once,
//! and an upload's or download's functions from one thread at a time.

use std::ffi::c_void;

/// The ABI version this crate implements. The host refuses any other.
pub const ABI_VERSION: u32 = 1;

/// The one symbol a plugin exports: `extern "C" fn() -> *const PluginTable`.
pub const ENTRY_SYMBOL: &str = "sstore_plugin_entry";

/// The entry function's type.
pub type EntryFn = unsafe extern "C" fn() -> *const PluginHeader;

/// Borrowed UTF-8 text: a pointer and a length in bytes (not NUL-terminated).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Str {
    /// The first byte (may be dangling when `len` is 0).
    pub ptr: *const u8,
    /// The length in bytes.
    pub len: usize,
}

// SAFETY: a `Str` is a shared borrow of immutable bytes, like `&[u8]`.
unsafe impl Send for Str {}
// SAFETY: as above.
unsafe impl Sync for Str {}

impl Str {
    /// Borrows `s` (valid as long as `s` is).
    pub const fn new(s: &str) -> Self {
        Self {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// The text, if it is valid UTF-8.
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes that stay valid and unchanged for `'a`.
    pub unsafe fn as_str<'a>(self) -> Option<&'a str> {
        if self.len == 0 {
            return Some("");
        }
        if self.ptr.is_null() {
            return None;
        }
        // SAFETY: the caller guarantees `ptr` points to `len` readable bytes for `'a`.
        let bytes = unsafe { std::slice::from_raw_parts(self.ptr, self.len) };
        std::str::from_utf8(bytes).ok()
    }
}

/// A status code. [`status::OK`] is success; every other value is an error whose message is
/// in the [`ErrorOut`] passed to the call.
pub type Status = i32;

/// Status codes; they map one-to-one to the host's target error kinds.
pub mod status {
    use super::Status;
    /// Success.
    pub const OK: Status = 0;
    /// The object does not exist.
    pub const NOT_FOUND: Status = 1;
    /// The object exists and the put was create-only.
    pub const ALREADY_EXISTS: Status = 2;
    /// The service refused the operation.
    pub const PERMISSION_DENIED: Status = 3;
    /// The credentials were refused.
    pub const UNAUTHENTICATED: Status = 4;
    /// The settings passed to `open` are wrong.
    pub const INVALID_CONFIG: Status = 5;
    /// The plugin does not support the operation.
    pub const UNSUPPORTED: Status = 6;
    /// The target is full.
    pub const NO_SPACE: Status = 7;
    /// The content is not what was expected (a checksum mismatch, a short body).
    pub const INVALID_DATA: Status = 8;
    /// A local or remote I/O error.
    pub const IO: Status = 9;
    /// The connection failed.
    pub const NETWORK: Status = 10;
    /// An operation took too long.
    pub const TIMEOUT: Status = 11;
    /// The plugin panicked; the wrapper caught it.
    pub const PANIC: Status = 12;
    /// The host passed something the plugin cannot accept (an invalid key, a null pointer).
    pub const INVALID_ARGUMENT: Status = 13;
}

/// Where a failing call writes its message: a buffer the host owns. The plugin writes at most
/// `cap` bytes of UTF-8 at `buf`, sets `len`, and sets `temporary` to 1 when trying again may
/// help (a dropped connection) or 0 when it will not (a wrong password).
#[repr(C)]
#[derive(Debug)]
pub struct ErrorOut {
    /// The host's buffer.
    pub buf: *mut u8,
    /// Its capacity in bytes.
    pub cap: usize,
    /// Bytes written.
    pub len: usize,
    /// 1 if the failure is temporary.
    pub temporary: u8,
}

/// An object's size, time and checksum.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Stat {
    /// Size in bytes.
    pub size: u64,
    /// Modification time in nanoseconds since the Unix epoch; [`i64::MIN`] when unknown.
    pub modified_unix_nanos: i64,
    /// 1 if `sha256` holds the SHA-256 of the object's bytes.
    pub has_sha256: u8,
    /// The SHA-256, if `has_sha256`.
    pub sha256: [u8; 32],
}

/// The result of a readiness check.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadinessOut {
    /// 1 if a probe write succeeded.
    pub writable: u8,
    /// 1 if `free_bytes` is known.
    pub has_free_bytes: u8,
    /// Free space in bytes.
    pub free_bytes: u64,
}

/// Capability bits of [`PluginTable::capabilities`].
pub mod capability {
    /// Publishing is a native atomic step (rename, multipart completion).
    pub const ATOMIC_PUBLISH: u32 = 1;
    /// Create-only puts are enforced by the service.
    pub const CONDITIONAL_CREATE: u32 = 2;
    /// Large uploads go up in resumable parts.
    pub const MULTIPART: u32 = 4;
    /// `stat` reports a SHA-256 of the stored bytes.
    pub const SERVER_SHA256: u32 = 8;
    /// Ranged reads fetch only the requested bytes.
    pub const NATIVE_RANGES: u32 = 16;
}

/// Put modes for `put_begin`.
pub mod put_mode {
    /// Fail with `ALREADY_EXISTS` if the key exists.
    pub const CREATE: u32 = 0;
    /// Replace atomically.
    pub const OVERWRITE: u32 = 1;
}

// SAFETY: a table is immutable once built: plain data, function pointers, and pointers to the
// plugin's immutable static data.
unsafe impl Send for PluginTable {}
// SAFETY: as above.
unsafe impl Sync for PluginTable {}

/// Called by `list` once per object.
pub type ListCallback = unsafe extern "C" fn(context: *mut c_void, key: Str, stat: *const Stat);

/// The start of every table: read and checked before anything else.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PluginHeader {
    /// The ABI version the plugin was built against.
    pub abi_version: u32,
    /// `size_of::<PluginTable>()` as the plugin knows it.
    pub table_size: u32,
}

/// The function table of ABI version 1. Fields are only ever added at the end, with a new
/// version number.
#[repr(C)]
#[derive(Debug)]
pub struct PluginTable {
    /// Version and size, checked first.
    pub header: PluginHeader,
    /// The kind name (`kind = "..."` in config).
    pub kind: Str,
    /// One line for `sstore targets`.
    pub description: Str,
    /// The plugin's own version, for messages.
    pub plugin_version: Str,
    /// The URL schemes served.
    pub schemes: *const Str,
    /// How many schemes.
    pub schemes_len: usize,
    /// [`capability`] bits.
    pub capabilities: u32,
    /// Opens a target: `name` for messages, `url` (empty when none) and the settings as a JSON
    /// object. Writes the new handle to `out`.
    pub open: unsafe extern "C" fn(
        name: Str,
        url: Str,
        settings_json: Str,
        out: *mut *mut c_void,
        err: *mut ErrorOut,
    ) -> Status,
    /// Frees a target handle.
    pub close: unsafe extern "C" fn(target: *mut c_void),
    /// Starts an upload; `length` is meaningful when `has_length` is 1.
    pub put_begin: unsafe extern "C" fn(
        target: *mut c_void,
        key: Str,
        mode: u32,
        has_length: u8,
        length: u64,
        out: *mut *mut c_void,
        err: *mut ErrorOut,
    ) -> Status,
    /// Appends bytes to an upload.
    pub put_write: unsafe extern "C" fn(
        upload: *mut c_void,
        data: *const u8,
        len: usize,
        err: *mut ErrorOut,
    ) -> Status,
    /// Publishes the upload and frees the handle, whatever the outcome.
    pub put_finish:
        unsafe extern "C" fn(upload: *mut c_void, out: *mut Stat, err: *mut ErrorOut) -> Status,
    /// Abandons the upload (nothing becomes visible) and frees the handle.
    pub put_abort: unsafe extern "C" fn(upload: *mut c_void),
    /// Opens a download of bytes `start..end` (`end` = `u64::MAX` for "to the end").
    pub get_begin: unsafe extern "C" fn(
        target: *mut c_void,
        key: Str,
        start: u64,
        end: u64,
        out: *mut *mut c_void,
        err: *mut ErrorOut,
    ) -> Status,
    /// Reads up to `cap` bytes; writes the count to `out_len` (0 at the end).
    pub get_read: unsafe extern "C" fn(
        download: *mut c_void,
        buf: *mut u8,
        cap: usize,
        out_len: *mut usize,
        err: *mut ErrorOut,
    ) -> Status,
    /// Frees a download handle.
    pub get_close: unsafe extern "C" fn(download: *mut c_void),
    /// Describes one object.
    pub stat: unsafe extern "C" fn(
        target: *mut c_void,
        key: Str,
        out: *mut Stat,
        err: *mut ErrorOut,
    ) -> Status,
    /// Calls `callback` for every object whose key starts with `prefix`.
    pub list: unsafe extern "C" fn(
        target: *mut c_void,
        prefix: Str,
        callback: ListCallback,
        context: *mut c_void,
        err: *mut ErrorOut,
    ) -> Status,
    /// Removes one object.
    pub delete: unsafe extern "C" fn(target: *mut c_void, key: Str, err: *mut ErrorOut) -> Status,
    /// Checks that the target answers and accepts writes.
    pub readiness: unsafe extern "C" fn(
        target: *mut c_void,
        out: *mut ReadinessOut,
        err: *mut ErrorOut,
    ) -> Status,
}
