//! The Master Key: 32 random bytes, stored only wrapped under a key derived from the passphrase.
//! Wrapping and unwrapping are the same for every home; a home only keeps the row.

use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::crypto::Cipher;
use crate::kdf::KdfParams;
use crate::secret::{Passphrase, SecretKey};

/// What identifies a Master Key; safe to print and record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterKeyInfo {
    /// Random identifier, unrelated to the key bytes.
    pub key_id: String,
    /// 1 for the first key, incremented on every `masterkey update`.
    pub generation: u64,
    pub kdf: KdfParams,
    pub created_at: String,
}

/// The stored form of the Master Key (the `master_key` row of either home): no secret in
/// clear, but kept out of Debug output all the same.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct MasterKeyRow {
    pub info: MasterKeyInfo,
    pub salt: Vec<u8>,
    pub nonce: Vec<u8>,
    pub wrapped: Vec<u8>,
}

impl std::fmt::Debug for MasterKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKeyRow")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

pub(crate) struct MasterKey {
    cipher: Cipher,
    key_id: String,
    /// Kept (zeroized on drop) so the key can be wrapped again under a new passphrase.
    raw: SecretKey,
}

impl MasterKey {
    pub(crate) fn generate() -> Self {
        let key = SecretKey::generate();
        Self {
            cipher: Cipher::new(&key),
            key_id: crate::random::hex_id::<16>(),
            raw: key,
        }
    }

    pub(crate) fn cipher(&self) -> &Cipher {
        &self.cipher
    }

    /// Wraps the key under `passphrase`: the row a home stores as the store's only Master Key.
    pub(crate) fn wrap(
        &self,
        store_id: &str,
        passphrase: &Passphrase,
        kdf: KdfParams,
        generation: u64,
    ) -> Result<MasterKeyRow, StoreError> {
        let salt: [u8; 16] = crate::random::bytes();
        let nonce: [u8; 12] = crate::random::bytes();
        let kek = Cipher::new(&kdf.derive(passphrase, &salt)?);
        let wrapped = kek.seal(
            &nonce,
            &aad(store_id, &self.key_id, generation),
            self.raw.as_bytes(),
        );
        Ok(MasterKeyRow {
            info: MasterKeyInfo {
                key_id: self.key_id.clone(),
                generation,
                kdf,
                created_at: crate::backup::now_rfc3339(),
            },
            salt: salt.to_vec(),
            nonce: nonce.to_vec(),
            wrapped,
        })
    }

    /// Unwraps the stored Master Key with `passphrase`.
    pub(crate) fn unwrap(
        row: &MasterKeyRow,
        store_id: &str,
        passphrase: &Passphrase,
    ) -> Result<Self, StoreError> {
        let info = &row.info;
        let nonce: [u8; 12] =
            row.nonce
                .as_slice()
                .try_into()
                .map_err(|_| StoreError::NotAStore {
                    path: None,
                    reason: "Master Key nonce has the wrong length".into(),
                })?;
        let kek = Cipher::new(&info.kdf.derive(passphrase, &row.salt)?);
        let raw = kek
            .open(
                &nonce,
                &aad(store_id, &info.key_id, info.generation),
                &row.wrapped,
            )
            .map_err(|_| StoreError::WrongPassphrase)?;
        let bytes: [u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::WrongPassphrase)?;
        let key = SecretKey::from_bytes(bytes);
        Ok(Self {
            cipher: Cipher::new(&key),
            key_id: info.key_id.clone(),
            raw: key,
        })
    }
}

/// Associated data of the wrapped key: binds it to its store, id and generation.
fn aad(store_id: &str, key_id: &str, generation: u64) -> Vec<u8> {
    let mut out = b"sstore master key v1\0".to_vec();
    for part in [
        store_id.as_bytes(),
        key_id.as_bytes(),
        &generation.to_be_bytes(),
    ] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}
