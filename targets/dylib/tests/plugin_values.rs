//! What a plugin hands back across the C ABI, checked without loading a library: tables built
//! in memory go through `LoadedPlugin::from_table`, as a loaded library's do. Regression tests
//! for what the `plugin_abi` fuzz target checks (fuzz/fuzz_targets/plugin_abi.rs).

use std::ffi::c_void;
use std::ptr::NonNull;

use sstore_plugin::abi::{
    ABI_VERSION, ErrorOut, ListCallback, PluginHeader, PluginTable, ReadinessOut, Stat, Status,
    Str, status,
};
use sstore_target_api::{ObjectKey, OpenRequest, Target, TargetErrorKind, TargetFactory};
use sstore_target_dylib::{LoadedPlugin, PluginLoadError};
use tokio::io::AsyncReadExt;

fn handle() -> *mut c_void {
    NonNull::<u64>::dangling().as_ptr().cast()
}

unsafe extern "C" fn open(
    _name: Str,
    _url: Str,
    _settings: Str,
    out: *mut *mut c_void,
    _err: *mut ErrorOut,
) -> Status {
    // SAFETY: the host's slot is valid for the call.
    unsafe { *out = handle() };
    status::OK
}

unsafe extern "C" fn close(_: *mut c_void) {}

unsafe extern "C" fn put_begin(
    _target: *mut c_void,
    _key: Str,
    _mode: u32,
    _has_length: u8,
    _length: u64,
    _out: *mut *mut c_void,
    _err: *mut ErrorOut,
) -> Status {
    status::UNSUPPORTED
}

unsafe extern "C" fn put_write(_: *mut c_void, _: *const u8, _: usize, _: *mut ErrorOut) -> Status {
    status::UNSUPPORTED
}

unsafe extern "C" fn put_finish(_: *mut c_void, _: *mut Stat, _: *mut ErrorOut) -> Status {
    status::UNSUPPORTED
}

unsafe extern "C" fn put_abort(_: *mut c_void) {}

unsafe extern "C" fn get_begin(
    _target: *mut c_void,
    _key: Str,
    _start: u64,
    _end: u64,
    out: *mut *mut c_void,
    _err: *mut ErrorOut,
) -> Status {
    // SAFETY: the host's slot is valid for the call.
    unsafe { *out = handle() };
    status::OK
}

/// Writes two bytes and reports one more than the buffer holds.
unsafe extern "C" fn get_read_too_long(
    _download: *mut c_void,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
    _err: *mut ErrorOut,
) -> Status {
    // SAFETY: the host's buffer holds `cap` bytes; `out_len` is valid for the call.
    unsafe {
        buf.write(b'h');
        buf.add(cap - 1).write(b'i');
        *out_len = cap + 1;
    }
    status::OK
}

unsafe extern "C" fn get_close(_: *mut c_void) {}

/// A download whose handle counts its reads.
unsafe extern "C" fn get_begin_counted(
    _target: *mut c_void,
    _key: Str,
    _start: u64,
    _end: u64,
    out: *mut *mut c_void,
    _err: *mut ErrorOut,
) -> Status {
    // SAFETY: the host's slot is valid for the call; `get_close_counted` frees the box.
    unsafe { *out = Box::into_raw(Box::new(0u64)).cast() };
    status::OK
}

/// Two bytes, then the end, whatever the range asked for.
unsafe extern "C" fn get_read_two_bytes(
    download: *mut c_void,
    buf: *mut u8,
    _cap: usize,
    out_len: *mut usize,
    _err: *mut ErrorOut,
) -> Status {
    // SAFETY: `download` is the box from `get_begin_counted`, used by one thread; the host's
    // buffer holds at least two bytes; `out_len` is valid for the call.
    unsafe {
        let reads = &mut *download.cast::<u64>();
        *out_len = if *reads == 0 {
            buf.write(b'h');
            buf.add(1).write(b'i');
            2
        } else {
            0
        };
        *reads += 1;
    }
    status::OK
}

unsafe extern "C" fn get_close_counted(download: *mut c_void) {
    // SAFETY: the box from `get_begin_counted`, closed once.
    drop(unsafe { Box::from_raw(download.cast::<u64>()) });
}

/// A 10-byte object.
unsafe extern "C" fn stat_ten_bytes(
    _: *mut c_void,
    _: Str,
    out: *mut Stat,
    _: *mut ErrorOut,
) -> Status {
    // SAFETY: the host's `out` is valid for the call.
    unsafe {
        *out = Stat {
            size: 10,
            ..Stat::default()
        }
    };
    status::OK
}

unsafe extern "C" fn put_begin_ok(
    _target: *mut c_void,
    _key: Str,
    _mode: u32,
    _has_length: u8,
    _length: u64,
    out: *mut *mut c_void,
    _err: *mut ErrorOut,
) -> Status {
    // SAFETY: the host's slot is valid for the call.
    unsafe { *out = handle() };
    status::OK
}

unsafe extern "C" fn put_write_ok(
    _: *mut c_void,
    _: *const u8,
    _: usize,
    _: *mut ErrorOut,
) -> Status {
    status::OK
}

