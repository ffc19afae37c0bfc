//! The WebDAV server (rclone) killed in the middle of an upload: a temporary error, nothing
//! visible, and after a restart the retried upload completes. A test binary of its own, so no
//! other test uses the server while it is down. (SFTP is not crashed here: sshd serves each
//! connection from a process of its own, which outlives the killed listener.)

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use sstore_conformance::scenarios::{MidUploadCrash, server_killed_mid_upload};
use sstore_conformance::services::{self, Daemon};
use sstore_conformance::unique;
use sstore_target_api::{OpenRequest, Target};

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
             password_file = '{}'\nroot = '/{}'\ntimeout_secs = 20\nretries = 1\n",
            s.get("SSTORE_TEST_WEBDAV_USER"),
            password.display(),
            unique("crash")
        ))
        .unwrap(),
    };
    let target: Arc<dyn Target> =
        Arc::new(sstore_target_opendal::settings::open(&request).unwrap());
    let port: u16 = endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let daemon = Daemon::from_pid_file(s.get("SSTORE_TEST_WEBDAV_PID_FILE")).unwrap();
    let crash = MidUploadCrash::new(
        "sstorebr0001/sstorebackup.bak",
        24 * 1024 * 1024,
        16 * 1024 * 1024,
    );
    server_killed_mid_upload(target.as_ref(), &daemon, port, &crash).await;
}
