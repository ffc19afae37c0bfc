//! The exported side of the ABI: `extern "C"` functions, generic over a [`Plugin`], that turn
//! raw pointers into safe calls, catch every panic, and report errors through [`ErrorOut`].
//! [`crate::export_plugin!`] wires them into a table; plugin authors never call this directly.

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use crate::abi::{
    self, ABI_VERSION, ErrorOut, ListCallback, PluginHeader, PluginTable, ReadinessOut, Status,
    Str, status,
};
use crate::{Download, Error, ErrorKind, OpenRequest, Plugin, PutMode, Stat, Upload};

/// The lazily built table of one plugin type, with the scheme array it points into.
pub struct TableCell(OnceLock<Built>);

struct Built {
    table: PluginTable,
    _schemes: Vec<Str>,
}

impl TableCell {
    /// An empty cell, for a `static`.
    pub const fn new() -> Self {
        Self(OnceLock::new())
    }

    /// The table of `P`, built on first use.
    pub fn get<P: Plugin>(&self, plugin_version: &'static str) -> *const PluginHeader {
        let built = self.0.get_or_init(|| {
            let schemes: Vec<Str> = P::SCHEMES.iter().map(|s| Str::new(s)).collect();
            let table = PluginTable {
                header: PluginHeader {
                    abi_version: ABI_VERSION,
                    table_size: std::mem::size_of::<PluginTable>() as u32,
                },
                kind: Str::new(P::KIND),
                description: Str::new(P::DESCRIPTION),
                plugin_version: Str::new(plugin_version),
                schemes: schemes.as_ptr(),
                schemes_len: schemes.len(),
                capabilities: P::CAPABILITIES,
                open: open::<P>,
                close: close::<P>,
                put_begin: put_begin::<P>,
                put_write: put_write::<P>,
                put_finish: put_finish::<P>,
                put_abort: put_abort::<P>,
                get_begin: get_begin::<P>,
                get_read: get_read::<P>,
                get_close: get_close::<P>,
                stat: stat::<P>,
                list: list::<P>,
                delete: delete::<P>,
                readiness: readiness::<P>,
            };
            Built {
                table,
                _schemes: schemes,
            }
        });
        &built.table.header
    }
}

impl Default for TableCell {
    fn default() -> Self {
        Self::new()
    }
}

/// Writes `message` (truncated at a character boundary) into the host's buffer.
fn report(err: *mut ErrorOut, message: &str, temporary: bool) {
    if err.is_null() {
        return;
    }
    // SAFETY: the host passes a valid, exclusive `ErrorOut` for the duration of the call.
    let err = unsafe { &mut *err };
    let mut len = message.len().min(err.cap);
    while !message.is_char_boundary(len) {
        len -= 1;
    }
    if !err.buf.is_null() && len > 0 {
        // SAFETY: `buf` has room for `cap` bytes and `len <= cap`; the regions cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(message.as_ptr(), err.buf, len) };
    }
    err.len = len;
    err.temporary = u8::from(temporary);
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

/// Runs `body`, turning its error or panic into a status and a message.
fn guard(err: *mut ErrorOut, body: impl FnOnce() -> crate::Result<()>) -> Status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => status::OK,
        Ok(Err(e)) => {
            report(err, &e.message, e.temporary);
            e.kind.status()
        }
        Err(payload) => {
            let message = format!("the plugin panicked: {}", panic_message(payload.as_ref()));
            report(err, &message, false);
            status::PANIC
        }
    }
}

fn invalid(message: &str) -> Error {
    Error::new(ErrorKind::InvalidConfig, message)
}

/// Borrows host text for the duration of a call.
///
/// # Safety
/// `s` must describe bytes that stay valid for the call, as the ABI promises.
unsafe fn text<'a>(s: Str, what: &str) -> crate::Result<&'a str> {
    // SAFETY: forwarded from the caller.
    unsafe { s.as_str() }.ok_or_else(|| invalid(&format!("the {what} is not valid UTF-8")))
}

/// Refuses keys the host should never send (defence in depth: the host validates first).
fn check_key(key: &str) -> crate::Result<()> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key.contains('\\')
        || key.chars().any(char::is_control)
        || key
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..");
    if bad {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("invalid object key '{}'", key.escape_debug()),
        ));
    }
    Ok(())
}