/// Reports one byte stored, whatever was written.
unsafe extern "C" fn put_finish_one_byte(
    _: *mut c_void,
    out: *mut Stat,
    _: *mut ErrorOut,
) -> Status {
    // SAFETY: the host's `out` is valid for the call.
    unsafe {
        *out = Stat {
            size: 1,
            ..Stat::default()
        }
    };
    status::OK
}

unsafe extern "C" fn stat(_: *mut c_void, _: Str, _: *mut Stat, _: *mut ErrorOut) -> Status {
    status::NOT_FOUND
}

/// Lists one object without its stat.
unsafe extern "C" fn list_null_stat(
    _target: *mut c_void,
    _prefix: Str,
    callback: ListCallback,
    context: *mut c_void,
    _err: *mut ErrorOut,
) -> Status {
    // SAFETY: calling the host's callback with its context, as the ABI says.
    unsafe { callback(context, Str::new("a/b"), std::ptr::null()) };
    status::OK
}

/// Fails with an unknown status, a non-UTF-8 message, a length past the buffer and an odd
/// temporary flag.
unsafe extern "C" fn delete_odd_error(_: *mut c_void, _: Str, err: *mut ErrorOut) -> Status {
    // SAFETY: the host's `ErrorOut` and its buffer of `cap` bytes are valid for the call.
    unsafe {
        let err = &mut *err;
        let message = b"gone \xff";
        std::ptr::copy_nonoverlapping(message.as_ptr(), err.buf, message.len());
        err.len = usize::MAX;
        err.temporary = 7;
    }
    99
}

unsafe extern "C" fn readiness(_: *mut c_void, out: *mut ReadinessOut, _: *mut ErrorOut) -> Status {
    // SAFETY: the host's `out` is valid for the call.
    unsafe {
        *out = ReadinessOut {
            writable: 2,
            has_free_bytes: 1,
            free_bytes: u64::MAX,
        }
    };
    status::OK
}

static SCHEMES: [Str; 1] = [Str::new("valuetest")];

fn table() -> PluginTable {
    PluginTable {
        header: PluginHeader {
            abi_version: ABI_VERSION,
            table_size: std::mem::size_of::<PluginTable>() as u32,
        },
        kind: Str::new("valuetest"),
        description: Str::new("a table built in memory"),
        plugin_version: Str::new("0.0.0"),
        schemes: SCHEMES.as_ptr(),
        schemes_len: SCHEMES.len(),
        capabilities: 0,
        open,
        close,
        put_begin,
        put_write,
        put_finish,
        put_abort,
        get_begin,
        get_read: get_read_too_long,
        get_close,
        stat,
        list: list_null_stat,
        delete: delete_odd_error,
        readiness,
    }
}

/// Checks `table` as the loader does (the table is leaked: it must outlive the plugin).
fn from_table(table: PluginTable) -> Result<LoadedPlugin, PluginLoadError> {
    let table: &'static PluginTable = Box::leak(Box::new(table));
    // SAFETY: the table is complete, its strings are static, and it is never freed.
    unsafe { LoadedPlugin::from_table(&table.header, "values-test.so".into()) }
}

fn open_target() -> (tokio::runtime::Runtime, std::sync::Arc<dyn Target>) {
    open_target_with(table())
}

fn open_target_with(table: PluginTable) -> (tokio::runtime::Runtime, std::sync::Arc<dyn Target>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let plugin = from_table(table).expect("the table is accepted");
    assert_eq!(plugin.kind, "valuetest");
    assert_eq!(plugin.schemes, ["valuetest"]);
    let request = OpenRequest::for_url("valuetest://x");
    let target = runtime
        .block_on(plugin.open(&request))
        .expect("the target opens");
    (runtime, target)
}

fn key() -> ObjectKey {
    ObjectKey::new("a/b").expect("a valid key")
}

/// A read reported longer than the buffer is an error, never a chunk clamped to the buffer
/// (which would hand back bytes the plugin never wrote as the object's).
#[test]
fn a_read_longer_than_the_buffer_is_an_error() {
    let (runtime, target) = open_target();
    let result: std::io::Result<Vec<u8>> = runtime.block_on(async {
        let mut reader = target.get(&key()).await.expect("the download opens");
        let mut out = Vec::new();
        reader.read_to_end(&mut out).await.map(|_| out)
    });
    let error = result.expect_err("an over-long read fails the download");
    assert!(
        error.to_string().contains("get_read reported"),
        "unexpected error: {error}"
    );
}

