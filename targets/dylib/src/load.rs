//! Loading a plugin file: refuse files other users could have replaced, find the entry symbol,
//! check the ABI version and table size before reading anything else, and never unload.

use std::path::{Path, PathBuf};

use sstore_plugin::abi::{ABI_VERSION, ENTRY_SYMBOL, EntryFn, PluginHeader, PluginTable, Str};
use sstore_target_api::registry::RegistryError;

/// Why a plugin was refused. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum PluginLoadError {
    #[error("plugin {path}: {reason}")]
    Insecure { path: PathBuf, reason: String },
    #[error("plugin {path} cannot be read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("plugin {path} is not a loadable shared library: {source}")]
    NotALibrary {
        path: PathBuf,
        #[source]
        source: libloading::Error,
    },
    #[error(
        "{path} is not an sstore plugin: it does not export the `{ENTRY_SYMBOL}` symbol (build it with sstore_plugin::export_plugin!)"
    )]
    MissingEntry { path: PathBuf },
    #[error(
        "plugin {path} was built for plugin ABI version {found}, but this sstore speaks version {expected}: rebuild the plugin against sstore-plugin for ABI {expected}"
    )]
    AbiMismatch {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error(
        "plugin {path} declares a {found}-byte function table, smaller than the {expected} bytes of ABI version {ABI_VERSION}: it is damaged or built with a mismatched sstore-plugin"
    )]
    TableTooSmall {
        path: PathBuf,
        found: u32,
        expected: usize,
    },
    #[error("plugin {path} has an invalid function table: {reason}")]
    InvalidTable { path: PathBuf, reason: String },
    #[error("plugin {file}: {source}")]
    Conflict {
        file: PathBuf,
        #[source]
        source: RegistryError,
    },
}

/// A plugin whose table passed every check. Its library stays loaded until the process ends.
pub struct LoadedPlugin {
    pub file: PathBuf,
    pub kind: String,
    pub schemes: Vec<String>,
    pub description: String,
    pub plugin_version: String,
    pub abi_version: u32,
    pub(crate) table: &'static PluginTable,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("file", &self.file)
            .field("kind", &self.kind)
            .field("abi_version", &self.abi_version)
            .finish_non_exhaustive()
    }
}

