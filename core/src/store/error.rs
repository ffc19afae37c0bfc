//! Errors of the Secure Store, each naming the store file, application, principal or field.

use std::path::PathBuf;

use crate::kdf::KdfError;
use crate::secret::PolicyViolation;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "no Secure Store at {path}: create one with `sstore store init`, or point --store / SSTORE_STORE at an existing store"
    )]
    NotFound { path: PathBuf },
    #[error(
        "a file already exists at {path}: choose another --store path, or remove the file first"
    )]
    AlreadyExists { path: PathBuf },
    #[error("{} is not an sstore Secure Store: {reason}", path.as_ref().map_or("the file".into(), |p| p.display().to_string()))]
    NotAStore {
        path: Option<PathBuf>,
        reason: String,
    },
    #[error("the passphrase does not open the Master Key of this store")]
    WrongPassphrase,
    #[error(transparent)]
    Policy(#[from] PolicyViolation),
    #[error(transparent)]
    Kdf(#[from] KdfError),
    #[error("no target application named '{name}' (see `sstore app list`)")]
    AppNotFound { name: String },
    #[error("a target application named '{name}' already exists")]
    AppExists { name: String },
    #[error("target application '{name}': {reason}")]
    InvalidApp { name: String, reason: String },
    #[error("target application '{app}': {reason}")]
    InvalidCredentials { app: String, reason: String },
    #[error("no credential set for principal '{principal}' in target application '{app}'")]
    CredentialsNotFound { app: String, principal: String },
    #[error("target application '{app}' has no field '{field}' (see `sstore app show {app}`)")]
    UnknownField { app: String, field: String },
    #[error("target application '{app}' needs a value for every field; missing: {}", fields.join(", "))]
    MissingFields { app: String, fields: Vec<String> },
    #[error(
        "group application '{app}' already has its credential set, for group '{principal}'; clear it first with `sstore cred clear`"
    )]
    GroupAlreadyMapped { app: String, principal: String },
    #[error(
        "the value of field '{field}' for principal '{principal}' in '{app}' failed authentication: the store was altered outside sstore; restore it from a backup"
    )]
    Tampered {
        app: String,
        principal: String,
        field: String,
    },
    #[error("{}SQLite: {source}{}", path.as_ref().map(|p| format!("{}: ", p.display())).unwrap_or_default(), sqlite_hint(source))]
    Sqlite {
        path: Option<PathBuf>,
        source: rusqlite::Error,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store location {location}: {reason}")]
    InvalidLocation { location: String, reason: String },
    #[error(transparent)]
    SqlServer(#[from] SqlServerError),
}

/// A snapshot written into a stream failed: reading the store, or writing where it goes (the
/// caller knows which file that is).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the snapshot: {0}")]
    Write(#[source] std::io::Error),
}

/// What went wrong with a store on SQL Server. Each names the server (`HOST:PORT`) and, where
/// known, the database; none carries the password.
#[derive(Debug, thiserror::Error)]
pub enum SqlServerError {
    #[error("SQL Server {server}: no password for user '{user}': {reason}")]
    PasswordMissing {
        server: String,
        user: String,
        reason: String,
    },
    #[error(
        "SQL Server {server} is unreachable: {reason}; check the host and port, that the server runs and accepts TCP connections, and the firewall"
    )]
    Unreachable { server: String, reason: String },
    #[error("SQL Server {server}: TLS refused: {reason}; {hint}")]
    TlsRefused {
        server: String,
        reason: String,
        hint: &'static str,
    },
    #[error(
        "SQL Server {server}: login failed for user '{user}' (database {database}): check the user and its password ({password_from})"
    )]
    LoginFailed {
        server: String,
        database: String,
        user: String,
        password_from: String,
    },
    #[error("SQL Server {server}: integrated Windows authentication {reason}")]
    IntegratedAuth { server: String, reason: String },
    #[error(
        "SQL Server {server}: database '{database}' does not exist or this login may not open it: create the store with `sstore store init --store mssql://USER@{server}/{database}` (creating the database needs the dbcreator role), or ask its owner to map the login to a user in it"
    )]
    DatabaseMissing { server: String, database: String },
    #[error(
        "SQL Server {server}: database '{database}' holds no sstore store (no table {table}): create one with `sstore store init`"
    )]
    NoStore {
        server: String,
        database: String,
        table: String,
    },
    #[error(
        "SQL Server {server}: database '{database}' already holds an sstore store: choose another database, or remove its sstore_* tables first"
    )]
    AlreadyExists { server: String, database: String },
    #[error(
        "SQL Server {server}, database '{database}': store schema version {found}; this sstore reads version {supported}"
    )]
    SchemaVersion {
        server: String,
        database: String,
        found: String,
        supported: u32,
    },
    #[error("SQL Server {server}, database '{database}': permission denied{}: {message}; {role}", table.as_ref().map(|t| format!(" on {t}")).unwrap_or_default())]
    PermissionDenied {
        server: String,
        database: String,
        table: Option<String>,
        message: String,
        /// The role or grant that gives the permission, and where.
        role: String,
    },
    #[error("SQL Server {server}, database '{database}': chosen as deadlock victim{}", if *retried { " (retried, again)" } else { "; the change was rolled back: run the command again" })]
    Deadlock {
        server: String,
        database: String,
        /// Whether sstore already retried (read-only backups are retried).
        retried: bool,
    },
    #[error(
        "SQL Server {server}, database '{database}': another writer holds the store's lock (waited {waited_secs} s); nothing was changed: try again when it has finished"
    )]
    Busy {
        server: String,
        database: String,
        waited_secs: u64,
    },
    #[error(
        "SQL Server {server}, database '{database}': a concurrent change conflicted with this one ({message}); nothing was changed: try again"
    )]
    Conflict {
        server: String,
        database: String,
        message: String,
    },
    #[error("SQL Server {server}, database '{database}': timed out {during} after {secs} s{}", if *retryable { "; the server may be overloaded: try again" } else { "" })]
    Timeout {
        server: String,
        database: String,
        during: String,
        secs: u64,
        retryable: bool,
    },
    #[error(
        "SQL Server {server}, database '{database}': the connection was lost ({reason}); an unfinished change was rolled back by the server"
    )]
    ConnectionLost {
        server: String,
        database: String,
        reason: String,
    },
    #[error("SQL Server {server}, database '{database}': error {code}: {message}")]
    Server {
        server: String,
        database: String,
        code: u32,
        message: String,
    },
    #[error("SQL Server {server}, database '{database}': {message}")]
    Protocol {
        server: String,
        database: String,
        message: String,
    },
}

