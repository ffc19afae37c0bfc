//! The `smb` target: objects are files under a folder of a share, and keys map to paths
//! below it. The rules live here once, for both clients (`crate::client`): every call is
//! bounded by `timeout_secs`, every failure names the share, and a failure that may have left
//! the session broken drops it so the next attempt logs on again.
//!
//! Publishing:
//! - a put writes `.NAME.RANDOM.sstore-part` (created exclusively) in the object's folder,
//!   flushes and closes it, checks its size on the server, and marks it read-only;
//! - `Create` renames it to `NAME` without replacing: the server refuses the rename when the
//!   name exists (smb2), and a read-only published file cannot be unlinked by libsmbclient's
//!   replacing rename either, so create-only is enforced by the server with both clients;
//! - `Overwrite` swaps it in with one replacing rename (smb2). With libsmbclient, whose rename
//!   unlinks first, it goes through `.NAME.sstore-next`: renamed there, then over `NAME`.
//!   Should the process stop between that unlink and rename, the complete `next` file is what
//!   `get`, `stat` and `list` find under the key.

use std::future::Future;
use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sstore_target_api::{
    Capabilities, ObjectKey, ObjectMeta, ObjectReader, PutBody, PutMode, PutOptions, Readiness,
    Target, TargetError, TargetErrorKind, check_length, check_range, probe_write,
};

use crate::client::{self, Share, Stat, Upload};
use crate::config::SmbConfig;
use crate::stream::read_chunk;

/// Marks the work file of a put in progress; never listed.
pub const TEMP_SUFFIX: &str = ".sstore-part";
/// Marks the complete new content of an `Overwrite` about to be renamed into place.
pub const NEXT_SUFFIX: &str = ".sstore-next";

/// How often marking a create-only put's work file read-only is tried (libsmbclient), and
/// the pause between tries.
const MARK_ATTEMPTS: u32 = 3;
const MARK_RETRY_DELAY: Duration = Duration::from_millis(200);

/// The slowest disk a flush is allowed to wait for: a finishing upload may take
/// `timeout_secs` plus its size at this rate (the server writes it to disk then).
const SLOWEST_FLUSH_BYTES_PER_SEC: u64 = 16 * 1024 * 1024;

/// An SMB share folder as a target.
pub struct SmbTarget {
    config: Arc<SmbConfig>,
    location: String,
    share: Arc<dyn Share>,
}

impl std::fmt::Debug for SmbTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmbTarget")
            .field("location", &self.location)
            .field("client", &self.config.client)
            .finish_non_exhaustive()
    }
}

/// An object's share paths.
struct Paths {
    /// The folders above it, outermost first (the target's folder included).
    folders: Vec<String>,
    object: String,
    next: String,
    temp: String,
}

fn next_name(name: &str) -> String {
    format!(".{name}{NEXT_SUFFIX}")
}

fn temp_name(name: &str) -> String {
    let mut random = [0u8; 8];
    let _ = getrandom::fill(&mut random);
    format!(".{name}.{:016x}{TEMP_SUFFIX}", u64::from_le_bytes(random))
}

fn join(segments: &[&str]) -> String {
    segments.join("/")
}

/// Whether a failure may have left the session unusable (so it is opened anew), and so
/// whether trying again may help.
fn is_transient(e: &io::Error) -> bool {
    use io::ErrorKind as K;
    !matches!(
        e.kind(),
        K::NotFound
            | K::AlreadyExists
            | K::PermissionDenied
            | K::StorageFull
            | K::QuotaExceeded
            | K::IsADirectory
            | K::NotADirectory
            | K::DirectoryNotEmpty
            | K::InvalidData
            | K::InvalidFilename
            | K::ResourceBusy
    )
}

/// A failed logon, carried through an `io::Error` by the clients.
fn logon_error(e: io::Error) -> Result<TargetError, io::Error> {
    match e.get_ref() {
        Some(inner) if inner.is::<TargetError>() => match e.into_inner() {
            Some(inner) => inner
                .downcast::<TargetError>()
                .map(|boxed| *boxed)
                .map_err(|other| io::Error::other(other.to_string())),
            None => Err(io::Error::other("an SMB logon failed")),
        },
        _ => Err(e),
    }
}

fn to_meta(key: ObjectKey, size: u64, modified: Option<SystemTime>) -> ObjectMeta {
    ObjectMeta {
        modified,
        ..ObjectMeta::new(key, size)
    }
}

