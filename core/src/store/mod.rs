//! The Secure Store: target applications, their credential sets, and the Master Key that
//! encrypts every field value. Embedded in one SQLite file (owner-only).
//!
//! [`SecureStore`] is an open store without its key (applications can be read and changed);
//! [`UnlockedStore`] holds the Master Key and reads or writes credential values.

mod credentials;
mod error;
mod master_key;
mod model;
mod schema;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

pub use credentials::{CredentialSet, CredentialValues};
pub use error::StoreError;
pub use master_key::MasterKeyInfo;
pub use model::{AppType, FieldDef, FieldType, TargetApp};

use crate::kdf::KdfParams;
use crate::secret::Passphrase;
use master_key::MasterKey;

/// Facts about a store (or a snapshot of it) that a backup manifest records. No secrets.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoreSummary {
    pub store_id: String,
    pub master_key: MasterKeyInfo,
    pub applications: u64,
    pub credential_sets: u64,
}

/// An open Secure Store, without its Master Key.
pub struct SecureStore {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for SecureStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SecureStore {
    /// Creates a new store protected by `passphrase` (which must meet the policy).
    pub fn create(
        path: &Path,
        passphrase: &Passphrase,
        kdf: KdfParams,
    ) -> Result<Self, StoreError> {
        passphrase.check_policy()?;
        kdf.check_writable()?;
        if path.exists() {
            return Err(StoreError::AlreadyExists {
                path: path.to_owned(),
            });
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::fsutil::create_private_dir_all(parent).map_err(|source| StoreError::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        // Create the file owner-only before SQLite opens it; SQLite gives its journal the same mode.
        crate::fsutil::create_private_file(path).map_err(|source| StoreError::Io {
            path: path.to_owned(),
            source,
        })?;
        let result = (|| {
            let mut conn = open_connection(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
            let tx = conn.transaction()?;
            schema::create(&tx)?;
            let store_id = crate::random::hex_id::<16>();
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('store_id', ?1)",
                [&store_id],
            )?;
            MasterKey::generate().store(&tx, &store_id, passphrase, kdf, 1)?;
            tx.commit()?;
            Ok::<_, StoreError>(conn)
        })();
        match result {
            Ok(conn) => Ok(Self {
                conn,
                path: path.to_owned(),
            }),
            Err(e) => {
                let _ = std::fs::remove_file(path);
                Err(e.with_path(path))
            }
        }
    }

    /// Opens an existing store.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if !path.is_file() {
            return Err(StoreError::NotFound {
                path: path.to_owned(),
            });
        }
        let conn = open_connection(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
            .map_err(|e| e.with_path(path))?;
        schema::check(&conn).map_err(|e| e.with_path(path))?;
        Ok(Self {
            conn,
            path: path.to_owned(),
        })
    }

    /// Opens a store read-only (for checking a restored or snapshot copy).
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        if !path.is_file() {
            return Err(StoreError::NotFound {
                path: path.to_owned(),
            });
        }
        let conn = open_connection(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| e.with_path(path))?;
        schema::check(&conn).map_err(|e| e.with_path(path))?;
        Ok(Self {
            conn,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn store_id(&self) -> Result<String, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'store_id'", [], |r| {
                r.get(0)
            })?)
    }

    pub fn master_key_info(&self) -> Result<MasterKeyInfo, StoreError> {
        master_key::info(&self.conn)
    }

    /// Store id, Master Key id and generation, and counts.
    pub fn summary(&self) -> Result<StoreSummary, StoreError> {
        Ok(StoreSummary {
            store_id: self.store_id()?,
            master_key: self.master_key_info()?,
            applications: self
                .conn
                .query_row("SELECT COUNT(*) FROM applications", [], |r| r.get(0))?,
            credential_sets: self.conn.query_row(
                "SELECT COUNT(*) FROM (SELECT DISTINCT app, principal FROM credentials)",
                [],
                |r| r.get(0),
            )?,
        })
    }

    /// SQLite's own integrity check; returns the problems found (empty when healthy).
    pub fn integrity_problems(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare("PRAGMA integrity_check")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let problems: Vec<String> = rows.collect::<Result<_, _>>()?;
        Ok(problems.into_iter().filter(|p| p != "ok").collect())
    }

    /// Opens the Master Key with `passphrase`.
    pub fn unlock(self, passphrase: &Passphrase) -> Result<UnlockedStore, StoreError> {
        let store_id = self.store_id()?;
        let key = MasterKey::unlock(&self.conn, &store_id, passphrase)?;
        Ok(UnlockedStore {
            store: self,
            key,
            store_id,
        })
    }

    /// Checks that `passphrase` opens the current Master Key (as Update-SPSecureStoreApplicationServerKey).
    pub fn check_passphrase(&self, passphrase: &Passphrase) -> Result<MasterKeyInfo, StoreError> {
        let store_id = self.store_id()?;
        MasterKey::unlock(&self.conn, &store_id, passphrase)?;
        self.master_key_info()
    }

