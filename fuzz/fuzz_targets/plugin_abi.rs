//! What a run-time plugin hands back across its C ABI. The input's first bytes build a
//! `PluginTable` in memory (ABI version, table size, kind name, description, version, schemes,
//! capabilities), which the host checks exactly as it checks a loaded library's
//! (`LoadedPlugin::from_table`). The rest is a script the table's functions answer from: status
//! codes, error messages (non-UTF-8, `len` past `cap`), temporary flags, handles (or none),
//! stats (absurd sizes and times), list entries (invalid or non-UTF-8 keys, null stats, many
//! of them), read lengths (past the buffer's capacity), readiness flags. An accepted table is
//! opened as a target and driven through list, stat, get, get_range, delete, readiness and a
//! small put. Errors are fine; a panic, a hang, an out-of-bounds read or unbounded memory in
//! the host is not. The plugin's side also checks the host: every handle it is given must be
//! a live one of the right kind, every buffer as large as claimed, and every handle must be
//! closed when the target is dropped.
#![no_main]

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sstore_plugin::abi::{
    ABI_VERSION, ErrorOut, ListCallback, PluginHeader, PluginTable, ReadinessOut, Stat, Status,
    Str, status,
};
use sstore_target_api::{ObjectKey, OpenRequest, PutMode, PutOptions, TargetFactory};
use sstore_target_dylib::LoadedPlugin;
use tokio::io::AsyncReadExt;

/// The most a download is read before the reader is dropped.
const READ_LIMIT: u64 = 4 * 1024 * 1024;
/// How long the host may take to close its handles once it is done with them.
const CLOSE_LIMIT: Duration = Duration::from_secs(5);

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime")
});

/// What the plugin's functions answer from. Calls run on tokio's blocking threads, so this is
/// a global, not a thread-local.
static SCRIPT: Mutex<Script> = Mutex::new(Script {
    data: Vec::new(),
    pos: 0,
});

/// Set when the plugin breaks the ABI in a way the host must notice: a read reported longer
/// than its buffer, a listed key without a stat. The call that saw it must then fail.
static BROKE_ABI: AtomicBool = AtomicBool::new(false);

/// Live handles by kind, to check the host closes each exactly once.
static LIVE: [AtomicUsize; 3] = [
    AtomicUsize::new(0),
    AtomicUsize::new(0),
    AtomicUsize::new(0),
];
const TARGET: usize = 0;
const UPLOAD: usize = 1;
const DOWNLOAD: usize = 2;
const MAGIC: [u64; 3] = [
    0x7a11_7a11_0000_0001,
    0x7a11_7a11_0000_0002,
    0x7a11_7a11_0000_0003,
];

/// Bytes read in order; zeros once it runs out (which answers OK, and ends downloads and
/// lists).
struct Script {
    data: Vec<u8>,
    pos: usize,
}

impl Script {
    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = (self.pos + 1).min(self.data.len());
        b
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let end = self.pos.saturating_add(n).min(self.data.len());
        let out = self.data[self.pos..end].to_vec();
        self.pos = end;
        out
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(std::array::from_fn(|_| self.u8()))
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(std::array::from_fn(|_| self.u8()))
    }

    /// A string: a length byte and that many bytes; 0xFF is a null pointer with a length.
    fn text(&mut self) -> (Vec<u8>, bool) {
        let first = self.u8();
        self.text_after(first)
    }

    /// The rest of a string whose length byte was `first`.
    fn text_after(&mut self, first: u8) -> (Vec<u8>, bool) {
        match first {
            0xFF => (vec![0; usize::from(self.u8())], true),
            n => (self.bytes(usize::from(n)), false),
        }
    }

    /// A status and, for an error, its message, `len` and temporary flag.
    ///
    /// # Safety
    /// `err` is the host's `ErrorOut`.
    unsafe fn outcome(&mut self, err: *mut ErrorOut) -> Status {
        let code = match self.u8() {
            0 => return status::OK,
            c @ 1..=15 => Status::from(c),
            0xFF => self.u32() as Status,
            c => -Status::from(c),
        };
        assert!(!err.is_null(), "the host passed no ErrorOut");
        // SAFETY: the host's `ErrorOut` is valid for the call.
        let err = unsafe { &mut *err };
        let message = self.text().0;
        let written = message.len().min(err.cap);
        // SAFETY: the host's buffer has room for `cap` bytes.
        unsafe { std::ptr::copy_nonoverlapping(message.as_ptr(), err.buf, written) };
        err.len = match self.u8() {
            1 => err.cap.saturating_add(1),
            2 => usize::MAX,
            3 => self.u64() as usize,
            _ => written,
        };
        err.temporary = self.u8();
        code
    }

    fn stat(&mut self) -> Stat {
        Stat {
            size: self.u64(),
            modified_unix_nanos: self.u64() as i64,
            has_sha256: self.u8(),
            sha256: std::array::from_fn(|_| self.u8()),
        }
    }
}