/// A range read that ends short of the range, or runs past it, is an error: never a range of
/// other bytes handed on as the one asked for.
#[test]
fn a_range_read_of_another_length_is_an_error() {
    let (runtime, target) = open_target_with(PluginTable {
        get_begin: get_begin_counted,
        get_read: get_read_two_bytes,
        get_close: get_close_counted,
        stat: stat_ten_bytes,
        ..table()
    });
    let read = |range: std::ops::Range<u64>| {
        runtime.block_on(async {
            let mut reader = target
                .get_range(&key(), range)
                .await
                .map_err(std::io::Error::other)?;
            let mut out = Vec::new();
            reader.read_to_end(&mut out).await.map(|_| out)
        })
    };
    let short = read(0..5).expect_err("two bytes of a five-byte range");
    assert!(
        short
            .to_string()
            .contains("ended after 2 bytes of a 5-byte range"),
        "{short}"
    );
    let long = read(3..4).expect_err("two bytes of a one-byte range");
    assert!(
        long.to_string().contains("ran past the 1-byte range"),
        "{long}"
    );
    assert_eq!(
        read(8..20).expect("the range ends at the object's end"),
        b"hi"
    );
}

/// An upload the plugin reports stored at another size is an error, not a success.
#[test]
fn an_upload_stored_at_another_size_is_an_error() {
    let (runtime, target) = open_target_with(PluginTable {
        put_begin: put_begin_ok,
        put_write: put_write_ok,
        put_finish: put_finish_one_byte,
        ..table()
    });
    let error = runtime
        .block_on(sstore_target_api::put_bytes(
            target.as_ref(),
            &key(),
            b"three",
            sstore_target_api::PutMode::Overwrite,
        ))
        .expect_err("a size mismatch fails the put");
    assert_eq!(error.kind, TargetErrorKind::PluginFailure);
    assert!(
        error
            .message
            .contains("reported 1 bytes stored; 5 were written"),
        "{error}"
    );
}

/// A listed key without its stat fails the list, never silently drops the object.
#[test]
fn a_listed_key_without_a_stat_is_an_error() {
    let (runtime, target) = open_target();
    let error = runtime
        .block_on(target.list(""))
        .expect_err("a null stat fails the list");
    assert_eq!(error.kind, TargetErrorKind::InvalidData);
    assert!(error.message.contains("null Stat"), "{error}");
}

/// An unknown status, a non-UTF-8 message and an `ErrorOut.len` past the buffer: the message
/// is cut to the buffer and decoded lossily, and only a temporary flag of 1 counts.
#[test]
fn an_odd_error_is_reported_within_its_buffer() {
    let (runtime, target) = open_target();
    let error = runtime
        .block_on(target.delete(&key()))
        .expect_err("the delete fails");
    assert_eq!(error.kind, TargetErrorKind::PluginFailure);
    assert!(!error.is_temporary());
    assert!(
        error
            .message
            .starts_with("the plugin returned unknown status 99: gone \u{fffd}"),
        "{error}"
    );
    assert!(
        error.message.len() < 5000,
        "the message is cut to its buffer"
    );
}

/// Readiness flags other than 0 and 1 are not "yes".
#[test]
fn readiness_flags_other_than_one_are_false() {
    let (runtime, target) = open_target();
    let readiness = runtime
        .block_on(target.readiness())
        .expect("readiness answers");
    assert!(!readiness.writable);
    assert_eq!(readiness.free_bytes, Some(u64::MAX));
}

#[test]
fn tables_that_fail_a_check_are_refused() {
    // SAFETY: a null header is refused before anything is read.
    let null = unsafe { LoadedPlugin::from_table(std::ptr::null(), "null.so".into()) };
    assert!(matches!(null, Err(PluginLoadError::InvalidTable { .. })));

    let mut t = table();
    t.header.abi_version = ABI_VERSION + 1;
    assert!(matches!(
        from_table(t),
        Err(PluginLoadError::AbiMismatch { found, .. }) if found == ABI_VERSION + 1
    ));

    let mut t = table();
    t.header.table_size = 8;
    assert!(matches!(
        from_table(t),
        Err(PluginLoadError::TableTooSmall { found: 8, .. })
    ));

    let mut t = table();
    t.kind = Str::new("9 lives");
    let error = from_table(t).expect_err("not a plain name");
    assert!(error.to_string().contains("not a plain name"), "{error}");

    static NOT_UTF8: [u8; 2] = [0xc3, 0x28];
    let mut t = table();
    t.description = Str {
        ptr: NOT_UTF8.as_ptr(),
        len: NOT_UTF8.len(),
    };
    let error = from_table(t).expect_err("not UTF-8");
    assert!(error.to_string().contains("not valid UTF-8"), "{error}");

    let mut t = table();
    t.plugin_version = Str {
        ptr: std::ptr::null(),
        len: 3,
    };
    assert!(from_table(t).is_err(), "a null string with a length");

    // More than 64 schemes is refused before any is read (only one is there).
    let mut t = table();
    t.schemes_len = 65;
    let error = from_table(t).expect_err("too many schemes");
    assert!(error.to_string().contains("scheme list"), "{error}");

    let mut t = table();
    t.schemes = std::ptr::null();
    assert!(from_table(t).is_err(), "a null scheme list with a length");

    // A table larger than this ABI's (a newer minor addition) is accepted.
    let mut t = table();
    t.header.table_size = 4096;
    let plugin = from_table(t).expect("a larger table is accepted");
    assert_eq!(plugin.description, "a table built in memory");
}
