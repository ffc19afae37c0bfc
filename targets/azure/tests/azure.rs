//! The Azure Blob target against a real Azure emulator: Azurite on loopback, started by
//! `cargo xtask services up` (skipped with a note when it is not up, failed under
//! `cargo xtask ci`).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use sstore_conformance::scenarios::{
    conditional_create_refuses_an_existing_key, failed_upload_leaves_nothing_visible,
};
use sstore_conformance::services;
use sstore_conformance::{KitOptions, assert_conforms, unique};
use sstore_target_api::{ObjectKey, PutMode, TargetErrorKind, get_bytes, put_bytes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azurite_passes_the_conformance_kit() {
    let Some(s) = services::require(KEYS) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key_file = secret_file(&dir, "unreachable", s.get("SSTORE_TEST_AZURE_KEY"));
    let unreachable = open_with(
        "http://127.0.0.1:9/devstoreaccount1",
        s.get("SSTORE_TEST_AZURE_ACCOUNT"),
        &key_file,
        "c",
        "p",
    );
    let options = KitOptions {
        large_object_bytes: 40 * 1024 * 1024 + 12_345,
        unreachable: Some(unreachable),
        ..KitOptions::default()
    };
    let report = assert_conforms(target(&s, &dir, &unique("kit")), &options).await;
    assert!(report.capabilities.multipart && report.capabilities.conditional_create);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_account_key_is_a_fast_permanent_error_naming_the_container() {
    let Some(s) = services::require(KEYS) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let container = s.get("SSTORE_TEST_AZURE_CONTAINER");
    // A well-formed key that is not the account's.
    let wrong = "d3JvbmctYnV0LXdlbGwtZm9ybWVkLWtleS1mb3ItdGVzdHMtMDEyMzQ1Njc4OQ==";
    let target = open(&s, &dir, container, "wrong", wrong);
    let started = Instant::now();
    let err = target.readiness().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(!err.is_temporary(), "{err}");
    assert!(
        matches!(
            err.kind,
            TargetErrorKind::PermissionDenied | TargetErrorKind::Unauthenticated
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains(&format!("container {container}")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_container_is_named() {
    let Some(s) = services::require(KEYS) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let target = open(
        &s,
        &dir,
        "no-such-container",
        "p",
        s.get("SSTORE_TEST_AZURE_KEY"),
    );
    let key = ObjectKey::new("a").unwrap();
    let err = put_bytes(target.as_ref(), &key, b"x", PutMode::Create)
        .await
        .unwrap_err();
    assert_eq!(err.kind, TargetErrorKind::NotFound, "{err}");
    assert!(
        err.message.contains("'no-such-container' does not exist"),
        "{err}"
    );
    assert!(!err.is_temporary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_create_refuses_an_existing_key_small_and_block_upload() {
    let Some(s) = services::require(KEYS) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let target = target(&s, &dir, &unique("create"));
    // 12 MiB: past the 8 MiB block size, so the large creates are block uploads.
    conditional_create_refuses_an_existing_key(target.as_ref(), 12 * 1024 * 1024).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_block_upload_leaves_nothing_visible() {
    let Some(s) = services::require(KEYS) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let target = target(&s, &dir, &unique("abort"));
    let err =
        failed_upload_leaves_nothing_visible(target.as_ref(), 30 * 1024 * 1024, 20 * 1024 * 1024)
            .await;
    assert!(err.message.contains("reading the body"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sas_token_instead_of_the_key_works() {
    let Some(s) = services::require(&["SSTORE_TEST_AZURE_SAS", "SSTORE_TEST_AZURE_ENDPOINT"])
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("sas");
    let config = format!(
        "container = '{}'\nprefix = '{}'\nendpoint = '{}'\nallow_http = true\n\
         account = '{}'\nsas_token_file = '{}'\n",
        s.get("SSTORE_TEST_AZURE_CONTAINER"),
        prefix,
        s.get("SSTORE_TEST_AZURE_ENDPOINT"),
        s.get("SSTORE_TEST_AZURE_ACCOUNT"),
        secret_file(&dir, "sas", s.get("SSTORE_TEST_AZURE_SAS")),
    );
    let request = sstore_target_api::OpenRequest {
        name: "azure-sas".into(),
        url: None,
        config: toml::from_str(&config).unwrap(),
    };
    let target = sstore_target_azure::settings::open(&request).unwrap();
    let key = ObjectKey::new("with-sas").unwrap();
    put_bytes(&target, &key, b"signed by a SAS", PutMode::Create)
        .await
        .unwrap();
    assert_eq!(
        get_bytes(&target, &key, 100).await.unwrap(),
        b"signed by a SAS"
    );
    // Deletes go through Blob Batch, which Azurite 3.35 refuses under a SAS (HTTP 500; Azure
    // accepts it): clean up with the key.
    let with_key = open(
        &s,
        &dir,
        s.get("SSTORE_TEST_AZURE_CONTAINER"),
        &prefix,
        s.get("SSTORE_TEST_AZURE_KEY"),
    );
    with_key.delete(&key).await.unwrap();
}
