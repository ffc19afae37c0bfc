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
