//! The keys of backups: what a new backup is written with ([`BackupKeys`]: a passphrase slot
//! and/or X25519 recipient slots) and what existing backups are opened with ([`OpenKeys`]: a
//! passphrase and/or identities). With recipients only, a job writes backups holding no secret
//! that can read them: the identities stay with the people who restore.

use std::path::Path;

use super::BackupError;
use crate::format::{Keys, Recipients};
use crate::recipient::{Identity, Recipient};
use crate::secret::Passphrase;
use crate::store::{SecureStore, StoreError};

/// The key slots of a new backup.
#[derive(Clone, Default)]
pub struct BackupKeys {
    /// The backup passphrase, when the backup gets a passphrase slot.
    pub passphrase: Option<Passphrase>,
    /// The passphrase is the store passphrase (no backup passphrase was given): it must open
    /// the store's Master Key, so a mistyped one never produces a backup nobody can open.
    pub passphrase_is_store: bool,
    /// Public keys the backup is also (or only) written to.
    pub recipients: Vec<Recipient>,
}

impl std::fmt::Debug for BackupKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupKeys")
            .field("slots", &self.slots())
            .field("passphrase_is_store", &self.passphrase_is_store)
            .finish()
    }
}

impl BackupKeys {
    /// A passphrase slot only.
    pub fn passphrase(passphrase: Passphrase) -> Self {
        Self {
            passphrase: Some(passphrase),
            ..Self::default()
        }
    }

    /// Whether these keys may write a backup of the store at `store_path`: at least one slot;
    /// a passphrase that meets the policy; a store passphrase that opens the Master Key.
    pub fn check(&self, store_path: &Path) -> Result<(), BackupError> {
        if self.passphrase.is_none() && self.recipients.is_empty() {
            return Err(BackupError::PassphraseNeeded);
        }
        if let Some(passphrase) = &self.passphrase {
            passphrase.check_policy().map_err(StoreError::from)?;
            if self.passphrase_is_store {
                SecureStore::open_locator(store_path)?.check_passphrase(passphrase)?;
            }
        }
        Ok(())
    }

    /// The slots' public descriptions (`passphrase`, recipient strings), in header order.
    pub fn slots(&self) -> Vec<String> {
        self.passphrase
            .iter()
            .map(|_| "passphrase".to_owned())
            .chain(self.recipients.iter().map(ToString::to_string))
            .collect()
    }

    pub(crate) fn format_recipients(&self) -> Recipients<'_> {
        Recipients::new(self.passphrase.as_ref(), &self.recipients)
    }
}

/// The keys given to open existing backups (restore, verify).
#[derive(Clone, Default)]
pub struct OpenKeys {
    pub passphrase: Option<Passphrase>,
    pub identities: Vec<Identity>,
}

impl std::fmt::Debug for OpenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenKeys")
            .field("passphrase", &self.passphrase.is_some())
            .field("identities", &self.identities.len())
            .finish()
    }
}

impl From<&Passphrase> for OpenKeys {
    fn from(passphrase: &Passphrase) -> Self {
        Self::passphrase(passphrase.clone())
    }
}

impl From<&OpenKeys> for OpenKeys {
    fn from(keys: &OpenKeys) -> Self {
        keys.clone()
    }
}

impl OpenKeys {
    pub fn passphrase(passphrase: Passphrase) -> Self {
        Self {
            passphrase: Some(passphrase),
            identities: Vec::new(),
        }
    }

    pub(crate) fn format_keys(&self) -> Keys<'_> {
        Keys::new(self.passphrase.as_ref(), &self.identities)
    }

    /// `a passphrase and 2 identities`, for messages.
    pub fn describe(&self) -> String {
        let identities = match self.identities.len() {
            0 => None,
            1 => Some("1 identity".to_owned()),
            n => Some(format!("{n} identities")),
        };
        match (&self.passphrase, identities) {
            (Some(_), Some(ids)) => format!("a passphrase and {ids}"),
            (Some(_), None) => "a passphrase".to_owned(),
            (None, Some(ids)) => ids,
            (None, None) => "no key".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn slots_and_descriptions_name_no_secret() {
        let identity = Identity::generate();
        let keys = BackupKeys {
            passphrase: Some(Passphrase::new("Slot-Secret-77")),
            passphrase_is_store: false,
            recipients: vec![identity.recipient()],
        };
        let slots = keys.slots();
        assert_eq!(slots[0], "passphrase");
        assert!(slots[1].starts_with("sstore1"), "{slots:?}");
        let debug = format!("{keys:?}");
        assert!(!debug.contains("Slot-Secret-77"), "{debug}");
        let open = OpenKeys {
            passphrase: Some(Passphrase::new("Slot-Secret-77")),
            identities: vec![identity],
        };
        assert_eq!(open.describe(), "a passphrase and 1 identity");
        let debug = format!("{open:?}");
        assert!(
            !debug.contains("Slot-Secret-77") && !debug.contains("SECRET-KEY"),
            "{debug}"
        );
        assert!(matches!(
            BackupKeys::default().check(Path::new("/nonexistent")),
            Err(BackupError::PassphraseNeeded)
        ));
    }
}
