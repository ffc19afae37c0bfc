//! One transfer through the SMB target, for `cargo xtask bench-smb` (which times it and
//! samples its peak RSS next to `smbclient` doing the same):
//!
//! ```text
//! smb_bench put URL FILE KEY   # the staged FILE to KEY under the smb:// URL (put_file)
//! smb_bench get URL KEY FILE   # KEY back into FILE (streamed)
//! ```
//!
//! The password comes from `SSTORE_SMB_PASSWORD`, as for `sstore` itself.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use sstore_target_api::{ObjectKey, OpenRequest, PutMode, Target};
use tokio::io::AsyncReadExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [verb, url, a, b] = args.as_slice() else {
        return Err("usage: smb_bench put URL FILE KEY | get URL KEY FILE".into());
    };
    let target = sstore_target_smb::open(&OpenRequest::for_url(url.as_str()))?;
    let started = Instant::now();
    let bytes = match verb.as_str() {
        "put" => {
            let key = ObjectKey::new(b.as_str())?;
            target
                .put_file(&key, Path::new(a), PutMode::Overwrite)
                .await?
                .size
        }
        "get" => {
            let key = ObjectKey::new(a.as_str())?;
            let mut reader = target.get(&key).await?;
            let mut file = std::fs::File::create(b)?;
            let mut buf = vec![0u8; 8 * 1024 * 1024];
            let mut total = 0u64;
            loop {
                let n = reader.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                file.write_all(&buf[..n])?;
                total += n as u64;
            }
            file.flush()?;
            total
        }
        other => return Err(format!("unknown verb {other}").into()),
    };
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{verb} {bytes} bytes in {secs:.3} s: {:.0} MiB/s",
        bytes as f64 / 1048576.0 / secs
    );
    Ok(())
}
