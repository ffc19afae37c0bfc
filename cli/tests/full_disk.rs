//! Real full disks: a size-limited tmpfs of its own (8 MiB) as the staging folder, as a local
//! target and as the restore destination, filled until the write in progress runs out of
//! room part-way. Each time: the error names the file and says to free space; nothing already
//! on the disk is damaged (an earlier backup still verifies, a filler file is intact, the live
//! store is unchanged); the history stays readable; and once space is freed, the next run
//! succeeds.
//!
//! Mounting needs root: the tests skip with a note otherwise, and fail under
//! `SSTORE_REQUIRE_SERVICES=1` (as `cargo xtask ci` runs them, as root).

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{PASS, Sandbox, big_store, code, files_under, text};
use sstore_core::Passphrase;
use sstore_core::store::SecureStore;

const MIB: u64 = 1024 * 1024;

/// A tmpfs of `size` MiB mounted on a folder of its own; unmounted when dropped.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    /// Mounts one at `dir`, or returns `None` (with a note) when this process is not root.
    fn mount(dir: &Path, size_mib: u64) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        if !root {
            assert!(
                std::env::var("SSTORE_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "mounting a small disk needs root, and SSTORE_REQUIRE_SERVICES=1 requires it"
            );
            eprintln!("skipped: mounting a small tmpfs needs root");
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size_mib}m,mode=0700"))
            .arg("tmpfs")
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount: {}", text(&out));
        Some(Self {
            dir: dir.to_owned(),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn available(&self) -> u64 {
        let out = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(&self.dir)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap()
    }

    /// Writes a filler file so that about `free` bytes stay available; returns it with its
    /// content, to check later that nothing touched it.
    fn fill_leaving(&self, free: u64) -> Filler {
        let size = self.available().saturating_sub(free);
        let content: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let path = self.path("filler.bin");
        std::fs::write(&path, &content).unwrap();
        Filler { path, content }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// A file taking up most of a small disk.
struct Filler {
    path: PathBuf,
    content: Vec<u8>,
}

impl Filler {
    fn assert_intact(&self, when: &str) {
        let now = std::fs::read(&self.path).unwrap();
        assert!(now == self.content, "{when}: the filler file changed");
    }

    /// Frees the space it took.
    fn remove(self) {
        std::fs::remove_file(&self.path).unwrap();
    }
}

/// The number of credential sets a store at `path` holds, opened with the test passphrase.
fn sets_in(path: &Path) -> usize {
    let store = SecureStore::open(path)
        .unwrap()
        .unlock(&Passphrase::new(PASS))
        .unwrap();
    let mut sets = 0;
    for app in store.apps().unwrap() {
        sets += store.principals(&app.name).unwrap().len();
    }
    sets
}

fn history(sb: &Sandbox, place: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["history", "--json"];
    args.extend_from_slice(place);
    let out = sb.run(&args);
    assert_eq!(code(&out), 0, "the history is unreadable: {}", text(&out));
    let h: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    h["entries"].as_array().unwrap().clone()
}

fn succeeded(entries: &[serde_json::Value]) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e["kind"] == "backup" && e["status"] == "succeeded")
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The failure names a file on the small disk and says to free space there.
fn assert_full_disk_message(out: &Output, disk: &SmallDisk, what: &str) {
    let message = text(out);
    assert!(
        message.contains(disk.dir.to_str().unwrap()),
        "{what}: the message does not name the file: {message}"
    );
    assert!(
        message.contains("free space"),
        "{what}: the message does not say to free space: {message}"
    );
}

/// Files on the disk besides the filler (work files a failed write left behind).
fn leftovers(disk: &SmallDisk, keep: &[&Path]) -> Vec<PathBuf> {
    files_under(&disk.dir)
        .into_iter()
        .filter(|p| !p.ends_with("filler.bin") && !p.ends_with("sstore.lock"))
        .filter(|p| !keep.iter().any(|k| p.starts_with(k)))
        .collect()
}

#[test]
fn the_staging_folder_fills_up_mid_write() {
    let sb = Sandbox::new();
    big_store(&sb.store(), 3 * 2, 8, 64_000); // about 3 MiB, incompressible
    let Some(disk) = SmallDisk::mount(&sb.path("small"), 8) else {
        return;
    };
    let dir = sb.backups();
    let dir = dir.to_str().unwrap();
    let staging = disk.path("staging");
    let staging = staging.to_str().unwrap();
    let backup = [
        "backup",
        "--directory",
        dir,
        "--staging",
        staging,
        "--force",
    ];
    sb.ok(&backup);
    let first = succeeded(&history(&sb, &["--directory", dir]));
    assert_eq!(first.len(), 1);

    // Room for a third of the 3 MiB encrypted copy (`--force` passes the free-space check
    // that would have refused the run before writing).
    let filler = disk.fill_leaving(MIB);
    let out = sb.run(&backup);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert_full_disk_message(&out, &disk, "staging");
    filler.assert_intact("after the failed backup");
    let entries = history(&sb, &["--directory", dir]);
    assert_eq!(succeeded(&entries), first, "a failed backup is listed");
    sb.ok(&["verify", "--all", "--directory", dir]);
    assert_eq!(
        leftovers(&disk, &[]),
        Vec::<PathBuf>::new(),
        "work files left on the full disk"
    );

    filler.remove();
    sb.ok(&backup);
    let entries = history(&sb, &["--directory", dir]);
    assert_eq!(succeeded(&entries).len(), 2);
    sb.ok(&["verify", "--all", "--directory", dir]);
    assert_eq!(leftovers(&disk, &[]), Vec::<PathBuf>::new());
}

#[test]
fn a_local_target_fills_up_mid_write() {
    let sb = Sandbox::new();
    big_store(&sb.store(), 2 * 2, 8, 64_000); // about 2 MiB, incompressible
    let Some(disk) = SmallDisk::mount(&sb.path("small"), 8) else {
        return;
    };
    let full = disk.path("backups");
    let dir = sb.path("config/sstore");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "[transfer]\nretry_delay_ms = 20\nmax_retry_delay_ms = 100\nattempts = 3\n\n\
             [[target]]\nname = \"full\"\nkind = \"local\"\npath = {:?}\n",
            full.to_str().unwrap()
        ),
    )
    .unwrap();
    let local = sb.backups();
    let local = local.to_str().unwrap();
    let backup = ["backup", "--directory", local, "--target", "full"];
    sb.ok(&backup);
    let first = succeeded(&history(&sb, &["--target", "full"]));
    assert_eq!(first.len(), 1);

    // The local directory takes the backup; the target runs out of room part-way through
    // the copy: a partial success (exit 7) naming the file there.
    let filler = disk.fill_leaving(MIB);
    let out = sb.run(&backup);
    assert_eq!(code(&out), 7, "{}", text(&out));
    assert_full_disk_message(&out, &disk, "local target");
    filler.assert_intact("after the failed copy");
    assert_eq!(succeeded(&history(&sb, &["--target", "full"])), first);
    // Verifying decrypts into the directory's work folder, here on the full disk: refused
    // with the same clear message; with its work files elsewhere, the earlier backup verifies.
    let out = sb.run(&["verify", "--all", "--target", "full"]);
    assert_ne!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("free space"), "{}", text(&out));
    let scratch = sb.path("scratch");
    let scratch = scratch.to_str().unwrap();
    sb.ok(&["verify", "--all", "--target", "full", "--staging", scratch]);
    // No partial backup file on the full disk: only the first backup's files.
    let first_folder = full.join("sstorebr0000");
    let left: Vec<PathBuf> = leftovers(&disk, &[&first_folder])
        .into_iter()
        .filter(|p| !p.ends_with("sstorebrtoc.json"))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(".bak"))
        })
        .collect();
    assert_eq!(left, Vec::<PathBuf>::new(), "a partial backup file is left");

    // Space freed: the next run resumes the copy there, then takes its own backup.
    filler.remove();
    let out = sb.run(&backup);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("Interrupted backup"), "{}", text(&out));
    assert_eq!(succeeded(&history(&sb, &["--target", "full"])).len(), 3);
    sb.ok(&["verify", "--all", "--target", "full"]);
    let staged: Vec<PathBuf> = files_under(&sb.backups().join(".sstore-staging"))
        .into_iter()
        .filter(|p| !p.ends_with("sstore.lock"))
        .collect();
    assert_eq!(staged, Vec::<PathBuf>::new(), "left in staging");
}

