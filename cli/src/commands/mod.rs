//! One module per group of commands; this one dispatches and holds what they share.

mod app;
mod backup;
mod cred;
mod store;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, bail};
use sstore_core::backup::BackupDirectory;
use sstore_core::store::SecureStore;
use sstore_core::{Passphrase, store::UnlockedStore};
use sstore_target_local::LocalTarget;

use crate::args::{Cli, Command, GlobalArgs};
use crate::config::{self, Config};
use crate::passphrase;

/// What every command needs: arguments, config, and the resolved store path.
pub struct Context {
    pub global: GlobalArgs,
    pub config: Config,
    pub store_path: PathBuf,
}

impl Context {
    pub fn open_store(&self) -> Result<SecureStore> {
        Ok(SecureStore::open(&self.store_path)?)
    }

    pub fn store_passphrase(&self, confirm: bool) -> Result<Passphrase> {
        passphrase::store(self.global.passphrase_file.as_deref(), confirm)
    }

    /// Opens the store and its Master Key.
    pub fn unlock(&self) -> Result<UnlockedStore> {
        let store = self.open_store()?;
        let passphrase = self.store_passphrase(false)?;
        Ok(store.unlock(&passphrase)?)
    }

    /// The backup directory named by `--directory` or the config, with its staging folder.
    pub fn backup_directory(&self, directory: Option<&PathBuf>) -> Result<BackupDirectory> {
        let dir = match directory.or(self.config.backup.directory.as_ref()) {
            Some(d) => d.clone(),
            None => bail!(
                "no backup directory: give --directory DIR, or set [backup] directory in the config file"
            ),
        };
        let text = dir.to_string_lossy();
        if text.contains("://") || (cfg!(not(windows)) && text.starts_with("\\\\")) {
            bail!(
                "'{text}' is a network location; this version backs up to local folders only \
                 (network targets arrive with target plugins): give a local folder"
            );
        }
        // Work files live on the same disk as the backups, so staged files are linked, not copied.
        let staging = dir.join(".sstore-staging");
        Ok(BackupDirectory::new(
            Arc::new(LocalTarget::new(dir)),
            staging,
        ))
    }
}

pub async fn run(cli: Cli) -> Result<()> {
    let config = Config::load(cli.global.config.as_deref())?;
    let store_path = cli
        .global
        .store
        .clone()
        .or_else(|| config.store.clone())
        .unwrap_or_else(config::default_store_path);
    let ctx = Context {
        global: cli.global,
        config,
        store_path,
    };
    match cli.command {
        Command::Store(cmd) => store::run_store(&ctx, cmd),
        Command::Masterkey(cmd) => store::run_masterkey(&ctx, cmd),
        Command::Key(cmd) => store::run_key(&ctx, cmd),
        Command::App(cmd) => app::run(&ctx, cmd),
        Command::Cred(cmd) => cred::run(&ctx, cmd),
        Command::Backup(args) => backup::backup(&ctx, args).await,
        Command::Restore(args) => backup::restore(&ctx, args).await,
        Command::History(args) => backup::history(&ctx, args).await,
        Command::Verify(args) => backup::verify(&ctx, args).await,
    }
}

/// Prints a value as pretty JSON.
pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
