//! A real `sstore` process killed with SIGKILL at the worst moments: the store stays on one
//! key, and the backup history and earlier backups stay intact and restorable.

#![cfg(unix)]
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sstore_core::Passphrase;
use sstore_core::store::SecureStore;

/// Every value decrypts with `passphrase`; returns the number of sets and the key generation.
fn check_store(path: &Path, passphrase: &str) -> Option<(u64, u64)> {
    let store = SecureStore::open(path)
        .unwrap()
        .unlock(&Passphrase::new(passphrase))
        .ok()?;
    let mut sets = 0;
    for app in store.apps().unwrap() {
        for principal in store.principals(&app.name).unwrap() {
            let set = store.credentials(&app.name, &principal).unwrap();
            assert_eq!(
                set.value("User").unwrap(),
                format!("{}-{principal}", app.name)
            );
            sets += 1;
        }
    }
    Some((sets, store.master_key_info().unwrap().generation))
}

/// Waits until `ready` holds (or the child exits), then SIGKILLs the child after `delay`.
/// Returns whether the child was still running when killed.
fn kill_when(child: &mut Child, ready: impl Fn() -> bool, delay: Duration) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    std::thread::sleep(delay);
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    running
}

#[test]
fn masterkey_update_killed_mid_transaction_leaves_one_key() {
    let sb = Sandbox::new();
    let store = sb.store();
    big_store(&store, 150, 80, 16);
    let journal = store.with_file_name("store.db-journal");
    let mut interrupted_on_old_key = 0;
    for delay_ms in [0, 0, 5, 30] {
        let mut child = sb
            .cmd()
            .env("SSTORE_NEW_PASSPHRASE", "Rotated-Pass-77")
            .args(["masterkey", "update"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let running = kill_when(
            &mut child,
            || journal.exists(),
            Duration::from_millis(delay_ms),
        );
        match check_store(&store, PASS) {
            Some((sets, generation)) => {
                assert_eq!(
                    (sets, generation),
                    (12_000, 1),
                    "store on the old key must be complete"
                );
                assert!(check_store(&store, "Rotated-Pass-77").is_none());
                if running {
                    interrupted_on_old_key += 1;
                }
            }
            None => {
                // The update committed before the kill: entirely on the new key.
                assert_eq!(check_store(&store, "Rotated-Pass-77"), Some((12_000, 2)));
                break;
            }
        }
    }
    assert!(
        interrupted_on_old_key >= 1,
        "no kill landed inside the transaction"
    );
    // Uninterrupted, the update completes and only the new passphrase opens the store.
    if check_store(&store, PASS).is_some() {
        let out = sb
            .cmd()
            .env("SSTORE_NEW_PASSPHRASE", "Rotated-Pass-77")
            .args(["masterkey", "update"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    assert!(check_store(&store, PASS).is_none());
    assert_eq!(
        check_store(&store, "Rotated-Pass-77").map(|(s, _)| s),
        Some(12_000)
    );
}

/// When to kill: a condition polled while the job runs.
type KillPoint<'a> = Box<dyn Fn() -> bool + 'a>;

fn history(sb: &Sandbox, dir: &str) -> Vec<serde_json::Value> {
    let h: serde_json::Value =
        serde_json::from_str(&sb.ok(&["history", "--directory", dir, "--json"])).unwrap();
    h["entries"].as_array().unwrap().clone()
}

/// Whether the staging folder, or a job's subfolder in it, holds a file ending in `suffix`.
fn staging_has(dir: &Path, suffix: &str) -> bool {
    fn has(folder: &Path, suffix: &str, depth: u8) -> bool {
        std::fs::read_dir(folder)
            .map(|entries| {
                entries.flatten().any(|e| {
                    e.file_name().to_string_lossy().ends_with(suffix)
                        || (depth > 0 && e.path().is_dir() && has(&e.path(), suffix, depth - 1))
                })
            })
            .unwrap_or(false)
    }
    has(&dir.join(".sstore-staging"), suffix, 1)
}

#[test]
fn backup_killed_mid_write_leaves_history_and_earlier_backups_intact() {
    let sb = Sandbox::new();
    big_store(&sb.store(), 40, 50, 12_000);
    let root = sb.backups();
    let dir = root.to_str().unwrap().to_owned();
    sb.ok(&["backup", "--directory", &dir]);
    let first = history(&sb, &dir)[0]["id"].as_str().unwrap().to_owned();

    let mut interrupted = 0;
    let phases: [(&str, KillPoint, u64); 5] = [
        // The store's pages are read, compressed and encrypted in one pass into the .bak.
        (
            "reading the store",
            Box::new(|| staging_has(&root, ".bak")),
            0,
        ),
        ("encrypting", Box::new(|| staging_has(&root, ".bak")), 10),
        (
            "encrypting, later",
            Box::new(|| staging_has(&root, ".bak")),
            40,
        ),
        (
            "publishing",
            Box::new(|| {
                root.join(format!("sstorebr{:04}", next_folder(&root)))
                    .exists()
            }),
            0,
        ),
        ("anywhere", Box::new(|| true), 150),
    ];
    for (phase, ready, delay) in phases {
        let listed_before = history(&sb, &dir).len();
        let mut child = sb
            .cmd()
            .args(["backup", "--directory", &dir])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let was_running = kill_when(&mut child, ready, Duration::from_millis(delay));
        interrupted += usize::from(was_running);
        let entries = history(&sb, &dir);
        // This run adds at most its own backup and one it resumed from an earlier kill.
        assert!(
            entries.len() >= listed_before && entries.len() <= listed_before + 2,
            "{phase}"
        );
        // Whatever is listed as succeeded is complete and verifies.
        for entry in entries.iter().filter(|e| e["status"] == "succeeded") {
            let id = entry["id"].as_str().unwrap();
            let out = sb.run(&["verify", "--directory", &dir, "--backup-id", id]);
            assert!(
                out.status.success(),
                "after a kill while {phase}: {}",
                text(&out)
            );
        }
    }
    assert!(
        interrupted >= 3,
        "only {interrupted} kills interrupted a running backup"
    );

    // The first backup still restores, and a new backup runs (no stale lock) in a fresh folder.
    let restored = sb.path("restored.db");
    sb.ok(&[
        "restore",
        "--directory",
        &dir,
        "--backup-id",
        &first,
        "--method",
        "new",
        "--new-store",
        restored.to_str().unwrap(),
    ]);
    assert_eq!(check_store(&restored, PASS).map(|(s, _)| s), Some(2000));
    let out = sb.ok(&["backup", "--directory", &dir]);
    let entries = history(&sb, &dir);
    let newest = entries.last().unwrap();
    assert_eq!(newest["status"], "succeeded");
    assert!(out.contains(newest["folder"].as_str().unwrap()));
    // The work files of the killed jobs were cleaned up by the next job.
    assert_eq!(
        staging_entries(&root),
        ["sstore.lock"],
        "work files left in staging"
    );
    // A folder left unlisted by a kill while publishing is reported by `history`.
    let listed: Vec<&str> = entries
        .iter()
        .map(|e| e["folder"].as_str().unwrap())
        .collect();
    let unlisted: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("sstorebr0") && !listed.contains(&n.as_str()))
        .collect();
    let out = sb.run(&["history", "--directory", &dir]);
    for folder in &unlisted {
        assert!(
            text(&out).contains(&format!("{folder} is not in the history")),
            "{}",
            text(&out)
        );
    }
    // No folder number was reused by two backups.
    let folders: Vec<&str> = entries
        .iter()
        .filter(|e| e["kind"] == "backup")
        .map(|e| e["folder"].as_str().unwrap())
        .collect();
    let unique: std::collections::BTreeSet<&str> = folders.iter().copied().collect();
    assert_eq!(
        folders.len(),
        unique.len(),
        "a folder number was reused: {folders:?}"
    );
}

/// The folder number the next backup will use (one past the highest present).
fn next_folder(root: &Path) -> u32 {
    std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix("sstorebr")
                .and_then(|n| n.parse::<u32>().ok())
        })
        .max()
        .map_or(0, |n| n + 1)
}

#[test]
fn a_backup_that_runs_out_of_space_fails_cleanly() {
    let sb = Sandbox::new();
    big_store(&sb.store(), 10, 20, 4_000);
    let root = sb.backups();
    let dir = root.to_str().unwrap().to_owned();
    sb.ok(&["backup", "--directory", &dir]);
    let before = history(&sb, &dir);
    let live = std::fs::read(sb.store()).unwrap();

    // The file size limit makes every write past 256 KiB fail with EFBIG, as a full disk
    // fails writes (here while the staged backup is written); SIGXFSZ is ignored so the process
    // sees the error instead of dying. The message must name the file and say what to check.
    let mut cmd = sb.cmd();
    cmd.args(["backup", "--directory", &dir]);
    let program = cmd.get_program().to_owned();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 256; exec \"$0\" \"$@\"")
        .arg(program)
        .args(cmd.get_args())
        .envs(cmd.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .env_remove("SSTORE_BACKUP_PASSPHRASE")
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", text(&out));
    let message = text(&out);
    assert!(
        message.contains(".sstore-staging") && message.contains("free space"),
        "{message}"
    );

    // The failure is listed with its message; the earlier backup and the store are untouched.
    let after = history(&sb, &dir);
    assert_eq!(after.len(), before.len() + 1);
    let failed = after.last().unwrap();
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["failure_message"]
            .as_str()
            .unwrap()
            .contains("sstorebackup.bak")
    );
    assert_eq!(std::fs::read(sb.store()).unwrap(), live);
    let first = before[0]["id"].as_str().unwrap();
    let out = sb.run(&["verify", "--directory", &dir, "--backup-id", first]);
    assert!(out.status.success(), "{}", text(&out));
    // Nothing was left behind in staging, and the next backup (with room) succeeds.
    assert_eq!(staging_entries(&root), ["sstore.lock"]);
    sb.ok(&["backup", "--directory", &dir]);
}
