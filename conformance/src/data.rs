//! Test data for the kit: deterministic pseudo-random bodies that are generated, hashed and
//! checked as streams (so even a multi-gigabyte object never sits in memory), and bodies that
//! fail or pause part-way, for the aborted-put and visibility checks.
//!
//! The pattern is a fixed pseudo-random pool of a little over 1 MiB; block `b` of an object
//! is the pool rotated by an offset derived from the object's seed and `b`. Generating is a
//! `memcpy`, any byte range can be produced directly (for ranged reads), and since the block
//! length is not a power of two, block boundaries never line up with the part sizes of
//! multipart uploads.

use std::fmt::{self, Write as _};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::sync::oneshot;

/// The pool's (and so one block's) length.
const POOL_LEN: usize = (1 << 20) + 7;

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn pool() -> &'static [u8] {
    static POOL: OnceLock<Box<[u8]>> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut state = 0x5353_544f_5245_u64;
        let mut out = Vec::with_capacity(POOL_LEN + 8);
        while out.len() < POOL_LEN {
            out.extend_from_slice(&splitmix64(&mut state).to_le_bytes());
        }
        out.truncate(POOL_LEN);
        out.into_boxed_slice()
    })
}

/// Where block `block` of the object with `seed` starts in the pool.
fn rotation(seed: u64, block: u64) -> usize {
    let mut state = seed ^ block.wrapping_mul(0xD1B5_4A32_D192_ED03);
    (splitmix64(&mut state) % POOL_LEN as u64) as usize
}

/// Fills `buf` with the bytes of the pattern `seed` starting at `offset`.
pub fn fill_pattern(seed: u64, offset: u64, buf: &mut [u8]) {
    let pool = pool();
    let mut position = offset;
    let mut done = 0;
    while done < buf.len() {
        let block = position / POOL_LEN as u64;
        let within = (position % POOL_LEN as u64) as usize;
        let start = (within + rotation(seed, block)) % POOL_LEN;
        let n = (buf.len() - done)
            .min(POOL_LEN - within)
            .min(POOL_LEN - start);
        buf[done..done + n].copy_from_slice(&pool[start..start + n]);
        done += n;
        position += n as u64;
    }
}

/// The `len` bytes of the pattern `seed` starting at `offset`, in memory (for small objects).
pub fn pattern_bytes(seed: u64, offset: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    fill_pattern(seed, offset, &mut out);
    out
}

/// The length and SHA-256 of a byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digest {
    pub length: u64,
    pub sha256: [u8; 32],
}

impl Digest {
    /// The digest of the pattern `seed` of `length` bytes, computed in chunks.
    pub fn of_pattern(seed: u64, length: u64) -> Self {
        let mut hasher = Sha256::new();
        let mut buf = vec![0; 256 * 1024];
        let mut position = 0;
        while position < length {
            let n = usize::try_from(length - position)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            fill_pattern(seed, position, &mut buf[..n]);
            hasher.update(&buf[..n]);
            position += n as u64;
        }
        Self::finish(length, hasher)
    }

    /// The digest of bytes in memory.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self::finish(bytes.len() as u64, Sha256::new_with_prefix(bytes))
    }

    fn finish(length: u64, hasher: Sha256) -> Self {
        Self {
            length,
            sha256: hasher.finalize().into(),
        }
    }

    /// The SHA-256 in lower-case hex (as [`sstore_target_api::ObjectMeta::sha256`]).
    pub fn sha256_hex(&self) -> String {
        let mut out = String::with_capacity(64);
        for byte in self.sha256 {
            let _ = write!(out, "{byte:02x}");
        }
        out
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes, sha256 {}", self.length, self.sha256_hex())
    }
}

/// Reads `reader` to its end (or to `limit + 1` bytes, whichever comes first), hashing as it
/// goes; memory use is one 256 KiB buffer whatever the size.
pub async fn read_digest<R>(reader: &mut R, limit: u64) -> io::Result<Digest>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 256 * 1024];
    let mut length = 0u64;
    while length <= limit {
        let room = usize::try_from(limit.saturating_add(1) - length)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = reader.read(&mut buf[..room]).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        length += n as u64;
    }
    Ok(Digest::finish(length, hasher))
}

/// A put body: `length` bytes of the pattern `seed`, hashed as they are produced.
#[derive(Debug, Clone)]
pub struct PatternReader {
    seed: u64,
    length: u64,
    position: u64,
    max_read: usize,
    hasher: Sha256,
}

impl PatternReader {
    pub fn new(seed: u64, length: u64) -> Self {
        Self {
            seed,
            length,
            position: 0,
            max_read: usize::MAX,
            hasher: Sha256::new(),
        }
    }

    /// Hands out at most `max` bytes per read (a trickling source).
    pub fn with_max_read(mut self, max: usize) -> Self {
        self.max_read = max.max(1);
        self
    }

    /// How many bytes were read so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The full length of the body.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// The digest of the bytes read so far (of the whole body once `position == length`).
    pub fn digest(&self) -> Digest {
        Digest::finish(self.position, self.hasher.clone())
    }

