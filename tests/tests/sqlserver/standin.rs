//! Protocol-level tests of the SQL Server home against the TDS stand-in
//! (`sstore_tests::tds_standin`): a hand-written responder, **not a T-SQL engine**. They show
//! the login and its failures, the encryption settings, how server and transport errors map,
//! that a read-only backup retries a deadlock and a dropped connection, and that the password
//! is sent only inside the login. The store's T-SQL runs only against real engines: see
//! `engine.rs` (`SSTORE_TEST_MSSQL_URL`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sstore_core::ErrorCategory;
use sstore_core::store::{
    Encryption, PasswordSource, SecureStore, SqlAuth, SqlServerConfig, SqlServerError, StoreError,
    StoreLocation,
};
use sstore_tests::tds_standin::{Answer, Login, Script, TdsStandIn};

const PASSWORD: &str = "Stand-In-Pw-7319";

/// A location on the stand-in, with the password in a file and short timeouts.
fn location(standin: &TdsStandIn, dir: &tempfile::TempDir, password: &str) -> SqlServerConfig {
    let file: PathBuf = dir.path().join("mssql.pw");
    sstore_tests::write_secret_file(&file, &format!("{password}\n"));
    let mut config = SqlServerConfig::new("127.0.0.1", "Vault", "sstore_app");
    config.port = standin.port();
    config.encrypt = Encryption::None;
    config.auth = SqlAuth::Sql {
        user: "sstore_app".into(),
        password: PasswordSource::File(file),
    };
    config.connect_timeout = Duration::from_secs(2);
    config.command_timeout = Duration::from_secs(1);
    config
}

fn open(config: &SqlServerConfig) -> Result<SecureStore, StoreError> {
    SecureStore::open_at(&StoreLocation::SqlServer(config.clone()))
}

fn server_error(result: Result<SecureStore, StoreError>) -> SqlServerError {
    match result {
        Err(StoreError::SqlServer(e)) => e,
        Err(other) => panic!("not a SQL Server error: {other}"),
        Ok(_) => panic!("the store opened"),
    }
}

fn version_row() -> Answer {
    Answer::Rows(vec!["1".into()])
}

#[test]
fn tds_standin_login_sends_user_password_and_database_and_checks_the_schema_version() {
    let standin = TdsStandIn::start(vec![Script::accept(PASSWORD, vec![version_row()])]);
    let dir = sstore_tests::scratch_dir();
    let store = open(&location(&standin, &dir, PASSWORD)).unwrap();
    assert!(store.location().is_sql_server());
    let seen = standin.seen();
    assert_eq!(
        seen.logins,
        vec![("sstore_app".into(), PASSWORD.into(), "Vault".into())]
    );
    assert!(
        seen.requests[0].starts_with("SET XACT_ABORT ON; SET LOCK_TIMEOUT 30000"),
        "{:?}",
        seen.requests
    );
    // The password went in the LOGIN7 packet only, never in a statement.
    assert!(seen.requests.iter().all(|r| !r.contains(PASSWORD)));
}

