//! Backups written to X25519 recipients with the real binary: a job with recipients only
//! needs no passphrase; each identity alone opens the backup; a wrong identity is exit 3 and
//! changes nothing; identity files are owner-only and checked; no secret is ever printed or
//! written beside the backups.

#![cfg(unix)]
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{PASS, Sandbox, code, files_under, text};

/// `sstore backup-key generate --out FILE`: the recipient it printed.
fn generate(sandbox: &Sandbox, name: &str) -> (std::path::PathBuf, String) {
    let file = sandbox.path(name);
    let recipient = sandbox.ok(&["backup-key", "generate", "--out", file.to_str().unwrap()]);
    (file, recipient.trim().to_owned())
}

/// The identity's secret line, to search for it where it must not be.
fn secret_of(file: &Path) -> String {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("SSTORE-SECRET-KEY-1"))
        .unwrap()
        .to_owned()
}

/// `sstore ARGS` without any passphrase in the environment.
fn run_without_passphrase(sandbox: &Sandbox, args: &[&str]) -> std::process::Output {
    sandbox
        .cmd()
        .env_remove("SSTORE_PASSPHRASE")
        .args(args)
        .output()
        .unwrap()
}

fn sha256_of(path: &Path) -> String {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    // A cheap fingerprint is enough to see that nothing changed.
    format!(
        "{}:{:x}",
        bytes.len(),
        bytes
            .iter()
            .fold(0u64, |h, b| h.rotate_left(5) ^ u64::from(*b))
    )
}

