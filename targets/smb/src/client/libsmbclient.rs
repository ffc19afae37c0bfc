//! The opt-in client: Samba's libsmbclient through `pavao` (feature `libsmbclient`). It can do
//! what smb2 cannot: SMB3 encryption, and the Kerberos setups libsmbclient reads from
//! `smb.conf`. The price is a C library (`libsmbclient-dev` and `pkg-config` to build,
//! `libsmbclient` to run) and pavao's defects, each made unreachable here and tested in
//! `tests/defects.rs`:
//! - **a blocking API behind one process-wide lock**: every call runs on `spawn_blocking`,
//!   never on the async workers; a call whose caller gave up (the target's time limit) before
//!   it got the lock does not run late ([`GATE`] and the abandon flag);
//! - **no bound on a stalled server**: libsmbclient's own timeout is set to a quarter of the
//!   target's before the first connection (it retries about three times), and the target
//!   bounds every call anyway;
//! - **a broken connection stays cached**: the target drops the session after any failure
//!   that is not a plain answer;
//! - **a wrong password and a read-only share are both "Permission denied"**: the logon is
//!   proved by reading the share's root before anything else;
//! - **`required` encryption is not enforced by libsmbclient 4.17** (it goes on unencrypted
//!   when the server offers none): the server's NEGOTIATE answer (`probe`) is read first, and
//!   it is also what says how the session is protected, since libsmbclient does not tell;
//! - **rename always replaces** (unlink, then rename): the target keeps create-only
//!   server-enforced with read-only published files ([`Share::renames_exclusively`] is false);
//! - **`%` and `?` are URL syntax to libsmbclient**: path segments are percent-encoded.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use pavao::{
    SmbClient, SmbCredentials, SmbDirentType, SmbEncryptionLevel, SmbError, SmbMode,
    SmbOpenOptions, SmbOptions,
};
use sstore_target_api::{ObjectReader, TargetError, TargetErrorKind};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::{Entry, Share, Stat, Upload};
use crate::config::{ClientKind, Encryption, SmbConfig};
use crate::probe;
use crate::security::{self, Evidence, SessionSecurity};
use crate::stream::{ChunkReader, DEPTH, READ_CHUNK};

/// Taken by every single call before it checks whether its caller still waits for it.
static GATE: StdMutex<()> = StdMutex::new(());

fn gate() -> MutexGuard<'static, ()> {
    GATE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// libsmbclient's per-request timeout for an operation bound of `bound`: a stalled request is
/// retried up to about three times inside libsmbclient, so a quarter keeps the whole call
/// within the bound.
fn native_timeout(bound: Duration) -> Duration {
    (bound / 4).max(Duration::from_secs(1))
}

