//! The SQLite home: the store in one owner-only SQLite file (the default). Its file format is
//! also the backup payload of both homes (docs/FORMAT.md section 10).

mod reseal;
pub(crate) mod schema;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::credentials::SealedValue;
use super::home::{Home, PermissionCheck, Reseal, Rows, SnapshotMethod, StoreContents, Work};
use super::master_key::{MasterKeyInfo, MasterKeyRow};
use super::model::{FieldDef, TargetApp};
use super::{SnapshotError, StoreError};
use crate::kdf::KdfParams;

pub(crate) struct SqliteHome {
    conn: Connection,
    path: PathBuf,
}

impl SqliteHome {
    /// Creates the file (owner-only) and its tables, and fills them with `contents`; the file
    /// is removed again when anything fails.
    pub(crate) fn create(path: &Path, contents: &StoreContents) -> Result<Self, StoreError> {
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
            contents.write(&mut SqliteRows(&tx))?;
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

    /// Opens an existing store file, read-write or read-only.
    pub(crate) fn open(path: &Path, read_only: bool) -> Result<Self, StoreError> {
        if !path.is_file() {
            return Err(StoreError::NotFound {
                path: path.to_owned(),
            });
        }
        let flags = if read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE
        };
        let conn = open_connection(path, flags).map_err(|e| e.with_path(path))?;
        schema::check(&conn).map_err(|e| e.with_path(path))?;
        Ok(Self {
            conn,
            path: path.to_owned(),
        })
    }

    /// Before a store file is replaced by a rename: lets SQLite roll back any interrupted
    /// transaction of the old file, so its journal cannot be replayed onto the new one.
    pub(crate) fn settle_before_replace(path: &Path) {
        if let Ok(conn) = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE) {
            let _ = conn.busy_timeout(std::time::Duration::from_secs(10));
            let _ = conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            });
        }
    }

    /// After a store file was replaced: removes a journal left by the old file, if any.
    pub(crate) fn remove_stale_journal(path: &Path) {
        let mut journal = path.as_os_str().to_owned();
        journal.push("-journal");
        let _ = std::fs::remove_file(PathBuf::from(journal));
    }
}

impl Home for SqliteHome {
    fn read(&mut self, work: Work<'_>) -> Result<(), StoreError> {
        work(&mut SqliteRows(&self.conn)).map_err(|e| e.with_path(&self.path))
    }

    fn write(&mut self, work: Work<'_>) -> Result<(), StoreError> {
        let path = self.path.clone();
        (|| {
            // IMMEDIATE: the write lock is taken first, so writers queue instead of failing
            // when one of them upgrades a read lock.
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            work(&mut SqliteRows(&tx))?;
            tx.commit()?;
            Ok::<_, StoreError>(())
        })()
        .map_err(|e| e.with_path(&path))
    }

