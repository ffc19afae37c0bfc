//! A plugin's kind as a [`TargetFactory`], and its targets as [`Target`]s. Every call into the
//! plugin runs on a blocking thread (`spawn_blocking`); bodies and downloads cross in 1 MiB
//! chunks, so memory stays flat whatever the object size.

use std::ffi::c_void;
use std::io;
use std::ops::Range;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sstore_plugin::abi::{self, ErrorOut, PluginTable, Status, Str, capability, status};
use sstore_plugin::export::modified_from_abi;
use sstore_target_api::{
    Capabilities, ObjectKey, ObjectMeta, ObjectReader, OpenRequest, PutBody, PutMode, PutOptions,
    Readiness, RetryStatus, Target, TargetError, TargetErrorKind, TargetFactory, check_length,
    check_range,
};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::LoadedPlugin;
use crate::download::{CHANNEL_DEPTH, ChannelReader};

const CHUNK: usize = 1024 * 1024;
const MESSAGE_CAPACITY: usize = 4096;
/// A readiness check that takes longer than this is reported as a timeout.
const READINESS_LIMIT: Duration = Duration::from_secs(30);

/// A failed plugin call: its status and message.
struct CallError {
    status: Status,
    message: String,
    temporary: bool,
}

/// Calls `f` with an error buffer and turns a failure status into a [`CallError`].
fn call(f: impl FnOnce(*mut ErrorOut) -> Status) -> Result<(), CallError> {
    let mut buf = vec![0u8; MESSAGE_CAPACITY];
    let mut out = ErrorOut {
        buf: buf.as_mut_ptr(),
        cap: buf.len(),
        len: 0,
        temporary: 0,
    };
    let code = f(&mut out);
    if code == status::OK {
        return Ok(());
    }
    let len = out.len.min(buf.len());
    Err(CallError {
        status: code,
        message: String::from_utf8_lossy(&buf[..len]).into_owned(),
        temporary: out.temporary == 1,
    })
}

fn to_target_error(e: CallError, location: &str, key: Option<&ObjectKey>) -> TargetError {
    let kind = match e.status {
        status::NOT_FOUND => TargetErrorKind::NotFound,
        status::ALREADY_EXISTS => TargetErrorKind::AlreadyExists,
        status::PERMISSION_DENIED => TargetErrorKind::PermissionDenied,
        status::UNAUTHENTICATED => TargetErrorKind::Unauthenticated,
        status::INVALID_CONFIG => TargetErrorKind::InvalidConfig,
        status::UNSUPPORTED => TargetErrorKind::Unsupported,
        status::NO_SPACE => TargetErrorKind::NoSpace,
        status::INVALID_DATA | status::INVALID_ARGUMENT => TargetErrorKind::InvalidData,
        status::IO => TargetErrorKind::Io,
        status::NETWORK => TargetErrorKind::Network,
        status::TIMEOUT => TargetErrorKind::Timeout,
        _ => TargetErrorKind::PluginFailure,
    };
    let message = match e.status {
        status::PANIC => e.message,
        code if kind == TargetErrorKind::PluginFailure => {
            format!("the plugin returned unknown status {code}: {}", e.message)
        }
        _ => e.message,
    };
    let retry = if e.temporary {
        RetryStatus::Temporary
    } else {
        RetryStatus::Permanent
    };
    TargetError::new(kind, location, key, message).with_retry(retry)
}

/// A live target handle; closed when the last user drops it.
struct Handle {
    ptr: NonNull<c_void>,
    table: &'static PluginTable,
}

// SAFETY: `sstore_plugin::Plugin` requires `Send + Sync`, so a target handle may be used from
// any thread, and concurrently.
unsafe impl Send for Handle {}
// SAFETY: as above.
unsafe impl Sync for Handle {}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from `open` and is closed exactly once, here.
        unsafe { (self.table.close)(self.ptr.as_ptr()) }
    }
}

/// An upload handle, aborted on drop unless it was finished.
struct UploadGuard {
    ptr: Option<NonNull<c_void>>,
    table: &'static PluginTable,
    _target: Arc<Handle>,
}

