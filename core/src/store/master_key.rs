//! The Master Key: 32 random bytes, stored only wrapped under a key derived from the passphrase.

use rusqlite::Connection;
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

    /// Wraps the key under `passphrase` and writes it as the store's only Master Key.
    pub(crate) fn store(
        &self,
        conn: &Connection,
        store_id: &str,
        passphrase: &Passphrase,
        kdf: KdfParams,
        generation: u64,
    ) -> Result<(), StoreError> {
        let salt: [u8; 16] = crate::random::bytes();
        let nonce: [u8; 12] = crate::random::bytes();
        let kek = Cipher::new(&kdf.derive(passphrase, &salt)?);
        let wrapped = kek.seal(
            &nonce,
            &aad(store_id, &self.key_id, generation),
            self.raw.as_bytes(),
        );
        conn.execute(
            "INSERT OR REPLACE INTO master_key
               (id, key_id, generation, kdf_memory_kib, kdf_iterations, kdf_parallelism, salt, nonce, wrapped, created_at)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            rusqlite::params![
                self.key_id,
                generation,
                kdf.memory_kib,
                kdf.iterations,
                kdf.parallelism,
                &salt[..],
                &nonce[..],
                wrapped,
                crate::backup::now_rfc3339(),
            ],
        )?;
        Ok(())
    }

    /// Unwraps the stored Master Key with `passphrase`.
    pub(crate) fn unlock(
        conn: &Connection,
        store_id: &str,
        passphrase: &Passphrase,
    ) -> Result<Self, StoreError> {
        let (info, salt, nonce, wrapped) = conn.query_row(
            "SELECT key_id, generation, kdf_memory_kib, kdf_iterations, kdf_parallelism, created_at, salt, nonce, wrapped
             FROM master_key WHERE id = 1",
            [],
            |r| Ok((row_info(r)?, r.get::<_, Vec<u8>>(6)?, r.get::<_, Vec<u8>>(7)?, r.get::<_, Vec<u8>>(8)?)),
        )?;
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| StoreError::NotAStore {
            path: None,
            reason: "Master Key nonce has the wrong length".into(),
        })?;
        let kek = Cipher::new(&info.kdf.derive(passphrase, &salt)?);
        let raw = kek
            .open(
                &nonce,
                &aad(store_id, &info.key_id, info.generation),
                &wrapped,
            )
            .map_err(|_| StoreError::WrongPassphrase)?;
        let bytes: [u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::WrongPassphrase)?;
        let key = SecretKey::from_bytes(bytes);
        Ok(Self {
            cipher: Cipher::new(&key),
            key_id: info.key_id,
            raw: key,
        })
    }
}

pub(crate) fn info(conn: &Connection) -> Result<MasterKeyInfo, StoreError> {
    Ok(conn.query_row(
        "SELECT key_id, generation, kdf_memory_kib, kdf_iterations, kdf_parallelism, created_at
         FROM master_key WHERE id = 1",
        [],
        row_info,
    )?)
}

fn row_info(r: &rusqlite::Row<'_>) -> rusqlite::Result<MasterKeyInfo> {
    Ok(MasterKeyInfo {
        key_id: r.get(0)?,
        generation: r.get(1)?,
        kdf: KdfParams {
            memory_kib: r.get(2)?,
            iterations: r.get(3)?,
            parallelism: r.get(4)?,
        },
        created_at: r.get(5)?,
    })
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