#[test]
fn backup_keys_are_generated_owner_only_shown_and_checked() {
    let sandbox = Sandbox::new();
    let (file, recipient) = generate(&sandbox, "id.key");
    assert!(recipient.starts_with("sstore1"), "{recipient}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        sandbox
            .ok(&["backup-key", "show", file.to_str().unwrap()])
            .trim(),
        recipient
    );
    let secret = secret_of(&file);

    // Never overwritten.
    let out = sandbox.run(&["backup-key", "generate", "--out", file.to_str().unwrap()]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(text(&out).contains("already exists"), "{}", text(&out));

    // Refused when others may read it; the message says what to do.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = sandbox.run(&["backup-key", "show", file.to_str().unwrap()]);
    assert_eq!(code(&out), 1);
    assert!(text(&out).contains("chmod 600"), "{}", text(&out));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();

    // A truncated file: a clear error naming the file, and no secret in it.
    let cut = sandbox.path("cut.key");
    let body = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&cut, &body[..body.len() - 20]).unwrap();
    std::fs::set_permissions(&cut, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = sandbox.run(&["backup-key", "show", cut.to_str().unwrap()]);
    assert_eq!(code(&out), 1);
    assert!(text(&out).contains("cut.key"), "{}", text(&out));
    assert!(!text(&out).contains(&secret[20..40]), "{}", text(&out));
}

#[test]
fn recipients_only_need_no_passphrase_and_each_identity_opens_the_backup() {
    let sandbox = Sandbox::new();
    sandbox.sample_store();
    let (alice_file, alice) = generate(&sandbox, "alice.key");
    let (bob_file, bob) = generate(&sandbox, "bob.key");
    let (eve_file, _) = generate(&sandbox, "eve.key");
    let backups = sandbox.backups();
    let dir = backups.to_str().unwrap();

    // Readiness says which slots the backup will have, and that the job holds no secret.
    let out = run_without_passphrase(
        &sandbox,
        &["readiness", "--directory", dir, "--recipient", &alice],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("recipient {alice}")),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("holds no secret"), "{}", text(&out));

    // No passphrase anywhere: the job writes to the recipients only.
    let out = run_without_passphrase(
        &sandbox,
        &[
            "backup",
            "--directory",
            dir,
            "--recipient",
            &alice,
            "--recipient",
            &bob,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(backups.join("sstorebr0000/sstoremanifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["key_slots"], serde_json::json!([alice, bob]));
    assert!(manifest.get("kdf").is_none(), "{manifest}");
    assert_eq!(manifest["format_version"], 2);
    let history: serde_json::Value =
        serde_json::from_str(&sandbox.ok(&["history", "--json", "--directory", dir])).unwrap();
    assert_eq!(
        history["entries"][0]["key_slots"],
        serde_json::json!([alice, bob])
    );

    // Each identity alone opens it, with no passphrase given.
    for file in [&alice_file, &bob_file] {
        let out = run_without_passphrase(
            &sandbox,
            &[
                "verify",
                "--directory",
                dir,
                "--identity",
                file.to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
    }
    let restored = sandbox.path("restored.db");
    let out = sandbox
        .cmd()
        .env_remove("SSTORE_PASSPHRASE")
        .env("SSTORE_IDENTITY_FILE", &bob_file)
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
    let out = sandbox
        .cmd()
        .env("SSTORE_STORE", &restored)
        .args(["cred", "get", "payroll", "--principal", "CONTOSO\\Payroll"])
        .output()
        .unwrap();
    assert!(text(&out).contains("Secret-Pin-9"), "{}", text(&out));

    // A wrong identity, or a passphrase the backup has no slot for: exit 3, the same clear
    // message, and the live store untouched.
    let before = sha256_of(&sandbox.store());
    let out = run_without_passphrase(
        &sandbox,
        &[
            "restore",
            "--directory",
            dir,
            "--method",
            "overwrite",
            "--force",
            "--identity",
            eve_file.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&out), 3, "{}", text(&out));
    assert!(
        text(&out).contains("wrong passphrase or identity"),
        "{}",
        text(&out)
    );
    let out = sandbox.run(&["verify", "--directory", dir]);
    assert_eq!(code(&out), 3, "{}", text(&out));
    assert!(
        text(&out).contains("wrong passphrase or identity"),
        "{}",
        text(&out)
    );
    assert_eq!(sha256_of(&sandbox.store()), before);

    // No secret in anything written beside the backups, nor printed.
    let secrets = [
        secret_of(&alice_file),
        secret_of(&bob_file),
        PASS.to_owned(),
    ];
    for path in files_under(&backups) {
        let bytes = std::fs::read(&path).unwrap();
        let content = String::from_utf8_lossy(&bytes);
        for secret in &secrets {
            assert!(
                !content.contains(secret.as_str()),
                "{} holds a secret",
                path.display()
            );
        }
    }
}

#[test]
fn a_passphrase_slot_beside_configured_recipients_and_verify_all_tells_what_an_identity_opens() {
    let sandbox = Sandbox::new();
    sandbox.sample_store();
    let (alice_file, alice) = generate(&sandbox, "alice.key");
    let (_, bob) = generate(&sandbox, "bob.key");
    let backups = sandbox.backups();
    let dir = backups.to_str().unwrap();
    let config_dir = sandbox.path("config/sstore");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(
        config_dir.join("config.toml"),
        format!("[backup]\nrecipients = [\"{alice}\"]\n"),
    )
    .unwrap();

    // The config's recipient, and a passphrase slot because a backup passphrase is given.
    let out = sandbox
        .cmd()
        .env("SSTORE_BACKUP_PASSPHRASE", "Backup-Only-Pass-5")
        .args(["backup", "--directory", dir])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(backups.join("sstorebr0000/sstoremanifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        manifest["key_slots"],
        serde_json::json!(["passphrase", alice])
    );
    // The passphrase alone opens it.
    let out = sandbox
        .cmd()
        .env("SSTORE_BACKUP_PASSPHRASE", "Backup-Only-Pass-5")
        .args(["verify", "--directory", dir])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    // A second backup to bob only (--recipient overrides the config).
    let out = run_without_passphrase(
        &sandbox,
        &["backup", "--directory", dir, "--recipient", &bob],
    );
    assert!(out.status.success(), "{}", text(&out));

    // verify --all with alice's identity: the first opens, the second does not.
    let out = run_without_passphrase(
        &sandbox,
        &[
            "verify",
            "--all",
            "--directory",
            dir,
            "--identity",
            alice_file.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    let shown = text(&out);
    assert!(shown.contains("sstorebr0000 verified"), "{shown}");
    assert!(
        shown.contains("cannot be opened with the keys given (1 identity)"),
        "{shown}"
    );
    assert!(shown.contains("1 of 2 backups"), "{shown}");
}

#[test]
fn an_invalid_recipient_is_refused_before_anything_is_written() {
    let sandbox = Sandbox::new();
    sandbox.sample_store();
    let backups = sandbox.backups();
    let out = run_without_passphrase(
        &sandbox,
        &[
            "backup",
            "--directory",
            backups.to_str().unwrap(),
            "--recipient",
            "sstore1notarecipient",
        ],
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        text(&out).contains("--recipient sstore1notarecipient"),
        "{}",
        text(&out)
    );
    assert!(!backups.join("sstorebr0000").exists());
}
