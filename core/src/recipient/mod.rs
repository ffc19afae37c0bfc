//! X25519 keys for backups that an unattended job can write but not read.
//!
//! - [`Recipient`]: an X25519 public key. A backup written to a recipient gets a key slot that
//!   only the matching identity opens. Text form: Bech32 (BIP 173 checksum), human-readable part
//!   `sstore`, lower case: `sstore1…` (65 characters).
//! - [`Identity`]: the X25519 secret key behind a recipient. Text form: the same Bech32 encoding
//!   with the human-readable part `sstore-secret-key-`, written in upper case:
//!   `SSTORE-SECRET-KEY-1…` (77 characters). Wiped from memory on drop; its `Debug` shows only
//!   the recipient.
//! - Identity files ([`Identity::write_identity_file`], [`read_identity_file`]): text, one
//!   identity per line, `#` comments, owner-only (0600) and refused when group or others can
//!   access them.
//!
//! docs/FORMAT.md (section "Keys and identity files") specifies the encodings; the key slots
//! that use these keys are in [`crate::format`].

mod file;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use bech32::primitives::decode::{CheckedHrpstring, UncheckedHrpstring};
use bech32::{Bech32, Hrp};
use x25519_dalek::{PublicKey, SharedSecret, StaticSecret};
use zeroize::Zeroizing;

pub use file::{MAX_IDENTITY_FILE_LEN, read_identity_file};

/// Human-readable part of a recipient's Bech32 encoding (`sstore1…`).
pub const RECIPIENT_HRP: &str = "sstore";
/// Human-readable part of an identity's Bech32 encoding, written upper case
/// (`SSTORE-SECRET-KEY-1…`).
pub const IDENTITY_HRP: &str = "sstore-secret-key-";

/// Number of Bech32 data characters for 32 bytes (256 bits in 5-bit groups, 4 padding bits).
const KEY_CHARS: usize = 52;

/// What went wrong with a key or an identity file. No variant ever carries secret material:
/// reasons are fixed texts, never the input.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not a valid sstore recipient: {reason}")]
    InvalidRecipient { reason: String },
    #[error("not a valid sstore identity: {reason}")]
    InvalidIdentity { reason: String },
    #[error("identity file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("identity file {} already exists; sstore never overwrites an identity file", path.display())]
    Exists { path: PathBuf },
    #[error(
        "identity file {} can be accessed by group or others (mode {mode:04o}); it holds a secret key: run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("identity file {} is larger than {limit} bytes; it is not an identity file", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("identity file {}, line {line}: {reason}", path.display())]
    Malformed {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("identity file {} holds no identity (is it empty or cut short?)", path.display())]
    NoIdentity { path: PathBuf },
}

/// An X25519 public key: what a backup is written to.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Recipient([u8; 32]);

impl Recipient {
    /// A recipient from its 32-byte X25519 public key. Refuses low-order points (for which every
    /// key agreement gives the all-zero shared secret).
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, KeyError> {
        // A clamped scalar is a multiple of the cofactor 8, so it maps exactly the points of
        // small order (and only them) to the identity, encoded as 32 zero bytes.
        const PROBE: [u8; 32] = {
            let mut k = [0x55u8; 32];
            k[0] &= 248;
            k[31] = (k[31] & 127) | 64;
            k
        };
        if x25519_dalek::x25519(PROBE, bytes) == [0u8; 32] {
            return Err(KeyError::InvalidRecipient {
                reason: "the key is a low-order X25519 point, which no secret key matches".into(),
            });
        }
        Ok(Self(bytes))
    }

    /// A recipient read from a header, not checked (the key agreement checks it when used).
    pub(crate) fn from_bytes_unchecked(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub(crate) fn public_key(&self) -> PublicKey {
        PublicKey::from(self.0)
    }
}

impl fmt::Display for Recipient {
    /// The Bech32 text form, `sstore1…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode(RECIPIENT_HRP, &self.0, false))
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recipient({self})")
    }
}

impl FromStr for Recipient {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        let invalid = |reason: &str| KeyError::InvalidRecipient {
            reason: reason.to_owned(),
        };
        let s = s.trim();
        if has_prefix(s, IDENTITY_HRP) {
            return Err(invalid(
                "this is an identity (a secret key), not a recipient; give its recipient (sstore1…) instead, and keep the identity secret",
            ));
        }
        let bytes =
            decode(s, RECIPIENT_HRP).map_err(|e| invalid(&e.reason(RECIPIENT_HRP, "sstore1")))?;
        Recipient::from_bytes(*bytes)
    }
}

/// An X25519 secret key: opens the key slots written to its [`Recipient`]. Wiped from memory
/// on drop; `Debug` shows only the recipient, and there is no `Display`.
#[derive(Clone)]
pub struct Identity {
    secret: StaticSecret,
    recipient: Recipient,
}

impl Identity {
    /// A fresh identity from the operating system's random source.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        crate::random::fill(bytes.as_mut());
        Self::from_secret_bytes(*bytes)
    }

    /// The identity with this 32-byte X25519 secret key (clamped by the key agreement).
    pub fn from_secret_bytes(bytes: [u8; 32]) -> Self {
        let secret = StaticSecret::from(bytes);
        let recipient = Recipient(PublicKey::from(&secret).to_bytes());
        Self { secret, recipient }
    }

    /// The public key backups are written to.
    pub fn recipient(&self) -> Recipient {
        self.recipient
    }

    /// The Bech32 text form, `SSTORE-SECRET-KEY-1…`: a secret, wiped when dropped.
    pub fn to_secret_string(&self) -> Zeroizing<String> {
        Zeroizing::new(encode(IDENTITY_HRP, self.secret.as_bytes(), true))
    }

    /// The X25519 key agreement with `their_public`.
    pub(crate) fn agree(&self, their_public: &PublicKey) -> SharedSecret {
        self.secret.diffie_hellman(their_public)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({}, secret: <redacted>)", self.recipient)
    }
}

