//! The staging and transfer pipeline through the real binary: back up locally, then send to
//! local-folder targets, to the example plugin, and to the fault-injecting test plugin
//! (`faultyfolder`, failing or stalling by the conformance kit's fault rules);
//! partial results, retries, a killed transfer resumed, two jobs on one directory, JSON events,
//! job history, restore and verify from a target, and prune.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Sandbox, code, text};
use sstore_tests::{build_plugins, install_plugin};

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Writes the sandbox's config: the plugins folder (the example plugin and the fault plugin),
/// fast retries, and `targets` (TOML).
fn configure(sandbox: &Sandbox, targets: &str) {
    let plugins = sandbox.path("plugins");
    install_plugin(&build_plugins().sumfolder, &plugins);
    install_plugin(&build_plugins().faulty, &plugins);
    let dir = sandbox.path("config/sstore");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "plugins = {:?}\n[transfer]\nretry_delay_ms = 20\nmax_retry_delay_ms = 100\nattempts = 4\n\n{targets}",
            arg(&plugins)
        ),
    )
    .unwrap();
}

fn local_target(name: &str, path: &Path) -> String {
    format!(
        "[[target]]\nname = \"{name}\"\nkind = \"local\"\npath = {:?}\n\n",
        arg(path)
    )
}

fn plugin_target(name: &str, path: &Path) -> String {
    format!(
        "[[target]]\nname = \"{name}\"\nkind = \"sumfolder\"\npath = {:?}\n\n",
        arg(path)
    )
}

/// A target of the fault plugin at `path`, with `faults` (the kit's rules, as a TOML array).
fn faulty_target(name: &str, path: &Path, faults: &str) -> String {
    format!(
        "[[target]]\nname = \"{name}\"\nkind = \"faultyfolder\"\npath = {:?}\nfaults = [{faults}]\n\n",
        arg(path)
    )
}

/// The first two uploads of a backup file fail with a temporary error.
const FAIL_TWO_BACKUP_PUTS: &str =
    "{ operation = \"put\", key_suffix = \".bak\", times = 2, fault = \"temporary\" }";
/// Every upload of a backup file is refused as permission denied (permanent).
const REFUSE_BACKUP_PUTS: &str =
    "{ operation = \"put\", key_suffix = \".bak\", fault = \"permanent\" }";
/// Every chunk of a backup file waits a minute (a stalled server).
const STALL_BACKUP_PUTS: &str =
    "{ operation = \"put\", key_suffix = \".bak\", fault = \"slow-body\", ms = 60000 }";

