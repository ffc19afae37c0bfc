//! What the SMB tests share: the Samba servers `cargo xtask services up` started, and targets
//! on them, each in a fresh folder.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use sstore_conformance::services::{self, Services};
use sstore_target_smb::{ClientKind, Encryption, Signing, SmbConfig, SmbTarget};
use zeroize::Zeroizing;

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Signing, no encryption offered.
    Signed,
    /// SMB3 with encryption required.
    Encrypted,
}

pub const KEYS: &[&str] = &[
    "SSTORE_TEST_SMB_HOST",
    "SSTORE_TEST_SMB_PORT",
    "SSTORE_TEST_SMB_ENCRYPTED_PORT",
    "SSTORE_TEST_SMB_USER",
    "SSTORE_TEST_SMB_PASSWORD",
    "SSTORE_TEST_SMB_SHARE",
    "SSTORE_TEST_SMB_READONLY_SHARE",
    "SSTORE_TEST_SMB_PID_FILE",
    "SSTORE_TEST_SMB_DATA_DIR",
    "SSTORE_TEST_SMB_ENCRYPTED_DATA_DIR",
];

/// The servers, or `None` (the test is skipped, printing why) when they are not up.
pub fn servers() -> Option<Services> {
    services::require(KEYS)
}

pub fn port(s: &Services, variant: Variant) -> u16 {
    let key = match variant {
        Variant::Signed => "SSTORE_TEST_SMB_PORT",
        Variant::Encrypted => "SSTORE_TEST_SMB_ENCRYPTED_PORT",
    };
    s.get(key).parse().unwrap()
}

/// Where the share's files are on this machine (to look behind the target's back).
pub fn data_dir(s: &Services, variant: Variant) -> PathBuf {
    PathBuf::from(match variant {
        Variant::Signed => s.get("SSTORE_TEST_SMB_DATA_DIR"),
        Variant::Encrypted => s.get("SSTORE_TEST_SMB_ENCRYPTED_DATA_DIR"),
    })
}

/// The clients this build has: smb2 always, libsmbclient with the `libsmbclient` feature
/// (`cargo xtask ci` runs these tests both ways).
pub fn clients() -> Vec<ClientKind> {
    let mut clients = vec![ClientKind::Smb2];
    if cfg!(feature = "libsmbclient") {
        clients.push(ClientKind::Libsmbclient);
    }
    clients
}

/// Whether `client` can serve `variant` (smb2 cannot negotiate encryption).
pub fn serves(client: ClientKind, variant: Variant) -> bool {
    variant == Variant::Signed || client == ClientKind::Libsmbclient
}

/// A configuration for `folder` of the writable share, through this build's default client.
pub fn config(s: &Services, variant: Variant, folder: &str) -> SmbConfig {
    config_for(s, variant, ClientKind::default_for_build(), folder)
}

/// A configuration for `folder` of the writable share, through `client`.
pub fn config_for(s: &Services, variant: Variant, client: ClientKind, folder: &str) -> SmbConfig {
    SmbConfig {
        server: s.get("SSTORE_TEST_SMB_HOST").to_owned(),
        port: port(s, variant),
        share: s.get("SSTORE_TEST_SMB_SHARE").to_owned(),
        folder: folder
            .split('/')
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect(),
        user: s.get("SSTORE_TEST_SMB_USER").to_owned(),
        domain: "WORKGROUP".to_owned(),
        password: Zeroizing::new(s.get("SSTORE_TEST_SMB_PASSWORD").to_owned()),
        encryption: match variant {
            Variant::Signed => Encryption::IfOffered,
            Variant::Encrypted => Encryption::Required,
        },
        signing: Signing::Required,
        client,
        timeout: Duration::from_secs(20),
    }
}

/// A target for `folder` of the writable share, through `client`.
pub fn target_for(s: &Services, variant: Variant, client: ClientKind, folder: &str) -> SmbTarget {
    SmbTarget::new(config_for(s, variant, client, folder)).unwrap()
}
