//! Helpers the benchmarks share: the release folder, commands timed under GNU time, medians
//! and a running process's peak RSS.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `<target>/release` (CARGO_TARGET_DIR honoured).
pub fn release_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("release")
}

/// One process measured by GNU time: its wall time (start-up included) and peak RSS.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timed {
    pub seconds: f64,
    pub peak_rss_mib: f64,
}

impl Timed {
    /// Two processes run one after the other: the times add up, the peak is the larger.
    pub fn then(self, other: Timed) -> Timed {
        Timed {
            seconds: self.seconds + other.seconds,
            peak_rss_mib: self.peak_rss_mib.max(other.peak_rss_mib),
        }
    }
}

/// Runs `cmd` (its program, arguments and environment) as its own process under
/// `/usr/bin/time -f '%e %M'`, stdin closed; fails with its output if it fails.
pub fn timed(cmd: &Command) -> Result<Timed, String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut timed = Command::new("/usr/bin/time");
    timed
        .args(["-f", "TIME %e %M"])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdin(Stdio::null());
    if let Some(dir) = cmd.get_current_dir() {
        timed.current_dir(dir);
    }
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => timed.env(key, v),
            None => timed.env_remove(key),
        };
    }
    let out = timed
        .output()
        .map_err(|e| format!("/usr/bin/time {program}: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "{program} {:?} failed ({}): {}{stderr}",
            cmd.get_args().collect::<Vec<_>>(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
        ));
    }
    let line = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("TIME "))
        .ok_or_else(|| format!("GNU time printed nothing for {program}"))?;
    let mut fields = line.split_whitespace();
    let seconds: f64 = fields
        .next()
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| format!("bad time in {line:?}"))?;
    let rss_kib: f64 = fields
        .next()
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| format!("bad peak RSS in {line:?}"))?;
    Ok(Timed {
        seconds,
        peak_rss_mib: rss_kib / 1024.0,
    })
}

/// The median (the mean of the middle two for an even count; NaN for none).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A running process's peak resident set (VmHWM), KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}