/// A pavao error as an I/O error (with the errno libsmbclient set, where pavao kept it).
fn io_error(e: SmbError) -> io::Error {
    match e {
        SmbError::Io(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

/// `%XX`-encodes a path segment for a libsmbclient URL (which decodes `%XX` and treats `?` as
/// the start of options).
fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The encoded share path (`/a/b`) of a `/`-separated share-relative path.
fn native(path: &str) -> String {
    let mut out = String::new();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        out.push_str(&encode_segment(segment));
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Drops a client on a blocking thread when this was its last user (freeing a context logs
/// off, which is network I/O under pavao's lock).
fn release(client: Arc<SmbClient>) {
    if let Some(client) = Arc::into_inner(client) {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(move || drop(client));
            }
            Err(_) => drop(client),
        }
    }
}

/// Marks a blocking call abandoned when its caller stops waiting (the future is dropped).
struct AbandonOnDrop(Arc<AtomicBool>, bool);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        if !self.1 {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

struct Session {
    client: Arc<SmbClient>,
    security: SessionSecurity,
}

/// One share through libsmbclient.
pub(crate) struct LibsmbclientShare {
    config: Arc<SmbConfig>,
    session: Mutex<Option<Session>>,
}

impl Drop for LibsmbclientShare {
    fn drop(&mut self) {
        if let Some(session) = self.session.get_mut().take() {
            release(session.client);
        }
    }
}

impl LibsmbclientShare {
    pub fn new(config: Arc<SmbConfig>) -> Self {
        Self {
            config,
            session: Mutex::new(None),
        }
    }

    /// The session's client, logging on first when there is none.
    async fn client(&self) -> Result<Arc<SmbClient>, TargetError> {
        let mut slot = self.session.lock().await;
        if let Some(session) = slot.as_ref() {
            return Ok(session.client.clone());
        }
        let config = self.config.clone();
        let session = tokio::task::spawn_blocking(move || log_on(&config))
            .await
            .map_err(|join| {
                TargetError::new(
                    TargetErrorKind::Io,
                    &self.config.location(),
                    None,
                    format!("connecting to {}: {join}", self.config.share_unc()),
                )
            })??;
        let client = session.client.clone();
        *slot = Some(session);
        Ok(client)
    }

    /// Runs `op` with the session on a blocking thread. A call abandoned before it got the
    /// lock never runs.
    async fn call<T, F>(&self, op: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&SmbClient) -> io::Result<T> + Send + 'static,
    {
        let client = self.client().await.map_err(io::Error::other)?;
        let abandoned = Arc::new(AtomicBool::new(false));
        let mut guard = AbandonOnDrop(abandoned.clone(), false);
        let task = tokio::task::spawn_blocking(move || {
            let result = {
                let _gate = gate();
                if abandoned.load(Ordering::SeqCst) {
                    Err(io::Error::new(io::ErrorKind::TimedOut, "abandoned"))
                } else {
                    op(&client)
                }
            };
            release(client);
            result
        });
        let result = task.await.map_err(io::Error::other)?;
        guard.1 = true;
        result
    }
}

/// Opens a libsmbclient context for the share and proves the logon and the share by reading
/// the share's root. pavao reports a refused logon and a refused write alike ("Permission
/// denied"): a refusal here, before anything is written, is the logon's (or the share's
/// access list's); a refusal later is a write permission.
fn log_on(config: &SmbConfig) -> Result<Session, TargetError> {
    let share = config.share_unc();
    let location = config.location();
    let error = |kind, message: String| TargetError::new(kind, &location, None, message);
    let negotiated =
        match probe::negotiate(&config.server, config.port, native_timeout(config.timeout)) {
            Ok(n) => n,
            Err(e) => {
                let mut err = TargetError::from_io(&location, None, e);
                err.message = format!(
                    "cannot reach {share} (port {}) to negotiate: {}",
                    config.port, err.message
                );
                return Err(err);
            }
        };
    // libsmbclient asked for encryption a server does not offer prints a misleading "failing
    // connect" and goes on unencrypted: ask only when it is offered; `required` is then
    // refused by the check below.
    let level = match config.encryption {
        Encryption::Off => SmbEncryptionLevel::None,
        _ if !negotiated.encryption => SmbEncryptionLevel::None,
        Encryption::Required => SmbEncryptionLevel::Require,
        Encryption::IfOffered => SmbEncryptionLevel::Request,
    };
    let encrypted = level != SmbEncryptionLevel::None;
    let security = SessionSecurity {
        dialect: probe::dialect_name(negotiated.dialect),
        signed: encrypted || negotiated.signing_required,
        encrypted,
        algorithm: None,
        client: ClientKind::Libsmbclient,
        evidence: Evidence::Negotiate,
    };
    security::check(config, &security)?;

    let host = if config.server.contains(':') && !config.server.starts_with('[') {
        format!("[{}]", config.server)
    } else {
        config.server.clone()
    };
    let credentials = SmbCredentials::default()
        .server(format!("smb://{host}:{}", config.port))
        .share(format!("/{}", encode_segment(&config.share)))
        .username(&config.user)
        .password(config.password.as_str())
        .workgroup(&config.domain);
    let options = SmbOptions::default()
        .no_auto_anonymous_login(true)
        .one_share_per_server(true)
        .encryption_level(level);
    let client = {
        let _gate = gate();
        let client = SmbClient::new(credentials, options).map_err(|e| {
            error(
                TargetErrorKind::Io,
                format!("cannot start an SMB client: {}", io_error(e)),
            )
        })?;
        // Read only when connecting: set before the first call.
        client
            .set_timeout(native_timeout(config.timeout))
            .map_err(|e| error(TargetErrorKind::Io, io_error(e).to_string()))?;
        client
    };
    let probed = {
        let _gate = gate();
        client.stat("/").map_err(io_error)
    };
    match probed {
        Ok(_) => Ok(Session {
            client: Arc::new(client),
            security,
        }),
        Err(e) => {
            let err = match e.kind() {
                io::ErrorKind::PermissionDenied => error(
                    TargetErrorKind::Unauthenticated,
                    format!(
                        "the server {} refused user {} (domain {}) access to {share}: wrong \
                         password, unknown user, or a user the share does not admit",
                        config.server, config.user, config.domain
                    ),
                ),
                io::ErrorKind::NotFound => error(
                    TargetErrorKind::InvalidConfig,
                    format!(
                        "the server {} has no share named '{}' ({share})",
                        config.server, config.share
                    ),
                ),
                io::ErrorKind::TimedOut => error(
                    TargetErrorKind::Timeout,
                    format!("{share} did not answer within {:?}", config.timeout),
                ),
                _ => {
                    let mut err = TargetError::from_io(&location, None, io::Error::from(e.kind()));
                    err.message = format!(
                        "cannot connect to {share} (port {}): {}",
                        config.port, err.message
                    );
                    err
                }
            };
            drop(client);
            Err(err.with_source(e))
        }
    }
}

/// What a blocking writer is sent.
enum Piece {
    Data(Vec<u8>),
    End,
}

/// A file being written by a blocking thread, fed through a bounded channel.
struct LibUpload {
    tx: Option<mpsc::Sender<Piece>>,
    /// Taken by the first wait for the writer's result.
    writer: Option<tokio::task::JoinHandle<io::Result<u64>>>,
}

impl LibUpload {
    /// Stops feeding the writer and waits for its result (once; later calls say it ended).
    async fn writer_result(&mut self) -> io::Result<u64> {
        self.tx = None;
        match self.writer.take() {
            Some(writer) => writer.await.map_err(io::Error::other)?,
            None => Err(io::Error::other("the SMB writer has already ended")),
        }
    }

    /// The writer stopped taking data: its own result says why.
    async fn stopped_early(&mut self) -> io::Error {
        match self.writer_result().await {
            Err(e) => e,
            Ok(_) => io::Error::other("the SMB writer stopped early"),
        }
    }
}

#[async_trait]
impl Upload for LibUpload {
    async fn write(&mut self, chunk: Vec<u8>) -> io::Result<()> {
        let sent = match &self.tx {
            Some(tx) => tx.send(Piece::Data(chunk)).await.is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            Err(self.stopped_early().await)
        }
    }

    async fn finish(mut self: Box<Self>) -> io::Result<u64> {
        if let Some(tx) = self.tx.take()
            && tx.send(Piece::End).await.is_err()
        {
            return Err(self.stopped_early().await);
        }
        self.writer_result().await
    }

    async fn abort(mut self: Box<Self>) {
        let _ = self.writer_result().await;
    }
}

/// The blocking half of an upload: creates `path` exclusively, reports that, writes what
/// arrives until `End`, and closes it. The client is released after the file is closed.
fn write_file(
    client: Arc<SmbClient>,
    path: String,
    opened: oneshot::Sender<io::Result<()>>,
    rx: mpsc::Receiver<Piece>,
) -> io::Result<u64> {
    let outcome = write_with(&client, &path, opened, rx);
    release(client);
    outcome
}

fn write_with(
    client: &SmbClient,
    path: &str,
    opened: oneshot::Sender<io::Result<()>>,
    mut rx: mpsc::Receiver<Piece>,
) -> io::Result<u64> {
    let options = SmbOpenOptions::default()
        .create(true)
        .exclusive(true)
        .write(true);
    let mut file = match client.open_with(path, options).map_err(io_error) {
        Ok(file) => {
            let _ = opened.send(Ok(()));
            file
        }
        Err(e) => {
            let kind = e.kind();
            let _ = opened.send(Err(e));
            return Err(io::Error::from(kind));
        }
    };
    let mut written = 0u64;
    loop {
        match rx.blocking_recv() {
            Some(Piece::Data(chunk)) => {
                file.write_all(&chunk)?;
                written += chunk.len() as u64;
            }
            Some(Piece::End) => return Ok(written),
            None => {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "put abandoned"));
            }
        }
    }
}

/// The blocking half of a read: opens `path`, reports its size, then sends its bytes from
/// `start` (up to `end`) in chunks until the receiver goes away. The file is closed before
/// the channel is, and the client released after that.
fn read_file(
    client: Arc<SmbClient>,
    path: String,
    start: u64,
    end: Option<u64>,
    opened: oneshot::Sender<io::Result<u64>>,
    tx: mpsc::Sender<io::Result<Vec<u8>>>,
) {
    if let Some(failure) = read_with(&client, &path, start, end, opened, &tx) {
        let _ = tx.blocking_send(Err(failure));
    }
    drop(tx);
    release(client);
}

/// Sends the file's bytes; returns the error to send once the file is closed, if any.
fn read_with(
    client: &SmbClient,
    path: &str,
    start: u64,
    end: Option<u64>,
    opened: oneshot::Sender<io::Result<u64>>,
    tx: &mpsc::Sender<io::Result<Vec<u8>>>,
) -> Option<io::Error> {
    let result = (|| {
        let size = client.stat(path).map_err(io_error)?.size;
        let mut file = client
            .open_with(path, SmbOpenOptions::default().read(true))
            .map_err(io_error)?;
        if start > 0 && start <= size {
            file.seek(SeekFrom::Start(start))?;
        }
        Ok((size, file))
    })();
    let (size, mut file) = match result {
        Ok(found) => found,
        Err(e) => {
            let _ = opened.send(Err(e));
            return None;
        }
    };
    // A start past the end reads nothing; the target refuses that range by the size.
    if opened.send(Ok(size)).is_err() || start > size {
        return None;
    }
    let mut remaining = end.map(|end| end.min(size).saturating_sub(start));
    loop {
        let want = remaining.map_or(READ_CHUNK, |r| r.min(READ_CHUNK as u64) as usize);
        if want == 0 {
            return None;
        }
        let mut buf = vec![0u8; want];
        let mut filled = 0;
        while filled < want {
            match file.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Some(e),
            }
        }
        buf.truncate(filled);
        if let Some(r) = remaining.as_mut() {
            *r -= filled as u64;
            if filled < want {
                return Some(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file ended before its size (it changed while being read)",
                ));
            }
        }
        if filled == 0 {
            return None;
        }
        if tx.blocking_send(Ok(buf)).is_err() {
            return None;
        }
    }
}

