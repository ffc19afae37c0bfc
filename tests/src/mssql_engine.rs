//! The real-engine suite's set-up: a SQL Server, Azure SQL or Babelfish named by
//! `SSTORE_TEST_MSSQL_URL` (`mssql://USER@HOST[:PORT]/DATABASE?...`, the password in
//! `SSTORE_MSSQL_PASSWORD`). No T-SQL engine can be installed on the project's machines, so
//! without the variable these tests skip with a note, even under `SSTORE_REQUIRE_SERVICES=1`.
//!
//! The login needs dbcreator (each test creates its own database, `<DATABASE>_<tag>_<id>`,
//! and drops it); the permission test also needs securityadmin (it creates a login).

use std::time::Duration;

use sstore_core::store::{PasswordSource, SqlAuth, SqlServerConfig, StoreLocation};
use tiberius::{AuthMethod, Client, EncryptionLevel};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

pub const URL_VARIABLE: &str = "SSTORE_TEST_MSSQL_URL";

/// The engine to test against, or `None` (with a note on stderr) when none is configured.
pub fn engine(test: &str) -> Option<SqlServerConfig> {
    let Ok(url) = std::env::var(URL_VARIABLE) else {
        eprintln!(
            "{test}: skipped: {URL_VARIABLE} is not set. No SQL Server, Azure SQL or Babelfish can be \
             installed on this machine, so the real-engine suite runs only where one is reachable \
             (see the README, \"The store on SQL Server\"); this skip holds even with SSTORE_REQUIRE_SERVICES=1."
        );
        return None;
    };
    match StoreLocation::parse(&url) {
        Ok(StoreLocation::SqlServer(config)) => Some(config),
        Ok(_) => panic!("{URL_VARIABLE} must be an mssql:// URL"),
        Err(e) => panic!("{URL_VARIABLE}: {e}"),
    }
}

/// The same server with a fresh database name for one test.
pub fn fresh_database(base: &SqlServerConfig, tag: &str) -> SqlServerConfig {
    let id: u32 = std::process::id()
        ^ (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0));
    base.with_database(&format!("{}_{tag}_{id:08x}", base.database))
}

/// A location string for the CLI (`--store`).
pub fn url(config: &SqlServerConfig) -> String {
    config.to_url()
}

fn password(config: &SqlServerConfig) -> String {
    match &config.auth {
        SqlAuth::Sql {
            password: PasswordSource::Env(name),
            ..
        } => std::env::var(name).unwrap_or_default(),
        SqlAuth::Sql {
            password: PasswordSource::File(path),
            ..
        } => std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or("")
            .to_owned(),
        SqlAuth::Integrated => String::new(),
    }
}

async fn client(
    config: &SqlServerConfig,
    database: &str,
) -> tiberius::Result<Client<Compat<TcpStream>>> {
    let mut tds = tiberius::Config::new();
    tds.host(&config.host);
    tds.port(config.port);
    tds.database(database);
    tds.encryption(match config.encrypt {
        sstore_core::store::Encryption::Required => EncryptionLevel::Required,
        sstore_core::store::Encryption::On => EncryptionLevel::On,
        sstore_core::store::Encryption::Off => EncryptionLevel::Off,
        sstore_core::store::Encryption::None => EncryptionLevel::NotSupported,
    });
    if config.trust_server_certificate {
        tds.trust_cert();
    } else if let Some(ca) = &config.ca_file {
        tds.trust_cert_ca(ca.to_string_lossy());
    }
    tds.authentication(AuthMethod::sql_server(
        config.user().unwrap_or(""),
        password(config),
    ));
    let tcp = TcpStream::connect((config.host.as_str(), config.port)).await?;
    tcp.set_nodelay(true)?;
    Client::connect(tds, tcp.compat_write()).await
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the test's admin connection")
        .block_on(f)
}

/// Runs a batch as the test login (in `database`).
pub fn admin_batch(config: &SqlServerConfig, database: &str, sql: &str) -> tiberius::Result<()> {
    let sql = sql.to_owned();
    std::thread::scope(|s| {
        s.spawn(|| {
            block_on(async {
                let mut c = client(config, database).await?;
                c.simple_query(sql).await?.into_results().await?;
                Ok(())
            })
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Drops a test's database (best effort).
pub fn drop_database(config: &SqlServerConfig) {
    let name = config.database.replace(']', "]]");
    let _ = admin_batch(
        config,
        "master",
        &format!(
            "IF DB_ID(N'{}') IS NOT NULL DROP DATABASE [{name}];",
            config.database.replace('\'', "''")
        ),
    );
}

/// Whether some writer holds the store's writer lock now (a shared request with no wait fails).
pub fn writer_lock_held(config: &SqlServerConfig) -> bool {
    std::thread::scope(|s| {
        s.spawn(|| {
            block_on(async {
                let mut c = client(config, &config.database).await.ok()?;
                let rows = c
                    .simple_query(
                        "BEGIN TRANSACTION; DECLARE @r int; \
                         EXEC @r = sp_getapplock @Resource = N'sstore-store-writer', @LockMode = N'Shared', \
                              @LockOwner = N'Transaction', @LockTimeout = 0; \
                         ROLLBACK TRANSACTION; SELECT @r;",
                    )
                    .await
                    .ok()?
                    .into_results()
                    .await
                    .ok()?;
                let r: i32 = rows.last()?.first()?.get(0)?;
                Some(r < 0)
            })
        })
        .join()
        .ok()
        .flatten()
        .unwrap_or(false)
    })
}

/// Drops the database when the test ends, passed or not.
pub struct DropDatabase(pub SqlServerConfig);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        drop_database(&self.0);
    }
}

/// How long the engine suite waits for things that take a moment.
pub const PATIENCE: Duration = Duration::from_secs(120);