impl SqlServerError {
    /// Whether the same read can simply be tried again (a read-only backup is).
    pub fn is_retryable(&self) -> bool {
        match self {
            SqlServerError::Deadlock { .. }
            | SqlServerError::ConnectionLost { .. }
            | SqlServerError::Busy { .. }
            | SqlServerError::Conflict { .. } => true,
            SqlServerError::Timeout { retryable, .. } => *retryable,
            _ => false,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(source: rusqlite::Error) -> Self {
        if source.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) {
            return StoreError::NotAStore {
                path: None,
                reason: "it is not an SQLite database".into(),
            };
        }
        StoreError::Sqlite { path: None, source }
    }
}

impl StoreError {
    /// Fills in the store file on errors raised where it was not known.
    pub(crate) fn with_path(self, file: &std::path::Path) -> Self {
        match self {
            StoreError::Sqlite { path: None, source } => StoreError::Sqlite {
                path: Some(file.to_owned()),
                source,
            },
            StoreError::NotAStore { path: None, reason } => StoreError::NotAStore {
                path: Some(file.to_owned()),
                reason,
            },
            other => other,
        }
    }
}

/// What to do next for the SQLite failures a user can act on.
fn sqlite_hint(err: &rusqlite::Error) -> &'static str {
    match err.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull | rusqlite::ErrorCode::SystemIoFailure) => {
            "; check that the disk has free space and is writable, then try again"
        }
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            "; another process is writing to the store: try again when it has finished"
        }
        Some(
            rusqlite::ErrorCode::ReadOnly
            | rusqlite::ErrorCode::CannotOpen
            | rusqlite::ErrorCode::PermissionDenied,
        ) => "; check the file's permissions and that its folder exists",
        _ => "",
    }
}
