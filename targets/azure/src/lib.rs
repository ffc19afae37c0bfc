//! sstore target: Azure Blob Storage, through object_store.
//!
//! `az://container/prefix` (or `azure://`) on the command line, or a `[[target]]` with
//! `kind = "azure"`. The account and its credential come from the target's config (account
//! key or SAS token, as `*_env` / `*_file` references) or the standard environment
//! (`AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`, `AZURE_STORAGE_SAS_TOKEN`,
//! `AZURE_STORAGE_USE_EMULATOR=true` for Azurite with `AZURITE_BLOB_STORAGE_URL`), then
//! object_store's chain (managed identity, Azure CLI, workload identity). Large objects go up
//! as block blobs committed in one step; uncommitted blocks of an upload that died are
//! invisible and are removed by the service after a week.
//!
//! - [`settings`]: the `kind = "azure"` settings and how they become a client.

use std::sync::Arc;

use sstore_target_api::{BuiltinKind, OpenRequest, Target, TargetError};

pub mod settings;

/// The kind name in config files (`kind = "azure"`).
pub const KIND: &str = "azure";

inventory::submit! {
    BuiltinKind {
        name: KIND,
        schemes: &["az", "azure"],
        description: "Azure Blob Storage and Azurite (az://container/prefix; AZURE_STORAGE_* environment)",
        open: open_azure,
    }
}

/// The kind's name. The `sstore` binary calls this so the linker keeps the registration.
pub fn kind() -> &'static str {
    KIND
}

fn open_azure(request: &OpenRequest) -> Result<Arc<dyn Target>, TargetError> {
    Ok(Arc::new(settings::open(request)?))
}
