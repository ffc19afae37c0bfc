//! The SQL Server home: the store in a database on Microsoft SQL Server 2016+, Azure SQL or
//! Babelfish, through tiberius (TDS 7.3, TLS by rustls). The T-SQL is all in [`tsql`], which
//! says what it keeps to so every one of those engines accepts it.
//!
//! tiberius is async; this home drives it on its own single-thread runtime, so the store keeps
//! one blocking interface for both homes (calls from inside another runtime hop to a scoped
//! thread, see [`off_runtime`]).

mod errors;
mod tsql;

use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tiberius::{Client, EncryptionLevel, Query, Row};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};
use zeroize::Zeroizing;

use super::credentials::SealedValue;
use super::home::{
    Home, PermissionCheck, Reseal, Rows, SnapshotMethod, StoreContents, Work, off_runtime,
};
use super::location::{Encryption, PasswordSource, SqlAuth, SqlServerConfig};
use super::master_key::{MasterKeyInfo, MasterKeyRow};
use super::model::TargetApp;
use super::{SqlServerError, StoreError};
use crate::kdf::KdfParams;
use errors::{Stage, map_error};

type Connection = Client<Compat<TcpStream>>;

/// How often a read-only backup is tried when it meets a deadlock or a lost connection.
const SNAPSHOT_ATTEMPTS: u32 = 4;

pub(crate) struct SqlServerHome {
    config: SqlServerConfig,
    runtime: OwnRuntime,
    /// `None` after a failure that leaves the connection unusable: the next use reconnects.
    client: Option<Connection>,
}

/// The home's own single-thread runtime. Shut down without blocking when the home is dropped,
/// which may happen inside another runtime (where dropping a runtime the ordinary way panics).
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl OwnRuntime {
    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        match &self.0 {
            Some(runtime) => runtime.block_on(future),
            None => unreachable!("the runtime is taken only when the home is dropped"),
        }
    }
}

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for SqlServerHome {
    fn drop(&mut self) {
        // The connection closes first, while its runtime still exists.
        self.client = None;
    }
}

impl SqlServerHome {
    /// Opens the store in the configured database (the schema version is checked).
    pub(crate) fn open(config: &SqlServerConfig) -> Result<Self, StoreError> {
        config.check()?;
        let mut home = Self {
            config: config.clone(),
            runtime: runtime(config)?,
            client: None,
        };
        off_runtime(|| home.check_schema())?;
        Ok(home)
    }

    /// Creates the store's tables in the configured database (creating the database when it
    /// does not exist, which needs dbcreator) and fills them with `contents`, in one
    /// transaction. With `replace`, an existing store there is emptied and refilled instead
    /// (a restore with --method overwrite), in the same single transaction.
    pub(crate) fn create(
        config: &SqlServerConfig,
        contents: &StoreContents,
        replace: bool,
    ) -> Result<Self, StoreError> {
        config.check()?;
        let mut home = Self {
            config: config.clone(),
            runtime: runtime(config)?,
            client: None,
        };
        off_runtime(|| {
            match home.connection().map(|_| ()) {
                Ok(()) => {}
                Err(SqlServerError::DatabaseMissing { .. }) => home.create_database()?,
                Err(e) => return Err(e.into()),
            }
            home.in_write_transaction(&mut |server| {
                let present = server.scalar_i64(tsql::TABLES_EXIST)? == 1;
                if present {
                    server.check_schema()?;
                    if !replace {
                        return Err(SqlServerError::AlreadyExists {
                            server: server.config().server(),
                            database: server.config().database.clone(),
                        }
                        .into());
                    }
                    server.batch(tsql::CLEAR)?;
                } else {
                    for create in tsql::CREATE_TABLES {
                        server.batch(create)?;
                    }
                    server.put_meta("schema_version", &tsql::SCHEMA_VERSION.to_string())?;
                }
                contents.write(server)
            })?;
            // Best effort: lets backups read under SNAPSHOT on SQL Server (Babelfish needs
            // no setting and refuses the statement; a login without ALTER keeps SERIALIZABLE).
            let _ = home.rows().batch(tsql::ALLOW_SNAPSHOT);
            Ok::<_, StoreError>(())
        })?;
        Ok(home)
    }

