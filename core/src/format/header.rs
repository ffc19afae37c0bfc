//! The stream header: layout of versions 1 and 2, parsing with every bound checked before
//! anything is allocated or derived, and the encoding that the chunks' associated data hashes.

use std::io::{self, Read};

use super::slots::Slot;
use super::{FORMAT_VERSION, FormatError, MAX_CHUNK_SIZE, MAX_SLOTS, MIN_CHUNK_SIZE};
use crate::crypto::{NONCE_LEN, TAG_LEN};
use crate::kdf::KdfParams;
use crate::recipient::Recipient;

/// The first 8 bytes of every sstore backup.
pub const MAGIC: [u8; 8] = *b"SSTOREBK";
/// Length of a version-1 header (the only length version 1 has).
pub const HEADER_LEN_V1: usize = 137;
/// Length of the version-2 header this build writes for a backup with exactly one passphrase
/// slot and no recipient (what `sstore backup` writes with a passphrase alone): 160 bytes.
/// Headers with other slots have other lengths: use [`Header::encoded_len`].
pub const HEADER_LEN: usize = FIXED_LEN + SLOT_PREFIX_LEN + PASSPHRASE_BODY_LEN + MAC_LEN;
/// The longest header a reader accepts (version 2 with [`MAX_SLOTS`] recipient slots).
pub const MAX_HEADER_LEN: usize =
    FIXED_LEN + MAX_SLOTS * (SLOT_PREFIX_LEN + X25519_BODY_LEN) + MAC_LEN;

const FLAG_ZSTD: u16 = 1;
/// Version 1: KDF id of Argon2id version 0x13.
const KDF_ARGON2ID_13: u8 = 1;
/// Version 1: offset of the wrap nonce; everything before the wrapped key (the nonce included)
/// is the wrap's associated data.
const V1_WRAPPED_KEY_AT: usize = 77 + NONCE_LEN;

/// Version 2: the header bytes every key slot's wrap binds (magic to backup id).
pub(crate) const BOUND_LEN: usize = 48;
/// Version 2: the fixed part, the bound fields and the slot count.
const FIXED_LEN: usize = BOUND_LEN + 1;
/// Slot type (1 byte) and body length (2 bytes).
pub(crate) const SLOT_PREFIX_LEN: usize = 3;
pub(crate) const SLOT_PASSPHRASE: u8 = 1;
pub(crate) const SLOT_X25519: u8 = 2;
/// Argon2id m, t, p (3 × 4), salt (16), wrapped data key (48).
pub(crate) const PASSPHRASE_BODY_LEN: usize = 12 + 16 + WRAPPED_LEN;
/// Recipient public key (32), ephemeral public key (32), wrapped data key (48).
pub(crate) const X25519_BODY_LEN: usize = 32 + 32 + WRAPPED_LEN;
/// A wrapped 32-byte data key: ciphertext and tag.
pub(crate) const WRAPPED_LEN: usize = 32 + TAG_LEN;
/// The header MAC (HMAC-SHA-256) that ends a version-2 header.
pub(crate) const MAC_LEN: usize = 32;

/// Stands in for the KDF parameters of a header without a passphrase slot in [`Header::kdf`].
pub(crate) const NO_KDF: KdfParams = KdfParams {
    memory_kib: 0,
    iterations: 0,
    parallelism: 0,
};

/// How the payload was transformed before encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Zstd,
}

/// The parsed header fields (no secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// 1 or 2.
    pub version: u16,
    pub compression: Compression,
    /// The passphrase slot's Argon2id parameters, kept as a plain field so existing callers
    /// compile. A header without a passphrase slot has all three parameters 0 here; new code
    /// should use [`Header::passphrase_kdf`].
    pub kdf: KdfParams,
    pub stream_salt: [u8; 16],
    pub chunk_size: u32,
    /// The backup this stream belongs to (also recorded in the manifest).
    pub backup_id: [u8; 16],
    /// The key slots in header order (version 1: its one passphrase "slot").
    pub(crate) slots: Vec<Slot>,
    /// Version 2: the header MAC. Version 1 has none (zero here, not encoded).
    pub(crate) mac: [u8; MAC_LEN],
}

