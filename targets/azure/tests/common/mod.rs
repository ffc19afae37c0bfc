//! Helpers of the azure target's tests: where the test server is, and targets on it.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use sstore_conformance::services::Services;
use sstore_target_api::{OpenRequest, Target};

pub const KEYS: &[&str] = &[
    "SSTORE_TEST_AZURE_ENDPOINT",
    "SSTORE_TEST_AZURE_ACCOUNT",
    "SSTORE_TEST_AZURE_KEY",
    "SSTORE_TEST_AZURE_CONTAINER",
    "SSTORE_TEST_AZURE_PID_FILE",
];

pub fn secret_file(dir: &tempfile::TempDir, name: &str, secret: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.path().join(name);
    std::fs::write(&path, secret).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.display().to_string()
}

pub fn open_with(
    endpoint: &str,
    account: &str,
    key_file: &str,
    container: &str,
    prefix: &str,
) -> Arc<dyn Target> {
    let config = format!(
        "container = '{container}'\nprefix = '{prefix}'\nendpoint = '{endpoint}'\n\
         allow_http = true\naccount = '{account}'\naccount_key_file = '{key_file}'\n"
    );
    let request = OpenRequest {
        name: "azure-test".into(),
        url: None,
        config: toml::from_str(&config).unwrap(),
    };
    Arc::new(sstore_target_azure::settings::open(&request).unwrap())
}

pub fn open(
    s: &Services,
    dir: &tempfile::TempDir,
    container: &str,
    prefix: &str,
    key: &str,
) -> Arc<dyn Target> {
    open_with(
        s.get("SSTORE_TEST_AZURE_ENDPOINT"),
        s.get("SSTORE_TEST_AZURE_ACCOUNT"),
        &secret_file(dir, &format!("key-{}", key.len()), key),
        container,
        prefix,
    )
}

pub fn target(s: &Services, dir: &tempfile::TempDir, prefix: &str) -> Arc<dyn Target> {
    open(
        s,
        dir,
        s.get("SSTORE_TEST_AZURE_CONTAINER"),
        prefix,
        s.get("SSTORE_TEST_AZURE_KEY"),
    )
}
