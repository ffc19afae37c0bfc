//! The opendal target against real servers started by `cargo xtask services up`: OpenSSH's
//! SFTP server and rclone's WebDAV server, on loopback (skipped with a note when they are not
//! up, failed under `cargo xtask ci`).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use sstore_conformance::scenarios::{
    conditional_create_refuses_an_existing_key, failed_upload_leaves_nothing_visible,
};
use sstore_conformance::services::{self, Services};
use sstore_conformance::{KitOptions, assert_conforms, unique};
use sstore_target_api::{OpenRequest, Target, TargetErrorKind};

const SFTP: &[&str] = &[
    "SSTORE_TEST_SFTP_ENDPOINT",
    "SSTORE_TEST_SFTP_USER",
    "SSTORE_TEST_SFTP_KEY",
    "SSTORE_TEST_SFTP_ROOT",
];
const WEBDAV: &[&str] = &[
    "SSTORE_TEST_WEBDAV_ENDPOINT",
    "SSTORE_TEST_WEBDAV_USER",
    "SSTORE_TEST_WEBDAV_PASSWORD",
];

fn open(config: &str) -> Arc<dyn Target> {
    let request = OpenRequest {
        name: "opendal-test".into(),
        url: None,
        config: toml::from_str(config).unwrap(),
    };
    Arc::new(sstore_target_opendal::settings::open(&request).unwrap())
}

fn sftp(s: &Services, endpoint: &str, key: &str, root: &str) -> Arc<dyn Target> {
    open(&format!(
        "service = 'sftp'\nendpoint = '{endpoint}'\nuser = '{}'\nkey = '{key}'\n\
         root = '{root}'\nknown_hosts_strategy = 'accept'\ntimeout_secs = 20\n",
        s.get("SSTORE_TEST_SFTP_USER"),
    ))
}

fn password_file(dir: &tempfile::TempDir, password: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.path().join("password");
    std::fs::write(&path, password).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.display().to_string()
}

fn webdav(
    s: &Services,
    dir: &tempfile::TempDir,
    endpoint: &str,
    password: &str,
    root: &str,
) -> Arc<dyn Target> {
    open(&format!(
        "service = 'webdav'\nendpoint = '{endpoint}'\nusername = '{}'\n\
         password_file = '{}'\nroot = '/{root}'\ntimeout_secs = 20\n",
        s.get("SSTORE_TEST_WEBDAV_USER"),
        password_file(dir, password),
    ))
}

fn kit_options(unreachable: Arc<dyn Target>) -> KitOptions {
    KitOptions {
        large_object_bytes: 40 * 1024 * 1024 + 12_345,
        unreachable: Some(unreachable),
        ..KitOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_passes_the_conformance_kit() {
    let Some(s) = services::require(SFTP) else {
        return;
    };
    let root = format!("{}/{}", s.get("SSTORE_TEST_SFTP_ROOT"), unique("kit"));
    let key = s.get("SSTORE_TEST_SFTP_KEY");
    let target = sftp(&s, s.get("SSTORE_TEST_SFTP_ENDPOINT"), key, &root);
    let unreachable = sftp(&s, "ssh://127.0.0.1:9", key, &root);
    assert_conforms(target, &kit_options(unreachable)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_passes_the_conformance_kit() {
    let Some(s) = services::require(WEBDAV) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let password = s.get("SSTORE_TEST_WEBDAV_PASSWORD");
    let root = unique("kit");
    let target = webdav(
        &s,
        &dir,
        s.get("SSTORE_TEST_WEBDAV_ENDPOINT"),
        password,
        &root,
    );
    let unreachable = webdav(&s, &dir, "http://127.0.0.1:9", password, &root);
    assert_conforms(target, &kit_options(unreachable)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_webdav_password_is_a_fast_permanent_error() {
    let Some(s) = services::require(WEBDAV) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let target = webdav(
        &s,
        &dir,
        s.get("SSTORE_TEST_WEBDAV_ENDPOINT"),
        "wrong-password",
        "w",
    );
    let started = Instant::now();
    let err = target.readiness().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(!err.is_temporary(), "{err}");
    assert_eq!(err.kind, TargetErrorKind::PermissionDenied, "{err}");
    assert!(!err.to_string().contains("wrong-password"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_sftp_key_is_a_fast_permanent_error() {
    let Some(s) = services::require(SFTP) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let stranger = dir.path().join("stranger");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    assert!(made.success());
    let target = sftp(
        &s,
        s.get("SSTORE_TEST_SFTP_ENDPOINT"),
        &stranger.display().to_string(),
        s.get("SSTORE_TEST_SFTP_ROOT"),
    );
    let started = Instant::now();
    let err = target.readiness().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(!err.is_temporary(), "{err}");
}

/// The kit's scenarios for conditional create (small and large) and a failed large upload,
/// on both servers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_create_and_a_failed_upload_on_sftp_and_webdav() {
    let (Some(s), Some(_)) = (services::require(SFTP), services::require(WEBDAV)) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let targets = [
        (
            "sftp",
            sftp(
                &s,
                s.get("SSTORE_TEST_SFTP_ENDPOINT"),
                s.get("SSTORE_TEST_SFTP_KEY"),
                &format!("{}/{}", s.get("SSTORE_TEST_SFTP_ROOT"), unique("scenarios")),
            ),
        ),
        (
            "webdav",
            webdav(
                &s,
                &dir,
                s.get("SSTORE_TEST_WEBDAV_ENDPOINT"),
                s.get("SSTORE_TEST_WEBDAV_PASSWORD"),
                &unique("scenarios"),
            ),
        ),
    ];
    for (name, target) in targets {
        println!("{name}");
        conditional_create_refuses_an_existing_key(target.as_ref(), 12 * 1024 * 1024).await;
        failed_upload_leaves_nothing_visible(target.as_ref(), 30 * 1024 * 1024, 20 * 1024 * 1024)
            .await;
    }
}
