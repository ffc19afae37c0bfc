//! Logging in: TCP, prelogin, TLS as configured (rustls), SQL or Windows authentication with
//! the password from its configured source, then the session settings.

use tiberius::{Client, EncryptionLevel};
use tokio::net::TcpStream;
use tokio_util::compat::TokioAsyncWriteCompatExt;
use zeroize::Zeroizing;

use super::errors::{Stage, map_error};
use super::{Connection, tsql};
use crate::store::SqlServerError;
use crate::store::location::{Encryption, PasswordSource, SqlAuth, SqlServerConfig};

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
