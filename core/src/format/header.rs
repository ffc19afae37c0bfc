//! The fixed-size stream header: layout, parsing, and the key material bound to it.

use hkdf::Hkdf;
use sha2::{Digest, Sha256};

use super::{FORMAT_VERSION, FormatError, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};
use crate::crypto::{Cipher, NONCE_LEN, TAG_LEN};
use crate::kdf::KdfParams;
use crate::secret::{Passphrase, SecretKey};

/// The first 8 bytes of every sstore backup.
pub const MAGIC: [u8; 8] = *b"SSTOREBK";
/// Total header length in bytes (version 1).
pub const HEADER_LEN: usize = 137;

const KDF_ARGON2ID_13: u8 = 1;
const FLAG_ZSTD: u16 = 1;
/// Offset of the wrap nonce.
const WRAP_NONCE_AT: usize = 77;
/// Offset of the wrapped data key; everything before it (wrap nonce included) is its
/// associated data.
const WRAPPED_KEY_AT: usize = WRAP_NONCE_AT + NONCE_LEN;
const PAYLOAD_INFO: &[u8] = b"sstore v1 payload key";

/// How the payload was transformed before encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Zstd,
}

/// The parsed header fields (no secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: u16,
    pub compression: Compression,
    pub kdf: KdfParams,
    pub kdf_salt: [u8; 16],
    pub stream_salt: [u8; 16],
    pub chunk_size: u32,
    /// The backup this stream belongs to (also recorded in the manifest).
    pub backup_id: [u8; 16],
    pub(crate) wrap_nonce: [u8; NONCE_LEN],
    pub(crate) wrapped_key: [u8; 32 + TAG_LEN],
}

/// Keys derived for one stream.
pub(crate) struct StreamKeys {
    pub(crate) payload: Cipher,
    /// SHA-256 of the whole header: the associated data of every chunk.
    pub(crate) header_digest: [u8; 32],
}

impl Header {
    /// A new header with fresh salts and a fresh data key wrapped under `passphrase`.
    pub(crate) fn seal(
        passphrase: &Passphrase,
        kdf: KdfParams,
        compression: Compression,
        chunk_size: u32,
        backup_id: [u8; 16],
    ) -> Result<(Self, StreamKeys), FormatError> {
        kdf.check_writable()?;
        check_chunk_size(chunk_size)?;
        let data_key = SecretKey::generate();
        let mut header = Header {
            version: FORMAT_VERSION,
            compression,
            kdf,
            kdf_salt: crate::random::bytes(),
            stream_salt: crate::random::bytes(),
            chunk_size,
            backup_id,
            wrap_nonce: crate::random::bytes(),
            wrapped_key: [0; 32 + TAG_LEN],
        };
        let kek = Cipher::new(&kdf.derive(passphrase, &header.kdf_salt)?);
        let prefix = header.encode();
        let sealed = kek.seal(
            &header.wrap_nonce,
            &prefix[..WRAPPED_KEY_AT],
            data_key.as_bytes(),
        );
        header.wrapped_key.copy_from_slice(&sealed);
        let keys = header.stream_keys(&data_key);
        Ok((header, keys))
    }

