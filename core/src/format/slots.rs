//! Key slots: the per-backup data key wrapped once per key (a passphrase, X25519 recipients),
//! the header MAC, and the stream keys derived from the data key.

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, SharedSecret, StaticSecret};
use zeroize::Zeroizing;

use super::header::{
    BOUND_LEN, MAC_LEN, NO_KDF, PASSPHRASE_BODY_LEN, SLOT_PASSPHRASE, SLOT_X25519, WRAPPED_LEN,
    X25519_BODY_LEN, check_chunk_size,
};
use super::{FORMAT_VERSION, FormatError, Header, MAX_SLOTS, StreamOptions};
use crate::crypto::{Cipher, NONCE_LEN};
use crate::kdf::KdfParams;
use crate::recipient::{Identity, Recipient};
use crate::secret::{Passphrase, SecretKey};

/// HKDF info of the payload key (unchanged from version 1).
const PAYLOAD_INFO: &[u8] = b"sstore v1 payload key";
/// HKDF info of the version-2 header MAC key.
const HEADER_MAC_INFO: &[u8] = b"sstore v2 header mac key";
/// HKDF info of an X25519 slot's wrap key.
const X25519_INFO: &[u8] = b"sstore v2 x25519 wrap key";
/// Version-2 wraps use an all-zero nonce: every wrap key encrypts exactly one message (a fresh
/// Argon2id salt or a fresh ephemeral key per slot), as in age.
const WRAP_NONCE: [u8; NONCE_LEN] = [0; NONCE_LEN];

/// The keys a new backup is written to: a key slot for the passphrase (with the Argon2id
/// parameters of [`StreamOptions::kdf`]) and one for each X25519 recipient. At least one is
/// needed, at most [`MAX_SLOTS`] in all. A `&Passphrase` converts into a passphrase-only set.
#[derive(Debug, Clone, Copy, Default)]
pub struct Recipients<'a> {
    pub passphrase: Option<&'a Passphrase>,
    pub x25519: &'a [Recipient],
}

impl<'a> Recipients<'a> {
    pub fn new(passphrase: Option<&'a Passphrase>, x25519: &'a [Recipient]) -> Self {
        Self { passphrase, x25519 }
    }
}

impl<'a> From<&'a Passphrase> for Recipients<'a> {
    fn from(passphrase: &'a Passphrase) -> Self {
        Self::new(Some(passphrase), &[])
    }
}

impl<'a> From<&Recipients<'a>> for Recipients<'a> {
    fn from(recipients: &Recipients<'a>) -> Self {
        *recipients
    }
}

/// The keys a reader tries against a backup's slots: an optional passphrase and any number of
/// X25519 identities, and (for a stream this process has just written) its [`ReadBackKey`]. A
/// `&Passphrase` converts into a passphrase-only set.
#[derive(Debug, Clone, Copy, Default)]
pub struct Keys<'a> {
    pub passphrase: Option<&'a Passphrase>,
    pub identities: &'a [Identity],
    pub read_back: Option<&'a ReadBackKey>,
}

impl<'a> Keys<'a> {
    pub fn new(passphrase: Option<&'a Passphrase>, identities: &'a [Identity]) -> Self {
        Self {
            passphrase,
            identities,
            read_back: None,
        }
    }

    /// The data key of a stream just written ([`super::StreamWriter::read_back_key`]): reads
    /// that stream back (for example to verify a staged copy) without any of its keys, so a
    /// job that holds only recipients can still check what it wrote.
    pub fn read_back(key: &'a ReadBackKey) -> Self {
        Self {
            read_back: Some(key),
            ..Self::default()
        }
    }

    /// The passphrase alone.
    pub fn passphrase(passphrase: &'a Passphrase) -> Self {
        Self::new(Some(passphrase), &[])
    }

    /// These identities alone.
    pub fn identities(identities: &'a [Identity]) -> Self {
        Self::new(None, identities)
    }
}

impl<'a> From<&'a Passphrase> for Keys<'a> {
    fn from(passphrase: &'a Passphrase) -> Self {
        Self::passphrase(passphrase)
    }
}

impl<'a> From<&Keys<'a>> for Keys<'a> {
    fn from(keys: &Keys<'a>) -> Self {
        *keys
    }
}

/// The data key of a stream this process wrote, kept by its writer so the stream can be read
/// back without any of the keys it was written to. It opens only that stream (matched by backup
/// id and stream salt). A secret: wiped on drop, never printed, never stored.
pub struct ReadBackKey {
    data_key: SecretKey,
    backup_id: [u8; 16],
    stream_salt: [u8; 16],
}

