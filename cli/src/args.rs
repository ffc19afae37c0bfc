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
Exit codes: 0 ok, 1 failed, 2 usage, 3 wrong passphrase, 4 no store, 5 backup damaged or not matching its manifest, 6 another job holds the backup directory or a target, 7 partial success (some targets have the backup, others failed)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The store: an SQLite file, or a SQL Server database as mssql://[USER@]HOST[:PORT]/DATABASE[?encrypt=required|on|off&trust_server_certificate=true] with the password in SSTORE_MSSQL_PASSWORD [default: the config's `store`, else a file in the platform data folder]
    #[arg(long, global = true, env = "SSTORE_STORE", value_name = "PATH|URL")]
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
    /// Make or show the X25519 identity that opens backups written to its recipient (a backup job then needs no secret)
    #[command(subcommand)]
    BackupKey(BackupKeyCommand),
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
    /// Show the running backup job, if any, and the readiness of every configured target
    Status(StatusArgs),
    /// Check that a backup can run, without writing one (same as `backup --what-if`)
    Readiness(BackupArgs),
    /// Remove old backups from a backup directory or target, keeping what the rules say
    Prune(PruneArgs),
    /// Break a stale lock left on a backup directory or target by a job that is gone
    Unlock(UnlockArgs),
    /// List the timer jobs ([[schedule]] in the config): next run, last run and its outcome, staleness (the service need not run)
    Schedules(crate::commands::schedules::SchedulesArgs),
    /// Manage who may use `sstore serve`: operators, their roles, passwords and API tokens
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Run the backup service in the foreground: timer jobs, a backup after every Master Key change, a JSON API for operators (stop it with SIGTERM or Ctrl-C)
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on [default: the config's serve.listen, else 127.0.0.1:7443]
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// TLS certificate (PEM) [default: the config's serve.tls_cert, else a self-signed certificate the service makes and keeps]
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM), owner-only
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP, without TLS (only on a loopback address unless --insecure-listen)
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub plain_http: bool,
    /// Allow plain HTTP on a non-loopback address (anyone on the network path sees the traffic)
    #[arg(long)]
    pub insecure_listen: bool,
}

/// `sstore operator ...`: the operators file is `[serve] operators` in the config, else
/// `operators.json` beside the config file, else in `sstore/service` in the platform data folder.
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Add an operator; the password (at least 12 characters) is asked twice on a terminal, else read from the first line of stdin
    Add {
        /// Lower-case letters, digits, '.', '_' and '-', up to 64 characters
        name: String,
        /// admin: everything; operator: run backups, verify, prune, schedules, restore to a new file, read everything; viewer: read only
        #[arg(long, value_enum)]
        role: OperatorRole,
    },
    /// Make a new API token for an operator and print it once (scripts send it as `Authorization: Bearer TOKEN`)
    Token { name: String },
    /// List the operators with their role, number of API tokens and creation time
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke one API token of an operator by its id (the first 12 characters of the token,
    /// as `operator list` shows it); scripts using it are refused at their next request
    Revoke { name: String, id: String },
    /// Remove an operator and its API tokens; its sessions and tokens stop working at once
    Remove { name: String },
    /// Set a new password for an operator (asked twice on a terminal, else the first line of stdin)
    Passwd { name: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OperatorRole {
    Admin,
    Operator,
    Viewer,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// The backup directory: a folder, a URL, a UNC path, or a configured target's name [default: the config's backup.directory]
    #[arg(long, value_name = "DIR", conflicts_with = "target")]
    pub directory: Option<String>,
    /// A configured target's name, or a URL / UNC path
    #[arg(long, value_name = "TARGET")]
    pub target: Option<String>,
    /// Keep the newest N successful backups
    #[arg(long, value_name = "N")]
    pub keep_last: usize,
    /// Also keep every successful backup younger than this (e.g. 30d, 12h, 2w)
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    /// Say what would be removed, and remove nothing
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// The backup directory: a folder, a URL, a UNC path, or a configured target's name [default: the config's backup.directory]
    #[arg(long, value_name = "DIR", conflicts_with = "target")]
    pub directory: Option<String>,
    /// A configured target's name, or a URL / UNC path
    #[arg(long, value_name = "TARGET")]
    pub target: Option<String>,
    /// Break the lock even if its job looks alive (only when you know it is not running)
    #[arg(long)]
    pub force: bool,
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
    /// Also write the backup to this recipient (`sstore1...`, from `sstore backup-key generate`); repeatable. With recipients, a passphrase slot is added only when a backup passphrase is given (SSTORE_BACKUP_PASSPHRASE or --backup-passphrase-file) [default: the config's backup.recipients]
    #[arg(long = "recipient", value_name = "RECIPIENT")]
    pub recipients: Vec<String>,
    /// Also send the backup to this target (a configured target's name, a URL or a UNC path); repeatable. The backup is staged locally first, then every target receives it [default: the config's backup.targets]
    #[arg(long = "target", value_name = "TARGET")]
    pub targets: Vec<String>,
    /// Keep the staged copy after every target has verified it [default: the config's backup.keep_local, else no]
    #[arg(long)]
    pub keep_local: bool,
    /// Only finish an interrupted job found in the staging folder; take no new backup (a plain `sstore backup` finishes it first, then takes a new one)
    #[arg(long)]
    pub resume: bool,
    /// Check that the backup can run (store, passphrase, staging space, every target), and write nothing
    #[arg(long)]
    pub what_if: bool,
    /// Run even when the staging folder looks too small for the backup
    #[arg(long)]
    pub force: bool,
    /// A progress line in the job log (and on screen with --verbose) every N percent
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=100))]
    pub percentage: Option<u8>,
    /// Print one JSON event per line (started, progress, target-done, warning, error, summary) instead of text
    #[arg(long)]
    pub json: bool,
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