    /// The open connection, logging in first when there is none.
    fn connection(&mut self) -> Result<&mut Connection, SqlServerError> {
        if self.client.is_none() {
            let client = self
                .runtime
                .block_on(connect(&self.config, &self.config.database))?;
            self.client = Some(client);
        }
        self.client
            .as_mut()
            .ok_or_else(|| SqlServerError::Protocol {
                server: self.config.server(),
                database: self.config.database.clone(),
                message: "no connection".into(),
            })
    }

    /// `CREATE DATABASE`, connected to `master`.
    fn create_database(&mut self) -> Result<(), StoreError> {
        let config = &self.config;
        self.runtime.block_on(async {
            let mut master = connect(config, "master").await?;
            master
                .simple_query(tsql::create_database(&config.database))
                .await
                .map_err(|e| map_error(e, config, "master", Stage::Statement))?
                .into_results()
                .await
                .map_err(|e| map_error(e, config, "master", Stage::Statement))?;
            Ok::<_, SqlServerError>(())
        })?;
        Ok(())
    }

    fn check_schema(&mut self) -> Result<(), StoreError> {
        self.rows().check_schema()
    }

    fn rows(&mut self) -> ServerRows<'_> {
        ServerRows { home: self }
    }

    /// Runs `work` in a write transaction that holds the writer lock; rolls back on error.
    fn in_write_transaction(
        &mut self,
        work: &mut dyn FnMut(&mut ServerRows<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let lock_ms = self.config.lock_timeout.as_millis() as u64;
        let mut rows = self.rows();
        let granted = rows.scalar_i64(&tsql::begin_write(lock_ms));
        let result = match granted {
            Ok(code) if code >= 0 => work(&mut rows).and_then(|()| rows.batch(tsql::COMMIT)),
            Ok(code) => Err(rows.lock_refused(code).into()),
            Err(e) => Err(e),
        };
        if result.is_err() {
            rows.rollback();
        }
        result
    }

    /// One read of the whole store in one transaction: SNAPSHOT isolation, or SERIALIZABLE
    /// where the database does not allow SNAPSHOT.
    fn read_consistent(&mut self) -> Result<(StoreContents, String), StoreError> {
        let mut rows = self.rows();
        rows.batch(tsql::BEGIN_SNAPSHOT)?;
        match StoreContents::read(&mut rows) {
            Ok(contents) => {
                rows.batch(tsql::COMMIT)?;
                return Ok((
                    contents,
                    "one SQL Server SNAPSHOT isolation transaction".into(),
                ));
            }
            Err(StoreError::SqlServer(SqlServerError::Server { code: 3952, .. })) => {
                rows.rollback();
            }
            Err(e) => {
                rows.rollback();
                return Err(e);
            }
        }
        rows.batch(tsql::BEGIN_SERIALIZABLE)?;
        match StoreContents::read(&mut rows) {
            Ok(contents) => {
                rows.batch(tsql::COMMIT)?;
                Ok((
                    contents,
                    "one SQL Server SERIALIZABLE transaction (the database does not allow SNAPSHOT isolation: `ALTER DATABASE ... SET ALLOW_SNAPSHOT_ISOLATION ON` lets backups read without blocking writers)".into(),
                ))
            }
            Err(e) => {
                rows.rollback();
                Err(e)
            }
        }
    }

    /// Drops a connection an error left unusable (lost, timed out mid-answer).
    fn forget_connection_after(&mut self, err: &StoreError) {
        if let StoreError::SqlServer(
            SqlServerError::ConnectionLost { .. }
            | SqlServerError::Timeout { .. }
            | SqlServerError::Protocol { .. },
        ) = err
        {
            self.client = None;
        }
    }
}

impl Home for SqlServerHome {
    fn read(&mut self, work: Work<'_>) -> Result<(), StoreError> {
        off_runtime(|| {
            let result = work(&mut self.rows());
            if let Err(e) = &result {
                self.forget_connection_after(e);
            }
            result
        })
    }

    fn write(&mut self, work: Work<'_>) -> Result<(), StoreError> {
        off_runtime(|| {
            let result = self.in_write_transaction(&mut |rows| work(rows));
            if let Err(e) = &result {
                self.forget_connection_after(e);
            }
            result
        })
    }

