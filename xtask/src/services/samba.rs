//! Samba (SMB): two private `smbd`s on loopback high ports, for the SMB target's tests.
//!
//! - `signed` (port 4445): SMB2/3 with mandatory signing and no encryption offered
//!   (`server smb encrypt = off`), so `encryption = "required"` can be shown to be refused;
//! - `encrypted` (port 4446): SMB3 only, encryption and signing required.
//!
//! Each has a writable share `backups` and a read-only share `readonly`, open to one private
//! user with a generated password. The user exists only for Samba: like Samba's own test
//! suite, `smbpasswd` and `smbd` run with nss_wrapper over private copies of passwd/group, so
//! the machine's accounts are never touched. Every state file lives in
//! `.services/samba/<variant>/`. No `aio read/write size = 0` is needed: the target uses
//! libsmbclient, not the `smb` crate whose credit handling that setting works around.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{
    Ctx, EnvEntries, apt_install, create_private_dir, ensure_daemon, pid_file, run_quiet, stop,
    stored_secret, write_private,
};

const SERVICE: &str = "samba";
const USER: &str = "sstoretest";
/// The user's uid and gid, only inside nss_wrapper (the share folders are chowned to them).
const UID: u32 = 47_001;
const SHARE: &str = "backups";
const READ_ONLY_SHARE: &str = "readonly";

struct Variant {
    name: &'static str,
    port: u16,
    /// Extra `[global]` lines.
    security: &'static str,
}

const VARIANTS: [Variant; 2] = [
    Variant {
        name: "signed",
        port: 4445,
        security: "server signing = mandatory\nserver smb encrypt = off\nserver min protocol = SMB2_02\n",
    },
    Variant {
        name: "encrypted",
        port: 4446,
        security: "server signing = mandatory\nserver smb encrypt = required\nserver min protocol = SMB3\n",
    },
];

fn daemon(variant: &Variant) -> String {
    format!("smbd-{}", variant.name)
}

/// `/usr/sbin/smbd` (not on every root PATH), else whatever PATH finds.
fn program(name: &str) -> String {
    ["/usr/sbin", "/usr/bin"]
        .iter()
        .map(|dir| format!("{dir}/{name}"))
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| name.to_owned())
}

/// Where the Debian package put `libnss_wrapper.so` (the path depends on the architecture).
fn nss_wrapper() -> Result<String, String> {
    let listing = run_quiet(
        "dpkg -L libnss-wrapper",
        Command::new("dpkg").args(["-L", "libnss-wrapper"]),
    )?;
    listing
        .lines()
        .find(|l| l.ends_with("/libnss_wrapper.so"))
        .map(str::to_owned)
        .ok_or_else(|| "libnss-wrapper installs no libnss_wrapper.so".to_owned())
}

