//! One module per group of commands; this one dispatches and holds what they share.

mod app;
mod backup;
mod cred;
mod job;
mod maintain;
mod store;
mod targets;

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use sstore_core::backup::{BackupDirectory, Destination, JobJournal};
use sstore_core::store::SecureStore;
use sstore_core::target::Registry;
use sstore_core::{Passphrase, store::UnlockedStore};

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

    /// Every target kind: built-in, plus the plugins the config and `--plugin` name.
    pub fn registry(&self) -> Result<Registry> {
        crate::targets::registry(&self.config, &self.global.plugins)
    }

    /// The journal of backup jobs.
    pub fn journal(&self) -> JobJournal {
        JobJournal::new(
            self.config
                .backup
                .jobs
                .clone()
                .unwrap_or_else(config::default_jobs_path),
        )
    }

    /// The backup directory named by `--directory`, else by `--target`, else by the config.
    pub async fn directory_or_target(
        &self,
        directory: Option<&String>,
        target: Option<&String>,
        staging: Option<&Path>,
    ) -> Result<BackupDirectory> {
        self.backup_directory(directory.or(target), staging).await
    }

    /// Where a backup job goes: the `--directory` (or the config's) first, then each `--target`
    /// (or the config's `backup.targets`), all sharing one staging folder: the directory's own
    /// when it is a local folder, else `--staging` or the config's.
    pub async fn destinations(
        &self,
        directory: Option<&String>,
        targets: &[String],
        staging: Option<&Path>,
    ) -> Result<(PathBuf, Vec<Destination>)> {
        let directory = directory.or(self.config.backup.directory.as_ref());
        let targets: Vec<String> = if targets.is_empty() {
            self.config.backup.targets.clone()
        } else {
            targets.to_vec()
        };
        if directory.is_none() && targets.is_empty() {
            bail!(
                "no backup directory: give --directory DIR or --target TARGET (a folder, URL or configured target), or set [backup] directory in the config file"
            );
        }
        let registry = self.registry()?;
        let mut names: Vec<&String> = directory.into_iter().collect();
        names.extend(targets.iter().filter(|t| Some(*t) != directory));
        let mut staging_folder = None;
        let mut destinations: Vec<Destination> = Vec::new();
        for name in names {
            let opened = crate::targets::open(&registry, &self.config, name).await?;
            let staging_here = staging_folder
                .get_or_insert_with(|| crate::targets::staging_for(&opened, staging, &self.config))
                .clone();
            let location = opened.target.location();
            if destinations.iter().any(|d| d.dir.location() == location) {
                bail!("{name} names {location} twice in one job");
            }
            destinations.push(Destination {
                name: name.clone(),
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

    /// The backup directory named by `--directory` or the config, with its staging folder.
    pub async fn backup_directory(
        &self,
        directory: Option<&String>,
        staging: Option<&Path>,
    ) -> Result<BackupDirectory> {
        let Some(text) = directory.or(self.config.backup.directory.as_ref()) else {
            bail!(
                "no backup directory: give --directory DIR (a folder, URL or configured target), or set [backup] directory in the config file"
            );
        };
        let registry = self.registry()?;
        let opened = crate::targets::open(&registry, &self.config, text).await?;
        let staging = crate::targets::staging_for(&opened, staging, &self.config);
        Ok(BackupDirectory::new(opened.target, staging))
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
        Command::Backup(args) => job::backup(&ctx, args).await,
        Command::Readiness(args) => job::readiness(&ctx, args).await,
        Command::Status(args) => maintain::status(&ctx, args).await,
        Command::Prune(args) => maintain::prune(&ctx, args).await,
        Command::Unlock(args) => maintain::unlock(&ctx, args).await,
        Command::Restore(args) => backup::restore(&ctx, args).await,
        Command::History(args) => backup::history(&ctx, args).await,
        Command::Verify(args) => backup::verify(&ctx, args).await,
        Command::Targets(args) => targets::run(&ctx, args).await,
    }
}

/// Prints a value as pretty JSON.
pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
