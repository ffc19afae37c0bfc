//! The secrets an unattended service needs, never asked at a prompt: the store passphrase
//! (a backup without recipients or backup passphrase falls back to it, and a restore checks
//! that it opens the restored store), the backup passphrase, and identity files (for the
//! service's restores and verifies). With recipients and no passphrase at all, the service
//! holds nothing that decrypts a backup. Each comes from an owner-only file named in `[serve]`,
//! from `$CREDENTIALS_DIRECTORY` (systemd credentials: `sstore-passphrase`,
//! `sstore-backup-passphrase`, `sstore-identity`), or from the environment
//! (`SSTORE_PASSPHRASE`, `SSTORE_BACKUP_PASSPHRASE`). A file others can read refuses the start.

use std::path::{Path, PathBuf};

use sstore_core::Passphrase;
use sstore_core::config::ServeSection;
use sstore_core::recipient::{Identity, read_identity_file};

use crate::error::ServiceError;

const STORE_ENV: &str = "SSTORE_PASSPHRASE";
const BACKUP_ENV: &str = "SSTORE_BACKUP_PASSPHRASE";
const CREDENTIALS_ENV: &str = "CREDENTIALS_DIRECTORY";
const STORE_CREDENTIAL: &str = "sstore-passphrase";
const BACKUP_CREDENTIAL: &str = "sstore-backup-passphrase";
const IDENTITY_CREDENTIAL: &str = "sstore-identity";

/// What the service holds. Debug output names which secrets are present, never their values.
#[derive(Default)]
pub struct Secrets {
    pub store_passphrase: Option<Passphrase>,
    pub backup_passphrase: Option<Passphrase>,
    pub identities: Vec<Identity>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("store_passphrase", &self.store_passphrase.is_some())
            .field("backup_passphrase", &self.backup_passphrase.is_some())
            .field("identities", &self.identities.len())
            .finish()
    }
}

impl Secrets {
    /// Reads what `serve` names, then `$CREDENTIALS_DIRECTORY`, then the environment.
    pub fn load(serve: &ServeSection) -> Result<Self, ServiceError> {
        let credentials = std::env::var_os(CREDENTIALS_ENV).map(PathBuf::from);
        let credential = |name: &str| {
            credentials
                .as_ref()
                .map(|dir| dir.join(name))
                .filter(|p| p.is_file())
        };
        let passphrase = |file: &Option<PathBuf>, credential_name: &str, env: &str| match file
            .clone()
            .or_else(|| credential(credential_name))
        {
            Some(path) => read_passphrase(&path).map(Some),
            None => Ok(std::env::var(env)
                .ok()
                .filter(|v| !v.is_empty())
                .map(Passphrase::new)),
        };
        let mut identity_files = serve.identity_files.clone();
        if identity_files.is_empty()
            && let Some(path) = credential(IDENTITY_CREDENTIAL)
        {
            identity_files.push(path);
        }
        let mut identities = Vec::new();
        for file in &identity_files {
            identities.extend(read_identity_file(file).map_err(|e| ServiceError::Secret {
                what: "identity file".into(),
                path: file.clone(),
                reason: e.to_string(),
            })?);
        }
        Ok(Self {
            store_passphrase: passphrase(
                &serve.store_passphrase_file,
                STORE_CREDENTIAL,
                STORE_ENV,
            )?,
            backup_passphrase: passphrase(
                &serve.backup_passphrase_file,
                BACKUP_CREDENTIAL,
                BACKUP_ENV,
            )?,
            identities,
        })
    }
}

/// The first line of an owner-only file.
fn read_passphrase(path: &Path) -> Result<Passphrase, ServiceError> {
    let refuse = |reason: String| ServiceError::Secret {
        what: "passphrase file".into(),
        path: path.to_owned(),
        reason,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| refuse(e.to_string()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(refuse(format!(
                "it can be read by other users (mode {:o}); restrict it with `chmod 600`",
                mode & 0o777
            )));
        }
    }
    let text =
        zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| refuse(e.to_string()))?);
    let passphrase = Passphrase::from_file_contents(&text);
    if passphrase.expose().is_empty() {
        return Err(refuse("it is empty".into()));
    }
    Ok(passphrase)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_passphrase_file_others_can_read_is_refused_and_values_never_show() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pass");
        std::fs::write(&path, "Service-Secret-1\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = read_passphrase(&path).unwrap_err().to_string();
            assert!(e.contains("chmod 600") && e.contains("pass"), "{e}");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let serve = ServeSection {
            backup_passphrase_file: Some(path.clone()),
            ..ServeSection::default()
        };
        let secrets = Secrets::load(&serve).unwrap();
        assert_eq!(
            secrets.backup_passphrase.as_ref().unwrap().expose(),
            "Service-Secret-1"
        );
        assert!(!format!("{secrets:?}").contains("Service-Secret-1"));
    }
}