    /// Reads everything in one transaction (retrying a deadlock or a lost connection: the
    /// read changes nothing), then writes it as an SQLite store file.
    fn snapshot_to(&mut self, dest: &Path) -> Result<SnapshotMethod, StoreError> {
        let (contents, consistency, retries) = off_runtime(|| {
            let mut retries = Vec::new();
            let mut attempt = 1;
            loop {
                match self.read_consistent() {
                    Ok((contents, consistency)) => return Ok((contents, consistency, retries)),
                    Err(StoreError::SqlServer(e))
                        if e.is_retryable() && attempt < SNAPSHOT_ATTEMPTS =>
                    {
                        retries.push(format!("attempt {attempt}: {e}"));
                        self.client = None;
                        std::thread::sleep(Duration::from_millis(250 << attempt));
                        attempt += 1;
                    }
                    Err(StoreError::SqlServer(SqlServerError::Deadlock {
                        server,
                        database,
                        ..
                    })) if attempt > 1 => {
                        return Err(SqlServerError::Deadlock {
                            server,
                            database,
                            retried: true,
                        }
                        .into());
                    }
                    Err(e) => {
                        self.forget_connection_after(&e);
                        return Err(e);
                    }
                }
            }
        })?;
        super::sqlite::SqliteHome::create(dest, &contents)?;
        Ok(SnapshotMethod {
            consistency,
            retries,
        })
    }

    fn integrity_problems(&mut self) -> Result<Vec<String>, StoreError> {
        // The engine checks its own pages (DBCC CHECKDB is the DBA's tool); every value is
        // authenticated when read.
        Ok(Vec::new())
    }

    fn permissions(&mut self) -> Result<Vec<PermissionCheck>, StoreError> {
        off_runtime(|| self.rows().permissions())
    }
}

/// The rows of the store, over the home's connection.
pub(crate) struct ServerRows<'a> {
    home: &'a mut SqlServerHome,
}