#[test]
fn tds_standin_a_password_file_others_can_read_is_refused_before_connecting() {
    let standin = TdsStandIn::start(vec![Script::accept(PASSWORD, vec![version_row()])]);
    let dir = sstore_tests::scratch_dir();
    let config = location(&standin, &dir, PASSWORD);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let file = dir.path().join("mssql.pw");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = server_error(open(&config));
        let text = err.to_string();
        assert!(
            text.contains("can be read by other users") && text.contains("mssql.pw"),
            "{text}"
        );
        assert!(standin.seen().logins.is_empty(), "nothing was sent");
        // Owner-only again: the secret scan after the suite allows no readable secret file.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

#[test]
fn tds_standin_another_schema_version_is_refused() {
    let standin = TdsStandIn::start(vec![Script::accept(
        PASSWORD,
        vec![Answer::Rows(vec!["9".into()])],
    )]);
    let dir = sstore_tests::scratch_dir();
    let err = server_error(open(&location(&standin, &dir, PASSWORD)));
    assert!(
        matches!(err, SqlServerError::SchemaVersion { ref found, supported: 1, .. } if found == "9"),
        "{err}"
    );
}

#[test]
fn tds_standin_wrong_password_is_a_login_failure_that_never_quotes_it() {
    let standin = TdsStandIn::start(vec![Script::accept(PASSWORD, vec![])]);
    let dir = sstore_tests::scratch_dir();
    let wrong = "Wrong-Pw-5521";
    let err = server_error(open(&location(&standin, &dir, wrong)));
    assert!(matches!(err, SqlServerError::LoginFailed { .. }), "{err}");
    let text = format!("{err} {err:?}");
    assert!(
        text.contains("sstore_app") && text.contains("127.0.0.1:"),
        "{text}"
    );
    assert!(!text.contains(wrong) && !text.contains(PASSWORD), "{text}");
    assert_eq!(standin.seen().logins[0].1, wrong);
}

#[test]
fn tds_standin_missing_database_is_its_own_error_and_means_no_store() {
    let standin = TdsStandIn::start(vec![Script {
        login: Login::Refuse {
            code: 4060,
            message: "Cannot open database \"Vault\" requested by the login. The login failed."
                .into(),
        },
        answers: vec![],
    }]);
    let dir = sstore_tests::scratch_dir();
    let err = open(&location(&standin, &dir, PASSWORD)).unwrap_err();
    assert_eq!(err.category(), ErrorCategory::NoStore);
    assert!(
        matches!(err, StoreError::SqlServer(SqlServerError::DatabaseMissing { ref database, .. }) if database == "Vault"),
        "{err}"
    );
    assert!(err.to_string().contains("dbcreator"), "{err}");
}

#[test]
fn tds_standin_a_database_without_the_tables_is_no_store() {
    let standin = TdsStandIn::start(vec![Script::accept(
        PASSWORD,
        vec![Answer::Error {
            code: 208,
            message: "Invalid object name 'sstore_meta'.".into(),
        }],
    )]);
    let dir = sstore_tests::scratch_dir();
    let err = open(&location(&standin, &dir, PASSWORD)).unwrap_err();
    assert_eq!(err.category(), ErrorCategory::NoStore);
    assert!(err.to_string().contains("sstore store init"), "{err}");
}

#[test]
fn tds_standin_requiring_tls_of_a_server_without_it_is_a_tls_refusal() {
    let standin = TdsStandIn::start(vec![Script::accept(PASSWORD, vec![version_row()])]);
    let dir = sstore_tests::scratch_dir();
    for encrypt in [Encryption::Required, Encryption::On] {
        let mut config = location(&standin, &dir, PASSWORD);
        config.encrypt = encrypt;
        let err = server_error(open(&config));
        assert!(
            matches!(err, SqlServerError::TlsRefused { .. }),
            "{encrypt:?}: {err}"
        );
    }
    // Refused before any login was sent.
    assert!(standin.seen().logins.is_empty());
}

#[test]
fn tds_standin_no_tls_at_all_is_for_loopback_only() {
    let mut config = SqlServerConfig::new("db.example.com", "Vault", "sstore_app");
    config.encrypt = Encryption::None;
    let err = open(&config).unwrap_err();
    assert!(matches!(err, StoreError::InvalidLocation { .. }), "{err}");
}

#[test]
fn tds_standin_unreachable_server_and_silent_login_are_distinct_errors() {
    let dir = sstore_tests::scratch_dir();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let standin = TdsStandIn::start(vec![Script {
        login: Login::Hang,
        answers: vec![],
    }]);
    let mut config = location(&standin, &dir, PASSWORD);
    config.port = closed;
    let err = server_error(open(&config));
    assert!(matches!(err, SqlServerError::Unreachable { .. }), "{err}");

    let config = location(&standin, &dir, PASSWORD);
    let started = Instant::now();
    let err = server_error(open(&config));
    assert!(
        matches!(err, SqlServerError::Timeout { ref during, retryable: false, .. } if during == "logging in"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn tds_standin_server_errors_map_to_deadlock_busy_and_permission() {
    let dir = sstore_tests::scratch_dir();
    for (code, message, check) in [
        (
            1205u32,
            "Transaction was deadlocked on lock resources with another process and has been chosen as the deadlock victim.",
            "deadlock",
        ),
        (1222, "Lock request time out period exceeded.", "busy"),
        (
            229,
            "The SELECT permission was denied on the object 'sstore_meta', database 'Vault', schema 'dbo'.",
            "permission",
        ),
    ] {
        let standin = TdsStandIn::start(vec![Script::accept(
            PASSWORD,
            vec![Answer::Error {
                code,
                message: message.into(),
            }],
        )]);
        let err = server_error(open(&location(&standin, &dir, PASSWORD)));
        let ok = match check {
            "deadlock" => matches!(err, SqlServerError::Deadlock { retried: false, .. }),
            "busy" => matches!(err, SqlServerError::Busy { .. }),
            _ => {
                matches!(err, SqlServerError::PermissionDenied { ref table, .. } if table.as_deref() == Some("sstore_meta"))
                    && err.to_string().contains("db_owner")
            }
        };
        assert!(ok, "{code}: {err}");
    }
}

#[test]
fn tds_standin_a_silent_server_times_the_statement_out() {
    let standin = TdsStandIn::start(vec![Script::accept(PASSWORD, vec![Answer::Hang])]);
    let dir = sstore_tests::scratch_dir();
    let started = Instant::now();
    let err = server_error(open(&location(&standin, &dir, PASSWORD)));
    assert!(
        matches!(
            err,
            SqlServerError::Timeout {
                retryable: true,
                ..
            }
        ),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn tds_standin_a_read_only_backup_retries_a_deadlock_and_a_dropped_connection() {
    let deadlock = || Answer::Error {
        code: 1205,
        message: "chosen as the deadlock victim".into(),
    };
    let standin = TdsStandIn::start(vec![
        // The store opens; the snapshot transaction's first attempt, on the same connection,
        // is a deadlock victim; the second loses its connection; the third meets a refusal
        // that is not worth retrying.
        Script::accept(PASSWORD, vec![version_row(), deadlock()]),
        Script::accept(PASSWORD, vec![Answer::Drop]),
        Script::accept(
            PASSWORD,
            vec![Answer::Error {
                code: 229,
                message: "The SELECT permission was denied on the object 'sstore_credentials'."
                    .into(),
            }],
        ),
    ]);
    let dir = sstore_tests::scratch_dir();
    let store = open(&location(&standin, &dir, PASSWORD)).unwrap();
    let err = store.snapshot(&dir.path().join("snap.db")).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SqlServer(SqlServerError::PermissionDenied { .. })
        ),
        "{err}"
    );
    let seen = standin.seen();
    assert_eq!(seen.logins.len(), 3, "one login to open, two more attempts");
    let snapshots = seen
        .requests
        .iter()
        .filter(|r| r.contains("ISOLATION LEVEL SNAPSHOT"))
        .count();
    assert_eq!(snapshots, 3, "{:?}", seen.requests);
    assert!(!dir.path().join("snap.db").exists());
}

#[test]
fn tds_standin_a_backup_that_keeps_deadlocking_gives_up_and_says_it_retried() {
    let deadlock = || Answer::Error {
        code: 1205,
        message: "chosen as the deadlock victim".into(),
    };
    let standin = TdsStandIn::start(vec![
        Script::accept(PASSWORD, vec![version_row(), deadlock()]),
        Script::accept(PASSWORD, vec![deadlock()]),
    ]);
    let dir = sstore_tests::scratch_dir();
    let store = open(&location(&standin, &dir, PASSWORD)).unwrap();
    let err = store.snapshot(&dir.path().join("snap.db")).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SqlServer(SqlServerError::Deadlock { retried: true, .. })
        ),
        "{err}"
    );
    let seen = standin.seen();
    assert_eq!(
        seen.logins.len(),
        4,
        "the first attempt on the open connection, three more"
    );
    let snapshots = seen
        .requests
        .iter()
        .filter(|r| r.contains("ISOLATION LEVEL SNAPSHOT"))
        .count();
    assert_eq!(snapshots, 4);
}

#[test]
fn tds_standin_a_writer_that_cannot_get_the_lock_changes_nothing() {
    // sp_getapplock answers -1 (timeout): the writer gives up before any change.
    let standin = TdsStandIn::start(vec![Script::accept(
        PASSWORD,
        vec![version_row(), Answer::Int(-1)],
    )]);
    let dir = sstore_tests::scratch_dir();
    let mut store = open(&location(&standin, &dir, PASSWORD)).unwrap();
    let err = store.remove_app("crm").unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SqlServer(SqlServerError::Busy {
                waited_secs: 30,
                ..
            })
        ),
        "{err}"
    );
    let seen = standin.seen();
    let last = seen.requests.last().unwrap();
    assert!(
        last.starts_with("IF @@TRANCOUNT > 0 ROLLBACK"),
        "{:?}",
        seen.requests
    );
    assert!(
        seen.requests
            .iter()
            .any(|r| r.contains("sp_getapplock @Resource = N'sstore-store-writer'")),
        "{:?}",
        seen.requests
    );
}

#[test]
fn tds_standin_a_password_missing_from_the_environment_is_named() {
    let standin = TdsStandIn::start(vec![Script::accept(PASSWORD, vec![version_row()])]);
    let dir = sstore_tests::scratch_dir();
    let mut config = location(&standin, &dir, PASSWORD);
    config.auth = SqlAuth::Sql {
        user: "sstore_app".into(),
        password: PasswordSource::Env("SSTORE_TEST_UNSET_PASSWORD_VARIABLE".into()),
    };
    let err = server_error(open(&config));
    assert!(
        matches!(err, SqlServerError::PasswordMissing { .. })
            && err
                .to_string()
                .contains("SSTORE_TEST_UNSET_PASSWORD_VARIABLE"),
        "{err}"
    );
    // The password can come from any variable: cargo sets CARGO_PKG_NAME for test runs.
    let standin = TdsStandIn::start(vec![Script::accept("sstore-tests", vec![version_row()])]);
    let mut config = location(&standin, &dir, PASSWORD);
    config.auth = SqlAuth::Sql {
        user: "sstore_app".into(),
        password: PasswordSource::Env("CARGO_PKG_NAME".into()),
    };
    open(&config).unwrap();
}