fn script<T>(f: impl FnOnce(&mut Script) -> T) -> T {
    f(&mut SCRIPT.lock().unwrap_or_else(|e| e.into_inner()))
}

fn new_handle(kind: usize) -> *mut c_void {
    LIVE[kind].fetch_add(1, Ordering::SeqCst);
    Box::into_raw(Box::new(MAGIC[kind])).cast()
}

/// Checks the host passed a live handle of `kind`.
///
/// # Safety
/// `handle` came from `new_handle` (a freed one is caught by AddressSanitizer).
unsafe fn check_handle(handle: *mut c_void, kind: usize) {
    assert!(!handle.is_null(), "the host passed a null handle");
    // SAFETY: every handle is a boxed magic number.
    let magic = unsafe { *handle.cast::<u64>() };
    assert_eq!(
        magic, MAGIC[kind],
        "the host passed a handle of another kind"
    );
}

/// # Safety
/// As [`check_handle`]; the handle is not used again.
unsafe fn free_handle(handle: *mut c_void, kind: usize) {
    // SAFETY: as the caller guarantees.
    unsafe { check_handle(handle, kind) };
    // SAFETY: the handle is a box made by `new_handle`, freed once.
    drop(unsafe { Box::from_raw(handle.cast::<u64>()) });
    LIVE[kind].fetch_sub(1, Ordering::SeqCst);
}

/// Checks a string the host passed is readable UTF-8.
///
/// # Safety
/// `s` is valid for the call.
unsafe fn check_text(s: Str) {
    // SAFETY: as the caller guarantees.
    assert!(
        unsafe { s.as_str() }.is_some(),
        "the host passed invalid text"
    );
}

/// Hands out a handle of `kind` after a successful call, unless the script says none.
///
/// # Safety
/// `out` is the host's handle slot.
unsafe fn give_handle(s: &mut Script, code: Status, out: *mut *mut c_void, kind: usize) {
    assert!(!out.is_null(), "the host passed no handle slot");
    if code == status::OK && s.u8() != 1 {
        // SAFETY: the host's slot is valid for the call.
        unsafe { *out = new_handle(kind) };
    }
}

unsafe extern "C" fn open(
    name: Str,
    url: Str,
    settings: Str,
    out: *mut *mut c_void,
    err: *mut ErrorOut,
) -> Status {
    // SAFETY: the host's arguments are valid for the call.
    unsafe {
        check_text(name);
        check_text(url);
        check_text(settings);
        script(|s| {
            let code = s.outcome(err);
            give_handle(s, code, out, TARGET);
            code
        })
    }
}

unsafe extern "C" fn close(target: *mut c_void) {
    // SAFETY: the host closes a target handle once.
    unsafe { free_handle(target, TARGET) }
}

unsafe extern "C" fn put_begin(
    target: *mut c_void,
    key: Str,
    _mode: u32,
    _has_length: u8,
    _length: u64,
    out: *mut *mut c_void,
    err: *mut ErrorOut,
) -> Status {
    // SAFETY: the host's arguments are valid for the call.
    unsafe {
        check_handle(target, TARGET);
        check_text(key);
        script(|s| {
            let code = s.outcome(err);
            give_handle(s, code, out, UPLOAD);
            code
        })
    }
}

