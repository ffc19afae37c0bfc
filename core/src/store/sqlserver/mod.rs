//! The SQL Server home: the store in a database on Microsoft SQL Server 2016+, Azure SQL or
//! Babelfish, through tiberius (TDS 7.3, TLS by rustls). The T-SQL is all in [`tsql`], which
//! says what it keeps to so every one of those engines accepts it; [`rows`] runs it over the
//! home's connection, which [`connect`] logs in.
//!
//! tiberius is async; this home drives it on its own single-thread runtime, so the store keeps
//! one blocking interface for both homes (calls from inside another runtime hop to a scoped
//! thread, see [`off_runtime`]).

mod connect;
mod errors;
mod rows;
mod tsql;

use std::path::Path;
use std::time::Duration;

use tiberius::Client;
use tokio::net::TcpStream;
use tokio_util::compat::Compat;

use super::home::{Home, PermissionCheck, Rows, SnapshotMethod, StoreContents, Work, off_runtime};
use super::location::SqlServerConfig;
use super::{SqlServerError, StoreError};
pub(crate) use connect::connect;
use errors::{Stage, map_error};
use rows::ServerRows;

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