impl ReadBackKey {
    fn new(header: &Header, data_key: &SecretKey) -> Self {
        Self {
            data_key: data_key.clone(),
            backup_id: header.backup_id,
            stream_salt: header.stream_salt,
        }
    }

    /// A copy (the writer keeps its own until it is dropped).
    pub(crate) fn duplicate(&self) -> Self {
        Self {
            data_key: self.data_key.clone(),
            backup_id: self.backup_id,
            stream_salt: self.stream_salt,
        }
    }
}

impl std::fmt::Debug for ReadBackKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ReadBackKey(backup {}, <redacted>)",
            hex::encode(self.backup_id)
        )
    }
}

/// One key slot as stored in the header (public data only: the data key is wrapped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Slot {
    Passphrase {
        kdf: KdfParams,
        salt: [u8; 16],
        /// Version 1's random wrap nonce; all zero (and not stored) in version 2.
        nonce: [u8; NONCE_LEN],
        wrapped: [u8; WRAPPED_LEN],
    },
    X25519 {
        recipient: Recipient,
        /// The ephemeral X25519 public key of this slot's key agreement.
        ephemeral: [u8; 32],
        wrapped: [u8; WRAPPED_LEN],
    },
}

impl Slot {
    pub(crate) fn body_len(&self) -> usize {
        match self {
            Slot::Passphrase { .. } => PASSPHRASE_BODY_LEN,
            Slot::X25519 { .. } => X25519_BODY_LEN,
        }
    }

    /// Both slots are opened by the same key (two passphrase slots, or one recipient twice).
    pub(crate) fn same_key(&self, other: &Slot) -> bool {
        match (self, other) {
            (Slot::Passphrase { .. }, Slot::Passphrase { .. }) => true,
            (Slot::X25519 { recipient: a, .. }, Slot::X25519 { recipient: b, .. }) => a == b,
            _ => false,
        }
    }

    /// Type, body length, then the public fields (everything but the wrapped key).
    fn encode_public(&self, out: &mut Vec<u8>) {
        match self {
            Slot::Passphrase { kdf, salt, .. } => {
                out.push(SLOT_PASSPHRASE);
                out.extend_from_slice(&(PASSPHRASE_BODY_LEN as u16).to_be_bytes());
                out.extend_from_slice(&kdf.memory_kib.to_be_bytes());
                out.extend_from_slice(&kdf.iterations.to_be_bytes());
                out.extend_from_slice(&kdf.parallelism.to_be_bytes());
                out.extend_from_slice(salt);
            }
            Slot::X25519 {
                recipient,
                ephemeral,
                ..
            } => {
                out.push(SLOT_X25519);
                out.extend_from_slice(&(X25519_BODY_LEN as u16).to_be_bytes());
                out.extend_from_slice(recipient.as_bytes());
                out.extend_from_slice(ephemeral);
            }
        }
    }

    /// The slot's on-disk bytes.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        self.encode_public(out);
        match self {
            Slot::Passphrase { wrapped, .. } | Slot::X25519 { wrapped, .. } => {
                out.extend_from_slice(wrapped);
            }
        }
    }

    /// The associated data of this slot's wrap: the header's bound fields, then the slot's
    /// type, length and public fields.
    fn wrap_aad(&self, bound: &[u8; BOUND_LEN]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(BOUND_LEN + 3 + X25519_BODY_LEN);
        aad.extend_from_slice(bound);
        self.encode_public(&mut aad);
        aad
    }
}

/// Keys derived for one stream.
pub(crate) struct StreamKeys {
    pub(crate) payload: Cipher,
    /// SHA-256 of the whole header: the associated data of every chunk.
    pub(crate) header_digest: [u8; 32],
}

