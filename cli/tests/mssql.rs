//! `sstore` with its store on SQL Server. The `tds_standin_*` tests run everywhere against the
//! TDS stand-in (a protocol responder, not a T-SQL engine); the `engine_*` tests need a real
//! SQL Server, Azure SQL or Babelfish named by `SSTORE_TEST_MSSQL_URL` (password in
//! `SSTORE_MSSQL_PASSWORD`) and skip with a note without it, even under
//! `SSTORE_REQUIRE_SERVICES=1`: no T-SQL engine can be installed on this machine.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use sstore_core::Passphrase;
use sstore_core::store::{SecureStore, StoreLocation};
use sstore_tests::mssql_engine::{DropDatabase, engine, fresh_database, url, writer_lock_held};
use sstore_tests::tds_standin::{Answer, Script, TdsStandIn};

const DB_PASSWORD: &str = "Cli-Db-Pw-2291";

/// `sstore` pointed at `store` (an mssql:// URL), with the database password in
/// SSTORE_MSSQL_PASSWORD (or the engine's, when testing a real one).
fn at(sb: &Sandbox, store: &str, db_password: &str) -> Command {
    let mut cmd = sb.cmd();
    cmd.env("SSTORE_STORE", store)
        .env("SSTORE_MSSQL_PASSWORD", db_password);
    cmd
}

