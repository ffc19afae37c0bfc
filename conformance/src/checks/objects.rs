//! Checks of single objects: readiness, round trips (small, large, from files), create-only
//! and overwriting puts, missing keys, ranged reads and deletes.

use std::sync::Arc;
use std::time::Instant;

use sstore_target_api::{PutMode, PutOptions, RetryStatus, TargetErrorKind};

use super::{
    CheckResult, During, Scope, Verdict, describe, expect_absent, expect_error, expect_listing,
    human, list_keys, put_pattern, put_small, rate, read_range, read_small, verify_object,
};
use crate::data::{Digest, PatternReader, pattern_bytes};

const MIB: u64 = 1024 * 1024;

/// Readiness answers within the deadline and says the target is writable.
pub(super) async fn readiness(s: Arc<Scope>) -> CheckResult {
    let deadline = s.options.readiness_deadline;
    let readiness = tokio::time::timeout(deadline, s.target.readiness())
        .await
        .map_err(|_| format!("hangs: readiness gave no answer within {deadline:?}"))?
        .during("readiness")?;
    ensure!(
        readiness.writable,
        "readiness reports the target as not writable ({readiness:?})"
    );
    let mut note = vec!["writable".to_owned()];
    if let Some(free) = readiness.free_bytes {
        note.push(format!("{} free", human(free)));
    }
    note.extend(readiness.detail);
    Ok(Verdict::Passed(Some(note.join(", "))))
}

/// Empty and small objects, with and without an announced length, from bodies that hand out
/// a few bytes per read, in nested folders.
pub(super) async fn round_trip(s: Arc<Scope>) -> CheckResult {
    // Empty, announced (put_bytes announces the length) and not.
    let empty = s.key("empty")?;
    put_small(&s, &empty, b"", PutMode::Create).await?;
    verify_object(&s, &empty, &Digest::of_bytes(b"")).await?;
    let empty_unannounced = s.key("empty-unannounced")?;
    let digest = put_pattern(&s, &empty_unannounced, 0, 0, PutOptions::create()).await?;
    verify_object(&s, &empty_unannounced, &digest).await?;

    // Small, announced, read back whole.
    let small = s.key("small")?;
    let bytes = pattern_bytes(1, 0, 1000);
    put_small(&s, &small, &bytes, PutMode::Create).await?;
    ensure!(
        read_small(&s, &small, 1 << 20).await? == bytes,
        "{small} reads back different bytes than were stored"
    );
    verify_object(&s, &small, &Digest::of_bytes(&bytes)).await?;

    // Small and trickled (7 bytes per read), with and without a length; in nested folders.
    for (name, length, announced) in [
        ("trickled/unannounced", 1000, false),
        ("trickled/nested/folders/announced", 65_537, true),
    ] {
        let key = s.key(name)?;
        let mut body = PatternReader::new(2, length).with_max_read(7);
        let options = if announced {
            PutOptions::create().with_length(length)
        } else {
            PutOptions::create()
        };
        s.target
            .put(&key, &mut body, options)
            .await
            .during(format!("put of {length} bytes, 7 per read, to {key}"))?;
        ensure!(
            body.position() == length,
            "put of {key} returned success after reading {} of {length} bytes",
            body.position()
        );
        verify_object(&s, &key, &body.digest()).await?;
    }

    for key in [
        empty,
        empty_unannounced,
        small,
        s.key("trickled/unannounced")?,
        s.key("trickled/nested/folders/announced")?,
    ] {
        s.delete(&key).await.during(format!("delete of {key}"))?;
        expect_absent(&s, &key, "after its delete").await?;
    }
    Ok(Verdict::Passed(None))
}

