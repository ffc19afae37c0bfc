//! Moving bytes between the engine and a client: uploads read the body in [`CHUNK`]s, and
//! downloads arrive as [`READ_CHUNK`]-sized buffers through a bounded channel (from smb2's
//! pipelined reads or libsmbclient's blocking ones), so memory stays flat whatever the size,
//! and every wait for the server is bounded by the target's timeout.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

/// The size of one write call. Both clients split it into requests of at most the server's
/// maximum write size (8 MiB for Samba); smb2 keeps several in flight.
pub const CHUNK: usize = 8 * 1024 * 1024;

/// The size of one read call: 2 MiB calls read at ~1.2 GiB/s on loopback, 32 MiB calls at
/// ~0.6 GiB/s (measured with `cargo xtask bench-targets --only smb`), at a third of the memory.
pub const READ_CHUNK: usize = 2 * 1024 * 1024;

/// How many chunks may wait between the two sides.
pub const DEPTH: usize = 2;

/// Reads up to one chunk from `body`; an empty buffer means the body ended.
pub async fn read_chunk<R: AsyncRead + Unpin + ?Sized>(body: &mut R) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(CHUNK);
    while buf.len() < CHUNK {
        let before = buf.len();
        (&mut *body)
            .take((CHUNK - before) as u64)
            .read_buf(&mut buf)
            .await?;
        if buf.len() == before {
            break;
        }
    }
    Ok(buf)
}

/// An `AsyncRead` over chunks a blocking reader sends. A chunk that does not come within the
/// timeout is a `TimedOut` error (the server stalled), never a hang.
pub struct ChunkReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    at: usize,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    done: bool,
}

impl ChunkReader {
    pub fn new(rx: mpsc::Receiver<io::Result<Vec<u8>>>, timeout: Duration) -> Self {
        Self {
            rx,
            current: Vec::new(),
            at: 0,
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            done: false,
        }
    }
}

impl AsyncRead for ChunkReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while this.at == this.current.len() {
            if this.done {
                return Poll::Ready(Ok(()));
            }
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    this.current = chunk;
                    this.at = 0;
                    let deadline = Instant::now() + this.timeout;
                    this.sleep.as_mut().reset(deadline);
                }
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Err(e));
                }
                // The reader finished: it sends an error for anything but a clean end.
                Poll::Ready(None) => this.done = true,
                Poll::Pending => {
                    ready!(this.sleep.as_mut().poll(cx));
                    this.done = true;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the SMB server sent nothing for {:?}", this.timeout),
                    )));
                }
            }
        }
        let n = buf.remaining().min(this.current.len() - this.at);
        buf.put_slice(&this.current[this.at..this.at + n]);
        this.at += n;
        if this.at == this.current.len() {
            this.current = Vec::new();
            this.at = 0;
        }
        Poll::Ready(Ok(()))
    }
}
