//! Azure Blob: Azurite (npm), with the well-known development account. Creating a container
//! must be signed (SharedKey), so a few lines of Node.js (which Azurite needs anyway) sign
//! the request.

use std::process::Command;

use super::{Ctx, EnvEntries, ensure_daemon, run_quiet};

/// Azurite's usual port: rclone's `use_emulator` (the benchmark's reference) knows no other.
pub const PORT: u16 = 10000;
pub const CONTAINER: &str = "sstore-test";
/// The development account every Azure emulator accepts (published by Microsoft).
pub const ACCOUNT: &str = "devstoreaccount1";
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const VERSION: &str = "3.35.0";
const SERVICE: &str = "azurite";

/// Signs and sends `PUT /<account>/<container>?restype=container`; prints the HTTP status.
const CREATE_CONTAINER_JS: &str = r#"
const crypto = require('crypto'), http = require('http');
const [port, account, container] = process.argv.slice(1);
const key = process.env.AZURITE_TEST_ACCOUNT_KEY;
const date = new Date().toUTCString(), version = '2021-08-06';
const path = `/${account}/${container}`;
const toSign = ['PUT', '', '', '', '', '', '', '', '', '', '', '',
  `x-ms-date:${date}`, `x-ms-version:${version}`,
  `/${account}${path}\nrestype:container`].join('\n');
const sig = crypto.createHmac('sha256', Buffer.from(key, 'base64')).update(toSign, 'utf8').digest('base64');
const req = http.request({ host: '127.0.0.1', port, method: 'PUT', path: `${path}?restype=container`,
  headers: { 'x-ms-date': date, 'x-ms-version': version, 'Content-Length': 0,
             Authorization: `SharedKey ${account}:${sig}` } },
  res => { console.log(res.statusCode); res.resume(); });
req.on('error', e => { console.error(e.message); process.exit(1); });
req.end();
"#;

/// Prints an account SAS token (blob service, read/write/delete/list/add/create, until 2035):
/// what a user given a SAS instead of the key has, and what rclone's `sas_url` takes.
const ACCOUNT_SAS_JS: &str = r#"
const crypto = require('crypto');
const [account] = process.argv.slice(1);
const key = process.env.AZURITE_TEST_ACCOUNT_KEY;
const sv = '2019-02-02', ss = 'b', srt = 'sco', sp = 'rwdlac', se = '2035-01-01T00:00:00Z', spr = 'https,http';
const toSign = [account, sp, ss, srt, '', se, '', spr, sv, ''].join('\n');
const sig = crypto.createHmac('sha256', Buffer.from(key, 'base64')).update(toSign, 'utf8').digest('base64');
console.log(new URLSearchParams({ sv, ss, srt, sp, se, spr, sig }).toString());
"#;

pub fn up(ctx: &Ctx) -> Result<EnvEntries, String> {
    let npm_dir = ctx.tools().join("npm");
    let binary = npm_dir
        .join("node_modules")
        .join(".bin")
        .join("azurite-blob");
    if !binary.exists() {
        eprintln!("azurite: installing azurite {VERSION} (npm)");
        super::create_private_dir(&npm_dir)?;
        run_quiet(
            "npm install azurite",
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(&npm_dir)
                .arg(format!("azurite@{VERSION}")),
        )?;
    }
    let dir = ctx.service_dir(SERVICE)?;
    let data = dir.join("data");
    ensure_daemon(ctx, SERVICE, "azurite-blob", PORT, || {
        // Azurite keeps deleted blobs on disk for a while: start from an empty folder.
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
        let mut cmd = Command::new(&binary);
        cmd.args(["--blobHost", "127.0.0.1", "--blobPort", &PORT.to_string()])
            .arg("--location")
            .arg(&data)
            .args([
                "--silent",
                "--loose",
                "--skipApiVersionCheck",
                "--disableTelemetry",
            ]);
        Ok(cmd)
    })?;
    let status = run_quiet(
        "creating the Azurite container",
        Command::new("node")
            .args([
                "-e",
                CREATE_CONTAINER_JS,
                &PORT.to_string(),
                ACCOUNT,
                CONTAINER,
            ])
            .env("AZURITE_TEST_ACCOUNT_KEY", ACCOUNT_KEY),
    )?;
    if !matches!(status.trim(), "201" | "409") {
        return Err(format!(
            "creating container {CONTAINER} answered HTTP {}",
            status.trim()
        ));
    }
    let sas = run_quiet(
        "signing an account SAS",
        Command::new("node")
            .args(["-e", ACCOUNT_SAS_JS, ACCOUNT])
            .env("AZURITE_TEST_ACCOUNT_KEY", ACCOUNT_KEY),
    )?;
    Ok(vec![
        ("SSTORE_TEST_AZURE_SAS".into(), sas.trim().to_owned()),
        (
            "SSTORE_TEST_AZURE_ENDPOINT".into(),
            format!("http://127.0.0.1:{PORT}/{ACCOUNT}"),
        ),
        ("SSTORE_TEST_AZURE_ACCOUNT".into(), ACCOUNT.into()),
        ("SSTORE_TEST_AZURE_KEY".into(), ACCOUNT_KEY.into()),
        ("SSTORE_TEST_AZURE_CONTAINER".into(), CONTAINER.into()),
        (
            "SSTORE_TEST_AZURE_PID_FILE".into(),
            super::pid_file(ctx, SERVICE, "azurite-blob")
                .display()
                .to_string(),
        ),
    ])
}

pub fn down(ctx: &Ctx) {
    super::stop(ctx, SERVICE, "azurite-blob");
}