/// Borrows the plugin behind a target handle.
///
/// # Safety
/// `handle` must come from `open::<P>` and not have been closed.
unsafe fn target<'a, P: Plugin>(handle: *mut c_void) -> crate::Result<&'a P> {
    if handle.is_null() {
        return Err(invalid("null target handle"));
    }
    // SAFETY: per the contract, `handle` is a live `Box<P>` made by `open::<P>`.
    Ok(unsafe { &*(handle as *const P) })
}

fn to_abi(stat: &Stat) -> abi::Stat {
    let modified = stat
        .modified
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
        .unwrap_or(i64::MIN);
    abi::Stat {
        size: stat.size,
        modified_unix_nanos: modified,
        has_sha256: u8::from(stat.sha256.is_some()),
        sha256: stat.sha256.unwrap_or([0; 32]),
    }
}

fn write_out<T>(out: *mut T, value: T) -> crate::Result<()> {
    if out.is_null() {
        return Err(invalid("null output pointer"));
    }
    // SAFETY: the host passes a valid, writable pointer for the output.
    unsafe { out.write(value) };
    Ok(())
}

unsafe extern "C" fn open<P: Plugin>(
    name: Str,
    url: Str,
    settings_json: Str,
    out: *mut *mut c_void,
    err: *mut ErrorOut,
) -> Status {
    guard(err, || {
        // SAFETY: the host's strings are valid for this call.
        let (name, url, settings) = unsafe {
            (
                text(name, "name")?,
                text(url, "URL")?,
                text(settings_json, "settings")?,
            )
        };
        let plugin = P::open(OpenRequest {
            name: name.to_owned(),
            url: (!url.is_empty()).then(|| url.to_owned()),
            settings_json: settings.to_owned(),
        })?;
        write_out(out, Box::into_raw(Box::new(plugin)).cast::<c_void>())
    })
}

unsafe extern "C" fn close<P: Plugin>(handle: *mut c_void) {
    if handle.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `handle` is a `Box<P>` from `open::<P>`, closed exactly once by the host.
        drop(unsafe { Box::from_raw(handle.cast::<P>()) });
    }));
}

unsafe extern "C" fn put_begin<P: Plugin>(
    handle: *mut c_void,
    key: Str,
    mode: u32,
    has_length: u8,
    length: u64,
    out: *mut *mut c_void,
    err: *mut ErrorOut,
) -> Status {
    guard(err, || {
        // SAFETY: the host passes a live handle and a valid key for this call.
        let (plugin, key) = unsafe { (target::<P>(handle)?, text(key, "key")?) };
        check_key(key)?;
        let mode = match mode {
            abi::put_mode::CREATE => PutMode::Create,
            abi::put_mode::OVERWRITE => PutMode::Overwrite,
            other => return Err(invalid(&format!("unknown put mode {other}"))),
        };
        let upload = plugin.put(key, mode, (has_length == 1).then_some(length))?;
        write_out(out, Box::into_raw(Box::new(upload)).cast::<c_void>())
    })
}

unsafe extern "C" fn put_write<P: Plugin>(
    upload: *mut c_void,
    data: *const u8,
    len: usize,
    err: *mut ErrorOut,
) -> Status {
    guard(err, || {
        if upload.is_null() || (data.is_null() && len > 0) {
            return Err(invalid("null pointer passed to put_write"));
        }
        // SAFETY: `upload` is a live `Box<P::Upload>` used by one thread at a time.
        let upload = unsafe { &mut *upload.cast::<P::Upload>() };
        let data = if len == 0 {
            &[][..]
        } else {
            // SAFETY: the host passes `len` readable bytes at `data`.
            unsafe { std::slice::from_raw_parts(data, len) }
        };
        upload.write(data)
    })
}

unsafe extern "C" fn put_finish<P: Plugin>(
    upload: *mut c_void,
    out: *mut abi::Stat,
    err: *mut ErrorOut,
) -> Status {
    if upload.is_null() {
        report(err, "null upload handle", false);
        return status::INVALID_ARGUMENT;
    }
    // SAFETY: `upload` is a `Box<P::Upload>`; finish consumes it exactly once.
    let upload = unsafe { Box::from_raw(upload.cast::<P::Upload>()) };
    guard(err, move || {
        let stat = upload.finish()?;
        write_out(out, to_abi(&stat))
    })
}