impl FromStr for Identity {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        let invalid = |reason: String| KeyError::InvalidIdentity { reason };
        let s = s.trim();
        if has_prefix(s, "sstore1") {
            return Err(invalid(
                "this is a recipient (a public key), not an identity".into(),
            ));
        }
        if has_prefix(s, "age-secret-key-1") {
            return Err(invalid(
                "this is an age identity; sstore uses its own (SSTORE-SECRET-KEY-1…)".into(),
            ));
        }
        let bytes = decode(s, IDENTITY_HRP)
            .map_err(|e| invalid(e.reason(IDENTITY_HRP, "SSTORE-SECRET-KEY-1")))?;
        Ok(Self::from_secret_bytes(*bytes))
    }
}

/// Why a Bech32 key did not decode; each reason is a fixed text (never the input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DecodeError {
    /// The text is not Bech32 at all (no separator, invalid characters, mixed case).
    NotBech32,
    /// The human-readable part is not the expected one.
    WrongKind,
    /// A prefix of a key of the right kind: cut short.
    Truncated,
    /// Bech32, right kind, but the checksum does not match.
    Checksum,
    /// The checksum matches but the data is not a 32-byte key in canonical form.
    Length,
}

impl DecodeError {
    fn reason(self, hrp: &str, prefix: &str) -> String {
        match self {
            DecodeError::NotBech32 => format!(
                "expected a key starting with {prefix} in Bech32 (all upper or all lower case)"
            ),
            DecodeError::WrongKind => format!("expected a key starting with {prefix}"),
            DecodeError::Truncated => {
                format!(
                    "the key is cut short (a complete one is {} characters)",
                    hrp.len() + 1 + KEY_CHARS + 6
                )
            }
            DecodeError::Checksum => {
                "the Bech32 checksum does not match: the key is mistyped or cut short".into()
            }
            DecodeError::Length => format!(
                "the key has the wrong length (a complete one is {} characters)",
                hrp.len() + 1 + KEY_CHARS + 6
            ),
        }
    }
}

/// Whether `s` starts with `prefix`, ignoring ASCII case.
fn has_prefix(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn encode(hrp: &str, key: &[u8; 32], upper: bool) -> String {
    // Sized up front, so the text (a secret for identities) is never left behind by a
    // reallocation.
    let mut out = String::with_capacity(hrp.len() + 1 + KEY_CHARS + 6);
    let written = Hrp::parse(hrp).map_err(|_| fmt::Error).and_then(|hrp| {
        if upper {
            bech32::encode_upper_to_fmt::<Bech32, String>(&mut out, hrp, key)
                .map_err(|_| fmt::Error)
        } else {
            bech32::encode_lower_to_fmt::<Bech32, String>(&mut out, hrp, key)
                .map_err(|_| fmt::Error)
        }
    });
    match written {
        Ok(()) => out,
        // Both human-readable parts are valid constants and 32 bytes fit any Bech32 code.
        Err(_) => unreachable!("Bech32 encoding of a 32-byte key"),
    }
}

/// Decodes a Bech32 (BIP 173 checksum) key with the human-readable part `hrp`, in canonical
/// form only (the encoding of exactly 32 bytes with zero padding bits).
fn decode(s: &str, hrp: &str) -> Result<Zeroizing<[u8; 32]>, DecodeError> {
    let full_len = hrp.len() + 1 + KEY_CHARS + 6;
    if s.is_empty() {
        return Err(DecodeError::NotBech32);
    }
    let separator = format!("{hrp}1");
    if s.len() <= separator.len() && has_prefix(&separator, s) {
        // Only (a part of) the human-readable part and separator: cut short.
        return Err(DecodeError::Truncated);
    }
    let unchecked = UncheckedHrpstring::new(s).map_err(|_| DecodeError::NotBech32)?;
    if !unchecked.hrp().as_str().eq_ignore_ascii_case(hrp) {
        return Err(DecodeError::WrongKind);
    }
    let checked = match CheckedHrpstring::new::<Bech32>(s) {
        Ok(checked) => checked,
        Err(_) if s.len() < full_len => return Err(DecodeError::Truncated),
        Err(_) => return Err(DecodeError::Checksum),
    };
    if checked.data_part_ascii_no_checksum().len() != KEY_CHARS {
        return Err(DecodeError::Length);
    }
    let mut out = Zeroizing::new([0u8; 32]);
    let mut n = 0;
    for byte in checked.byte_iter() {
        if n == out.len() {
            return Err(DecodeError::Length);
        }
        out[n] = byte;
        n += 1;
    }
    if n != out.len() {
        return Err(DecodeError::Length);
    }
    // The 4 padding bits must be zero: the last data character then encodes a multiple of 16.
    let last = checked.data_part_ascii_no_checksum()[KEY_CHARS - 1];
    let canonical = bech32::Fe32::from_char(char::from(last))
        .map(|fe| fe.to_u8() & 0x0f == 0)
        .unwrap_or(false);
    if !canonical {
        return Err(DecodeError::Length);
    }
    Ok(out)
}
