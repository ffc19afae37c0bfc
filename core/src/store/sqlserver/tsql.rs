//! Every T-SQL statement of the SQL Server home, in one place.
//!
//! Written for what Microsoft SQL Server 2016 and later, Azure SQL Database and Babelfish (the
//! T-SQL engine of Aurora PostgreSQL) all accept:
//! - no MERGE (Babelfish refuses it): an upsert is a DELETE and an INSERT in one transaction;
//! - writers serialize on one application lock (`sp_getapplock`, owned by the transaction,
//!   with a timeout) instead of SERIALIZABLE or REPEATABLE READ, which Babelfish refuses unless
//!   a server setting is changed; `SET XACT_ABORT ON` so any error rolls the whole
//!   transaction back, and the server rolls back what a killed client left open;
//! - a backup reads in one `SNAPSHOT` transaction (Babelfish needs no database setting; SQL
//!   Server needs `ALLOW_SNAPSHOT_ISOLATION`, which `store init` tries to set) and falls back
//!   to `SERIALIZABLE` where the database refuses SNAPSHOT (error 3952);
//! - no `rowversion`, `WAITFOR`, `##global` temp tables, `STRING_AGG` or `ALTER DATABASE`
//!   that anything depends on (`ALTER DATABASE CURRENT SET ALLOW_SNAPSHOT_ISOLATION ON` is tried
//!   once and its failure ignored);
//! - names (applications, principals, fields) are compared through a SHA-256 key column
//!   (`binary(32)`), never through `nvarchar` comparisons, so matching is exact (case,
//!   accents, trailing spaces) whatever the database's collation, as in SQLite; ordering is
//!   done by sstore, not by the collation.
//!
//! Parameters are `@P1`, `@P2`, ... (tiberius sends them through `sp_executesql`); session
//! settings and transaction control go as plain batches, so they outlive the statement.

/// Version of the tables below; a database with another version is refused on open.
pub(super) const SCHEMA_VERSION: u32 = 1;

/// The application lock every writer takes first.
pub(super) const WRITER_LOCK: &str = "sstore-store-writer";

/// The tables, in creation order.
pub(super) const TABLES: [&str; 5] = [
    "sstore_meta",
    "sstore_master_key",
    "sstore_applications",
    "sstore_fields",
    "sstore_credentials",
];

pub(super) const CREATE_TABLES: [&str; 5] = [
    "CREATE TABLE sstore_meta (
        meta_name nvarchar(64) NOT NULL CONSTRAINT pk_sstore_meta PRIMARY KEY,
        meta_value nvarchar(max) NOT NULL)",
    "CREATE TABLE sstore_master_key (
        id int NOT NULL CONSTRAINT pk_sstore_master_key PRIMARY KEY
            CONSTRAINT ck_sstore_master_key_one CHECK (id = 1),
        key_id nvarchar(64) NOT NULL,
        generation bigint NOT NULL,
        kdf_memory_kib bigint NOT NULL,
        kdf_iterations bigint NOT NULL,
        kdf_parallelism bigint NOT NULL,
        salt varbinary(64) NOT NULL,
        nonce varbinary(64) NOT NULL,
        wrapped varbinary(512) NOT NULL,
        created_at nvarchar(64) NOT NULL)",
    "CREATE TABLE sstore_applications (
        app_key binary(32) NOT NULL CONSTRAINT pk_sstore_applications PRIMARY KEY,
        app_name nvarchar(512) NOT NULL,
        friendly_name nvarchar(max) NOT NULL,
        contact_email nvarchar(max) NULL,
        app_type nvarchar(32) NOT NULL)",
    "CREATE TABLE sstore_fields (
        app_key binary(32) NOT NULL
            CONSTRAINT fk_sstore_fields_app REFERENCES sstore_applications (app_key),
        field_key binary(32) NOT NULL,
        field_position int NOT NULL,
        field_name nvarchar(512) NOT NULL,
        field_type nvarchar(32) NOT NULL,
        masked bit NOT NULL,
        CONSTRAINT pk_sstore_fields PRIMARY KEY (app_key, field_key))",
    "CREATE TABLE sstore_credentials (
        app_key binary(32) NOT NULL,
        principal_key binary(32) NOT NULL,
        field_key binary(32) NOT NULL,
        principal nvarchar(512) NOT NULL,
        nonce varbinary(64) NOT NULL,
        sealed_value varbinary(max) NOT NULL,
        CONSTRAINT pk_sstore_credentials PRIMARY KEY (app_key, principal_key, field_key),
        CONSTRAINT fk_sstore_credentials_field FOREIGN KEY (app_key, field_key)
            REFERENCES sstore_fields (app_key, field_key))",
];

