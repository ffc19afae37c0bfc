//! What the location strings front ends are given (`--directory`, `--target`, `--staging`, a
//! schedule's destinations, a console form) name: a configured `[[target]]`, a local folder, a
//! `file://` URL, a UNC path or a URL a target kind serves; and where each job's work files
//! go (its staging folder). Opening goes through a [`Registry`] the front end builds (built-in
//! kinds and plugins).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::backup::{BackupDirectory, BackupError, Destination};
use crate::config::{self, Config, NamedTarget};
use crate::target::location::{self, Location};
use crate::target::{OpenRequest, Registry, Target, TargetError};

/// A target opened from a location string, and the local folder it is rooted at when it is
/// one (so staging can sit on the same disk and the staged file is linked, not copied).
pub struct Opened {
    pub target: Arc<dyn Target>,
    pub local_root: Option<PathBuf>,
}

/// The kind that serves plain paths and `file://` URLs.
const LOCAL_KIND: &str = "local";

/// Opens a configured target.
pub async fn open_named(
    registry: &Registry,
    target: &NamedTarget,
) -> Result<Arc<dyn Target>, TargetError> {
    let request = OpenRequest {
        name: target.name.clone(),
        url: target.url.clone(),
        config: target.settings.clone(),
    };
    registry.open(&target.kind, &request).await
}

/// Opens what `text` names: a configured target's name (when it has no `/` or `\`), else a
/// local path, `file://` URL, UNC path or URL.
pub async fn open(registry: &Registry, config: &Config, text: &str) -> Result<Opened, TargetError> {
    if !text.contains('/')
        && !text.contains('\\')
        && let Some(named) = config.target(text)
    {
        let local_root = if named.kind == LOCAL_KIND {
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
        .unwrap_or_else(config::default_staging_path);
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

/// Where a backup job goes: `directory` (or the config's `[backup] directory`) first, then
/// each of `targets` (or the config's `[backup] targets`), all sharing one staging folder:
/// the first destination's (its own folder when it is local, else `staging`, the config's,
/// or the default). A location named twice is an error.
pub async fn destinations(
    registry: &Registry,
    config: &Config,
    directory: Option<&str>,
    targets: &[String],
    staging: Option<&Path>,
) -> Result<(PathBuf, Vec<Destination>), BackupError> {
    let directory = directory.or(config.backup.directory.as_deref());
    let targets: Vec<String> = if targets.is_empty() {
        config.backup.targets.clone()
    } else {
        targets.to_vec()
    };
    if directory.is_none() && targets.is_empty() {
        return Err(BackupError::NoDirectory);
    }
    let mut names: Vec<&str> = directory.into_iter().collect();
    names.extend(
        targets
            .iter()
            .map(String::as_str)
            .filter(|t| Some(*t) != directory),
    );
    let mut staging_folder = None;
    let mut destinations: Vec<Destination> = Vec::new();
    for name in names {
        let opened = open(registry, config, name).await?;
        let staging_here = staging_folder
            .get_or_insert_with(|| staging_for(&opened, staging, config))
            .clone();
        let location = opened.target.location();
        if destinations.iter().any(|d| d.dir.location() == location) {
            return Err(BackupError::SameDestinationTwice {
                name: name.to_owned(),
                location,
            });
        }
        destinations.push(Destination {
            name: name.to_owned(),
            local: opened.local_root.is_some(),
            dir: BackupDirectory::new(opened.target, staging_here),
        });
    }
    let staging_folder = staging_folder.unwrap_or_else(|| {
        staging
            .map(Path::to_path_buf)
            .unwrap_or_else(config::default_staging_path)
    });
    Ok((staging_folder, destinations))
}

/// The backup directory `directory` (or the config's) names, with its staging folder: what
/// restore, verify, history and prune work on.
pub async fn backup_directory(
    registry: &Registry,
    config: &Config,
    directory: Option<&str>,
    staging: Option<&Path>,
) -> Result<BackupDirectory, BackupError> {
    let Some(text) = directory.or(config.backup.directory.as_deref()) else {
        return Err(BackupError::NoDirectory);
    };
    let opened = open(registry, config, text).await?;
    let staging = staging_for(&opened, staging, config);
    Ok(BackupDirectory::new(opened.target, staging))
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