/// Refuses a file or folder that a user other than the owner (or root) could modify: whoever
/// can replace a plugin runs code inside every later sstore job, with its secrets.
fn check_permissions(path: &Path, what: &str, file: &Path) -> Result<(), PluginLoadError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).map_err(|source| PluginLoadError::Io {
            path: path.to_owned(),
            source,
        })?;
        let me = rustix::process::geteuid().as_raw();
        let insecure = |reason: String| PluginLoadError::Insecure {
            path: file.to_owned(),
            reason,
        };
        // A sticky, world-writable folder (/tmp) still lets others add files; refuse it too.
        if meta.mode() & 0o022 != 0 {
            return Err(insecure(format!(
                "the {what} {} is writable by other users (mode {:o}), so someone else could \
                 replace the plugin and run code inside sstore; make it writable by its owner \
                 only (chmod go-w)",
                path.display(),
                meta.mode() & 0o7777
            )));
        }
        if meta.uid() != me && meta.uid() != 0 {
            return Err(insecure(format!(
                "the {what} {} belongs to another user (uid {}); only plugins owned by you or \
                 root are loaded",
                path.display(),
                meta.uid()
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = (path, what, file);
    Ok(())
}

/// Reads a table string, refusing invalid UTF-8.
///
/// # Safety
/// `s` must come from a table that passed the version and size checks.
unsafe fn table_text(s: Str, field: &str, path: &Path) -> Result<String, PluginLoadError> {
    // SAFETY: the plugin's table strings point to its static data, alive while it is loaded.
    unsafe { s.as_str() }
        .map(str::to_owned)
        .ok_or_else(|| PluginLoadError::InvalidTable {
            path: path.to_owned(),
            reason: format!("the {field} is not valid UTF-8"),
        })
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | '_'))
}

/// Loads one plugin file.
pub fn load_plugin(path: &Path) -> Result<LoadedPlugin, PluginLoadError> {
    let file = std::fs::canonicalize(path).map_err(|source| PluginLoadError::Io {
        path: path.to_owned(),
        source,
    })?;
    if let Some(folder) = file.parent() {
        check_permissions(folder, "folder", &file)?;
    }
    check_permissions(&file, "file", &file)?;

    // SAFETY: loading a library runs its initialisers. The file passed the ownership and
    // permission checks above; running trusted native code is what loading a plugin means.
    let library = unsafe { libloading::Library::new(&file) }.map_err(|source| {
        PluginLoadError::NotALibrary {
            path: file.clone(),
            source,
        }
    })?;
    // The library is never unloaded: tables, strings and handles point into it, and unloading
    // Rust code with live thread-locals is unsound.
    let library: &'static libloading::Library = Box::leak(Box::new(library));
    // SAFETY: the symbol's type is the documented entry signature; its presence is checked.
    let entry = unsafe { library.get::<EntryFn>(ENTRY_SYMBOL.as_bytes()) }
        .map_err(|_| PluginLoadError::MissingEntry { path: file.clone() })?;
    // SAFETY: calling the entry function the plugin exported under the documented name.
    let header_ptr = unsafe { entry() };
    // SAFETY: the entry function returns null or its table, which lives in the plugin's static
    // data; the library is never unloaded.
    unsafe { LoadedPlugin::from_table(header_ptr, file) }
}

impl LoadedPlugin {
    /// Checks a plugin's table (the ABI version and table size first, then its kind name,
    /// description, version and schemes) and takes it as the plugin loaded from `file`.
    /// [`load_plugin`] calls it with what the library's entry function returned; the fuzzer
    /// calls it with tables built in memory.
    ///
    /// # Safety
    /// `header` must be null or point to a readable [`PluginHeader`]. If that header names ABI
    /// version [`ABI_VERSION`] and a table of at least `size_of::<PluginTable>()` bytes, it
    /// must be the start of a readable [`PluginTable`] whose strings and scheme list are null
    /// or point to as many readable bytes and entries as they claim (they are copied here).
    /// The table and the code behind its functions must stay valid and unchanged for as long
    /// as the returned plugin, or any target opened through it, is in use.
    pub unsafe fn from_table(
        header: *const PluginHeader,
        file: PathBuf,
    ) -> Result<LoadedPlugin, PluginLoadError> {
        if header.is_null() {
            return Err(PluginLoadError::InvalidTable {
                path: file,
                reason: "the entry function returned no table".into(),
            });
        }
        let header_ptr = header;
        // SAFETY: every version of the ABI starts with the 8-byte header; nothing else is read
        // until the version and size are checked.
        let header: PluginHeader = unsafe { header_ptr.read() };
        if header.abi_version != ABI_VERSION {
            return Err(PluginLoadError::AbiMismatch {
                path: file,
                found: header.abi_version,
                expected: ABI_VERSION,
            });
        }
        if (header.table_size as usize) < std::mem::size_of::<PluginTable>() {
            return Err(PluginLoadError::TableTooSmall {
                path: file,
                found: header.table_size,
                expected: std::mem::size_of::<PluginTable>(),
            });
        }
        // SAFETY: version and size match ABI version 1, whose table starts with the header; the
        // caller guarantees the table stays valid (a plugin's static data, never unloaded).
        let table: &'static PluginTable = unsafe { &*header_ptr.cast::<PluginTable>() };

        // SAFETY: the table passed the checks above.
        let (kind, description, plugin_version) = unsafe {
            (
                table_text(table.kind, "kind name", &file)?,
                table_text(table.description, "description", &file)?,
                table_text(table.plugin_version, "plugin version", &file)?,
            )
        };
        if !valid_name(&kind) {
            return Err(PluginLoadError::InvalidTable {
                path: file,
                reason: format!(
                    "the kind name '{}' is not a plain name",
                    kind.escape_debug()
                ),
            });
        }
        if table.schemes_len > 64 || (table.schemes.is_null() && table.schemes_len > 0) {
            return Err(PluginLoadError::InvalidTable {
                path: file,
                reason: "the scheme list is invalid".into(),
            });
        }
        let mut schemes = Vec::with_capacity(table.schemes_len);
        for i in 0..table.schemes_len {
            // SAFETY: `schemes` points to `schemes_len` entries in the plugin's static data.
            let scheme = unsafe { table_text(*table.schemes.add(i), "scheme", &file)? };
            if !valid_name(&scheme) {
                return Err(PluginLoadError::InvalidTable {
                    path: file,
                    reason: format!("the scheme '{}' is not a plain name", scheme.escape_debug()),
                });
            }
            schemes.push(scheme.to_ascii_lowercase());
        }
        Ok(LoadedPlugin {
            file,
            kind,
            schemes,
            description,
            plugin_version,
            abi_version: header.abi_version,
            table,
        })
    }
}

/// Loads every shared library (`*.so`, `*.dylib` or `*.dll`) in `folder`, sorted by file
/// name. A missing folder holds no plugins; an insecure one is refused.
pub fn load_folder(folder: &Path) -> Result<Vec<LoadedPlugin>, PluginLoadError> {
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(PluginLoadError::Io {
                path: folder.to_owned(),
                source,
            });
        }
    };
    check_permissions(folder, "plugins folder", folder)?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| PluginLoadError::Io {
            path: folder.to_owned(),
            source,
        })?;
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) == Some(crate::LIBRARY_EXTENSION) {
            files.push(path);
        }
    }
    files.sort();
    files.iter().map(|f| load_plugin(f)).collect()
}
