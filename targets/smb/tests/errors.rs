//! Refusals against the real Samba servers: each clear (naming the server and the share),
//! permanent (the engine does not retry it) and fast.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Variant, clients, config_for, data_dir, servers, serves};
use sstore_conformance::unique;
use sstore_target_api::{
    ObjectKey, PutMode, RetryStatus, Target, TargetError, TargetErrorKind, put_bytes,
};
use sstore_target_smb::{ClientKind, Encryption, SmbTarget};
use zeroize::Zeroizing;

/// A refusal must come quickly: no retries inside, no waiting for a timeout.
const FAST: Duration = Duration::from_secs(5);

fn key(s: &str) -> ObjectKey {
    ObjectKey::new(s).unwrap()
}

/// Runs a readiness check and a put, both of which must fail the same way, fast.
async fn refused(target: &SmbTarget) -> (TargetError, TargetError) {
    let started = Instant::now();
    let readiness = target.readiness().await.unwrap_err();
    let put = put_bytes(target, &key("x/probe"), b"data", PutMode::Create)
        .await
        .unwrap_err();
    assert!(started.elapsed() < FAST, "took {:?}", started.elapsed());
    for e in [&readiness, &put] {
        assert_eq!(e.retry, RetryStatus::Permanent, "{e}");
        assert!(e.to_string().contains("127.0.0.1"), "{e}");
    }
    (readiness, put)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_permanent_logon_error() {
    let Some(s) = servers() else { return };
    for client in clients() {
        let mut c = config_for(&s, Variant::Signed, client, &unique("wrong-password"));
        c.password = Zeroizing::new("not-the-password".into());
        let (readiness, put) = refused(&SmbTarget::new(c).unwrap()).await;
        for e in [readiness, put] {
            assert_eq!(e.kind, TargetErrorKind::Unauthenticated, "{client}: {e}");
            assert!(e.message.contains(r"\\127.0.0.1\backups"), "{e}");
            assert!(e.message.contains("wrong password"), "{client}: {e}");
            assert!(!format!("{e} {e:?}").contains("not-the-password"), "{e}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_share_is_a_permanent_configuration_error() {
    let Some(s) = servers() else { return };
    for client in clients() {
        let mut c = config_for(&s, Variant::Signed, client, "");
        c.share = "no-such-share".into();
        let (readiness, put) = refused(&SmbTarget::new(c).unwrap()).await;
        for e in [readiness, put] {
            assert_eq!(e.kind, TargetErrorKind::InvalidConfig, "{client}: {e}");
            assert!(e.message.contains("no share named 'no-such-share'"), "{e}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_share_is_a_permanent_permission_error() {
    let Some(s) = servers() else { return };
    for client in clients() {
        for variant in [Variant::Signed, Variant::Encrypted] {
            if !serves(client, variant) {
                continue;
            }
            let mut c = config_for(&s, variant, client, "sstore");
            c.share = s.get("SSTORE_TEST_SMB_READONLY_SHARE").into();
            let target = SmbTarget::new(c).unwrap();
            let (readiness, put) = refused(&target).await;
            for e in [readiness, put] {
                assert_eq!(e.kind, TargetErrorKind::PermissionDenied, "{client}: {e}");
                assert!(e.message.contains(r"\\127.0.0.1\readonly"), "{e}");
                assert!(e.message.contains("read-only"), "{e}");
                assert!(e.message.contains("sstoretest"), "{e}");
            }
            // Reading works: the logon was fine.
            assert_eq!(target.list("").await.unwrap(), Vec::new());
        }
    }
}

/// `encryption = "required"` against a server that offers no encryption is refused before
/// anything is written, by every client (libsmbclient alone would go on unencrypted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_encryption_is_refused_by_a_server_that_does_not_offer_it() {
    let Some(s) = servers() else { return };
    for client in clients() {
        let folder = unique("required-encryption");
        let mut c = config_for(&s, Variant::Signed, client, &folder);
        c.encryption = Encryption::Required;
        let (readiness, put) = refused(&SmbTarget::new(c).unwrap()).await;
        for e in [readiness, put] {
            assert_eq!(e.kind, TargetErrorKind::Unsupported, "{client}: {e}");
            assert!(e.message.contains("encryption = \"required\""), "{e}");
            assert!(e.message.contains(r"\\127.0.0.1\backups"), "{e}");
            assert!(e.message.contains("nothing was sent"), "{e}");
            if client == ClientKind::Libsmbclient {
                assert!(e.message.contains("does not offer SMB3 encryption"), "{e}");
            }
        }
        assert!(!data_dir(&s, Variant::Signed).join(&folder).exists());
    }
}

/// With a client that encrypts, `required` works against the encrypting server, and `off`
/// only means "do not ask": a server that requires encryption still gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_encrypts_serves_the_encryption_required_server() {
    let Some(s) = servers() else { return };
    for client in clients() {
        if !serves(client, Variant::Encrypted) {
            continue;
        }
        let folder = unique("encrypting");
        let target = SmbTarget::new(config_for(&s, Variant::Encrypted, client, &folder)).unwrap();
        assert!(target.capabilities().conditional_create);
        let readiness = target.readiness().await.unwrap();
        assert!(
            readiness
                .detail
                .as_deref()
                .unwrap_or("")
                .contains(", encrypted"),
            "{readiness:?}"
        );
        let mut c = config_for(&s, Variant::Encrypted, client, &folder);
        c.encryption = Encryption::Off;
        SmbTarget::new(c).unwrap().readiness().await.unwrap();
    }
}

/// Readiness says how the session is protected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_says_whether_the_session_is_signed_or_encrypted() {
    let Some(s) = servers() else { return };
    for client in clients() {
        let target =
            SmbTarget::new(config_for(&s, Variant::Signed, client, &unique("session"))).unwrap();
        let detail = target.readiness().await.unwrap().detail.unwrap();
        assert!(detail.contains(r"\\127.0.0.1\backups"), "{detail}");
        assert!(
            detail.contains("signed, not encrypted"),
            "{client}: {detail}"
        );
        assert!(detail.contains(&format!("client {client}")), "{detail}");
        assert_eq!(
            target.connection().await.unwrap().as_deref(),
            Some(detail.as_str())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_a_temporary_error() {
    let Some(s) = servers() else { return };
    for client in clients() {
        let mut c = config_for(&s, Variant::Signed, client, "x");
        c.port = 1;
        let started = Instant::now();
        let e = SmbTarget::new(c).unwrap().readiness().await.unwrap_err();
        assert!(started.elapsed() < FAST);
        assert_eq!(e.retry, RetryStatus::Temporary, "{client}: {e}");
        assert!(e.message.contains(r"\\127.0.0.1\backups"), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_are_created_as_needed_and_names_reach_the_share_as_given() {
    let Some(s) = servers() else { return };
    for client in clients() {
        let folder = unique("folders");
        let target = SmbTarget::new(config_for(
            &s,
            Variant::Signed,
            client,
            &format!("{folder}/deeper"),
        ))
        .unwrap();
        put_bytes(&target, &key("a/b/100% #1.txt"), b"x", PutMode::Create)
            .await
            .unwrap();
        let on_disk = data_dir(&s, Variant::Signed)
            .join(&folder)
            .join("deeper/a/b/100% #1.txt");
        assert_eq!(std::fs::read(&on_disk).unwrap(), b"x", "{client}");
    }
}
