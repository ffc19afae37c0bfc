//! Throughput and memory benchmark of the encrypted backup stream (docs/FORMAT.md).
//!
//! ```text
//! cargo bench -p sstore-core --bench stream -- <encrypt|decrypt|all> [--size-mib N] [--dir DIR] [--keep]
//! ```
//!
//! - `encrypt` streams N MiB (default 1024) of incompressible data through [`StreamWriter`]
//!   (no compression, default chunk size, recommended Argon2id) into a [`WriteBehindFile`] written
//!   past the page cache, as a backup is staged ([`Durability::Direct`]), and fsyncs it. The data
//!   file stays in DIR for `decrypt`.
//! - `decrypt` reads that file back from the disk through a [`ReadAheadFile`] (as a staged
//!   backup's read-back does) and [`StreamReader`], and discards the plaintext. The file is
//!   removed afterwards unless `--keep` is given.
//! - `all` runs both in one process (and removes the file unless `--keep`). Run `encrypt` and
//!   `decrypt` as separate processes to get each phase's own whole-process peak RSS.
//!
//! Each phase reports the Argon2id time separately, the streaming throughput (excluding the key
//! derivation), the whole-process peak RSS (VmHWM) and the peak RSS of the streaming phase alone
//! (VmHWM after resetting it through /proc/self/clear_refs once the key is derived), then one
//! machine-readable `BENCH {...}` line. Unknown arguments (cargo passes `--bench`) are ignored.
//! Without a mode it prints this usage and exits successfully, so `cargo test --all-targets`
//! and a bare `cargo bench` do not write gigabytes.

use std::error::Error;
use std::fmt::Display;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sstore_core::KdfParams;
use sstore_core::Passphrase;
use sstore_core::format::{
    Compression, DEFAULT_CHUNK_SIZE, StreamOptions, StreamReader, StreamWriter,
};
use sstore_core::fsutil::{
    Durability, ReadAheadFile, WriteBehindFile, create_private_dir_all, create_private_file,
};

const MIB: u64 = 1024 * 1024;
const DEFAULT_SIZE_MIB: u64 = 1024;
/// The generator buffer: filled once, then varied cheaply per use.
const GEN_BUFFER: usize = 8 * 1024 * 1024;
/// Every block of this many bytes gets the per-buffer counter XORed into its first 8 bytes.
const GEN_BLOCK: usize = 4096;
const DATA_FILE: &str = "stream.sst";
const PASSPHRASE: &str = "Bench-Passphrase-1";

const USAGE: &str = "\
usage: cargo bench -p sstore-core --bench stream -- <MODE> [--size-mib N] [--dir DIR] [--keep]

modes:
  encrypt   stream N MiB through StreamWriter into a fsynced file in DIR (kept for decrypt)
  decrypt   read DIR's file back through StreamReader (warm page cache), then remove it
  all       encrypt then decrypt in one process, then remove the file

options:
  --size-mib N   plaintext size for encrypt (default 1024)
  --dir DIR      where the data file goes (default: <temp dir>/sstore-bench-stream)
  --keep         keep the data file after decrypt/all";

