//! Scenarios every target's own tests run against their real server, written once (as
//! object_store's integration suite does): a server killed mid-upload, conditional create of
//! small and large objects, a failed large upload. Unlike [`crate::run`], these are test
//! helpers: they panic (with what went wrong) on the first failed assertion, and may take a
//! server down and up again.

use std::time::Duration;

use sstore_target_api::{
    ObjectKey, ObjectMeta, PutMode, PutOptions, Target, TargetError, TargetErrorKind, get_bytes,
    put_bytes,
};

use crate::data::{Digest, FailingReader, GatedReader, PatternReader, read_digest};
use crate::services::{Daemon, wait_for_port};

/// How [`server_killed_mid_upload`] runs.
#[derive(Debug, Clone)]
pub struct MidUploadCrash {
    /// The key uploaded (relative to the target's root; nothing else may be listed there).
    pub key: ObjectKey,
    /// The object's size: large enough for the target's multipart or block path.
    pub size: u64,
    /// Where the body pauses while the server is killed.
    pub pause_at: u64,
    /// The seed of the body's pattern.
    pub seed: u64,
    /// How long to wait, once the body paused, before the kill (for parts still in flight
    /// to reach the server).
    pub before_kill: Duration,
    /// How long the restarted server may take to accept connections.
    pub restart_within: Duration,
    /// Leave the retried object in place (for checks of the server's own files after the
    /// scenario); by default it is deleted and the listing checked empty.
    pub keep_object: bool,
}

impl MidUploadCrash {
    pub fn new(key: &str, size: u64, pause_at: u64) -> Self {
        Self {
            key: ObjectKey::new(key).unwrap_or_else(|e| panic!("key {key}: {e}")),
            size,
            pause_at,
            seed: 7,
            before_kill: Duration::ZERO,
            restart_within: Duration::from_secs(20),
            keep_object: false,
        }
    }
}

/// What [`server_killed_mid_upload`] saw, for checks of a target's own.
#[derive(Debug)]
pub struct MidUploadCrashOutcome {
    /// The error of the upload the kill interrupted (temporary, checked).
    pub error: TargetError,
    /// The retried upload's result.
    pub meta: ObjectMeta,
}

/// Starts a killed daemon again when dropped armed: a failing assertion never leaves the
/// server down for the tests after it.
struct RestartGuard<'a> {
    daemon: &'a Daemon,
    killed: bool,
}

impl RestartGuard<'_> {
    fn kill(&mut self) {
        self.daemon
            .kill()
            .unwrap_or_else(|e| panic!("killing the server: {e}"));
        self.killed = true;
    }

    fn restart(&mut self) -> std::io::Result<()> {
        self.killed = false;
        self.daemon.start()
    }
}

impl Drop for RestartGuard<'_> {
    fn drop(&mut self) {
        if self.killed {
            let _ = self.daemon.start();
        }
    }
}

/// A server killed while a large upload is paused part-way: while paused nothing is visible
/// under the key or listed; the upload fails with a temporary error; the server is restarted
/// (also when an assertion fails part-way) and must accept connections on `port` in time;
/// still nothing is visible; the same upload tried again completes, is listed alone with its
/// size and reads back intact. `target` must be rooted in a folder or prefix of its own.
pub async fn server_killed_mid_upload(
    target: &dyn Target,
    daemon: &Daemon,
    port: u16,
    crash: &MidUploadCrash,
) -> MidUploadCrashOutcome {
    let MidUploadCrash {
        key,
        size,
        pause_at,
        seed,
        ..
    } = crash;
    let (size, seed) = (*size, *seed);
    let mut guard = RestartGuard {
        daemon,
        killed: false,
    };
    let (body, gate) = GatedReader::new(seed, size, *pause_at);
    // The body moves into the put, so a put that ends early drops it and the kill below
    // stops waiting for the pause.
    let put = async move {
        let mut body = body;
        target
            .put(key, &mut body, PutOptions::create().with_length(size))
            .await
    };
    let kill = async {
        if gate.reached.await.is_err() {
            // The body was dropped before its pause: the put ended early (reported below).
            return false;
        }
        assert_nothing_visible(target, key, "while the upload is paused").await;
        tokio::time::sleep(crash.before_kill).await;
        guard.kill();
        let _ = gate.release.send(());
        true
    };
    let (result, killed) = tokio::join!(put, kill);
    if killed && let Err(e) = guard.restart() {
        panic!("restarting the server: {e}");
    }
    assert!(
        killed,
        "the upload ended before its body reached {pause_at} bytes: {result:?}"
    );
    let error = match result {
        Ok(meta) => panic!("the upload succeeded although the server was killed: {meta:?}"),
        Err(e) => e,
    };
    assert!(
        error.is_temporary(),
        "a killed server is temporary: {error}"
    );
    assert!(
        wait_for_port(port, crash.restart_within),
        "the restarted server does not accept connections on port {port} within {:?}",
        crash.restart_within
    );
    assert_nothing_visible(target, key, "after the failed upload").await;

    let mut body = PatternReader::new(seed, size);
    let meta = target
        .put(key, &mut body, PutOptions::create().with_length(size))
        .await
        .unwrap_or_else(|e| panic!("the retried upload: {e}"));
    assert_eq!(meta.size, size, "the retried upload's size");
    let listed = target
        .list("")
        .await
        .unwrap_or_else(|e| panic!("list: {e}"));
    let listed: Vec<(&str, u64)> = listed.iter().map(|m| (m.key.as_str(), m.size)).collect();
    assert_eq!(listed, [(key.as_str(), size)], "listed after the retry");
    let mut reader = target
        .get(key)
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e}"));
    let digest = read_digest(&mut reader, size + 1)
        .await
        .unwrap_or_else(|e| panic!("reading {key} back: {e}"));
    assert_eq!(digest, Digest::of_pattern(seed, size), "{key} read back");
    if !crash.keep_object {
        target
            .delete(key)
            .await
            .unwrap_or_else(|e| panic!("delete {key}: {e}"));
        assert_nothing_visible(target, key, "after the delete").await;
    }
    MidUploadCrashOutcome { error, meta }
}