/// Lets the unprivileged share user walk down to its share folders (traverse only).
fn allow_traverse(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .permissions()
        .mode();
    if mode & 0o001 == 0 {
        std::fs::set_permissions(
            dir,
            std::fs::Permissions::from_mode((mode & 0o7777) | 0o011),
        )
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    Ok(())
}

fn chown(path: &Path) -> Result<(), String> {
    std::os::unix::fs::chown(path, Some(UID), Some(UID))
        .map_err(|e| format!("chown {}: {e}", path.display()))
}

/// Writes the variant's folders, nss_wrapper files and smb.conf; returns the smb.conf path.
fn prepare(ctx: &Ctx, base: &Path, variant: &Variant) -> Result<PathBuf, String> {
    let dir = base.join(variant.name);
    for sub in ["lock", "state", "cache", "pid", "private", "ncalrpc"] {
        create_private_dir(&dir.join(sub))?;
    }
    for share in [SHARE, READ_ONLY_SHARE] {
        let path = dir.join(share);
        std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        chown(&path)?;
    }
    allow_traverse(&ctx.dir)?;
    allow_traverse(base)?;
    allow_traverse(&dir)?;

    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    write_private(
        &dir.join("passwd"),
        &format!("{passwd}{USER}:x:{UID}:{UID}:sstore test:/nonexistent:/bin/false\n"),
    )?;
    write_private(&dir.join("group"), &format!("{group}{USER}:x:{UID}:\n"))?;

    let d = dir.display();
    let conf = format!(
        "[global]\n\
         smb ports = {port}\n\
         interfaces = lo\n\
         bind interfaces only = yes\n\
         disable netbios = yes\n\
         server role = standalone server\n\
         workgroup = WORKGROUP\n\
         map to guest = never\n\
         lock directory = {d}/lock\n\
         state directory = {d}/state\n\
         cache directory = {d}/cache\n\
         pid directory = {d}/pid\n\
         private dir = {d}/private\n\
         ncalrpc dir = {d}/ncalrpc\n\
         passdb backend = tdbsam:{d}/private/passdb.tdb\n\
         load printers = no\n\
         printcap name = /dev/null\n\
         disable spoolss = yes\n\
         log level = 1\n\
         {security}\
         [{SHARE}]\n\
         path = {d}/{SHARE}\n\
         read only = no\n\
         valid users = {USER}\n\
         [{READ_ONLY_SHARE}]\n\
         path = {d}/{READ_ONLY_SHARE}\n\
         read only = yes\n\
         valid users = {USER}\n",
        port = variant.port,
        security = variant.security,
    );
    let path = dir.join("smb.conf");
    write_private(&path, &conf)?;
    Ok(path)
}

/// `cmd` with nss_wrapper over the variant's passwd/group.
fn wrapped(cmd: &mut Command, dir: &Path, wrapper: &str) {
    cmd.env("LD_PRELOAD", wrapper)
        .env("NSS_WRAPPER_PASSWD", dir.join("passwd"))
        .env("NSS_WRAPPER_GROUP", dir.join("group"));
}

pub fn up(ctx: &Ctx) -> Result<EnvEntries, String> {
    apt_install(&["samba", "smbclient", "libnss-wrapper"])?;
    let base = ctx.service_dir(SERVICE)?;
    let password = stored_secret(&base.join("password"), 24)?;
    let wrapper = nss_wrapper()?;
    for variant in &VARIANTS {
        let conf = prepare(ctx, &base, variant)?;
        let dir = base.join(variant.name);
        ensure_daemon(ctx, SERVICE, &daemon(variant), variant.port, || {
            let mut add = Command::new(program("smbpasswd"));
            add.arg("-c").arg(&conf).args(["-a", "-s", USER]);
            wrapped(&mut add, &dir, &wrapper);
            add_user(&mut add, &password)?;
            let mut smbd = Command::new(program("smbd"));
            smbd.args(["-F", "--no-process-group", "--debug-stdout", "-d1", "-s"])
                .arg(&conf)
                .current_dir(&dir);
            wrapped(&mut smbd, &dir, &wrapper);
            Ok(smbd)
        })?;
    }
    let [signed, encrypted] = &VARIANTS;
    let pid = |v: &Variant| pid_file(ctx, SERVICE, &daemon(v)).display().to_string();
    let data = |v: &Variant| base.join(v.name).join(SHARE).display().to_string();
    Ok(vec![
        ("SSTORE_TEST_SMB_HOST".into(), "127.0.0.1".into()),
        ("SSTORE_TEST_SMB_PORT".into(), signed.port.to_string()),
        (
            "SSTORE_TEST_SMB_ENCRYPTED_PORT".into(),
            encrypted.port.to_string(),
        ),
        ("SSTORE_TEST_SMB_USER".into(), USER.into()),
        ("SSTORE_TEST_SMB_PASSWORD".into(), password),
        ("SSTORE_TEST_SMB_SHARE".into(), SHARE.into()),
        (
            "SSTORE_TEST_SMB_READONLY_SHARE".into(),
            READ_ONLY_SHARE.into(),
        ),
        ("SSTORE_TEST_SMB_PID_FILE".into(), pid(signed)),
        ("SSTORE_TEST_SMB_ENCRYPTED_PID_FILE".into(), pid(encrypted)),
        ("SSTORE_TEST_SMB_DATA_DIR".into(), data(signed)),
        ("SSTORE_TEST_SMB_ENCRYPTED_DATA_DIR".into(), data(encrypted)),
    ])
}

/// Runs `smbpasswd -a -s` with the password twice on its standard input.
fn add_user(cmd: &mut Command, password: &str) -> Result<(), String> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("smbpasswd: cannot start: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(format!("{password}\n{password}\n").as_bytes())
            .map_err(|e| format!("smbpasswd: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("smbpasswd: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "smbpasswd -a failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

pub fn down(ctx: &Ctx) {
    for variant in &VARIANTS {
        stop(ctx, SERVICE, &daemon(variant));
    }
}
