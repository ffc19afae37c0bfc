//! One phase of the target benchmark (`cargo xtask bench-targets`): upload a local file to a
//! target (`put_file`, the engine's own path), or download an object from it to a file, and
//! print one `BENCH {...}` JSON line with the rate. Memory is measured from outside (the
//! process's peak RSS), so each phase runs in a process of its own.
//!
//! usage: target_bench upload|download --kind KIND --config FILE.toml --key KEY --file PATH
//!        target_bench delete --kind KIND --config FILE.toml --key KEY
//!
//! The config file holds the target's settings (a `[[target]]` table without name and kind);
//! secrets in it are `*_env` / `*_file` references, as in sstore's config.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use sstore_core::target::{ObjectKey, OpenRequest, PutMode, Registry};
use tokio::io::AsyncWriteExt;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let phase = args.first().cloned().unwrap_or_default();
    let value = |flag: &str| -> Result<String> {
        let at = args
            .iter()
            .position(|a| a == flag)
            .with_context(|| format!("missing {flag}"))?;
        args.get(at + 1)
            .cloned()
            .with_context(|| format!("{flag} needs a value"))
    };
    let kind = value("--kind")?;
    let config: toml::Table =
        toml::from_str(&std::fs::read_to_string(value("--config")?).context("reading --config")?)?;
    let key = ObjectKey::new(value("--key")?)?;

    // Reference every built-in kind so the linker keeps their registrations.
    let _ = sstore_cli::builtin_kinds();
    let registry = Registry::builtin();
    let request = OpenRequest {
        name: format!("bench-{kind}"),
        url: None,
        config,
    };
    let target = registry.open(&kind, &request).await?;
    if phase == "delete" {
        target.delete(&key).await?;
        return Ok(());
    }
    let file = std::path::PathBuf::from(value("--file")?);

    let started = Instant::now();
    let bytes = match phase.as_str() {
        "upload" => {
            let _ = target.delete(&key).await;
            target.put_file(&key, &file, PutMode::Overwrite).await?.size
        }
        "download" => {
            // Large buffers: tokio's file writes hop to a blocking thread per call, so 8 KiB
            // copies would measure the hops, not the target.
            let reader = target.get(&key).await?;
            let mut reader = tokio::io::BufReader::with_capacity(1 << 20, reader);
            let mut out = tokio::fs::File::create(&file).await?;
            out.set_max_buf_size(1 << 20);
            let n = tokio::io::copy_buf(&mut reader, &mut out).await?;
            out.flush().await?;
            n
        }
        other => bail!("unknown phase '{other}': upload or download"),
    };
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "BENCH {{\"phase\":\"{phase}\",\"bytes\":{bytes},\"seconds\":{seconds:.3},\"mib_per_s\":{:.1}}}",
        bytes as f64 / (1024.0 * 1024.0) / seconds
    );
    Ok(())
}