impl Header {
    /// A new version-2 header with fresh salts and a fresh data key wrapped for each of
    /// `recipients`.
    pub(crate) fn seal(
        recipients: Recipients<'_>,
        options: &StreamOptions,
    ) -> Result<(Self, StreamKeys, ReadBackKey), FormatError> {
        check_chunk_size(options.chunk_size)?;
        let count = usize::from(recipients.passphrase.is_some()) + recipients.x25519.len();
        if count == 0 {
            return Err(FormatError::Recipients(
                "a backup needs at least one key: a passphrase or a recipient".into(),
            ));
        }
        if count > MAX_SLOTS {
            return Err(FormatError::Recipients(format!(
                "{count} keys given; a backup has at most {MAX_SLOTS} key slots"
            )));
        }
        for (i, recipient) in recipients.x25519.iter().enumerate() {
            if recipients.x25519[..i].contains(recipient) {
                return Err(FormatError::Recipients(format!(
                    "recipient {recipient} is given twice"
                )));
            }
        }
        if recipients.passphrase.is_some() {
            options.kdf.check_writable()?;
        }
        let data_key = SecretKey::generate();
        let mut header = Header {
            version: FORMAT_VERSION,
            compression: options.compression,
            kdf: if recipients.passphrase.is_some() {
                options.kdf
            } else {
                NO_KDF
            },
            stream_salt: crate::random::bytes(),
            chunk_size: options.chunk_size,
            backup_id: options.backup_id,
            slots: Vec::with_capacity(count),
            mac: [0; MAC_LEN],
        };
        let bound = header.bound_fields();
        if let Some(passphrase) = recipients.passphrase {
            let salt: [u8; 16] = crate::random::bytes();
            let kek = Cipher::new(&options.kdf.derive(passphrase, &salt)?);
            let mut slot = Slot::Passphrase {
                kdf: options.kdf,
                salt,
                nonce: WRAP_NONCE,
                wrapped: [0; WRAPPED_LEN],
            };
            let aad = slot.wrap_aad(&bound);
            if let Slot::Passphrase { wrapped, .. } = &mut slot {
                wrap(&kek, &aad, &data_key, wrapped);
            }
            header.slots.push(slot);
        }
        for recipient in recipients.x25519 {
            let mut secret = Zeroizing::new([0u8; 32]);
            crate::random::fill(secret.as_mut());
            let ephemeral_secret = StaticSecret::from(*secret);
            let ephemeral = PublicKey::from(&ephemeral_secret).to_bytes();
            let shared = ephemeral_secret.diffie_hellman(&recipient.public_key());
            let kek = x25519_wrap_key(&shared, &ephemeral, recipient.as_bytes()).ok_or_else(
                || {
                    FormatError::Recipients(format!(
                        "recipient {recipient} is not a usable X25519 public key (a low-order point)"
                    ))
                },
            )?;
            let mut slot = Slot::X25519 {
                recipient: *recipient,
                ephemeral,
                wrapped: [0; WRAPPED_LEN],
            };
            let aad = slot.wrap_aad(&bound);
            if let Slot::X25519 { wrapped, .. } = &mut slot {
                wrap(&kek, &aad, &data_key, wrapped);
            }
            header.slots.push(slot);
        }
        let derived = Derived::new(&header, &data_key);
        header.mac = derived.header_mac(&header);
        let keys = derived.stream_keys(&header);
        let read_back = ReadBackKey::new(&header, &data_key);
        Ok((header, keys, read_back))
    }

    /// Opens the data key with one of `keys` and derives the stream keys. A matching read-back
    /// key is used as it is; identities are tried next (only against slots for their own recipient), then the passphrase (at most one
    /// Argon2id derivation: a header has at most one passphrase slot). Every way of not having
    /// the right key gives [`FormatError::WrongPassphrase`].
    pub(crate) fn open(&self, keys: Keys<'_>) -> Result<StreamKeys, FormatError> {
        if let Some(key) = keys
            .read_back
            .filter(|key| key.backup_id == self.backup_id && key.stream_salt == self.stream_salt)
        {
            return if self.version == 1 {
                Ok(Derived::new(self, &key.data_key).stream_keys(self))
            } else {
                self.authenticated(&key.data_key)
            };
        }
        if self.version == 1 {
            return self.open_v1(keys);
        }
        let bound = self.bound_fields();
        for (index, slot) in self.slots.iter().enumerate() {
            let Slot::X25519 {
                recipient,
                ephemeral,
                wrapped,
            } = slot
            else {
                continue;
            };
            let Some(identity) = keys
                .identities
                .iter()
                .find(|identity| identity.recipient() == *recipient)
            else {
                continue;
            };
            let shared = identity.agree(&PublicKey::from(*ephemeral));
            let kek =
                x25519_wrap_key(&shared, ephemeral, recipient.as_bytes()).ok_or_else(|| {
                    FormatError::InvalidHeader(format!(
                        "key slot {}: the ephemeral key is a low-order X25519 point",
                        index + 1
                    ))
                })?;
            if let Some(data_key) = unwrap(&kek, &slot.wrap_aad(&bound), wrapped) {
                return self.authenticated(&data_key);
            }
        }
        if let Some(passphrase) = keys.passphrase {
            for slot in &self.slots {
                if let Slot::Passphrase {
                    kdf, salt, wrapped, ..
                } = slot
                {
                    let kek = Cipher::new(&kdf.derive(passphrase, salt)?);
                    if let Some(data_key) = unwrap(&kek, &slot.wrap_aad(&bound), wrapped) {
                        return self.authenticated(&data_key);
                    }
                    break;
                }
            }
        }
        Err(FormatError::WrongPassphrase)
    }

