//! Command-line arguments. Command and flag names follow Backup-SPFarm and the Secure Store
//! cmdlets; scripts and docs rely on them, so they do not change.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "sstore",
    version,
    about = "Keep a Secure Store of credentials and back it up, encrypted.",
    after_help = "Passphrases: the store passphrase comes from SSTORE_PASSPHRASE, --passphrase-file, or a prompt. \
The backup passphrase comes from SSTORE_BACKUP_PASSPHRASE or --backup-passphrase-file and falls back to the store passphrase.\n\n\
Exit codes: 0 ok, 1 failed, 2 usage, 3 wrong passphrase, 4 no store, 5 backup damaged or not matching its manifest, 6 another job holds the backup directory."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The store file [default: the config's `store`, else the platform data folder]
    #[arg(long, global = true, env = "SSTORE_STORE", value_name = "PATH")]
    pub store: Option<PathBuf>,
    /// Configuration file [default: sstore/config.toml in the platform config folder, if present]
    #[arg(long, global = true, env = "SSTORE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Read the store passphrase from the first line of FILE (instead of SSTORE_PASSPHRASE or a prompt)
    #[arg(long, global = true, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Read the backup passphrase from FILE (instead of SSTORE_BACKUP_PASSPHRASE); without either, the store passphrase is used
    #[arg(long, global = true, value_name = "FILE")]
    pub backup_passphrase_file: Option<PathBuf>,
    /// Load a target plugin (a shared library built with sstore-plugin); repeatable. Plugins in the config's `plugins` folder load too
    #[arg(long = "plugin", global = true, value_name = "FILE")]
    pub plugins: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or describe the store
    #[command(subcommand)]
    Store(StoreCommand),
    /// Manage target applications
    #[command(subcommand)]
    App(AppCommand),
    /// Manage credential sets
    #[command(subcommand)]
    Cred(CredCommand),
    /// Change the passphrase: creates a new Master Key and re-encrypts every credential set (as Update-SPSecureStoreMasterKey)
    #[command(subcommand)]
    Masterkey(MasterkeyCommand),
    /// Check that a passphrase opens the current Master Key (as Update-SPSecureStoreApplicationServerKey)
    #[command(subcommand)]
    Key(KeyCommand),
    /// Back up the store and its Master Key to a backup directory (as Backup-SPFarm)
    Backup(BackupArgs),
    /// Restore the store from a backup directory
    Restore(RestoreArgs),
    /// Show the backups and restores recorded in a backup directory (as Get-SPBackupHistory)
    History(HistoryArgs),
    /// Decrypt and check a backup without restoring it
    Verify(VerifyArgs),
    /// List target kinds and configured targets, or run the conformance kit against one
    Targets(TargetsArgs),
}

#[derive(Debug, Args)]
pub struct TargetsArgs {
    #[command(subcommand)]
    pub command: Option<TargetsCommand>,
    /// Print the listing as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TargetsCommand {
    /// List every target kind (built-in or plugin) and every configured target with its readiness (the default)
    List {
        #[arg(long)]
        json: bool,
    },
    /// Run the target conformance kit against a configured target or a location; it writes, reads and deletes objects under a fresh `sstore-conformance-*` prefix
    Test(TargetsTestArgs),
}