    /// Through SQLite's online backup API, which restarts if a writer changes the store
    /// meanwhile. The copy is a scratch file that staging reads once and removes (the stream
    /// written from it is what gets fsynced), so it is written without a journal or fsyncs, in
    /// steps of 64 MiB (4 KiB pages) between which a writer may take its turn.
    fn snapshot_to(&mut self, dest: &Path) -> Result<SnapshotMethod, StoreError> {
        const PAGES_PER_STEP: std::os::raw::c_int = 16 * 1024;
        crate::fsutil::create_private_file(dest).map_err(|source| StoreError::Io {
            path: dest.to_owned(),
            source,
        })?;
        let copied = (|| {
            let mut out = open_connection(dest, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
            out.pragma_update(None, "journal_mode", "OFF")?;
            out.pragma_update(None, "synchronous", "OFF")?;
            let backup = rusqlite::backup::Backup::new(&self.conn, &mut out)?;
            backup.run_to_completion(PAGES_PER_STEP, std::time::Duration::ZERO, None)?;
            Ok::<_, StoreError>(())
        })();
        copied.map_err(|e| e.with_path(dest))?;
        Ok(SnapshotMethod {
            consistency: "SQLite online backup API".into(),
            retries: Vec::new(),
        })
    }

    /// Every page as this one read transaction sees it, through SQLite's `sqlite_dbpage`
    /// table (built in: `.cargo/config.toml` sets `SQLITE_ENABLE_DBPAGE_VTAB`), so the
    /// payload is never written to disk unencrypted and is compressed while it is read.
    /// Writers wait meanwhile (up to the busy timeout, 10 s), as they wait for any reader.
    ///
    /// `within` (the counts, a full scan of the credentials' index) runs at the same time on
    /// a second read-only connection: with a rollback journal, the shared lock this
    /// transaction holds from its first read keeps every writer from committing until it
    /// ends, so a read transaction begun meanwhile sees exactly the same store. In WAL mode
    /// (never set by sstore), or when that second read cannot start, `within` runs in this
    /// transaction after the pages.
    fn stream_snapshot(
        &mut self,
        out: &mut dyn std::io::Write,
        within: Work<'_>,
    ) -> Result<Option<SnapshotMethod>, SnapshotError> {
        let path = self.path.clone();
        let store_error = |e: rusqlite::Error| StoreError::from(e).with_path(&path);
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)
            .map_err(store_error)?;
        let mut pages = match tx.prepare("SELECT pgno, data FROM sqlite_dbpage('main')") {
            Ok(stmt) => stmt,
            Err(e) if e.to_string().contains("no such table") => return Ok(None),
            Err(e) => return Err(store_error(e).into()),
        };
        // The first read: from here on this transaction holds the store's shared lock.
        let page_count: u64 = tx
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .map_err(store_error)?;
        let journal: String = tx
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(store_error)?;
        let (streamed, counted) = if journal.eq_ignore_ascii_case("wal") {
            (stream_pages(&mut pages, page_count, out, &path), None)
        } else {
            std::thread::scope(|scope| {
                let counter = scope.spawn(|| count_in_second_read(&path, &mut *within));
                let streamed = stream_pages(&mut pages, page_count, out, &path);
                (streamed, Some(counter.join()))
            })
        };
        streamed?;
        if !matches!(counted, Some(Ok(Ok(())))) {
            within(&mut SqliteRows(&tx)).map_err(|e| e.with_path(&path))?;
        }
        Ok(Some(SnapshotMethod {
            consistency: "one SQLite read transaction".into(),
            retries: Vec::new(),
        }))
    }

    /// `PRAGMA quick_check`: every page, cell and record of every table and index, the free
    /// list, and NOT NULL constraints, in time linear in the file. It leaves out
    /// `integrity_check`'s cross-check that each index holds exactly its table's rows, which
    /// costs four times as long on a 1M-set store (1.23 s against 0.31 s) and which a copy
    /// proven byte for byte the store's own (every chunk authenticated, the plaintext's
    /// SHA-256 as recorded) cannot fail unless the live store already did.
    fn integrity_problems(&mut self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare("PRAGMA quick_check")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let problems: Vec<String> = rows.collect::<Result<_, _>>()?;
        Ok(problems.into_iter().filter(|p| p != "ok").collect())
    }

    /// Nothing beyond opening: a backup only reads the file, and the staging check covers
    /// where the copy goes.
    fn permissions(&mut self) -> Result<Vec<PermissionCheck>, StoreError> {
        Ok(Vec::new())
    }
}

/// Row operations on a connection or on a transaction (which dereferences to one).
pub(crate) struct SqliteRows<'a>(pub(crate) &'a Connection);

