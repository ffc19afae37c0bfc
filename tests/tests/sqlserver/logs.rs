//! The password never reaches a log: protocol-level tests against the TDS stand-in (not a
//! T-SQL engine), with every `log` record (tiberius's own tracing included) and every job log
//! line captured (the logger is the process's: it sees every test of this binary).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sstore_core::backup::{EventSink, run_backup};
use sstore_core::store::{
    Encryption, PasswordSource, SecureStore, SqlAuth, SqlServerConfig, StoreLocation,
};
use sstore_tests::tds_standin::{Answer, Script, TdsStandIn};
use sstore_tests::{fast_options, local_directory, passphrase};

const PASSWORD: &str = "Never-Logged-Pw-4471";

struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        self.0.lock().unwrap().push(format!(
            "{} {} {}",
            record.level(),
            record.target(),
            record.args()
        ));
    }
    fn flush(&self) {}
}

fn capture() -> &'static Capture {
    static LOGGER: OnceLock<&'static Capture> = OnceLock::new();
    LOGGER.get_or_init(|| {
        let logger: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
        log::set_logger(logger).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
        logger
    })
}

fn config(standin: &TdsStandIn, dir: &std::path::Path, password: &str) -> SqlServerConfig {
    let file = dir.join("pw");
    sstore_tests::write_secret_file(&file, password);
    let mut config = SqlServerConfig::new("127.0.0.1", "Vault", "sstore_app");
    config.port = standin.port();
    config.encrypt = Encryption::None;
    config.auth = SqlAuth::Sql {
        user: "sstore_app".into(),
        password: PasswordSource::File(file),
    };
    config.command_timeout = Duration::from_secs(2);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tds_standin_the_password_reaches_no_log_no_job_log_and_no_message() {
    let logs = capture();
    let dir = sstore_tests::scratch_dir();
    // A wrong password, then a login that works and a backup the server refuses.
    let refused = TdsStandIn::start(vec![Script::accept("Other-Pw-1", vec![])]);
    let err = SecureStore::open_at(&StoreLocation::SqlServer(config(
        &refused,
        dir.path(),
        PASSWORD,
    )))
    .unwrap_err();
    let mut texts = vec![err.to_string(), format!("{err:?}")];

    let standin = TdsStandIn::start(vec![
        Script::accept(PASSWORD, vec![Answer::Rows(vec!["1".into()])]),
        Script::accept(
            PASSWORD,
            vec![Answer::Error {
                code: 229,
                message: "The SELECT permission was denied on the object 'sstore_meta'.".into(),
            }],
        ),
    ]);
    let location = StoreLocation::SqlServer(config(&standin, dir.path(), PASSWORD));
    texts.push(location.to_string());
    texts.push(format!("{location:?}"));
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = {
        let lines = lines.clone();
        EventSink::new(move |event| {
            if let Some((_, line)) = event.log_line() {
                lines.lock().unwrap().push(line.to_owned());
            }
        })
    };
    let backups = local_directory(&dir.path().join("backups"));
    let err = run_backup(
        &location.to_locator(),
        &backups,
        &passphrase(),
        &fast_options(),
        &sink,
    )
    .await
    .unwrap_err();
    texts.push(err.to_string());
    let job_log = lines.lock().unwrap().clone();
    assert!(
        job_log
            .iter()
            .any(|l| l.contains("mssql://sstore_app@127.0.0.1:")),
        "the job log names the store: {job_log:?}"
    );
    texts.extend(job_log);
    // Both logins carried the password: it was used, and only there.
    assert!(standin.seen().logins.iter().all(|l| l.1 == PASSWORD));
    let records = logs.0.lock().unwrap().clone();
    assert!(
        records.iter().any(|r| r.contains("tiberius")),
        "tiberius's tracing reaches the log: {records:?}"
    );
    texts.extend(records);
    for text in &texts {
        assert!(!text.contains(PASSWORD), "the password leaked: {text}");
    }
}