#[async_trait]
impl Share for LibsmbclientShare {
    async fn connect(&self) -> Result<SessionSecurity, TargetError> {
        self.client().await?;
        let slot = self.session.lock().await;
        slot.as_ref().map(|s| s.security.clone()).ok_or_else(|| {
            TargetError::new(
                TargetErrorKind::Io,
                &self.config.location(),
                None,
                "no SMB session",
            )
        })
    }

    async fn reset(&self) {
        if let Some(session) = self.session.lock().await.take() {
            release(session.client);
        }
    }

    async fn stat(&self, path: &str) -> io::Result<Option<Stat>> {
        let path = native(path);
        self.call(
            move |client| match client.stat(path.as_str()).map_err(io_error) {
                Ok(st) => Ok(Some(Stat {
                    is_dir: st.mode.is_dir(),
                    size: st.size,
                    modified: Some(st.modified),
                })),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            },
        )
        .await
    }

    async fn list(&self, dir: &str) -> io::Result<Option<Vec<Entry>>> {
        let path = native(dir);
        self.call(move |client| {
            let entries = match client.list_dirplus(path.as_str()) {
                Ok(entries) => entries,
                // pavao drops the errno of a failed opendir: ask again with stat.
                Err(_) => {
                    return match client.stat(path.as_str()).map_err(io_error) {
                        Ok(st) if st.mode.is_dir() => {
                            Err(io::Error::other(format!("cannot list the folder {path}")))
                        }
                        Ok(_) => Ok(None),
                        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                        Err(e) => Err(e),
                    };
                }
            };
            Ok(Some(
                entries
                    .into_iter()
                    .filter(|e| e.name() != "." && e.name() != "..")
                    .filter_map(|e| {
                        let is_dir = match e.get_type() {
                            SmbDirentType::Dir => true,
                            SmbDirentType::File => false,
                            _ => return None,
                        };
                        Some(Entry {
                            name: e.name().to_owned(),
                            stat: Stat {
                                is_dir,
                                size: e.size,
                                modified: Some(e.mtime),
                            },
                        })
                    })
                    .collect(),
            ))
        })
        .await
    }