/// A public description of one key slot, for the manifest and the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotDescription {
    /// Opens with the backup passphrase (Argon2id with these parameters).
    Passphrase { kdf: KdfParams },
    /// Opens with the identity of this recipient.
    X25519 { recipient: Recipient },
}

impl std::fmt::Display for SlotDescription {
    /// `passphrase`, or the recipient's `sstore1…` text.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SlotDescription::Passphrase { .. } => f.write_str("passphrase"),
            SlotDescription::X25519 { recipient } => write!(f, "{recipient}"),
        }
    }
}

impl Header {
    /// The key slots, in header order: what the manifest and history may record.
    pub fn slots(&self) -> Vec<SlotDescription> {
        self.slots
            .iter()
            .map(|slot| match slot {
                Slot::Passphrase { kdf, .. } => SlotDescription::Passphrase { kdf: *kdf },
                Slot::X25519 { recipient, .. } => SlotDescription::X25519 {
                    recipient: *recipient,
                },
            })
            .collect()
    }

    /// The passphrase slot's Argon2id parameters, if the backup has a passphrase slot.
    pub fn passphrase_kdf(&self) -> Option<KdfParams> {
        self.slots.iter().find_map(|slot| match slot {
            Slot::Passphrase { kdf, .. } => Some(*kdf),
            Slot::X25519 { .. } => None,
        })
    }

    /// The recipients the backup is written to, in header order.
    pub fn recipients(&self) -> Vec<Recipient> {
        self.slots
            .iter()
            .filter_map(|slot| match slot {
                Slot::X25519 { recipient, .. } => Some(*recipient),
                Slot::Passphrase { .. } => None,
            })
            .collect()
    }

    /// What opens this backup, for messages: "a passphrase", "2 recipients", "a passphrase,
    /// 1 recipient" (public facts only).
    pub fn opens_with(&self) -> String {
        let mut ways = Vec::new();
        if self.passphrase_kdf().is_some() {
            ways.push("a passphrase".to_owned());
        }
        match self.recipients().len() {
            0 => {}
            1 => ways.push("1 recipient".to_owned()),
            n => ways.push(format!("{n} recipients")),
        }
        ways.join(", ")
    }

    /// Length of [`Header::encode`]'s output: where the first chunk starts.
    pub fn encoded_len(&self) -> usize {
        match self.version {
            1 => HEADER_LEN_V1,
            _ => {
                FIXED_LEN
                    + self
                        .slots
                        .iter()
                        .map(|s| SLOT_PREFIX_LEN + s.body_len())
                        .sum::<usize>()
                    + MAC_LEN
            }
        }
    }

