//! sstore target: a folder on an SMB2/3 share (Windows, Samba, a NAS), with no mount.
//!
//! Locations: `\\server\share\folder` (UNC; `location` turns it into `smb://server/share/folder`),
//! `smb://[user@]server[:port]/share/folder`, or a `[[target]]` with `kind = "smb"` and the
//! settings `server`, `port` (445), `share`, `folder`, `user`, `domain` (alias `workgroup`,
//! default `WORKGROUP`), `password_env` / `password_file`, `encryption` (`"required"`,
//! `"if-offered"` (default), `"off"`), `signing` (`"required"` (default), `"off"`), `client`
//! (`"smb2"`, `"libsmbclient"`) and `timeout_secs` (30: the bound of any one operation).
//! A UNC path or URL on the command line takes the user from the URL or `SSTORE_SMB_USER`, the
//! password from `SSTORE_SMB_PASSWORD`, the port from the URL or `SSTORE_SMB_PORT`, and the
//! client from `SSTORE_SMB_CLIENT` (a `[[target]]`'s settings come first, the environment
//! fills in what they leave out).
//!
//! # The clients: smb2 by default, libsmbclient as an option
//! Measured against Samba 4.17 on loopback (smbclient itself: put 400-650 MiB/s into the page
//! cache, get 650-750 MiB/s; `dd conv=fsync` on the same disk 330-450 MiB/s):
//! - the pure-Rust `smb` crate (0.12) has three defects that rule it out: reads at ~22 MiB/s
//!   (no TCP_NODELAY), writes with large chunks that hang (credits granted in interim
//!   `STATUS_PENDING` answers are dropped), and listings that lose a wakeup on a multi-thread
//!   runtime;
//! - the pure-Rust `smb2` crate (0.39) has none of them: it sets TCP_NODELAY, counts interim
//!   credits and lists reliably, pipelines reads (600-950 MiB/s) and writes (~500 MiB/s into
//!   the page cache, 260-300 MiB/s with the flush to disk it sends before closing), signs
//!   with AES-GMAC/CMAC/HMAC, and its server-side rename refuses an existing name. Its one gap:
//!   its NEGOTIATE does not announce the encryption capability, so Samba never selects a
//!   cipher, and a share that requires encryption refuses its sessions;
//! - `pavao` 0.3 (Samba's libsmbclient, the library smbclient uses) encrypts, and reads its
//!   Kerberos setup from `smb.conf`, but it is a C library (`libsmbclient-dev` and `pkg-config`
//!   to build, GPL-3.0), has a blocking API behind one process-wide lock, does not enforce
//!   `required` encryption and always replaces on rename.
//!
//! So `smb2` is the client of every build: the default `sstore` needs nothing but a Rust
//! toolchain. libsmbclient is the cargo feature `libsmbclient`, for shares that require
//! encryption; a build with it uses it unless a target says `client = "smb2"`. Both sit behind
//! one internal interface (`client`), with the publishing rules, time limits and messages in
//! `target`, once.
//!
//! # Never weaker than asked
//! After the logon and before any file is touched, the session's protection is checked
//! (`security`): `encryption = "required"` refuses a session that is not encrypted (with smb2
//! it always is refused, and the message says which feature to build with), and a session that
//! is neither signed nor encrypted is refused unless `signing = "off"`. smb2 reports the
//! session's own state; libsmbclient does not, so for it the server's NEGOTIATE answer
//! (`probe`) is read first. `readiness`, `sstore targets` and the job log say which it is.
//!
//! On Windows the `sstore` binary gets UNC paths as local paths (the `local` kind, through the
//! filesystem API); the `smb` scheme is served everywhere.
//!
//! Modules: `config` (URL, UNC, settings, environment), `security` (the session rule),
//! `probe` (the NEGOTIATE exchange), `client` (the interface and its two clients), `stream`
//! (chunked transfer), `target` (the [`Target`] implementation).

use std::sync::Arc;

use sstore_target_api::{BuiltinKind, OpenRequest, Target, TargetError};

mod client;
pub mod config;
pub mod probe;
pub mod security;
mod stream;
mod target;

pub use config::{ClientKind, Encryption, Signing, SmbConfig};
pub use security::SessionSecurity;
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

/// The client a target uses when its settings name none, in this build.
pub fn default_client() -> ClientKind {
    ClientKind::default_for_build()
}

fn open_smb(request: &OpenRequest) -> Result<Arc<dyn Target>, TargetError> {
    Ok(Arc::new(open(request)?))
}

/// Opens a target from an `OpenRequest` as the registry would (for tests and tools).
pub fn open(request: &OpenRequest) -> Result<SmbTarget, TargetError> {
    SmbTarget::new(config::resolve(request, &config::ProcessEnv)?)
}
