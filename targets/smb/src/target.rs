//! The `smb` target: objects are files under a folder of a share, and keys map to paths
//! below it.
//!
//! Publishing (see the crate docs for why it is done this way with libsmbclient):
//! - a put writes `.NAME.RANDOM.sstore-part` (created exclusively) in the object's folder,
//!   closes it, checks its size on the server, and marks it read-only;
//! - `Create` renames it to `NAME`. libsmbclient's rename replaces a writable destination
//!   (it unlinks it, then renames) but cannot unlink a read-only one, so a rename onto any
//!   published object fails with "exists": create-only is enforced by the server;
//! - `Overwrite` renames it to `.NAME.sstore-next`, makes `NAME` writable, then renames the
//!   `next` file over it. Should the process stop between libsmbclient's unlink and its
//!   rename, the complete `next` file is what `get`, `stat` and `list` find under the key.

use std::io::{self, Write};
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use pavao::{SmbClient, SmbDirentType, SmbMode, SmbOpenOptions};
use sstore_target_api::{
    Capabilities, ObjectKey, ObjectMeta, ObjectReader, PutBody, PutMode, PutOptions, Readiness,
    Target, TargetError, TargetErrorKind, check_length, check_range, probe_write,
};
use tokio::sync::{mpsc, oneshot};

use crate::client::{Connection, io_error, share_path};
use crate::config::SmbConfig;
use crate::stream::{ChunkReader, DEPTH, READ_CHUNK, read_chunk};

/// Marks the work file of a put in progress; never listed.
pub const TEMP_SUFFIX: &str = ".sstore-part";
/// Marks the complete new content of an `Overwrite` about to be renamed into place.
pub const NEXT_SUFFIX: &str = ".sstore-next";

const READ_ONLY: u32 = 0o444;
const WRITABLE: u32 = 0o644;

/// An SMB share folder as a target.
#[derive(Debug)]
pub struct SmbTarget {
    conn: Arc<Connection>,
}

/// How feeding the writer ended.
enum Fed {
    /// Everything was sent, `End` included.
    All(u64),
    /// The writer stopped taking data.
    WriterGone,
    /// The writer took nothing for the whole timeout.
    Stalled,
}

/// What a blocking writer is sent.
enum Piece {
    Data(Vec<u8>),
    End,
}

/// An object's paths on the share (encoded for libsmbclient).
struct Paths {
    /// The folders above it, outermost first (the target's folder included).
    folders: Vec<String>,
    object: String,
    next: String,
}

fn next_name(name: &str) -> String {
    format!(".{name}{NEXT_SUFFIX}")
}

fn temp_name(name: &str) -> String {
    let mut random = [0u8; 8];
    let _ = getrandom::fill(&mut random);
    format!(".{name}.{:016x}{TEMP_SUFFIX}", u64::from_le_bytes(random))
}

fn not_found() -> io::Error {
    io::Error::from(io::ErrorKind::NotFound)
}

/// Sets or clears the read-only attribute. Servers that keep no DOS attributes ignore it; a
/// failure here shows in the step that follows, so it is not an error itself.
fn set_mode(client: &SmbClient, path: &str, mode: u32) {
    let _ = client.chmod(path, SmbMode::from(mode));
}

