//! One module per group of commands; this one dispatches and holds what they share.

mod app;
mod backup;
mod backup_key;
mod cred;
mod job;
mod maintain;
mod operator;
pub(crate) mod schedules;
mod serve;
mod store;
mod targets;

use std::path::{Path, PathBuf};

use anyhow::Result;
use sstore_core::backup::{BackupDirectory, Destination, JobJournal};
use sstore_core::config::{self, Config};
use sstore_core::locations;
use sstore_core::store::{SecureStore, StoreLocation};
use sstore_core::target::Registry;
use sstore_core::{Passphrase, store::UnlockedStore};

use crate::args::{Cli, Command, GlobalArgs};
use crate::passphrase;

/// What every command needs: arguments, config, and the resolved store.
pub struct Context {
    pub global: GlobalArgs,
    pub config: Config,
    /// Where the store lives.
    pub store: StoreLocation,
    /// The same as a path-shaped locator (the file, or the `mssql://` URL), the form backup
    /// jobs, restore requests and the service carry.
    pub store_path: PathBuf,
}

impl Context {
    pub fn open_store(&self) -> Result<SecureStore> {
        Ok(SecureStore::open_at(&self.store)?)
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

    /// Every target kind: built-in, plus the plugins the config and `--plugin` name.
    pub fn registry(&self) -> Result<Registry> {
        crate::targets::registry(&self.config, &self.global.plugins)
    }

    /// The journal of backup jobs.
    pub fn journal(&self) -> JobJournal {
        self.config.journal()
    }

    /// The backup directory named by `--directory`, else by `--target`, else by the config.
    pub async fn directory_or_target(
        &self,
        directory: Option<&String>,
        target: Option<&String>,
        staging: Option<&Path>,
    ) -> Result<BackupDirectory> {
        let registry = self.registry()?;
        let text = directory.or(target).map(String::as_str);
        Ok(locations::backup_directory(&registry, &self.config, text, staging).await?)
    }

    /// Where a backup job goes, and its staging folder (see `locations::destinations`).
    pub async fn destinations(
        &self,
        directory: Option<&String>,
        targets: &[String],
        staging: Option<&Path>,
    ) -> Result<(PathBuf, Vec<Destination>)> {
        let registry = self.registry()?;
        Ok(locations::destinations(
            &registry,
            &self.config,
            directory.map(String::as_str),
            targets,
            staging,
        )
        .await?)
    }
}

pub async fn run(cli: Cli) -> Result<()> {
    let config = Config::load(cli.global.config.as_deref())?;
    // `--store` / SSTORE_STORE: a plain path is an SQLite file; an mssql:// URL is SQL Server.
    let store = match &cli.global.store {
        Some(given) => StoreLocation::from_locator(given)?,
        None => config
            .store
            .clone()
            .unwrap_or_else(|| StoreLocation::Sqlite(config::default_store_path())),
    };
    let ctx = Context {
        global: cli.global,
        config,
        store_path: store.to_locator(),
        store,
    };
    match cli.command {
        Command::Store(cmd) => store::run_store(&ctx, cmd),
        Command::Masterkey(cmd) => store::run_masterkey(&ctx, cmd),
        Command::Key(cmd) => store::run_key(&ctx, cmd),
        Command::BackupKey(cmd) => backup_key::run(cmd),
        Command::App(cmd) => app::run(&ctx, cmd),
        Command::Cred(cmd) => cred::run(&ctx, cmd),
        Command::Backup(args) => job::backup(&ctx, args).await,
        Command::Readiness(args) => job::readiness(&ctx, args).await,
        Command::Status(args) => maintain::status(&ctx, args).await,
        Command::Prune(args) => maintain::prune(&ctx, args).await,
        Command::Unlock(args) => maintain::unlock(&ctx, args).await,
        Command::Restore(args) => backup::restore(&ctx, args).await,
        Command::History(args) => backup::history(&ctx, args).await,
        Command::Verify(args) => backup::verify(&ctx, args).await,
        Command::Targets(args) => targets::run(&ctx, args).await,
        Command::Schedules(args) => schedules::run(&ctx, args),
        Command::Operator(cmd) => operator::run(&ctx, cmd),
        Command::Serve(args) => serve::run(&ctx, args).await,
    }
}

/// Prints a value as pretty JSON.
pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