fn main() {
    if let Err(e) = run() {
        eprintln!("stream benchmark failed: {e}");
        std::process::exit(1);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Encrypt,
    Decrypt,
    All,
}

struct Args {
    mode: Option<Mode>,
    /// `None` when not given on the command line.
    size_mib: Option<u64>,
    dir: PathBuf,
    default_dir: bool,
    keep: bool,
    help: bool,
}

fn parse_args() -> Result<Args, Box<dyn Error>> {
    let mut args = Args {
        mode: None,
        size_mib: None,
        dir: std::env::temp_dir().join("sstore-bench-stream"),
        default_dir: true,
        keep: false,
        help: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |flag: &str| -> Result<String, Box<dyn Error>> {
            match inline.clone().or_else(|| it.next()) {
                Some(v) => Ok(v),
                None => Err(format!("{flag} needs a value\n\n{USAGE}").into()),
            }
        };
        match name.as_str() {
            "encrypt" | "decrypt" | "all" if args.mode.is_some() => {
                return Err(format!("more than one mode given ({arg})\n\n{USAGE}").into());
            }
            "encrypt" => args.mode = Some(Mode::Encrypt),
            "decrypt" => args.mode = Some(Mode::Decrypt),
            "all" => args.mode = Some(Mode::All),
            "--size-mib" => {
                let v = value("--size-mib")?;
                let n: u64 = v
                    .parse()
                    .map_err(|_| format!("--size-mib: '{v}' is not a whole number of MiB"))?;
                if n == 0 {
                    return Err("--size-mib must be at least 1".into());
                }
                args.size_mib = Some(n);
            }
            "--dir" => {
                args.dir = PathBuf::from(value("--dir")?);
                args.default_dir = false;
            }
            "--keep" => args.keep = true,
            "-h" | "--help" => args.help = true,
            // cargo bench passes `--bench` to harness = false benches; ignore that and anything
            // else we do not know (libtest-style flags, filters).
            _ => {}
        }
    }
    Ok(args)
}

fn run() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    let Some(mode) = args.mode.filter(|_| !args.help) else {
        println!("{USAGE}");
        return Ok(());
    };
    if mode != Mode::Decrypt {
        create_private_dir_all(&args.dir)
            .ctx(|| format!("creating the benchmark folder {}", args.dir.display()))?;
    }
    let path = args.dir.join(DATA_FILE);
    let passphrase = Passphrase::new(PASSPHRASE);
    let size_mib = args.size_mib.unwrap_or(DEFAULT_SIZE_MIB);

    let result = (|| {
        if matches!(mode, Mode::Encrypt | Mode::All) {
            encrypt(&path, &passphrase, size_mib)?;
        }
        if matches!(mode, Mode::Decrypt | Mode::All) {
            let expected = match mode {
                Mode::All => Some(size_mib),
                _ => args.size_mib,
            };
            decrypt(&path, &passphrase, expected, mode == Mode::All)?;
        }
        Ok::<(), Box<dyn Error>>(())
    })();

    // A failed encrypt leaves a partial file that decrypt could not use anyway.
    if (mode != Mode::Encrypt && !args.keep) || (mode == Mode::Encrypt && result.is_err()) {
        let removed = remove_data(&path, &args);
        // The benchmark's own error matters more than a failed clean-up.
        result?;
        return removed;
    } else if result.is_ok() {
        println!("data file kept: {}", path.display());
    }
    result
}

fn remove_data(path: &Path, args: &Args) -> Result<(), Box<dyn Error>> {
    match fs::remove_file(path) {
        Ok(()) => println!("removed {}", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("removing {}: {e}", path.display()).into()),
    }
    if args.default_dir {
        // Only succeeds when empty; a folder the user named is never removed.
        let _ = fs::remove_dir(&args.dir);
    }
    Ok(())
}

fn encrypt(path: &Path, passphrase: &Passphrase, size_mib: u64) -> Result<(), Box<dyn Error>> {
    let total = size_mib * MIB;
    let options = StreamOptions {
        kdf: KdfParams::RECOMMENDED,
        chunk_size: DEFAULT_CHUNK_SIZE,
        compression: Compression::None,
        backup_id: *b"sstore-bench-001",
    };
    println!(
        "== encrypt: {size_mib} MiB, chunk {} KiB, {}, no compression",
        options.chunk_size / 1024,
        options.kdf
    );
    println!("   file: {}", path.display());

    let mut data = Generator::new(0x5EED_5702_E0BE_0C41);

    if path.exists() {
        fs::remove_file(path)
            .ctx(|| format!("removing the previous data file {}", path.display()))?;
    }
    let file = create_private_file(path).ctx(|| format!("creating {}", path.display()))?;
    let sink = WriteBehindFile::with_durability(file, path.to_path_buf(), (), Durability::Direct);

    let kdf_start = Instant::now();
    let mut writer = StreamWriter::new(sink, passphrase, &options)
        .ctx(|| "starting the stream (key derivation, header)".to_owned())?;
    let kdf = kdf_start.elapsed();

    let reset = reset_peak_rss();
    let rss_at_start = read_status_kib("VmRSS:");
    let start = Instant::now();
    let mut left = total;
    while left > 0 {
        let piece = data.next_buffer();
        let n = usize::try_from(left.min(piece.len() as u64))?;
        writer
            .write_all(&piece[..n])
            .ctx(|| format!("writing to {}", path.display()))?;
        left -= n as u64;
    }
    let sink = writer
        .finish()
        .ctx(|| format!("sealing the final chunk of {}", path.display()))?;
    let finishing = Instant::now();
    sink.finish()
        .ctx(|| format!("flushing and fsyncing {}", path.display()))?;
    let elapsed = start.elapsed();
    let finish_time = finishing.elapsed();
    let stream_peak = read_status_kib("VmHWM:");

    let file_len = fs::metadata(path)
        .ctx(|| format!("reading the size of {}", path.display()))?
        .len();
    println!(
        "   ciphertext: {} bytes ({:.2} MiB, overhead {} bytes)",
        file_len,
        file_len as f64 / MIB as f64,
        file_len.saturating_sub(total)
    );
    println!(
        "   of the streaming time, WriteBehindFile::finish (drain queue + fsync) took {:.3} s",
        finish_time.as_secs_f64()
    );
    report(
        "encrypt",
        "encrypt + write-behind + fsync",
        total,
        kdf,
        elapsed,
        &reset,
        rss_at_start,
        stream_peak,
        "",
    );
    Ok(())
}

