//! AES-256-GCM with detached tags: the one place the AEAD crate is called.

use aes_gcm::{AeadInOut, Aes256Gcm, KeyInit, Nonce, Tag};
use zeroize::Zeroizing;

use crate::secret::SecretKey;

pub(crate) const NONCE_LEN: usize = 12;
pub(crate) const TAG_LEN: usize = 16;

/// Authentication failed: wrong key, or the ciphertext, nonce or associated data were altered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AuthFailed;

/// An AES-256-GCM key schedule (wiped on drop through the `zeroize` feature of `aes`/`ghash`).
pub(crate) struct Cipher(Aes256Gcm);

impl Cipher {
    pub(crate) fn new(key: &SecretKey) -> Self {
        Self(Aes256Gcm::new(&(*key.as_bytes()).into()))
    }

    /// Encrypts `buf` in place and returns the tag.
    pub(crate) fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> [u8; TAG_LEN] {
        let nonce = Nonce::from(*nonce);
        match self.0.encrypt_inout_detached(&nonce, aad, buf.into()) {
            Ok(tag) => tag.into(),
            // Only reachable for messages over 64 GiB, which no caller produces.
            Err(_) => panic!("AES-GCM refused a message within its size limit"),
        }
    }

    /// Decrypts `buf` in place after checking `tag`.
    pub(crate) fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), AuthFailed> {
        let nonce = Nonce::from(*nonce);
        let tag = Tag::from(*tag);
        self.0
            .decrypt_inout_detached(&nonce, aad, buf.into(), &tag)
            .map_err(|_| AuthFailed)
    }

    /// Encrypts `plaintext` and returns `ciphertext || tag`.
    pub(crate) fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plaintext.len() + TAG_LEN);
        out.extend_from_slice(plaintext);
        let tag = self.seal_in_place(nonce, aad, &mut out);
        out.extend_from_slice(&tag);
        out
    }

    /// Opens `ciphertext || tag`; the plaintext is wiped when dropped.
    pub(crate) fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, AuthFailed> {
        let split = sealed.len().checked_sub(TAG_LEN).ok_or(AuthFailed)?;
        let (ciphertext, tag) = sealed.split_at(split);
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| AuthFailed)?;
        let mut out = Zeroizing::new(ciphertext.to_vec());
        self.open_in_place(nonce, aad, &mut out, &tag)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let cipher = Cipher::new(&SecretKey::from_bytes([3; 32]));
        let sealed = cipher.seal(&[1; 12], b"aad", b"hello");
        assert_eq!(
            &cipher.open(&[1; 12], b"aad", &sealed).unwrap()[..],
            b"hello"
        );
        assert_eq!(cipher.open(&[1; 12], b"other", &sealed), Err(AuthFailed));
        assert_eq!(cipher.open(&[2; 12], b"aad", &sealed), Err(AuthFailed));
        let other = Cipher::new(&SecretKey::from_bytes([4; 32]));
        assert_eq!(other.open(&[1; 12], b"aad", &sealed), Err(AuthFailed));
        assert_eq!(
            cipher.open(&[1; 12], b"aad", &sealed[..10]),
            Err(AuthFailed)
        );
    }
}