#[derive(Debug, Subcommand)]
pub enum BackupKeyCommand {
    /// Write a new identity file (owner-only; never overwritten) and print its recipient
    Generate {
        /// The identity file to create; keep it offline with the people who restore
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print the recipient of each identity in an identity file
    Show {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup directory: a folder, a URL (file://, or a scheme a target kind serves), a UNC path, or a configured target's name [default: the config's backup.directory]
    #[arg(long, value_name = "DIR", conflicts_with = "target")]
    pub directory: Option<String>,
    /// Restore from a target (a configured target's name, a URL or a UNC path): the backup is read from there alone
    #[arg(long, value_name = "TARGET")]
    pub target: Option<String>,
    /// Where work files go when the directory is not a local folder [default: the config's backup.staging, else sstore/staging in the platform data folder]
    #[arg(long, value_name = "DIR")]
    pub staging: Option<PathBuf>,
    /// The backup to restore [default: the newest successful backup]
    #[arg(long, value_name = "ID")]
    pub backup_id: Option<String>,
    #[arg(long, value_enum)]
    pub method: RestoreMethodArg,
    /// Where --method new writes the restored store: a file, or mssql://[USER@]HOST[:PORT]/DATABASE (created when missing)
    #[arg(long, value_name = "PATH", required_if_eq("method", "new"))]
    pub new_store: Option<PathBuf>,
    /// Do not ask before overwriting; with --method new, replace an existing file
    #[arg(long)]
    pub force: bool,
    /// Print each step of the job as it happens
    /// An identity file whose identities may open the backup (repeatable)
    #[arg(long = "identity", env = "SSTORE_IDENTITY_FILE", value_name = "FILE")]
    pub identities: Vec<PathBuf>,
    #[arg(long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The backup directory: a folder, a URL (file://, or a scheme a target kind serves), a UNC path, or a configured target's name [default: the config's backup.directory]
    #[arg(long, value_name = "DIR", conflicts_with_all = ["target", "jobs"])]
    pub directory: Option<String>,
    /// The history kept on a target (a configured target's name, a URL or a UNC path)
    #[arg(long, value_name = "TARGET", conflicts_with = "jobs")]
    pub target: Option<String>,
    /// The local job records instead: every backup job with its state and each target's outcome
    #[arg(long)]
    pub jobs: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The backup directory: a folder, a URL (file://, or a scheme a target kind serves), a UNC path, or a configured target's name [default: the config's backup.directory]
    #[arg(long, value_name = "DIR", conflicts_with = "target")]
    pub directory: Option<String>,
    /// Verify the copies on a target (a configured target's name, a URL or a UNC path)
    #[arg(long, value_name = "TARGET")]
    pub target: Option<String>,
    /// Verify every successful backup, not only the newest
    #[arg(long, conflicts_with = "backup_id")]
    pub all: bool,
    /// Where work files go when the directory is not a local folder [default: the config's backup.staging, else sstore/staging in the platform data folder]
    #[arg(long, value_name = "DIR")]
    pub staging: Option<PathBuf>,
    /// The backup to verify [default: the newest successful backup]
    #[arg(long, value_name = "ID")]
    pub backup_id: Option<String>,
    /// An identity file whose identities may open the backups (repeatable); with --all, tells which backups it opens
    #[arg(long = "identity", env = "SSTORE_IDENTITY_FILE", value_name = "FILE")]
    pub identities: Vec<PathBuf>,
}
