//! sstore target: a folder on local disk (or any mounted filesystem).
//!
//! Objects are files under the root; keys map to relative paths and can never leave it. A put
//! writes a hidden temporary file, fsyncs it, then publishes it with a hard link (create-only)
//! or a rename (overwrite) and fsyncs the folder, so an object is visible only when complete.

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use serde::Deserialize;
use sstore_fsutil as fsutil;
use sstore_target_api::{
    BuiltinKind, Capabilities, ObjectKey, ObjectMeta, ObjectReader, OpenRequest, PutBody, PutMode,
    PutOptions, Readiness, Target, TargetError, TargetErrorKind, check_range, copy_body,
    location::file_url_path, probe_write,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// The kind name in config files (`kind = "local"`).
pub const KIND: &str = "local";

inventory::submit! {
    BuiltinKind {
        name: KIND,
        schemes: &["file"],
        description: "a folder on local disk or a mounted filesystem (plain paths and file:// URLs)",
        open: open_local,
    }
}

/// The kind's name. The `sstore` binary calls this so the linker keeps the registration.
pub fn kind() -> &'static str {
    KIND
}

/// Settings of a `kind = "local"` target.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalSettings {
    /// The folder (absolute, or relative to the working folder).
    path: Option<PathBuf>,
}

fn open_local(request: &OpenRequest) -> Result<Arc<dyn Target>, TargetError> {
    let settings: LocalSettings = request.settings()?;
    let root = match (&request.url, settings.path) {
        (Some(_), Some(_)) => return Err(request.invalid("give either url or path, not both")),
        (Some(url), None) => file_url_path(url).ok_or_else(|| {
            request.invalid(format!(
                "'{url}' is not a local file URL; write file:///absolute/path"
            ))
        })?,
        (None, Some(path)) => path,
        (None, None) => return Err(request.invalid("a local target needs `path`")),
    };
    Ok(Arc::new(LocalTarget::new(root)))
}

/// Marks temporary files so listings skip them.
const TEMP_SUFFIX: &str = ".sstore-part";

/// Objects at least this large are read by [`fsutil::ReadAheadFile`]; smaller ones (manifests,
/// histories, logs) through a plain buffered reader.
const READ_AHEAD_FROM: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct LocalTarget {
    root: PathBuf,
    location: String,
}

impl LocalTarget {
    /// A target rooted at `root` (created owner-only on first write if missing).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let location = format!("local:{}", root.display());
        Self { root, location }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &ObjectKey) -> PathBuf {
        key.segments()
            .fold(self.root.clone(), |path, segment| path.join(segment))
    }

    fn err(&self, key: Option<&ObjectKey>, e: io::Error) -> TargetError {
        TargetError::from_io(&self.location, key, e)
    }

    /// For lookups (get, stat, delete): a file where the key needs a folder (`a` exists, `a/b`
    /// is asked for) means the key does not exist.
    fn lookup_err(&self, key: &ObjectKey, e: io::Error) -> TargetError {
        if e.kind() == io::ErrorKind::NotADirectory {
            return TargetError::new(
                TargetErrorKind::NotFound,
                &self.location,
                Some(key),
                "not found",
            )
            .with_source(e);
        }
        self.err(Some(key), e)
    }

    async fn prepare_parent(&self, key: &ObjectKey, path: &Path) -> Result<PathBuf, TargetError> {
        let parent = path.parent().unwrap_or(&self.root).to_owned();
        let dir = parent.clone();
        tokio::task::spawn_blocking(move || fsutil::create_private_dir_all(&dir))
            .await
            .map_err(|e| {
                TargetError::new(
                    TargetErrorKind::Io,
                    &self.location,
                    Some(key),
                    e.to_string(),
                )
            })?
            .map_err(|e| {
                self.err(Some(key), e)
                    .context(format!("creating folder {}", parent.display()))
            })?;
        Ok(parent)
    }

    /// Makes `temp` visible as `path`, then fsyncs the folder.
    async fn publish(
        &self,
        key: &ObjectKey,
        temp: &Path,
        path: &Path,
        parent: &Path,
        mode: PutMode,
    ) -> Result<(), TargetError> {
        let (temp, path, parent) = (temp.to_owned(), path.to_owned(), parent.to_owned());
        let result = tokio::task::spawn_blocking(move || -> io::Result<()> {
            match mode {
                PutMode::Overwrite => std::fs::rename(&temp, &path)?,
                // A hard link never replaces an existing file: create-only, atomically.
                PutMode::Create => match std::fs::hard_link(&temp, &path) {
                    Ok(()) => std::fs::remove_file(&temp)?,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(e),
                    // Filesystems without hard links: check, then rename (the job lock keeps
                    // other sstore writers out).
                    Err(_) => {
                        if path.exists() {
                            return Err(io::Error::new(
                                io::ErrorKind::AlreadyExists,
                                "already exists",
                            ));
                        }
                        std::fs::rename(&temp, &path)?;
                    }
                },
            }
            fsutil::sync_dir(&parent)
        })
        .await
        .map_err(|e| {
            TargetError::new(
                TargetErrorKind::Io,
                &self.location,
                Some(key),
                e.to_string(),
            )
        })?;
        result.map_err(|e| self.err(Some(key), e))
    }

    fn temp_path(path: &Path) -> PathBuf {
        let mut name = fsutil::temp_sibling(path, "put").into_os_string();
        name.push(TEMP_SUFFIX);
        PathBuf::from(name)
    }
}

