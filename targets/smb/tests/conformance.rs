//! The conformance kit, at full size, against both Samba servers: signing only (with the
//! default `if-offered` encryption) and encryption required (with `encryption = "required"`).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{Variant, config, servers, target, unique};
use sstore_conformance::{KitOptions, assert_conforms};
use sstore_target_smb::SmbTarget;

async fn conforms(variant: Variant) {
    let Some(s) = servers() else { return };
    let folder = unique(&format!("conformance-{variant:?}"));
    // Unreachable: the same server on a port nothing listens on.
    let mut closed = config(&s, variant, &folder);
    closed.port = 1;
    let options = KitOptions {
        unreachable: Some(Arc::new(SmbTarget::new(closed))),
        ..KitOptions::default()
    };
    let started = Instant::now();
    let report = assert_conforms(Arc::new(target(&s, variant, &folder)), &options).await;
    println!("{report}\n({variant:?} took {:.2?})", started.elapsed());
    assert!(report.passed());
    // Nothing but (possibly) empty folders is left on the share.
    let left: Vec<_> = walk(&common::data_dir(&s, variant).join(&folder));
    assert!(left.is_empty(), "files left behind: {left:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().unwrap().is_dir() {
            out.extend(walk(&entry.path()));
        } else {
            out.push(entry.path());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smb_target_conforms_on_the_signing_only_server() {
    conforms(Variant::Signed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smb_target_conforms_on_the_encryption_required_server() {
    conforms(Variant::Encrypted).await;
}
