//! Which keys a command uses: the key slots a new backup is written with (a passphrase and/or
//! recipients) and the keys given to open backups (a passphrase and/or identity files).

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use sstore_core::backup::{BackupKeys, OpenKeys};
use sstore_core::recipient::{Recipient, read_identity_file};

use crate::commands::Context;
use crate::passphrase;

/// The key slots of a new backup. With recipients (`--recipient`, else the config's
/// `[backup] recipients`), a passphrase slot is added only when a backup passphrase is given:
/// nothing falls back to the store passphrase or asks, so a scheduled job holds no secret
/// that reads its backups. Without recipients: the backup passphrase, else the store
/// passphrase (the job checks that it opens the Master Key), else a prompt.
pub fn backup_keys(ctx: &Context, recipients: &[String]) -> Result<BackupKeys> {
    let recipients: Vec<Recipient> = if recipients.is_empty() {
        ctx.config.recipients()
    } else {
        recipients
            .iter()
            .map(|r| r.parse().with_context(|| format!("--recipient {r}")))
            .collect::<Result<_>>()?
    };
    if !recipients.is_empty() {
        return Ok(BackupKeys {
            passphrase: passphrase::backup_given(ctx.global.backup_passphrase_file.as_deref())?,
            passphrase_is_store: false,
            recipients,
        });
    }
    let (passphrase, passphrase_is_store) = passphrase::backup(
        ctx.global.backup_passphrase_file.as_deref(),
        ctx.global.passphrase_file.as_deref(),
    )?;
    Ok(BackupKeys {
        passphrase: Some(passphrase),
        passphrase_is_store,
        recipients: Vec::new(),
    })
}

/// The keys that open backups. With identity files (`--identity`, or `SSTORE_IDENTITY_FILE`),
/// a passphrase is added only when one is given (the backup's, else the store's); nothing
/// asks. Without: the backup passphrase, else the store passphrase, else a prompt.
pub fn open_keys(ctx: &Context, identity_files: &[PathBuf]) -> Result<OpenKeys> {
    if identity_files.is_empty() {
        let (passphrase, _) = passphrase::backup(
            ctx.global.backup_passphrase_file.as_deref(),
            ctx.global.passphrase_file.as_deref(),
        )?;
        return Ok(OpenKeys::passphrase(passphrase));
    }
    let mut identities = Vec::new();
    for file in identity_files {
        identities.extend(read_identity_file(file)?);
    }
    let passphrase = match passphrase::backup_given(ctx.global.backup_passphrase_file.as_deref())? {
        Some(p) => Some(p),
        None => passphrase::store_given(ctx.global.passphrase_file.as_deref())?,
    };
    Ok(OpenKeys {
        passphrase,
        identities,
    })
}
