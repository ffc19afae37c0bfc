//! The target registry: every target kind this process can open, built-in or loaded from a
//! plugin, looked up by kind name or URL scheme.
//!
//! Built-in kinds register a [`BuiltinKind`] with `inventory::submit!` in their own crate; the
//! binary must reference that crate, or the linker drops the registration. Run-time plugins are
//! added with [`Registry::add`] by the plugin loader. Kinds are kept sorted by name, because
//! `inventory` has no stable order.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::location::{self, Location};
use crate::{Target, TargetError, TargetErrorKind};

/// What a kind is asked to open.
#[derive(Debug, Clone, Default)]
pub struct OpenRequest {
    /// The configured target's name, or the location as typed; used in messages.
    pub name: String,
    /// A URL naming the target (`s3://bucket/prefix`), from the command line or config `url`.
    pub url: Option<String>,
    /// The kind's own settings (a config file's `[[target]]` table without `name`, `kind` and
    /// `url`). Secrets appear only as `*_env` / `*_file` references.
    pub config: toml::Table,
}

impl OpenRequest {
    /// A request for a URL typed on the command line.
    pub fn for_url(url: impl Into<String>) -> Self {
        let url = url.into();
        Self {
            name: url.clone(),
            url: Some(url),
            config: toml::Table::new(),
        }
    }

    /// Deserializes the kind's settings. An unknown or malformed key is an `InvalidConfig`
    /// error that names the target and the key.
    pub fn settings<T: DeserializeOwned>(&self) -> Result<T, TargetError> {
        toml::Value::Table(self.config.clone())
            .try_into()
            .map_err(|e: toml::de::Error| {
                TargetError::new(
                    TargetErrorKind::InvalidConfig,
                    &self.name,
                    None,
                    format!("invalid settings: {}", e.message().trim()),
                )
            })
    }

    /// An `InvalidConfig` error about this target.
    pub fn invalid(&self, message: impl Into<String>) -> TargetError {
        TargetError::new(TargetErrorKind::InvalidConfig, &self.name, None, message)
    }
}

/// Opens targets of one kind.
#[async_trait::async_trait]
pub trait TargetFactory: Send + Sync {
    async fn open(&self, request: &OpenRequest) -> Result<Arc<dyn Target>, TargetError>;
}

/// A built-in kind, registered with `inventory::submit!` by the crate that implements it.
pub struct BuiltinKind {
    /// The kind name used in config (`kind = "local"`).
    pub name: &'static str,
    /// URL schemes this kind serves (`file`, `s3`).
    pub schemes: &'static [&'static str],
    /// One line for `sstore targets`.
    pub description: &'static str,
    pub open: fn(&OpenRequest) -> Result<Arc<dyn Target>, TargetError>,
}

inventory::collect!(BuiltinKind);

struct BuiltinFactory(fn(&OpenRequest) -> Result<Arc<dyn Target>, TargetError>);

#[async_trait::async_trait]
impl TargetFactory for BuiltinFactory {
    async fn open(&self, request: &OpenRequest) -> Result<Arc<dyn Target>, TargetError> {
        (self.0)(request)
    }
}

/// Where a kind comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KindOrigin {
    BuiltIn,
    Plugin { file: PathBuf, abi_version: u32 },
}

/// A kind as `sstore targets` shows it.
#[derive(Debug, Clone)]
pub struct KindInfo {
    pub name: String,
    pub schemes: Vec<String>,
    pub description: String,
    pub origin: KindOrigin,
    /// A plugin of the same name took the place of a built-in kind.
    pub replaced_builtin: bool,
}

struct Entry {
    info: KindInfo,
    factory: Arc<dyn TargetFactory>,
}

/// Why a kind could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("target kind '{kind}' from {new} is already provided by {existing}")]
    DuplicateKind {
        kind: String,
        existing: String,
        new: String,
    },
    #[error("URL scheme '{scheme}' of {new} is already served by kind '{existing}'")]
    DuplicateScheme {
        scheme: String,
        existing: String,
        new: String,
    },
}