    /// The header's exact on-disk bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        if self.version == 1 {
            self.encode_v1(&mut out);
        } else {
            self.encode_v2_unauthenticated(&mut out);
            out.extend_from_slice(&self.mac);
        }
        out
    }

    /// Version 2: the bytes before the MAC (what the MAC authenticates).
    pub(crate) fn encode_v2_unauthenticated(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.bound_fields());
        // The slot count is checked when the header is built or parsed (1..=MAX_SLOTS).
        out.push(u8::try_from(self.slots.len()).unwrap_or(u8::MAX));
        for slot in &self.slots {
            slot.encode(out);
        }
    }

    /// Version 2: magic, version, flags, chunk size, stream salt, backup id (48 bytes): the
    /// header fields that every key slot's wrap binds.
    pub(crate) fn bound_fields(&self) -> [u8; BOUND_LEN] {
        let mut out = [0u8; BOUND_LEN];
        out[..8].copy_from_slice(&MAGIC);
        out[8..10].copy_from_slice(&self.version.to_be_bytes());
        out[10..12].copy_from_slice(&self.flags().to_be_bytes());
        out[12..16].copy_from_slice(&self.chunk_size.to_be_bytes());
        out[16..32].copy_from_slice(&self.stream_salt);
        out[32..48].copy_from_slice(&self.backup_id);
        out
    }

    fn flags(&self) -> u16 {
        match self.compression {
            Compression::None => 0,
            Compression::Zstd => FLAG_ZSTD,
        }
    }

    fn encode_v1(&self, out: &mut Vec<u8>) {
        let (kdf, salt, nonce, wrapped) = match self.slots.first() {
            Some(Slot::Passphrase {
                kdf,
                salt,
                nonce,
                wrapped,
            }) => (*kdf, *salt, *nonce, *wrapped),
            // A version-1 header is only ever built by parsing one, with its passphrase slot.
            _ => (NO_KDF, [0; 16], [0; NONCE_LEN], [0; WRAPPED_LEN]),
        };
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.flags().to_be_bytes());
        out.push(KDF_ARGON2ID_13);
        out.extend_from_slice(&kdf.memory_kib.to_be_bytes());
        out.extend_from_slice(&kdf.iterations.to_be_bytes());
        out.extend_from_slice(&kdf.parallelism.to_be_bytes());
        out.extend_from_slice(&salt);
        out.extend_from_slice(&self.stream_salt);
        out.extend_from_slice(&self.chunk_size.to_be_bytes());
        out.extend_from_slice(&self.backup_id);
        debug_assert_eq!(out.len(), V1_WRAPPED_KEY_AT - NONCE_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&wrapped);
        debug_assert_eq!(out.len(), HEADER_LEN_V1);
    }

    /// Version 1: the wrap's associated data, header bytes 0..89.
    pub(crate) fn v1_wrap_aad(&self) -> Vec<u8> {
        let mut bytes = self.encode();
        bytes.truncate(V1_WRAPPED_KEY_AT);
        bytes
    }

    /// Parses and sanity-checks header bytes. Authenticity is checked when the header is opened
    /// with a key.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut input = bytes;
        Self::read_from(&mut input)
    }

    /// Reads exactly one header from `reader` (at most [`MAX_HEADER_LEN`] bytes) and checks
    /// every field that bounds work or memory (version, flags, chunk size, slot count, slot types
    /// and lengths, KDF parameters, duplicate slots) before anything is derived.
    pub fn read_from(reader: &mut impl Read) -> Result<Self, FormatError> {
        let mut magic = [0u8; 8];
        let (got, result) = read_up_to(reader, &mut magic);
        // A file that does not start like a backup is "not a backup", whatever else happened.
        if magic[..got] != MAGIC[..got] {
            return Err(FormatError::NotSstoreBackup);
        }
        result.map_err(FormatError::from_io)?;
        if got < MAGIC.len() {
            return Err(FormatError::NotSstoreBackup);
        }
        let mut input = Input {
            inner: reader,
            at: MAGIC.len() as u64,
        };
        let version = u16::from_be_bytes(input.take()?);
        match version {
            1 => parse_v1(&mut input),
            2 => parse_v2(&mut input),
            found => Err(FormatError::UnsupportedVersion {
                found,
                supported: FORMAT_VERSION,
            }),
        }
    }
}

fn parse_flags(flags: u16) -> Result<Compression, FormatError> {
    match flags {
        0 => Ok(Compression::None),
        FLAG_ZSTD => Ok(Compression::Zstd),
        other => Err(FormatError::InvalidHeader(format!(
            "unknown flags {other:#06x}"
        ))),
    }
}

fn parse_kdf(input: &mut Input<'_, impl Read>) -> Result<KdfParams, FormatError> {
    let kdf = KdfParams {
        memory_kib: u32::from_be_bytes(input.take()?),
        iterations: u32::from_be_bytes(input.take()?),
        parallelism: u32::from_be_bytes(input.take()?),
    };
    kdf.check_readable()?;
    Ok(kdf)
}

fn parse_v1(input: &mut Input<'_, impl Read>) -> Result<Header, FormatError> {
    let compression = parse_flags(u16::from_be_bytes(input.take()?))?;
    let [kdf_id] = input.take::<1>()?;
    if kdf_id != KDF_ARGON2ID_13 {
        return Err(FormatError::InvalidHeader(format!(
            "unknown key derivation function {kdf_id}"
        )));
    }
    let kdf = parse_kdf(input)?;
    let salt = input.take()?;
    let stream_salt = input.take()?;
    let chunk_size = u32::from_be_bytes(input.take()?);
    let backup_id = input.take()?;
    let nonce = input.take()?;
    let wrapped = input.take()?;
    check_chunk_size(chunk_size)?;
    Ok(Header {
        version: 1,
        compression,
        kdf,
        stream_salt,
        chunk_size,
        backup_id,
        slots: vec![Slot::Passphrase {
            kdf,
            salt,
            nonce,
            wrapped,
        }],
        mac: [0; MAC_LEN],
    })
}

