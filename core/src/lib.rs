//! sstore-core: the engine behind the `sstore` command.
//!
//! - [`store`]: the Secure Store (target applications, credential sets, the Master Key).
//! - [`format`]: the encrypted, authenticated backup stream (docs/FORMAT.md).
//! - [`recipient`]: X25519 recipients and identities, for backups a job can write but not read.
//! - [`target`]: the storage target contract every backup destination implements.
//! - [`backup`]: backup, restore, verify and history over a backup directory.
//! - [`config`]: the configuration file; [`locations`]: what location strings name.

pub mod backup;
pub mod config;
mod crypto;
pub mod error;
pub mod format;
pub mod kdf;
pub mod locations;
mod random;
pub mod recipient;
pub mod schedule;
pub mod secret;
pub mod store;

/// The storage target contract (the `sstore-target-api` crate).
pub use sstore_target_api as target;

/// Filesystem helpers (the `sstore-fsutil` crate).
pub use sstore_fsutil as fsutil;

pub use error::{Error, ErrorCategory};
pub use kdf::KdfParams;
pub use recipient::{Identity, Recipient};
pub use secret::{Passphrase, SecretKey};