fn meta(key: ObjectKey, m: &std::fs::Metadata) -> ObjectMeta {
    ObjectMeta {
        modified: m.modified().ok(),
        ..ObjectMeta::new(key, m.len())
    }
}

#[async_trait]
impl Target for LocalTarget {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            atomic_publish: true,
            conditional_create: true,
            multipart: false,
            server_sha256: false,
            native_ranges: true,
        }
    }

    async fn put(
        &self,
        key: &ObjectKey,
        body: PutBody<'_>,
        options: PutOptions,
    ) -> Result<ObjectMeta, TargetError> {
        let path = self.path_of(key);
        let parent = self.prepare_parent(key, &path).await?;
        let temp = Self::temp_path(&path);
        let written = async {
            let file = fsutil::private_new_file_options()
                .open(&temp)
                .map_err(|e| self.err(Some(key), e))?;
            let mut file = tokio::fs::File::from_std(file);
            let size = copy_body(&self.location, key, body, &mut file, options.length).await?;
            file.flush().await.map_err(|e| self.err(Some(key), e))?;
            file.sync_all().await.map_err(|e| self.err(Some(key), e))?;
            drop(file);
            self.publish(key, &temp, &path, &parent, options.mode)
                .await?;
            Ok::<u64, TargetError>(size)
        }
        .await;
        match written {
            Ok(size) => Ok(ObjectMeta {
                modified: Some(SystemTime::now()),
                ..ObjectMeta::new(key.clone(), size)
            }),
            Err(e) => {
                let _ = tokio::fs::remove_file(&temp).await;
                Err(e)
            }
        }
    }

    /// A staged file on the same filesystem is linked into place instead of copied.
    async fn put_file(
        &self,
        key: &ObjectKey,
        source: &Path,
        mode: PutMode,
    ) -> Result<ObjectMeta, TargetError> {
        let path = self.path_of(key);
        let parent = self.prepare_parent(key, &path).await?;
        if mode == PutMode::Create {
            let temp = Self::temp_path(&path);
            if std::fs::hard_link(source, &temp).is_ok() {
                match self.publish(key, &temp, &path, &parent, mode).await {
                    Ok(()) => {
                        let mut meta = self.stat(key).await?;
                        meta.same_file_as_source = true;
                        return Ok(meta);
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&temp);
                        return Err(e);
                    }
                }
            }
        }
        let mut file = tokio::fs::File::open(source).await.map_err(|e| {
            self.err(Some(key), e)
                .context(format!("reading {}", source.display()))
        })?;
        self.put(key, &mut file, mode.into()).await
    }

    async fn get(&self, key: &ObjectKey) -> Result<ObjectReader, TargetError> {
        let file = tokio::fs::File::open(self.path_of(key))
            .await
            .map_err(|e| self.lookup_err(key, e))?;
        let size = file
            .metadata()
            .await
            .map_err(|e| self.err(Some(key), e))?
            .len();
        if size < READ_AHEAD_FROM {
            return Ok(Box::new(tokio::io::BufReader::with_capacity(
                1024 * 1024,
                file,
            )));
        }
        // A backup file is read once, start to end: a thread ahead, past the page cache where
        // the filesystem allows it (it was written that way too). The handle opened above
        // serves the cached reads, so the file read is the one whose size was taken.
        let (file, path) = (file.into_std().await, self.path_of(key));
        let reader =
            tokio::task::spawn_blocking(move || fsutil::ReadAheadFile::from_file(file, &path))
                .await
                .map_err(|e| self.err(Some(key), io::Error::other(e)))?
                .map_err(|e| self.err(Some(key), e))?;
        Ok(Box::new(reader))
    }

    async fn get_range(
        &self,
        key: &ObjectKey,
        range: Range<u64>,
    ) -> Result<ObjectReader, TargetError> {
        let mut file = tokio::fs::File::open(self.path_of(key))
            .await
            .map_err(|e| self.lookup_err(key, e))?;
        let size = file
            .metadata()
            .await
            .map_err(|e| self.err(Some(key), e))?
            .len();
        check_range(&self.location, key, &range, size)?;
        file.seek(io::SeekFrom::Start(range.start))
            .await
            .map_err(|e| self.err(Some(key), e))?;
        let reader = tokio::io::BufReader::with_capacity(256 * 1024, file);
        Ok(Box::new(reader.take(range.end.min(size) - range.start)))
    }

    async fn stat(&self, key: &ObjectKey) -> Result<ObjectMeta, TargetError> {
        let m = tokio::fs::metadata(self.path_of(key))
            .await
            .map_err(|e| self.lookup_err(key, e))?;
        if !m.is_file() {
            return Err(TargetError::new(
                TargetErrorKind::NotFound,
                &self.location,
                Some(key),
                "not a file",
            ));
        }
        Ok(meta(key.clone(), &m))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, TargetError> {
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        let location = self.location.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            if root.is_dir() {
                walk(&root, "", &prefix, &mut out)
                    .map_err(|e| TargetError::from_io(&location, None, e))?;
            }
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
        .map_err(|e| TargetError::new(TargetErrorKind::Io, &self.location, None, e.to_string()))?
    }

    /// Removes the file, then each folder above it that is left empty (up to the root), so
    /// deleting every object of a folder leaves no empty folder behind.
    async fn delete(&self, key: &ObjectKey) -> Result<(), TargetError> {
        let path = self.path_of(key);
        tokio::fs::remove_file(&path)
            .await
            .map_err(|e| self.lookup_err(key, e))?;
        let mut folder = path.parent();
        while let Some(dir) = folder {
            if dir == self.root || !dir.starts_with(&self.root) {
                break;
            }
            // Fails (harmlessly) as soon as a folder still holds something.
            if tokio::fs::remove_dir(dir).await.is_err() {
                break;
            }
            folder = dir.parent();
        }
        Ok(())
    }

    /// Creates the folder if needed, writes and deletes a probe, and reports free space.
    async fn readiness(&self) -> Result<Readiness, TargetError> {
        probe_write(self).await?;
        let free_bytes = fsutil::free_space(&self.root).ok().flatten();
        Ok(Readiness {
            writable: true,
            free_bytes,
            detail: None,
        })
    }
}

