//! The manifest stored beside each backup file: what it holds and how to check it. No secrets.

use serde::{Deserialize, Serialize};

use crate::kdf::KdfParams;

pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub manifest_version: u32,
    pub backup_id: String,
    pub item: String,
    pub method: String,
    pub store_id: String,
    pub master_key_id: String,
    pub master_key_generation: u64,
    pub applications: u64,
    pub credential_sets: u64,
    /// The backup file's name inside the folder.
    pub backup_file: String,
    /// Size and SHA-256 of the encrypted backup file.
    pub backup_size: u64,
    pub backup_sha256: String,
    /// Size and SHA-256 of the store snapshot before compression and encryption.
    pub plaintext_size: u64,
    pub plaintext_sha256: String,
    pub compression: String,
    pub format_version: u16,
    pub chunk_size: u32,
    /// The passphrase slot's Argon2id parameters (absent when the backup has no passphrase
    /// slot: recipients only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kdf: Option<KdfParams>,
    /// The key slots' public descriptions, in header order: `passphrase`, recipient strings
    /// (`sstore1…`). Absent for format version 1 (a passphrase only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_slots: Vec<String>,
    pub tool_version: String,
    pub started: String,
    pub finished: String,
    pub requested_by: String,
}
