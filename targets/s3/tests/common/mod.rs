//! Helpers of the s3 target's tests: where the test server is, and targets on it.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use sstore_conformance::services::Services;
use sstore_target_api::{OpenRequest, Target};

pub const KEYS: &[&str] = &[
    "SSTORE_TEST_S3_ENDPOINT",
    "SSTORE_TEST_S3_BUCKET",
    "SSTORE_TEST_S3_ACCESS_KEY",
    "SSTORE_TEST_S3_SECRET_KEY",
    "SSTORE_TEST_S3_PID_FILE",
];

/// An owner-only file holding `secret` (settings never hold secrets inline).
pub fn secret_file(dir: &tempfile::TempDir, name: &str, secret: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.path().join(name);
    std::fs::write(&path, secret).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.display().to_string()
}

pub fn open(
    s: &Services,
    dir: &tempfile::TempDir,
    bucket: &str,
    prefix: &str,
    secret: &str,
) -> Arc<dyn Target> {
    let config = format!(
        "bucket = '{bucket}'\nprefix = '{prefix}'\nendpoint = '{}'\nallow_http = true\n\
         access_key_id = '{}'\nsecret_access_key_file = '{}'\n\
         conditional_create = false\n",
        s.get("SSTORE_TEST_S3_ENDPOINT"),
        s.get("SSTORE_TEST_S3_ACCESS_KEY"),
        secret_file(dir, &format!("secret-{}", secret.len()), secret),
    );
    let request = OpenRequest {
        name: "s3-test".into(),
        url: None,
        config: toml::from_str(&config).unwrap(),
    };
    Arc::new(sstore_target_s3::settings::open(&request).unwrap())
}

pub fn target(s: &Services, dir: &tempfile::TempDir, prefix: &str) -> Arc<dyn Target> {
    open(
        s,
        dir,
        s.get("SSTORE_TEST_S3_BUCKET"),
        prefix,
        s.get("SSTORE_TEST_S3_SECRET_KEY"),
    )
}