/// Whether a listing prefix could only match keys outside the target (`../`, `/`, `a\b`).
fn prefix_escapes(prefix: &str) -> bool {
    let folder = prefix.rsplit_once('/').map_or("", |(folder, _)| folder);
    prefix.starts_with('/')
        || prefix.contains('\\')
        || (!folder.is_empty()
            && folder
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == ".."))
}

impl SmbTarget {
    /// A target for the share and folder in `config`. Nothing is connected until first use.
    /// Refused when `config` names a client this build does not have.
    pub fn new(config: SmbConfig) -> Result<Self, TargetError> {
        let config = Arc::new(config);
        let share = client::open(config.clone())?;
        Ok(Self {
            location: config.location(),
            config,
            share,
        })
    }

    fn error(
        &self,
        kind: TargetErrorKind,
        key: Option<&ObjectKey>,
        message: impl Into<String>,
    ) -> TargetError {
        TargetError::new(kind, &self.location, key, message)
    }

    /// Classifies a failed call: the share and server are named, and a transient failure
    /// drops the session so the next attempt logs on again.
    async fn fail(&self, key: Option<&ObjectKey>, doing: &str, e: io::Error) -> TargetError {
        let e = match logon_error(e) {
            Ok(mut logon) => {
                if logon.key.is_none() {
                    logon.key = key.map(ToString::to_string);
                }
                return logon;
            }
            Err(e) => e,
        };
        if is_transient(&e) {
            self.share.reset().await;
        }
        let share = self.config.share_unc();
        let error = match e.kind() {
            io::ErrorKind::PermissionDenied => self.error(
                TargetErrorKind::PermissionDenied,
                key,
                format!(
                    "{doing}: {share} refused it to user {}: the share is read-only or the user \
                     may not write there",
                    self.config.user
                ),
            ),
            io::ErrorKind::TimedOut => self.error(
                TargetErrorKind::Timeout,
                key,
                format!("{doing}: {share} did not answer in time"),
            ),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => self.error(
                TargetErrorKind::NoSpace,
                key,
                format!("{doing}: {share} has no free space left; free some and run again"),
            ),
            _ => {
                let mut error =
                    TargetError::from_io(&self.location, key, io::Error::from(e.kind()));
                error.message = format!("{doing} on {share}: {}", error.message);
                error
            }
        };
        error.with_source(e)
    }