    /// Version 2: checks the header MAC with the unwrapped data key.
    fn authenticated(&self, data_key: &SecretKey) -> Result<StreamKeys, FormatError> {
        let derived = Derived::new(self, data_key);
        let mut bytes = Vec::with_capacity(self.encoded_len());
        self.encode_v2_unauthenticated(&mut bytes);
        let mut mac = derived.mac();
        mac.update(&bytes);
        mac.verify_slice(&self.mac)
            .map_err(|_| FormatError::HeaderAltered)?;
        Ok(derived.stream_keys(self))
    }

    fn open_v1(&self, keys: Keys<'_>) -> Result<StreamKeys, FormatError> {
        let (
            Some(passphrase),
            Some(Slot::Passphrase {
                kdf,
                salt,
                nonce,
                wrapped,
            }),
        ) = (keys.passphrase, self.slots.first())
        else {
            return Err(FormatError::WrongPassphrase);
        };
        let kek = Cipher::new(&kdf.derive(passphrase, salt)?);
        let plain = kek
            .open(nonce, &self.v1_wrap_aad(), wrapped)
            .map_err(|_| FormatError::WrongPassphrase)?;
        let key: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| FormatError::WrongPassphrase)?;
        Ok(Derived::new(self, &SecretKey::from_bytes(key)).stream_keys(self))
    }
}

fn wrap(kek: &Cipher, aad: &[u8], data_key: &SecretKey, out: &mut [u8; WRAPPED_LEN]) {
    let sealed = kek.seal(&WRAP_NONCE, aad, data_key.as_bytes());
    out.copy_from_slice(&sealed);
}

fn unwrap(kek: &Cipher, aad: &[u8], wrapped: &[u8; WRAPPED_LEN]) -> Option<SecretKey> {
    let plain = kek.open(&WRAP_NONCE, aad, wrapped).ok()?;
    let key: [u8; 32] = plain.as_slice().try_into().ok()?;
    Some(SecretKey::from_bytes(key))
}

/// An X25519 slot's wrap key: HKDF-SHA-256(IKM = shared secret, salt = ephemeral ‖ recipient,
/// info = [`X25519_INFO`]). `None` for an all-zero shared secret (a low-order point), which
/// age also refuses.
fn x25519_wrap_key(
    shared: &SharedSecret,
    ephemeral: &[u8; 32],
    recipient: &[u8; 32],
) -> Option<Cipher> {
    if !shared.was_contributory() {
        return None;
    }
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral);
    salt[32..].copy_from_slice(recipient);
    Some(Cipher::new(&hkdf_key(
        &salt,
        shared.as_bytes(),
        X25519_INFO,
    )))
}

fn hkdf_key(salt: &[u8], ikm: &[u8], info: &[u8]) -> SecretKey {
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm);
    let mut okm = Zeroizing::new([0u8; 32]);
    if hk.expand(info, okm.as_mut()).is_err() {
        // 32 bytes is always a valid HKDF-SHA-256 output length.
        unreachable!("HKDF output length");
    }
    SecretKey::from_bytes(*okm)
}

/// The keys derived from the data key: HKDF-SHA-256 with the stream salt.
struct Derived {
    payload: SecretKey,
    header_mac: SecretKey,
}

impl Derived {
    fn new(header: &Header, data_key: &SecretKey) -> Self {
        Self {
            payload: hkdf_key(&header.stream_salt, data_key.as_bytes(), PAYLOAD_INFO),
            header_mac: hkdf_key(&header.stream_salt, data_key.as_bytes(), HEADER_MAC_INFO),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        match <Hmac<Sha256> as KeyInit>::new_from_slice(self.header_mac.as_bytes()) {
            Ok(mac) => mac,
            // HMAC takes keys of any length.
            Err(_) => unreachable!("HMAC key length"),
        }
    }

    fn header_mac(&self, header: &Header) -> [u8; MAC_LEN] {
        let mut bytes = Vec::with_capacity(header.encoded_len());
        header.encode_v2_unauthenticated(&mut bytes);
        let mut mac = self.mac();
        mac.update(&bytes);
        mac.finalize().into_bytes().into()
    }

    fn stream_keys(self, header: &Header) -> StreamKeys {
        StreamKeys {
            payload: Cipher::new(&self.payload),
            header_digest: Sha256::digest(header.encode()).into(),
        }
    }
}
