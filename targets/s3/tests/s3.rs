//! The S3 target against a real S3 server: s3s-fs on loopback, started by
//! `cargo xtask services up` (skipped with a note when it is not up, failed under
//! `cargo xtask ci`).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use sstore_conformance::scenarios::{
    conditional_create_refuses_an_existing_key, failed_upload_leaves_nothing_visible,
};
use sstore_conformance::services;
use sstore_conformance::{KitOptions, assert_conforms, unique};
use sstore_target_api::{OpenRequest, Target, TargetErrorKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3s_fs_passes_the_conformance_kit() {
    let Some(s) = services::require(KEYS) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let unreachable = {
        let request = OpenRequest {
            name: "closed-port".into(),
            url: Some("s3://sstore-test/x".into()),
            config: toml::from_str(
                "endpoint = 'http://127.0.0.1:9'\nallow_http = true\n\
                access_key_id = 'AK'\nsecret_access_key_file = '/nonexistent'",
            )
            .unwrap(),
        };
        // The secret file must exist for the target to open: use a real one.
        let mut request = request;
        request.config.insert(
            "secret_access_key_file".into(),
            secret_file(&dir, "unreachable", "x").into(),
        );
        Arc::new(sstore_target_s3::settings::open(&request).unwrap()) as Arc<dyn Target>
    };
    let options = KitOptions {
        // Crosses several 8 MiB parts: the multipart path, streamed.
        large_object_bytes: 40 * 1024 * 1024 + 12_345,
        // s3s-fs names a metadata file after the whole key in base64: keys must stay under
        // about 120 bytes there (S3 itself allows 1024).
        long_name_bytes: 40,
        unreachable: Some(unreachable),
        ..KitOptions::default()
    };
    let short_prefix = format!("k{}", std::process::id());
    let report = assert_conforms(target(&s, &dir, &short_prefix), &options).await;
    // s3s-fs checks If-None-Match without a lock (8 of 8 racing creates succeeded), so the
    // tests do not let the target claim conditional create; AWS S3 enforces it.
    assert!(report.capabilities.multipart && !report.capabilities.conditional_create);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_a_fast_permanent_error_naming_the_bucket() {
    let Some(s) = services::require(KEYS) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bucket = s.get("SSTORE_TEST_S3_BUCKET");
    let target = open(&s, &dir, bucket, "wrong", "not-the-secret-key-at-all");
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
        err.to_string().contains(&format!("bucket {bucket}")),
        "{err}"
    );
    assert!(!err.to_string().contains("not-the-secret"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_named() {
    let Some(s) = services::require(KEYS) else {
        return;
    };
    let missing = unique("missing");
    let dir = tempfile::tempdir().unwrap();
    let target = open(&s, &dir, &missing, "p", s.get("SSTORE_TEST_S3_SECRET_KEY"));
    // Readiness runs before every job; it lists first, because a write alone would not tell
    // on s3s-fs (it creates a missing bucket's folder on a put).
    let err = target.readiness().await.unwrap_err();
    assert_eq!(err.kind, TargetErrorKind::NotFound, "{err}");
    assert!(
        err.message
            .contains(&format!("bucket '{missing}' does not exist")),
        "{err}"
    );
    assert!(!err.is_temporary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_create_refuses_an_existing_key_small_and_multipart() {
    let Some(s) = services::require(KEYS) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let target = target(&s, &dir, &unique("create"));
    // 12 MiB: past the 8 MiB part size, so the large creates are multipart uploads.
    conditional_create_refuses_an_existing_key(target.as_ref(), 12 * 1024 * 1024).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_multipart_upload_leaves_nothing_visible() {
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
