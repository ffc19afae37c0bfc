//! An example sstore plugin: `sumfolder`, a folder target that stores a SHA-256 beside every
//! object and checks it whenever an object is read whole, so silent corruption on a USB disk or
//! NAS mount is caught at read time. `stat` reports the stored checksum, which lets sstore
//! verify a copy without reading it back.
//!
//! Layout under the root: `objects/<key>` holds the bytes, `sums/<key>` the lower-case hex
//! SHA-256. A put writes a hidden temporary file, fsyncs it, writes the checksum, then publishes
//! with a hard link (create-only, atomic) or a rename (overwrite).
//!
//! Settings: `path` (or a `sumfolder:///absolute/path` URL).

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
}

/// The plugin: one open target.
pub struct SumFolder {
    root: PathBuf,
}

impl SumFolder {
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
        Ok(Self { root })
    }

    fn put(
        &self,
        key: &str,
        mode: PutMode,
        _length: Option<u64>,
    ) -> sstore_plugin::Result<SumUpload> {
        SumUpload::begin(self.object_path(key), self.sum_path(key), mode)
    }

    fn get(&self, key: &str, range: Option<Range<u64>>) -> sstore_plugin::Result<SumDownload> {
        SumDownload::open(&self.object_path(key), &self.sum_path(key), range)
    }

    fn stat(&self, key: &str) -> sstore_plugin::Result<Stat> {
        files::stat(&self.object_path(key), &self.sum_path(key))
    }

    fn list(&self, prefix: &str) -> sstore_plugin::Result<Vec<Entry>> {
        let mut out = Vec::new();
        let objects = self.root.join("objects");
        if objects.is_dir() {
            files::walk(&objects, &self.root.join("sums"), "", prefix, &mut out)?;
        }
        Ok(out)
    }

    fn delete(&self, key: &str) -> sstore_plugin::Result<()> {
        std::fs::remove_file(self.object_path(key))?;
        match std::fs::remove_file(self.sum_path(key)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn readiness(&self) -> sstore_plugin::Result<Readiness> {
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