fn history_json(sandbox: &Sandbox, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["history", "--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&sandbox.ok(&all)).unwrap()
}

fn successful_ids(history: &serde_json::Value) -> Vec<String> {
    history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "backup" && e["status"] == "succeeded")
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

fn restore_from(sandbox: &Sandbox, target: &str, into: &str) {
    let restored = sandbox.path(into);
    sandbox.ok(&[
        "restore",
        "--target",
        target,
        "--method",
        "new",
        "--new-store",
        arg(&restored),
    ]);
    let out = sandbox
        .cmd()
        .env("SSTORE_STORE", &restored)
        .args(["cred", "get", "payroll", "--principal", "CONTOSO\\Payroll"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn stage_locally_then_send_to_two_targets_and_restore_from_each() {
    let sandbox = Sandbox::new();
    sandbox.sample_store();
    let (nas, offsite) = (sandbox.path("nas"), sandbox.path("offsite"));
    configure(
        &sandbox,
        &(local_target("nas", &nas) + &plugin_target("offsite", &offsite)),
    );
    let local = sandbox.backups();
    let out = sandbox.run(&[
        "backup",
        "--directory",
        arg(&local),
        "--target",
        "nas",
        "--target",
        "offsite",
        "--json",
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    // One JSON event per line, ending with the summary.
    let events: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.first().unwrap()["event"], "started");
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["status"], "succeeded");
    assert_eq!(summary["succeeded"].as_array().unwrap().len(), 3);
    assert!(events.iter().any(|e| e["event"] == "progress"));
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event"] == "target-done")
            .count(),
        3
    );

    // Every destination is a self-describing backup directory listing the same backup.
    let id = summary["job_id"].as_str().unwrap().to_owned();
    for (args, name) in [
        (vec!["--directory", arg(&local)], "local"),
        (vec!["--target", "nas"], "nas"),
        (vec!["--target", "offsite"], "offsite"),
    ] {
        let history = history_json(&sandbox, &args);
        assert_eq!(
            successful_ids(&history),
            std::slice::from_ref(&id),
            "{name}"
        );
        let copies = history["entries"][0]["copies"].as_array().unwrap();
        assert_eq!(copies.len(), 3, "{name}");
        assert!(copies.iter().all(|c| c["state"] == "succeeded"), "{name}");
    }
    assert!(nas.join("sstorebr0000/sstorebackup.log").is_file());
    assert!(!nas.join("sstore.lock").exists(), "the lock was released");
    // The staged copy is gone (the local directory holds the backup itself).
    let staged: Vec<_> = std::fs::read_dir(local.join(".sstore-staging"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(staged, ["sstore.lock"]);

    restore_from(&sandbox, "nas", "from-nas.db");
    restore_from(&sandbox, "offsite", "from-offsite.db");
    let verified = sandbox.ok(&["verify", "--target", "offsite", "--all"]);
    assert!(verified.contains(&id), "{verified}");

    let jobs = sandbox.ok(&["history", "--jobs"]);
    assert!(jobs.contains(&id) && jobs.contains("succeeded"), "{jobs}");
    assert!(jobs.contains("nas=succeeded") && jobs.contains("offsite=succeeded"));
}

#[test]
fn transient_failures_are_retried_and_a_permanent_one_gives_a_partial_result() {
    let sandbox = Sandbox::new();
    sandbox.sample_store();
    let (flaky, readonly) = (sandbox.path("flaky"), sandbox.path("readonly"));
    configure(
        &sandbox,
        &(faulty_target("flaky", &flaky, FAIL_TWO_BACKUP_PUTS)
            + &faulty_target("readonly", &readonly, REFUSE_BACKUP_PUTS)),
    );

    let local = sandbox.backups();
    let out = sandbox.run(&[
        "backup",
        "--directory",
        arg(&local),
        "--target",
        "flaky",
        "--target",
        "readonly",
    ]);
    assert_eq!(code(&out), 7, "partial success: {}", text(&out));
    let all = text(&out);
    assert!(all.contains("partially succeeded"), "{all}");
    assert!(
        all.contains("readonly") && all.contains("permission denied"),
        "{all}"
    );

    // The flaky target got the backup after two logged retries.
    let log = std::fs::read_to_string(flaky.join("objects/sstorebr0000/sstorebackup.log")).unwrap();
    assert!(
        log.contains("attempt 1 failed with a temporary error"),
        "{log}"
    );
    assert!(
        log.contains("attempt 2 failed with a temporary error"),
        "{log}"
    );
    assert!(log.contains("injected fault"), "{log}");
    assert!(!log.contains("attempt 3 failed"), "{log}");
    let flaky_history = history_json(&sandbox, &["--target", "flaky"]);
    assert_eq!(successful_ids(&flaky_history).len(), 1);
    // The permanent failure was not retried, and no backup is listed there.
    let log =
        std::fs::read_to_string(readonly.join("objects/sstorebr0000/sstorebackup.log")).unwrap();
    assert!(
        !log.lines()
            .any(|l| l.contains("upload to readonly") && l.contains("retrying")),
        "{log}"
    );
    let readonly_history = history_json(&sandbox, &["--target", "readonly"]);
    assert!(successful_ids(&readonly_history).is_empty());
    assert_eq!(readonly_history["entries"][0]["status"], "failed");

    // The job history says which target failed and why.
    let jobs: serde_json::Value =
        serde_json::from_str(&sandbox.ok(&["history", "--jobs", "--json"])).unwrap();
    let job = &jobs[0];
    assert_eq!(job["state"], "partially-succeeded");
    let copies = job["copies"].as_array().unwrap();
    let failed: Vec<_> = copies.iter().filter(|c| c["state"] == "failed").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["name"], "readonly");
    assert!(
        failed[0]["message"]
            .as_str()
            .unwrap()
            .contains("permission denied")
    );

    // The staged copy waits; once the target is writable, the next run resumes and sends it
    // there (and only there).
    configure(
        &sandbox,
        &(faulty_target("flaky", &flaky, "") + &faulty_target("readonly", &readonly, "")),
    );
    let out = sandbox.run(&[
        "backup",
        "--directory",
        arg(&local),
        "--target",
        "flaky",
        "--target",
        "readonly",
        "--resume",
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let first_id = job["id"].as_str().unwrap();
    let readonly_history = history_json(&sandbox, &["--target", "readonly"]);
    assert_eq!(successful_ids(&readonly_history), [first_id.to_owned()]);
    let log =
        std::fs::read_to_string(readonly.join("objects/sstorebr0000/sstorebackup.log")).unwrap();
    assert!(log.contains("resuming backup"), "{log}");
    sandbox.ok(&["verify", "--target", "readonly"]);
}

/// Waits until `ready` holds, failing after a minute.
fn wait_for(what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn staged_job_exists(staging: &Path) -> bool {
    std::fs::read_dir(staging)
        .map(|d| d.flatten().any(|e| e.path().join("job.json").is_file()))
        .unwrap_or(false)
}

#[test]
fn a_killed_transfer_resumes_and_a_second_job_is_refused_meanwhile() {
    let sandbox = Sandbox::new();
    sandbox.sample_store();
    let slow = sandbox.path("slow");
    configure(&sandbox, &faulty_target("slow", &slow, STALL_BACKUP_PUTS));
    let staging = sandbox.path("staging");
    let mut child = sandbox
        .cmd()
        .args(["backup", "--target", "slow", "--staging", arg(&staging)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let staging_folder: PathBuf = {
        wait_for("the staging folder", || {
            std::fs::read_dir(&staging)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false)
        });
        std::fs::read_dir(&staging)
            .unwrap()
            .flatten()
            .next()
            .unwrap()
            .path()
    };
    wait_for("the transfer", || staged_job_exists(&staging_folder));
    wait_for("the lock on the target", || {
        slow.join("objects/sstore.lock").is_file()
    });

    // A second job on the same directory is refused while the first runs.
    let out = sandbox.run(&["backup", "--target", "slow", "--staging", arg(&staging)]);
    assert_eq!(code(&out), 6, "{}", text(&out));
    assert!(text(&out).contains("another sstore job"), "{}", text(&out));
    let status = sandbox.ok(&["status"]);
    assert!(status.contains("Running: backup"), "{status}");

    child.kill().unwrap();
    child.wait().unwrap();
    // Nothing partial is visible on the target, and nothing is listed.
    let objects = sstore_tests_files(&slow.join("objects"));
    assert!(
        objects.iter().all(|p| !p.ends_with("sstorebackup.bak")),
        "{objects:?}"
    );
    assert!(!slow.join("objects/sstorebrtoc.json").exists());
    let jobs = sandbox.ok(&["history", "--jobs"]);
    assert!(jobs.contains("interrupted (transferring)"), "{jobs}");

    // The next run (the target healthy again) resumes and publishes a verified copy.
    configure(&sandbox, &faulty_target("slow", &slow, ""));
    let out = sandbox.run(&[
        "backup",
        "--target",
        "slow",
        "--staging",
        arg(&staging),
        "--resume",
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("Interrupted backup"), "{}", text(&out));
    let history = history_json(&sandbox, &["--target", "slow"]);
    assert_eq!(successful_ids(&history).len(), 1);
    sandbox.ok(&["verify", "--target", "slow"]);
    assert!(
        !staged_job_exists(&staging_folder),
        "the staged copy is cleaned up"
    );
    // Nothing left to resume.
    let out = sandbox.run(&[
        "backup",
        "--target",
        "slow",
        "--staging",
        arg(&staging),
        "--resume",
    ]);
    assert_eq!(code(&out), 1);
    assert!(text(&out).contains("nothing to resume"), "{}", text(&out));
}

fn sstore_tests_files(dir: &Path) -> Vec<PathBuf> {
    common::files_under(dir)
}

#[test]
fn prune_keeps_the_newest_and_records_what_it_removed() {
    let sandbox = Sandbox::new();
    sandbox.sample_store();
    configure(&sandbox, "");
    let local = sandbox.backups();
    let dir = arg(&local).to_owned();
    for _ in 0..4 {
        sandbox.ok(&["backup", "--directory", &dir]);
    }
    let before = successful_ids(&history_json(&sandbox, &["--directory", &dir]));
    assert_eq!(before.len(), 4);

    let dry = sandbox.ok(&[
        "prune",
        "--directory",
        &dir,
        "--keep-last",
        "2",
        "--dry-run",
    ]);
    assert!(
        dry.contains("Would remove") && dry.contains("sstorebr0000"),
        "{dry}"
    );
    assert!(
        local.join("sstorebr0000").is_dir(),
        "a dry run removes nothing"
    );

    let out = sandbox.ok(&["prune", "--directory", &dir, "--keep-last", "2"]);
    assert!(
        out.contains("sstorebr0000") && out.contains("sstorebr0001"),
        "{out}"
    );
    assert!(
        !local.join("sstorebr0000").exists()
            && !local.join("sstorebr0001/sstorebackup.bak").exists()
    );
    assert!(local.join("sstorebr0003/sstorebackup.bak").is_file());
    let history = history_json(&sandbox, &["--directory", &dir]);
    assert_eq!(successful_ids(&history), before[2..].to_vec());
    let entries = history["entries"].as_array().unwrap();
    assert_eq!(
        entries.iter().filter(|e| e["status"] == "pruned").count(),
        2
    );
    let prune = entries.iter().find(|e| e["kind"] == "prune").unwrap();
    assert_eq!(prune["removed"].as_array().unwrap().len(), 2);

    // keep-last 0 still keeps the newest successful backup, which restores.
    sandbox.ok(&["prune", "--directory", &dir, "--keep-last", "0"]);
    let history = history_json(&sandbox, &["--directory", &dir]);
    assert_eq!(successful_ids(&history), before[3..]);
    sandbox.ok(&["verify", "--directory", &dir]);
}

#[test]
fn readiness_checks_everything_and_writes_nothing() {
    let sandbox = Sandbox::new();
    sandbox.sample_store();
    let nas = sandbox.path("nas");
    configure(
        &sandbox,
        &(local_target("nas", &nas)
            + "[[target]]\nname = \"gone\"\nkind = \"sumfolder\"\npath = \"/proc/version/below\"\n"),
    );
    let local = sandbox.backups();
    let out = sandbox.ok(&[
        "backup",
        "--what-if",
        "--directory",
        arg(&local),
        "--target",
        "nas",
    ]);
    assert!(out.contains("Ready"), "{out}");
    assert!(out.contains("has no successful backup yet"), "{out}");
    assert!(!local.join("sstorebrtoc.json").exists());
    assert!(std::fs::read_dir(&nas).map(|d| d.count()).unwrap_or(0) == 0);

    let out = sandbox.run(&["readiness", "--directory", arg(&local), "--target", "gone"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(text(&out).contains("FAIL  target gone"), "{}", text(&out));

    // After a key change, readiness warns that a backup is needed.
    sandbox.ok(&["backup", "--directory", arg(&local)]);
    let out = sandbox
        .cmd()
        .env("SSTORE_NEW_PASSPHRASE", "Rotated-Pass-77")
        .args(["masterkey", "update"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = sandbox
        .cmd()
        .env("SSTORE_PASSPHRASE", "Rotated-Pass-77")
        .args(["readiness", "--directory", arg(&local)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("the Master Key changed"),
        "{}",
        text(&out)
    );
}
