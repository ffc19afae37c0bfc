//! The SMB session: one libsmbclient context per target, opened on first use and opened anew
//! after any failure that may have left it broken; every native call made off the async
//! workers (`spawn_blocking`) and under a time limit.
//!
//! pavao serializes every libsmbclient call of the process behind one lock. Two consequences
//! are handled here:
//! - libsmbclient's own per-request timeout is set before the first connection (it is read
//!   only when connecting), so a stalled server releases the lock after at most about
//!   three of those timeouts; the async side gives up after [`SmbConfig::timeout`] anyway.
//! - a call still waiting for the lock when its caller gave up must not run late (a rename
//!   landing after its put reported a failure): single calls take [`GATE`] first and then
//!   check that their caller is still waiting.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use pavao::{SmbClient, SmbCredentials, SmbEncryptionLevel, SmbError, SmbOptions};
use sstore_target_api::{ObjectKey, TargetError, TargetErrorKind};

use crate::config::{Encryption, SmbConfig};
use crate::probe;

/// Taken by every single call before it checks whether its caller still waits for it.
static GATE: Mutex<()> = Mutex::new(());

fn gate() -> MutexGuard<'static, ()> {
    GATE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// libsmbclient's per-request timeout for an operation bound of `bound`: a stalled request is
/// retried up to about three times inside libsmbclient, so a quarter keeps the whole call
/// within the bound.
pub(crate) fn native_timeout(bound: Duration) -> Duration {
    (bound / 4).max(Duration::from_secs(1))
}

