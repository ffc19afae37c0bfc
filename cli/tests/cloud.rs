//! End to end against real cloud servers (started by `cargo xtask services up`): `sstore
//! backup` to S3 (s3s-fs) and Azure Blob (Azurite) through configured targets and through
//! `s3://` / `az://` URLs with nothing but the standard environment, and to SFTP and WebDAV
//! URLs; then `history` and `restore` from each.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::{Sandbox, code, text};
use sstore_conformance::{services, unique};

const S3: &[&str] = &[
    "SSTORE_TEST_S3_ENDPOINT",
    "SSTORE_TEST_S3_BUCKET",
    "SSTORE_TEST_S3_ACCESS_KEY",
    "SSTORE_TEST_S3_SECRET_KEY",
];
const AZURE: &[&str] = &[
    "SSTORE_TEST_AZURE_ENDPOINT",
    "SSTORE_TEST_AZURE_ACCOUNT",
    "SSTORE_TEST_AZURE_KEY",
    "SSTORE_TEST_AZURE_CONTAINER",
];
const OPENDAL: &[&str] = &[
    "SSTORE_TEST_SFTP_ENDPOINT",
    "SSTORE_TEST_SFTP_USER",
    "SSTORE_TEST_SFTP_KEY",
    "SSTORE_TEST_SFTP_ROOT",
    "SSTORE_TEST_WEBDAV_ENDPOINT",
    "SSTORE_TEST_WEBDAV_USER",
    "SSTORE_TEST_WEBDAV_PASSWORD",
];

fn secret_file(sandbox: &Sandbox, name: &str, secret: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = sandbox.path(name);
    std::fs::write(&path, secret).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.display().to_string()
}

fn write_config(sandbox: &Sandbox, body: &str) {
    let dir = sandbox.path("config/sstore");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), body).unwrap();
}