/// Every target kind this process can open.
#[derive(Default)]
pub struct Registry {
    entries: Vec<Entry>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| &e.info.name))
            .finish()
    }
}

fn describe_origin(origin: &KindOrigin) -> String {
    match origin {
        KindOrigin::BuiltIn => "a built-in target".to_owned(),
        KindOrigin::Plugin { file, .. } => format!("plugin {}", file.display()),
    }
}

impl Registry {
    /// The kinds registered by every built-in target crate linked into this binary.
    pub fn builtin() -> Self {
        let mut entries: Vec<Entry> = inventory::iter::<BuiltinKind>
            .into_iter()
            .map(|kind| Entry {
                info: KindInfo {
                    name: kind.name.to_owned(),
                    schemes: kind.schemes.iter().map(|s| (*s).to_owned()).collect(),
                    description: kind.description.to_owned(),
                    origin: KindOrigin::BuiltIn,
                    replaced_builtin: false,
                },
                factory: Arc::new(BuiltinFactory(kind.open)),
            })
            .collect();
        entries.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        Self { entries }
    }

    /// Adds a kind. A plugin may take the place of a built-in kind of the same name (the
    /// listing says so); two plugins may not claim the same kind or scheme.
    pub fn add(
        &mut self,
        mut info: KindInfo,
        factory: Arc<dyn TargetFactory>,
    ) -> Result<(), RegistryError> {
        let new = describe_origin(&info.origin);
        if let Some(pos) = self.entries.iter().position(|e| e.info.name == info.name) {
            if self.entries[pos].info.origin != KindOrigin::BuiltIn {
                return Err(RegistryError::DuplicateKind {
                    kind: info.name,
                    existing: describe_origin(&self.entries[pos].info.origin),
                    new,
                });
            }
            self.entries.remove(pos);
            info.replaced_builtin = true;
        }
        for scheme in &info.schemes {
            if let Some(other) = self.kind_for_scheme(scheme) {
                return Err(RegistryError::DuplicateScheme {
                    scheme: scheme.clone(),
                    existing: other.name.clone(),
                    new,
                });
            }
        }
        let at = self
            .entries
            .partition_point(|e| e.info.name.as_str() < info.name.as_str());
        self.entries.insert(at, Entry { info, factory });
        Ok(())
    }

    /// Every kind, sorted by name.
    pub fn kinds(&self) -> impl Iterator<Item = &KindInfo> {
        self.entries.iter().map(|e| &e.info)
    }

    pub fn kind(&self, name: &str) -> Option<&KindInfo> {
        self.kinds().find(|k| k.name == name)
    }

    /// Every URL scheme served, sorted.
    pub fn schemes(&self) -> Vec<&str> {
        let mut schemes: Vec<&str> = self
            .kinds()
            .flat_map(|k| k.schemes.iter().map(String::as_str))
            .collect();
        schemes.sort_unstable();
        schemes
    }

