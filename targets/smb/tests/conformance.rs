//! The conformance kit, at full size, through every client this build has: on the
//! signing-only server (the default `if-offered` encryption) and on the encryption-required
//! server (`encryption = "required"`), which only a client that encrypts can serve; the
//! pure-Rust client's refusal there is checked too.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{Variant, clients, config_for, data_dir, servers, serves, target_for};
use sstore_conformance::scenarios::{
    conditional_create_refuses_an_existing_key, failed_upload_leaves_nothing_visible,
};
use sstore_conformance::{KitOptions, assert_conforms, unique};
use sstore_target_api::{ObjectKey, PutMode, Target, TargetErrorKind, put_bytes};
use sstore_target_smb::{ClientKind, Encryption, SmbTarget};

async fn conforms(variant: Variant, client: ClientKind) {
    let Some(s) = servers() else { return };
    let folder = unique(&format!("conformance-{variant:?}-{client}"));
    // Unreachable: the same server on a port nothing listens on.
    let mut closed = config_for(&s, variant, client, &folder);
    closed.port = 1;
    let options = KitOptions {
        unreachable: Some(Arc::new(SmbTarget::new(closed).unwrap())),
        ..KitOptions::default()
    };
    let started = Instant::now();
    let target = Arc::new(target_for(&s, variant, client, &folder));
    let report = assert_conforms(target.clone(), &options).await;
    println!(
        "{report}\n({variant:?}, {client}: {:.2?})",
        started.elapsed()
    );
    assert!(report.passed());
    let session = target.connection().await.unwrap().unwrap();
    println!("{session}");
    match variant {
        Variant::Encrypted => assert!(session.contains(", encrypted"), "{session}"),
        Variant::Signed => assert!(session.contains("signed, not encrypted"), "{session}"),
    }
    // Nothing but (possibly) empty folders is left on the share.
    let left: Vec<_> = walk(&data_dir(&s, variant).join(&folder));
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
    for client in clients() {
        conforms(Variant::Signed, client).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smb_target_conforms_on_the_encryption_required_server() {
    for client in clients() {
        if serves(client, Variant::Encrypted) {
            conforms(Variant::Encrypted, client).await;
        }
    }
}

/// The pure-Rust client cannot negotiate encryption: the encryption-required server refuses
/// its session, and the target says so (naming the share and the feature to build with)
/// before anything is written, whatever `encryption` setting it was given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pure_rust_client_is_refused_by_the_encryption_required_server_and_says_what_to_build()
{
    let Some(s) = servers() else { return };
    let folder = unique("smb2-on-encrypted");
    for encryption in [Encryption::Required, Encryption::IfOffered] {
        let mut c = config_for(&s, Variant::Encrypted, ClientKind::Smb2, &folder);
        c.encryption = encryption;
        let target = SmbTarget::new(c).unwrap();
        let readiness = target.readiness().await.unwrap_err();
        let put = put_bytes(
            &target,
            &ObjectKey::new("x/probe").unwrap(),
            b"data",
            PutMode::Create,
        )
        .await
        .unwrap_err();
        for e in [readiness, put] {
            assert_eq!(e.kind, TargetErrorKind::Unsupported, "{encryption}: {e}");
            assert!(!e.is_temporary(), "{e}");
            assert!(e.message.contains(r"\\127.0.0.1\backups"), "{e}");
            assert!(e.message.contains("--features libsmbclient"), "{e}");
            assert!(e.message.contains("nothing was sent"), "{e}");
        }
    }
    assert!(!data_dir(&s, Variant::Encrypted).join(&folder).exists());
}

/// The kit's scenarios for conditional create (small and large) and a failed large upload,
/// through every client this build has, on the signing-only server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_create_and_a_failed_upload_through_every_client() {
    let Some(s) = servers() else { return };
    for client in clients() {
        let target = target_for(
            &s,
            Variant::Signed,
            client,
            &unique(&format!("scenarios-{client}")),
        );
        conditional_create_refuses_an_existing_key(&target, 12 * 1024 * 1024).await;
        failed_upload_leaves_nothing_visible(&target, 30 * 1024 * 1024, 20 * 1024 * 1024).await;
    }
}
