//! The store's SQLite schema and its version check.

use rusqlite::Connection;

use super::StoreError;

/// Version of the tables below; a store with another version is refused.
pub(crate) const SCHEMA_VERSION: u32 = 1;

pub(crate) fn create(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         CREATE TABLE master_key (
             id INTEGER PRIMARY KEY CHECK (id = 1),
             key_id TEXT NOT NULL,
             generation INTEGER NOT NULL,
             kdf_memory_kib INTEGER NOT NULL,
             kdf_iterations INTEGER NOT NULL,
             kdf_parallelism INTEGER NOT NULL,
             salt BLOB NOT NULL,
             nonce BLOB NOT NULL,
             wrapped BLOB NOT NULL,
             created_at TEXT NOT NULL);
         CREATE TABLE applications (
             name TEXT PRIMARY KEY,
             friendly_name TEXT NOT NULL,
             contact_email TEXT,
             app_type TEXT NOT NULL);
         CREATE TABLE fields (
             app TEXT NOT NULL REFERENCES applications(name),
             position INTEGER NOT NULL,
             name TEXT NOT NULL,
             field_type TEXT NOT NULL,
             masked INTEGER NOT NULL,
             PRIMARY KEY (app, name));
         CREATE TABLE credentials (
             app TEXT NOT NULL REFERENCES applications(name),
             principal TEXT NOT NULL,
             field TEXT NOT NULL,
             nonce BLOB NOT NULL,
             value BLOB NOT NULL,
             PRIMARY KEY (app, principal, field),
             FOREIGN KEY (app, field) REFERENCES fields(app, name));",
    )?;
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?1), ('created_at', ?2)",
        [SCHEMA_VERSION.to_string(), crate::backup::now_rfc3339()],
    )?;
    Ok(())
}

/// Refuses files that are not sstore stores, or of another schema version.
pub(crate) fn check(conn: &Connection) -> Result<(), StoreError> {
    let version: Option<String> = super::optional(conn.query_row(
        "SELECT value FROM meta WHERE key = 'schema_version'",
        [],
        |r| r.get(0),
    ))
    .map_err(|e| StoreError::NotAStore {
        path: None,
        reason: e.to_string(),
    })?;
    match version {
        Some(v) if v == SCHEMA_VERSION.to_string() => Ok(()),
        Some(v) => Err(StoreError::NotAStore {
            path: None,
            reason: format!("store schema version {v}; this sstore reads version {SCHEMA_VERSION}"),
        }),
        None => Err(StoreError::NotAStore {
            path: None,
            reason: "no schema version recorded".into(),
        }),
    }
}
