//! Target selection: the registry of every target kind (built-in, plus plugins from the
//! config's `plugins` folder and `--plugin` files), and what a `--directory` string names: a
//! configured `[[target]]`, a local folder, or a URL / UNC path.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use sstore_core::target::location::{self, Location};
use sstore_core::target::{OpenRequest, Registry, Target};

use crate::config::{Config, NamedTarget};

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

/// A target opened from a `--directory` / `targets test` string, and the local folder it is
/// rooted at when it is one (so staging can sit on the same disk).
pub struct Opened {
    pub target: Arc<dyn Target>,
    pub local_root: Option<PathBuf>,
}

/// Opens a configured target.
pub async fn open_named(registry: &Registry, target: &NamedTarget) -> Result<Arc<dyn Target>> {
    let request = OpenRequest {
        name: target.name.clone(),
        url: target.url.clone(),
        config: target.settings.clone(),
    };
    Ok(registry.open(&target.kind, &request).await?)
}

/// Opens what `text` names: a configured target's name (when it has no `/`), else a local
/// path, `file://`, UNC path or URL.
pub async fn open(registry: &Registry, config: &Config, text: &str) -> Result<Opened> {
    if !text.contains('/')
        && !text.contains('\\')
        && let Some(named) = config.target(text)
    {
        let local_root = if named.kind == sstore_target_local::KIND {
            named
                .url
                .as_deref()
                .and_then(location::file_url_path)
                .or_else(|| named.settings.get("path")?.as_str().map(PathBuf::from))
        } else {
            None
        };
        return Ok(Opened {
            target: open_named(registry, named).await?,
            local_root,
        });
    }
    let local_root = match location::parse(text)? {
        Location::Path(path) => Some(path),
        Location::Url { scheme, url } if scheme == "file" => location::file_url_path(&url),
        Location::Url { .. } => None,
    };
    Ok(Opened {
        target: registry.open_location(text).await?,
        local_root,
    })
}

/// The staging folder for a backup directory: beside the backups for a local folder (so the
/// staged file is linked into place, not copied); otherwise `explicit`, the config's
/// `[backup] staging`, or the platform default, with one subfolder per location so jobs on
/// different directories never share a lock or work files.
pub fn staging_for(opened: &Opened, explicit: Option<&Path>, config: &Config) -> PathBuf {
    if let (Some(root), None) = (&opened.local_root, explicit) {
        return root.join(".sstore-staging");
    }
    let base = explicit
        .map(Path::to_path_buf)
        .or_else(|| config.backup.staging.clone())
        .unwrap_or_else(crate::config::default_staging_path);
    base.join(staging_subfolder(&opened.target.location()))
}

/// A readable, unique folder name for a location: its safe characters plus a short hash.
fn staging_subfolder(location: &str) -> String {
    // FNV-1a: stable across runs and platforms, enough to tell locations apart.
    let hash = location.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let readable: String = location
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(48)
        .collect();
    format!("{readable}-{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_subfolders_differ_per_location_and_are_safe() {
        let a = staging_subfolder("s3://bucket/a");
        let b = staging_subfolder("s3://bucket/b");
        assert_ne!(a, b);
        assert!(a.starts_with("s3___bucket_a-"), "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        );
        assert_eq!(a, staging_subfolder("s3://bucket/a"));
    }
}
