//! The Secure Store: target applications, their credential sets, and the Master Key that
//! encrypts every field value.
//!
//! One interface, two homes ([`StoreLocation`]): an owner-only SQLite file (the default,
//! [`sqlite`]) or a database on SQL Server, Azure SQL or Babelfish ([`sqlserver`]). A home keeps
//! rows and transactions ([`home::Home`], [`home::Rows`]); everything else is written once,
//! here: the model and its rules, the passphrase policy, the Master Key wrapping and the
//! per-value AES-GCM with its associated data. Both homes write the same backup payload (an
//! SQLite store file), so a backup of one restores into the other.
//!
//! [`SecureStore`] is an open store without its key (applications can be read and changed);
//! [`UnlockedStore`] holds the Master Key and reads or writes credential values.

mod credentials;
mod error;
mod home;
mod location;
mod master_key;
mod model;
mod sqlite;
mod sqlserver;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

pub use credentials::{CredentialSet, CredentialValues};
pub use error::{SnapshotError, SqlServerError, StoreError};
pub use home::{PermissionCheck, SnapshotMethod};
pub use location::{
    Encryption, PASSWORD_ENV, PasswordSource, SqlAuth, SqlServerConfig, StoreLocation,
};
pub use master_key::MasterKeyInfo;
pub use model::{AppType, FieldDef, FieldType, TargetApp};

use crate::kdf::KdfParams;
use crate::secret::Passphrase;
use credentials::SealedValue;
use home::{Home, Rows, StoreContents};
use master_key::MasterKey;

/// Facts about a store (or a snapshot of it) that a backup manifest records. No secrets.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoreSummary {
    pub store_id: String,
    pub master_key: MasterKeyInfo,
    pub applications: u64,
    pub credential_sets: u64,
}

/// A backup payload written by [`SecureStore::snapshot`]: what it holds and how it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Read back from the copy itself.
    pub summary: StoreSummary,
    pub method: SnapshotMethod,
}

/// An open Secure Store, without its Master Key.
pub struct SecureStore {
    home: Mutex<Box<dyn Home>>,
    location: StoreLocation,
}

impl std::fmt::Debug for SecureStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureStore")
            .field("location", &self.location)
            .finish()
    }
}

impl SecureStore {
    /// Creates a new store file protected by `passphrase` (which must meet the policy).
    pub fn create(
        path: &Path,
        passphrase: &Passphrase,
        kdf: KdfParams,
    ) -> Result<Self, StoreError> {
        Self::create_at(&StoreLocation::Sqlite(path.to_owned()), passphrase, kdf)
    }

    /// Creates a new store at `location` protected by `passphrase` (which must meet the policy).
    pub fn create_at(
        location: &StoreLocation,
        passphrase: &Passphrase,
        kdf: KdfParams,
    ) -> Result<Self, StoreError> {
        passphrase.check_policy()?;
        kdf.check_writable()?;
        let store_id = crate::random::hex_id::<16>();
        let master_key = MasterKey::generate().wrap(&store_id, passphrase, kdf, 1)?;
        let contents = StoreContents {
            meta: vec![
                ("store_id".into(), store_id),
                ("created_at".into(), crate::backup::now_rfc3339()),
            ],
            master_key,
            apps: Vec::new(),
            values: Vec::new(),
        };
        Self::create_with(location, &contents, false)
    }

    fn create_with(
        location: &StoreLocation,
        contents: &StoreContents,
        replace: bool,
    ) -> Result<Self, StoreError> {
        let home: Box<dyn Home> = match location {
            StoreLocation::Sqlite(path) => Box::new(sqlite::SqliteHome::create(path, contents)?),
            StoreLocation::SqlServer(config) => {
                Box::new(sqlserver::SqlServerHome::create(config, contents, replace)?)
            }
        };
        Ok(Self::with_home(home, location.clone()))
    }

    fn with_home(home: Box<dyn Home>, location: StoreLocation) -> Self {
        Self {
            home: Mutex::new(home),
            location,
        }
    }