#[derive(Debug, Args)]
pub struct TargetsTestArgs {
    /// A configured target's name, a folder, or a URL
    pub target: String,
    /// Size of the large streamed object, in MiB
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub large_mib: u64,
    /// How many keys the listing check writes
    #[arg(long, value_name = "N", default_value_t = 1500)]
    pub keys: usize,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Create a new, empty store protected by a passphrase
    Init,
    /// Show the store's id, Master Key generation and counts (no secrets)
    Info {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Create a target application
    New(AppNewArgs),
    /// List target applications
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one target application and its fields
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove a target application and every credential set mapped to it
    Remove { name: String },
}

#[derive(Debug, Args)]
pub struct AppNewArgs {
    /// Unique name (the application id)
    pub name: String,
    #[arg(long = "type", value_name = "TYPE", value_parser = ["individual", "group", "individual-restricted", "group-restricted"])]
    pub app_type: String,
    #[arg(long)]
    pub friendly_name: Option<String>,
    #[arg(long)]
    pub contact_email: Option<String>,
    /// A field as NAME:TYPE[:masked]; repeat for each field [default: Windows User Name + Windows Password (masked)].
    /// Types: user-name, password, pin, key, generic, windows-user-name, windows-password, certificate, certificate-password
    #[arg(long = "field", value_name = "NAME:TYPE[:masked]")]
    pub fields: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum CredCommand {
    /// Set the credential set of a principal: values are prompted for, or read from standard input as `field=value` lines
    Set {
        app: String,
        /// The user identity (individual apps) or the group (group apps)
        #[arg(long)]
        principal: String,
    },
    /// Print the credential set of a principal (this prints secrets)
    Get {
        app: String,
        #[arg(long)]
        principal: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove the credential set of a principal
    Clear {
        app: String,
        #[arg(long)]
        principal: String,
    },
    /// List the principals that have a credential set for an application
    List {
        app: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum MasterkeyCommand {
    /// New passphrase from SSTORE_NEW_PASSPHRASE, --new-passphrase-file, or a prompt (asked twice)
    Update {
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Check that the passphrase opens the store's current Master Key
    Refresh,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BackupMethod {
    /// Everything: the store and its Master Key
    Full,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The backup directory: a folder, a URL (file://, or a scheme a target kind serves), a UNC path, or a configured target's name [default: the config's backup.directory]
    #[arg(long, value_name = "DIR")]
    pub directory: Option<String>,
    /// Where work files go when the directory is not a local folder [default: the config's backup.staging, else sstore/staging in the platform data folder]
    #[arg(long, value_name = "DIR")]
    pub staging: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = BackupMethod::Full)]
    pub method: BackupMethod,
    /// What to back up (see --show-tree) [default: SecureStore]
    #[arg(long, value_name = "NAME")]
    pub item: Option<String>,
    /// Print each step of the job as it happens
    #[arg(long)]
    pub verbose: bool,
    /// List what can be backed up, and back up nothing
    #[arg(long)]
    pub show_tree: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RestoreMethodArg {
    /// Replace the live store (asks for confirmation unless --force)
    Overwrite,
    /// Write a new store file at --new-store
    New,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup directory: a folder, a URL (file://, or a scheme a target kind serves), a UNC path, or a configured target's name [default: the config's backup.directory]
    #[arg(long, value_name = "DIR")]
    pub directory: Option<String>,
    /// Where work files go when the directory is not a local folder [default: the config's backup.staging, else sstore/staging in the platform data folder]
    #[arg(long, value_name = "DIR")]
    pub staging: Option<PathBuf>,
    /// The backup to restore [default: the newest successful backup]
    #[arg(long, value_name = "ID")]
    pub backup_id: Option<String>,
    #[arg(long, value_enum)]
    pub method: RestoreMethodArg,
    /// Where --method new writes the restored store
    #[arg(long, value_name = "PATH", required_if_eq("method", "new"))]
    pub new_store: Option<PathBuf>,
    /// Do not ask before overwriting; with --method new, replace an existing file
    #[arg(long)]
    pub force: bool,
    /// Print each step of the job as it happens
    #[arg(long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The backup directory: a folder, a URL (file://, or a scheme a target kind serves), a UNC path, or a configured target's name [default: the config's backup.directory]
    #[arg(long, value_name = "DIR")]
    pub directory: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The backup directory: a folder, a URL (file://, or a scheme a target kind serves), a UNC path, or a configured target's name [default: the config's backup.directory]
    #[arg(long, value_name = "DIR")]
    pub directory: Option<String>,
    /// Where work files go when the directory is not a local folder [default: the config's backup.staging, else sstore/staging in the platform data folder]
    #[arg(long, value_name = "DIR")]
    pub staging: Option<PathBuf>,
    /// The backup to verify [default: the newest successful backup]
    #[arg(long, value_name = "ID")]
    pub backup_id: Option<String>,
}
