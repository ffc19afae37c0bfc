//! sstore target: a folder on an SMB2/3 share (Windows, Samba, a NAS), with no mount.
//!
//! Locations: `\\server\share\folder` (UNC; `location` turns it into `smb://server/share/folder`),
//! `smb://[user@]server[:port]/share/folder`, or a `[[target]]` with `kind = "smb"` and the
//! settings `server`, `port` (445), `share`, `folder`, `user`, `domain` (alias `workgroup`,
//! default `WORKGROUP`), `password_env` / `password_file`, `encryption` (`"required"`,
//! `"if-offered"` (default), `"off"`) and `timeout_secs` (30: the bound of any one operation).
//! A UNC path or URL on the command line takes the user from the URL or `SSTORE_SMB_USER`, the
//! password from `SSTORE_SMB_PASSWORD`, and the port from the URL or `SSTORE_SMB_PORT`
//! (a `[[target]]`'s settings come first, the environment fills in what they leave out).
//!
//! # The client: Samba's libsmbclient, through `pavao`
//! Two Rust clients were measured against Samba 4.17 on loopback (smbclient there: put
//! ~850 MiB/s, get ~1.3 GiB/s):
//! - the pure-Rust `smb` crate (0.12): reads at ~22 MiB/s with 1 MiB requests (its socket has
//!   no TCP_NODELAY; nothing sstore can set without unsafe code), writes at ~380-490 MiB/s,
//!   and three ways to hang (credits lost on interim replies to large writes, a lost wakeup
//!   when listing on a multi-thread runtime, its own timeout not firing in those hangs);
//! - `pavao` 0.3 (bindings to libsmbclient, the library smbclient itself uses): ~900-1000
//!   MiB/s both ways, encrypted sessions included.
//!
//! The benchmark goal (0.7x smbclient both ways) rules out the first, so this crate uses
//! pavao. The price is a C library (`libsmbclient-dev` and `pkg-config` to build,
//! `libsmbclient` at run time) and pavao's known defects, each made unreachable here and
//! each tested in `tests/defects.rs`:
//! - **a blocking API behind one process-wide lock**: every call runs on
//!   `spawn_blocking`, never on the async workers (`client`);
//! - **no bound on a stalled server** (libsmbclient's default request timeout is 20 s and a
//!   call retries): every operation is bounded by `timeout_secs` on the async side, with
//!   libsmbclient's own timeout set to a quarter of it before the first connection, so the
//!   lock is released too; a stall is a temporary `Timeout` error, never a hang;
//! - **a broken connection stays cached**: any failure that is not a plain answer (not
//!   found, exists, denied, full) drops the session; the next attempt connects again;
//! - **a wrong password and a read-only share are both "Permission denied"**: the session
//!   is proved by reading the share's root before anything else, so a refusal there is the
//!   logon's (`Unauthenticated`) and a refusal later is a write permission
//!   (`PermissionDenied`, naming the share and user);
//! - **`required` encryption is not enforced by libsmbclient 4.17** (it goes on
//!   unencrypted when the server offers no encryption): `probe` checks the server's SMB2
//!   NEGOTIATE answer first and refuses such a server;
//! - **rename always replaces** (libsmbclient unlinks the destination, then renames): see
//!   `target` for how create-only stays server-enforced (published files are read-only, which
//!   the unlink cannot remove) and how an overwrite interrupted half-way stays readable;
//! - **`%` and `?` are URL syntax to libsmbclient**: key segments are percent-encoded.
//!
//! On Windows the `sstore` binary gets UNC paths as local paths (the `local` kind, through
//! the filesystem API); this crate serves the `smb` scheme on every system where libsmbclient
//! builds.
//!
//! Modules: `config` (URL, UNC, settings, environment), `probe` (the encryption check),
//! `client` (the session, timeouts and blocking calls), `stream` (chunked transfer between
//! the async and blocking sides), `target` (the [`Target`] implementation).

use std::sync::Arc;

use sstore_target_api::{BuiltinKind, OpenRequest, Target, TargetError};

mod client;
pub mod config;
pub mod probe;
mod stream;
mod target;

pub use config::{Encryption, SmbConfig};
pub use target::{NEXT_SUFFIX, SmbTarget, TEMP_SUFFIX};

/// The kind name in config files (`kind = "smb"`).
pub const KIND: &str = "smb";

inventory::submit! {
    BuiltinKind {
        name: KIND,
        schemes: &["smb"],
        description: "a folder on an SMB2/3 share (\\\\server\\share\\folder or smb://user@server/share/folder)",
        open: open_smb,
    }
}

/// The kind's name. The `sstore` binary calls this so the linker keeps the registration.
pub fn kind() -> &'static str {
    KIND
}

fn open_smb(request: &OpenRequest) -> Result<Arc<dyn Target>, TargetError> {
    let config = config::resolve(request, &config::ProcessEnv)?;
    Ok(Arc::new(SmbTarget::new(config)))
}

/// Opens a target from an `OpenRequest` as the registry would (for tests and tools).
pub fn open(request: &OpenRequest) -> Result<SmbTarget, TargetError> {
    Ok(SmbTarget::new(config::resolve(
        request,
        &config::ProcessEnv,
    )?))
}
