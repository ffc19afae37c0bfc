//! tiberius's errors as [`SqlServerError`]s: distinct kinds for login failure, an unreachable
//! server, TLS refusal, deadlock victim, lock and command timeouts, a lost connection and
//! missing permissions, each naming the server and database, none quoting the password.

use tiberius::error::Error as TdsError;

use super::super::location::{PasswordSource, SqlAuth, SqlServerConfig};
use crate::store::SqlServerError;

/// What sstore was doing, for messages ("logging in", "reading the store", ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    Login,
    Statement,
}

pub(super) fn map_error(
    err: TdsError,
    config: &SqlServerConfig,
    database: &str,
    stage: Stage,
) -> SqlServerError {
    let server = config.server();
    let database = database.to_owned();
    match err {
        TdsError::Server(token) => {
            map_server_error(token.code(), token.message().to_owned(), config, &database)
        }
        TdsError::Io { kind, message } => {
            if kind == std::io::ErrorKind::TimedOut {
                let (during, secs) = match stage {
                    Stage::Login => ("logging in", config.connect_timeout.as_secs()),
                    Stage::Statement => (
                        "waiting for the server's answer",
                        config.command_timeout.as_secs(),
                    ),
                };
                SqlServerError::Timeout {
                    server,
                    database,
                    during: during.into(),
                    secs,
                    retryable: stage == Stage::Statement,
                }
            } else if stage == Stage::Login {
                SqlServerError::Unreachable {
                    server,
                    reason: format!("the connection closed during the login ({message})"),
                }
            } else {
                SqlServerError::ConnectionLost {
                    server,
                    database,
                    reason: message,
                }
            }
        }
        TdsError::Protocol(message) if message.contains("encryption level") => {
            SqlServerError::TlsRefused {
                server,
                reason: format!(
                    "the server does not offer the encryption asked for (encrypt={})",
                    config.encrypt.as_str()
                ),
                hint: "enable TLS on the server (a certificate and Force Encryption), or, if it encrypts the login only, use encrypt=off",
            }
        }
        TdsError::Tls(message) => SqlServerError::TlsRefused {
            server,
            reason: message,
            hint: "set ca_file to the CA that signed the server's certificate (and use the host name the certificate names), or trust_server_certificate=true for a self-signed test server",
        },
        TdsError::Routing { host, port } => SqlServerError::Protocol {
            server,
            database,
            message: format!("the server redirected to {host}:{port} again"),
        },
        other => SqlServerError::Protocol {
            server,
            database,
            message: other.to_string(),
        },
    }
}

/// Server error numbers as SQL Server (and, where it keeps them, Babelfish) sends them.
pub(super) fn map_server_error(
    code: u32,
    message: String,
    config: &SqlServerConfig,
    database: &str,
) -> SqlServerError {
    let server = config.server();
    let database = database.to_owned();
    match code {
        18456 | 18470 | 18487 | 18488 => SqlServerError::LoginFailed {
            server,
            database,
            user: config.user().unwrap_or("(integrated)").to_owned(),
            password_from: password_from(config),
        },
        18452 => SqlServerError::IntegratedAuth {
            server,
            reason: format!("was refused: {message}"),
        },
        4060 | 40532 => SqlServerError::DatabaseMissing { server, database },
        208 => SqlServerError::NoStore {
            server,
            database,
            table: table_in(&message).unwrap_or_else(|| "sstore_meta".into()),
        },
        229 | 230 | 262 | 297 | 300 | 916 | 15247 | 1088 | 2760 => {
            let role = role_hint(code, &message, &database);
            SqlServerError::PermissionDenied {
                server,
                database,
                table: table_in(&message),
                message,
                role,
            }
        }
        1205 => SqlServerError::Deadlock {
            server,
            database,
            retried: false,
        },
        1222 => SqlServerError::Busy {
            server,
            database,
            waited_secs: config.lock_timeout.as_secs(),
        },
        // 3960: snapshot update conflict; 33557097: what Babelfish sends for a snapshot
        // conflict and for a lock timeout alike.
        3960 | 33557097 => SqlServerError::Conflict {
            server,
            database,
            message,
        },
        _ => SqlServerError::Server {
            server,
            database,
            code,
            message,
        },
    }
}

fn password_from(config: &SqlServerConfig) -> String {
    match &config.auth {
        SqlAuth::Sql {
            password: PasswordSource::Env(name),
            ..
        } => format!("from {name}"),
        SqlAuth::Sql {
            password: PasswordSource::File(path),
            ..
        } => format!("from {}", path.display()),
        SqlAuth::Integrated => "integrated authentication".into(),
    }
}