/// A large object streamed up without and with an announced length, read back as a stream
/// and by ranges; memory use stays flat whatever the size.
pub(super) async fn large_object(s: Arc<Scope>) -> CheckResult {
    const SEED: u64 = 11;
    let length = s.options.large_object_bytes;
    let key = s.key("large")?;

    let started = Instant::now();
    let digest = put_pattern(&s, &key, SEED, length, PutOptions::create()).await?;
    let put_unannounced = started.elapsed();
    let started = Instant::now();
    verify_object(&s, &key, &digest).await?;
    let get = started.elapsed();

    let started = Instant::now();
    let options = PutOptions::overwrite().with_length(length);
    let again = put_pattern(&s, &key, SEED, length, options).await?;
    let put_announced = started.elapsed();
    ensure!(again == digest, "the kit's generator is not deterministic");
    verify_object(&s, &key, &digest).await?;

    // Windows at the start, across the middle and at the end (the last one past it).
    let window = 64 * 1024;
    let middle = (length / 2).saturating_sub(window / 2);
    let end = length.saturating_sub(window / 2);
    for start in [0, middle, end] {
        let range = start..start + window;
        let want = usize::try_from(range.end.min(length) - start).unwrap_or(usize::MAX);
        let got = read_range(&s, &key, range.clone(), window).await?;
        ensure!(
            got == pattern_bytes(SEED, start, want),
            "get_range {}..{} of {key} returned {} bytes that differ from the {want} stored there",
            range.start,
            range.end,
            got.len()
        );
    }

    s.delete(&key).await.during(format!("delete of {key}"))?;
    expect_absent(&s, &key, "after its delete").await?;
    Ok(Verdict::Passed(Some(format!(
        "{}: put {}, put with length {}, get {}",
        human(length),
        rate(length, put_unannounced),
        rate(length, put_announced),
        rate(length, get)
    ))))
}

/// `put_file` stores local files with the same create-only and overwrite rules as `put`.
pub(super) async fn put_file(s: Arc<Scope>) -> CheckResult {
    let dir = tempfile::tempdir()
        .map_err(|e| format!("creating a local temporary folder failed: {e}"))?;
    let write = |name: &str, bytes: Vec<u8>| {
        let path = dir.path().join(name);
        async move {
            tokio::fs::write(&path, &bytes)
                .await
                .map_err(|e| format!("writing the local file {} failed: {e}", path.display()))?;
            Ok::<_, String>((path, Digest::of_bytes(&bytes)))
        }
    };
    let (first, first_digest) = write("first", pattern_bytes(31, 0, 2 * 1024 * 1024 + 3)).await?;
    let (second, second_digest) = write("second", pattern_bytes(32, 0, 100_000)).await?;

    let key = s.key("file")?;
    let meta = s
        .target
        .put_file(&key, &first, PutMode::Create)
        .await
        .during(format!("put_file (Create) to {key}"))?;
    ensure!(
        meta.size == first_digest.length,
        "put_file of {key} reported {} bytes; {} were stored",
        meta.size,
        first_digest.length
    );
    verify_object(&s, &key, &first_digest).await?;
    expect_error(
        s.target.put_file(&key, &second, PutMode::Create).await,
        TargetErrorKind::AlreadyExists,
        format!("put_file (Create) to the existing {key}"),
    )?;
    verify_object(&s, &key, &first_digest)
        .await
        .map_err(|e| format!("after a refused put_file (Create): {e}"))?;
    s.target
        .put_file(&key, &second, PutMode::Overwrite)
        .await
        .during(format!("put_file (Overwrite) to {key}"))?;
    verify_object(&s, &key, &second_digest).await?;

    let missing_file = dir.path().join("does-not-exist");
    let other = s.key("from-a-missing-file")?;
    let result = s
        .target
        .put_file(&other, &missing_file, PutMode::Create)
        .await;
    ensure!(
        result.is_err(),
        "put_file of a local file that does not exist succeeded"
    );
    expect_absent(&s, &other, "after put_file of a missing local file").await?;

    s.delete(&key).await.during(format!("delete of {key}"))?;
    Ok(Verdict::Passed(None))
}