    /// Opens an existing store file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_at(&StoreLocation::Sqlite(path.to_owned()))
    }

    /// Opens an existing store wherever it lives (the schema version is checked).
    pub fn open_at(location: &StoreLocation) -> Result<Self, StoreError> {
        let home: Box<dyn Home> = match location {
            StoreLocation::Sqlite(path) => Box::new(sqlite::SqliteHome::open(path, false)?),
            StoreLocation::SqlServer(config) => Box::new(sqlserver::SqlServerHome::open(config)?),
        };
        Ok(Self::with_home(home, location.clone()))
    }

    /// Opens the store a locator names: a path, or an `mssql://` URL carried as a path (what
    /// jobs, requests and the service keep; see [`StoreLocation::to_locator`]).
    pub fn open_locator(locator: &Path) -> Result<Self, StoreError> {
        Self::open_at(&StoreLocation::from_locator(locator)?)
    }

    /// Opens a store file read-only (for checking a restored or snapshot copy).
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let home = sqlite::SqliteHome::open(path, true)?;
        Ok(Self::with_home(
            Box::new(home),
            StoreLocation::Sqlite(path.to_owned()),
        ))
    }

    pub fn location(&self) -> &StoreLocation {
        &self.location
    }

    /// The store file, for a store in SQLite.
    pub fn path(&self) -> Option<&Path> {
        match &self.location {
            StoreLocation::Sqlite(path) => Some(path),
            StoreLocation::SqlServer(_) => None,
        }
    }

    fn home(&self) -> MutexGuard<'_, Box<dyn Home>> {
        self.home.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` over the rows, reading only.
    fn read<T: Send>(
        &self,
        mut f: impl FnMut(&mut dyn Rows) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        let mut out = None;
        self.home().read(&mut |rows| {
            out = Some(f(rows)?);
            Ok(())
        })?;
        out.ok_or_else(unit_not_run)
    }

    /// Runs `f` in one write transaction.
    fn write<T: Send>(
        &self,
        mut f: impl FnMut(&mut dyn Rows) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        let mut out = None;
        self.home().write(&mut |rows| {
            out = Some(f(rows)?);
            Ok(())
        })?;
        out.ok_or_else(unit_not_run)
    }

    pub fn store_id(&self) -> Result<String, StoreError> {
        self.read(store_id)
    }

    pub fn master_key_info(&self) -> Result<MasterKeyInfo, StoreError> {
        self.read(|rows| Ok(rows.master_key()?.info))
    }

    /// Store id, Master Key id and generation, and counts.
    pub fn summary(&self) -> Result<StoreSummary, StoreError> {
        self.read(summary)
    }

    /// The engine's own integrity check; returns the problems found (empty when healthy).
    pub fn integrity_problems(&self) -> Result<Vec<String>, StoreError> {
        self.home().integrity_problems()
    }

    /// What the login (SQL Server) or the user (SQLite) may do with the store, for readiness.
    pub fn permissions(&self) -> Result<Vec<PermissionCheck>, StoreError> {
        self.home().permissions()
    }

    /// Opens the Master Key with `passphrase`.
    pub fn unlock(self, passphrase: &Passphrase) -> Result<UnlockedStore, StoreError> {
        let (store_id, row) = self.read(|rows| Ok((store_id(rows)?, rows.master_key()?)))?;
        let key = MasterKey::unwrap(&row, &store_id, passphrase)?;
        Ok(UnlockedStore {
            store: self,
            key,
            store_id,
        })
    }

    /// Checks that `passphrase` opens the current Master Key (as Update-SPSecureStoreApplicationServerKey).
    pub fn check_passphrase(&self, passphrase: &Passphrase) -> Result<MasterKeyInfo, StoreError> {
        let (store_id, row) = self.read(|rows| Ok((store_id(rows)?, rows.master_key()?)))?;
        MasterKey::unwrap(&row, &store_id, passphrase)?;
        Ok(row.info)
    }

    /// Writes a transactionally consistent copy of the store to `dest` (owner-only) and
    /// returns the summary read from the copy itself.
    pub fn snapshot_to(&self, dest: &Path) -> Result<StoreSummary, StoreError> {
        Ok(self.snapshot(dest)?.summary)
    }

    /// Writes the backup payload (an SQLite store file, whatever the home) into `out` from one
    /// consistent read, and says how it was kept consistent. A home that can stream its pages
    /// (SQLite) writes them as it reads them, with the summary read in the same transaction;
    /// any other writes a copy to `scratch` first (removed again) and the summary is read from
    /// that copy.
    pub fn snapshot_into(
        &self,
        out: &mut dyn std::io::Write,
        scratch: &Path,
    ) -> Result<Snapshot, SnapshotError> {
        let mut counted = None;
        let streamed = self.home().stream_snapshot(out, &mut |rows| {
            counted = Some(summary(rows)?);
            Ok(())
        })?;
        if let (Some(method), Some(summary)) = (streamed, counted) {
            return Ok(Snapshot { summary, method });
        }
        let taken = self.snapshot(scratch);
        let copied = taken.map_err(SnapshotError::from).and_then(|taken| {
            copy_into(scratch, out)?;
            Ok(taken)
        });
        let _ = std::fs::remove_file(scratch);
        copied
    }

    /// Writes the backup payload (an SQLite store file, whatever the home) to `dest` from one
    /// consistent read, and says how it was kept consistent.
    pub fn snapshot(&self, dest: &Path) -> Result<Snapshot, StoreError> {
        let method = self.home().snapshot_to(dest)?;
        let copy = SecureStore::open_read_only(dest)?;
        Ok(Snapshot {
            summary: copy.summary()?,
            method,
        })
    }

    /// Loads the store file `copy` (a restored backup, checked) into `location`: a new store,
    /// or, with `replace`, in place of the store there, in one transaction.
    pub fn load_copy(
        copy: &Path,
        location: &StoreLocation,
        replace: bool,
    ) -> Result<StoreSummary, StoreError> {
        let contents = SecureStore::open_read_only(copy)?.read(StoreContents::read)?;
        let store = match location {
            StoreLocation::SqlServer(_) => Self::create_with(location, &contents, replace)?,
            StoreLocation::Sqlite(_) if replace => {
                let store = Self::open_at(location)?;
                store.write(|rows| {
                    rows.clear()?;
                    contents.write(rows)
                })?;
                store
            }
            StoreLocation::Sqlite(_) => Self::create_with(location, &contents, false)?,
        };
        store.summary()
    }

    /// Applications, sorted by name.
    pub fn apps(&self) -> Result<Vec<TargetApp>, StoreError> {
        let mut apps = self.read(|rows| rows.apps(None))?;
        apps.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(apps)
    }

    pub fn app(&self, name: &str) -> Result<TargetApp, StoreError> {
        self.read(|rows| find_app(rows, name))
    }

    /// Adds one target application.
    pub fn create_app(&mut self, app: &TargetApp) -> Result<(), StoreError> {
        self.create_apps(std::slice::from_ref(app))
    }

    /// Adds several target applications in one transaction.
    pub fn create_apps(&mut self, apps: &[TargetApp]) -> Result<(), StoreError> {
        for app in apps {
            app.validate()?;
        }
        self.write(|rows| {
            for app in apps {
                if !rows.insert_app(app)? {
                    return Err(StoreError::AppExists {
                        name: app.name.clone(),
                    });
                }
            }
            Ok(())
        })
    }

    /// Removes an application and every credential set mapped to it.
    pub fn remove_app(&mut self, name: &str) -> Result<(), StoreError> {
        self.write(|rows| {
            if rows.delete_app(name)? {
                Ok(())
            } else {
                Err(StoreError::AppNotFound {
                    name: name.to_owned(),
                })
            }
        })
    }

    /// Principals that have a credential set for `app`, sorted.
    pub fn principals(&self, app: &str) -> Result<Vec<String>, StoreError> {
        let mut principals = self.read(|rows| {
            find_app(rows, app)?;
            rows.principals(app)
        })?;
        principals.sort();
        principals.dedup();
        Ok(principals)
    }

    /// Before a store file is replaced by a rename: lets SQLite roll back any interrupted
    /// transaction of the old file, so its journal cannot be replayed onto the new one.
    pub fn settle_before_replace(path: &Path) {
        sqlite::SqliteHome::settle_before_replace(path);
    }

    /// After a store file was replaced: removes a journal left by the old file, if any.
    pub fn remove_stale_journal(path: &Path) {
        sqlite::SqliteHome::remove_stale_journal(path);
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
        let key = &self.key;
        self.store.write(|rows| {
            let mut apps: HashMap<String, TargetApp> = HashMap::new();
            for set in sets {
                model::check_name("principal", &set.principal).map_err(|reason| {
                    StoreError::InvalidCredentials {
                        app: set.app.clone(),
                        reason,
                    }
                })?;
                if !apps.contains_key(&set.app) {
                    apps.insert(set.app.clone(), find_app(rows, &set.app)?);
                }
                let app = apps.get(&set.app).ok_or_else(unit_not_run)?;
                credentials::check_set(app, set)?;
                if app.app_type.is_group()
                    && let Some(group) = rows
                        .principals(&app.name)?
                        .into_iter()
                        .find(|p| *p != set.principal)
                {
                    return Err(StoreError::GroupAlreadyMapped {
                        app: app.name.clone(),
                        principal: group,
                    });
                }
                rows.delete_set(&set.app, &set.principal)?;
                let sealed: Vec<SealedValue> = set
                    .values
                    .iter()
                    .map(|(field, value)| {
                        credentials::seal(key, &set.app, &set.principal, field, value.as_bytes())
                    })
                    .collect();
                rows.insert_values(&sealed)?;
            }
            Ok(())
        })
    }

    /// The decrypted credential set of `principal` for `app`, in the application's field order.
    pub fn credentials(&self, app: &str, principal: &str) -> Result<CredentialSet, StoreError> {
        let (definition, stored) = self
            .store
            .read(|rows| Ok((find_app(rows, app)?, rows.values(app, principal)?)))?;
        let mut set = CredentialSet::new(app, principal);
        for field in &definition.fields {
            let Some(value) = stored.iter().find(|v| v.field == field.name) else {
                continue;
            };
            set.values.push((
                field.name.clone(),
                credentials::open_text(&self.key, value)?,
            ));
        }
        if set.values.is_empty() {
            return Err(StoreError::CredentialsNotFound {
                app: app.to_owned(),
                principal: principal.to_owned(),
            });
        }
        Ok(set)
    }

    /// Removes the credential set of `principal` for `app`.
    pub fn clear_credentials(&mut self, app: &str, principal: &str) -> Result<(), StoreError> {
        self.store.write(|rows| {
            find_app(rows, app)?;
            if rows.delete_set(app, principal)? {
                Ok(())
            } else {
                Err(StoreError::CredentialsNotFound {
                    app: app.to_owned(),
                    principal: principal.to_owned(),
                })
            }
        })
    }

    /// Creates a new Master Key protected by `new_passphrase` and re-encrypts every credential
    /// set under it, all in one transaction: after a crash (or a killed client, or a dropped
    /// connection) the store is entirely on the old key or entirely on the new one.
    pub fn change_master_key(
        &mut self,
        new_passphrase: &Passphrase,
        kdf: KdfParams,
    ) -> Result<MasterKeyInfo, StoreError> {
        new_passphrase.check_policy()?;
        kdf.check_writable()?;
        let new_key = MasterKey::generate();
        let (old_key, store_id) = (&self.key, &self.store_id);
        let info = self.store.write(|rows| {
            rows.reseal_all(&|values| {
                let mut aad = Vec::new();
                values
                    .iter_mut()
                    .try_for_each(|value| credentials::reseal(old_key, &new_key, value, &mut aad))
            })?;
            let generation = rows.master_key()?.info.generation + 1;
            let row = new_key.wrap(store_id, new_passphrase, kdf, generation)?;
            rows.put_master_key(&row)?;
            Ok(row.info)
        })?;
        self.key = new_key;
        Ok(info)
    }
}

fn store_id(rows: &mut dyn Rows) -> Result<String, StoreError> {
    rows.meta()?
        .into_iter()
        .find(|(key, _)| key == "store_id")
        .map(|(_, value)| value)
        .ok_or_else(|| StoreError::NotAStore {
            path: None,
            reason: "no store id recorded".into(),
        })
}

/// Copies the file `from` into `out`: a read failure names the file, a write failure is the
/// caller's to name.
fn copy_into(from: &Path, out: &mut dyn std::io::Write) -> Result<(), SnapshotError> {
    use std::io::Read;
    let read_error = |source| StoreError::Io {
        path: from.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(from).map_err(read_error)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(read_error)?;
        if n == 0 {
            return Ok(());
        }
        out.write_all(&buf[..n]).map_err(SnapshotError::Write)?;
    }
}

fn summary(rows: &mut dyn Rows) -> Result<StoreSummary, StoreError> {
    let (applications, credential_sets) = rows.counts()?;
    Ok(StoreSummary {
        store_id: store_id(rows)?,
        master_key: rows.master_key()?.info,
        applications,
        credential_sets,
    })
}

fn find_app(rows: &mut dyn Rows, name: &str) -> Result<TargetApp, StoreError> {
    rows.apps(Some(name))?
        .pop()
        .ok_or_else(|| StoreError::AppNotFound {
            name: name.to_owned(),
        })
}

fn unit_not_run() -> StoreError {
    StoreError::NotAStore {
        path: None,
        reason: "internal: a unit of work did not run".into(),
    }
}

/// An application row as read from either home (fields are added after).
fn model_row(
    name: String,
    friendly_name: String,
    contact_email: Option<String>,
    app_type: &str,
) -> Result<TargetApp, StoreError> {
    let app_type = app_type.parse().map_err(|reason| StoreError::InvalidApp {
        name: name.clone(),
        reason,
    })?;
    Ok(TargetApp {
        name,
        friendly_name,
        contact_email,
        app_type,
        fields: Vec::new(),
    })
}

/// A field row as read from either home.
fn field_row(
    app: &str,
    name: String,
    field_type: &str,
    masked: bool,
) -> Result<FieldDef, StoreError> {
    let field_type = field_type
        .parse()
        .map_err(|reason| StoreError::InvalidApp {
            name: app.to_owned(),
            reason,
        })?;
    Ok(FieldDef {
        name,
        field_type,
        masked,
    })
}

#[cfg(test)]
mod tests;