impl Rows for SqliteRows<'_> {
    fn meta(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = self.0.prepare("SELECT key, value FROM meta ORDER BY key")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn put_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            [key, value],
        )?;
        Ok(())
    }

    fn master_key(&mut self) -> Result<MasterKeyRow, StoreError> {
        Ok(self.0.query_row(
            "SELECT key_id, generation, kdf_memory_kib, kdf_iterations, kdf_parallelism, created_at, salt, nonce, wrapped
             FROM master_key WHERE id = 1",
            [],
            |r| {
                Ok(MasterKeyRow {
                    info: MasterKeyInfo {
                        key_id: r.get(0)?,
                        generation: r.get(1)?,
                        kdf: KdfParams {
                            memory_kib: r.get(2)?,
                            iterations: r.get(3)?,
                            parallelism: r.get(4)?,
                        },
                        created_at: r.get(5)?,
                    },
                    salt: r.get(6)?,
                    nonce: r.get(7)?,
                    wrapped: r.get(8)?,
                })
            },
        )?)
    }

    fn put_master_key(&mut self, row: &MasterKeyRow) -> Result<(), StoreError> {
        let info = &row.info;
        self.0.execute(
            "INSERT OR REPLACE INTO master_key
               (id, key_id, generation, kdf_memory_kib, kdf_iterations, kdf_parallelism, salt, nonce, wrapped, created_at)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                info.key_id,
                info.generation,
                info.kdf.memory_kib,
                info.kdf.iterations,
                info.kdf.parallelism,
                row.salt,
                row.nonce,
                row.wrapped,
                info.created_at,
            ],
        )?;
        Ok(())
    }

    fn apps(&mut self, only: Option<&str>) -> Result<Vec<TargetApp>, StoreError> {
        let mut stmt = self.0.prepare(
            "SELECT name, friendly_name, contact_email, app_type FROM applications
             WHERE ?1 IS NULL OR name = ?1",
        )?;
        let rows = stmt.query_map([only], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        let mut apps = Vec::new();
        for row in rows {
            let (name, friendly_name, contact_email, app_type) = row?;
            apps.push(super::model_row(
                name,
                friendly_name,
                contact_email,
                &app_type,
            )?);
        }
        let mut fields = self.0.prepare(
            "SELECT name, field_type, masked FROM fields WHERE app = ?1 ORDER BY position",
        )?;
        for app in &mut apps {
            let rows = fields.query_map([&app.name], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, bool>(2)?,
                ))
            })?;
            for row in rows {
                let (name, ty, masked) = row?;
                app.fields
                    .push(super::field_row(&app.name, name, &ty, masked)?);
            }
        }
        Ok(apps)
    }

    fn insert_app(&mut self, app: &TargetApp) -> Result<bool, StoreError> {
        let inserted = self.0.execute(
            "INSERT OR IGNORE INTO applications (name, friendly_name, contact_email, app_type) VALUES (?1, ?2, ?3, ?4)",
            params![app.name, app.friendly_name, app.contact_email, app.app_type.as_str()],
        )?;
        if inserted == 0 {
            return Ok(false);
        }
        for (
            position,
            FieldDef {
                name,
                field_type,
                masked,
            },
        ) in app.fields.iter().enumerate()
        {
            self.0.execute(
                "INSERT INTO fields (app, position, name, field_type, masked) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![app.name, position as i64, name, field_type.as_str(), masked],
            )?;
        }
        Ok(true)
    }

    fn delete_app(&mut self, name: &str) -> Result<bool, StoreError> {
        self.0
            .execute("DELETE FROM credentials WHERE app = ?1", [name])?;
        self.0
            .execute("DELETE FROM fields WHERE app = ?1", [name])?;
        Ok(self
            .0
            .execute("DELETE FROM applications WHERE name = ?1", [name])?
            > 0)
    }

    fn principals(&mut self, app: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .0
            .prepare_cached("SELECT DISTINCT principal FROM credentials WHERE app = ?1")?;
        let rows = stmt.query_map([app], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn values(&mut self, app: &str, principal: &str) -> Result<Vec<SealedValue>, StoreError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT field, nonce, value FROM credentials WHERE app = ?1 AND principal = ?2",
        )?;
        let rows = stmt.query_map([app, principal], |r| {
            Ok(SealedValue {
                app: app.to_owned(),
                principal: principal.to_owned(),
                field: r.get(0)?,
                nonce: r.get(1)?,
                sealed: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn delete_set(&mut self, app: &str, principal: &str) -> Result<bool, StoreError> {
        Ok(self.0.execute(
            "DELETE FROM credentials WHERE app = ?1 AND principal = ?2",
            [app, principal],
        )? > 0)
    }

    fn insert_values(&mut self, values: &[SealedValue]) -> Result<(), StoreError> {
        let mut insert = self.0.prepare_cached(
            "INSERT INTO credentials (app, principal, field, nonce, value) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for v in values {
            insert.execute(params![v.app, v.principal, v.field, v.nonce, v.sealed])?;
        }
        Ok(())
    }

    fn all_values(&mut self) -> Result<Vec<SealedValue>, StoreError> {
        let mut stmt = self.0.prepare(
            "SELECT app, principal, field, nonce, value FROM credentials ORDER BY rowid",
        )?;
        let rows = stmt.query_map([], |r| sealed_value(r, 0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A page of values at a time, re-encrypted on a second thread (see [`reseal`]).
    fn reseal_all(&mut self, reseal: Reseal<'_>) -> Result<(), StoreError> {
        reseal::reseal_all(self.0, reseal)
    }

    fn counts(&mut self) -> Result<(u64, u64), StoreError> {
        let apps: u64 = self
            .0
            .query_row("SELECT COUNT(*) FROM applications", [], |r| r.get(0))?;
        let sets: u64 = self.0.query_row(
            "SELECT COUNT(*) FROM (SELECT DISTINCT app, principal FROM credentials)",
            [],
            |r| r.get(0),
        )?;
        Ok((apps, sets))
    }

    fn clear(&mut self) -> Result<(), StoreError> {
        self.0.execute_batch(
            "DELETE FROM credentials; DELETE FROM fields; DELETE FROM applications;
             DELETE FROM master_key; DELETE FROM meta WHERE key <> 'schema_version';",
        )?;
        Ok(())
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

/// The value in the row's columns `app, principal, field, nonce, value`, from column `first`.
fn sealed_value(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<SealedValue> {
    Ok(SealedValue {
        app: r.get(first)?,
        principal: r.get(first + 1)?,
        field: r.get(first + 2)?,
        nonce: r.get(first + 3)?,
        sealed: r.get(first + 4)?,
    })
}

pub(crate) fn optional<T>(r: rusqlite::Result<T>) -> rusqlite::Result<Option<T>> {
    r.optional()
}

/// A snapshot that did not read the whole file (which SQLite should never allow).
/// Writes every page the statement `pages` (over `sqlite_dbpage`) yields into `out`, checking
/// they come in order and number `page_count`.
fn stream_pages(
    pages: &mut rusqlite::Statement<'_>,
    page_count: u64,
    out: &mut dyn std::io::Write,
    path: &Path,
) -> Result<(), SnapshotError> {
    let store_error = |e: rusqlite::Error| StoreError::from(e).with_path(path);
    let mut rows = pages.query([]).map_err(store_error)?;
    let mut next = 1u64;
    while let Some(row) = rows.next().map_err(store_error)? {
        let pgno: u64 = row.get(0).map_err(store_error)?;
        let data = row
            .get_ref(1)
            .and_then(|v| v.as_blob().map_err(Into::into))
            .map_err(store_error)?;
        if pgno != next {
            return Err(not_whole(
                path,
                format!("page {pgno} came where page {next} was due"),
            ));
        }
        out.write_all(data).map_err(SnapshotError::Write)?;
        next += 1;
    }
    if next - 1 != page_count {
        return Err(not_whole(
            path,
            format!("{} of its {page_count} pages were read", next - 1),
        ));
    }
    Ok(())
}

/// Runs `work` in a read transaction of a new read-only connection to the store at `path`.
fn count_in_second_read(path: &Path, work: Work<'_>) -> Result<(), StoreError> {
    let mut conn =
        open_connection(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| e.with_path(path))?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)
        .map_err(|e| StoreError::from(e).with_path(path))?;
    work(&mut SqliteRows(&tx)).map_err(|e| e.with_path(path))
}

fn not_whole(path: &Path, reason: String) -> SnapshotError {
    StoreError::NotAStore {
        path: Some(path.to_owned()),
        reason: format!("SQLite gave an incomplete snapshot ({reason}); nothing was backed up, run the backup again"),
    }
    .into()
}