fn decrypt(
    path: &Path,
    passphrase: &Passphrase,
    expected_mib: Option<u64>,
    after_encrypt: bool,
) -> Result<(), Box<dyn Error>> {
    let file = File::open(path).ctx(|| {
        format!(
            "opening {} (run the `encrypt` mode first with the same --dir)",
            path.display()
        )
    })?;
    let file_len = file
        .metadata()
        .ctx(|| format!("reading the size of {}", path.display()))?
        .len();
    println!(
        "== decrypt: {} ({:.2} MiB ciphertext)",
        path.display(),
        file_len as f64 / MIB as f64
    );
    println!("   read from the disk past the page cache where the filesystem allows it");

    let mut out = vec![0u8; DEFAULT_CHUNK_SIZE as usize];
    let kdf_start = Instant::now();
    drop(file);
    let raw = ReadAheadFile::open(path).ctx(|| format!("opening {}", path.display()))?;
    let mut reader = StreamReader::open(raw, passphrase)
        .ctx(|| format!("opening the stream in {}", path.display()))?;
    let kdf = kdf_start.elapsed();

    let reset = reset_peak_rss();
    let rss_at_start = read_status_kib("VmRSS:");
    let start = Instant::now();
    let mut total: u64 = 0;
    loop {
        let n = match reader.read(&mut out) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(format!(
                    "reading {} at plaintext offset {total}: {e}",
                    path.display()
                )
                .into());
            }
        };
        total += n as u64;
    }
    let elapsed = start.elapsed();
    let stream_peak = read_status_kib("VmHWM:");
    drop(reader);

    if let Some(mib) = expected_mib
        && total != mib * MIB
    {
        return Err(format!(
            "decrypted {total} bytes but expected {mib} MiB ({} bytes)",
            mib * MIB
        )
        .into());
    }
    let note = if after_encrypt {
        " (includes the encrypt phase: run `decrypt` alone for this phase's own)"
    } else {
        ""
    };
    report(
        "decrypt",
        "read + authenticate + decrypt",
        total,
        kdf,
        elapsed,
        &reset,
        rss_at_start,
        stream_peak,
        note,
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn report(
    phase: &str,
    what: &str,
    bytes: u64,
    kdf: Duration,
    elapsed: Duration,
    reset: &Result<(), String>,
    rss_at_start: Option<u64>,
    stream_peak: Option<u64>,
    whole_note: &str,
) {
    let size_mib = bytes as f64 / MIB as f64;
    let secs = elapsed.as_secs_f64();
    let mib_per_s = if secs > 0.0 { size_mib / secs } else { 0.0 };
    let kdf_ms = kdf.as_secs_f64() * 1000.0;
    let whole_peak = whole_process_peak_kib().map(kib_to_mib);
    // Only meaningful if the reset worked; otherwise VmHWM still includes everything before.
    let stream_peak = stream_peak.filter(|_| reset.is_ok()).map(kib_to_mib);

    println!("   key derivation (Argon2id):   {kdf_ms:.1} ms");
    println!(
        "   streaming ({what}): {size_mib} MiB in {secs:.3} s = {mib_per_s:.1} MiB/s (excludes key derivation)"
    );
    match whole_peak {
        Some(mib) => println!("   peak RSS (whole process):    {mib:.1} MiB{whole_note}"),
        None => println!("   peak RSS (whole process):    unavailable (no /proc/self/status)"),
    }
    match (reset, stream_peak) {
        (Ok(()), Some(mib)) => println!(
            "   peak RSS (streaming phase):  {mib:.1} MiB (RSS when streaming started: {})",
            rss_at_start.map_or("unknown".to_owned(), |k| format!(
                "{:.1} MiB",
                kib_to_mib(k)
            ))
        ),
        (Err(why), _) => println!(
            "   peak RSS (streaming phase):  unavailable: resetting VmHWM through /proc/self/clear_refs failed ({why})"
        ),
        (Ok(()), None) => {
            println!("   peak RSS (streaming phase):  unavailable (no VmHWM in /proc/self/status)")
        }
    }
    println!(
        "BENCH {{\"phase\":\"{phase}\",\"size_mib\":{size_mib},\"mib_per_s\":{mib_per_s:.1},\"kdf_ms\":{kdf_ms:.1},\"peak_rss_mib\":{},\"stream_peak_rss_mib\":{}}}",
        json_num(whole_peak),
        json_num(stream_peak)
    );
}

fn json_num(value: Option<f64>) -> String {
    value.map_or("null".to_owned(), |v| format!("{v:.1}"))
}

fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A field of /proc/self/status in KiB (`VmHWM:`, `VmRSS:`); `None` off Linux.
fn read_status_kib(field: &str) -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The highest VmHWM seen before any reset, in KiB: resetting VmHWM for the streaming phase
/// would otherwise hide the key derivation's peak from the whole-process figure.
static PEAK_BEFORE_RESETS_KIB: AtomicU64 = AtomicU64::new(0);

/// Resets VmHWM to the current RSS (Linux >= 4.0: "5" > /proc/self/clear_refs), remembering the
/// peak so far for [`whole_process_peak_kib`].
fn reset_peak_rss() -> Result<(), String> {
    if let Some(kib) = read_status_kib("VmHWM:") {
        PEAK_BEFORE_RESETS_KIB.fetch_max(kib, Ordering::Relaxed);
    }
    fs::write("/proc/self/clear_refs", "5").map_err(|e| e.to_string())
}

/// The process's peak RSS since it started, across VmHWM resets.
fn whole_process_peak_kib() -> Option<u64> {
    let now = read_status_kib("VmHWM:")?;
    Some(now.max(PEAK_BEFORE_RESETS_KIB.load(Ordering::Relaxed)))
}

/// Incompressible data without paying for a PRNG per byte: one buffer filled once with
/// xorshift64*, then before each use a counter is XORed into the first 8 bytes of every 4 KiB
/// block, so successive buffers (and pages) all differ.
struct Generator {
    buf: Vec<u8>,
    counter: u64,
}

impl Generator {
    fn new(seed: u64) -> Self {
        let mut state = seed | 1;
        let mut buf = vec![0u8; GEN_BUFFER];
        for word in buf.chunks_exact_mut(8) {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            word.copy_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        Self { buf, counter: 0 }
    }

    fn next_buffer(&mut self) -> &[u8] {
        let previous = self.counter;
        self.counter += 1;
        // XOR in the difference so each block's first word is `original ^ counter`.
        let delta = (previous ^ self.counter).to_le_bytes();
        for block in self.buf.chunks_exact_mut(GEN_BLOCK) {
            for (b, d) in block.iter_mut().zip(delta) {
                *b ^= d;
            }
        }
        &self.buf
    }
}

/// Adds what was being done to an error message.
trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, Box<dyn Error>>;
}

impl<T, E: Display> Context<T> for Result<T, E> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, Box<dyn Error>> {
        self.map_err(|e| format!("{}: {e}", what()).into())
    }
}
