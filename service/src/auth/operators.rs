//! The operators file: who may use the service, with which role, their password hashes and
//! the hashes of their API tokens. A JSON file, owner-only (0600), replaced atomically on every
//! change. The CLI changes it while the service runs, so every check first looks whether the
//! file changed on disk (one `stat`) and reads it again if so: a token of an operator removed
//! by `sstore operator remove` stops working at the service's next request.
//!
//! ```json
//! { "version": 1,
//!   "operators": [
//!     { "name": "alice", "role": "admin",
//!       "password": "$argon2id$v=19$m=19456,t=2,p=1$...$...",
//!       "created": "2025-01-02T03:04:05Z", "password_changed": "2025-01-02T03:04:05Z",
//!       "tokens": [ { "id": "sst_1a2b3c4d", "sha256": "<64 hex>", "created": "..." } ] } ] }
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::file::{self, NotOwnerOnly, Stamp};
use super::password::{self, PasswordPolicyError};
use super::role::Role;
use super::token;

/// The version of the operators file this code writes and reads.
pub const FILE_VERSION: u32 = 1;
/// The longest operator name.
pub const MAX_NAME_LEN: usize = 64;
const WHAT: &str = "the operators file";

/// Why the operators file cannot be read or changed as asked.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("cannot read the operators file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the operators file {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the operators file {} is not valid: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "the operators file {} has version {version}, and this sstore reads version {FILE_VERSION} only",
        path.display()
    )]
    Version { path: PathBuf, version: u32 },
    #[error(transparent)]
    NotOwnerOnly(#[from] NotOwnerOnly),
    #[error("invalid operator name '{name}': {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("operator {name}: {source}")]
    Password {
        name: String,
        source: PasswordPolicyError,
    },
    #[error("an operator named {name} already exists in {}", path.display())]
    Exists { name: String, path: PathBuf },
    #[error("no operator named {name} in {}", path.display())]
    NotFound { name: String, path: PathBuf },
    #[error("operator {name} has no token {id}")]
    NoSuchToken { name: String, id: String },
    #[error("hashing the password of operator {name} failed: {message}")]
    Hash { name: String, message: String },
}

/// Why a login or a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The same for an unknown name and a wrong password, so neither can be told apart.
    #[error("unknown operator or wrong password")]
    BadCredentials,
    /// A token that is malformed, unknown, revoked, or whose operator was removed.
    #[error("unknown or revoked API token")]
    BadToken,
    /// The operators file cannot be read (its permissions, its contents): nobody gets in
    /// until it is fixed.
    #[error("cannot check operators: {0}")]
    Unavailable(#[source] Box<OperatorError>),
}

impl From<OperatorError> for AuthError {
    fn from(err: OperatorError) -> Self {
        AuthError::Unavailable(Box::new(err))
    }
}

/// An operator as the rest of the service sees one: never the password hash nor a token hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Operator {
    pub name: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub password_changed: OffsetDateTime,
    pub tokens: Vec<TokenInfo>,
}

/// One API token, as listed: its id (first characters) and when it was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
}

