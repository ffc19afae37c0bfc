//! The store's rows on SQL Server: each [`Rows`] call as the T-SQL of [`super::tsql`] over the
//! home's connection, and the typed reading of result columns.

use sha2::{Digest, Sha256};
use tiberius::{Query, Row};

use super::errors::{Stage, map_error};
use super::{SqlServerHome, connected, tsql};
use crate::kdf::KdfParams;
use crate::store::credentials::SealedValue;
use crate::store::home::{PermissionCheck, Reseal, Rows};
use crate::store::location::SqlServerConfig;
use crate::store::master_key::{MasterKeyInfo, MasterKeyRow};
use crate::store::model::TargetApp;
use crate::store::{SqlServerError, StoreError};

/// The rows of the store, over the home's connection.
pub(crate) struct ServerRows<'a> {
    pub(super) home: &'a mut SqlServerHome,
}

impl ServerRows<'_> {
    pub(super) fn config(&self) -> &SqlServerConfig {
        &self.home.config
    }

    /// Runs a batch (no parameters), dropping its results.
    pub(super) fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        let home = &mut *self.home;
        let (config, runtime) = (&home.config, &home.runtime);
        let client = connected(&mut home.client, config, runtime)?;
        runtime
            .block_on(async { client.simple_query(sql).await?.into_results().await })
            .map_err(|e| map_error(e, config, &config.database, Stage::Statement))?;
        Ok(())
    }

    /// The last result set's first column of its first row, as a number.
    pub(super) fn scalar_i64(&mut self, sql: &str) -> Result<i64, StoreError> {
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

    pub(super) fn rollback(&mut self) {
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

    pub(super) fn lock_refused(&self, code: i64) -> SqlServerError {
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

    pub(super) fn check_schema(&mut self) -> Result<(), StoreError> {
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

    pub(super) fn permissions(&mut self) -> Result<Vec<PermissionCheck>, StoreError> {
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
            apps.push(crate::store::model_row(
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
            let field = crate::store::field_row(
                &apps[i].name,
                owned_text(r, 1)?,
                &owned_text(r, 2)?,
                masked,
            )?;
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

/// The exact-match key of a name (see [`tsql`]).
fn name_key(name: &str) -> [u8; 32] {
    let digest = Sha256::digest(name.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(&digest);
    key
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
