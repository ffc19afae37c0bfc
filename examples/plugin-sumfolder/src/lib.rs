//! An example sstore plugin: `sumfolder`, a folder target that stores a SHA-256 beside every
//! object and checks it whenever an object is read whole, so silent corruption on a USB disk or
//! NAS mount is caught at read time. `stat` reports the stored checksum, which lets sstore
//! verify a copy without reading it back.
//!
//! Layout under the root: `objects/<key>` holds the bytes, `sums/<key>` the lower-case hex
//! SHA-256. A put writes a hidden temporary file, fsyncs it, writes the checksum, then publishes
//! with a hard link (create-only, atomic) or a rename (overwrite).
//!
//! Settings: `path` (or a `sumfolder:///absolute/path` URL). Two testing aids, for exercising
//! sstore's error handling: `fail_after_bytes = N` fails every upload with a temporary I/O
//! error once N bytes were written to it; `fail_backup_puts = K` fails the first K uploads of
//! `*.bak` objects with a temporary I/O error (then they work); `refuse_backup_puts = true`
//! refuses every upload of a `*.bak` object as permission denied (permanent); `stall_ms = N` sleeps N ms in
//! every chunk written to a `*.bak` object (a slow or stalled server); and `panic_on = "put" |
//! "get" | "stat" | "list" | "delete" | "readiness" | "open"` panics inside that operation.

mod files;

use std::ops::Range;
use std::path::PathBuf;

use serde::Deserialize;
use sstore_plugin::abi::capability;
use sstore_plugin::{Entry, Error, ErrorKind, OpenRequest, Plugin, PutMode, Readiness, Stat};

use files::{SumDownload, SumUpload};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    path: Option<PathBuf>,
    fail_after_bytes: Option<u64>,
    fail_backup_puts: Option<u32>,
    refuse_backup_puts: Option<bool>,
    stall_ms: Option<u64>,
    panic_on: Option<String>,
}

/// The plugin: one open target.
pub struct SumFolder {
    root: PathBuf,
    fail_after_bytes: Option<u64>,
    /// Uploads of backup files still to fail.
    fail_backup_puts: std::sync::atomic::AtomicU32,
    refuse_backup_puts: bool,
    stall_ms: Option<u64>,
    panic_on: Option<String>,
}

impl SumFolder {
    fn maybe_panic(&self, operation: &str) {
        if self.panic_on.as_deref() == Some(operation) {
            panic!("injected panic in {operation} (panic_on = \"{operation}\")");
        }
    }

    fn object_path(&self, key: &str) -> PathBuf {
        key.split('/')
            .fold(self.root.join("objects"), |p, segment| p.join(segment))
    }

    fn sum_path(&self, key: &str) -> PathBuf {
        key.split('/')
            .fold(self.root.join("sums"), |p, segment| p.join(segment))
    }
}

fn path_from_url(url: &str) -> Option<PathBuf> {
    let path = url.strip_prefix("sumfolder://")?;
    path.starts_with('/').then(|| PathBuf::from(path))
}

impl Plugin for SumFolder {
    const KIND: &'static str = "sumfolder";
    const SCHEMES: &'static [&'static str] = &["sumfolder"];
    const DESCRIPTION: &'static str =
        "example plugin: a folder that keeps and checks a SHA-256 of every object";
    const CAPABILITIES: u32 = capability::ATOMIC_PUBLISH
        | capability::CONDITIONAL_CREATE
        | capability::SERVER_SHA256
        | capability::NATIVE_RANGES;

    type Upload = SumUpload;
    type Download = SumDownload;

    fn open(request: OpenRequest) -> sstore_plugin::Result<Self> {
        let settings: Settings = serde_json::from_str(&request.settings_json).map_err(|e| {
            Error::new(
                ErrorKind::InvalidConfig,
                format!("target {}: invalid settings: {e}", request.name),
            )
        })?;
        if settings.panic_on.as_deref() == Some("open") {
            panic!("injected panic in open (panic_on = \"open\")");
        }
        let root = match (request.url.as_deref(), settings.path) {
            (Some(url), None) => path_from_url(url).ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidConfig,
                    format!("'{url}' is not a sumfolder:///absolute/path URL"),
                )
            })?,
            (None, Some(path)) => path,
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    format!(
                        "target {}: give either a sumfolder:// URL or `path`",
                        request.name
                    ),
                ));
            }
        };
        Ok(Self {
            root,
            fail_after_bytes: settings.fail_after_bytes,
            fail_backup_puts: settings.fail_backup_puts.unwrap_or(0).into(),
            refuse_backup_puts: settings.refuse_backup_puts.unwrap_or(false),
            stall_ms: settings.stall_ms,
            panic_on: settings.panic_on,
        })
    }

    fn put(
        &self,
        key: &str,
        mode: PutMode,
        _length: Option<u64>,
    ) -> sstore_plugin::Result<SumUpload> {
        self.maybe_panic("put");
        let backup_file = key.ends_with(".bak");
        if backup_file && self.refuse_backup_puts {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "permission denied (injected, refuse_backup_puts)",
            ));
        }
        if backup_file {
            use std::sync::atomic::Ordering;
            let left = self.fail_backup_puts.load(Ordering::SeqCst);
            if left > 0 {
                self.fail_backup_puts.store(left - 1, Ordering::SeqCst);
                return Err(Error::new(
                    ErrorKind::Io,
                    format!("injected temporary failure ({left} left, fail_backup_puts)"),
                ));
            }
        }
        SumUpload::begin(
            self.object_path(key),
            self.sum_path(key),
            mode,
            self.fail_after_bytes,
            self.stall_ms.filter(|_| backup_file),
        )
    }

    fn get(&self, key: &str, range: Option<Range<u64>>) -> sstore_plugin::Result<SumDownload> {
        self.maybe_panic("get");
        SumDownload::open(&self.object_path(key), &self.sum_path(key), range)
    }

    fn stat(&self, key: &str) -> sstore_plugin::Result<Stat> {
        self.maybe_panic("stat");
        files::stat(&self.object_path(key), &self.sum_path(key))
    }

    fn list(&self, prefix: &str) -> sstore_plugin::Result<Vec<Entry>> {
        self.maybe_panic("list");
        let mut out = Vec::new();
        let objects = self.root.join("objects");
        if objects.is_dir() {
            files::walk(&objects, &self.root.join("sums"), "", prefix, &mut out)?;
        }
        Ok(out)
    }

    fn delete(&self, key: &str) -> sstore_plugin::Result<()> {
        self.maybe_panic("delete");
        std::fs::remove_file(self.object_path(key))?;
        match std::fs::remove_file(self.sum_path(key)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn readiness(&self) -> sstore_plugin::Result<Readiness> {
        self.maybe_panic("readiness");
        let probe = self.root.join("objects").join(".readiness-probe");
        files::create_dirs(&self.root.join("objects"))?;
        files::create_dirs(&self.root.join("sums"))?;
        std::fs::write(&probe, b"probe")?;
        std::fs::remove_file(&probe)?;
        Ok(Readiness {
            writable: true,
            free_bytes: None,
        })
    }
}

sstore_plugin::export_plugin!(SumFolder);