/// Session settings after every login: errors abort the transaction, lock waits are bounded,
/// plain reads see committed data.
pub(super) fn session_setup(lock_timeout_ms: u64) -> String {
    format!(
        "SET XACT_ABORT ON; SET LOCK_TIMEOUT {lock_timeout_ms}; \
         SET TRANSACTION ISOLATION LEVEL READ COMMITTED;"
    )
}

/// Opens a write transaction and takes the writer lock; the batch returns the lock's result
/// (>= 0 granted, -1 timeout, -2 cancelled, -3 deadlock victim, -999 other).
pub(super) fn begin_write(lock_timeout_ms: u64) -> String {
    format!(
        "SET TRANSACTION ISOLATION LEVEL READ COMMITTED; BEGIN TRANSACTION; \
         DECLARE @sstore_lock int; \
         EXEC @sstore_lock = sp_getapplock @Resource = N'{WRITER_LOCK}', @LockMode = N'Exclusive', \
              @LockOwner = N'Transaction', @LockTimeout = {lock_timeout_ms}; \
         SELECT @sstore_lock AS lock_result;"
    )
}

pub(super) const BEGIN_SNAPSHOT: &str =
    "SET TRANSACTION ISOLATION LEVEL SNAPSHOT; BEGIN TRANSACTION;";
pub(super) const BEGIN_SERIALIZABLE: &str =
    "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; BEGIN TRANSACTION;";
pub(super) const COMMIT: &str =
    "COMMIT TRANSACTION; SET TRANSACTION ISOLATION LEVEL READ COMMITTED;";
pub(super) const ROLLBACK: &str =
    "IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION; SET TRANSACTION ISOLATION LEVEL READ COMMITTED;";

/// Lets backups read without blocking writers on SQL Server (needs ALTER on the database;
/// refused by Babelfish, which needs no such setting).
pub(super) const ALLOW_SNAPSHOT: &str = "ALTER DATABASE CURRENT SET ALLOW_SNAPSHOT_ISOLATION ON;";

/// Whether the store's tables exist (1) or not (0).
pub(super) const TABLES_EXIST: &str =
    "SELECT CASE WHEN OBJECT_ID(N'sstore_meta', N'U') IS NULL THEN 0 ELSE 1 END AS present;";

/// `CREATE DATABASE` for `name`, quoted as an identifier (`]` doubled). Runs outside any
/// transaction, connected to `master`.
pub(super) fn create_database(name: &str) -> String {
    format!("CREATE DATABASE {};", quote_name(name))
}

fn quote_name(name: &str) -> String {
    format!("[{}]", name.replace(']', "]]"))
}

pub(super) const SCHEMA_VERSION_QUERY: &str =
    "SELECT meta_value FROM sstore_meta WHERE meta_name = N'schema_version';";

pub(super) const SELECT_META: &str = "SELECT meta_name, meta_value FROM sstore_meta;";
/// @P1 name, @P2 value.
pub(super) const PUT_META: &str = "DELETE FROM sstore_meta WHERE meta_name = @P1; \
     INSERT INTO sstore_meta (meta_name, meta_value) VALUES (@P1, @P2);";

pub(super) const SELECT_MASTER_KEY: &str = "SELECT key_id, generation, kdf_memory_kib, \
     kdf_iterations, kdf_parallelism, created_at, salt, nonce, wrapped \
     FROM sstore_master_key WHERE id = 1;";