// SAFETY: `sstore_plugin::Upload` requires `Send`; the guard is used by one thread at a time.
unsafe impl Send for UploadGuard {}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        if let Some(ptr) = self.ptr.take() {
            // SAFETY: an unfinished upload handle is consumed exactly once, here.
            unsafe { (self.table.put_abort)(ptr.as_ptr()) }
        }
    }
}

/// A download handle, closed on drop.
struct DownloadHandle {
    ptr: NonNull<c_void>,
    table: &'static PluginTable,
    _target: Arc<Handle>,
}

// SAFETY: `sstore_plugin::Download` requires `Send`; the handle is used by one thread.
unsafe impl Send for DownloadHandle {}

impl Drop for DownloadHandle {
    fn drop(&mut self) {
        // SAFETY: the download handle is closed exactly once, here.
        unsafe { (self.table.get_close)(self.ptr.as_ptr()) }
    }
}

fn join_error(location: &str, key: Option<&ObjectKey>, e: tokio::task::JoinError) -> TargetError {
    TargetError::new(
        TargetErrorKind::PluginFailure,
        location,
        key,
        format!("the plugin call did not complete: {e}"),
    )
}

fn meta_from_abi(key: ObjectKey, stat: &abi::Stat) -> ObjectMeta {
    ObjectMeta {
        modified: modified_from_abi(stat.modified_unix_nanos),
        sha256: (stat.has_sha256 == 1).then(|| {
            stat.sha256
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        }),
        ..ObjectMeta::new(key, stat.size)
    }
}

/// A target served by a plugin.
pub(crate) struct PluginTarget {
    handle: Arc<Handle>,
    table: &'static PluginTable,
    location: String,
}

impl std::fmt::Debug for PluginTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginTarget")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl TargetFactory for LoadedPlugin {
    async fn open(&self, request: &OpenRequest) -> Result<Arc<dyn Target>, TargetError> {
        let settings = serde_json::to_string(&request.config)
            .map_err(|e| request.invalid(format!("settings cannot be passed on: {e}")))?;
        let (name, url) = (
            request.name.clone(),
            request.url.clone().unwrap_or_default(),
        );
        let table = self.table;
        let location = match &request.url {
            Some(url) => url.clone(),
            None => format!("{}:{}", self.kind, request.name),
        };
        let opened = tokio::task::spawn_blocking(move || {
            let mut out: *mut c_void = std::ptr::null_mut();
            let result = call(|err| {
                // SAFETY: every pointer is valid for the call; `out` receives the handle.
                unsafe {
                    (table.open)(
                        Str::new(&name),
                        Str::new(&url),
                        Str::new(&settings),
                        &mut out,
                        err,
                    )
                }
            });
            result.map(|()| NonNull::new(out).map(|p| p as NonNull<c_void>).map(SendPtr))
        })
        .await
        .map_err(|e| join_error(&request.name, None, e))?
        .map_err(|e| to_target_error(e, &request.name, None))?;
        let ptr = opened.ok_or_else(|| {
            TargetError::new(
                TargetErrorKind::PluginFailure,
                &request.name,
                None,
                "the plugin's open returned no handle",
            )
        })?;
        Ok(Arc::new(PluginTarget {
            handle: Arc::new(Handle { ptr: ptr.0, table }),
            table,
            location,
        }))
    }
}

/// A raw pointer carried across `spawn_blocking`.
struct SendPtr(NonNull<c_void>);
// SAFETY: the pointer is a plugin handle, which the ABI lets move between threads.
unsafe impl Send for SendPtr {}

