//! The store interface: what a home (an SQLite file, a SQL Server database) offers the shared
//! logic in [`super`]. A home keeps rows and transactions; the model, the passphrase policy,
//! the Master Key wrapping and the per-value encryption are written once, above it.

use std::path::Path;

use super::credentials::SealedValue;
use super::master_key::MasterKeyRow;
use super::model::TargetApp;
use super::{SnapshotError, StoreError};

/// Row operations inside one unit of work (a transaction for writes). Names are compared
/// exactly (byte for byte), in both homes.
pub(crate) trait Rows {
    /// Every `meta` entry (`store_id`, `schema_version`, `created_at`).
    fn meta(&mut self) -> Result<Vec<(String, String)>, StoreError>;
    fn put_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError>;
    fn master_key(&mut self) -> Result<MasterKeyRow, StoreError>;
    /// Replaces the store's only Master Key row.
    fn put_master_key(&mut self, row: &MasterKeyRow) -> Result<(), StoreError>;
    /// Applications (all, or the one named) with their fields in order; any order.
    fn apps(&mut self, only: Option<&str>) -> Result<Vec<TargetApp>, StoreError>;
    /// Adds an application and its fields; `false` when one of that name exists.
    fn insert_app(&mut self, app: &TargetApp) -> Result<bool, StoreError>;
    /// Removes an application, its fields and its credential sets; `false` when unknown.
    fn delete_app(&mut self, name: &str) -> Result<bool, StoreError>;
    /// Principals with a credential set for `app`; any order.
    fn principals(&mut self, app: &str) -> Result<Vec<String>, StoreError>;
    /// The stored values of one credential set; any order.
    fn values(&mut self, app: &str, principal: &str) -> Result<Vec<SealedValue>, StoreError>;
    /// Removes a credential set; `false` when there was none.
    fn delete_set(&mut self, app: &str, principal: &str) -> Result<bool, StoreError>;
    fn insert_values(&mut self, values: &[SealedValue]) -> Result<(), StoreError>;
    /// Every stored value.
    fn all_values(&mut self) -> Result<Vec<SealedValue>, StoreError>;
    /// Passes every stored value through `reseal` (which replaces its nonce and ciphertext)
    /// and stores the result, inside the unit of work; how many values a home holds in
    /// memory at once is its own choice.
    fn reseal_all(&mut self, reseal: Reseal<'_>) -> Result<(), StoreError>;
    /// Applications and credential sets.
    fn counts(&mut self) -> Result<(u64, u64), StoreError>;
    /// Removes every row (before a restore loads a backup's contents).
    fn clear(&mut self) -> Result<(), StoreError>;
}

/// Re-encrypts stored values in place. `Sync`, so a home may run it on another thread while
/// it reads and writes rows.
pub(crate) type Reseal<'a> = &'a (dyn Fn(&mut [SealedValue]) -> Result<(), StoreError> + Sync);

/// One unit of work over a home's rows.
pub(crate) type Work<'a> = &'a mut (dyn FnMut(&mut dyn Rows) -> Result<(), StoreError> + Send);

/// How a snapshot was kept consistent, and what it took: for the job log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotMethod {
    /// E.g. "one SQLite read transaction", "SQL Server SNAPSHOT isolation transaction".
    pub consistency: String,
    /// Attempts that failed and were retried (deadlock victim, dropped connection).
    pub retries: Vec<String>,
}

/// Where a store lives.
pub(crate) trait Home: Send {
    /// Reads without changing anything (each read sees committed data).
    fn read(&mut self, work: Work<'_>) -> Result<(), StoreError>;
    /// One write transaction: all of it or nothing, serialized with every other writer.
    fn write(&mut self, work: Work<'_>) -> Result<(), StoreError>;
    /// Writes the backup payload (an SQLite store file, docs/FORMAT.md section 10) to `dest`
    /// (a new owner-only file) from one consistent read of the whole store.
    fn snapshot_to(&mut self, dest: &Path) -> Result<SnapshotMethod, StoreError>;
    /// Writes the same payload into `out` as it is read, with no copy on disk: `within` runs
    /// first in the same read transaction (for the counts that describe it). `Ok(None)` when
    /// this home cannot stream, before anything is written; the caller then uses
    /// [`Home::snapshot_to`].
    fn stream_snapshot(
        &mut self,
        out: &mut dyn std::io::Write,
        within: Work<'_>,
    ) -> Result<Option<SnapshotMethod>, SnapshotError> {
        let _ = (out, within);
        Ok(None)
    }
    /// The engine's own integrity problems (empty when healthy, or when the engine checks
    /// its pages itself).
    fn integrity_problems(&mut self) -> Result<Vec<String>, StoreError>;
    /// What the connected login may do here, for readiness.
    fn permissions(&mut self) -> Result<Vec<PermissionCheck>, StoreError>;
}

/// One permission readiness looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionCheck {
    /// What was checked (e.g. "read and write the store's tables").
    pub what: String,
    pub granted: bool,
    /// Whether sstore cannot work without it (else only some operations need it).
    pub required: bool,
    /// What was found, and when missing, which role or grant gives it.
    pub detail: String,
}

/// Everything a store holds, row for row: what a backup carries between homes.
#[derive(Debug, Clone)]
pub(crate) struct StoreContents {
    pub meta: Vec<(String, String)>,
    pub master_key: MasterKeyRow,
    pub apps: Vec<TargetApp>,
    pub values: Vec<SealedValue>,
}

impl StoreContents {
    pub(crate) fn read(rows: &mut dyn Rows) -> Result<Self, StoreError> {
        let mut apps = rows.apps(None)?;
        apps.sort_by(|a, b| a.name.cmp(&b.name));
        let mut values = rows.all_values()?;
        values.sort_by(|a, b| {
            (&a.app, &a.principal, &a.field).cmp(&(&b.app, &b.principal, &b.field))
        });
        Ok(Self {
            meta: rows.meta()?,
            master_key: rows.master_key()?,
            apps,
            values,
        })
    }

    /// Writes the contents into an empty store (inside the caller's transaction); the
    /// destination's own `schema_version` is kept.
    pub(crate) fn write(&self, rows: &mut dyn Rows) -> Result<(), StoreError> {
        for (key, value) in &self.meta {
            if key != "schema_version" {
                rows.put_meta(key, value)?;
            }
        }
        rows.put_master_key(&self.master_key)?;
        for app in &self.apps {
            if !rows.insert_app(app)? {
                return Err(StoreError::AppExists {
                    name: app.name.clone(),
                });
            }
        }
        rows.insert_values(&self.values)
    }
}

/// Runs `f` where it may block: on this thread, or on a scoped thread when this one drives
/// an async runtime (a home on SQL Server runs its own runtime, which cannot start inside
/// another one).
pub(crate) fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|scope| match scope.spawn(f).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}