impl ServerRows<'_> {
    fn config(&self) -> &SqlServerConfig {
        &self.home.config
    }

    /// Runs a batch (no parameters), dropping its results.
    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        let home = &mut *self.home;
        let (config, runtime) = (&home.config, &home.runtime);
        let client = connected(&mut home.client, config, runtime)?;
        runtime
            .block_on(async { client.simple_query(sql).await?.into_results().await })
            .map_err(|e| map_error(e, config, &config.database, Stage::Statement))?;
        Ok(())
    }

    /// The last result set's first column of its first row, as a number.
    fn scalar_i64(&mut self, sql: &str) -> Result<i64, StoreError> {
        let home = &mut *self.home;
        let (config, runtime) = (&home.config, &home.runtime);
        let client = connected(&mut home.client, config, runtime)?;
        let results = runtime
            .block_on(async { client.simple_query(sql).await?.into_results().await })
            .map_err(|e| map_error(e, config, &config.database, Stage::Statement))?;
        let row = results.last().and_then(|rows| rows.first());
        match row.map(|r| (r.try_get::<i32, _>(0), r.try_get::<i64, _>(0))) {
            Some((Ok(Some(v)), _)) => Ok(i64::from(v)),
            Some((_, Ok(Some(v)))) => Ok(v),
            _ => Err(self
                .protocol(format!("no number in the answer to: {sql}"))
                .into()),
        }
    }

    /// Runs a statement with parameters and returns its rows.
    fn query(&mut self, query: Query<'_>) -> Result<Vec<Row>, StoreError> {
        let home = &mut *self.home;
        let (config, runtime) = (&home.config, &home.runtime);
        let client = connected(&mut home.client, config, runtime)?;
        Ok(runtime
            .block_on(async { query.query(client).await?.into_first_result().await })
            .map_err(|e| map_error(e, config, &config.database, Stage::Statement))?)
    }

    /// Runs statements with parameters; returns the rows each changed.
    fn execute(&mut self, query: Query<'_>) -> Result<Vec<u64>, StoreError> {
        let home = &mut *self.home;
        let (config, runtime) = (&home.config, &home.runtime);
        let client = connected(&mut home.client, config, runtime)?;
        let result = runtime
            .block_on(query.execute(client))
            .map_err(|e| map_error(e, config, &config.database, Stage::Statement))?;
        Ok(result.rows_affected().to_vec())
    }

    fn rollback(&mut self) {
        if self.home.client.is_some() && self.batch(tsql::ROLLBACK).is_err() {
            // The server rolls back what a broken session left open.
            self.home.client = None;
        }
    }

    fn protocol(&self, message: String) -> SqlServerError {
        SqlServerError::Protocol {
            server: self.config().server(),
            database: self.config().database.clone(),
            message,
        }
    }

    fn lock_refused(&self, code: i64) -> SqlServerError {
        let (server, database) = (self.config().server(), self.config().database.clone());
        match code {
            -3 => SqlServerError::Deadlock {
                server,
                database,
                retried: false,
            },
            -1 | -999 => SqlServerError::Busy {
                server,
                database,
                waited_secs: self.config().lock_timeout.as_secs(),
            },
            other => SqlServerError::Server {
                server,
                database,
                code: 0,
                message: format!("sp_getapplock returned {other}"),
            },
        }
    }

    fn check_schema(&mut self) -> Result<(), StoreError> {
        let rows = self.query(Query::new(tsql::SCHEMA_VERSION_QUERY))?;
        let found: Option<String> = rows
            .first()
            .and_then(|r| text(r, 0).ok().flatten())
            .map(str::to_owned);
        match found {
            Some(v) if v == tsql::SCHEMA_VERSION.to_string() => Ok(()),
            found => Err(SqlServerError::SchemaVersion {
                server: self.config().server(),
                database: self.config().database.clone(),
                found: found.unwrap_or_else(|| "(none recorded)".into()),
                supported: tsql::SCHEMA_VERSION,
            }
            .into()),
        }
    }

    fn permissions(&mut self) -> Result<Vec<PermissionCheck>, StoreError> {
        let (sql, checks) = tsql::permissions_query();
        let database = self.config().database.clone();
        let rows = match self.query(Query::new(sql)) {
            Ok(rows) => rows,
            Err(e) => {
                return Ok(vec![PermissionCheck {
                    what: "the login's permissions".into(),
                    granted: false,
                    required: false,
                    detail: format!(
                        "could not be checked ({e}); the store opened, so reading works"
                    ),
                }]);
            }
        };
        let row = rows.first();
        let flag = |i: usize| -> Option<bool> {
            let row = row?;
            match row.try_get::<i32, _>(i) {
                Ok(v) => v.map(|v| v == 1),
                Err(_) => row.try_get::<bool, _>(i).ok().flatten(),
            }
        };
        let missing: Vec<String> = checks
            .iter()
            .enumerate()
            .filter(|(i, _)| flag(*i) != Some(true))
            .map(|(_, (table, right))| format!("{right} on {table}"))
            .collect();
        let create_database = flag(checks.len()) == Some(true);
        let db_owner = flag(checks.len() + 1) == Some(true);
        let mut out = vec![PermissionCheck {
            what: "read and write the store's tables".into(),
            granted: missing.is_empty(),
            required: true,
            detail: if missing.is_empty() {
                format!(
                    "the login may read and write every sstore table in '{database}'{}",
                    if db_owner { " (db_owner)" } else { "" }
                )
            } else {
                format!(
                    "missing: {}; make the login's user a member of db_owner in '{database}' (ALTER ROLE db_owner ADD MEMBER <user>), or of db_datareader and db_datawriter",
                    missing.join(", ")
                )
            },
        }];
        out.push(PermissionCheck {
            what: "create a database (restore --method new to a new database)".into(),
            granted: create_database,
            required: false,
            detail: if create_database {
                "the login may create databases".into()
            } else {
                "the login may not create databases: `restore --method new --new-store mssql://.../NewDB` needs the dbcreator server role (ALTER SERVER ROLE dbcreator ADD MEMBER <login>), or an existing empty database where it is db_owner".into()
            },
        });
        Ok(out)
    }

    fn put_values(&mut self, values: &[SealedValue]) -> Result<(), StoreError> {
        /// A value with the name keys of its application, principal and field.
        type KeyedValue<'a> = ([u8; 32], [u8; 32], [u8; 32], &'a SealedValue);
        let keyed: Vec<KeyedValue<'_>> = values
            .iter()
            .map(|v| {
                (
                    name_key(&v.app),
                    name_key(&v.principal),
                    name_key(&v.field),
                    v,
                )
            })
            .collect();
        for chunk in keyed.chunks(tsql::rows_per_insert(tsql::VALUE_PARAMS)) {
            let mut query = Query::new(tsql::insert_values(chunk.len()));
            for (app, principal, field, v) in chunk {
                query.bind(&app[..]);
                query.bind(&principal[..]);
                query.bind(&field[..]);
                query.bind(v.principal.as_str());
                query.bind(v.nonce.as_slice());
                query.bind(v.sealed.as_slice());
            }
            self.execute(query)?;
        }
        Ok(())
    }
}