/// @P1 key_id .. @P9 created_at.
pub(super) const PUT_MASTER_KEY: &str = "DELETE FROM sstore_master_key; \
     INSERT INTO sstore_master_key (id, key_id, generation, kdf_memory_kib, kdf_iterations, \
         kdf_parallelism, salt, nonce, wrapped, created_at) \
     VALUES (1, @P1, @P2, @P3, @P4, @P5, @P6, @P7, @P8, @P9);";

pub(super) const SELECT_APPS: &str =
    "SELECT app_key, app_name, friendly_name, contact_email, app_type FROM sstore_applications;";
/// @P1 app_key.
pub(super) const SELECT_APP: &str = "SELECT app_key, app_name, friendly_name, contact_email, \
     app_type FROM sstore_applications WHERE app_key = @P1;";
pub(super) const SELECT_FIELDS: &str = "SELECT app_key, field_name, field_type, masked \
     FROM sstore_fields ORDER BY app_key, field_position;";
/// @P1 app_key.
pub(super) const SELECT_APP_FIELDS: &str = "SELECT app_key, field_name, field_type, masked \
     FROM sstore_fields WHERE app_key = @P1 ORDER BY field_position;";

/// @P1 app_key, @P2 name, @P3 friendly name, @P4 contact email, @P5 type; inserts nothing
/// (0 rows) when the application exists.
pub(super) const INSERT_APP: &str = "INSERT INTO sstore_applications \
         (app_key, app_name, friendly_name, contact_email, app_type) \
     SELECT @P1, @P2, @P3, @P4, @P5 \
     WHERE NOT EXISTS (SELECT 1 FROM sstore_applications WHERE app_key = @P1);";

/// Parameters per row of [`insert_fields`].
pub(super) const FIELD_PARAMS: usize = 6;

/// Inserts `rows` fields: app_key, field_key, position, name, type, masked per row.
pub(super) fn insert_fields(rows: usize) -> String {
    values_insert(
        "INSERT INTO sstore_fields (app_key, field_key, field_position, field_name, field_type, masked)",
        rows,
        FIELD_PARAMS,
    )
}

/// @P1 app_key; the last statement's count says whether the application existed.
pub(super) const DELETE_APP: &str = "DELETE FROM sstore_credentials WHERE app_key = @P1; \
     DELETE FROM sstore_fields WHERE app_key = @P1; \
     DELETE FROM sstore_applications WHERE app_key = @P1;";

/// @P1 app_key.
pub(super) const SELECT_PRINCIPALS: &str = "SELECT DISTINCT principal_key, principal \
     FROM sstore_credentials WHERE app_key = @P1;";

/// @P1 app_key, @P2 principal_key.
pub(super) const SELECT_SET: &str = "SELECT f.field_name, c.nonce, c.sealed_value \
     FROM sstore_credentials AS c \
     JOIN sstore_fields AS f ON f.app_key = c.app_key AND f.field_key = c.field_key \
     WHERE c.app_key = @P1 AND c.principal_key = @P2;";

/// @P1 app_key, @P2 principal_key.
pub(super) const DELETE_SET: &str =
    "DELETE FROM sstore_credentials WHERE app_key = @P1 AND principal_key = @P2;";

/// Parameters per row of [`insert_values`].
pub(super) const VALUE_PARAMS: usize = 6;

/// Inserts `rows` values: app_key, principal_key, field_key, principal, nonce, sealed per row.
pub(super) fn insert_values(rows: usize) -> String {
    values_insert(
        "INSERT INTO sstore_credentials (app_key, principal_key, field_key, principal, nonce, sealed_value)",
        rows,
        VALUE_PARAMS,
    )
}

pub(super) const SELECT_ALL_VALUES: &str = "SELECT a.app_name, c.principal, f.field_name, \
     c.nonce, c.sealed_value \
     FROM sstore_credentials AS c \
     JOIN sstore_fields AS f ON f.app_key = c.app_key AND f.field_key = c.field_key \
     JOIN sstore_applications AS a ON a.app_key = c.app_key;";

pub(super) const DELETE_ALL_VALUES: &str = "DELETE FROM sstore_credentials;";

