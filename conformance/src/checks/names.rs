//! The key-name check: what `ObjectKey` refuses, and unusual but valid names.

use std::sync::Arc;

use sstore_target_api::{ObjectKey, PutMode};

use super::{
    CheckResult, During, Scope, Verdict, bounded, expect_absent, expect_listing, first_error,
    put_small, verify_object,
};
use crate::data::Digest;

/// Keys that would escape the target's root are refused by [`ObjectKey`]; unusual but valid
/// names round-trip, list as themselves and sort by bytes; a traversal prefix lists nothing.
pub(super) async fn key_names(s: Arc<Scope>) -> CheckResult {
    for bad in [
        "",
        ".",
        "..",
        "../x",
        "/abs",
        "/",
        "a//b",
        "a/",
        "./a",
        "a/./b",
        "a/../../etc/passwd",
        "a\\b",
        "a\0b",
        "a\nb",
    ] {
        ensure!(
            ObjectKey::new(bad).is_err(),
            "ObjectKey::new accepts the invalid key {bad:?}"
        );
    }

    // Characters that URL encodings, shells and file systems trip over; none is invalid on
    // the common file systems (no `?`, `*`, `:`, `<`, `>`, `|`, `"`, trailing dot or space).
    let long = "x".repeat(s.options.long_name_bytes.max(1));
    let names = [
        "with space",
        "ünïcødé-日本語-😀",
        "a=b+c",
        "100%",
        "%41",
        "A",
        "%2F",
        "plus+and space",
        "tilde~",
        "hash#tag",
        "semi;colon,comma",
        "at@dollar$amp&",
        "paren(1)[2]{3}",
        "quote'",
        "-leading-dash",
        "UPPER",
        "lower",
        "sp ace/ünï/x=y",
        long.as_str(),
    ];
    let mut keys = Vec::new();
    for name in names {
        let key = s.key(&format!("names/{name}"))?;
        put_small(&s, &key, name.as_bytes(), PutMode::Create).await?;
        keys.push(key);
    }
    let names_prefix = format!("{}names/", s.prefix);
    for key in &keys {
        let name = key.as_str().strip_prefix(names_prefix.as_str());
        let name = name.unwrap_or_default();
        verify_object(&s, key, &Digest::of_bytes(name.as_bytes())).await?;
    }
    let want = names
        .iter()
        .zip(&keys)
        .map(|(name, key)| (key.as_str(), Some(name.len() as u64)))
        .collect();
    expect_listing(&s, &names_prefix, want, "after putting unusual names").await?;

    // Dot names: some targets hide them from listings, so only get, stat and delete.
    for name in [
        "dots/.hidden",
        "dots/.dot-folder/object",
        "dots/folder/.hidden",
    ] {
        let key = s.key(name)?;
        put_small(&s, &key, name.as_bytes(), PutMode::Create).await?;
        verify_object(&s, &key, &Digest::of_bytes(name.as_bytes())).await?;
        s.delete(&key).await.during(format!("delete of {key}"))?;
        expect_absent(&s, &key, "after its delete").await?;
    }

    for prefix in [
        "../".to_owned(),
        "/".to_owned(),
        format!("{}../", s.prefix),
        format!("{}names/../", s.prefix),
    ] {
        // An error is fine; a listing must be empty (no valid key starts with these).
        if let Ok(listed) = s.target.list(&prefix).await {
            ensure!(
                listed.is_empty(),
                "list of the traversal prefix {prefix:?} returns {} key(s), such as {}",
                listed.len(),
                listed.first().map(|m| m.key.as_str()).unwrap_or_default()
            );
        }
    }

    let errors = bounded(keys, s.options.concurrency, false, |key| {
        let s = s.clone();
        async move { s.delete(&key).await.during(format!("delete of {key}")) }
    })
    .await;
    first_error(errors, "deletes failed")?;
    Ok(Verdict::Passed(None))
}
