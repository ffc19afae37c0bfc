//! The pure-Rust client: the `smb2` crate (async, pipelined reads and writes, SMB 2.0.2 to
//! 3.1.1, NTLM, signing). One session and one tree connection per target, opened on first use;
//! metadata calls take turns on it, while uploads and downloads own a clone of the
//! connection and run beside them.
//!
//! What this module relies on, each checked by `tests/defects.rs` against Samba:
//! - a rename without `replace_if_exists` is refused by the server when the name exists, and
//!   one with it swaps the file in one step: create-only and overwrite are server-side;
//! - credits granted in interim (`STATUS_PENDING`) answers are counted, so large pipelined
//!   writes do not stall; listings do not lose wakeups on a multi-thread runtime;
//! - every request is bounded by `response_timeout` (set to the target's `timeout_secs`);
//! - a download closes its handle before it reports the end, and a ranged read closes its
//!   handle before its reader ends, so a delete right after a read is never refused;
//! - writers flush (the server's fsync) before they close: a published object is on the
//!   server's disk.
//!
//! smb2 keeps the password in its client for reconnecting (a plain `String` there); this
//! module turns its own reconnects off and drops the client with the session.

use std::io;
use std::sync::{Arc, Mutex as StdMutex};

use async_trait::async_trait;
use smb2::types::SessionId;
use smb2::{
    ClientConfig, ErrorKind as Smb2Kind, FileAttributes, FileDownload, FileReader, FileTimes,
    FileWriter, RenameOptions, SmbClient, Tree,
};
use sstore_target_api::{ObjectReader, TargetError, TargetErrorKind};
use tokio::sync::{Mutex, MutexGuard, mpsc};

use super::{Entry, Share, Stat, Upload};
use crate::config::{ClientKind, SmbConfig};
use crate::probe;
use crate::security::{self, Evidence, LIBSMBCLIENT_BUILD, SessionSecurity};
use crate::stream::{ChunkReader, DEPTH, READ_CHUNK};

/// A logged-on session with its share connected.
struct Session {
    client: SmbClient,
    tree: Tree,
    security: SessionSecurity,
}

/// One share through smb2.
pub(crate) struct Smb2Share {
    config: Arc<SmbConfig>,
    session: Mutex<Option<Session>>,
    /// The session given up on last, named to the server when logging on again so it closes
    /// whatever that session still had open.
    previous: StdMutex<Option<SessionId>>,
}

/// smb2's error as an `io::Error` of the matching kind, its text kept.
fn io_error(e: smb2::Error) -> io::Error {
    use io::ErrorKind as K;
    let kind = match e.kind() {
        Smb2Kind::NotFound => K::NotFound,
        Smb2Kind::AlreadyExists => K::AlreadyExists,
        Smb2Kind::AccessDenied => K::PermissionDenied,
        Smb2Kind::DiskFull => K::StorageFull,
        Smb2Kind::TimedOut => K::TimedOut,
        Smb2Kind::ConnectionLost | Smb2Kind::SessionExpired => K::ConnectionReset,
        Smb2Kind::IsADirectory => K::IsADirectory,
        Smb2Kind::NotADirectory => K::NotADirectory,
        Smb2Kind::SharingViolation => K::ResourceBusy,
        Smb2Kind::InvalidName => K::InvalidFilename,
        Smb2Kind::InvalidData | Smb2Kind::SignatureInvalid => K::InvalidData,
        _ => K::Other,
    };
    io::Error::new(kind, e)
}

/// A failed logon carried through an `io::Error` (the target unwraps it).
fn logon_failed(e: TargetError) -> io::Error {
    io::Error::other(e)
}

impl Smb2Share {
    pub fn new(config: Arc<SmbConfig>) -> Self {
        Self {
            config,
            session: Mutex::new(None),
            previous: StdMutex::new(None),
        }
    }

    fn error(&self, kind: TargetErrorKind, message: String) -> TargetError {
        TargetError::new(kind, &self.config.location(), None, message)
    }

