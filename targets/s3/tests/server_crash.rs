//! A real S3 server (s3s-fs) killed in the middle of an upload. A test binary of its own, so
//! no other test uses the server while it is down (cargo runs test binaries one at a time).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{KEYS, target};
use sstore_conformance::scenarios::{MidUploadCrash, server_killed_mid_upload};
use sstore_conformance::services::{self, Daemon};
use sstore_conformance::unique;

/// The S3 server dies in the middle of a multipart upload: a temporary error, nothing
/// visible; after a restart the same upload, tried again, completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_upload_gives_a_temporary_error_and_the_retry_completes() {
    let Some(s) = services::require(KEYS) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let target = target(&s, &dir, &unique("crash"));
    let daemon = Daemon::from_pid_file(s.get("SSTORE_TEST_S3_PID_FILE")).unwrap();
    let port: u16 = s
        .get("SSTORE_TEST_S3_ENDPOINT")
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap();
    // Parts are in flight while the body is paused at 20 MiB of 48: the kill comes 200 ms
    // later.
    let crash = MidUploadCrash {
        seed: 4,
        before_kill: Duration::from_millis(200),
        ..MidUploadCrash::new("crash.bak", 48 * 1024 * 1024, 20 * 1024 * 1024)
    };
    server_killed_mid_upload(target.as_ref(), &daemon, port, &crash).await;
}
