//! Secrets in target settings. A config file names where a secret is (`password_env =
//! "NAS_PASSWORD"` or `password_file = "/etc/sstore/nas.pw"`), never the secret itself.

use std::path::Path;

use zeroize::Zeroizing;

use crate::{TargetError, TargetErrorKind};

/// Setting names that hold secrets and so may not be written inline.
const SECRET_NAMES: &[&str] = &[
    "password",
    "passphrase",
    "secret",
    "secret_key",
    "secret_access_key",
    "session_token",
    "token",
    "account_key",
    "access_key",
    "sas_token",
    "client_secret",
    "private_key",
];

/// Refuses settings that hold a secret inline, naming the target and the setting.
pub fn refuse_inline_secrets(target: &str, config: &toml::Table) -> Result<(), TargetError> {
    for (name, _) in config {
        if SECRET_NAMES.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(TargetError::new(
                TargetErrorKind::InvalidConfig,
                target,
                None,
                format!(
                    "'{name}' holds a secret and cannot be written in the config file; use \
                     {name}_env = \"VARIABLE\" (an environment variable) or {name}_file = \
                     \"/path/to/file\" (an owner-only file) instead"
                ),
            ));
        }
    }
    Ok(())
}

/// Resolves a secret setting from its `*_env` or `*_file` reference. `Ok(None)` when neither
/// is given; an error when both are, when the variable is unset, or when the file is missing or
/// readable by other users.
pub fn resolve(
    target: &str,
    setting: &str,
    env: Option<&str>,
    file: Option<&Path>,
) -> Result<Option<Zeroizing<String>>, TargetError> {
    let invalid =
        |message: String| TargetError::new(TargetErrorKind::InvalidConfig, target, None, message);
    match (env, file) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(invalid(format!(
            "give either {setting}_env or {setting}_file, not both"
        ))),
        (Some(var), None) => match std::env::var(var) {
            Ok(value) if !value.is_empty() => Ok(Some(Zeroizing::new(value))),
            _ => Err(invalid(format!(
                "{setting}_env names the environment variable {var}, which is not set"
            ))),
        },
        (None, Some(path)) => read_secret_file(target, setting, path).map(Some),
    }
}

fn read_secret_file(
    target: &str,
    setting: &str,
    path: &Path,
) -> Result<Zeroizing<String>, TargetError> {
    let invalid =
        |message: String| TargetError::new(TargetErrorKind::InvalidConfig, target, None, message);
    let metadata = std::fs::metadata(path).map_err(|e| {
        invalid(format!(
            "{setting}_file {} cannot be read: {e}",
            path.display()
        ))
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(invalid(format!(
                "{setting}_file {} can be read by other users (mode {:o}); make it owner-only \
                 (chmod 600) so the secret stays secret",
                path.display(),
                mode & 0o777
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = metadata;
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        invalid(format!(
            "{setting}_file {} cannot be read: {e}",
            path.display()
        ))
    })?);
    let value = text.trim_end_matches(['\r', '\n']);
    if value.is_empty() {
        return Err(invalid(format!(
            "{setting}_file {} is empty",
            path.display()
        )));
    }
    Ok(Zeroizing::new(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_secrets_are_refused_by_name() {
        let config: toml::Table = toml::from_str("server = 'nas'\nPassword = 'x'").unwrap();
        let err = refuse_inline_secrets("nas", &config).unwrap_err();
        assert!(err.message.contains("'Password'"), "{err}");
        assert!(err.message.contains("Password_env"), "{err}");
        assert!(!err.to_string().contains("'x'"), "{err}");
        let config: toml::Table = toml::from_str("password_env = 'NAS_PW'").unwrap();
        refuse_inline_secrets("nas", &config).unwrap();
    }

    #[test]
    fn env_and_file_references() {
        assert!(resolve("t", "password", None, None).unwrap().is_none());
        let err =
            resolve("t", "password", Some("SSTORE_TEST_UNSET_VARIABLE_42"), None).unwrap_err();
        assert!(
            err.message.contains("SSTORE_TEST_UNSET_VARIABLE_42"),
            "{err}"
        );

        let dir = std::env::temp_dir().join(format!("sstore-secret-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "s3cret\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = resolve("t", "password", None, Some(&file)).unwrap_err();
            assert!(err.message.contains("chmod 600"), "{err}");
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let value = resolve("t", "password", None, Some(&file))
            .unwrap()
            .unwrap();
        assert_eq!(value.as_str(), "s3cret");
        let err = resolve("t", "password", Some("X"), Some(&file)).unwrap_err();
        assert!(err.message.contains("not both"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
