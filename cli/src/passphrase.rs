//! Where passphrases come from: environment, file, or a prompt without echo. Never printed.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, bail};
use sstore_core::Passphrase;

const STORE_ENV: &str = "SSTORE_PASSPHRASE";
const BACKUP_ENV: &str = "SSTORE_BACKUP_PASSPHRASE";
const NEW_ENV: &str = "SSTORE_NEW_PASSPHRASE";

fn from_file(path: &Path) -> Result<Passphrase> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            eprintln!(
                "warning: passphrase file {} can be read by other users; restrict it with `chmod 600`",
                path.display()
            );
        }
    }
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("reading passphrase file {}", path.display()))?,
    );
    let passphrase = Passphrase::from_file_contents(&text);
    if passphrase.expose().is_empty() {
        bail!("passphrase file {} is empty", path.display());
    }
    Ok(passphrase)
}

fn from_env(name: &str) -> Option<Passphrase> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .map(Passphrase::new)
}

fn prompt(label: &str, confirm: bool, hint: &str) -> Result<Passphrase> {
    if !std::io::stdin().is_terminal() && !std::io::stderr().is_terminal() {
        bail!("no {label} given and no terminal to ask on: {hint}");
    }
    let first = Passphrase::new(
        rpassword::prompt_password(format!("{label}: ")).context("reading the passphrase")?,
    );
    if confirm {
        let second = Passphrase::new(rpassword::prompt_password(format!("Repeat the {label}: "))?);
        if first.expose() != second.expose() {
            bail!("the two passphrases differ");
        }
    }
    Ok(first)
}

/// The store passphrase, or `None` when none was given without prompting.
pub fn store_given(file: Option<&Path>) -> Result<Option<Passphrase>> {
    if let Some(p) = from_env(STORE_ENV) {
        return Ok(Some(p));
    }
    file.map(from_file).transpose()
}

/// The store passphrase; prompts (twice when `confirm`) if none was given.
pub fn store(file: Option<&Path>, confirm: bool) -> Result<Passphrase> {
    match store_given(file)? {
        Some(p) => Ok(p),
        None => prompt(
            "store passphrase",
            confirm,
            "set SSTORE_PASSPHRASE or use --passphrase-file FILE",
        ),
    }
}

/// The backup passphrase when one was given (environment or file), without falling back to
/// the store passphrase or asking.
pub fn backup_given(backup_file: Option<&Path>) -> Result<Option<Passphrase>> {
    if let Some(p) = from_env(BACKUP_ENV) {
        return Ok(Some(p));
    }
    backup_file.map(from_file).transpose()
}

/// The backup passphrase, and whether it fell back to the store passphrase.
pub fn backup(backup_file: Option<&Path>, store_file: Option<&Path>) -> Result<(Passphrase, bool)> {
    if let Some(p) = from_env(BACKUP_ENV) {
        return Ok((p, false));
    }
    if let Some(file) = backup_file {
        return Ok((from_file(file)?, false));
    }
    Ok((store(store_file, false)?, true))
}

/// The new passphrase for `masterkey update` (asked twice when prompted).
pub fn new(file: Option<&Path>) -> Result<Passphrase> {
    if let Some(p) = from_env(NEW_ENV) {
        return Ok(p);
    }
    match file {
        Some(f) => from_file(f),
        None => prompt(
            "new passphrase",
            true,
            "set SSTORE_NEW_PASSPHRASE or use --new-passphrase-file FILE",
        ),
    }
}