/// The role or grant that gives what a permission error refused.
fn role_hint(code: u32, message: &str, database: &str) -> String {
    let upper = message.to_ascii_uppercase();
    if upper.contains("CREATE DATABASE") {
        "creating a database needs the dbcreator server role (ALTER SERVER ROLE dbcreator ADD MEMBER <login>), or create the database first and make the login db_owner in it".into()
    } else if upper.contains("CREATE TABLE") || upper.contains("ALTER") || code == 262 {
        format!(
            "creating the store's tables needs db_owner (or db_ddladmin) in database '{database}' (ALTER ROLE db_owner ADD MEMBER <user>)"
        )
    } else if code == 916 {
        format!(
            "the login has no user in database '{database}': CREATE USER <user> FOR LOGIN <login>, then ALTER ROLE db_owner ADD MEMBER <user>"
        )
    } else {
        format!(
            "the store needs to read and write its tables: make the login's user a member of db_owner in database '{database}' (or of db_datareader and db_datawriter)"
        )
    }
}

/// The object a message names in quotes (`'sstore_meta'`), if any.
fn table_in(message: &str) -> Option<String> {
    let start = message.find('\'')? + 1;
    let end = start + message[start..].find('\'')?;
    let name = &message[start..end];
    (!name.is_empty()).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SqlServerConfig {
        SqlServerConfig::new("db.example.com", "Vault", "sstore")
    }

    #[test]
    fn server_errors_map_to_distinct_kinds() {
        let c = config();
        let kind = |code: u32, message: &str| map_server_error(code, message.into(), &c, "Vault");
        assert!(matches!(
            kind(18456, "Login failed for user 'sstore'."),
            SqlServerError::LoginFailed { .. }
        ));
        assert!(matches!(
            kind(4060, "Cannot open database \"Vault\""),
            SqlServerError::DatabaseMissing { .. }
        ));
        assert!(matches!(
            kind(1205, "deadlock"),
            SqlServerError::Deadlock { retried: false, .. }
        ));
        assert!(matches!(
            kind(1222, "Lock request time out period exceeded."),
            SqlServerError::Busy { .. }
        ));
        assert!(matches!(
            kind(33557097, "canceling statement due to lock timeout"),
            SqlServerError::Conflict { .. }
        ));
        assert!(
            matches!(kind(208, "Invalid object name 'sstore_meta'."), SqlServerError::NoStore { ref table, .. } if table == "sstore_meta")
        );
        let denied = kind(
            229,
            "The SELECT permission was denied on the object 'sstore_credentials', database 'Vault', schema 'dbo'.",
        );
        assert!(denied.to_string().contains("db_owner"), "{denied}");
        assert!(
            matches!(denied, SqlServerError::PermissionDenied { table: Some(ref t), .. } if t == "sstore_credentials")
        );
        let create = kind(
            262,
            "CREATE DATABASE permission denied in database 'master'.",
        );
        assert!(create.to_string().contains("dbcreator"), "{create}");
        assert!(kind(1205, "").is_retryable() && kind(1222, "").is_retryable());
        assert!(!kind(18456, "").is_retryable() && !kind(229, "").is_retryable());
    }

    #[test]
    fn transport_errors_map_to_timeouts_tls_and_lost_connections() {
        let c = config();
        let io = |kind| TdsError::Io {
            kind,
            message: "boom".into(),
        };
        assert!(matches!(
            map_error(
                io(std::io::ErrorKind::TimedOut),
                &c,
                "Vault",
                Stage::Statement
            ),
            SqlServerError::Timeout {
                retryable: true,
                ..
            }
        ));
        assert!(matches!(
            map_error(io(std::io::ErrorKind::TimedOut), &c, "Vault", Stage::Login),
            SqlServerError::Timeout {
                retryable: false,
                ..
            }
        ));
        assert!(matches!(
            map_error(
                io(std::io::ErrorKind::ConnectionReset),
                &c,
                "Vault",
                Stage::Statement
            ),
            SqlServerError::ConnectionLost { .. }
        ));
        assert!(matches!(
            map_error(
                TdsError::Protocol("Server does not allow the requested encryption level.".into()),
                &c,
                "Vault",
                Stage::Login
            ),
            SqlServerError::TlsRefused { .. }
        ));
        assert!(matches!(
            map_error(
                TdsError::Tls("invalid peer certificate: UnknownIssuer".into()),
                &c,
                "Vault",
                Stage::Login
            ),
            SqlServerError::TlsRefused { .. }
        ));
    }
}
