//! What can be backed up (`sstore backup --show-tree`, the first step of the console's backup
//! wizard): the Secure Store item with its Master Key and contents.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{BackupError, ITEM_NAME};
use crate::store::{SecureStore, StoreSummary};

#[derive(Debug, Clone, Serialize)]
pub struct StoreTree {
    pub store_path: PathBuf,
    pub summary: StoreSummary,
}

impl StoreTree {
    /// Describes what a backup of the store at `store_path` would hold.
    pub fn read(store_path: &Path) -> Result<Self, BackupError> {
        let store = SecureStore::open_locator(store_path)?;
        Ok(Self {
            store_path: store_path.to_owned(),
            summary: store.summary()?,
        })
    }
}

impl std::fmt::Display for StoreTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.summary;
        writeln!(
            f,
            "{ITEM_NAME}  (store {}, {})",
            s.store_id,
            self.store_path.display()
        )?;
        writeln!(
            f,
            "  MasterKey     generation {}, key id {} (always backed up with the store)",
            s.master_key.generation, s.master_key.key_id
        )?;
        write!(
            f,
            "  Applications  {} target applications, {} credential sets",
            s.applications, s.credential_sets
        )
    }
}
