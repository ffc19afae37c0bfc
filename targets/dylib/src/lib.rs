//! sstore target: run-time plugins. Loads shared libraries built with the `sstore-plugin` crate
//! and turns each into one more target kind in the [`Registry`], so the engine never knows a
//! target came from a plugin.
//!
//! - [`load`]: checks a plugin file (permissions, entry symbol, ABI version and table size)
//!   before trusting anything in it, and keeps the library loaded for the life of the process.
//! - [`plugin_target`]: the [`sstore_target_api::Target`] over a plugin's function table; every
//!   call runs on a blocking thread, never on the async runtime's workers.
//! - [`download`]: the async reader fed by a plugin's blocking reads.

mod download;
pub mod load;
mod plugin_target;

use std::path::PathBuf;

use sstore_target_api::registry::RegistryError;
use sstore_target_api::{KindInfo, KindOrigin, Registry};

pub use load::{LoadedPlugin, PluginLoadError, load_folder, load_plugin};
pub use sstore_plugin::abi::ABI_VERSION;

/// The platform's shared-library extension (`so`, `dylib`, `dll`).
pub const LIBRARY_EXTENSION: &str = std::env::consts::DLL_EXTENSION;

impl LoadedPlugin {
    /// Adds the plugin's kind to `registry`.
    pub fn register(self, registry: &mut Registry) -> Result<(), PluginLoadError> {
        let info = KindInfo {
            name: self.kind.clone(),
            schemes: self.schemes.clone(),
            description: self.description.clone(),
            origin: KindOrigin::Plugin {
                file: self.file.clone(),
                abi_version: self.abi_version,
            },
            replaced_builtin: false,
        };
        let file: PathBuf = self.file.clone();
        registry
            .add(info, std::sync::Arc::new(self))
            .map_err(|source: RegistryError| PluginLoadError::Conflict { file, source })
    }
}