unsafe extern "C" fn put_write(
    upload: *mut c_void,
    data: *const u8,
    len: usize,
    err: *mut ErrorOut,
) -> Status {
    // SAFETY: the host's arguments are valid for the call; reading the whole body checks
    // `len` under AddressSanitizer.
    unsafe {
        check_handle(upload, UPLOAD);
        if len > 0 {
            let body = std::slice::from_raw_parts(data, len);
            std::hint::black_box(body.iter().fold(0u8, |a, b| a ^ b));
        }
        script(|s| s.outcome(err))
    }
}

unsafe extern "C" fn put_finish(upload: *mut c_void, out: *mut Stat, err: *mut ErrorOut) -> Status {
    // SAFETY: the host's arguments are valid for the call; finish frees the upload.
    unsafe {
        check_handle(upload, UPLOAD);
        let code = script(|s| {
            let code = s.outcome(err);
            if code == status::OK {
                assert!(!out.is_null(), "the host passed no Stat");
                *out = s.stat();
            }
            code
        });
        free_handle(upload, UPLOAD);
        code
    }
}

unsafe extern "C" fn put_abort(upload: *mut c_void) {
    // SAFETY: the host aborts an unfinished upload once.
    unsafe { free_handle(upload, UPLOAD) }
}

unsafe extern "C" fn get_begin(
    target: *mut c_void,
    key: Str,
    _start: u64,
    _end: u64,
    out: *mut *mut c_void,
    err: *mut ErrorOut,
) -> Status {
    // SAFETY: the host's arguments are valid for the call.
    unsafe {
        check_handle(target, TARGET);
        check_text(key);
        script(|s| {
            let code = s.outcome(err);
            give_handle(s, code, out, DOWNLOAD);
            code
        })
    }
}

unsafe extern "C" fn get_read(
    download: *mut c_void,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
    err: *mut ErrorOut,
) -> Status {
    // SAFETY: the host's arguments are valid for the call: `buf` has room for `cap` bytes,
    // which writing its first and last byte checks under AddressSanitizer.
    unsafe {
        check_handle(download, DOWNLOAD);
        assert!(!out_len.is_null(), "the host passed no length slot");
        script(|s| {
            let code = s.outcome(err);
            if code != status::OK {
                return code;
            }
            let fill = |n: usize| {
                if n > 0 && cap > 0 {
                    *buf = b'<';
                    *buf.add(cap - 1) = b'>';
                }
            };
            *out_len = match s.u8() {
                0 => 0,
                1 => {
                    fill(cap);
                    cap
                }
                2 => {
                    fill(cap);
                    cap.saturating_add(1)
                }
                3 => {
                    fill(cap);
                    usize::MAX
                }
                4 => {
                    fill(cap);
                    s.u64() as usize
                }
                n => {
                    let data = s.bytes(usize::from(n));
                    let n = data.len().min(cap);
                    std::ptr::copy_nonoverlapping(data.as_ptr(), buf, n);
                    n
                }
            };
            if *out_len > cap {
                BROKE_ABI.store(true, Ordering::SeqCst);
            }
            code
        })
    }
}

unsafe extern "C" fn get_close(download: *mut c_void) {
    // SAFETY: the host closes a download once.
    unsafe { free_handle(download, DOWNLOAD) }
}

unsafe extern "C" fn stat(
    target: *mut c_void,
    key: Str,
    out: *mut Stat,
    err: *mut ErrorOut,
) -> Status {
    // SAFETY: the host's arguments are valid for the call.
    unsafe {
        check_handle(target, TARGET);
        check_text(key);
        script(|s| {
            let code = s.outcome(err);
            if code == status::OK {
                assert!(!out.is_null(), "the host passed no Stat");
                *out = s.stat();
            }
            code
        })
    }
}