    /// The session, logging on first when there is none.
    async fn session(&self) -> Result<MutexGuard<'_, Option<Session>>, TargetError> {
        let mut slot = self.session.lock().await;
        if slot.is_none() {
            *slot = Some(self.log_on().await?);
        }
        Ok(slot)
    }

    /// Runs `op` on the session (logging on first when needed).
    async fn with<T>(
        &self,
        op: impl AsyncFnOnce(&mut SmbClient, &mut Tree) -> Result<T, smb2::Error>,
    ) -> io::Result<T> {
        let mut slot = self.session().await.map_err(logon_failed)?;
        let Some(session) = slot.as_mut() else {
            return Err(io::Error::other("no SMB session"));
        };
        op(&mut session.client, &mut session.tree)
            .await
            .map_err(io_error)
    }

    async fn log_on(&self) -> Result<Session, TargetError> {
        let c = &self.config;
        let host = if c.server.contains(':') && !c.server.starts_with('[') {
            format!("[{}]", c.server)
        } else {
            c.server.clone()
        };
        let previous = self
            .previous
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let options = ClientConfig {
            addr: format!("{host}:{}", c.port),
            timeout: c.timeout,
            response_timeout: Some(c.timeout),
            username: c.user.clone(),
            password: c.password.as_str().to_owned(),
            domain: c.domain.clone(),
            auto_reconnect: false,
            // Backups are compressed and encrypted already: LZ4 would only cost time.
            compression: false,
            previous_session_id: previous,
            ..ClientConfig::default()
        };
        let share = c.share_unc();
        let mut client = match SmbClient::connect(options).await {
            Ok(client) => client,
            Err(e) => return Err(self.logon_error(e, "logging on").await),
        };
        let tree = match client.connect_share(&c.share).await {
            Ok(tree) => tree,
            Err(e) if e.kind() == Smb2Kind::NotFound => {
                return Err(self
                    .error(
                        TargetErrorKind::InvalidConfig,
                        format!(
                            "the server {} has no share named '{}' ({share})",
                            c.server, c.share
                        ),
                    )
                    .with_source(e));
            }
            Err(e) => return Err(self.logon_error(e, "connecting to the share").await),
        };
        let diagnostics = client.diagnostics();
        let primary = &diagnostics.primary;
        let algorithm = if primary.encryption.active {
            primary.encryption.cipher.map(cipher_name)
        } else {
            primary.signing.algorithm.map(signing_name)
        };
        let security = SessionSecurity {
            dialect: primary
                .negotiated
                .as_ref()
                .map_or_else(|| "SMB".to_owned(), |n| n.dialect.to_string()),
            signed: primary.signing.active,
            encrypted: primary.encryption.active,
            algorithm,
            client: ClientKind::Smb2,
            evidence: Evidence::Session,
        };
        security::check(c, &security)?;
        Ok(Session {
            client,
            tree,
            security,
        })
    }

    /// A refused or failed logon as the error a person can act on. A refusal that is not a
    /// wrong password, from a server that offers encryption, is most likely its demand for
    /// encryption, which smb2 cannot meet: the server's NEGOTIATE answer is read to say so.
    async fn logon_error(&self, e: smb2::Error, doing: &str) -> TargetError {
        let c = &self.config;
        let share = c.share_unc();
        let error = match e.kind() {
            Smb2Kind::AuthRequired | Smb2Kind::GuestSessionRefused => self.error(
                TargetErrorKind::Unauthenticated,
                format!(
                    "the server {} refused user {} (domain {}) access to {share}: wrong password, \
                     unknown user, or a user the share does not admit",
                    c.server, c.user, c.domain
                ),
            ),
            Smb2Kind::AccessDenied => {
                let (server, port, timeout) = (c.server.clone(), c.port, c.timeout);
                let offered = tokio::task::spawn_blocking(move || {
                    probe::negotiate(&server, port, timeout).map(|n| n.encryption)
                })
                .await;
                if matches!(offered, Ok(Ok(true))) {
                    self.error(
                        TargetErrorKind::Unsupported,
                        format!(
                            "{doing}: {share} refused the session, and the server offers SMB3 \
                             encryption: it requires encrypted sessions, which the pure-Rust \
                             client (smb2) cannot negotiate. Build sstore with the libsmbclient \
                             feature ({LIBSMBCLIENT_BUILD}); nothing was sent"
                        ),
                    )
                } else {
                    self.error(
                        TargetErrorKind::Unauthenticated,
                        format!(
                            "{doing}: the server {} refused user {} access to {share}: a user \
                             the share does not admit",
                            c.server, c.user
                        ),
                    )
                }
            }
            Smb2Kind::TimedOut => self.error(
                TargetErrorKind::Timeout,
                format!("{doing}: {share} did not answer within {:?}", c.timeout),
            ),
            _ => {
                let mut error =
                    TargetError::from_io(&c.location(), None, io::Error::from(io_error_kind(&e)));
                error.message = format!(
                    "{doing}: cannot reach {share} (port {}): {}",
                    c.port, error.message
                );
                error
            }
        };
        error.with_source(e)
    }
}

