//! The files behind `sumfolder`: uploads that hash while writing and publish atomically,
//! downloads that check the stored SHA-256 at the end of a whole read, listings and stat.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use sstore_plugin::{Entry, Error, ErrorKind, PutMode, Stat};

static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

pub(crate) fn create_dirs(path: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

fn private_file(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// A hidden temporary name beside `path`.
fn temp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = NEXT_TEMP.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.part-{}-{n}", std::process::id()))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

fn read_sum(path: &Path) -> io::Result<Option<[u8; 32]>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(parse_hex(&text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `contents` to `path` atomically (temporary file, fsync, rename).
fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        create_dirs(parent)?;
    }
    let temp = temp_beside(path);
    let result = (|| {
        let mut file = private_file(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// An upload: a temporary file and a running hash.
pub struct SumUpload {
    file: Option<File>,
    temp: PathBuf,
    object: PathBuf,
    sum: PathBuf,
    mode: PutMode,
    hasher: Sha256,
    written: u64,
}

impl SumUpload {
    pub(crate) fn begin(
        object: PathBuf,
        sum: PathBuf,
        mode: PutMode,
    ) -> sstore_plugin::Result<Self> {
        if let Some(parent) = object.parent() {
            create_dirs(parent)?;
        }
        let temp = temp_beside(&object);
        let file = private_file(&temp)?;
        Ok(Self {
            file: Some(file),
            temp,
            object,
            sum,
            mode,
            hasher: Sha256::new(),
            written: 0,
        })
    }

    fn publish(&mut self) -> sstore_plugin::Result<Stat> {
        let file = self
            .file
            .take()
            .ok_or_else(|| Error::new(ErrorKind::Io, "the upload was already finished"))?;
        file.sync_all()?;
        drop(file);
        let digest: [u8; 32] = self.hasher.clone().finalize().into();
        let sum_text = format!("{}\n", hex(&digest));
        match self.mode {
            // The hard link fails if the object exists, so a published object is never
            // replaced; its checksum is written only once the object is ours.
            PutMode::Create => {
                std::fs::hard_link(&self.temp, &self.object)?;
                write_atomically(&self.sum, sum_text.as_bytes())?;
            }
            // The checksum goes first so a reader never meets the new object with no checksum.
            PutMode::Overwrite => {
                write_atomically(&self.sum, sum_text.as_bytes())?;
                std::fs::rename(&self.temp, &self.object)?;
            }
        }
        let _ = std::fs::remove_file(&self.temp);
        if let Some(parent) = self.object.parent() {
            File::open(parent)?.sync_all()?;
        }
        Ok(Stat {
            size: self.written,
            modified: Some(std::time::SystemTime::now()),
            sha256: Some(digest),
        })
    }
}

impl sstore_plugin::Upload for SumUpload {
    fn write(&mut self, data: &[u8]) -> sstore_plugin::Result<()> {
        self.written += data.len() as u64;
        self.hasher.update(data);
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| Error::new(ErrorKind::Io, "the upload was already finished"))?;
        file.write_all(data)?;
        Ok(())
    }

    fn finish(mut self) -> sstore_plugin::Result<Stat> {
        self.publish()
    }

    fn abort(self) {}
}

impl Drop for SumUpload {
    /// Whatever happened, the temporary file goes (after a publish it is already gone).
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.temp);
    }
}

/// A download; a whole-object read checks the stored SHA-256 when it reaches the end.
pub struct SumDownload {
    file: io::Take<File>,
    check: Option<(Sha256, [u8; 32])>,
}

impl SumDownload {
    pub(crate) fn open(
        object: &Path,
        sum: &Path,
        range: Option<Range<u64>>,
    ) -> sstore_plugin::Result<Self> {
        let mut file = File::open(object)?;
        let size = file.metadata()?.len();
        let (start, end) = match &range {
            Some(r) => (r.start, r.end.min(size)),
            None => (0, size),
        };
        if start > size || start > end {
            return Err(Error::new(
                ErrorKind::InvalidData,
                format!("range {start}..{end} is outside the object's {size} bytes"),
            ));
        }
        file.seek(io::SeekFrom::Start(start))?;
        let check = match range {
            None => read_sum(sum)?.map(|expected| (Sha256::new(), expected)),
            Some(_) => None,
        };
        Ok(Self {
            file: file.take(end - start),
            check,
        })
    }
}

impl sstore_plugin::Download for SumDownload {
    fn read(&mut self, buf: &mut [u8]) -> sstore_plugin::Result<usize> {
        let n = self.file.read(buf)?;
        if let Some((hasher, expected)) = &mut self.check {
            hasher.update(&buf[..n]);
            if n == 0 {
                let actual: [u8; 32] = hasher.clone().finalize().into();
                if &actual != expected {
                    return Err(Error::new(
                        ErrorKind::InvalidData,
                        format!(
                            "the object's SHA-256 is {}, but {} was stored with it: the file was changed or damaged on disk",
                            hex(&actual),
                            hex(expected)
                        ),
                    ));
                }
            }
        }
        Ok(n)
    }
}

pub(crate) fn stat(object: &Path, sum: &Path) -> sstore_plugin::Result<Stat> {
    let meta = std::fs::metadata(object)?;
    if !meta.is_file() {
        return Err(Error::new(ErrorKind::NotFound, "not a file"));
    }
    Ok(Stat {
        size: meta.len(),
        modified: meta.modified().ok(),
        sha256: read_sum(sum)?,
    })
}

/// Lists objects under `dir` whose key starts with `prefix`, skipping temporary files.
pub(crate) fn walk(
    dir: &Path,
    sums: &Path,
    rel: &str,
    prefix: &str,
    out: &mut Vec<Entry>,
) -> sstore_plugin::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') {
            continue;
        }
        let key = if rel.is_empty() {
            name.to_owned()
        } else {
            format!("{rel}/{name}")
        };
        let kind = entry.file_type()?;
        if kind.is_dir() {
            let folder = format!("{key}/");
            if folder.starts_with(prefix) || prefix.starts_with(&folder) {
                walk(&entry.path(), &sums.join(name), &key, prefix, out)?;
            }
        } else if kind.is_file() && key.starts_with(prefix) {
            let meta = entry.metadata()?;
            out.push(Entry {
                stat: Stat {
                    size: meta.len(),
                    modified: meta.modified().ok(),
                    sha256: read_sum(&sums.join(name))?,
                },
                key,
            });
        }
    }
    Ok(())
}