unsafe extern "C" fn list(
    target: *mut c_void,
    prefix: Str,
    callback: ListCallback,
    context: *mut c_void,
    err: *mut ErrorOut,
) -> Status {
    // SAFETY: the host's arguments are valid for the call; each key and stat outlives its
    // callback.
    unsafe {
        check_handle(target, TARGET);
        check_text(prefix);
        script(|s| {
            let count = match s.u8() {
                0xFF => usize::from(s.u16()),
                n => usize::from(n),
            };
            for _ in 0..count {
                let flags = s.u8();
                let (key, null) = match s.u8() {
                    // A long key.
                    0xFE => (vec![b'k'; usize::from(s.u16())], false),
                    first => s.text_after(first),
                };
                let key = Str {
                    ptr: if null { std::ptr::null() } else { key.as_ptr() },
                    len: key.len(),
                };
                let entry = s.stat();
                let entry: *const Stat = if flags & 1 != 0 {
                    std::ptr::null()
                } else {
                    &entry
                };
                let context = if flags & 2 != 0 {
                    std::ptr::null_mut()
                } else {
                    context
                };
                if entry.is_null() && !context.is_null() {
                    BROKE_ABI.store(true, Ordering::SeqCst);
                }
                callback(context, key, entry);
            }
            s.outcome(err)
        })
    }
}

unsafe extern "C" fn delete(target: *mut c_void, key: Str, err: *mut ErrorOut) -> Status {
    // SAFETY: the host's arguments are valid for the call.
    unsafe {
        check_handle(target, TARGET);
        check_text(key);
        script(|s| s.outcome(err))
    }
}

unsafe extern "C" fn readiness(
    target: *mut c_void,
    out: *mut ReadinessOut,
    err: *mut ErrorOut,
) -> Status {
    // SAFETY: the host's arguments are valid for the call.
    unsafe {
        check_handle(target, TARGET);
        script(|s| {
            let code = s.outcome(err);
            if code == status::OK {
                assert!(!out.is_null(), "the host passed no ReadinessOut");
                *out = ReadinessOut {
                    writable: s.u8(),
                    has_free_bytes: s.u8(),
                    free_bytes: s.u64(),
                };
            }
            code
        })
    }
}

