//! The kit's shared scenarios against the local target (which passes them), and the crash
//! scenario's promise that a failing run never leaves the server down.

#![allow(clippy::unwrap_used)]

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::sync::Arc;

use sstore_conformance::scenarios::{
    MidUploadCrash, conditional_create_refuses_an_existing_key,
    failed_upload_leaves_nothing_visible, server_killed_mid_upload,
};
use sstore_conformance::services::Daemon;
use sstore_target_api::Target;
use sstore_target_local::LocalTarget;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_target_passes_the_create_and_failed_upload_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    let target = LocalTarget::new(dir.path());
    conditional_create_refuses_an_existing_key(&target, 5 * 1024 * 1024 + 3).await;
    failed_upload_leaves_nothing_visible(&target, 4 * 1024 * 1024, 1024 * 1024).await;
    assert!(target.list("").await.unwrap().is_empty());
}

/// A stand-in server: `sleep` in a process group of its own, its pid in `pid_file`.
fn start_stand_in(pid_file: &Path) -> (Daemon, std::process::Child) {
    let child = std::process::Command::new("sleep")
        .arg("600")
        .process_group(0)
        .spawn()
        .unwrap();
    std::fs::write(pid_file, format!("{}\n", child.id())).unwrap();
    assert!(started(child.id()), "sleep did not start");
    (Daemon::from_pid_file(pid_file).unwrap(), child)
}

fn pid(pid_file: &Path) -> u32 {
    std::fs::read_to_string(pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn alive(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
}

/// Waits until `pid` is alive: its command line shows in /proc only once its exec is
/// complete, which may be a moment after `spawn` returned.
fn started(pid: u32) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !alive(pid) {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    true
}

/// Killing the stand-in does not stop a local upload, so the scenario fails ("the upload
/// succeeded although the server was killed"); the server it killed is running again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_crash_scenario_restarts_the_server_it_killed() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("server.pid");
    let (daemon, mut child) = start_stand_in(&pid_file);
    let first = pid(&pid_file);
    assert!(alive(first));

    let target: Arc<dyn Target> = Arc::new(LocalTarget::new(dir.path().join("root")));
    let scenario = {
        let daemon = daemon.clone();
        tokio::spawn(async move {
            let crash = MidUploadCrash::new("crash.bak", 3 * 1024 * 1024, 1024 * 1024);
            server_killed_mid_upload(target.as_ref(), &daemon, 9, &crash).await;
        })
    };
    let failure = scenario.await.unwrap_err();
    assert!(failure.is_panic());
    let message = failure.into_panic();
    let message = message.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("the upload succeeded although the server was killed"),
        "{message}"
    );

    let second = pid(&pid_file);
    assert_ne!(first, second, "the server was started again");
    assert!(!alive(first), "the first server was killed");
    child.wait().unwrap();
    assert!(started(second), "the restarted server runs");
    daemon.kill().unwrap();
    assert!(!alive(second));
}
