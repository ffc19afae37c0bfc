//! WebDAV: `rclone serve webdav` (Debian's rclone) over a private folder, with basic auth.

use std::process::Command;

use super::{Ctx, EnvEntries, apt_install, ensure_daemon, stored_secret, write_private};

pub const PORT: u16 = 19080;
pub const USER: &str = "sstore";
const SERVICE: &str = "webdav";

pub fn up(ctx: &Ctx) -> Result<EnvEntries, String> {
    apt_install(&["rclone"])?;
    let dir = ctx.service_dir(SERVICE)?;
    let password = stored_secret(&dir.join("password"), 24)?;
    let data = dir.join("data");
    let config = dir.join("rclone.conf");
    if !config.exists() {
        write_private(&config, "")?;
    }
    ensure_daemon(ctx, SERVICE, "rclone", PORT, || {
        let _ = std::fs::remove_dir_all(&data);
        super::create_private_dir(&data)?;
        let mut cmd = Command::new("rclone");
        cmd.arg("--config")
            .arg(&config)
            .args(["serve", "webdav", "--addr", &format!("127.0.0.1:{PORT}")])
            // rclone reads any flag from RCLONE_<FLAG>: the password stays off the command line.
            .env("RCLONE_USER", USER)
            .env("RCLONE_PASS", &password)
            .arg(&data);
        Ok(cmd)
    })?;
    Ok(vec![
        (
            "SSTORE_TEST_WEBDAV_ENDPOINT".into(),
            format!("http://127.0.0.1:{PORT}"),
        ),
        ("SSTORE_TEST_WEBDAV_USER".into(), USER.into()),
        ("SSTORE_TEST_WEBDAV_PASSWORD".into(), password),
        (
            "SSTORE_TEST_WEBDAV_PID_FILE".into(),
            super::pid_file(ctx, SERVICE, "rclone")
                .display()
                .to_string(),
        ),
    ])
}

pub fn down(ctx: &Ctx) {
    super::stop(ctx, SERVICE, "rclone");
}