impl PluginTarget {
    /// Runs `f` against the target handle on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        key: Option<&ObjectKey>,
        f: impl FnOnce(&Handle) -> Result<T, CallError> + Send + 'static,
    ) -> Result<T, TargetError> {
        let handle = Arc::clone(&self.handle);
        tokio::task::spawn_blocking(move || f(&handle))
            .await
            .map_err(|e| join_error(&self.location, key, e))?
            .map_err(|e| to_target_error(e, &self.location, key))
    }

    async fn download(
        &self,
        key: &ObjectKey,
        start: u64,
        end: u64,
    ) -> Result<ObjectReader, TargetError> {
        let table = self.table;
        let key_text = key.to_string();
        let target = Arc::clone(&self.handle);
        let download = self
            .blocking(Some(key), move |handle| {
                let mut out: *mut c_void = std::ptr::null_mut();
                call(|err| {
                    // SAFETY: the handle is live; the key and `out` are valid for the call.
                    unsafe {
                        (table.get_begin)(
                            handle.ptr.as_ptr(),
                            Str::new(&key_text),
                            start,
                            end,
                            &mut out,
                            err,
                        )
                    }
                })?;
                NonNull::new(out)
                    .map(|ptr| DownloadHandle {
                        ptr,
                        table,
                        _target: target,
                    })
                    .ok_or(CallError {
                        status: status::PANIC,
                        message: "the plugin's get_begin returned no handle".into(),
                        temporary: false,
                    })
            })
            .await?;
        let (sender, receiver) = mpsc::channel(CHANNEL_DEPTH);
        let (location, key) = (self.location.clone(), key.clone());
        // A range's length is known (the caller clamped it to the object's size); a whole
        // object's length is the decoder's to check against what it expects.
        let expected = (end != u64::MAX).then(|| end.saturating_sub(start));
        tokio::task::spawn_blocking(move || pump(download, sender, &location, &key, expected));
        Ok(Box::new(ChannelReader::new(receiver)))
    }
}

/// Reads a download to its end, sending chunks until the reader goes away. With `expected`
/// (a range), a download that ends short of it or runs past it is an error, never a silently
/// different range.
fn pump(
    download: DownloadHandle,
    sender: mpsc::Sender<io::Result<Vec<u8>>>,
    location: &str,
    key: &ObjectKey,
    expected: Option<u64>,
) {
    let failure = |message: String| {
        let error = TargetError::new(TargetErrorKind::PluginFailure, location, Some(key), message);
        let _ = sender.blocking_send(Err(io::Error::other(error)));
    };
    let mut received = 0u64;
    loop {
        let mut buf = vec![0u8; CHUNK];
        let mut n = 0usize;
        let result = call(|err| {
            // SAFETY: the download handle is live and used only by this thread; `buf` has
            // room for `CHUNK` bytes.
            unsafe {
                (download.table.get_read)(
                    download.ptr.as_ptr(),
                    buf.as_mut_ptr(),
                    CHUNK,
                    &mut n,
                    err,
                )
            }
        });
        let message = match result {
            // Bytes past the buffer were never written: the plugin is broken, and passing on
            // a clamped chunk would hand its reader bytes that are not the object's.
            Ok(()) if n > CHUNK => {
                return failure(format!(
                    "the plugin's get_read reported {n} bytes read into a {CHUNK}-byte buffer"
                ));
            }
            Ok(()) if expected.is_some_and(|e| received + n as u64 > e) => {
                return failure(format!(
                    "the plugin's download ran past the {}-byte range asked for",
                    expected.unwrap_or_default()
                ));
            }
            Ok(()) if n == 0 && expected.is_some_and(|e| received != e) => {
                return failure(format!(
                    "the plugin's download ended after {received} bytes of a {}-byte range",
                    expected.unwrap_or_default()
                ));
            }
            Ok(()) => {
                received += n as u64;
                buf.truncate(n);
                let last = buf.is_empty();
                Ok(buf)
                    .and_then(|buf| {
                        sender
                            .blocking_send(Ok(buf))
                            .map_err(|_| "reader gone".to_owned())
                    })
                    .map(|()| last)
            }
            Err(e) => {
                let error = to_target_error(e, location, Some(key));
                let _ = sender.blocking_send(Err(io::Error::other(error)));
                return;
            }
        };
        match message {
            Ok(false) => continue,
            // The end was sent, or the reader was dropped: stop reading.
            Ok(true) | Err(_) => return,
        }
    }
}

#[async_trait]
impl Target for PluginTarget {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn capabilities(&self) -> Capabilities {
        let bits = self.table.capabilities;
        Capabilities {
            atomic_publish: bits & capability::ATOMIC_PUBLISH != 0,
            conditional_create: bits & capability::CONDITIONAL_CREATE != 0,
            multipart: bits & capability::MULTIPART != 0,
            server_sha256: bits & capability::SERVER_SHA256 != 0,
            native_ranges: bits & capability::NATIVE_RANGES != 0,
        }
    }