/// `Create` never replaces (and a refused one leaves the old content); `Overwrite` replaces
/// whole, shorter content included, and creates missing keys.
pub(super) async fn create_and_overwrite(s: Arc<Scope>) -> CheckResult {
    let key = s.key("object")?;
    put_small(&s, &key, b"first", PutMode::Create).await?;

    let refused = expect_error(
        sstore_target_api::put_bytes(&*s.target, &key, b"second", PutMode::Create).await,
        TargetErrorKind::AlreadyExists,
        format!("put (Create) to the existing {key}"),
    )?;
    ensure!(
        refused.retry == RetryStatus::Permanent,
        "a refused Create is reported as temporary ({}); retrying cannot help",
        describe(&refused)
    );
    let now = read_small(&s, &key, 1 << 20).await?;
    ensure!(
        now == b"first",
        "after a refused Create, {key} holds {:?} instead of \"first\"",
        String::from_utf8_lossy(&now)
    );

    // A streamed body of unknown length, for targets that only find out at the end.
    let mut body = PatternReader::new(41, 3 * MIB);
    expect_error(
        s.target.put(&key, &mut body, PutOptions::create()).await,
        TargetErrorKind::AlreadyExists,
        format!("put (Create) of 3 MiB of unknown length to the existing {key}"),
    )?;
    let now = read_small(&s, &key, 4 * MIB).await?;
    ensure!(
        now == b"first",
        "after a refused streamed Create, {key} holds {} bytes instead of \"first\"",
        now.len()
    );

    put_small(&s, &key, b"third!", PutMode::Overwrite).await?;
    verify_object(&s, &key, &Digest::of_bytes(b"third!")).await?;
    // Shorter content must not keep the old tail.
    put_small(&s, &key, b"4", PutMode::Overwrite).await?;
    verify_object(&s, &key, &Digest::of_bytes(b"4")).await?;

    let fresh = s.key("fresh")?;
    put_small(&s, &fresh, b"new", PutMode::Overwrite).await?;
    verify_object(&s, &fresh, &Digest::of_bytes(b"new")).await?;

    let want = vec![(key.as_str(), Some(1)), (fresh.as_str(), Some(3))];
    expect_listing(&s, &s.prefix, want, "after creating and overwriting").await?;
    for key in [key, fresh] {
        s.delete(&key).await.during(format!("delete of {key}"))?;
    }
    Ok(Verdict::Passed(None))
}

/// Every operation on a key that does not exist is a permanent `NotFound`: a key never
/// written, one in a folder that does not exist, and one next to an existing object.
pub(super) async fn missing_keys(s: Arc<Scope>) -> CheckResult {
    let present = s.key("folder/present")?;
    put_small(&s, &present, b"here", PutMode::Create).await?;
    for name in ["never-written", "no/such/folder/object", "folder/absent"] {
        let key = s.key(name)?;
        let not_found = |result: Result<(), _>, op: &str| -> Result<(), String> {
            let e = expect_error(
                result,
                TargetErrorKind::NotFound,
                format!("{op} of the missing {key}"),
            )?;
            ensure!(
                e.retry == RetryStatus::Permanent,
                "{op} of the missing {key} is NotFound but temporary ({}); it must be permanent",
                describe(&e)
            );
            Ok(())
        };
        not_found(s.target.get(&key).await.map(drop), "get")?;
        not_found(s.target.get_range(&key, 0..1).await.map(drop), "get_range")?;
        not_found(s.target.stat(&key).await.map(drop), "stat")?;
        not_found(s.target.delete(&key).await, "delete")?;
    }
    s.delete(&present)
        .await
        .during(format!("delete of {present}"))?;
    Ok(Verdict::Passed(None))
}

/// Ranges at the start, middle and end; ends past the object clamped; empty ranges; a start
/// past the end `InvalidData`; a reversed range an error.
pub(super) async fn ranged_reads(s: Arc<Scope>) -> CheckResult {
    const SEED: u64 = 51;
    const SIZE: u64 = 300_007;
    let key = s.key("object")?;
    put_small(
        &s,
        &key,
        &pattern_bytes(SEED, 0, SIZE as usize),
        PutMode::Create,
    )
    .await?;
    let cases = [
        (0, 10),
        (0, SIZE),
        (150_000, 150_100),
        (SIZE - 10, SIZE),
        (SIZE - 10, SIZE + 1000),
        (SIZE - 10, u64::MAX),
        (0, u64::MAX),
        (1000, 1000),
        (SIZE, SIZE),
        (SIZE, SIZE + 10),
    ];
    for (start, end) in cases {
        let got = read_range(&s, &key, start..end, SIZE + 1).await?;
        let want = pattern_bytes(SEED, start, (end.min(SIZE) - start) as usize);
        ensure!(
            got == want,
            "get_range {start}..{end} of a {SIZE}-byte object returned {} bytes; expected the {} stored there",
            got.len(),
            want.len()
        );
    }
    expect_error(
        s.target.get_range(&key, SIZE + 1..SIZE + 10).await,
        TargetErrorKind::InvalidData,
        format!(
            "get_range {}..{} of a {SIZE}-byte object",
            SIZE + 1,
            SIZE + 10
        ),
    )?;
    // Built at run time: a literal reversed range is a lint error.
    let reversed = std::ops::Range { start: 20, end: 10 };
    let reversed = s.target.get_range(&key, reversed).await;
    ensure!(
        reversed.is_err(),
        "get_range 20..10 (reversed) of {key} succeeded; it must be an error"
    );

    let empty = s.key("empty")?;
    put_small(&s, &empty, b"", PutMode::Create).await?;
    for range in [0..0, 0..10] {
        let got = read_range(&s, &empty, range.clone(), 16).await?;
        ensure!(
            got.is_empty(),
            "get_range {}..{} of an empty object returned {} bytes",
            range.start,
            range.end,
            got.len()
        );
    }
    expect_error(
        s.target.get_range(&empty, 1..2).await,
        TargetErrorKind::InvalidData,
        "get_range 1..2 of an empty object",
    )?;

    for key in [key, empty] {
        s.delete(&key).await.during(format!("delete of {key}"))?;
    }
    Ok(Verdict::Passed(None))
}