    pub fn kind_for_scheme(&self, scheme: &str) -> Option<&KindInfo> {
        self.kinds()
            .find(|k| k.schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme)))
    }

    /// Opens a target of kind `kind`. Refuses inline secrets in the request's settings.
    pub async fn open(
        &self,
        kind: &str,
        request: &OpenRequest,
    ) -> Result<Arc<dyn Target>, TargetError> {
        crate::secret::refuse_inline_secrets(&request.name, &request.config)?;
        let entry = self
            .entries
            .iter()
            .find(|e| e.info.name == kind)
            .ok_or_else(|| {
                TargetError::new(
                    TargetErrorKind::InvalidConfig,
                    &request.name,
                    None,
                    format!(
                        "unknown target kind '{kind}'; the kinds available are: {}",
                        self.kinds()
                            .map(|k| k.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
        entry.factory.open(request).await
    }

    /// Opens what a `--directory` or `--target` string names: a plain path, `file://`, a UNC
    /// path, or a URL whose scheme a kind serves. An unknown scheme is an error that lists the
    /// schemes available.
    pub async fn open_location(&self, text: &str) -> Result<Arc<dyn Target>, TargetError> {
        let (scheme, request) = match location::parse(text)? {
            Location::Path(path) => {
                let mut config = toml::Table::new();
                config.insert(
                    "path".into(),
                    toml::Value::String(path.to_string_lossy().into_owned()),
                );
                let request = OpenRequest {
                    name: text.to_owned(),
                    url: None,
                    config,
                };
                ("file".to_owned(), request)
            }
            Location::Url { scheme, url } => (scheme, OpenRequest::for_url(url)),
        };
        let kind = self.kind_for_scheme(&scheme).ok_or_else(|| {
            TargetError::new(
                TargetErrorKind::Unsupported,
                text,
                None,
                format!(
                    "no target kind serves '{scheme}://' locations; the schemes available are: {} \
                     (load a plugin with --plugin FILE or the config's `plugins` folder for more)",
                    self.schemes().join(", ")
                ),
            )
        })?;
        let kind = kind.name.clone();
        self.open(&kind, &request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Never;

    #[async_trait::async_trait]
    impl TargetFactory for Never {
        async fn open(&self, request: &OpenRequest) -> Result<Arc<dyn Target>, TargetError> {
            Err(request.invalid("this test factory opens nothing"))
        }
    }

    fn plugin(name: &str, schemes: &[&str], file: &str) -> KindInfo {
        KindInfo {
            name: name.into(),
            schemes: schemes.iter().map(|s| (*s).to_owned()).collect(),
            description: String::new(),
            origin: KindOrigin::Plugin {
                file: file.into(),
                abi_version: 1,
            },
            replaced_builtin: false,
        }
    }

    #[test]
    fn kinds_stay_sorted_and_conflicts_are_refused() {
        let mut registry = Registry::default();
        registry
            .add(plugin("zeta", &["z"], "/p/z.so"), Arc::new(Never))
            .unwrap();
        registry
            .add(plugin("alpha", &["a"], "/p/a.so"), Arc::new(Never))
            .unwrap();
        let names: Vec<&str> = registry.kinds().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["alpha", "zeta"]);
        assert_eq!(registry.schemes(), ["a", "z"]);

        let err = registry
            .add(plugin("alpha", &["b"], "/p/other.so"), Arc::new(Never))
            .unwrap_err();
        assert!(err.to_string().contains("/p/a.so"), "{err}");
        let err = registry
            .add(plugin("beta", &["Z"], "/p/b.so"), Arc::new(Never))
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::DuplicateScheme { .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn unknown_schemes_and_kinds_list_what_is_available() {
        let mut registry = Registry::default();
        registry
            .add(plugin("alpha", &["a", "aa"], "/p/a.so"), Arc::new(Never))
            .unwrap();
        let err = registry.open_location("ftp://host/dir").await.unwrap_err();
        assert_eq!(err.kind, TargetErrorKind::Unsupported);
        assert!(err.message.contains("'ftp://'"), "{err}");
        assert!(err.message.contains("a, aa"), "{err}");
        let err = registry
            .open("nope", &OpenRequest::for_url("x://y"))
            .await
            .unwrap_err();
        assert!(err.message.contains("unknown target kind 'nope'"), "{err}");
        assert!(err.message.contains("alpha"), "{err}");
    }

    #[test]
    fn settings_errors_name_the_target_and_the_key() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Settings {
            path: String,
        }
        let request = OpenRequest {
            name: "nas".into(),
            url: None,
            config: toml::from_str("path = '/x'\npaht = '/y'").unwrap(),
        };
        let err = request.settings::<Settings>().unwrap_err();
        assert_eq!(err.kind, TargetErrorKind::InvalidConfig);
        assert_eq!(err.target, "nas");
        assert!(err.message.contains("paht"), "{err}");
    }
}