unsafe extern "C" fn put_abort<P: Plugin>(upload: *mut c_void) {
    if upload.is_null() {
        return;
    }
    // SAFETY: `upload` is a `Box<P::Upload>`; abort consumes it exactly once.
    let upload = unsafe { Box::from_raw(upload.cast::<P::Upload>()) };
    let _ = catch_unwind(AssertUnwindSafe(move || upload.abort()));
}

unsafe extern "C" fn get_begin<P: Plugin>(
    handle: *mut c_void,
    key: Str,
    start: u64,
    end: u64,
    out: *mut *mut c_void,
    err: *mut ErrorOut,
) -> Status {
    guard(err, || {
        // SAFETY: the host passes a live handle and a valid key for this call.
        let (plugin, key) = unsafe { (target::<P>(handle)?, text(key, "key")?) };
        check_key(key)?;
        let range = (start != 0 || end != u64::MAX).then_some(start..end);
        let download = plugin.get(key, range)?;
        write_out(out, Box::into_raw(Box::new(download)).cast::<c_void>())
    })
}

unsafe extern "C" fn get_read<P: Plugin>(
    download: *mut c_void,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
    err: *mut ErrorOut,
) -> Status {
    guard(err, || {
        if download.is_null() || buf.is_null() {
            return Err(invalid("null pointer passed to get_read"));
        }
        // SAFETY: `download` is a live `Box<P::Download>` used by one thread at a time, and
        // `buf` has room for `cap` bytes the host lets the plugin write.
        let (download, buf) = unsafe {
            (
                &mut *download.cast::<P::Download>(),
                std::slice::from_raw_parts_mut(buf, cap),
            )
        };
        let n = download.read(buf)?;
        write_out(out_len, n.min(cap))
    })
}

unsafe extern "C" fn get_close<P: Plugin>(download: *mut c_void) {
    if download.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `download` is a `Box<P::Download>`, closed exactly once by the host.
        drop(unsafe { Box::from_raw(download.cast::<P::Download>()) });
    }));
}

unsafe extern "C" fn stat<P: Plugin>(
    handle: *mut c_void,
    key: Str,
    out: *mut abi::Stat,
    err: *mut ErrorOut,
) -> Status {
    guard(err, || {
        // SAFETY: the host passes a live handle and a valid key for this call.
        let (plugin, key) = unsafe { (target::<P>(handle)?, text(key, "key")?) };
        check_key(key)?;
        write_out(out, to_abi(&plugin.stat(key)?))
    })
}

unsafe extern "C" fn list<P: Plugin>(
    handle: *mut c_void,
    prefix: Str,
    callback: ListCallback,
    context: *mut c_void,
    err: *mut ErrorOut,
) -> Status {
    guard(err, || {
        // SAFETY: the host passes a live handle and a valid prefix for this call.
        let (plugin, prefix) = unsafe { (target::<P>(handle)?, text(prefix, "prefix")?) };
        for entry in plugin.list(prefix)? {
            let stat = to_abi(&entry.stat);
            // SAFETY: the host's callback and context are valid for this call; the key and
            // stat outlive the callback invocation.
            unsafe { callback(context, Str::new(&entry.key), &stat) };
        }
        Ok(())
    })
}

unsafe extern "C" fn delete<P: Plugin>(
    handle: *mut c_void,
    key: Str,
    err: *mut ErrorOut,
) -> Status {
    guard(err, || {
        // SAFETY: the host passes a live handle and a valid key for this call.
        let (plugin, key) = unsafe { (target::<P>(handle)?, text(key, "key")?) };
        check_key(key)?;
        plugin.delete(key)
    })
}

unsafe extern "C" fn readiness<P: Plugin>(
    handle: *mut c_void,
    out: *mut ReadinessOut,
    err: *mut ErrorOut,
) -> Status {
    guard(err, || {
        // SAFETY: the host passes a live handle for this call.
        let plugin = unsafe { target::<P>(handle)? };
        let r = plugin.readiness()?;
        write_out(
            out,
            ReadinessOut {
                writable: u8::from(r.writable),
                has_free_bytes: u8::from(r.free_bytes.is_some()),
                free_bytes: r.free_bytes.unwrap_or(0),
            },
        )
    })
}

/// Converts an ABI time back, for hosts and tests.
pub fn modified_from_abi(nanos: i64) -> Option<std::time::SystemTime> {
    u64::try_from(nanos)
        .ok()
        .map(|n| UNIX_EPOCH + Duration::from_nanos(n))
}