impl Rows for ServerRows<'_> {
    fn meta(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = self.query(Query::new(tsql::SELECT_META))?;
        rows.iter()
            .map(|r| Ok((owned_text(r, 0)?, owned_text(r, 1)?)))
            .collect::<Result<_, SqlServerError>>()
            .map_err(|e| self.retag(e))
    }

    fn put_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        let mut query = Query::new(tsql::PUT_META);
        query.bind(key);
        query.bind(value);
        self.execute(query)?;
        Ok(())
    }

    fn master_key(&mut self) -> Result<MasterKeyRow, StoreError> {
        let rows = self.query(Query::new(tsql::SELECT_MASTER_KEY))?;
        let row = rows
            .first()
            .ok_or_else(|| self.protocol("the store has no Master Key row".into()))?;
        let number = |i: usize| -> Result<u32, SqlServerError> {
            let v = int(row, i)?;
            u32::try_from(v).map_err(|_| bad_column(i))
        };
        Ok(MasterKeyRow {
            info: MasterKeyInfo {
                key_id: owned_text(row, 0)?,
                generation: u64::try_from(int(row, 1)?).map_err(|_| bad_column(1))?,
                kdf: KdfParams {
                    memory_kib: number(2)?,
                    iterations: number(3)?,
                    parallelism: number(4)?,
                },
                created_at: owned_text(row, 5)?,
            },
            salt: bytes(row, 6)?,
            nonce: bytes(row, 7)?,
            wrapped: bytes(row, 8)?,
        })
    }

    fn put_master_key(&mut self, row: &MasterKeyRow) -> Result<(), StoreError> {
        let info = &row.info;
        let generation = i64::try_from(info.generation)
            .map_err(|_| self.protocol(format!("generation {} is too large", info.generation)))?;
        let mut query = Query::new(tsql::PUT_MASTER_KEY);
        query.bind(info.key_id.as_str());
        query.bind(generation);
        query.bind(i64::from(info.kdf.memory_kib));
        query.bind(i64::from(info.kdf.iterations));
        query.bind(i64::from(info.kdf.parallelism));
        query.bind(row.salt.as_slice());
        query.bind(row.nonce.as_slice());
        query.bind(row.wrapped.as_slice());
        query.bind(info.created_at.as_str());
        self.execute(query)?;
        Ok(())
    }

    fn apps(&mut self, only: Option<&str>) -> Result<Vec<TargetApp>, StoreError> {
        let only_key = only.map(name_key);
        let (app_rows, field_rows) = match &only_key {
            Some(key) => {
                let mut apps = Query::new(tsql::SELECT_APP);
                apps.bind(&key[..]);
                let mut fields = Query::new(tsql::SELECT_APP_FIELDS);
                fields.bind(&key[..]);
                (self.query(apps)?, self.query(fields)?)
            }
            None => (
                self.query(Query::new(tsql::SELECT_APPS))?,
                self.query(Query::new(tsql::SELECT_FIELDS))?,
            ),
        };
        let mut apps = Vec::with_capacity(app_rows.len());
        let mut keys = Vec::with_capacity(app_rows.len());
        for r in &app_rows {
            keys.push(bytes(r, 0)?);
            apps.push(super::model_row(
                owned_text(r, 1)?,
                owned_text(r, 2)?,
                text(r, 3)?.map(str::to_owned),
                &owned_text(r, 4)?,
            )?);
        }
        for r in &field_rows {
            let key = bytes(r, 0)?;
            let Some(i) = keys.iter().position(|k| *k == key) else {
                continue;
            };
            let masked = r
                .try_get::<bool, _>(3)
                .map_err(|_| bad_column(3))?
                .unwrap_or(false);
            let field =
                super::field_row(&apps[i].name, owned_text(r, 1)?, &owned_text(r, 2)?, masked)?;
            apps[i].fields.push(field);
        }
        Ok(apps)
    }

    fn insert_app(&mut self, app: &TargetApp) -> Result<bool, StoreError> {
        let key = name_key(&app.name);
        let mut query = Query::new(tsql::INSERT_APP);
        query.bind(&key[..]);
        query.bind(app.name.as_str());
        query.bind(app.friendly_name.as_str());
        query.bind(app.contact_email.as_deref());
        query.bind(app.app_type.as_str());
        if self.execute(query)?.iter().sum::<u64>() == 0 {
            return Ok(false);
        }
        let field_keys: Vec<[u8; 32]> = app.fields.iter().map(|f| name_key(&f.name)).collect();
        let mut query = Query::new(tsql::insert_fields(app.fields.len()));
        for (position, (field, field_key)) in app.fields.iter().zip(&field_keys).enumerate() {
            query.bind(&key[..]);
            query.bind(&field_key[..]);
            query.bind(position as i32);
            query.bind(field.name.as_str());
            query.bind(field.field_type.as_str());
            query.bind(field.masked);
        }
        self.execute(query)?;
        Ok(true)
    }

    fn delete_app(&mut self, name: &str) -> Result<bool, StoreError> {
        let key = name_key(name);
        let mut query = Query::new(tsql::DELETE_APP);
        query.bind(&key[..]);
        let counts = self.execute(query)?;
        Ok(counts.last().copied().unwrap_or(0) > 0)
    }

    fn principals(&mut self, app: &str) -> Result<Vec<String>, StoreError> {
        let key = name_key(app);
        let mut query = Query::new(tsql::SELECT_PRINCIPALS);
        query.bind(&key[..]);
        let rows = self.query(query)?;
        rows.iter()
            .map(|r| owned_text(r, 1))
            .collect::<Result<_, _>>()
            .map_err(StoreError::from)
    }

    fn values(&mut self, app: &str, principal: &str) -> Result<Vec<SealedValue>, StoreError> {
        let (app_key, principal_key) = (name_key(app), name_key(principal));
        let mut query = Query::new(tsql::SELECT_SET);
        query.bind(&app_key[..]);
        query.bind(&principal_key[..]);
        let rows = self.query(query)?;
        rows.iter()
            .map(|r| {
                Ok(SealedValue {
                    app: app.to_owned(),
                    principal: principal.to_owned(),
                    field: owned_text(r, 0)?,
                    nonce: bytes(r, 1)?,
                    sealed: bytes(r, 2)?,
                })
            })
            .collect::<Result<_, SqlServerError>>()
            .map_err(StoreError::from)
    }

    fn delete_set(&mut self, app: &str, principal: &str) -> Result<bool, StoreError> {
        let (app_key, principal_key) = (name_key(app), name_key(principal));
        let mut query = Query::new(tsql::DELETE_SET);
        query.bind(&app_key[..]);
        query.bind(&principal_key[..]);
        Ok(self.execute(query)?.iter().sum::<u64>() > 0)
    }

    fn insert_values(&mut self, values: &[SealedValue]) -> Result<(), StoreError> {
        self.put_values(values)
    }

    fn all_values(&mut self) -> Result<Vec<SealedValue>, StoreError> {
        let rows = self.query(Query::new(tsql::SELECT_ALL_VALUES))?;
        rows.iter()
            .map(|r| {
                Ok(SealedValue {
                    app: owned_text(r, 0)?,
                    principal: owned_text(r, 1)?,
                    field: owned_text(r, 2)?,
                    nonce: bytes(r, 3)?,
                    sealed: bytes(r, 4)?,
                })
            })
            .collect::<Result<_, SqlServerError>>()
            .map_err(StoreError::from)
    }

    /// Inside the writer's transaction: every value is read, re-sealed, and written back
    /// with multi-row INSERTs (far fewer round trips than one UPDATE per value). Unlike the
    /// SQLite home this holds every value in memory at once.
    fn reseal_all(&mut self, reseal: Reseal<'_>) -> Result<(), StoreError> {
        let mut all = self.all_values()?;
        reseal(&mut all)?;
        self.batch(tsql::DELETE_ALL_VALUES)?;
        self.put_values(&all)
    }

    fn counts(&mut self) -> Result<(u64, u64), StoreError> {
        let rows = self.query(Query::new(tsql::COUNTS))?;
        let row = rows
            .first()
            .ok_or_else(|| self.protocol("no answer to the counts".into()))?;
        let count = |i: usize| u64::try_from(int(row, i)?).map_err(|_| bad_column(i));
        Ok((count(0)?, count(1)?))
    }

    fn clear(&mut self) -> Result<(), StoreError> {
        self.batch(tsql::CLEAR)
    }
}