/// Collects files under `dir` whose key starts with `prefix`, skipping hidden work files and
/// folders that cannot match.
fn walk(dir: &Path, rel: &str, prefix: &str, out: &mut Vec<ObjectMeta>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') || name.ends_with(TEMP_SUFFIX) {
            continue;
        }
        let key = if rel.is_empty() {
            name.to_owned()
        } else {
            format!("{rel}/{name}")
        };
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            let as_folder = format!("{key}/");
            if as_folder.starts_with(prefix) || prefix.starts_with(&as_folder) {
                walk(&entry.path(), &key, prefix, out)?;
            }
        } else if file_type.is_file()
            && key.starts_with(prefix)
            && let Ok(object_key) = ObjectKey::new(key)
        {
            out.push(meta(object_key, &entry.metadata()?));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sstore_target_api::{get_bytes, put_bytes};

    fn key(s: &str) -> ObjectKey {
        ObjectKey::new(s).unwrap()
    }

    #[tokio::test]
    async fn put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let t = LocalTarget::new(dir.path().join("root"));
        put_bytes(&t, &key("a/b/one"), b"1", PutMode::Create)
            .await
            .unwrap();
        put_bytes(&t, &key("a/two"), b"22", PutMode::Create)
            .await
            .unwrap();
        put_bytes(&t, &key("c"), b"333", PutMode::Create)
            .await
            .unwrap();
        assert_eq!(get_bytes(&t, &key("a/two"), 10).await.unwrap(), b"22");
        let listed: Vec<String> = t
            .list("a/")
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.key.to_string())
            .collect();
        assert_eq!(listed, ["a/b/one", "a/two"]);
        assert_eq!(t.stat(&key("c")).await.unwrap().size, 3);
        t.delete(&key("c")).await.unwrap();
        assert!(t.stat(&key("c")).await.unwrap_err().is_not_found());
        assert!(
            t.get(&key("missing"))
                .await
                .err()
                .is_some_and(|e| e.is_not_found())
        );
    }

    #[tokio::test]
    async fn create_never_overwrites_and_overwrite_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let t = LocalTarget::new(dir.path());
        put_bytes(&t, &key("x"), b"first", PutMode::Create)
            .await
            .unwrap();
        let err = put_bytes(&t, &key("x"), b"second", PutMode::Create)
            .await
            .unwrap_err();
        assert_eq!(err.kind, TargetErrorKind::AlreadyExists);
        assert_eq!(get_bytes(&t, &key("x"), 10).await.unwrap(), b"first");
        put_bytes(&t, &key("x"), b"third", PutMode::Overwrite)
            .await
            .unwrap();
        assert_eq!(get_bytes(&t, &key("x"), 10).await.unwrap(), b"third");
        // No temporary files are left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// A body that fails half-way: nothing may appear under the key.
    struct FailingBody(usize);

    impl tokio::io::AsyncRead for FailingBody {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            if self.0 == 0 {
                return std::task::Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "source went away",
                )));
            }
            self.0 -= 1;
            buf.put_slice(&[7; 1024]);
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn an_aborted_put_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let t = LocalTarget::new(dir.path());
        let err = t
            .put(&key("f/obj"), &mut FailingBody(100), PutOptions::create())
            .await
            .unwrap_err();
        assert_eq!(err.kind, TargetErrorKind::Network);
        assert!(t.stat(&key("f/obj")).await.unwrap_err().is_not_found());
        assert_eq!(std::fs::read_dir(dir.path().join("f")).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn put_file_links_a_staged_file() {
        let dir = tempfile::tempdir().unwrap();
        let staged = dir.path().join("staged");
        std::fs::write(&staged, b"staged bytes").unwrap();
        let t = LocalTarget::new(dir.path().join("root"));
        let m = t
            .put_file(&key("s/obj"), &staged, PutMode::Create)
            .await
            .unwrap();
        assert_eq!(m.size, 12);
        assert!(m.same_file_as_source);
        assert_eq!(
            std::fs::read(dir.path().join("root/s/obj")).unwrap(),
            b"staged bytes"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let (a, b) = (
                std::fs::metadata(&staged).unwrap(),
                std::fs::metadata(dir.path().join("root/s/obj")).unwrap(),
            );
            assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()));
        }
        let err = t
            .put_file(&key("s/obj"), &staged, PutMode::Create)
            .await
            .unwrap_err();
        assert_eq!(err.kind, TargetErrorKind::AlreadyExists);
    }
}