#[test]
fn tds_standin_a_database_without_a_store_exits_4_and_never_prints_the_password() {
    let standin = TdsStandIn::start(vec![Script::accept(
        DB_PASSWORD,
        vec![Answer::Error {
            code: 208,
            message: "Invalid object name 'sstore_meta'.".into(),
        }],
    )]);
    let sb = Sandbox::new();
    let store = format!(
        "mssql://sstore_app@127.0.0.1:{}/Vault?encrypt=none",
        standin.port()
    );
    let out = at(&sb, &store, DB_PASSWORD)
        .args(["store", "info"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 4, "{}", text(&out));
    let printed = text(&out);
    assert!(
        printed.contains("holds no sstore store") && printed.contains("127.0.0.1:"),
        "{printed}"
    );
    assert!(!printed.contains(DB_PASSWORD));
    let seen = standin.seen();
    assert_eq!(
        seen.logins[0],
        ("sstore_app".into(), DB_PASSWORD.into(), "Vault".into())
    );

    // A wrong password: a login failure naming the user and where the password came from.
    let out = at(&sb, &store, "Wrong-Db-Pw-1")
        .args(["store", "info"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    let printed = text(&out);
    assert!(
        printed.contains("login failed for user 'sstore_app'")
            && printed.contains("SSTORE_MSSQL_PASSWORD"),
        "{printed}"
    );
    assert!(!printed.contains("Wrong-Db-Pw-1"));
}

#[test]
fn tds_standin_a_password_in_the_url_is_refused_and_not_echoed() {
    let sb = Sandbox::new();
    let out = at(&sb, "mssql://sa:Url-Pw-8812@db.example.com/Vault", "")
        .args(["store", "info"])
        .output()
        .unwrap();
    assert_ne!(code(&out), 0);
    let printed = text(&out);
    assert!(
        printed.contains("SSTORE_MSSQL_PASSWORD") && !printed.contains("Url-Pw-8812"),
        "{printed}"
    );
    // A plain path is still an SQLite file.
    sb.ok(&["store", "init"]);
    assert!(
        sb.ok(&["store", "info"])
            .contains(&sb.store().display().to_string())
    );
}

#[test]
fn engine_cli_flows_on_sql_server() {
    let Some(base) = engine("engine_cli_flows_on_sql_server") else {
        return;
    };
    let db_password = std::env::var("SSTORE_MSSQL_PASSWORD").unwrap_or_default();
    let config = fresh_database(&base, "cli");
    let _cleanup = DropDatabase(config.clone());
    let store = url(&config);
    let sb = Sandbox::new();
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut cmd = at(&sb, &store, &db_password);
        cmd.args(args);
        let out = match stdin {
            Some(input) => output_with_input(&mut cmd, input),
            None => cmd.output().unwrap(),
        };
        assert!(out.status.success(), "sstore {args:?}: {}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    run(&["store", "init"], None);
    run(&["app", "new", "crm", "--type", "individual"], None);
    run(
        &["cred", "set", "crm", "--principal", "CONTOSO\\alice"],
        Some("Windows User Name=alice\nWindows Password=Secret-of-alice\n"),
    );
    assert!(
        run(
            &["cred", "get", "crm", "--principal", "CONTOSO\\alice"],
            None
        )
        .contains("Secret-of-alice")
    );
    let info = run(&["store", "info", "--json"], None);
    assert!(
        info.contains("\"home\": \"sqlserver\"") && !info.contains(&db_password),
        "{info}"
    );
    let backups = sb.backups();
    let dir = backups.to_str().unwrap();
    let readiness = run(&["readiness", "--directory", dir], None);
    assert!(readiness.contains("store permission"), "{readiness}");
    run(&["backup", "--directory", dir], None);
    run(&["verify", "--directory", dir], None);
    let file = sb.path("restored.db");
    run(
        &[
            "restore",
            "--directory",
            dir,
            "--method",
            "new",
            "--new-store",
            file.to_str().unwrap(),
        ],
        None,
    );
    let copy = SecureStore::open(&file)
        .unwrap()
        .unlock(&Passphrase::new(PASS))
        .unwrap();
    assert_eq!(
        copy.credentials("crm", "CONTOSO\\alice")
            .unwrap()
            .value("Windows Password"),
        Some("Secret-of-alice")
    );
    run(&["app", "remove", "crm"], None);
    run(
        &[
            "restore",
            "--directory",
            dir,
            "--method",
            "overwrite",
            "--force",
        ],
        None,
    );
    assert!(
        run(
            &["cred", "get", "crm", "--principal", "CONTOSO\\alice"],
            None
        )
        .contains("Secret-of-alice")
    );
    run(&["key", "refresh"], None);
}

#[cfg(unix)]
#[test]
fn engine_masterkey_update_killed_mid_transaction_leaves_one_key() {
    let Some(base) = engine("engine_masterkey_update_killed") else {
        return;
    };
    let db_password = std::env::var("SSTORE_MSSQL_PASSWORD").unwrap_or_default();
    let config = fresh_database(&base, "rotate");
    let _cleanup = DropDatabase(config.clone());
    let location = StoreLocation::SqlServer(config.clone());
    let sb = Sandbox::new();
    // A store big enough that re-encrypting it takes a while, loaded through a restore path.
    let file = sb.path("big.db");
    let sets = sstore_tests::populate(&file, 500, 20);
    SecureStore::load_copy(&file, &location, false).unwrap();
    let opens_with = |pass: &str| {
        let store = SecureStore::open_at(&location)
            .unwrap()
            .unlock(&Passphrase::new(pass))
            .ok()?;
        let summary = store.summary().unwrap();
        for app in store.apps().unwrap() {
            for principal in store.principals(&app.name).unwrap() {
                store.credentials(&app.name, &principal).unwrap();
            }
        }
        Some((summary.credential_sets, summary.master_key.generation))
    };
    let old = sstore_tests::passphrase();
    let mut killed_inside = 0;
    for delay_ms in [0u64, 50, 200, 500] {
        let mut child = at(&sb, &url(&config), &db_password)
            .env("SSTORE_PASSPHRASE", old.expose())
            .env("SSTORE_NEW_PASSPHRASE", "Rotated-Pass-77")
            .args(["masterkey", "update"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !writer_lock_held(&config)
            && child.try_wait().unwrap().is_none()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            killed_inside += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        // The server rolls back the killed session's transaction.
        std::thread::sleep(Duration::from_secs(1));
        match opens_with(old.expose()) {
            Some(found) => {
                assert_eq!(found, (sets, 1), "wholly on the old key");
                assert!(opens_with("Rotated-Pass-77").is_none());
            }
            None => {
                assert_eq!(
                    opens_with("Rotated-Pass-77"),
                    Some((sets, 2)),
                    "wholly on the new key"
                );
                break;
            }
        }
    }
    assert!(killed_inside >= 1, "no kill landed inside the transaction");
}