/// Turns a pavao error into an I/O error (with the errno libsmbclient set, where pavao kept it).
pub(crate) fn io_error(e: SmbError) -> io::Error {
    match e {
        SmbError::Io(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

/// `%XX`-encodes a path segment for a libsmbclient URL (which decodes `%XX` and treats `?` as
/// the start of options).
pub(crate) fn encode_segment(segment: &str) -> String {
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

/// The share-relative path (`/a/b`) of `segments`, encoded for libsmbclient.
pub(crate) fn share_path<'a>(segments: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for segment in segments {
        out.push('/');
        out.push_str(&encode_segment(segment));
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Whether a failure may have left the connection unusable (so it is opened anew), and so
/// whether trying again may help.
pub(crate) fn is_transient(e: &io::Error) -> bool {
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
    )
}

/// One target's connection to its share.
pub(crate) struct Connection {
    pub config: Arc<SmbConfig>,
    pub location: String,
    session: tokio::sync::Mutex<Option<Arc<SmbClient>>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// Drops a client on a blocking thread when this was its last user (freeing a context logs
/// off, which is network I/O under pavao's lock).
pub(crate) fn release(client: Arc<SmbClient>) {
    if let Some(client) = Arc::into_inner(client) {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(move || drop(client));
            }
            Err(_) => drop(client),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(client) = self.session.get_mut().take() {
            release(client);
        }
    }
}

impl Connection {
    pub fn new(config: SmbConfig) -> Self {
        let location = config.location();
        Self {
            config: Arc::new(config),
            location,
            session: tokio::sync::Mutex::new(None),
        }
    }

    pub fn error(
        &self,
        kind: TargetErrorKind,
        key: Option<&ObjectKey>,
        message: impl Into<String>,
    ) -> TargetError {
        TargetError::new(kind, &self.location, key, message)
    }

    /// Classifies a failed call: the share and server are named, and a transient failure
    /// drops the session so the next attempt connects again.
    pub async fn fail(&self, key: Option<&ObjectKey>, doing: &str, e: io::Error) -> TargetError {
        if is_transient(&e) {
            self.reset().await;
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
            _ => {
                let mut error =
                    TargetError::from_io(&self.location, key, io::Error::from(e.kind()));
                error.message = format!("{doing} on {share}: {}", error.message);
                error
            }
        };
        error.with_source(e)
    }

    /// Forgets the session; the next call connects again.
    pub async fn reset(&self) {
        if let Some(client) = self.session.lock().await.take() {
            release(client);
        }
    }

    /// The open session, connecting first when there is none.
    pub async fn session(&self) -> Result<Arc<SmbClient>, TargetError> {
        let mut slot = self.session.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let config = self.config.clone();
        let location = self.location.clone();
        let task = tokio::task::spawn_blocking(move || connect(&config, &location));
        let client = match tokio::time::timeout(self.config.timeout, task).await {
            Ok(Ok(result)) => Arc::new(result?),
            Ok(Err(join)) => {
                return Err(self.error(
                    TargetErrorKind::Io,
                    None,
                    format!("connecting to {}: {join}", self.config.share_unc()),
                ));
            }
            Err(_) => {
                return Err(self.error(
                    TargetErrorKind::Timeout,
                    None,
                    format!(
                        "connecting to {} took longer than {:?}",
                        self.config.share_unc(),
                        self.config.timeout
                    ),
                ));
            }
        };
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Runs `op` with the session on a blocking thread, within the target's time limit. A
    /// call that times out is abandoned: if it had not started yet it never runs.
    pub async fn call<T, F>(
        &self,
        key: Option<&ObjectKey>,
        doing: &str,
        op: F,
    ) -> Result<T, TargetError>
    where
        T: Send + 'static,
        F: FnOnce(&SmbClient) -> io::Result<T> + Send + 'static,
    {
        let client = self.session().await?;
        let abandoned = Arc::new(AtomicBool::new(false));
        let flag = abandoned.clone();
        let task = tokio::task::spawn_blocking(move || {
            let result = {
                let _gate = gate();
                if flag.load(Ordering::SeqCst) {
                    Err(io::Error::new(io::ErrorKind::TimedOut, "abandoned"))
                } else {
                    op(&client)
                }
            };
            release(client);
            result
        });
        match tokio::time::timeout(self.config.timeout, task).await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(e))) => Err(self.fail(key, doing, e).await),
            Ok(Err(join)) => Err(self.error(TargetErrorKind::Io, key, format!("{doing}: {join}"))),
            Err(_) => {
                abandoned.store(true, Ordering::SeqCst);
                self.reset().await;
                Err(self.error(
                    TargetErrorKind::Timeout,
                    key,
                    format!(
                        "{doing}: {} did not answer within {:?}",
                        self.config.share_unc(),
                        self.config.timeout
                    ),
                ))
            }
        }
    }
}

/// Opens a libsmbclient context for the share and proves the logon and the share by reading
/// the share's root. pavao reports a refused logon and a refused write alike ("Permission
/// denied"): a refusal here, before anything is written, is the logon's (or the share's
/// access list's); a refusal later is a write permission.
fn connect(config: &SmbConfig, location: &str) -> Result<SmbClient, TargetError> {
    let share = config.share_unc();
    let error = |kind, message: String| TargetError::new(kind, location, None, message);
    let mut level = match config.encryption {
        Encryption::Required => SmbEncryptionLevel::Require,
        Encryption::IfOffered => SmbEncryptionLevel::Request,
        Encryption::Off => SmbEncryptionLevel::None,
    };
    if config.encryption != Encryption::Off {
        match probe::negotiate(&config.server, config.port, native_timeout(config.timeout)) {
            Ok(n) if n.encryption => {}
            // Not offered: ask for none (libsmbclient would print a misleading "failing
            // connect" and go on unencrypted anyway).
            Ok(_) if config.encryption == Encryption::IfOffered => level = SmbEncryptionLevel::None,
            // The connection below reports an unreachable server.
            Err(_) if config.encryption == Encryption::IfOffered => {}
            Ok(_) => {
                return Err(error(
                    TargetErrorKind::Unsupported,
                    format!(
                        "the server {}:{} does not offer SMB3 encryption, and this target has \
                         encryption = \"required\"; nothing was sent (use encryption = \
                         \"if-offered\" to accept an unencrypted session)",
                        config.server, config.port
                    ),
                ));
            }
            Err(e) => {
                let mut err = TargetError::from_io(location, None, e);
                err.message = format!(
                    "cannot reach {}:{} to check its encryption: {}",
                    config.server, config.port, err.message
                );
                return Err(err);
            }
        }
    }
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
        Ok(_) => Ok(client),
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
                    let mut err = TargetError::from_io(location, None, io::Error::from(e.kind()));
                    err.message = format!(
                        "cannot connect to {share} (port {}): {}",
                        config.port, err.message
                    );
                    err
                }
            };
            release_now(client);
            Err(err.with_source(e))
        }
    }
}

/// Frees a client on this (blocking) thread.
fn release_now(client: SmbClient) {
    drop(client);
}
