//! The registry of every target kind this binary has: the built-in kinds (which the binary
//! must reference for the linker to keep their registrations), plus plugins from the
//! config's `plugins` folder and `--plugin` files. What a location string names is decided
//! in core (`sstore_core::locations`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use sstore_core::config::Config;
use sstore_core::target::Registry;

/// The built-in target kinds. Calling into each crate here is what makes the linker keep its
/// `inventory` registration; `registry` checks that each one arrived.
pub fn builtin_kinds() -> Vec<&'static str> {
    vec![
        sstore_target_local::kind(),
        sstore_target_s3::kind(),
        sstore_target_azure::kind(),
        sstore_target_opendal::kind(),
        #[cfg(feature = "smb")]
        sstore_target_smb::kind(),
    ]
}

/// Every kind this process can open: built-in ones, then plugins (the config's folder first,
/// then each `--plugin FILE`). A plugin that cannot be loaded is an error naming its file.
pub fn registry(config: &Config, plugin_files: &[PathBuf]) -> Result<Registry> {
    let mut registry = Registry::builtin();
    for kind in builtin_kinds() {
        if registry.kind(kind).is_none() {
            bail!(
                "internal error: the built-in target kind '{kind}' did not register (the binary must reference its crate)"
            );
        }
    }
    let mut loaded = BTreeSet::new();
    let mut plugins = Vec::new();
    if let Some(folder) = &config.plugins {
        plugins.extend(
            sstore_target_dylib::load_folder(folder)
                .with_context(|| format!("loading plugins from {}", folder.display()))?,
        );
    }
    for file in plugin_files {
        let canonical = std::fs::canonicalize(file).unwrap_or_else(|_| file.clone());
        if plugins.iter().any(|p| p.file == canonical) {
            continue;
        }
        plugins.push(sstore_target_dylib::load_plugin(file)?);
    }
    for plugin in plugins {
        if loaded.insert(plugin.file.clone()) {
            plugin.register(&mut registry)?;
        }
    }
    Ok(registry)
}