pub(super) const COUNTS: &str = "SELECT \
     (SELECT COUNT_BIG(*) FROM sstore_applications) AS applications, \
     (SELECT COUNT_BIG(*) FROM (SELECT DISTINCT app_key, principal_key FROM sstore_credentials) AS s) \
         AS credential_sets;";

pub(super) const CLEAR: &str = "DELETE FROM sstore_credentials; DELETE FROM sstore_fields; \
     DELETE FROM sstore_applications; DELETE FROM sstore_master_key; \
     DELETE FROM sstore_meta WHERE meta_name <> N'schema_version';";

/// Rows per multi-row INSERT: SQL Server takes at most 2,100 parameters per statement.
pub(super) fn rows_per_insert(params_per_row: usize) -> usize {
    (2000 / params_per_row).clamp(1, 1000)
}

fn values_insert(head: &str, rows: usize, per_row: usize) -> String {
    let mut sql = String::with_capacity(head.len() + rows * per_row * 6 + 16);
    sql.push_str(head);
    sql.push_str(" VALUES ");
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for col in 0..per_row {
            if col > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("@P{}", row * per_row + col + 1));
        }
        sql.push(')');
    }
    sql.push(';');
    sql
}

/// What readiness asks: every right on every table, then the roles that give them.
pub(super) fn permissions_query() -> (String, Vec<(&'static str, &'static str)>) {
    let mut checks = Vec::new();
    let mut columns = Vec::new();
    for table in TABLES {
        for right in ["SELECT", "INSERT", "UPDATE", "DELETE"] {
            columns.push(format!(
                "HAS_PERMS_BY_NAME(N'{table}', N'OBJECT', N'{right}')"
            ));
            checks.push((table, right));
        }
    }
    columns.push("HAS_PERMS_BY_NAME(NULL, NULL, N'CREATE ANY DATABASE')".into());
    columns.push("IS_ROLEMEMBER(N'db_owner')".into());
    (format!("SELECT {};", columns.join(", ")), checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_row_inserts_number_their_parameters_and_fit_the_limit() {
        assert_eq!(
            insert_values(2),
            "INSERT INTO sstore_credentials (app_key, principal_key, field_key, principal, nonce, sealed_value) \
             VALUES (@P1, @P2, @P3, @P4, @P5, @P6), (@P7, @P8, @P9, @P10, @P11, @P12);"
        );
        assert!(rows_per_insert(VALUE_PARAMS) * VALUE_PARAMS <= 2100);
        assert!(rows_per_insert(FIELD_PARAMS) * FIELD_PARAMS <= 2100);
    }

    #[test]
    fn database_names_are_quoted() {
        assert_eq!(create_database("New]DB"), "CREATE DATABASE [New]]DB];");
    }

    #[test]
    fn no_statement_uses_what_babelfish_refuses() {
        let mut all: Vec<String> = CREATE_TABLES.iter().map(|s| s.to_string()).collect();
        all.extend(
            [
                BEGIN_SNAPSHOT,
                COMMIT,
                ROLLBACK,
                TABLES_EXIST,
                SCHEMA_VERSION_QUERY,
                SELECT_META,
                PUT_META,
                SELECT_MASTER_KEY,
                PUT_MASTER_KEY,
                SELECT_APPS,
                SELECT_APP,
                SELECT_FIELDS,
                SELECT_APP_FIELDS,
                INSERT_APP,
                DELETE_APP,
                SELECT_PRINCIPALS,
                SELECT_SET,
                DELETE_SET,
                SELECT_ALL_VALUES,
                DELETE_ALL_VALUES,
                COUNTS,
                CLEAR,
            ]
            .map(String::from),
        );
        all.push(begin_write(1000));
        all.push(session_setup(1000));
        for sql in &all {
            let upper = sql.to_ascii_uppercase();
            for refused in [
                "MERGE",
                "REPEATABLE READ",
                "WAITFOR",
                "##",
                "ROWVERSION",
                "STRING_AGG",
            ] {
                assert!(!upper.contains(refused), "{refused} in {sql}");
            }
        }
    }
}