    async fn create(&self, path: &str) -> io::Result<Box<dyn Upload>> {
        let client = self.client().await.map_err(io::Error::other)?;
        let (tx, rx) = mpsc::channel(DEPTH);
        let (opened_tx, opened_rx) = oneshot::channel();
        let path = native(path);
        let writer = tokio::task::spawn_blocking(move || write_file(client, path, opened_tx, rx));
        match opened_rx.await {
            Ok(Ok(())) => Ok(Box::new(LibUpload {
                tx: Some(tx),
                writer: Some(writer),
            })),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::other("the SMB writer stopped")),
        }
    }

    async fn open(
        &self,
        path: &str,
        start: u64,
        end: Option<u64>,
    ) -> io::Result<(u64, ObjectReader)> {
        let client = self.client().await.map_err(io::Error::other)?;
        let (tx, rx) = mpsc::channel(DEPTH);
        let (opened_tx, opened_rx) = oneshot::channel();
        let path = native(path);
        tokio::task::spawn_blocking(move || read_file(client, path, start, end, opened_tx, tx));
        let size = match opened_rx.await {
            Ok(result) => result?,
            Err(_) => return Err(io::Error::other("the SMB reader stopped")),
        };
        Ok((size, Box::new(ChunkReader::new(rx, self.config.timeout))))
    }

    async fn mkdir(&self, path: &str) -> io::Result<()> {
        let path = native(path);
        self.call(move |client| {
            client
                .mkdir(path.as_str(), SmbMode::from(0o755))
                .map_err(io_error)
        })
        .await
    }

    async fn rmdir(&self, path: &str) -> io::Result<()> {
        let path = native(path);
        self.call(move |client| client.rmdir(path.as_str()).map_err(io_error))
            .await
    }

    async fn remove(&self, path: &str) -> io::Result<()> {
        let path = native(path);
        self.call(move |client| client.unlink(path.as_str()).map_err(io_error))
            .await
    }

    async fn set_read_only(&self, path: &str, read_only: bool) -> io::Result<()> {
        let path = native(path);
        let mode = if read_only { 0o444 } else { 0o644 };
        self.call(move |client| {
            client
                .chmod(path.as_str(), SmbMode::from(mode))
                .map_err(io_error)
        })
        .await
    }

    async fn rename(&self, from: &str, to: &str, _replace: bool) -> io::Result<()> {
        let (from, to) = (native(from), native(to));
        self.call(move |client| client.rename(from.as_str(), to.as_str()).map_err(io_error))
            .await
    }

    async fn free_space(&self) -> io::Result<Option<u64>> {
        let root = native(&self.config.folder.join("/"));
        self.call(move |client| {
            Ok(client
                .statvfs(root.as_str())
                .ok()
                .map(|s| s.bavail.saturating_mul(s.frsize.max(s.bsize))))
        })
        .await
    }

    fn renames_exclusively(&self) -> bool {
        false
    }
}
