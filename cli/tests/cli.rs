//! The `sstore` command, run as a real process.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;

#[test]
fn backup_history_verify_and_restore_as_a_user_would() {
    let sb = Sandbox::new();
    sb.sample_store();
    let dir = sb.backups();
    let dir = dir.to_str().unwrap();

    let tree = sb.ok(&["backup", "--show-tree"]);
    assert!(
        tree.contains("SecureStore") && tree.contains("2 target applications, 3 credential sets"),
        "{tree}"
    );

    let out = sb.run(&[
        "backup",
        "--directory",
        dir,
        "--method",
        "full",
        "--item",
        "SecureStore",
        "--verbose",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("sstorebr0000") && stdout.contains("2 applications, 3 credential sets"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("staged copy read back and verified"));
    sb.ok(&["backup", "--directory", dir]);

    let history: serde_json::Value =
        serde_json::from_str(&sb.ok(&["history", "--directory", dir, "--json"])).unwrap();
    let entries = history["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert!(
        entries
            .iter()
            .all(|e| e["status"] == "succeeded" && e["kind"] == "backup")
    );
    let first_id = entries[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(entries[1]["folder"], "sstorebr0001");
    assert!(sb.ok(&["history", "--directory", dir]).contains(&first_id));

    assert!(
        sb.ok(&["verify", "--directory", dir, "--backup-id", &first_id])
            .contains("verified")
    );

    // Restore as a new store and read a value back from it.
    let new_store = sb.path("restored/store.db");
    let out = sb.ok(&[
        "restore",
        "--directory",
        dir,
        "--backup-id",
        &first_id,
        "--method",
        "new",
        "--new-store",
        new_store.to_str().unwrap(),
    ]);
    assert!(out.contains("opens its Master Key"), "{out}");
    let got = sb
        .cmd()
        .env("SSTORE_STORE", &new_store)
        .args([
            "cred",
            "get",
            "crm",
            "--principal",
            "CONTOSO\\bob",
            "--json",
        ])
        .output()
        .unwrap();
    let got: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(got["fields"]["Windows Password"], "Secret-of-bob");

    // Overwrite the live store after a change; the change is gone and the key still opens.
    sb.ok(&["cred", "clear", "crm", "--principal", "CONTOSO\\alice"]);
    sb.ok(&[
        "restore",
        "--directory",
        dir,
        "--method",
        "overwrite",
        "--force",
    ]);
    assert!(
        sb.ok(&["cred", "get", "crm", "--principal", "CONTOSO\\alice"])
            .contains("Secret-of-alice")
    );
    assert!(sb.ok(&["key", "refresh"]).contains("generation 1"));

    let history: serde_json::Value =
        serde_json::from_str(&sb.ok(&["history", "--directory", dir, "--json"])).unwrap();
    let restores: Vec<_> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "restore")
        .collect();
    assert_eq!(restores.len(), 2);
    assert!(
        std::path::Path::new(dir)
            .join("sstorebr0001/sstorerestore.log")
            .is_file()
    );
}

#[test]
fn secrets_never_reach_output_logs_or_plain_files() {
    let sb = Sandbox::new();
    sb.sample_store();
    let dir = sb.backups();
    let mut all_output = String::new();
    for args in [
        vec!["backup", "--directory", dir.to_str().unwrap(), "--verbose"],
        vec!["history", "--directory", dir.to_str().unwrap()],
        vec!["verify", "--directory", dir.to_str().unwrap()],
        vec!["app", "show", "crm"],
        vec!["store", "info"],
    ] {
        let out = sb.run(&args);
        assert!(out.status.success(), "{}", text(&out));
        all_output.push_str(&text(&out));
    }
    let secrets = [PASS, "Secret-of-alice", "Secret-of-bob", "Secret-Pin-9"];
    for secret in secrets {
        assert!(!all_output.contains(secret), "output contains a secret");
    }
    let mut files = files_under(&dir);
    files.push(sb.store());
    assert!(files.len() >= 5);
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        let haystack = String::from_utf8_lossy(&bytes);
        for secret in secrets {
            assert!(
                !haystack.contains(secret),
                "{} contains a secret in the clear",
                file.display()
            );
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} is not owner-only", file.display());
        }
    }
}

