//! The WebDAV server (rclone) killed in the middle of an upload: a temporary error, nothing
//! visible, and after a restart the retried upload completes. A test binary of its own, so no
//! other test uses the server while it is down. (SFTP is not crashed here: sshd serves each
//! connection from a process of its own, which outlives the killed listener.)

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use sstore_conformance::data::{Digest, GatedReader, PatternReader, read_digest};
use sstore_conformance::services::{self, Daemon};
use sstore_target_api::{ObjectKey, OpenRequest, PutOptions, Target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webdav_server_killed_mid_upload_gives_a_temporary_error_and_the_retry_completes() {
    let Some(s) = services::require(&[
        "SSTORE_TEST_WEBDAV_ENDPOINT",
        "SSTORE_TEST_WEBDAV_USER",
        "SSTORE_TEST_WEBDAV_PASSWORD",
        "SSTORE_TEST_WEBDAV_PID_FILE",
    ]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, s.get("SSTORE_TEST_WEBDAV_PASSWORD")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let endpoint = s.get("SSTORE_TEST_WEBDAV_ENDPOINT");
    let request = OpenRequest {
        name: "dav-crash".into(),
        url: None,
        config: toml::from_str(&format!(
            "service = 'webdav'\nendpoint = '{endpoint}'\nusername = '{}'\n\
             password_file = '{}'\nroot = '/crash-{}'\ntimeout_secs = 20\nretries = 1\n",
            s.get("SSTORE_TEST_WEBDAV_USER"),
            password.display(),
            std::process::id()
        ))
        .unwrap(),
    };
    let target: Arc<dyn Target> =
        Arc::new(sstore_target_opendal::settings::open(&request).unwrap());
    let port: u16 = endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let daemon = Daemon::from_pid_file(s.get("SSTORE_TEST_WEBDAV_PID_FILE")).unwrap();
    let key = ObjectKey::new("sstorebr0001/sstorebackup.bak").unwrap();
    let size: u64 = 24 * 1024 * 1024;

    let (mut body, gate) = GatedReader::new(7, size, 16 * 1024 * 1024);
    let upload = {
        let (target, key) = (target.clone(), key.clone());
        tokio::spawn(async move {
            target
                .put(&key, &mut body, PutOptions::create().with_length(size))
                .await
        })
    };
    gate.reached.await.unwrap();
    daemon.kill().unwrap();
    let _ = gate.release.send(());
    let result = upload.await.unwrap();
    daemon.start().unwrap();
    let err = result.unwrap_err();
    assert!(err.is_temporary(), "{err}");
    assert!(services::wait_for_port(port, Duration::from_secs(20)));

    assert!(target.stat(&key).await.unwrap_err().is_not_found());
    assert!(target.list("").await.unwrap().is_empty());
    target
        .put(
            &key,
            &mut PatternReader::new(7, size),
            PutOptions::create().with_length(size),
        )
        .await
        .unwrap();
    let mut reader = target.get(&key).await.unwrap();
    assert_eq!(
        read_digest(&mut reader, size + 1).await.unwrap(),
        Digest::of_pattern(7, size)
    );
    target.delete(&key).await.unwrap();
}