    async fn put(
        &self,
        key: &ObjectKey,
        body: PutBody<'_>,
        options: PutOptions,
    ) -> Result<ObjectMeta, TargetError> {
        let table = self.table;
        let target = Arc::clone(&self.handle);
        let key_text = key.to_string();
        let mode = match options.mode {
            PutMode::Create => abi::put_mode::CREATE,
            PutMode::Overwrite => abi::put_mode::OVERWRITE,
        };
        let (has_length, length) = match options.length {
            Some(n) => (1, n),
            None => (0, 0),
        };
        let mut upload = self
            .blocking(Some(key), move |handle| {
                let mut out: *mut c_void = std::ptr::null_mut();
                call(|err| {
                    // SAFETY: the handle is live; the key and `out` are valid for the call.
                    unsafe {
                        (table.put_begin)(
                            handle.ptr.as_ptr(),
                            Str::new(&key_text),
                            mode,
                            has_length,
                            length,
                            &mut out,
                            err,
                        )
                    }
                })?;
                Ok(UploadGuard {
                    ptr: NonNull::new(out),
                    table,
                    _target: target,
                })
            })
            .await?;
        if upload.ptr.is_none() {
            return Err(TargetError::new(
                TargetErrorKind::PluginFailure,
                &self.location,
                Some(key),
                "the plugin's put_begin returned no handle",
            ));
        }
        let mut total = 0u64;
        let mut buf = vec![0u8; CHUNK];
        loop {
            // Fill a whole chunk (or reach the end) so each blocking call moves 1 MiB.
            let mut filled = 0;
            while filled < CHUNK {
                let n = body
                    .read(&mut buf[filled..])
                    .await
                    .map_err(|e| TargetError::from_io(&self.location, Some(key), e))?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                break;
            }
            total += filled as u64;
            if options.length.is_some_and(|announced| total > announced) {
                check_length(&self.location, key, total, options.length)?;
            }
            let location = self.location.clone();
            let key_owned = key.clone();
            let (returned_upload, returned_buf) = tokio::task::spawn_blocking(move || {
                let result = match upload.ptr {
                    Some(ptr) => call(|err| {
                        // SAFETY: the upload handle is live and used by one thread at a time;
                        // `buf` holds `filled` initialised bytes.
                        unsafe { (table.put_write)(ptr.as_ptr(), buf.as_ptr(), filled, err) }
                    }),
                    None => Ok(()),
                };
                // On failure the guard is dropped here, which aborts the upload.
                result
                    .map(|()| (upload, buf))
                    .map_err(|e| to_target_error(e, &location, Some(&key_owned)))
            })
            .await
            .map_err(|e| join_error(&self.location, Some(key), e))??;
            upload = returned_upload;
            buf = returned_buf;
        }
        check_length(&self.location, key, total, options.length)?;
        let stat = self
            .blocking(Some(key), move |_| {
                let mut upload = upload;
                let mut stat = abi::Stat::default();
                match upload.ptr.take() {
                    Some(ptr) => call(|err| {
                        // SAFETY: finish consumes the live upload handle exactly once (the
                        // guard no longer holds it).
                        unsafe { (table.put_finish)(ptr.as_ptr(), &mut stat, err) }
                    })
                    .map(|()| stat),
                    None => Ok(stat),
                }
            })
            .await?;
        if stat.size != total {
            return Err(TargetError::new(
                TargetErrorKind::PluginFailure,
                &self.location,
                Some(key),
                format!(
                    "the plugin's put_finish reported {} bytes stored; {total} were written",
                    stat.size
                ),
            ));
        }
        Ok(meta_from_abi(key.clone(), &stat))
    }

    async fn get(&self, key: &ObjectKey) -> Result<ObjectReader, TargetError> {
        self.download(key, 0, u64::MAX).await
    }

    async fn get_range(
        &self,
        key: &ObjectKey,
        range: Range<u64>,
    ) -> Result<ObjectReader, TargetError> {
        let size = self.stat(key).await?.size;
        check_range(&self.location, key, &range, size)?;
        self.download(key, range.start, range.end.min(size)).await
    }