fn parse_v2(input: &mut Input<'_, impl Read>) -> Result<Header, FormatError> {
    let compression = parse_flags(u16::from_be_bytes(input.take()?))?;
    let chunk_size = u32::from_be_bytes(input.take()?);
    check_chunk_size(chunk_size)?;
    let stream_salt = input.take()?;
    let backup_id = input.take()?;
    let [count] = input.take::<1>()?;
    let count = usize::from(count);
    if count == 0 {
        return Err(FormatError::InvalidHeader(
            "the header has no key slot".into(),
        ));
    }
    if count > MAX_SLOTS {
        return Err(FormatError::InvalidHeader(format!(
            "the header lists {count} key slots; sstore reads at most {MAX_SLOTS}"
        )));
    }
    let mut slots: Vec<Slot> = Vec::with_capacity(count);
    for number in 1..=count {
        let [kind, len_hi, len_lo] = input.take::<SLOT_PREFIX_LEN>()?;
        let len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
        let expected = match kind {
            SLOT_PASSPHRASE => PASSPHRASE_BODY_LEN,
            SLOT_X25519 => X25519_BODY_LEN,
            other => {
                return Err(FormatError::InvalidHeader(format!(
                    "key slot {number} has unknown type {other}"
                )));
            }
        };
        if len != expected {
            return Err(FormatError::InvalidHeader(format!(
                "key slot {number} (type {kind}) is {len} bytes long; that type is {expected}"
            )));
        }
        let slot = if kind == SLOT_PASSPHRASE {
            Slot::Passphrase {
                kdf: parse_kdf(input)?,
                salt: input.take()?,
                nonce: [0; NONCE_LEN],
                wrapped: input.take()?,
            }
        } else {
            Slot::X25519 {
                recipient: Recipient::from_bytes_unchecked(input.take()?),
                ephemeral: input.take()?,
                wrapped: input.take()?,
            }
        };
        if let Some(earlier) = slots.iter().position(|s| s.same_key(&slot)) {
            let what = match &slot {
                Slot::Passphrase { .. } => "the passphrase".to_owned(),
                Slot::X25519 { recipient, .. } => format!("recipient {recipient}"),
            };
            return Err(FormatError::InvalidHeader(format!(
                "key slots {} and {number} are both for {what}; a header has one slot per key",
                earlier + 1
            )));
        }
        slots.push(slot);
    }
    let mac = input.take()?;
    let kdf = slots
        .iter()
        .find_map(|slot| match slot {
            Slot::Passphrase { kdf, .. } => Some(*kdf),
            Slot::X25519 { .. } => None,
        })
        .unwrap_or(NO_KDF);
    Ok(Header {
        version: 2,
        compression,
        kdf,
        stream_salt,
        chunk_size,
        backup_id,
        slots,
        mac,
    })
}

pub(crate) fn check_chunk_size(size: u32) -> Result<(), FormatError> {
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

/// Header bytes read one field at a time, with the offset for `Truncated`.
struct Input<'a, R: Read> {
    inner: &'a mut R,
    at: u64,
}

impl<R: Read> Input<'_, R> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let mut out = [0u8; N];
        let (got, result) = read_up_to(self.inner, &mut out);
        result.map_err(FormatError::from_io)?;
        self.at += got as u64;
        if got < N {
            return Err(FormatError::Truncated { offset: self.at });
        }
        Ok(out)
    }
}

/// Reads until `buf` is full or the input ends; returns the number of bytes read.
pub(crate) fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let (filled, result) = read_up_to(reader, buf);
    result.map(|()| filled)
}

/// Like [`read_full`], but also reports how much was read before an error.
pub(crate) fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> (usize, io::Result<()>) {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (filled, Err(e)),
        }
    }
    (filled, Ok(()))
}
