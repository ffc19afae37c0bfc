//! S3: s3s-fs (0.14.1, the newest that builds on this toolchain), installed with
//! `cargo install` into `.services/tools`. It checks SigV4 signatures, enforces create-only
//! puts and the 5 MiB minimum part size, and pages listings like S3.

use std::process::Command;

use super::{Ctx, EnvEntries, apt_install, ensure_daemon, run_quiet, stored_secret};

pub const PORT: u16 = 19000;
pub const BUCKET: &str = "sstore-test";
const VERSION: &str = "0.14.1";
const SERVICE: &str = "s3";

pub fn up(ctx: &Ctx) -> Result<EnvEntries, String> {
    // curl signs the CreateBucket request below.
    apt_install(&["curl"])?;
    let binary = ctx.tools().join("bin").join("s3s-fs");
    if !binary.exists() {
        eprintln!("s3: installing s3s-fs {VERSION} (cargo install, a few minutes)");
        run_quiet(
            "cargo install s3s-fs",
            Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["install", "s3s-fs", "--version", VERSION])
                .args(["--features", "binary", "--locked", "--root"])
                .arg(ctx.tools())
                .current_dir(&ctx.root)
                .env_remove("AWS_CA_BUNDLE")
                .env_remove("CARGO_TARGET_DIR"),
        )?;
    }
    let dir = ctx.service_dir(SERVICE)?;
    let access_key = stored_secret(&dir.join("access-key"), 16)?;
    let secret_key = stored_secret(&dir.join("secret-key"), 32)?;
    let data = dir.join("data");
    ensure_daemon(ctx, SERVICE, "s3s-fs", PORT, || {
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
        let mut cmd = Command::new(&binary);
        cmd.args(["--host", "127.0.0.1", "--port", &PORT.to_string()])
            .args(["--access-key", &access_key, "--secret-key", &secret_key])
            .arg(&data);
        Ok(cmd)
    })?;
    // A signed CreateBucket (an unsigned one is refused); "already exists" is fine.
    let mut out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
        .args(["--aws-sigv4", "aws:amz:us-east-1:s3"])
        // The keys through curl's config on standard input, not its command line.
        .args(["--config", "-"])
        .args([
            "-H",
            "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ])
        .arg(format!("http://127.0.0.1:{PORT}/{BUCKET}"))
        .env_remove("AWS_CA_BUNDLE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("curl: {e}"))?;
    if let Some(mut stdin) = out.stdin.take() {
        use std::io::Write;
        writeln!(stdin, "user = \"{access_key}:{secret_key}\"")
            .map_err(|e| format!("curl: {e}"))?;
    }
    let out = out.wait_with_output().map_err(|e| format!("curl: {e}"))?;
    let code = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !matches!(code.as_str(), "200" | "409") {
        return Err(format!(
            "creating bucket {BUCKET} answered HTTP {code}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(vec![
        (
            "SSTORE_TEST_S3_ENDPOINT".into(),
            format!("http://127.0.0.1:{PORT}"),
        ),
        ("SSTORE_TEST_S3_BUCKET".into(), BUCKET.into()),
        ("SSTORE_TEST_S3_ACCESS_KEY".into(), access_key),
        ("SSTORE_TEST_S3_SECRET_KEY".into(), secret_key),
        (
            "SSTORE_TEST_S3_PID_FILE".into(),
            super::pid_file(ctx, SERVICE, "s3s-fs")
                .display()
                .to_string(),
        ),
    ])
}

pub fn down(ctx: &Ctx) {
    super::stop(ctx, SERVICE, "s3s-fs");
}