    /// Writes a transactionally consistent copy of the store to `dest` (owner-only) through
    /// SQLite's online backup API, which restarts if a writer changes the store meanwhile, and
    /// returns the summary read from the copy itself.
    pub fn snapshot_to(&self, dest: &Path) -> Result<StoreSummary, StoreError> {
        crate::fsutil::create_private_file(dest).map_err(|source| StoreError::Io {
            path: dest.to_owned(),
            source,
        })?;
        let copied = (|| {
            let mut out = open_connection(dest, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
            let backup = rusqlite::backup::Backup::new(&self.conn, &mut out)?;
            backup.run_to_completion(1024, std::time::Duration::ZERO, None)?;
            Ok::<_, StoreError>(())
        })();
        copied.map_err(|e| e.with_path(dest))?;
        let copy = SecureStore::open_read_only(dest)?;
        copy.summary()
    }

    /// Applications, sorted by name.
    pub fn apps(&self) -> Result<Vec<TargetApp>, StoreError> {
        model::load_apps(&self.conn, None)
    }

    pub fn app(&self, name: &str) -> Result<TargetApp, StoreError> {
        model::load_apps(&self.conn, Some(name))?
            .pop()
            .ok_or_else(|| StoreError::AppNotFound {
                name: name.to_owned(),
            })
    }

    /// Adds one target application.
    pub fn create_app(&mut self, app: &TargetApp) -> Result<(), StoreError> {
        self.create_apps(std::slice::from_ref(app))
    }

    /// Adds several target applications in one transaction.
    pub fn create_apps(&mut self, apps: &[TargetApp]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for app in apps {
            model::insert_app(&tx, app)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Removes an application and every credential set mapped to it.
    pub fn remove_app(&mut self, name: &str) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM credentials WHERE app = ?1", [name])?;
        tx.execute("DELETE FROM fields WHERE app = ?1", [name])?;
        if tx.execute("DELETE FROM applications WHERE name = ?1", [name])? == 0 {
            return Err(StoreError::AppNotFound {
                name: name.to_owned(),
            });
        }
        tx.commit()?;
        Ok(())
    }

    /// Principals that have a credential set for `app`.
    pub fn principals(&self, app: &str) -> Result<Vec<String>, StoreError> {
        self.app(app)?;
        let mut stmt = self.conn.prepare(
            "SELECT DISTINCT principal FROM credentials WHERE app = ?1 ORDER BY principal",
        )?;
        let rows = stmt.query_map([app], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// A store whose Master Key is open: credential values can be read and written.
pub struct UnlockedStore {
    store: SecureStore,
    key: MasterKey,
    store_id: String,
}

impl std::ops::Deref for UnlockedStore {
    type Target = SecureStore;
    fn deref(&self) -> &SecureStore {
        &self.store
    }
}

impl std::ops::DerefMut for UnlockedStore {
    fn deref_mut(&mut self) -> &mut SecureStore {
        &mut self.store
    }
}

impl UnlockedStore {
    /// Sets (or replaces) the credential set of `principal` for `app`. Every field of the
    /// application must be given.
    pub fn set_credentials(&mut self, set: &CredentialSet) -> Result<(), StoreError> {
        self.set_many(std::slice::from_ref(set))
    }

    /// Sets several credential sets in one transaction.
    pub fn set_many(&mut self, sets: &[CredentialSet]) -> Result<(), StoreError> {
        let tx = self.store.conn.transaction()?;
        for set in sets {
            credentials::write_set(&tx, &self.key, set)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The decrypted credential set of `principal` for `app`.
    pub fn credentials(&self, app: &str, principal: &str) -> Result<CredentialSet, StoreError> {
        credentials::read_set(&self.store.conn, &self.key, app, principal)
    }

    /// Removes the credential set of `principal` for `app`.
    pub fn clear_credentials(&mut self, app: &str, principal: &str) -> Result<(), StoreError> {
        self.store.app(app)?;
        let removed = self.store.conn.execute(
            "DELETE FROM credentials WHERE app = ?1 AND principal = ?2",
            [app, principal],
        )?;
        if removed == 0 {
            return Err(StoreError::CredentialsNotFound {
                app: app.to_owned(),
                principal: principal.to_owned(),
            });
        }
        Ok(())
    }

    /// Creates a new Master Key protected by `new_passphrase` and re-encrypts every credential
    /// set under it, all in one transaction: after a crash the store is entirely on the old key
    /// or entirely on the new one.
    pub fn change_master_key(
        &mut self,
        new_passphrase: &Passphrase,
        kdf: KdfParams,
    ) -> Result<MasterKeyInfo, StoreError> {
        new_passphrase.check_policy()?;
        kdf.check_writable()?;
        let new_key = MasterKey::generate();
        let tx = self
            .store
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        credentials::reencrypt_all(&tx, &self.key, &new_key)?;
        let generation = master_key::info(&tx)?.generation + 1;
        new_key.store(&tx, &self.store_id, new_passphrase, kdf, generation)?;
        tx.commit()?;
        self.key = new_key;
        self.store.master_key_info()
    }
}

fn open_connection(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    if !flags.contains(OpenFlags::SQLITE_OPEN_READ_ONLY) {
        conn.pragma_update(None, "journal_mode", "DELETE")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
    }
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

pub(crate) fn optional<T>(r: rusqlite::Result<T>) -> rusqlite::Result<Option<T>> {
    r.optional()
}

impl SecureStore {
    /// Before a store file is replaced by a rename: lets SQLite roll back any interrupted
    /// transaction of the old file, so its journal cannot be replayed onto the new one.
    pub fn settle_before_replace(path: &Path) {
        if let Ok(conn) = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE) {
            let _ = conn.busy_timeout(std::time::Duration::from_secs(10));
            let _ = conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            });
        }
    }

    /// After a store file was replaced: removes a journal left by the old file, if any.
    pub fn remove_stale_journal(path: &Path) {
        let mut journal = path.as_os_str().to_owned();
        journal.push("-journal");
        let _ = std::fs::remove_file(PathBuf::from(journal));
    }
}

#[cfg(test)]
mod tests;