/// `stat` of `key` is not found and nothing is listed.
async fn assert_nothing_visible(target: &dyn Target, key: &ObjectKey, when: &str) {
    match target.stat(key).await {
        Err(e) if e.is_not_found() => {}
        other => panic!("{when}: stat of {key} must be not found, got {other:?}"),
    }
    let listed = target
        .list("")
        .await
        .unwrap_or_else(|e| panic!("{when}: list: {e}"));
    assert!(listed.is_empty(), "{when}: listed {listed:?}");
}

/// A create-only put of an existing key fails with `AlreadyExists` and leaves the first
/// content intact, for a small object (`lock`) and a large one (`backup.bak`, `large_size`
/// bytes: past the target's multipart or block threshold); both are deleted at the end.
/// `target` must be rooted in a folder or prefix of its own.
pub async fn conditional_create_refuses_an_existing_key(target: &dyn Target, large_size: u64) {
    let small = key("lock");
    put_bytes(target, &small, b"first", PutMode::Create)
        .await
        .unwrap_or_else(|e| panic!("the first create of {small}: {e}"));
    let err = put_bytes(target, &small, b"second", PutMode::Create)
        .await
        .expect_err("a second create of a small object must fail");
    assert_eq!(err.kind, TargetErrorKind::AlreadyExists, "{err}");
    assert!(!err.is_temporary(), "{err}");
    assert_eq!(
        get_bytes(target, &small, 100)
            .await
            .unwrap_or_else(|e| panic!("get {small}: {e}")),
        b"first"
    );

    let large = key("backup.bak");
    let options = PutOptions::create().with_length(large_size);
    target
        .put(&large, &mut PatternReader::new(1, large_size), options)
        .await
        .unwrap_or_else(|e| panic!("the first create of {large}: {e}"));
    let err = target
        .put(&large, &mut PatternReader::new(2, large_size), options)
        .await
        .expect_err("a second create of a large object must fail");
    assert_eq!(err.kind, TargetErrorKind::AlreadyExists, "{err}");
    assert!(!err.is_temporary(), "{err}");
    let mut reader = target
        .get(&large)
        .await
        .unwrap_or_else(|e| panic!("get {large}: {e}"));
    let digest = read_digest(&mut reader, large_size + 1)
        .await
        .unwrap_or_else(|e| panic!("reading {large}: {e}"));
    assert_eq!(digest, Digest::of_pattern(1, large_size), "{large}");
    for key in [&small, &large] {
        target
            .delete(key)
            .await
            .unwrap_or_else(|e| panic!("delete {key}: {e}"));
    }
}

/// A large upload whose body fails after `fail_at` of its `size` bytes: the put fails and
/// nothing is visible under its key (`half.bak`) or listed. Returns the put's error, for the
/// target's own checks of its message. `target` must be rooted in a folder or prefix of its
/// own.
pub async fn failed_upload_leaves_nothing_visible(
    target: &dyn Target,
    size: u64,
    fail_at: u64,
) -> TargetError {
    let key = key("half.bak");
    let mut body = FailingReader::new(3, size, fail_at);
    let err = target
        .put(&key, &mut body, PutOptions::create().with_length(size))
        .await
        .expect_err("a put whose body fails must fail");
    assert_nothing_visible(target, &key, "after the failed upload").await;
    err
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(name).unwrap_or_else(|e| panic!("key {name}: {e}"))
}