/// `stat` of `object`, or of its `next` file when `object` is missing; `None` if neither
/// exists. A folder is not an object.
fn stat_either(client: &SmbClient, paths: &Paths) -> io::Result<Option<(String, pavao::SmbStat)>> {
    for path in [&paths.object, &paths.next] {
        match client.stat(path.as_str()).map_err(io_error) {
            Ok(st) if st.mode.is_dir() => return Ok(None),
            Ok(st) => return Ok(Some((path.clone(), st))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

fn mkdir_all(client: &SmbClient, folders: &[String]) -> io::Result<()> {
    for folder in folders {
        match client
            .mkdir(folder.as_str(), SmbMode::from(0o755))
            .map_err(io_error)
        {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The blocking half of a put: creates the work file (and the folders, when missing), writes
/// what arrives until `End`, and closes it. Anything else (the sender gone, a failed write)
/// removes the work file.
fn write_work_file(
    client: Arc<SmbClient>,
    folders: Vec<String>,
    temp: String,
    mut rx: mpsc::Receiver<Piece>,
) -> io::Result<u64> {
    let options = SmbOpenOptions::default()
        .create(true)
        .exclusive(true)
        .write(true);
    let mut file = match client.open_with(temp.as_str(), options).map_err(io_error) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            mkdir_all(&client, &folders)?;
            client.open_with(temp.as_str(), options).map_err(io_error)?
        }
        other => other?,
    };
    let mut written = 0u64;
    let outcome = loop {
        match rx.blocking_recv() {
            Some(Piece::Data(chunk)) => {
                if let Err(e) = file.write_all(&chunk) {
                    break Err(e);
                }
                written += chunk.len() as u64;
            }
            Some(Piece::End) => break Ok(written),
            None => break Err(io::Error::new(io::ErrorKind::Interrupted, "put abandoned")),
        }
    };
    drop(file);
    if outcome.is_err() {
        let _ = client.unlink(temp.as_str());
    }
    outcome
}

/// The blocking half of a read: finds the object, reports its size, then sends its bytes
/// from `start` (up to `end`) in chunks until the receiver goes away.
fn read_object(
    client: Arc<SmbClient>,
    paths: Paths,
    start: u64,
    end: Option<u64>,
    opened: oneshot::Sender<io::Result<u64>>,
    tx: mpsc::Sender<io::Result<Vec<u8>>>,
) {
    use std::io::{Read, Seek, SeekFrom};
    let found = stat_either(&client, &paths).and_then(|found| found.ok_or_else(not_found));
    let (path, size) = match found {
        Ok((path, st)) => (path, st.size),
        Err(e) => {
            let _ = opened.send(Err(e));
            return;
        }
    };
    let file = client
        .open_with(path.as_str(), SmbOpenOptions::default().read(true))
        .map_err(io_error)
        .and_then(|mut file| {
            if start > 0 && start <= size {
                file.seek(SeekFrom::Start(start))?;
            }
            Ok(file)
        });
    let mut file = match file {
        Ok(file) => file,
        Err(e) => {
            let _ = opened.send(Err(e));
            return;
        }
    };
    if opened.send(Ok(size)).is_err() || start > size {
        return;
    }
    let mut remaining = end.map(|end| end.min(size).saturating_sub(start));
    loop {
        let want = remaining.map_or(READ_CHUNK, |r| r.min(READ_CHUNK as u64) as usize);
        if want == 0 {
            return;
        }
        let mut buf = vec![0u8; want];
        let mut filled = 0;
        let result = loop {
            match file.read(&mut buf[filled..]) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    filled += n;
                    if filled == want {
                        break Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        buf.truncate(filled);
        if let Some(r) = remaining.as_mut() {
            *r -= filled as u64;
            if filled < want {
                let _ = tx.blocking_send(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file ended before its size (it changed while being read)",
                )));
                return;
            }
        }
        if filled == 0 || tx.blocking_send(Ok(buf)).is_err() {
            return;
        }
    }
}

impl SmbTarget {
    /// A target for the share and folder in `config`. Nothing is connected until first use.
    pub fn new(config: SmbConfig) -> Self {
        Self {
            conn: Arc::new(Connection::new(config)),
        }
    }

    fn config(&self) -> &SmbConfig {
        &self.conn.config
    }

    /// The share-relative paths of `key`.
    fn paths(&self, key: &ObjectKey) -> (Paths, String) {
        let mut segments: Vec<&str> = self.config().folder.iter().map(String::as_str).collect();
        segments.extend(key.segments());
        let name = segments.pop().unwrap_or_default().to_owned();
        let folders = (1..=segments.len())
            .map(|n| share_path(segments[..n].iter().copied()))
            .collect();
        let parent = segments.clone();
        let with = |last: &str| share_path(parent.iter().copied().chain([last]));
        let paths = Paths {
            folders,
            object: with(&name),
            next: with(&next_name(&name)),
        };
        let temp = with(&temp_name(&name));
        (paths, temp)
    }

    fn root_path(&self) -> String {
        share_path(self.config().folder.iter().map(String::as_str))
    }

    async fn open_reader(
        &self,
        key: &ObjectKey,
        range: Option<Range<u64>>,
    ) -> Result<ObjectReader, TargetError> {
        let client = self.conn.session().await?;
        let (paths, _) = self.paths(key);
        let (tx, rx) = mpsc::channel(DEPTH);
        let (opened_tx, opened_rx) = oneshot::channel();
        let (start, end) = range.as_ref().map_or((0, None), |r| (r.start, Some(r.end)));
        tokio::task::spawn_blocking(move || read_object(client, paths, start, end, opened_tx, tx));
        let size = match tokio::time::timeout(self.config().timeout, opened_rx).await {
            Ok(Ok(Ok(size))) => size,
            Ok(Ok(Err(e))) => {
                return Err(self.conn.fail(Some(key), "opening for reading", e).await);
            }
            Ok(Err(_)) => {
                return Err(self.conn.error(
                    TargetErrorKind::Io,
                    Some(key),
                    "the SMB reader stopped",
                ));
            }
            Err(_) => {
                self.conn.reset().await;
                return Err(self.conn.error(
                    TargetErrorKind::Timeout,
                    Some(key),
                    format!(
                        "opening for reading: no answer within {:?}",
                        self.config().timeout
                    ),
                ));
            }
        };
        if let Some(range) = &range {
            check_range(&self.conn.location, key, range, size)?;
        }
        Ok(Box::new(ChunkReader::new(rx, self.config().timeout)))
    }

    /// Streams `body` into a new work file; returns its path and size once closed.
    async fn upload(
        &self,
        key: &ObjectKey,
        paths: &Paths,
        temp: &str,
        body: PutBody<'_>,
        expected: Option<u64>,
    ) -> Result<u64, TargetError> {
        let client = self.conn.session().await?;
        let (tx, rx) = mpsc::channel(DEPTH);
        let (folders, temp_owned) = (paths.folders.clone(), temp.to_owned());
        let writer =
            tokio::task::spawn_blocking(move || write_work_file(client, folders, temp_owned, rx));
        let timeout = self.config().timeout;
        let location = self.conn.location.clone();
        let fed: Result<Fed, TargetError> = async {
            let mut total = 0u64;
            loop {
                let chunk = read_chunk(body)
                    .await
                    .map_err(|e| TargetError::from_io(&location, Some(key), e))?;
                let last = chunk.is_empty();
                if last {
                    check_length(&location, key, total, expected)?;
                } else {
                    total += chunk.len() as u64;
                    if expected.is_some_and(|n| total > n) {
                        check_length(&location, key, total, expected)?;
                    }
                }
                let piece = if last { Piece::End } else { Piece::Data(chunk) };
                match tokio::time::timeout(timeout, tx.send(piece)).await {
                    Ok(Ok(())) if last => return Ok(Fed::All(total)),
                    Ok(Ok(())) => {}
                    // The writer stopped: its result says why.
                    Ok(Err(_)) => return Ok(Fed::WriterGone),
                    Err(_) => return Ok(Fed::Stalled),
                }
            }
        }
        .await;
        // Without `End`, the writer removes the work file itself.
        drop(tx);
        let fed = fed?;
        let stalled = || {
            self.conn.error(
                TargetErrorKind::Timeout,
                Some(key),
                format!(
                    "writing: {} did not take the data within {timeout:?}",
                    self.config().share_unc()
                ),
            )
        };
        if matches!(fed, Fed::Stalled) {
            self.conn.reset().await;
            return Err(stalled());
        }
        match tokio::time::timeout(timeout, writer).await {
            Ok(Ok(Ok(written))) if matches!(fed, Fed::All(total) if total == written) => {
                Ok(written)
            }
            Ok(Ok(Ok(_))) => Err(self.conn.error(
                TargetErrorKind::Io,
                Some(key),
                "writing: the writer stopped early",
            )),
            Ok(Ok(Err(e))) => Err(self.conn.fail(Some(key), "writing", e).await),
            Ok(Err(join)) => Err(self
                .conn
                .error(TargetErrorKind::Io, Some(key), join.to_string())),
            Err(_) => {
                self.conn.reset().await;
                Err(stalled())
            }
        }
    }

    /// Checks the work file's size on the server, marks it read-only and renames it into
    /// place; removes it if any step fails.
    async fn publish(
        &self,
        key: &ObjectKey,
        paths: Paths,
        temp: String,
        size: u64,
        mode: PutMode,
    ) -> Result<(), TargetError> {
        let cleanup_temp = temp.clone();
        let result = self
            .conn
            .call(Some(key), "publishing", move |client| {
                let outcome = (|| {
                    let st = client.stat(temp.as_str()).map_err(io_error)?;
                    if st.size != size {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("the server holds {} bytes of the {size} written", st.size),
                        ));
                    }
                    set_mode(client, &temp, READ_ONLY);
                    match mode {
                        PutMode::Create => client
                            .rename(temp.as_str(), paths.object.as_str())
                            .map_err(io_error),
                        PutMode::Overwrite => {
                            let moved = client.rename(temp.as_str(), paths.next.as_str());
                            if moved.is_err() {
                                // A read-only `next` left by an interrupted overwrite.
                                set_mode(client, &paths.next, WRITABLE);
                                client
                                    .rename(temp.as_str(), paths.next.as_str())
                                    .map_err(io_error)?;
                            }
                            set_mode(client, &paths.object, WRITABLE);
                            match client
                                .rename(paths.next.as_str(), paths.object.as_str())
                                .map_err(io_error)
                            {
                                // Another overwrite moved it into place first: ours was
                                // replaced by theirs, as if it had landed just before.
                                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                                other => other,
                            }
                        }
                    }
                })();
                if outcome.is_err() {
                    set_mode(client, &temp, WRITABLE);
                    let _ = client.unlink(temp.as_str());
                }
                outcome
            })
            .await;
        match result {
            Err(e) if e.kind == TargetErrorKind::AlreadyExists => Err(self.conn.error(
                TargetErrorKind::AlreadyExists,
                Some(key),
                "already exists; it is never replaced by a create-only put",
            )),
            Err(e) => {
                if e.kind == TargetErrorKind::Timeout {
                    self.spawn_remove(cleanup_temp);
                }
                Err(e)
            }
            ok => ok,
        }
    }

    /// Removes a work file in the background (after a timeout, the server may answer later).
    fn spawn_remove(&self, path: String) {
        let conn = self.conn.clone();
        tokio::spawn(async move {
            let _ = conn
                .call(None, "removing a work file", move |client| {
                    client.unlink(path.as_str()).map_err(io_error)
                })
                .await;
        });
    }

    async fn exists(&self, key: &ObjectKey) -> Result<bool, TargetError> {
        let (paths, _) = self.paths(key);
        self.conn
            .call(Some(key), "checking", move |client| {
                stat_either(client, &paths).map(|found| found.is_some())
            })
            .await
    }
}

fn to_meta(key: ObjectKey, size: u64, modified: SystemTime) -> ObjectMeta {
    ObjectMeta {
        modified: Some(modified),
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

/// Lists `dir` (decoded segments from the share root) and, recursively, its folders that
/// can hold keys starting with `prefix`. `rel` is the key prefix of `dir`.
fn walk(
    client: &SmbClient,
    dir: &mut Vec<String>,
    rel: &str,
    prefix: &str,
    out: &mut Vec<ObjectMeta>,
    pending: &mut Vec<ObjectMeta>,
) -> io::Result<()> {
    let path = share_path(dir.iter().map(String::as_str));
    let entries = match client.list_dirplus(path.as_str()) {
        Ok(entries) => entries,
        // pavao drops the errno of a failed opendir: ask again with stat.
        Err(_) => match client.stat(path.as_str()).map_err(io_error) {
            Ok(st) if st.mode.is_dir() => {
                return Err(io::Error::other(format!("cannot list the folder {path}")));
            }
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        },
    };
    for entry in entries {
        let name = entry.name().to_owned();
        let key = format!("{rel}{name}");
        match entry.get_type() {
            SmbDirentType::Dir => {
                let folder = format!("{key}/");
                if folder.starts_with(prefix) || prefix.starts_with(&folder) {
                    dir.push(name);
                    walk(client, dir, &folder, prefix, out, pending)?;
                    dir.pop();
                }
            }
            SmbDirentType::File => {
                if name.ends_with(TEMP_SUFFIX) {
                    continue;
                }
                let (key, list) = match name
                    .strip_prefix('.')
                    .and_then(|n| n.strip_suffix(NEXT_SUFFIX))
                {
                    Some(real) => (format!("{rel}{real}"), &mut *pending),
                    None => (key, &mut *out),
                };
                if key.starts_with(prefix)
                    && let Ok(key) = ObjectKey::new(key)
                {
                    list.push(to_meta(key, entry.size, entry.mtime));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[async_trait]
impl Target for SmbTarget {
    fn location(&self) -> String {
        self.conn.location.clone()
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
        if options.mode == PutMode::Create && self.exists(key).await? {
            return Err(self.conn.error(
                TargetErrorKind::AlreadyExists,
                Some(key),
                "already exists; it is never replaced by a create-only put",
            ));
        }
        let (paths, temp) = self.paths(key);
        let size = self
            .upload(key, &paths, &temp, body, options.length)
            .await?;
        self.publish(key, paths, temp, size, options.mode).await?;
        Ok(to_meta(key.clone(), size, SystemTime::now()))
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
        let (paths, _) = self.paths(key);
        let found = self
            .conn
            .call(Some(key), "reading the size", move |client| {
                stat_either(client, &paths)
            })
            .await?;
        match found {
            Some((_, st)) => Ok(to_meta(key.clone(), st.size, st.modified)),
            None => Err(self
                .conn
                .error(TargetErrorKind::NotFound, Some(key), "not found")),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, TargetError> {
        if prefix_escapes(prefix) {
            return Ok(Vec::new());
        }
        let mut dir = self.config().folder.clone();
        let mut rel = String::new();
        if let Some((folder, _)) = prefix.rsplit_once('/') {
            for segment in folder.split('/') {
                dir.push(segment.to_owned());
                rel.push_str(segment);
                rel.push('/');
            }
        }
        let prefix = prefix.to_owned();
        self.conn
            .call(None, "listing", move |client| {
                let (mut out, mut pending) = (Vec::new(), Vec::new());
                walk(client, &mut dir, &rel, &prefix, &mut out, &mut pending)?;
                out.sort_by(|a, b| a.key.cmp(&b.key));
                for meta in pending {
                    if out.binary_search_by(|m| m.key.cmp(&meta.key)).is_err() {
                        out.push(meta);
                    }
                }
                out.sort_by(|a, b| a.key.cmp(&b.key));
                Ok(out)
            })
            .await
    }

    /// Removes the object (and an interrupted overwrite's `next` file), then each folder
    /// above it that is left empty, up to the target's folder.
    async fn delete(&self, key: &ObjectKey) -> Result<(), TargetError> {
        let (paths, _) = self.paths(key);
        let root_depth = self.config().folder.len();
        let found = self
            .conn
            .call(Some(key), "deleting", move |client| {
                let Some((path, _)) = stat_either(client, &paths)? else {
                    return Ok(false);
                };
                set_mode(client, &path, WRITABLE);
                client.unlink(path.as_str()).map_err(io_error)?;
                if path != paths.next {
                    set_mode(client, &paths.next, WRITABLE);
                    let _ = client.unlink(paths.next.as_str());
                }
                for folder in paths.folders.iter().skip(root_depth).rev() {
                    if client.rmdir(folder.as_str()).is_err() {
                        break;
                    }
                }
                Ok(true)
            })
            .await?;
        if found {
            Ok(())
        } else {
            Err(self
                .conn
                .error(TargetErrorKind::NotFound, Some(key), "not found"))
        }
    }

    /// Connects (proving the logon and the share), writes and deletes a probe object, and
    /// reports free space.
    async fn readiness(&self) -> Result<Readiness, TargetError> {
        probe_write(self).await?;
        let root = self.root_path();
        let free_bytes = self
            .conn
            .call(None, "reading free space", move |client| {
                Ok(client
                    .statvfs(root.as_str())
                    .ok()
                    .map(|s| s.bavail.saturating_mul(s.frsize.max(s.bsize))))
            })
            .await?;
        Ok(Readiness {
            writable: true,
            free_bytes,
            detail: Some(format!(
                "SMB share {}, encryption {}",
                self.config().share_unc(),
                self.config().encryption
            )),
        })
    }
}