/// `sstore` with no cloud settings inherited from the developer's environment.
fn clean(mut cmd: Command) -> Command {
    for (key, _) in std::env::vars() {
        if key.starts_with("AWS_") || key.starts_with("AZURE_") || key.starts_with("AZURITE_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn run(sandbox: &Sandbox, env: &[(&str, &str)], args: &[&str]) -> String {
    let mut cmd = clean(sandbox.cmd());
    cmd.envs(env.iter().copied()).args(args);
    let out = cmd.output().unwrap();
    assert_eq!(code(&out), 0, "sstore {args:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn succeeded_ids(sandbox: &Sandbox, env: &[(&str, &str)], place: &[&str]) -> Vec<String> {
    let mut args = vec!["history", "--json"];
    args.extend_from_slice(place);
    let history: serde_json::Value = serde_json::from_str(&run(sandbox, env, &args)).unwrap();
    history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "backup" && e["status"] == "succeeded")
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Restores from `place` into a new store and reads a credential back from it.
fn restore_and_check(sandbox: &Sandbox, env: &[(&str, &str)], place: &[&str], into: &str) {
    let restored = sandbox.path(into);
    let mut args = vec!["restore"];
    args.extend_from_slice(place);
    args.extend_from_slice(&["--method", "new", "--new-store", restored.to_str().unwrap()]);
    run(sandbox, env, &args);
    let mut cmd = clean(sandbox.cmd());
    let out = cmd
        .env("SSTORE_STORE", &restored)
        .args(["cred", "get", "payroll", "--principal", "CONTOSO\\Payroll"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("svc-payroll"));
}

fn backup_id(json: &str) -> String {
    let summary: serde_json::Value = serde_json::from_str(json.lines().last().unwrap()).unwrap();
    assert_eq!(summary["status"], "succeeded", "{json}");
    summary["job_id"].as_str().unwrap().to_owned()
}

#[test]
fn configured_s3_and_azure_targets_back_up_list_and_restore() {
    let (Some(s), Some(_)) = (services::require(S3), services::require(AZURE)) else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.sample_store();
    write_config(
        &sandbox,
        &format!(
            "[[target]]\nname = 'offsite-s3'\nkind = 's3'\nbucket = '{}'\nprefix = '{}'\n\
             endpoint = '{}'\nallow_http = true\naccess_key_id = '{}'\n\
             secret_access_key_file = '{}'\nstorage_class = 'STANDARD'\n\n\
             [[target]]\nname = 'offsite-azure'\nkind = 'azure'\ncontainer = '{}'\n\
             prefix = '{}'\nendpoint = '{}'\nallow_http = true\naccount = '{}'\n\
             account_key_file = '{}'\n",
            s.get("SSTORE_TEST_S3_BUCKET"),
            unique("e2e"),
            s.get("SSTORE_TEST_S3_ENDPOINT"),
            s.get("SSTORE_TEST_S3_ACCESS_KEY"),
            secret_file(&sandbox, "s3-secret", s.get("SSTORE_TEST_S3_SECRET_KEY")),
            s.get("SSTORE_TEST_AZURE_CONTAINER"),
            unique("e2e"),
            s.get("SSTORE_TEST_AZURE_ENDPOINT"),
            s.get("SSTORE_TEST_AZURE_ACCOUNT"),
            secret_file(&sandbox, "azure-key", s.get("SSTORE_TEST_AZURE_KEY")),
        ),
    );
    let local = sandbox.backups();
    let out = run(
        &sandbox,
        &[],
        &[
            "backup",
            "--directory",
            local.to_str().unwrap(),
            "--target",
            "offsite-s3",
            "--target",
            "offsite-azure",
            "--json",
        ],
    );
    let id = backup_id(&out);
    for target in ["offsite-s3", "offsite-azure"] {
        let place = ["--target", target];
        assert_eq!(
            succeeded_ids(&sandbox, &[], &place),
            std::slice::from_ref(&id),
            "{target}"
        );
        restore_and_check(&sandbox, &[], &place, &format!("from-{target}.db"));
    }
    let readiness = run(
        &sandbox,
        &[],
        &[
            "readiness",
            "--target",
            "offsite-s3",
            "--target",
            "offsite-azure",
        ],
    );
    for name in ["offsite-s3", "offsite-azure"] {
        assert!(
            readiness
                .lines()
                .any(|l| l.starts_with("ok") && l.contains(name) && l.contains("writable")),
            "{readiness}"
        );
    }
}

#[test]
fn s3_and_az_urls_work_with_only_the_standard_environment() {
    let (Some(s), Some(_)) = (services::require(S3), services::require(AZURE)) else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.sample_store();
    let s3_url = format!("s3://{}/{}", s.get("SSTORE_TEST_S3_BUCKET"), unique("url"));
    let aws = [
        ("AWS_ACCESS_KEY_ID", s.get("SSTORE_TEST_S3_ACCESS_KEY")),
        ("AWS_SECRET_ACCESS_KEY", s.get("SSTORE_TEST_S3_SECRET_KEY")),
        ("AWS_ENDPOINT_URL", s.get("SSTORE_TEST_S3_ENDPOINT")),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ALLOW_HTTP", "true"),
    ];
    check_url_round_trip(&sandbox, &aws, &s3_url, "from-s3-url.db");

    let azurite = s
        .get("SSTORE_TEST_AZURE_ENDPOINT")
        .trim_end_matches(&format!("/{}", s.get("SSTORE_TEST_AZURE_ACCOUNT")))
        .to_owned();
    let az_url = format!(
        "az://{}/{}",
        s.get("SSTORE_TEST_AZURE_CONTAINER"),
        unique("url")
    );
    let azure = [
        ("AZURE_STORAGE_USE_EMULATOR", "true"),
        ("AZURITE_BLOB_STORAGE_URL", azurite.as_str()),
    ];
    check_url_round_trip(&sandbox, &azure, &az_url, "from-az-url.db");

    // Without credentials the S3 URL fails clearly, naming the bucket, and changes nothing.
    let mut cmd = clean(sandbox.cmd());
    let out = cmd
        .env("AWS_ENDPOINT_URL", s.get("SSTORE_TEST_S3_ENDPOINT"))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "nobody")
        .env("AWS_SECRET_ACCESS_KEY", "wrong")
        .args(["backup", "--directory", &s3_url])
        .output()
        .unwrap();
    assert_ne!(code(&out), 0);
    let all = text(&out);
    assert!(all.contains(s.get("SSTORE_TEST_S3_BUCKET")), "{all}");
    assert!(!all.contains("wrong\n") && !all.contains("AWS_SECRET_ACCESS_KEY=wrong"));
}

/// Backs up to `url`, lists it, restores from it.
fn check_url_round_trip(sandbox: &Sandbox, env: &[(&str, &str)], url: &str, into: &str) {
    let out = run(sandbox, env, &["backup", "--directory", url, "--json"]);
    let id = backup_id(&out);
    let place = ["--directory", url];
    assert_eq!(succeeded_ids(sandbox, env, &place), [id], "{url}");
    restore_and_check(sandbox, env, &place, into);
}

#[test]
fn sftp_and_webdav_urls_back_up_list_and_restore() {
    let Some(s) = services::require(OPENDAL) else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.sample_store();
    let sftp_url = format!(
        "sftp://{}@{}{}/{}",
        s.get("SSTORE_TEST_SFTP_USER"),
        s.get("SSTORE_TEST_SFTP_ENDPOINT")
            .trim_start_matches("ssh://"),
        s.get("SSTORE_TEST_SFTP_ROOT"),
        unique("e2e")
    );
    let sftp_env = [
        ("SSTORE_SFTP_KEY", s.get("SSTORE_TEST_SFTP_KEY")),
        ("SSTORE_SFTP_KNOWN_HOSTS", "accept"),
    ];
    check_url_round_trip(&sandbox, &sftp_env, &sftp_url, "from-sftp.db");

    let endpoint = s.get("SSTORE_TEST_WEBDAV_ENDPOINT");
    let dav_url = format!(
        "webdav://{}@{}/{}",
        s.get("SSTORE_TEST_WEBDAV_USER"),
        endpoint.trim_start_matches("http://"),
        unique("e2e")
    );
    let dav_env = [(
        "SSTORE_WEBDAV_PASSWORD",
        s.get("SSTORE_TEST_WEBDAV_PASSWORD"),
    )];
    check_url_round_trip(&sandbox, &dav_env, &dav_url, "from-webdav.db");
}
