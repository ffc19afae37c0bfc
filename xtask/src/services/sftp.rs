//! SFTP: OpenSSH's sshd (Debian) on a loopback high port, with its own host key, config and
//! authorized key, and the built-in SFTP server. Clients log in as the current user with a
//! generated key; the tests work under `.services/sftp/data`.

use std::process::Command;

use super::{Ctx, EnvEntries, apt_install, ensure_daemon, run_quiet, write_private};

pub const PORT: u16 = 19022;
const SERVICE: &str = "sftp";

pub fn up(ctx: &Ctx) -> Result<EnvEntries, String> {
    apt_install(&["openssh-server", "openssh-client"])?;
    let dir = ctx.service_dir(SERVICE)?;
    let data = dir.join("data");
    super::create_private_dir(&data)?;
    let host_key = dir.join("host_key");
    let client_key = dir.join("client_key");
    for key in [&host_key, &client_key] {
        if !key.exists() {
            run_quiet(
                "ssh-keygen",
                Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-C", "sstore-test", "-f"])
                    .arg(key),
            )?;
        }
    }
    let user = run_quiet("id -un", Command::new("id").arg("-un"))?
        .trim()
        .to_owned();
    let public = std::fs::read_to_string(client_key.with_extension("pub"))
        .map_err(|e| format!("client key: {e}"))?;
    write_private(&dir.join("authorized_keys"), &public)?;
    let config = format!(
        "Port {PORT}\nListenAddress 127.0.0.1\nHostKey {host}\nPidFile none\n\
         AuthorizedKeysFile {dir}/authorized_keys\nPubkeyAuthentication yes\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
         PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nAllowUsers {user}\n\
         Subsystem sftp internal-sftp\nMaxStartups 50:30:100\nMaxSessions 50\nLogLevel ERROR\n",
        host = host_key.display(),
        dir = dir.display(),
    );
    write_private(&dir.join("sshd_config"), &config)?;
    // sshd insists on its privilege-separation folder.
    let _ = std::fs::create_dir_all("/run/sshd");
    ensure_daemon(ctx, SERVICE, "sshd", PORT, || {
        let mut cmd = Command::new("/usr/sbin/sshd");
        cmd.args(["-D", "-e", "-f"]).arg(dir.join("sshd_config"));
        Ok(cmd)
    })?;
    Ok(vec![
        (
            "SSTORE_TEST_SFTP_ENDPOINT".into(),
            format!("ssh://127.0.0.1:{PORT}"),
        ),
        ("SSTORE_TEST_SFTP_USER".into(), user),
        (
            "SSTORE_TEST_SFTP_KEY".into(),
            client_key.display().to_string(),
        ),
        ("SSTORE_TEST_SFTP_ROOT".into(), data.display().to_string()),
    ])
}

pub fn down(ctx: &Ctx) {
    super::stop(ctx, SERVICE, "sshd");
}