/// A read that returned all its bytes has let go of the object: deleting it right after (no
/// pause, no retry) succeeds, for a whole read, a ranged read and an empty object. A client
/// that closes its file handle only after the reader has ended, or in the background, fails
/// this on servers that refuse to delete an open file (SMB: "Device or resource busy").
pub(super) async fn delete_after_read(s: Arc<Scope>) -> CheckResult {
    const SEED: u64 = 73;
    const SIZE: u64 = 200_003;
    let cases: [(&str, u64, Option<std::ops::Range<u64>>); 4] = [
        ("whole", SIZE, None),
        ("range", SIZE, Some(1000..2000)),
        ("tail", SIZE, Some(SIZE - 10..SIZE + 10)),
        ("empty", 0, None),
    ];
    for (name, size, range) in cases {
        let key = s.key(name)?;
        put_small(
            &s,
            &key,
            &pattern_bytes(SEED, 0, size as usize),
            PutMode::Create,
        )
        .await?;
        let got = match &range {
            Some(range) => read_range(&s, &key, range.clone(), size + 1).await?,
            None => read_small(&s, &key, size + 1).await?,
        };
        let want = range.as_ref().map_or(size, |r| r.end.min(size) - r.start);
        ensure!(
            got.len() as u64 == want,
            "the read of {key} returned {} bytes; expected {want}",
            got.len()
        );
        s.delete(&key)
            .await
            .during(format!("delete of {key} right after it was read ({name})"))?;
        expect_absent(&s, &key, "after its delete").await?;
    }
    Ok(Verdict::Passed(None))
}

/// A deleted object is gone from `get`, `stat` and `list` (a second delete is `NotFound`);
/// objects whose keys extend it stay; the key can be created again.
pub(super) async fn delete(s: Arc<Scope>) -> CheckResult {
    let a = s.key("d/a")?;
    let ab = s.key("d/ab")?;
    let a_dash = s.key("d/a-b")?;
    for key in [&a, &ab, &a_dash] {
        put_small(&s, key, key.as_str().as_bytes(), PutMode::Create).await?;
    }
    s.delete(&a).await.during(format!("delete of {a}"))?;
    expect_error(
        s.target.get(&a).await,
        TargetErrorKind::NotFound,
        format!("get of the deleted {a}"),
    )?;
    expect_absent(&s, &a, "after its delete").await?;
    let want = vec![(ab.as_str(), None), (a_dash.as_str(), None)];
    expect_listing(&s, &s.prefix, want, &format!("after deleting {a}")).await?;
    for key in [&ab, &a_dash] {
        let bytes = read_small(&s, key, 1024).await?;
        ensure!(
            bytes == key.as_str().as_bytes(),
            "deleting {a} changed {key}"
        );
    }
    expect_error(
        s.target.delete(&a).await,
        TargetErrorKind::NotFound,
        format!("a second delete of {a}"),
    )?;
    put_small(&s, &a, b"again", PutMode::Create)
        .await
        .map_err(|e| format!("creating a deleted key again: {e}"))?;
    verify_object(&s, &a, &Digest::of_bytes(b"again")).await?;
    for key in [&a, &ab, &a_dash] {
        s.delete(key).await.during(format!("delete of {key}"))?;
    }
    let listed = list_keys(&s, &s.prefix).await?;
    ensure!(
        listed.is_empty(),
        "after deleting every object, list of {} still returns {} key(s)",
        s.prefix,
        listed.len()
    );
    Ok(Verdict::Passed(None))
}