/// Waits until the host has closed every handle of `kind`.
fn wait_closed(kind: usize) {
    let start = Instant::now();
    while LIVE[kind].load(Ordering::SeqCst) != 0 {
        assert!(
            start.elapsed() < CLOSE_LIMIT,
            "the host did not close a {} handle",
            ["target", "upload", "download"][kind]
        );
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// The table and the memory its strings point to, freed once the host is done with them.
struct Built {
    table: *mut PluginTable,
    strings: Vec<Vec<u8>>,
    schemes: Vec<Str>,
}

/// A table string from the input (see [`Script::text`]); an absent one is `default`.
fn table_text(head: &mut Script, present: bool, default: &str, strings: &mut Vec<Vec<u8>>) -> Str {
    let (bytes, null) = if present {
        head.text()
    } else {
        (default.as_bytes().to_vec(), false)
    };
    let s = Str {
        ptr: if null {
            std::ptr::null()
        } else {
            bytes.as_ptr()
        },
        len: bytes.len(),
    };
    // Moving the Vec keeps its heap buffer where it is.
    strings.push(bytes);
    s
}

fn build(head: &mut Script, flags: u8) -> Built {
    let mut strings = Vec::new();
    let abi_version = if flags & 1 != 0 {
        head.u32()
    } else {
        ABI_VERSION
    };
    let table_size = if flags & 2 != 0 {
        head.u32()
    } else {
        std::mem::size_of::<PluginTable>() as u32
    };
    let kind = table_text(head, flags & 4 != 0, "fuzz", &mut strings);
    let description = table_text(head, flags & 8 != 0, "", &mut strings);
    let plugin_version = table_text(head, flags & 16 != 0, "0.0.0", &mut strings);
    // A claimed count past 64 is refused unread; only up to 64 entries are really there, so
    // reading past them trips AddressSanitizer.
    let claimed = if flags & 32 != 0 {
        usize::from(head.u8())
    } else {
        1
    };
    let mut schemes = Vec::new();
    for _ in 0..claimed.min(64) {
        let scheme = if flags & 32 != 0 {
            table_text(head, true, "", &mut strings)
        } else {
            table_text(head, false, "fuzz", &mut strings)
        };
        schemes.push(scheme);
    }
    schemes.shrink_to_fit();
    let table = Box::into_raw(Box::new(PluginTable {
        header: PluginHeader {
            abi_version,
            table_size,
        },
        kind,
        description,
        plugin_version,
        schemes: if flags & 64 != 0 {
            std::ptr::null()
        } else {
            schemes.as_ptr()
        },
        schemes_len: claimed,
        capabilities: u32::from(head.u8()),
        open,
        close,
        put_begin,
        put_write,
        put_finish,
        put_abort,
        get_begin,
        get_read,
        get_close,
        stat,
        list,
        delete,
        readiness,
    }));
    Built {
        table,
        strings,
        schemes,
    }
}

/// Reads a download to its end (or [`READ_LIMIT`]): one that reaches its end must not have
/// passed over a read reported longer than its buffer.
async fn read(mut reader: sstore_target_api::ObjectReader) {
    let mut out = Vec::new();
    let result = (&mut reader).take(READ_LIMIT).read_to_end(&mut out).await;
    if result.is_ok() && (out.len() as u64) < READ_LIMIT {
        assert!(
            !BROKE_ABI.load(Ordering::SeqCst),
            "a download with an over-long read succeeded"
        );
    }
}

/// Drives a target through every call; errors are expected and ignored.
async fn exercise(plugin: &LoadedPlugin, options: u8, range: std::ops::Range<u64>) {
    let request = if options & 1 != 0 {
        OpenRequest::for_url("fuzz://bucket/prefix")
    } else {
        OpenRequest {
            name: "fuzzed".into(),
            url: None,
            config: Default::default(),
        }
    };
    let Ok(target) = plugin.open(&request).await else {
        return;
    };
    let _ = (target.location(), target.capabilities());
    let key = ObjectKey::new("a/b").expect("a valid key");
    for prefix in ["", "a/"] {
        BROKE_ABI.store(false, Ordering::SeqCst);
        if target.list(prefix).await.is_ok() {
            assert!(
                !BROKE_ABI.load(Ordering::SeqCst),
                "a list with a null stat succeeded"
            );
        }
    }
    let _ = target.stat(&key).await;
    BROKE_ABI.store(false, Ordering::SeqCst);
    if let Ok(reader) = target.get(&key).await {
        read(reader).await;
    }
    wait_closed(DOWNLOAD);
    BROKE_ABI.store(false, Ordering::SeqCst);
    if let Ok(reader) = target.get_range(&key, range).await {
        read(reader).await;
    }
    wait_closed(DOWNLOAD);
    let _ = target.delete(&key).await;
    let _ = target.readiness().await;
    let body = b"0123456789abcdef";
    let put = PutOptions {
        mode: if options & 2 != 0 {
            PutMode::Overwrite
        } else {
            PutMode::Create
        },
        length: match options & 12 {
            0 => Some(body.len() as u64),
            4 => None,
            _ => Some(3),
        },
    };
    let _ = target.put(&key, &mut &body[..], put).await;
    wait_closed(UPLOAD);
    drop(target);
}

fuzz_target!(|data: &[u8]| {
    let mut head = Script {
        data: data.to_vec(),
        pos: 0,
    };
    let flags = head.u8();
    let options = head.u8();
    let range = u64::from(head.u8())..u64::from(head.u8());
    let built = build(&mut head, flags);
    {
        let mut script = SCRIPT.lock().unwrap_or_else(|e| e.into_inner());
        script.data = head.data[head.pos..].to_vec();
        script.pos = 0;
    }
    let header = if flags & 128 != 0 {
        std::ptr::null()
    } else {
        built.table.cast_const().cast::<PluginHeader>()
    };
    // SAFETY: the table, its strings and schemes stay allocated until every handle the host
    // opened is closed and the plugin is dropped (below).
    let loaded = unsafe { LoadedPlugin::from_table(header, "fuzz-plugin.so".into()) };
    if let Ok(plugin) = loaded {
        RUNTIME.block_on(exercise(&plugin, options, range));
        drop(plugin);
    }
    wait_closed(DOWNLOAD);
    wait_closed(UPLOAD);
    wait_closed(TARGET);
    // SAFETY: made by `Box::into_raw` in `build`; nothing refers to it any more.
    drop(unsafe { Box::from_raw(built.table) });
    drop((built.strings, built.schemes));
});