    /// Unwraps the data key with `passphrase` and derives the stream keys.
    pub(crate) fn open(&self, passphrase: &Passphrase) -> Result<StreamKeys, FormatError> {
        let kek = Cipher::new(&self.kdf.derive(passphrase, &self.kdf_salt)?);
        let bytes = self.encode();
        let plain = kek
            .open(
                &self.wrap_nonce,
                &bytes[..WRAPPED_KEY_AT],
                &self.wrapped_key,
            )
            .map_err(|_| FormatError::WrongPassphrase)?;
        let key: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| FormatError::WrongPassphrase)?;
        Ok(self.stream_keys(&SecretKey::from_bytes(key)))
    }

    fn stream_keys(&self, data_key: &SecretKey) -> StreamKeys {
        let hk = Hkdf::<Sha256>::new(Some(&self.stream_salt), data_key.as_bytes());
        let mut okm = zeroize::Zeroizing::new([0u8; 32]);
        if hk.expand(PAYLOAD_INFO, okm.as_mut()).is_err() {
            // 32 bytes is always a valid HKDF-SHA-256 output length.
            unreachable!("HKDF output length");
        }
        StreamKeys {
            payload: Cipher::new(&SecretKey::from_bytes(*okm)),
            header_digest: Sha256::digest(self.encode()).into(),
        }
    }

    /// The header's exact on-disk bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let mut w = Cursor {
            buf: &mut out,
            at: 0,
        };
        w.put(&MAGIC);
        w.put(&self.version.to_be_bytes());
        let flags = match self.compression {
            Compression::None => 0,
            Compression::Zstd => FLAG_ZSTD,
        };
        w.put(&flags.to_be_bytes());
        w.put(&[KDF_ARGON2ID_13]);
        w.put(&self.kdf.memory_kib.to_be_bytes());
        w.put(&self.kdf.iterations.to_be_bytes());
        w.put(&self.kdf.parallelism.to_be_bytes());
        w.put(&self.kdf_salt);
        w.put(&self.stream_salt);
        w.put(&self.chunk_size.to_be_bytes());
        w.put(&self.backup_id);
        debug_assert_eq!(w.at, WRAP_NONCE_AT);
        w.put(&self.wrap_nonce);
        w.put(&self.wrapped_key);
        debug_assert_eq!(w.at, HEADER_LEN);
        out
    }

    /// Parses and sanity-checks header bytes. Authenticity is checked later, by [`Header::open`].
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
            return Err(FormatError::NotSstoreBackup);
        }
        let mut r = Reader { buf: bytes, at: 0 };
        r.take::<8>()?;
        let version = u16::from_be_bytes(r.take()?);
        if version != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let compression = match u16::from_be_bytes(r.take()?) {
            0 => Compression::None,
            FLAG_ZSTD => Compression::Zstd,
            other => {
                return Err(FormatError::InvalidHeader(format!(
                    "unknown flags {other:#06x}"
                )));
            }
        };
        let [kdf_id] = r.take::<1>()?;
        if kdf_id != KDF_ARGON2ID_13 {
            return Err(FormatError::InvalidHeader(format!(
                "unknown key derivation function {kdf_id}"
            )));
        }
        let kdf = KdfParams {
            memory_kib: u32::from_be_bytes(r.take()?),
            iterations: u32::from_be_bytes(r.take()?),
            parallelism: u32::from_be_bytes(r.take()?),
        };
        kdf.check_readable()?;
        let header = Header {
            version,
            compression,
            kdf,
            kdf_salt: r.take()?,
            stream_salt: r.take()?,
            chunk_size: u32::from_be_bytes(r.take()?),
            backup_id: r.take()?,
            wrap_nonce: r.take()?,
            wrapped_key: r.take()?,
        };
        check_chunk_size(header.chunk_size)?;
        Ok(header)
    }
}

fn check_chunk_size(size: u32) -> Result<(), FormatError> {
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&size) {
        return Err(FormatError::InvalidHeader(format!(
            "chunk size {size} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}"
        )));
    }
    Ok(())
}

/// The nonce of chunk `index`: an 11-byte big-endian counter (3 zero bytes, then `index` as
/// 8 bytes), then the last-chunk flag.
pub(crate) fn chunk_nonce(index: u64, last: bool) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[3..11].copy_from_slice(&index.to_be_bytes());
    nonce[11] = u8::from(last);
    nonce
}

struct Cursor<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Cursor<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let end = self.at + N;
        let slice = self.buf.get(self.at..end).ok_or(FormatError::Truncated {
            offset: self.buf.len() as u64,
        })?;
        self.at = end;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }
}
