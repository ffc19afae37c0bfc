//! Where the operators file and the audit log are, the same for `sstore serve` and the
//! `sstore operator` commands.

use std::path::PathBuf;

use sstore_core::config::Config;

/// The operators file's name when the config does not name one.
pub const OPERATORS_FILE_NAME: &str = "operators.json";
/// The audit log's name in the service's state folder.
pub const AUDIT_FILE_NAME: &str = "audit.log";

/// The service's own folder: `[serve] state`, else `sstore/service` in the platform's data
/// folder (`~/.local/share/sstore/service` on Linux).
pub fn state_dir(config: &Config) -> PathBuf {
    config.serve.state.clone().unwrap_or_else(|| {
        dirs::data_local_dir()
            .unwrap_or_else(|| PathBuf::from("."))
            .join("sstore")
            .join("service")
    })
}

/// The operators file: `[serve] operators`, else `operators.json` beside the config file,
/// else in the state folder. Beside the config because it is part of how this service is
/// set up (who may use it), and the store is no place for it: the service must check a
/// login without the store's passphrase.
pub fn operators_path(config: &Config) -> PathBuf {
    if let Some(path) = &config.serve.operators {
        return path.clone();
    }
    match config.path.as_deref().and_then(|p| p.parent()) {
        Some(dir) => dir.join(OPERATORS_FILE_NAME),
        None => state_dir(config).join(OPERATORS_FILE_NAME),
    }
}

/// The audit log: `audit.log` in the state folder.
pub fn audit_path(config: &Config) -> PathBuf {
    state_dir(config).join(AUDIT_FILE_NAME)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use super::*;

    #[test]
    fn the_operators_file_is_named_or_beside_the_config_or_in_the_state_folder() {
        let named = Config::parse(
            "[serve]\noperators = 'ops.json'\nstate = 'st'\n",
            Path::new("/etc/sstore/config.toml"),
        )
        .unwrap();
        assert_eq!(operators_path(&named), Path::new("/etc/sstore/ops.json"));
        assert_eq!(audit_path(&named), Path::new("/etc/sstore/st/audit.log"));
        let beside = Config::parse("", Path::new("/etc/sstore/config.toml")).unwrap();
        assert_eq!(
            operators_path(&beside),
            Path::new("/etc/sstore/operators.json")
        );
        let none = Config::default();
        assert!(
            operators_path(&none).ends_with("sstore/service/operators.json"),
            "{}",
            operators_path(&none).display()
        );
        assert!(audit_path(&none).ends_with("sstore/service/audit.log"));
    }
}
