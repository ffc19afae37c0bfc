//! The service's job request (`POST /api/v1/jobs`): any bytes as the body, parsed as the
//! service parses it (serde_json into `JobRequest`) and checked against a fixed configuration.
//! Never a panic; and a request that passes names no local path outside `[serve]
//! allowed_paths`, none with `..`, and no URL the configuration does not name.

#![no_main]

use std::path::{Component, Path};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sstore_core::config::Config;
use sstore_core::target::location::{self, Location};
use sstore_service::jobs::request::JobRequest;

const CONFIG: &str = r#"
[backup]
directory = "/srv/backups"
targets = ["nas"]

[serve]
allowed_paths = ["/srv/allowed"]

[[target]]
name = "nas"
kind = "local"
path = "/mnt/nas"

[[schedule]]
name = "nightly"
every = "6h"
directory = "s3://bucket/nightly"
"#;

fn config() -> &'static Config {
    static PARSED: OnceLock<Config> = OnceLock::new();
    PARSED.get_or_init(
        || match Config::parse(CONFIG, Path::new("/etc/sstore/config.toml")) {
            Ok(config) => config,
            Err(e) => panic!("the fuzz target's own config does not parse: {e}"),
        },
    )
}

/// What the configuration names itself: always allowed.
fn configured(config: &Config, text: &str) -> bool {
    config.target(text).is_some()
        || config.backup.directory.as_deref() == Some(text)
        || config.backup.targets.iter().any(|t| t == text)
        || config
            .schedules
            .iter()
            .any(|s| s.directory.as_deref() == Some(text) || s.targets.iter().any(|t| t == text))
}

fn assert_inside(path: &Path, text: &str) {
    assert!(
        path.is_absolute()
            && path.starts_with("/srv/allowed")
            && !path.components().any(|c| matches!(c, Component::ParentDir)),
        "accepted a location outside [serve] allowed_paths: {text:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(request) = serde_json::from_slice::<JobRequest>(data) else {
        return;
    };
    let config = config();
    if request.validate(config).is_err() {
        return;
    }
    for text in request.directory.iter().chain(&request.targets) {
        if configured(config, text) {
            continue;
        }
        match location::parse(text) {
            Ok(Location::Path(path)) => assert_inside(&path, text),
            Ok(Location::Url { scheme, url }) if scheme == "file" => {
                if let Some(path) = location::file_url_path(&url) {
                    assert_inside(&path, text);
                }
            }
            other => panic!("accepted {text:?}, which the config does not name: {other:?}"),
        }
    }
    if let Some(path) = &request.new_store {
        assert_inside(Path::new(path), path);
    }
});
