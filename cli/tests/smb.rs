//! The real `sstore` binary against the Samba servers `cargo xtask services up` starts:
//! backups written straight to a share by UNC path (port from the environment, or from a
//! configured target's settings) and by smb:// URL, then `history` and `restore` from it.

#![cfg(all(unix, feature = "smb"))]
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::{Sandbox, text};
use sstore_conformance::services::{self, Services};
use sstore_conformance::unique;

const KEYS: &[&str] = &[
    "SSTORE_TEST_SMB_PORT",
    "SSTORE_TEST_SMB_ENCRYPTED_PORT",
    "SSTORE_TEST_SMB_USER",
    "SSTORE_TEST_SMB_PASSWORD",
    "SSTORE_TEST_SMB_SHARE",
    "SSTORE_TEST_SMB_DATA_DIR",
    "SSTORE_TEST_SMB_ENCRYPTED_DATA_DIR",
];

/// `sstore ARGS` in the sandbox with the SMB password (and anything in `env`) set.
fn smb_cmd(sandbox: &Sandbox, s: &Services, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = sandbox.cmd();
    cmd.env("SSTORE_SMB_PASSWORD", s.get("SSTORE_TEST_SMB_PASSWORD"))
        .envs(env.iter().copied())
        .args(args);
    cmd
}

