//! Credential sets: field values encrypted under the Master Key, each bound to its application,
//! principal and field so a value moved to another row no longer decrypts. The rules and the
//! encryption are the same for every home; a home stores [`SealedValue`]s.

use zeroize::Zeroizing;

use super::StoreError;
use super::master_key::MasterKey;
use super::model::{TargetApp, check_name};
use crate::crypto::{NONCE_LEN, TAG_LEN};

/// Field values, in the application's field order. Wiped on drop.
pub type CredentialValues = Vec<(String, Zeroizing<String>)>;

/// The credentials of one principal (user identity, or the group) for one application.
#[derive(Clone)]
pub struct CredentialSet {
    pub app: String,
    pub principal: String,
    pub values: CredentialValues,
}

impl std::fmt::Debug for CredentialSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fields: Vec<&str> = self.values.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("CredentialSet")
            .field("app", &self.app)
            .field("principal", &self.principal)
            .field("fields", &fields)
            .finish_non_exhaustive()
    }
}

impl CredentialSet {
    pub fn new(app: impl Into<String>, principal: impl Into<String>) -> Self {
        Self {
            app: app.into(),
            principal: principal.into(),
            values: Vec::new(),
        }
    }

    pub fn with(mut self, field: impl Into<String>, value: impl Into<String>) -> Self {
        self.values
            .push((field.into(), Zeroizing::new(value.into())));
        self
    }

    pub fn value(&self, field: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| k == field)
            .map(|(_, v)| v.as_str())
    }
}

/// One stored value: a row of `credentials` in either home.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct SealedValue {
    pub app: String,
    pub principal: String,
    pub field: String,
    pub nonce: Vec<u8>,
    /// `AES-256-GCM(Master Key, nonce, aad(app, principal, field), value)`, tag appended.
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for SealedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedValue")
            .field("app", &self.app)
            .field("principal", &self.principal)
            .field("field", &self.field)
            .finish_non_exhaustive()
    }
}

impl SealedValue {
    /// The error for this value when it does not open: it was changed outside sstore.
    fn tampered(&self) -> StoreError {
        StoreError::Tampered {
            app: self.app.clone(),
            principal: self.principal.clone(),
            field: self.field.clone(),
        }
    }
}

fn aad(app: &str, principal: &str, field: &str) -> Vec<u8> {
    let mut out = Vec::new();
    aad_into(&mut out, app, principal, field);
    out
}

/// The associated data of a row, written over `out`.
fn aad_into(out: &mut Vec<u8>, app: &str, principal: &str, field: &str) {
    out.clear();
    out.extend_from_slice(b"sstore credential v1\0");
    for part in [app, principal, field] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
}

/// Encrypts `value` for its row under `key`, with a fresh nonce.
pub(crate) fn seal(
    key: &MasterKey,
    app: &str,
    principal: &str,
    field: &str,
    value: &[u8],
) -> SealedValue {
    let nonce = crate::random::nonce();
    let sealed = key
        .cipher()
        .seal(&nonce, &aad(app, principal, field), value);
    SealedValue {
        app: app.to_owned(),
        principal: principal.to_owned(),
        field: field.to_owned(),
        nonce: nonce.to_vec(),
        sealed,
    }
}

/// Decrypts a stored value; a value that does not authenticate for its row is tampering.
pub(crate) fn open(key: &MasterKey, value: &SealedValue) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let nonce: [u8; 12] = value
        .nonce
        .as_slice()
        .try_into()
        .map_err(|_| value.tampered())?;
    key.cipher()
        .open(
            &nonce,
            &aad(&value.app, &value.principal, &value.field),
            &value.sealed,
        )
        .map_err(|_| value.tampered())
}

/// Re-encrypts a stored value from `old` to `new` with a fresh nonce, in its own buffer: the
/// plaintext exists only in `value.sealed` between the two steps and is encrypted over, and no
/// memory is allocated (`aad` is a scratch buffer the caller keeps). A value that does not
/// authenticate under `old` is tampering and is left as it was.
pub(crate) fn reseal(
    old: &MasterKey,
    new: &MasterKey,
    value: &mut SealedValue,
    aad: &mut Vec<u8>,
) -> Result<(), StoreError> {
    let (Ok(nonce), Some(split)) = (
        <[u8; NONCE_LEN]>::try_from(value.nonce.as_slice()),
        value.sealed.len().checked_sub(TAG_LEN),
    ) else {
        return Err(value.tampered());
    };
    aad_into(aad, &value.app, &value.principal, &value.field);
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&value.sealed[split..]);
    // Checks the tag before it decrypts: on failure the buffer still holds the ciphertext.
    let body = &mut value.sealed[..split];
    if old.cipher().open_in_place(&nonce, aad, body, &tag).is_err() {
        return Err(value.tampered());
    }
    let fresh = crate::random::nonce();
    let tag = new
        .cipher()
        .seal_in_place(&fresh, aad, &mut value.sealed[..split]);
    value.sealed[split..].copy_from_slice(&tag);
    value.nonce.clear();
    value.nonce.extend_from_slice(&fresh);
    Ok(())
}

/// Decrypts a stored value into text.
pub(crate) fn open_text(
    key: &MasterKey,
    value: &SealedValue,
) -> Result<Zeroizing<String>, StoreError> {
    let plain = open(key, value)?;
    match std::str::from_utf8(&plain) {
        Ok(text) => Ok(Zeroizing::new(text.to_owned())),
        Err(_) => Err(value.tampered()),
    }
}

/// Checks a set against its application: a valid principal, known fields, every field given.
pub(crate) fn check_set(app: &TargetApp, set: &CredentialSet) -> Result<(), StoreError> {
    check_name("principal", &set.principal).map_err(|reason| StoreError::InvalidCredentials {
        app: set.app.clone(),
        reason,
    })?;
    for (field, _) in &set.values {
        if app.field(field).is_none() {
            return Err(StoreError::UnknownField {
                app: app.name.clone(),
                field: field.clone(),
            });
        }
    }
    let missing: Vec<String> = app
        .fields
        .iter()
        .filter(|f| !set.values.iter().any(|(k, _)| *k == f.name))
        .map(|f| f.name.clone())
        .collect();
    if !missing.is_empty() {
        return Err(StoreError::MissingFields {
            app: app.name.clone(),
            fields: missing,
        });
    }
    Ok(())
}
