//! Backups written by the previous release (format version 1, a passphrase only, kept in
//! `tests/fixtures/v1-backup`) still verify and restore with this one.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{Sandbox, code, text};

const PASS: &str = "Fixture-V1-Pass-3";

/// A private copy of the fixture directory (restores append to its history).
fn copy_fixture(sandbox: &Sandbox) -> std::path::PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/v1-backup");
    let to = sandbox.path("v1-backup");
    std::fs::create_dir_all(to.join("sstorebr0000")).unwrap();
    std::fs::copy(from.join("sstorebrtoc.json"), to.join("sstorebrtoc.json")).unwrap();
    for name in [
        "sstorebackup.bak",
        "sstoremanifest.json",
        "sstorebackup.log",
    ] {
        std::fs::copy(
            from.join("sstorebr0000").join(name),
            to.join("sstorebr0000").join(name),
        )
        .unwrap();
    }
    to
}

#[test]
fn a_version_1_backup_of_the_previous_release_verifies_and_restores() {
    let sandbox = Sandbox::new();
    let dir = copy_fixture(&sandbox);
    let dir = dir.to_str().unwrap();
    let out = sandbox
        .cmd()
        .env("SSTORE_PASSPHRASE", PASS)
        .args(["verify", "--directory", dir])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    let restored = sandbox.path("restored.db");
    let out = sandbox
        .cmd()
        .env("SSTORE_PASSPHRASE", PASS)
        .args([
            "restore",
            "--directory",
            dir,
            "--method",
            "new",
            "--new-store",
        ])
        .arg(&restored)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("opens its Master Key"),
        "{}",
        text(&out)
    );
    let out = sandbox
        .cmd()
        .env("SSTORE_PASSPHRASE", PASS)
        .env("SSTORE_STORE", &restored)
        .args(["cred", "get", "payroll", "--principal", "CONTOSO\\Payroll"])
        .output()
        .unwrap();
    assert!(text(&out).contains("V1-Pin-9"), "{}", text(&out));

    // A wrong passphrase is exit 3, as for every backup.
    let out = sandbox
        .cmd()
        .env("SSTORE_PASSPHRASE", "Not-The-Pass-1")
        .args(["verify", "--directory", dir])
        .output()
        .unwrap();
    assert_eq!(code(&out), 3, "{}", text(&out));
}