#[test]
fn the_restore_destination_fills_up_mid_write() {
    let sb = Sandbox::new();
    big_store(&sb.store(), 3 * 2, 8, 64_000); // about 3 MiB, incompressible
    let Some(disk) = SmallDisk::mount(&sb.path("small"), 8) else {
        return;
    };
    let dir = sb.backups();
    let dir = dir.to_str().unwrap();
    sb.ok(&["backup", "--directory", dir]);
    let sets = sets_in(&sb.store());

    // A new store on the full disk: no file appears there, no temporary file is left.
    let restored = disk.path("restored.db");
    let restore_new = [
        "restore",
        "--directory",
        dir,
        "--method",
        "new",
        "--new-store",
        restored.to_str().unwrap(),
    ];
    let filler = disk.fill_leaving(MIB);
    let out = sb.run(&restore_new);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert_full_disk_message(&out, &disk, "restore --method new");
    filler.assert_intact("after the failed restore");
    assert!(!restored.exists(), "a partial restored store is left");
    assert_eq!(leftovers(&disk, &[]), Vec::<PathBuf>::new());
    history(&sb, &["--directory", dir]);

    // The live store itself on the full disk, replaced in place: it stays byte for byte.
    let live = disk.path("live.db");
    filler.remove();
    std::fs::copy(sb.store(), &live).unwrap();
    let live_bytes = std::fs::read(&live).unwrap();
    let filler = disk.fill_leaving(MIB);
    let restore_over = |sb: &Sandbox| {
        sb.cmd()
            .env("SSTORE_STORE", &live)
            .args([
                "restore",
                "--directory",
                dir,
                "--method",
                "overwrite",
                "--force",
            ])
            .output()
            .unwrap()
    };
    let out = restore_over(&sb);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert_full_disk_message(&out, &disk, "restore --method overwrite");
    filler.assert_intact("after the failed overwrite");
    assert!(
        std::fs::read(&live).unwrap() == live_bytes,
        "the live store changed"
    );
    assert_eq!(leftovers(&disk, &[&live]), Vec::<PathBuf>::new());
    history(&sb, &["--directory", dir]);

    // Space freed: both restores succeed and open.
    filler.remove();
    let out = restore_over(&sb);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(sets_in(&live), sets);
    std::fs::remove_file(&live).unwrap();
    sb.ok(&restore_new);
    assert_eq!(sets_in(&restored), sets);
}
