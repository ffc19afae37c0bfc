//! The S3 target against a real S3 server: s3s-fs on loopback, started by
//! `cargo xtask services up` (skipped with a note when it is not up, failed under
//! `cargo xtask ci`).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use sstore_conformance::data::{Digest, FailingReader, PatternReader, read_digest};
use sstore_conformance::services;
use sstore_conformance::{KitOptions, assert_conforms};
use sstore_target_api::{
    ObjectKey, OpenRequest, PutMode, PutOptions, Target, TargetErrorKind, get_bytes, put_bytes,
};

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
    let small = ObjectKey::new("lock").unwrap();
    put_bytes(target.as_ref(), &small, b"first", PutMode::Create)
        .await
        .unwrap();
    let err = put_bytes(target.as_ref(), &small, b"second", PutMode::Create)
        .await
        .unwrap_err();
    assert_eq!(err.kind, TargetErrorKind::AlreadyExists, "{err}");
    assert_eq!(
        get_bytes(target.as_ref(), &small, 100).await.unwrap(),
        b"first"
    );

    let large = ObjectKey::new("backup.bak").unwrap();
    let size = 12 * 1024 * 1024;
    let mut body = PatternReader::new(1, size);
    let options = PutOptions::create().with_length(size);
    target.put(&large, &mut body, options).await.unwrap();
    let mut again = PatternReader::new(2, size);
    let err = target.put(&large, &mut again, options).await.unwrap_err();
    assert_eq!(err.kind, TargetErrorKind::AlreadyExists, "{err}");
    let mut reader = target.get(&large).await.unwrap();
    let digest = read_digest(&mut reader, size + 1).await.unwrap();
    assert_eq!(digest, Digest::of_pattern(1, size));
    for key in [&small, &large] {
        target.delete(key).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_multipart_upload_leaves_nothing_visible() {
    let Some(s) = services::require(KEYS) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let target = target(&s, &dir, &unique("abort"));
    let key = ObjectKey::new("half.bak").unwrap();
    let size = 30 * 1024 * 1024;
    let mut body = FailingReader::new(3, size, 20 * 1024 * 1024);
    let err = target
        .put(&key, &mut body, PutOptions::create().with_length(size))
        .await
        .unwrap_err();
    assert!(err.message.contains("reading the body"), "{err}");
    assert!(target.stat(&key).await.unwrap_err().is_not_found());
    assert!(target.list("").await.unwrap().is_empty());
}
