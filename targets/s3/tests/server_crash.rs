//! A real S3 server (s3s-fs) killed in the middle of an upload. A test binary of its own, so
//! no other test uses the server while it is down (cargo runs test binaries one at a time).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{KEYS, target, unique};
use sstore_conformance::data::{Digest, GatedReader, PatternReader, read_digest};
use sstore_conformance::services::{self, Daemon};
use sstore_target_api::{ObjectKey, PutOptions};

/// The S3 server dies in the middle of a multipart upload: a temporary error, nothing
/// visible; after a restart the same upload, tried again, completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_upload_gives_a_temporary_error_and_the_retry_completes() {
    let Some(s) = services::require(KEYS) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let target = target(&s, &dir, &unique("crash"));
    let key = ObjectKey::new("crash.bak").unwrap();
    let size: u64 = 48 * 1024 * 1024;
    let daemon = Daemon::from_pid_file(s.get("SSTORE_TEST_S3_PID_FILE")).unwrap();
    let port: u16 = s
        .get("SSTORE_TEST_S3_ENDPOINT")
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap();

    let (mut body, gate) = GatedReader::new(4, size, 20 * 1024 * 1024);
    let upload = {
        let target = target.clone();
        let key = key.clone();
        tokio::spawn(async move {
            target
                .put(&key, &mut body, PutOptions::create().with_length(size))
                .await
        })
    };
    // Parts are in flight and the body is paused at 20 MiB: kill the server, then let the
    // body go on.
    gate.reached.await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    daemon.kill().unwrap();
    let _ = gate.release.send(());
    let result = upload.await.unwrap();
    let restarted = daemon.start();
    let err = result.unwrap_err();
    restarted.unwrap();
    assert!(err.is_temporary(), "{err}");
    assert!(services::wait_for_port(port, Duration::from_secs(20)));

    assert!(target.stat(&key).await.unwrap_err().is_not_found());
    assert!(target.list("").await.unwrap().is_empty());
    let mut body = PatternReader::new(4, size);
    target
        .put(&key, &mut body, PutOptions::create().with_length(size))
        .await
        .unwrap();
    let mut reader = target.get(&key).await.unwrap();
    let digest = read_digest(&mut reader, size + 1).await.unwrap();
    assert_eq!(digest, Digest::of_pattern(4, size));
    target.delete(&key).await.unwrap();
}