impl ServerRows<'_> {
    fn retag(&self, err: SqlServerError) -> StoreError {
        match err {
            SqlServerError::Protocol { message, .. } => self.protocol(message).into(),
            other => other.into(),
        }
    }
}

/// The connection in `slot`, logging in first when there is none.
fn connected<'a>(
    slot: &'a mut Option<Connection>,
    config: &SqlServerConfig,
    runtime: &OwnRuntime,
) -> Result<&'a mut Connection, SqlServerError> {
    if slot.is_none() {
        *slot = Some(runtime.block_on(connect(config, &config.database))?);
    }
    slot.as_mut().ok_or_else(|| SqlServerError::Protocol {
        server: config.server(),
        database: config.database.clone(),
        message: "no connection".into(),
    })
}

fn runtime(config: &SqlServerConfig) -> Result<OwnRuntime, StoreError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map(|runtime| OwnRuntime(Some(runtime)))
        .map_err(|e| {
            SqlServerError::Protocol {
                server: config.server(),
                database: config.database.clone(),
                message: format!("cannot start the I/O runtime: {e}"),
            }
            .into()
        })
}

/// The exact-match key of a name (see [`tsql`]).
fn name_key(name: &str) -> [u8; 32] {
    let digest = Sha256::digest(name.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(&digest);
    key
}

/// Logs in to `database`: TCP (bounded by the connect timeout), prelogin, TLS as configured,
/// login, then the session settings. Follows one Azure SQL gateway redirect.
pub(crate) async fn connect(
    config: &SqlServerConfig,
    database: &str,
) -> Result<Connection, SqlServerError> {
    let mut target = (config.host.clone(), config.port);
    for _ in 0..2 {
        let tds = tds_config(config, database, &target.0, target.1)?;
        let tcp = open_tcp(config, &target.0, target.1).await?;
        match Client::connect(tds, tcp.compat_write()).await {
            Ok(mut client) => {
                let setup = tsql::session_setup(config.lock_timeout.as_millis() as u64);
                client
                    .simple_query(setup)
                    .await
                    .map_err(|e| map_error(e, config, database, Stage::Statement))?
                    .into_results()
                    .await
                    .map_err(|e| map_error(e, config, database, Stage::Statement))?;
                return Ok(client);
            }
            Err(tiberius::error::Error::Routing { host, port }) => target = (host, port),
            Err(e) => return Err(map_error(e, config, database, Stage::Login)),
        }
    }
    Err(SqlServerError::Protocol {
        server: config.server(),
        database: database.to_owned(),
        message: "the server redirected the login more than once".into(),
    })
}

async fn open_tcp(
    config: &SqlServerConfig,
    host: &str,
    port: u16,
) -> Result<TcpStream, SqlServerError> {
    let server = config.server();
    let tcp = tokio::time::timeout(config.connect_timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| SqlServerError::Unreachable {
            server: server.clone(),
            reason: format!("no answer within {} s", config.connect_timeout.as_secs()),
        })?
        .map_err(|e| SqlServerError::Unreachable {
            server: server.clone(),
            reason: e.to_string(),
        })?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

fn tds_config(
    config: &SqlServerConfig,
    database: &str,
    host: &str,
    port: u16,
) -> Result<tiberius::Config, SqlServerError> {
    let mut tds = tiberius::Config::new();
    tds.host(host);
    tds.port(port);
    tds.database(database);
    tds.application_name("sstore");
    tds.encryption(match config.encrypt {
        Encryption::Required => EncryptionLevel::Required,
        Encryption::On => EncryptionLevel::On,
        Encryption::Off => EncryptionLevel::Off,
        Encryption::None => EncryptionLevel::NotSupported,
    });
    if config.trust_server_certificate {
        tds.trust_cert();
    } else if let Some(ca) = &config.ca_file {
        tds.trust_cert_ca(ca.to_string_lossy());
    }
    tds.handshake_timeout(Some(config.connect_timeout));
    tds.command_timeout(Some(config.command_timeout));
    tds.authentication(auth_method(config)?);
    Ok(tds)
}

fn auth_method(config: &SqlServerConfig) -> Result<tiberius::AuthMethod, SqlServerError> {
    match &config.auth {
        SqlAuth::Sql { user, password } => {
            let password = read_password(config, user, password)?;
            Ok(tiberius::AuthMethod::sql_server(user, password.as_str()))
        }
        #[cfg(windows)]
        SqlAuth::Integrated => Ok(tiberius::AuthMethod::Integrated),
        #[cfg(not(windows))]
        SqlAuth::Integrated => Err(SqlServerError::IntegratedAuth {
            server: config.server(),
            reason: "is offered by tiberius on Windows builds of sstore only: use SQL authentication (mssql://USER@HOST/DATABASE with the password in SSTORE_MSSQL_PASSWORD)".into(),
        }),
    }
}

/// The password, from its environment variable or the first line of its file.
fn read_password(
    config: &SqlServerConfig,
    user: &str,
    source: &PasswordSource,
) -> Result<Zeroizing<String>, SqlServerError> {
    let missing = |reason: String| SqlServerError::PasswordMissing {
        server: config.server(),
        user: user.to_owned(),
        reason,
    };
    match source {
        PasswordSource::Env(name) => match std::env::var(name) {
            Ok(value) if !value.is_empty() => Ok(Zeroizing::new(value)),
            _ => Err(missing(format!("set {name}"))),
        },
        PasswordSource::File(path) => {
            // A password file others can read is refused, as a target's secret file is.
            #[cfg(unix)]
            if let Ok(meta) = std::fs::metadata(path) {
                use std::os::unix::fs::PermissionsExt;
                let mode = meta.permissions().mode();
                if mode & 0o077 != 0 {
                    return Err(missing(format!(
                        "the password file {} can be read by other users (mode {:o}); make it owner-only (chmod 600)",
                        path.display(),
                        mode & 0o777
                    )));
                }
            }
            let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                missing(format!(
                    "cannot read the password file {}: {e}",
                    path.display()
                ))
            })?);
            let line = text.lines().next().unwrap_or("");
            if line.is_empty() {
                return Err(missing(format!(
                    "the password file {} is empty",
                    path.display()
                )));
            }
            Ok(Zeroizing::new(line.to_owned()))
        }
    }
}

fn bad_column(i: usize) -> SqlServerError {
    SqlServerError::Protocol {
        server: String::new(),
        database: String::new(),
        message: format!("unexpected value in column {i}"),
    }
}

fn text(row: &Row, i: usize) -> Result<Option<&str>, SqlServerError> {
    row.try_get::<&str, _>(i).map_err(|_| bad_column(i))
}

fn owned_text(row: &Row, i: usize) -> Result<String, SqlServerError> {
    text(row, i)?
        .map(str::to_owned)
        .ok_or_else(|| bad_column(i))
}

fn bytes(row: &Row, i: usize) -> Result<Vec<u8>, SqlServerError> {
    row.try_get::<&[u8], _>(i)
        .map_err(|_| bad_column(i))?
        .map(<[u8]>::to_vec)
        .ok_or_else(|| bad_column(i))
}

fn int(row: &Row, i: usize) -> Result<i64, SqlServerError> {
    if let Ok(Some(v)) = row.try_get::<i64, _>(i) {
        return Ok(v);
    }
    match row.try_get::<i32, _>(i) {
        Ok(Some(v)) => Ok(i64::from(v)),
        _ => Err(bad_column(i)),
    }
}