/// A cipher as the SMB specification names it.
fn cipher_name(cipher: smb2::crypto::encryption::Cipher) -> String {
    use smb2::crypto::encryption::Cipher;
    match cipher {
        Cipher::Aes128Ccm => "AES-128-CCM".into(),
        Cipher::Aes128Gcm => "AES-128-GCM".into(),
        Cipher::Aes256Ccm => "AES-256-CCM".into(),
        Cipher::Aes256Gcm => "AES-256-GCM".into(),
        #[allow(unreachable_patterns)]
        other => format!("{other:?}"),
    }
}

/// A signing algorithm as the SMB specification names it.
fn signing_name(algorithm: smb2::crypto::signing::SigningAlgorithm) -> String {
    use smb2::crypto::signing::SigningAlgorithm;
    match algorithm {
        SigningAlgorithm::HmacSha256 => "HMAC-SHA256".into(),
        SigningAlgorithm::AesCmac => "AES-CMAC".into(),
        SigningAlgorithm::AesGmac => "AES-GMAC".into(),
        #[allow(unreachable_patterns)]
        other => format!("{other:?}"),
    }
}

fn io_error_kind(e: &smb2::Error) -> io::ErrorKind {
    match e.kind() {
        Smb2Kind::ConnectionLost | Smb2Kind::Io => io::ErrorKind::ConnectionRefused,
        _ => io::ErrorKind::Other,
    }
}

/// A file being written through a pipelined smb2 writer.
struct Smb2Upload(FileWriter);

#[async_trait]
impl Upload for Smb2Upload {
    async fn write(&mut self, chunk: Vec<u8>) -> io::Result<()> {
        self.0.write_chunk(&chunk).await.map_err(io_error)
    }

    async fn finish(self: Box<Self>) -> io::Result<u64> {
        self.0.finish().await.map_err(io_error)
    }

    async fn abort(self: Box<Self>) {
        let _ = self.0.abort().await;
    }
}

/// Sends a whole file, then collects the CLOSE's answer (the `None` after the last chunk).
async fn pump_download(mut download: FileDownload<'static>, tx: mpsc::Sender<io::Result<Vec<u8>>>) {
    while let Some(chunk) = download.next_chunk().await {
        let chunk = chunk.map_err(io_error);
        let failed = chunk.is_err();
        if tx.send(chunk).await.is_err() || failed {
            return;
        }
    }
}

/// Sends `start..end` in positioned reads, then closes the handle before the reader ends.
async fn pump_range(
    reader: FileReader,
    start: u64,
    end: u64,
    tx: mpsc::Sender<io::Result<Vec<u8>>>,
) {
    let mut at = start;
    while at < end {
        let want = (end - at).min(READ_CHUNK as u64);
        match reader.read_at(at, want).await {
            Ok(bytes) if bytes.is_empty() => {
                let _ = tx
                    .send(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file ended before its size (it changed while being read)",
                    )))
                    .await;
                return;
            }
            Ok(bytes) => {
                at += bytes.len() as u64;
                if tx.send(Ok(bytes)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(io_error(e))).await;
                return;
            }
        }
    }
    if let Err(e) = reader.close().await {
        let _ = tx.send(Err(io_error(e))).await;
    }
}