    /// Runs one client call within `bound`; a call that does not finish in time drops the
    /// session and is a temporary `Timeout`.
    async fn bounded<T>(
        &self,
        key: Option<&ObjectKey>,
        doing: &str,
        bound: Duration,
        call: impl Future<Output = io::Result<T>>,
    ) -> Result<T, TargetError> {
        match tokio::time::timeout(bound, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.fail(key, doing, e).await),
            Err(_) => {
                self.share.reset().await;
                Err(self.error(
                    TargetErrorKind::Timeout,
                    key,
                    format!(
                        "{doing}: {} did not answer within {bound:?}",
                        self.config.share_unc()
                    ),
                ))
            }
        }
    }

    /// [`Self::bounded`] with the target's timeout.
    async fn call<T>(
        &self,
        key: Option<&ObjectKey>,
        doing: &str,
        call: impl Future<Output = io::Result<T>>,
    ) -> Result<T, TargetError> {
        self.bounded(key, doing, self.config.timeout, call).await
    }

    /// The share-relative paths of `key`.
    fn paths(&self, key: &ObjectKey) -> Paths {
        let mut segments: Vec<&str> = self.config.folder.iter().map(String::as_str).collect();
        segments.extend(key.segments());
        let name = segments.pop().unwrap_or_default().to_owned();
        let folders = (1..=segments.len()).map(|n| join(&segments[..n])).collect();
        let with = |last: &str| {
            let mut all = segments.clone();
            all.push(last);
            join(&all)
        };
        Paths {
            folders,
            object: with(&name),
            next: with(&next_name(&name)),
            temp: with(&temp_name(&name)),
        }
    }

    /// The object's file, or its `next` file when the object is missing (an overwrite
    /// interrupted between unlink and rename); `None` if neither exists. A folder is not an
    /// object.
    async fn find(
        &self,
        key: &ObjectKey,
        paths: &Paths,
    ) -> Result<Option<(String, Stat)>, TargetError> {
        for path in [&paths.object, &paths.next] {
            match self
                .call(Some(key), "looking it up", self.share.stat(path))
                .await?
            {
                Some(st) if st.is_dir => return Ok(None),
                Some(st) => return Ok(Some((path.clone(), st))),
                None => continue,
            }
        }
        Ok(None)
    }

    async fn mkdir_all(&self, key: &ObjectKey, folders: &[String]) -> Result<(), TargetError> {
        for folder in folders {
            match self
                .call(Some(key), "creating a folder", self.share.mkdir(folder))
                .await
            {
                Ok(()) => {}
                Err(e) if e.kind == TargetErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Best effort: removes a work file (clearing its read-only flag first).
    async fn remove_quietly(&self, path: &str) {
        let _ = self
            .call(
                None,
                "clearing read-only",
                self.share.set_read_only(path, false),
            )
            .await;
        let _ = self
            .call(None, "removing a work file", self.share.remove(path))
            .await;
    }

    /// Closes an upload that will not be published and removes its work file.
    async fn discard(&self, upload: Box<dyn Upload>, temp: &str) {
        let _ = tokio::time::timeout(self.config.timeout, upload.abort()).await;
        self.remove_quietly(temp).await;
    }

    /// Streams `body` into the work file; returns its size once flushed and closed.
    async fn upload(
        &self,
        key: &ObjectKey,
        paths: &Paths,
        body: PutBody<'_>,
        expected: Option<u64>,
    ) -> Result<u64, TargetError> {
        let temp = &paths.temp;
        let created = self
            .call(Some(key), "creating the work file", self.share.create(temp))
            .await;
        let mut upload = match created {
            Err(e) if e.kind == TargetErrorKind::NotFound => {
                self.mkdir_all(key, &paths.folders).await?;
                self.call(Some(key), "creating the work file", self.share.create(temp))
                    .await?
            }
            other => other?,
        };
        let mut total = 0u64;
        loop {
            let chunk = match read_chunk(body).await {
                Ok(chunk) => chunk,
                Err(e) => {
                    self.discard(upload, temp).await;
                    return Err(TargetError::from_io(&self.location, Some(key), e));
                }
            };
            total += chunk.len() as u64;
            let too_long = expected.is_some_and(|n| total > n);
            if chunk.is_empty() || too_long {
                if let Err(e) = check_length(&self.location, key, total, expected) {
                    self.discard(upload, temp).await;
                    return Err(e);
                }
                break;
            }
            if let Err(e) = self.call(Some(key), "writing", upload.write(chunk)).await {
                self.discard(upload, temp).await;
                return Err(e);
            }
        }
        let bound = self.config.timeout + Duration::from_secs(total / SLOWEST_FLUSH_BYTES_PER_SEC);
        let written = match self
            .bounded(Some(key), "finishing the write", bound, upload.finish())
            .await
        {
            Ok(written) => written,
            Err(e) => {
                self.remove_quietly(temp).await;
                return Err(e);
            }
        };
        if written != total {
            self.remove_quietly(temp).await;
            return Err(self.error(
                TargetErrorKind::Io,
                Some(key),
                format!("writing: the server confirmed {written} of the {total} bytes sent"),
            ));
        }
        Ok(written)
    }

    /// Checks the work file's size on the server, marks it read-only and renames it into
    /// place; removes it if any step fails.
    async fn publish(
        &self,
        key: &ObjectKey,
        paths: &Paths,
        size: u64,
        mode: PutMode,
    ) -> Result<(), TargetError> {
        let result = self.rename_into_place(key, paths, size, mode).await;
        if result.is_err() {
            self.remove_quietly(&paths.temp).await;
        }
        match result {
            Err(e) if e.kind == TargetErrorKind::AlreadyExists => Err(self.error(
                TargetErrorKind::AlreadyExists,
                Some(key),
                "already exists; it is never replaced by a create-only put",
            )),
            other => other,
        }
    }

    async fn rename_into_place(
        &self,
        key: &ObjectKey,
        paths: &Paths,
        size: u64,
        mode: PutMode,
    ) -> Result<(), TargetError> {
        let (share, k) = (&self.share, Some(key));
        let stored = self
            .call(k, "checking the size", share.stat(&paths.temp))
            .await?
            .map_or(0, |st| st.size);
        if stored != size {
            return Err(self.error(
                TargetErrorKind::Io,
                k,
                format!("publishing: the server holds {stored} bytes of the {size} written"),
            ));
        }
        // A server that keeps no DOS attributes ignores this; the steps below then show it.
        // With libsmbclient, whose rename replaces, the mark is what keeps a create-only put
        // from replacing a published file: there a mark that fails (a handle not yet closed on
        // a busy server, say) is tried again, then fails the put rather than publish unguarded.
        let guarded = matches!(mode, PutMode::Create) && !share.renames_exclusively();
        for attempt in 1..=MARK_ATTEMPTS {
            let marked = self
                .call(
                    k,
                    "marking read-only",
                    share.set_read_only(&paths.temp, true),
                )
                .await;
            match marked {
                Err(e) if guarded && attempt == MARK_ATTEMPTS => return Err(e),
                Err(_) if guarded => tokio::time::sleep(MARK_RETRY_DELAY).await,
                _ => break,
            }
        }
        match mode {
            PutMode::Create => {
                self.call(
                    k,
                    "publishing",
                    share.rename(&paths.temp, &paths.object, false),
                )
                .await
            }
            PutMode::Overwrite if share.renames_exclusively() => {
                let _ = self
                    .call(
                        k,
                        "clearing read-only",
                        share.set_read_only(&paths.object, false),
                    )
                    .await;
                self.call(
                    k,
                    "publishing",
                    share.rename(&paths.temp, &paths.object, true),
                )
                .await?;
                // A `next` file left by an overwrite that libsmbclient interrupted is older
                // than what was just published: it must not come back after a delete.
                if self
                    .call(k, "looking it up", share.stat(&paths.next))
                    .await?
                    .is_some()
                {
                    self.remove_quietly(&paths.next).await;
                }
                Ok(())
            }
            PutMode::Overwrite => {
                let moved = self
                    .call(
                        k,
                        "publishing",
                        share.rename(&paths.temp, &paths.next, false),
                    )
                    .await;
                if moved.is_err() {
                    // A read-only `next` left by an interrupted overwrite.
                    let _ = self
                        .call(
                            k,
                            "clearing read-only",
                            share.set_read_only(&paths.next, false),
                        )
                        .await;
                    self.call(
                        k,
                        "publishing",
                        share.rename(&paths.temp, &paths.next, true),
                    )
                    .await?;
                }
                let _ = self
                    .call(
                        k,
                        "clearing read-only",
                        share.set_read_only(&paths.object, false),
                    )
                    .await;
                match self
                    .call(
                        k,
                        "publishing",
                        share.rename(&paths.next, &paths.object, true),
                    )
                    .await
                {
                    // Another overwrite moved it into place first: ours was replaced by
                    // theirs, as if it had landed just before.
                    Err(e) if e.kind == TargetErrorKind::NotFound => Ok(()),
                    other => other,
                }
            }
        }
    }

    async fn open_reader(
        &self,
        key: &ObjectKey,
        range: Option<Range<u64>>,
    ) -> Result<ObjectReader, TargetError> {
        let paths = self.paths(key);
        let Some((path, _)) = self.find(key, &paths).await? else {
            return Err(self.error(TargetErrorKind::NotFound, Some(key), "not found"));
        };
        let (start, end) = range.as_ref().map_or((0, None), |r| (r.start, Some(r.end)));
        let (size, reader) = self
            .call(
                Some(key),
                "opening for reading",
                self.share.open(&path, start, end),
            )
            .await?;
        if let Some(range) = &range {
            check_range(&self.location, key, range, size)?;
        }
        Ok(reader)
    }

    /// Lists `dir` and, recursively, its folders that can hold keys starting with `prefix`.
    /// `rel` is the key prefix of `dir`. Keys of `next` files go to `pending`.
    async fn walk(
        &self,
        dir: String,
        rel: String,
        prefix: &str,
        out: &mut Vec<ObjectMeta>,
        pending: &mut Vec<ObjectMeta>,
    ) -> Result<(), TargetError> {
        let mut folders = vec![(dir, rel)];
        while let Some((dir, rel)) = folders.pop() {
            let Some(entries) = self.call(None, "listing", self.share.list(&dir)).await? else {
                continue;
            };
            for entry in entries {
                let key = format!("{rel}{}", entry.name);
                if entry.stat.is_dir {
                    let folder = format!("{key}/");
                    if folder.starts_with(prefix) || prefix.starts_with(&folder) {
                        let path = if dir.is_empty() {
                            entry.name.clone()
                        } else {
                            format!("{dir}/{}", entry.name)
                        };
                        folders.push((path, folder));
                    }
                    continue;
                }
                if entry.name.ends_with(TEMP_SUFFIX) {
                    continue;
                }
                let (key, list) = match entry
                    .name
                    .strip_prefix('.')
                    .and_then(|n| n.strip_suffix(NEXT_SUFFIX))
                {
                    Some(real) => (format!("{rel}{real}"), &mut *pending),
                    None => (key, &mut *out),
                };
                if key.starts_with(prefix)
                    && let Ok(key) = ObjectKey::new(key)
                {
                    list.push(to_meta(key, entry.stat.size, entry.stat.modified));
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Target for SmbTarget {
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
        let paths = self.paths(key);
        if options.mode == PutMode::Create && self.find(key, &paths).await?.is_some() {
            return Err(self.error(
                TargetErrorKind::AlreadyExists,
                Some(key),
                "already exists; it is never replaced by a create-only put",
            ));
        }
        let size = self.upload(key, &paths, body, options.length).await?;
        self.publish(key, &paths, size, options.mode).await?;
        Ok(to_meta(key.clone(), size, Some(SystemTime::now())))
    }

    async fn get(&self, key: &ObjectKey) -> Result<ObjectReader, TargetError> {
        self.open_reader(key, None).await
    }

    async fn get_range(
        &self,
        key: &ObjectKey,
        range: Range<u64>,
    ) -> Result<ObjectReader, TargetError> {
        self.open_reader(key, Some(range)).await
    }

    async fn stat(&self, key: &ObjectKey) -> Result<ObjectMeta, TargetError> {
        match self.find(key, &self.paths(key)).await? {
            Some((_, st)) => Ok(to_meta(key.clone(), st.size, st.modified)),
            None => Err(self.error(TargetErrorKind::NotFound, Some(key), "not found")),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, TargetError> {
        if prefix_escapes(prefix) {
            return Ok(Vec::new());
        }
        let mut dir: Vec<String> = self.config.folder.clone();
        let mut rel = String::new();
        if let Some((folder, _)) = prefix.rsplit_once('/') {
            for segment in folder.split('/') {
                dir.push(segment.to_owned());
                rel.push_str(segment);
                rel.push('/');
            }
        }
        let (mut out, mut pending) = (Vec::new(), Vec::new());
        self.walk(dir.join("/"), rel, prefix, &mut out, &mut pending)
            .await?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        for meta in pending {
            if out.binary_search_by(|m| m.key.cmp(&meta.key)).is_err() {
                out.push(meta);
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Removes the object (and an interrupted overwrite's `next` file), then each folder
    /// above it that is left empty, up to the target's folder.
    async fn delete(&self, key: &ObjectKey) -> Result<(), TargetError> {
        let paths = self.paths(key);
        let Some((path, _)) = self.find(key, &paths).await? else {
            return Err(self.error(TargetErrorKind::NotFound, Some(key), "not found"));
        };
        let k = Some(key);
        let _ = self
            .call(
                k,
                "clearing read-only",
                self.share.set_read_only(&path, false),
            )
            .await;
        self.call(k, "deleting", self.share.remove(&path)).await?;
        if path != paths.next
            && self
                .call(k, "looking it up", self.share.stat(&paths.next))
                .await?
                .is_some()
        {
            self.remove_quietly(&paths.next).await;
        }
        for folder in paths.folders.iter().skip(self.config.folder.len()).rev() {
            if self
                .call(k, "removing an empty folder", self.share.rmdir(folder))
                .await
                .is_err()
            {
                break;
            }
        }
        Ok(())
    }

    /// Logs on (proving the logon, the share and that the session's protection is what the
    /// settings ask for), writes and deletes a probe object, and reports free space and how
    /// the session is protected.
    async fn readiness(&self) -> Result<Readiness, TargetError> {
        probe_write(self).await?;
        let free_bytes = self
            .call(None, "reading free space", self.share.free_space())
            .await
            .unwrap_or(None);
        let session = self.share.connect().await?;
        Ok(Readiness {
            writable: true,
            free_bytes,
            detail: Some(format!("{}: {session}", self.config.share_unc())),
        })
    }

    async fn connection(&self) -> Result<Option<String>, TargetError> {
        let session = tokio::time::timeout(self.config.timeout, self.share.connect())
            .await
            .map_err(|_| {
                self.error(
                    TargetErrorKind::Timeout,
                    None,
                    format!(
                        "logging on: {} did not answer within {:?}",
                        self.config.share_unc(),
                        self.config.timeout
                    ),
                )
            })??;
        Ok(Some(format!("{}: {session}", self.config.share_unc())))
    }
}
