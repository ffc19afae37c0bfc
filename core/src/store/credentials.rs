//! Credential sets: field values encrypted under the Master Key, each bound to its application,
//! principal and field so a value moved to another row no longer decrypts. The rules and the
//! encryption are the same for every home; a home stores [`SealedValue`]s.

use zeroize::Zeroizing;

use super::StoreError;
use super::master_key::MasterKey;
use super::model::{TargetApp, check_name};

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
#[derive(Clone, PartialEq, Eq)]
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

fn aad(app: &str, principal: &str, field: &str) -> Vec<u8> {
    let mut out = b"sstore credential v1\0".to_vec();
    for part in [app, principal, field] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
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
    let tampered = || StoreError::Tampered {
        app: value.app.clone(),
        principal: value.principal.clone(),
        field: value.field.clone(),
    };
    let nonce: [u8; 12] = value.nonce.as_slice().try_into().map_err(|_| tampered())?;
    key.cipher()
        .open(
            &nonce,
            &aad(&value.app, &value.principal, &value.field),
            &value.sealed,
        )
        .map_err(|_| tampered())
}

/// Decrypts a stored value into text.
pub(crate) fn open_text(
    key: &MasterKey,
    value: &SealedValue,
) -> Result<Zeroizing<String>, StoreError> {
    let plain = open(key, value)?;
    match std::str::from_utf8(&plain) {
        Ok(text) => Ok(Zeroizing::new(text.to_owned())),
        Err(_) => Err(StoreError::Tampered {
            app: value.app.clone(),
            principal: value.principal.clone(),
            field: value.field.clone(),
        }),
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
