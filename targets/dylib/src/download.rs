//! An async reader fed by a plugin's blocking `get_read` calls: a blocking thread reads chunks
//! and sends them through a small bounded channel, so memory stays flat and a failed read
//! reaches the reader as an error, never as a silent end of the object.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

/// Chunks in flight between the plugin's thread and the reader.
pub(crate) const CHANNEL_DEPTH: usize = 4;

/// The receiving end, as an [`AsyncRead`].
pub(crate) struct ChannelReader {
    chunks: mpsc::Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    position: usize,
    done: bool,
}

impl ChannelReader {
    pub(crate) fn new(chunks: mpsc::Receiver<io::Result<Vec<u8>>>) -> Self {
        Self {
            chunks,
            current: Vec::new(),
            position: 0,
            done: false,
        }
    }
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.position < self.current.len() {
                let n = buf.remaining().min(self.current.len() - self.position);
                let start = self.position;
                buf.put_slice(&self.current[start..start + n]);
                self.position += n;
                return Poll::Ready(Ok(()));
            }
            if self.done {
                return Poll::Ready(Ok(()));
            }
            match self.chunks.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                // The sender ends the stream with an empty chunk; a closed channel without it
                // means the reading thread died.
                Poll::Ready(None) => {
                    self.done = true;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the plugin's reader stopped before the end of the object",
                    )));
                }
                Poll::Ready(Some(Err(e))) => {
                    self.done = true;
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Some(Ok(chunk))) if chunk.is_empty() => self.done = true,
                Poll::Ready(Some(Ok(chunk))) => {
                    self.current = chunk;
                    self.position = 0;
                }
            }
        }
    }
}