    async fn stat(&self, key: &ObjectKey) -> Result<ObjectMeta, TargetError> {
        let table = self.table;
        let key_text = key.to_string();
        let stat = self
            .blocking(Some(key), move |handle| {
                let mut stat = abi::Stat::default();
                call(|err| {
                    // SAFETY: the handle is live; the key and `stat` are valid for the call.
                    unsafe {
                        (table.stat)(handle.ptr.as_ptr(), Str::new(&key_text), &mut stat, err)
                    }
                })
                .map(|()| stat)
            })
            .await?;
        Ok(meta_from_abi(key.clone(), &stat))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, TargetError> {
        let table = self.table;
        let prefix_owned = prefix.to_owned();
        let listed = self
            .blocking(None, move |handle| {
                let mut found: Vec<Listed> = Vec::new();
                call(|err| {
                    // SAFETY: the handle is live; `found` outlives the call and is only
                    // touched by `collect`, on this thread.
                    unsafe {
                        (table.list)(
                            handle.ptr.as_ptr(),
                            Str::new(&prefix_owned),
                            collect,
                            (&mut found as *mut Vec<Listed>).cast(),
                            err,
                        )
                    }
                })
                .map(|()| found)
            })
            .await?;
        let mut out = Vec::with_capacity(listed.len());
        for (key, stat) in listed {
            let key = key.ok_or_else(|| {
                TargetError::new(
                    TargetErrorKind::InvalidData,
                    &self.location,
                    None,
                    "the plugin listed a key that is not valid UTF-8",
                )
            })?;
            let key = ObjectKey::new(key).map_err(|e| {
                TargetError::new(
                    TargetErrorKind::InvalidData,
                    &self.location,
                    None,
                    format!("the plugin listed an invalid key: {e}"),
                )
            })?;
            let stat = stat.ok_or_else(|| {
                TargetError::new(
                    TargetErrorKind::InvalidData,
                    &self.location,
                    Some(&key),
                    "the plugin listed the key without its size and time (a null Stat)",
                )
            })?;
            if key.as_str().starts_with(prefix) {
                out.push(meta_from_abi(key, &stat));
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out.dedup_by(|a, b| a.key == b.key);
        Ok(out)
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), TargetError> {
        let table = self.table;
        let key_text = key.to_string();
        self.blocking(Some(key), move |handle| {
            call(|err| {
                // SAFETY: the handle is live; the key is valid for the call.
                unsafe { (table.delete)(handle.ptr.as_ptr(), Str::new(&key_text), err) }
            })
        })
        .await
    }

    async fn readiness(&self) -> Result<Readiness, TargetError> {
        let table = self.table;
        let check = self.blocking(None, move |handle| {
            let mut out = abi::ReadinessOut::default();
            call(|err| {
                // SAFETY: the handle is live; `out` is valid for the call.
                unsafe { (table.readiness)(handle.ptr.as_ptr(), &mut out, err) }
            })
            .map(|()| out)
        });
        let out = tokio::time::timeout(READINESS_LIMIT, check)
            .await
            .map_err(|_| {
                TargetError::new(
                    TargetErrorKind::Timeout,
                    &self.location,
                    None,
                    format!(
                        "the plugin's readiness check did not answer within {} s",
                        READINESS_LIMIT.as_secs()
                    ),
                )
            })??;
        Ok(Readiness {
            writable: out.writable == 1,
            free_bytes: (out.has_free_bytes == 1).then_some(out.free_bytes),
            detail: None,
        })
    }
}

/// One listed object as the plugin reported it: its key (`None` if not UTF-8) and its stat
/// (`None` if the plugin passed none); `list` refuses either.
type Listed = (Option<String>, Option<abi::Stat>);

/// The host's list callback: copies each key and stat into the `Vec` behind `context`. It
/// never panics across the boundary.
unsafe extern "C" fn collect(context: *mut c_void, key: Str, stat: *const abi::Stat) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if context.is_null() {
            return;
        }
        // SAFETY: `context` is the `Vec` passed by `list`, alive and exclusive for the call;
        // `key` and `stat` (when not null) are valid for this invocation.
        let (found, key, stat) = unsafe {
            (
                &mut *context.cast::<Vec<Listed>>(),
                key.as_str().map(str::to_owned),
                stat.as_ref().copied(),
            )
        };
        found.push((key, stat));
    }));
}