fn ok(mut cmd: Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?} failed: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// The IDs of the succeeded backups `history --json` lists.
fn backup_ids(json: &str) -> Vec<String> {
    let history: serde_json::Value = serde_json::from_str(json).unwrap();
    history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "backup" && e["status"] == "succeeded")
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Restores into a new store from `location` (`--directory` or `--target` value) and reads
/// a credential back from it.
fn restore_and_check(
    sandbox: &Sandbox,
    s: &Services,
    env: &[(&str, &str)],
    flag: &str,
    location: &str,
    into: &str,
) {
    let restored = sandbox.path(into);
    ok(smb_cmd(
        sandbox,
        s,
        env,
        &[
            "restore",
            flag,
            location,
            "--method",
            "new",
            "--new-store",
            restored.to_str().unwrap(),
        ],
    ));
    let out = sandbox
        .cmd()
        .env("SSTORE_STORE", &restored)
        .args(["cred", "get", "payroll", "--principal", "CONTOSO\\Payroll"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Secret-Pin-9"), "{}", text(&out));
}

#[test]
fn backup_to_a_unc_path_then_history_and_restore_from_it() {
    let Some(s) = services::require(KEYS) else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.sample_store();
    let folder = unique("cli-unc");
    let unc = format!(r"\\127.0.0.1\{}\{folder}", s.get("SSTORE_TEST_SMB_SHARE"));
    let env = [
        ("SSTORE_SMB_USER", s.get("SSTORE_TEST_SMB_USER")),
        ("SSTORE_SMB_PORT", s.get("SSTORE_TEST_SMB_PORT")),
    ];
    let out = ok(smb_cmd(
        &sandbox,
        &s,
        &env,
        &["backup", "--directory", &unc],
    ));
    assert!(!out.contains(s.get("SSTORE_TEST_SMB_PASSWORD")), "{out}");

    let ids = backup_ids(&ok(smb_cmd(
        &sandbox,
        &s,
        &env,
        &["history", "--json", "--directory", &unc],
    )));
    assert_eq!(ids.len(), 1, "{ids:?}");
    // The backup is on the share, published under its final names only.
    let on_share = std::path::Path::new(s.get("SSTORE_TEST_SMB_DATA_DIR")).join(&folder);
    assert!(on_share.join("sstorebr0000/sstorebackup.bak").is_file());
    assert!(
        !on_share.join("sstore.lock").exists(),
        "the lock was released"
    );

    restore_and_check(&sandbox, &s, &env, "--directory", &unc, "from-unc.db");

    // How the session is protected: in readiness and in the backup's job log.
    let readiness = ok(smb_cmd(
        &sandbox,
        &s,
        &env,
        &["readiness", "--directory", &unc],
    ));
    assert!(
        readiness.contains("SMB 3.1.1 session, signed, not encrypted"),
        "{readiness}"
    );
    let log = std::fs::read_to_string(on_share.join("sstorebr0000/sstorebackup.log")).unwrap();
    assert!(log.contains("signed, not encrypted"), "{log}");

    // Without a password the command fails clearly, naming the variable.
    let out = sandbox
        .cmd()
        .envs(env)
        .args(["history", "--directory", &unc])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("SSTORE_SMB_PASSWORD"), "{}", text(&out));
}

#[test]
fn a_configured_unc_target_with_its_port_and_an_smb_url_on_the_encrypting_server() {
    let Some(s) = services::require(KEYS) else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.sample_store();

    // A [[target]] with a UNC url and the port, user and password reference in the config.
    let folder = unique("cli-configured");
    let dir = sandbox.path("config/sstore");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "[[target]]\nname = \"nas\"\nkind = \"smb\"\nurl = '\\\\127.0.0.1\\{}\\{folder}'\n\
             port = {}\nuser = \"{}\"\npassword_env = \"NAS_PASSWORD\"\nencryption = \"if-offered\"\n",
            s.get("SSTORE_TEST_SMB_SHARE"),
            s.get("SSTORE_TEST_SMB_PORT"),
            s.get("SSTORE_TEST_SMB_USER"),
        ),
    )
    .unwrap();
    let env = [("NAS_PASSWORD", s.get("SSTORE_TEST_SMB_PASSWORD"))];
    let local = sandbox.backups();
    ok(smb_cmd(
        &sandbox,
        &s,
        &env,
        &[
            "backup",
            "--directory",
            local.to_str().unwrap(),
            "--target",
            "nas",
        ],
    ));
    let ids = backup_ids(&ok(smb_cmd(
        &sandbox,
        &s,
        &env,
        &["history", "--json", "--target", "nas"],
    )));
    assert_eq!(ids.len(), 1, "{ids:?}");
    restore_and_check(&sandbox, &s, &env, "--target", "nas", "from-nas.db");
    // `sstore targets` says how the configured target's session is protected.
    let listing = ok(smb_cmd(&sandbox, &s, &env, &["targets"]));
    assert!(listing.contains("signed, not encrypted"), "{listing}");

    // An smb:// URL with the user and port in it, on the server that requires encryption:
    // refused by the pure-Rust client before anything is written, with the build to use;
    // served by a build with libsmbclient.
    let url_folder = unique("cli-url");
    let url = format!(
        "smb://{}@127.0.0.1:{}/{}/{url_folder}",
        s.get("SSTORE_TEST_SMB_USER"),
        s.get("SSTORE_TEST_SMB_ENCRYPTED_PORT"),
        s.get("SSTORE_TEST_SMB_SHARE"),
    );
    if !cfg!(feature = "libsmbclient") {
        let out = smb_cmd(&sandbox, &s, &[], &["backup", "--directory", &url])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(
            text(&out).contains("--features libsmbclient"),
            "{}",
            text(&out)
        );
        assert!(text(&out).contains(r"\\127.0.0.1\"), "{}", text(&out));
        let readiness = smb_cmd(&sandbox, &s, &[], &["readiness", "--directory", &url])
            .output()
            .unwrap();
        assert_eq!(readiness.status.code(), Some(1), "{}", text(&readiness));
        assert!(
            text(&readiness).contains("--features libsmbclient"),
            "{}",
            text(&readiness)
        );
        let on_share =
            std::path::Path::new(s.get("SSTORE_TEST_SMB_ENCRYPTED_DATA_DIR")).join(&url_folder);
        assert!(!on_share.exists(), "something reached the share");
        return;
    }
    ok(smb_cmd(&sandbox, &s, &[], &["backup", "--directory", &url]));
    ok(smb_cmd(&sandbox, &s, &[], &["backup", "--directory", &url]));
    let ids = backup_ids(&ok(smb_cmd(
        &sandbox,
        &s,
        &[],
        &["history", "--json", "--directory", &url],
    )));
    assert_eq!(ids.len(), 2, "{ids:?}");
    restore_and_check(&sandbox, &s, &[], "--directory", &url, "from-url.db");
}