#[test]
fn exit_codes_are_as_documented() {
    let sb = Sandbox::new();
    let dir = sb.backups();
    let dir = dir.to_str().unwrap();

    // 4: no store.
    let out = sb.run(&["app", "list"]);
    assert_eq!(code(&out), 4, "{}", text(&out));
    assert!(text(&out).contains("sstore store init"), "{}", text(&out));
    // 2: usage.
    assert_eq!(code(&sb.run(&["backup", "--method", "differential"])), 2);
    assert_eq!(code(&sb.run(&["restore", "--directory", dir])), 2);

    sb.sample_store();
    // 1: policy refused (store init on a new path with a weak passphrase).
    let out = sb
        .cmd()
        .env("SSTORE_STORE", sb.path("weak.db"))
        .env("SSTORE_PASSPHRASE", "weakweak")
        .args(["store", "init"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    assert!(text(&out).contains("3 of"), "{}", text(&out));
    // 3: wrong store passphrase.
    let out = sb
        .cmd()
        .env("SSTORE_PASSPHRASE", "Wrong-Pass-123")
        .args(["cred", "get", "crm", "--principal", "CONTOSO\\bob"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 3, "{}", text(&out));
    assert!(!text(&out).contains("Secret-of-bob"));

    sb.ok(&["backup", "--directory", dir]);
    let live = std::fs::read(sb.store()).unwrap();
    // 3: wrong backup passphrase on restore; nothing changed.
    let out = sb
        .cmd()
        .env("SSTORE_BACKUP_PASSPHRASE", "Wrong-Backup-1")
        .args([
            "restore",
            "--directory",
            dir,
            "--method",
            "overwrite",
            "--force",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 3, "{}", text(&out));
    assert!(
        text(&out).contains("sstorebackup.bak") && text(&out).contains("SSTORE_BACKUP_PASSPHRASE"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read(sb.store()).unwrap(), live);
    // 1: overwrite without --force and without a terminal; nothing changed.
    let out = sb.run(&["restore", "--directory", dir, "--method", "overwrite"]);
    assert_eq!(code(&out), 1);
    assert!(text(&out).contains("--force"), "{}", text(&out));
    assert_eq!(std::fs::read(sb.store()).unwrap(), live);
    // 5: a damaged backup.
    let bak = sb.backups().join("sstorebr0000/sstorebackup.bak");
    let mut bytes = std::fs::read(&bak).unwrap();
    let last = bytes.len() - 20;
    bytes[last] ^= 1;
    std::fs::write(&bak, &bytes).unwrap();
    let out = sb.run(&["verify", "--directory", dir]);
    assert_eq!(code(&out), 5, "{}", text(&out));
    assert!(
        text(&out).contains("corrupted") && text(&out).contains("another backup"),
        "{}",
        text(&out)
    );
    let out = sb.run(&[
        "restore",
        "--directory",
        dir,
        "--method",
        "overwrite",
        "--force",
    ]);
    assert_eq!(code(&out), 5);
    assert_eq!(std::fs::read(sb.store()).unwrap(), live);
    // An unknown item lists what can be backed up.
    let out = sb.run(&["backup", "--directory", dir, "--item", "Farm"]);
    assert_eq!(code(&out), 1);
    assert!(text(&out).contains("SecureStore"));
}

#[test]
fn separate_backup_passphrase_and_passphrase_files() {
    let sb = Sandbox::new();
    sb.sample_store();
    let dir = sb.backups();
    let dir = dir.to_str().unwrap();
    let file = sb.path("backup-pass.txt");
    std::fs::write(&file, "Backup-Only-Pass-5\n").unwrap();
    #[cfg(unix)]
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    sb.ok(&[
        "--backup-passphrase-file",
        file.to_str().unwrap(),
        "backup",
        "--directory",
        dir,
    ]);
    // The store passphrase does not open that backup ...
    let out = sb.run(&["verify", "--directory", dir]);
    assert_eq!(code(&out), 3, "{}", text(&out));
    // ... the backup passphrase does, from the environment too.
    let out = sb
        .cmd()
        .env("SSTORE_BACKUP_PASSPHRASE", "Backup-Only-Pass-5")
        .args(["verify", "--directory", dir])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // A weak backup passphrase is refused before anything is written.
    let out = sb
        .cmd()
        .env("SSTORE_BACKUP_PASSPHRASE", "weak")
        .args(["backup", "--directory", dir])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    let history: serde_json::Value =
        serde_json::from_str(&sb.ok(&["history", "--directory", dir, "--json"])).unwrap();
    assert_eq!(history["entries"].as_array().unwrap().len(), 1);
}

#[test]
fn masterkey_update_then_backups_follow_the_new_key() {
    let sb = Sandbox::new();
    sb.sample_store();
    let dir = sb.backups();
    let dir = dir.to_str().unwrap();
    sb.ok(&["backup", "--directory", dir]);
    let out = sb
        .cmd()
        .env("SSTORE_NEW_PASSPHRASE", "Second-Pass-88")
        .args(["masterkey", "update"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("generation 2") && text(&out).contains("3 credential sets"),
        "{}",
        text(&out)
    );
    // The old passphrase no longer opens the store; the new one does.
    assert_eq!(code(&sb.run(&["key", "refresh"])), 3);
    let new = |args: &[&str]| {
        sb.cmd()
            .env("SSTORE_PASSPHRASE", "Second-Pass-88")
            .args(args)
            .output()
            .unwrap()
    };
    assert!(
        String::from_utf8_lossy(
            &new(&["cred", "get", "crm", "--principal", "CONTOSO\\alice"]).stdout
        )
        .contains("Secret-of-alice")
    );
    assert!(new(&["backup", "--directory", dir]).status.success());
    // The first backup was encrypted under the passphrase in force then: the new one cannot open it.
    let first = first_backup_id(&sb, dir);
    let restore_first = [
        "restore",
        "--directory",
        dir,
        "--backup-id",
        &first,
        "--method",
        "overwrite",
        "--force",
    ];
    let out = new(&restore_first);
    assert_eq!(code(&out), 3, "{}", text(&out));
    // With the old passphrase as backup passphrase it restores generation 1, and says that the
    // current store passphrase does not open it.
    let out = sb
        .cmd()
        .env("SSTORE_PASSPHRASE", "Second-Pass-88")
        .env("SSTORE_BACKUP_PASSPHRASE", PASS)
        .args(restore_first)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("does not open the restored Master Key (generation 1)"),
        "{}",
        text(&out)
    );
    assert!(sb.ok(&["key", "refresh"]).contains("generation 1"));
}

fn first_backup_id(sb: &Sandbox, dir: &str) -> String {
    let history: serde_json::Value =
        serde_json::from_str(&sb.ok(&["history", "--directory", dir, "--json"])).unwrap();
    history["entries"][0]["id"].as_str().unwrap().to_owned()
}

#[test]
fn config_file_supplies_store_and_directory_and_rejects_unknown_keys() {
    let sb = Sandbox::new();
    sb.sample_store();
    let config = sb.path("sstore.toml");
    std::fs::write(
        &config,
        "store = \"store.db\"\n[backup]\ndirectory = \"from-config\"\n",
    )
    .unwrap();
    let out = sb
        .cmd()
        .env_remove("SSTORE_STORE")
        .args(["--config", config.to_str().unwrap(), "backup"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(sb.path("from-config/sstorebrtoc.json").is_file());
    std::fs::write(&config, "[backup]\ndirectroy = \"x\"\n").unwrap();
    let out = sb.run(&["--config", config.to_str().unwrap(), "history"]);
    assert_eq!(code(&out), 1);
    assert!(text(&out).contains("directroy"), "{}", text(&out));
}