#[async_trait]
impl Share for Smb2Share {
    async fn connect(&self) -> Result<SessionSecurity, TargetError> {
        let slot = self.session().await?;
        slot.as_ref()
            .map(|s| s.security.clone())
            .ok_or_else(|| self.error(TargetErrorKind::Io, "no SMB session".into()))
    }

    async fn reset(&self) {
        if let Some(session) = self.session.lock().await.take() {
            *self
                .previous
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) =
                Some(session.client.session_id());
        }
    }

    async fn stat(&self, path: &str) -> io::Result<Option<Stat>> {
        let found = self
            .with(async |client, tree| client.stat(tree, path).await)
            .await;
        match found {
            Ok(info) => Ok(Some(Stat {
                is_dir: info.is_directory,
                size: info.size,
                modified: info.modified.to_system_time(),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list(&self, dir: &str) -> io::Result<Option<Vec<Entry>>> {
        let listed = self
            .with(async |client, tree| client.list_directory(tree, dir).await)
            .await;
        match listed {
            Ok(entries) => Ok(Some(
                entries
                    .into_iter()
                    .filter(|e| e.name != "." && e.name != "..")
                    .map(|e| Entry {
                        stat: Stat {
                            is_dir: e.is_directory,
                            size: e.size,
                            modified: e.modified.to_system_time(),
                        },
                        name: e.name,
                    })
                    .collect(),
            )),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    async fn create(&self, path: &str) -> io::Result<Box<dyn Upload>> {
        let writer = self
            .with(async |client, tree| client.create_file_writer_exclusive(tree, path).await)
            .await?;
        Ok(Box::new(Smb2Upload(writer)))
    }

    async fn open(
        &self,
        path: &str,
        start: u64,
        end: Option<u64>,
    ) -> io::Result<(u64, ObjectReader)> {
        let (tx, rx) = mpsc::channel(DEPTH);
        let size = if start == 0 && end.is_none() {
            let download = self
                .with(async |client, tree| client.open_file_download(tree, path).await)
                .await?;
            let size = download.size();
            tokio::spawn(pump_download(download, tx));
            size
        } else {
            let reader = self
                .with(async |client, tree| client.open_file_reader(tree, path).await)
                .await?;
            let size = reader.size();
            let end = end.map_or(size, |end| end.min(size));
            tokio::spawn(pump_range(reader, start.min(end), end, tx));
            size
        };
        Ok((size, Box::new(ChunkReader::new(rx, self.config.timeout))))
    }

    async fn mkdir(&self, path: &str) -> io::Result<()> {
        self.with(async |client, tree| client.create_directory(tree, path).await)
            .await
    }

    async fn rmdir(&self, path: &str) -> io::Result<()> {
        self.with(async |client, tree| client.delete_directory(tree, path).await)
            .await
    }

    async fn remove(&self, path: &str) -> io::Result<()> {
        self.with(async |client, tree| client.delete_file(tree, path).await)
            .await
    }

    async fn set_read_only(&self, path: &str, read_only: bool) -> io::Result<()> {
        let attributes = FileAttributes::new(if read_only {
            FileAttributes::READONLY
        } else {
            0
        });
        let times = FileTimes::new().set_attributes(attributes);
        self.with(async |client, tree| client.set_times(tree, path, times).await)
            .await
    }

    async fn rename(&self, from: &str, to: &str, replace: bool) -> io::Result<()> {
        let options = RenameOptions::new().replace_if_exists(replace);
        self.with(async |client, tree| client.rename_with(tree, from, to, options).await)
            .await
    }

    async fn free_space(&self) -> io::Result<Option<u64>> {
        let info = self
            .with(async |client, tree| client.fs_info(tree).await)
            .await?;
        Ok(Some(info.free_bytes))
    }

    fn renames_exclusively(&self) -> bool {
        true
    }
}