    /// Produces bytes into `buf`, never past `stop`.
    fn produce(&mut self, buf: &mut ReadBuf<'_>, stop: u64) {
        let left = self.length.min(stop).saturating_sub(self.position);
        let n = usize::try_from(left)
            .unwrap_or(usize::MAX)
            .min(buf.remaining())
            .min(self.max_read);
        if n == 0 {
            return;
        }
        let out = &mut buf.initialize_unfilled_to(n)[..n];
        fill_pattern(self.seed, self.position, out);
        self.hasher.update(&*out);
        buf.advance(n);
        self.position += n as u64;
    }
}

impl AsyncRead for PatternReader {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().produce(buf, u64::MAX);
        Poll::Ready(Ok(()))
    }
}

/// A put body that fails with an I/O error after `fail_at` bytes of the pattern, as a source
/// that goes away mid-upload.
#[derive(Debug, Clone)]
pub struct FailingReader {
    inner: PatternReader,
    fail_at: u64,
}

impl FailingReader {
    /// Would produce `length` bytes, but fails once `fail_at` of them were read.
    pub fn new(seed: u64, length: u64, fail_at: u64) -> Self {
        Self {
            inner: PatternReader::new(seed, length),
            fail_at,
        }
    }
}

impl AsyncRead for FailingReader {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.inner.position >= this.fail_at && this.inner.position < this.inner.length {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "the body's source failed (deliberately, by the conformance kit)",
            )));
        }
        this.inner.produce(buf, this.fail_at);
        Poll::Ready(Ok(()))
    }
}

/// A put body that stops after `gate_at` bytes until its [`Gate`] is opened: while it waits,
/// the put is in progress and nothing may be visible under its key.
#[derive(Debug)]
pub struct GatedReader {
    inner: PatternReader,
    gate_at: u64,
    reached: Option<oneshot::Sender<()>>,
    release: Option<oneshot::Receiver<()>>,
}

/// The control side of a [`GatedReader`].
#[derive(Debug)]
pub struct Gate {
    /// Resolves when the body has handed out `gate_at` bytes and waits (an error if the body
    /// was dropped before).
    pub reached: oneshot::Receiver<()>,
    /// Send (or drop, which fails the body) to let the rest of the body through.
    pub release: oneshot::Sender<()>,
}

impl GatedReader {
    pub fn new(seed: u64, length: u64, gate_at: u64) -> (Self, Gate) {
        let (reached_tx, reached_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        let reader = Self {
            inner: PatternReader::new(seed, length),
            gate_at,
            reached: Some(reached_tx),
            release: Some(release_rx),
        };
        let gate = Gate {
            reached: reached_rx,
            release: release_tx,
        };
        (reader, gate)
    }

    /// The digest of the bytes read so far.
    pub fn digest(&self) -> Digest {
        self.inner.digest()
    }
}

impl AsyncRead for GatedReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.inner.position < this.gate_at {
            this.inner.produce(buf, this.gate_at);
            return Poll::Ready(Ok(()));
        }
        if let Some(reached) = this.reached.take() {
            let _ = reached.send(());
        }
        if let Some(release) = this.release.as_mut() {
            match Pin::new(release).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => this.release = None,
                Poll::Ready(Err(_)) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "the gated body was abandoned",
                    )));
                }
            }
        }
        this.inner.produce(buf, u64::MAX);
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn streamed_pattern_matches_direct_generation() {
        let len = 3 * POOL_LEN as u64 + 12_345;
        let mut reader = PatternReader::new(7, len).with_max_read(100_003);
        let streamed = read_digest(&mut reader, u64::MAX).await.unwrap();
        assert_eq!(streamed, reader.digest());
        assert_eq!(streamed, Digest::of_pattern(7, len));
        let whole = pattern_bytes(7, 0, len as usize);
        assert_eq!(streamed, Digest::of_bytes(&whole));
        let offset = 2 * POOL_LEN as u64 - 10;
        assert_eq!(
            pattern_bytes(7, offset, 50),
            whole[offset as usize..offset as usize + 50]
        );
        assert_ne!(Digest::of_pattern(8, len), streamed);
        assert_ne!(
            pattern_bytes(7, 0, 64),
            pattern_bytes(7, POOL_LEN as u64, 64)
        );
    }

    #[tokio::test]
    async fn read_digest_stops_after_the_limit() {
        let digest = read_digest(&mut PatternReader::new(1, 1000), 10)
            .await
            .unwrap();
        assert_eq!(digest.length, 11);
    }

    #[tokio::test]
    async fn failing_reader_fails_at_its_offset() {
        let mut reader = FailingReader::new(1, 1000, 300);
        let mut out = Vec::new();
        let err = reader.read_to_end(&mut out).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(out, pattern_bytes(1, 0, 300));
    }

    #[tokio::test]
    async fn gated_reader_waits_for_its_gate() {
        let (mut reader, gate) = GatedReader::new(2, 1000, 400);
        let task = tokio::spawn(async move {
            let mut out = Vec::new();
            reader.read_to_end(&mut out).await.map(|_| out)
        });
        gate.reached.await.unwrap();
        assert!(!task.is_finished());
        gate.release.send(()).unwrap();
        assert_eq!(task.await.unwrap().unwrap(), pattern_bytes(2, 0, 1000));
    }

    #[test]
    fn hex_is_lower_case() {
        let hex = Digest::of_bytes(b"").sha256_hex();
        assert_eq!(
            hex,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