/// A token just issued: its text, shown once and never stored, and its id.
pub struct IssuedToken {
    pub token: Zeroizing<String>,
    pub id: String,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OperatorsFile {
    version: u32,
    operators: Vec<OperatorRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OperatorRecord {
    name: String,
    role: Role,
    /// Argon2id PHC string.
    password: String,
    #[serde(with = "time::serde::rfc3339")]
    created: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    password_changed: OffsetDateTime,
    #[serde(default)]
    tokens: Vec<TokenRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRecord {
    id: String,
    /// Hex SHA-256 of the whole token text.
    sha256: String,
    #[serde(with = "time::serde::rfc3339")]
    created: OffsetDateTime,
}

impl OperatorRecord {
    fn public(&self) -> Operator {
        Operator {
            name: self.name.clone(),
            role: self.role,
            created: self.created,
            password_changed: self.password_changed,
            tokens: self
                .tokens
                .iter()
                .map(|t| TokenInfo {
                    id: t.id.clone(),
                    created: t.created,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Default)]
struct Loaded {
    file: OperatorsFile,
    /// The version on disk this was read from (`None`: no file).
    stamp: Option<Stamp>,
}

/// The operators file, kept in memory and read again whenever it changes on disk. Shared by
/// the service's requests (`Arc<OperatorStore>`); every method takes `&self`.
#[derive(Debug)]
pub struct OperatorStore {
    path: PathBuf,
    state: Mutex<Loaded>,
}

/// Checks an operator name: 1 to 64 characters, lower-case ASCII letters, digits, `.`, `_`
/// and `-`, starting with a letter or a digit.
pub fn validate_name(name: &str) -> Result<(), OperatorError> {
    let invalid = |reason| {
        Err(OperatorError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return invalid("it is longer than 64 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    {
        return invalid("use lower-case letters a-z, digits, '.', '_' and '-' only");
    }
    if !name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return invalid("it must start with a letter or a digit");
    }
    Ok(())
}

fn now() -> OffsetDateTime {
    // Whole seconds: the file and listings need no more.
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

impl OperatorStore {
    /// Opens the operators file at `path`. A missing file is an empty list (the first `add`
    /// creates it); a file others may read is refused.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, OperatorError> {
        let store = Self {
            path: path.into(),
            state: Mutex::new(Loaded::default()),
        };
        store.reload()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Loaded> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the file again if it changed on disk since it was last read; returns whether it
    /// did. Also checks, every time, that the file is still owner-only.
    pub fn reload(&self) -> Result<bool, OperatorError> {
        let mut state = self.lock();
        self.refresh(&mut state, false)
    }

    fn refresh(&self, state: &mut Loaded, force: bool) -> Result<bool, OperatorError> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let changed = state.stamp.is_some() || !state.file.operators.is_empty();
                *state = Loaded::default();
                return Ok(changed);
            }
            Err(source) => {
                return Err(OperatorError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        file::check_owner_only(WHAT, &self.path, &meta)?;
        let stamp = Stamp::of(&meta);
        if !force && state.stamp == Some(stamp) {
            return Ok(false);
        }
        let text = std::fs::read(&self.path).map_err(|source| OperatorError::Read {
            path: self.path.clone(),
            source,
        })?;
        let parsed: OperatorsFile =
            serde_json::from_slice(&text).map_err(|source| OperatorError::Parse {
                path: self.path.clone(),
                source,
            })?;
        if parsed.version != FILE_VERSION {
            return Err(OperatorError::Version {
                path: self.path.clone(),
                version: parsed.version,
            });
        }
        state.file = parsed;
        state.stamp = Some(stamp);
        Ok(true)
    }

    /// The lock file that serialises writers: `.NAME.lock` beside the file.
    fn lock_path(&self) -> PathBuf {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.path.with_file_name(format!(".{name}.lock"))
    }

    /// Applies `change` to the file as it is on disk now (under the writers' lock, so two
    /// processes changing it at once both keep their change), then replaces the file.
    fn modify<T>(
        &self,
        change: impl FnOnce(&mut OperatorsFile) -> Result<T, OperatorError>,
    ) -> Result<T, OperatorError> {
        let mut state = self.lock();
        let lock_path = self.lock_path();
        let _writer = file::lock_exclusive(&lock_path).map_err(|source| OperatorError::Write {
            path: lock_path.clone(),
            source,
        })?;
        self.refresh(&mut state, true)?;
        let mut file = state.file.clone();
        file.version = FILE_VERSION;
        let out = change(&mut file)?;
        let mut bytes =
            serde_json::to_vec_pretty(&file).map_err(|source| OperatorError::Parse {
                path: self.path.clone(),
                source,
            })?;
        bytes.push(b'\n');
        file::replace_atomically(&self.path, &bytes).map_err(|source| OperatorError::Write {
            path: self.path.clone(),
            source,
        })?;
        state.file = file;
        state.stamp = std::fs::metadata(&self.path).ok().map(|m| Stamp::of(&m));
        Ok(out)
    }

    fn not_found(&self, name: &str) -> OperatorError {
        OperatorError::NotFound {
            name: name.to_owned(),
            path: self.path.clone(),
        }
    }

    fn hash_password(name: &str, password: &str) -> Result<String, OperatorError> {
        password::check_policy(password).map_err(|source| OperatorError::Password {
            name: name.to_owned(),
            source,
        })?;
        password::hash(password).map_err(|e| OperatorError::Hash {
            name: name.to_owned(),
            message: e.to_string(),
        })
    }

    /// Adds an operator. The password must meet the policy (at least 12 characters).
    pub fn add(&self, name: &str, role: Role, password: &str) -> Result<Operator, OperatorError> {
        validate_name(name)?;
        let hash = Self::hash_password(name, password)?;
        self.modify(|file| {
            if file.operators.iter().any(|o| o.name == name) {
                return Err(OperatorError::Exists {
                    name: name.to_owned(),
                    path: self.path.clone(),
                });
            }
            let created = now();
            let record = OperatorRecord {
                name: name.to_owned(),
                role,
                password: hash,
                created,
                password_changed: created,
                tokens: Vec::new(),
            };
            let public = record.public();
            file.operators.push(record);
            Ok(public)
        })
    }

    /// Removes an operator and with it every token it had; returns what it was.
    pub fn remove(&self, name: &str) -> Result<Operator, OperatorError> {
        self.modify(|file| {
            let index = file
                .operators
                .iter()
                .position(|o| o.name == name)
                .ok_or_else(|| self.not_found(name))?;
            Ok(file.operators.remove(index).public())
        })
    }

    fn with_record<T>(
        &self,
        name: &str,
        change: impl FnOnce(&mut OperatorRecord) -> Result<T, OperatorError>,
    ) -> Result<T, OperatorError> {
        self.modify(|file| {
            let record = file
                .operators
                .iter_mut()
                .find(|o| o.name == name)
                .ok_or_else(|| self.not_found(name))?;
            change(record)
        })
    }

    /// Sets a new password (it must meet the policy). Tokens and roles are kept.
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), OperatorError> {
        let hash = Self::hash_password(name, password)?;
        self.with_record(name, |record| {
            record.password = hash;
            record.password_changed = now();
            Ok(())
        })
    }

    /// Changes an operator's role.
    pub fn set_role(&self, name: &str, role: Role) -> Result<(), OperatorError> {
        self.with_record(name, |record| {
            record.role = role;
            Ok(())
        })
    }

    /// Makes a new API token for an operator; its text is returned here once and only its
    /// hash is kept.
    pub fn issue_token(&self, name: &str) -> Result<IssuedToken, OperatorError> {
        let new = token::generate();
        let id = new.id.clone();
        self.with_record(name, |record| {
            record.tokens.push(TokenRecord {
                id: new.id,
                sha256: hex::encode(new.sha256),
                created: now(),
            });
            Ok(())
        })?;
        Ok(IssuedToken {
            token: new.text,
            id,
        })
    }

    /// Revokes one token of an operator, by its id (as `list` shows it).
    pub fn revoke_token(&self, name: &str, id: &str) -> Result<(), OperatorError> {
        self.with_record(name, |record| {
            let before = record.tokens.len();
            record.tokens.retain(|t| t.id != id);
            if record.tokens.len() == before {
                return Err(OperatorError::NoSuchToken {
                    name: name.to_owned(),
                    id: id.to_owned(),
                });
            }
            Ok(())
        })
    }

    /// Every operator, by name.
    pub fn list(&self) -> Result<Vec<Operator>, OperatorError> {
        let mut state = self.lock();
        self.refresh(&mut state, false)?;
        let mut all: Vec<Operator> = state.file.operators.iter().map(|o| o.public()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    /// One operator as the file says now (`None`: there is none of that name, e.g. it was
    /// removed while its session was open).
    pub fn get(&self, name: &str) -> Result<Option<Operator>, OperatorError> {
        let mut state = self.lock();
        self.refresh(&mut state, false)?;
        Ok(state
            .file
            .operators
            .iter()
            .find(|o| o.name == name)
            .map(OperatorRecord::public))
    }

    /// Whether no operator exists (nobody can log in).
    pub fn is_empty(&self) -> Result<bool, OperatorError> {
        let mut state = self.lock();
        self.refresh(&mut state, false)?;
        Ok(state.file.operators.is_empty())
    }

    /// Checks a name and password. An unknown name costs the same Argon2id work as a wrong
    /// password and gives the same error. Slow on purpose (tens of milliseconds): call it
    /// from a blocking thread (`tokio::task::spawn_blocking`).
    pub fn verify_password(&self, name: &str, password: &str) -> Result<Operator, AuthError> {
        let found = {
            let mut state = self.lock();
            self.refresh(&mut state, false)?;
            state
                .file
                .operators
                .iter()
                .find(|o| o.name == name)
                .map(|o| (o.password.clone(), o.public()))
        };
        match found {
            Some((hash, operator)) if password::verify(password, &hash) => Ok(operator),
            Some(_) => Err(AuthError::BadCredentials),
            None => {
                password::verify_nothing(password);
                Err(AuthError::BadCredentials)
            }
        }
    }

    /// The operator an API token belongs to, checked against the file as it is now. Every
    /// stored hash is compared, in constant time.
    pub fn authenticate_token(&self, token: &str) -> Result<Operator, AuthError> {
        if !token::is_well_formed(token) {
            return Err(AuthError::BadToken);
        }
        let digest = token::digest(token);
        let mut state = self.lock();
        self.refresh(&mut state, false)?;
        let mut found = None;
        for operator in &state.file.operators {
            for stored in &operator.tokens {
                let mut expected = [0u8; 32];
                let decoded = hex::decode_to_slice(&stored.sha256, &mut expected).is_ok();
                if bool::from(expected.ct_eq(&digest)) && decoded {
                    found = Some(operator);
                }
            }
        }
        found.map(OperatorRecord::public).ok_or(AuthError::BadToken)
    }

    /// Like [`authenticate_token`](Self::authenticate_token), for callers that only need a
    /// yes or no (an unreadable operators file is a no).
    pub fn verify_token(&self, token: &str) -> Option<Operator> {
        self.authenticate_token(token).ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const PW: &str = "a-good-long-password";

    fn store() -> (tempfile::TempDir, OperatorStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = OperatorStore::open(dir.path().join("svc").join("operators.json")).unwrap();
        (dir, store)
    }

    #[test]
    fn a_missing_file_is_an_empty_list_and_the_first_add_creates_it_owner_only() {
        let (_dir, store) = store();
        assert!(store.is_empty().unwrap());
        assert!(!store.path().exists());
        let alice = store.add("alice", Role::Admin, PW).unwrap();
        assert_eq!(alice.role, Role::Admin);
        assert!(alice.tokens.is_empty());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(store.path()).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        }
        let reopened = OperatorStore::open(store.path()).unwrap();
        assert_eq!(reopened.list().unwrap(), vec![alice]);
    }

    #[cfg(unix)]
    #[test]
    fn a_file_others_can_read_is_refused_at_open_and_while_running() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, store) = store();
        store.add("alice", Role::Admin, PW).unwrap();
        let token = store.issue_token("alice").unwrap();
        std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = OperatorStore::open(store.path()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("operators.json"), "{text}");
        assert!(text.contains("chmod 600"), "{text}");
        // The running service fails closed: neither passwords nor tokens pass.
        assert!(matches!(
            store.verify_password("alice", PW),
            Err(AuthError::Unavailable(_))
        ));
        assert!(store.verify_token(&token.token).is_none());
        std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(store.verify_token(&token.token).is_some());
    }

    #[test]
    fn wrong_password_and_unknown_operator_give_the_same_error() {
        let (_dir, store) = store();
        store.add("alice", Role::Operator, PW).unwrap();
        let ok = store.verify_password("alice", PW).unwrap();
        assert_eq!(ok.name, "alice");
        assert_eq!(ok.role, Role::Operator);
        let wrong = store
            .verify_password("alice", "not-the-password")
            .unwrap_err();
        let unknown = store.verify_password("bob", PW).unwrap_err();
        let invalid = store.verify_password("Bob\n", PW).unwrap_err();
        assert!(matches!(wrong, AuthError::BadCredentials));
        assert!(matches!(unknown, AuthError::BadCredentials));
        assert!(matches!(invalid, AuthError::BadCredentials));
        assert_eq!(wrong.to_string(), unknown.to_string());
    }

    #[test]
    fn the_file_holds_argon2id_hashes_and_token_hashes_never_the_secrets() {
        let (_dir, store) = store();
        store.add("alice", Role::Admin, PW).unwrap();
        let token = store.issue_token("alice").unwrap();
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(!text.contains(PW));
        assert!(!text.contains(token.token.as_str()));
        assert!(!text.contains(&token.token[12..]));
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let record = &json["operators"][0];
        let phc = record["password"].as_str().unwrap();
        assert!(password::is_argon2id_phc(phc), "{phc}");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_eq!(
            record["tokens"][0]["sha256"].as_str().unwrap(),
            hex::encode(token::digest(&token.token))
        );
        assert_eq!(record["tokens"][0]["id"].as_str().unwrap(), token.id);
        assert_eq!(json["version"], 1);
    }

    #[test]
    fn names_are_checked() {
        let (_dir, store) = store();
        for bad in [
            "",
            "Alice",
            "al ice",
            "-x",
            ".x",
            "a/b",
            "ä",
            &"a".repeat(65),
        ] {
            let err = store.add(bad, Role::Viewer, PW).unwrap_err();
            assert!(
                matches!(err, OperatorError::InvalidName { .. }),
                "{bad}: {err}"
            );
        }
        for good in ["a", "alice", "bob.smith", "ops_1", "x-y", &"a".repeat(64)] {
            store.add(good, Role::Viewer, PW).unwrap();
        }
        let err = store.add("alice", Role::Admin, PW).unwrap_err();
        assert!(matches!(err, OperatorError::Exists { .. }), "{err}");
    }

    #[test]
    fn a_short_password_is_refused_and_the_message_says_twelve() {
        let (_dir, store) = store();
        let err = store.add("alice", Role::Admin, "elevenchars").unwrap_err();
        assert!(err.to_string().contains("at least 12 characters"), "{err}");
        assert!(store.is_empty().unwrap());
        store.add("alice", Role::Admin, PW).unwrap();
        let err = store.set_password("alice", "short").unwrap_err();
        assert!(err.to_string().contains("at least 12 characters"), "{err}");
        store.verify_password("alice", PW).unwrap();
    }

    #[test]
    fn a_new_password_replaces_the_old_one_and_keeps_the_tokens() {
        let (_dir, store) = store();
        store.add("alice", Role::Admin, PW).unwrap();
        let token = store.issue_token("alice").unwrap();
        store
            .set_password("alice", "another-long-password")
            .unwrap();
        assert!(store.verify_password("alice", PW).is_err());
        store
            .verify_password("alice", "another-long-password")
            .unwrap();
        assert!(store.verify_token(&token.token).is_some());
        assert!(matches!(
            store.set_password("bob", "another-long-password"),
            Err(OperatorError::NotFound { .. })
        ));
    }

    #[test]
    fn tokens_identify_their_operator_and_are_different_each_time() {
        let (_dir, store) = store();
        store.add("alice", Role::Admin, PW).unwrap();
        store.add("bob", Role::Viewer, PW).unwrap();
        let a1 = store.issue_token("alice").unwrap();
        let a2 = store.issue_token("alice").unwrap();
        let b1 = store.issue_token("bob").unwrap();
        assert_ne!(*a1.token, *a2.token);
        assert_eq!(store.verify_token(&a1.token).unwrap().name, "alice");
        assert_eq!(store.verify_token(&a2.token).unwrap().name, "alice");
        let bob = store.verify_token(&b1.token).unwrap();
        assert_eq!((bob.name.as_str(), bob.role), ("bob", Role::Viewer));
        assert_eq!(store.get("alice").unwrap().unwrap().tokens.len(), 2);
        // Close but not equal, malformed, empty: refused.
        let mut other = a1.token.to_string();
        let last = if other.ends_with('0') { "1" } else { "0" };
        other.replace_range(other.len() - 1.., last);
        for bad in [other.as_str(), "", "sst_", "Bearer x", &a1.token[..20]] {
            assert!(matches!(
                store.authenticate_token(bad),
                Err(AuthError::BadToken)
            ));
        }
        store.revoke_token("alice", &a1.id).unwrap();
        assert!(store.verify_token(&a1.token).is_none());
        assert!(store.verify_token(&a2.token).is_some());
        assert!(matches!(
            store.revoke_token("alice", &a1.id),
            Err(OperatorError::NoSuchToken { .. })
        ));
    }

    #[test]
    fn a_removed_operators_token_stops_working_in_another_process_view_at_once() {
        let (_dir, cli) = store();
        cli.add("alice", Role::Admin, PW).unwrap();
        let token = cli.issue_token("alice").unwrap();
        // The service has its own store open on the same file.
        let service = OperatorStore::open(cli.path()).unwrap();
        assert!(service.verify_token(&token.token).is_some());
        let removed = cli.remove("alice").unwrap();
        assert_eq!(removed.tokens.len(), 1);
        assert!(service.verify_token(&token.token).is_none());
        assert!(service.get("alice").unwrap().is_none());
        assert!(matches!(
            service.verify_password("alice", PW),
            Err(AuthError::BadCredentials)
        ));
        // Changes made by the service's view are seen by the other too.
        service.add("bob", Role::Viewer, PW).unwrap();
        assert_eq!(cli.list().unwrap().len(), 1);
        assert!(matches!(
            cli.remove("alice"),
            Err(OperatorError::NotFound { .. })
        ));
    }

    #[test]
    fn writers_in_parallel_keep_every_change() {
        let (_dir, store) = store();
        let path = store.path().to_owned();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    // Each thread its own store, as separate processes would have.
                    let mine = OperatorStore::open(&path).unwrap();
                    for i in 0..3 {
                        mine.add(&format!("op{t}-{i}"), Role::Viewer, PW).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(store.list().unwrap().len(), 12);
    }

    #[test]
    fn a_role_change_is_seen_by_the_next_check() {
        let (_dir, store) = store();
        store.add("alice", Role::Viewer, PW).unwrap();
        let token = store.issue_token("alice").unwrap();
        let service = OperatorStore::open(store.path()).unwrap();
        store.set_role("alice", Role::Operator).unwrap();
        assert_eq!(
            service.verify_token(&token.token).unwrap().role,
            Role::Operator
        );
    }

    #[test]
    fn a_damaged_or_newer_file_is_refused_naming_it() {
        let (_dir, store) = store();
        store.add("alice", Role::Admin, PW).unwrap();
        let path = store.path().to_owned();
        file::replace_atomically(&path, b"{\"version\": 2, \"operators\": []}").unwrap();
        let err = OperatorStore::open(&path).unwrap_err();
        assert!(
            matches!(err, OperatorError::Version { version: 2, .. }),
            "{err}"
        );
        file::replace_atomically(&path, b"{ not json").unwrap();
        let err = OperatorStore::open(&path).unwrap_err();
        assert!(err.to_string().contains("operators.json"), "{err}");
        // A running store fails closed and changes nothing.
        assert!(matches!(
            store.verify_password("alice", PW),
            Err(AuthError::Unavailable(_))
        ));
        assert!(store.add("bob", Role::Admin, PW).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"{ not json");
    }

    #[test]
    fn a_deleted_file_means_no_operators() {
        let (_dir, store) = store();
        store.add("alice", Role::Admin, PW).unwrap();
        let token = store.issue_token("alice").unwrap();
        std::fs::remove_file(store.path()).unwrap();
        assert!(store.verify_token(&token.token).is_none());
        assert!(store.is_empty().unwrap());
    }

    #[test]
    fn the_issued_token_debug_output_hides_the_token() {
        let (_dir, store) = store();
        store.add("alice", Role::Admin, PW).unwrap();
        let token = store.issue_token("alice").unwrap();
        let shown = format!("{token:?}");
        assert!(!shown.contains(token.token.as_str()), "{shown}");
        assert!(shown.contains(&token.id));
    }
}
