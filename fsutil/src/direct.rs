//! Reading and writing past the page cache (`O_DIRECT` on Linux), for a large file written once
//! and read back once: it spares the page cache's memory (a backup does not push the machine's
//! useful cache out) and the time the kernel takes to hand out new cache pages. Direct I/O needs
//! buffers, offsets and lengths aligned to the device's blocks: [`AlignedBuffer`] gives the
//! first, and callers move in whole buffers. Where the filesystem refuses it (tmpfs on older
//! kernels, some network filesystems), the file is read or written through the cache instead.

use std::fs::File;
use std::io;
use std::path::Path;

/// The alignment direct I/O gets here: the largest logical block size in common use.
pub(crate) const ALIGN: usize = 4096;

/// A fixed-size byte buffer whose bytes start at a 4 KiB-aligned address, filled from the front.
///
/// Its memory is an anonymous mapping of its own (page-aligned, so direct I/O can use it), which
/// goes back to the system when the buffer is dropped. Buffers of a MiB or more taken from the
/// heap stay with the allocator after they are freed (glibc raises its mmap threshold after the
/// first free): a restore's I/O and hashing buffers then stayed resident under the key
/// derivation that follows, which is why the engine's hashing threads use this buffer too.
/// Where a mapping fails the buffer comes from the heap, aligned by hand when it can be.
pub struct AlignedBuffer {
    block: Block,
    len: usize,
    capacity: usize,
}

enum Block {
    Mapped(memmap2::MmapMut),
    /// A heap block with the bytes from `start`; it never moves, so the alignment holds when
    /// the buffer is sent between threads.
    Heap {
        bytes: Vec<u8>,
        start: usize,
    },
}

impl AlignedBuffer {
    /// A buffer of `capacity` bytes (a multiple of 4 KiB).
    pub fn new(capacity: usize) -> Self {
        match (capacity > 0)
            .then(|| memmap2::MmapMut::map_anon(capacity).ok())
            .flatten()
        {
            Some(map) => Self {
                block: Block::Mapped(map),
                len: 0,
                capacity,
            },
            None => Self::on_heap(capacity),
        }
    }

    /// A buffer from the heap, where no mapping could be made.
    fn on_heap(capacity: usize) -> Self {
        let bytes = vec![0u8; capacity + ALIGN];
        // `align_offset` may decline to answer; the buffer then starts at 0 and is simply not
        // aligned, which `is_aligned` reports.
        let start = match bytes.as_ptr().align_offset(ALIGN) {
            offset if offset < ALIGN => offset,
            _ => 0,
        };
        Self {
            block: Block::Heap { bytes, start },
            len: 0,
            capacity,
        }
    }

    /// All `capacity` bytes.
    fn bytes(&self) -> &[u8] {
        match &self.block {
            Block::Mapped(map) => &map[..self.capacity],
            Block::Heap { bytes, start } => &bytes[*start..*start + self.capacity],
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        match &mut self.block {
            Block::Mapped(map) => &mut map[..self.capacity],
            Block::Heap { bytes, start } => &mut bytes[*start..*start + self.capacity],
        }
    }

    pub(crate) fn is_aligned(&self) -> bool {
        self.bytes().as_ptr().align_offset(ALIGN) == 0
    }

    /// Copies as much of `data` as fits; returns how much.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let take = (self.capacity - self.len).min(data.len());
        let at = self.len;
        self.bytes_mut()[at..at + take].copy_from_slice(&data[..take]);
        self.len += take;
        take
    }

    pub fn filled(&self) -> &[u8] {
        &self.bytes()[..self.len]
    }

    /// The whole buffer to read into; [`AlignedBuffer::set_len`] then says how much was read.
    pub(crate) fn space(&mut self) -> &mut [u8] {
        self.bytes_mut()
    }

    pub(crate) fn set_len(&mut self, len: usize) {
        self.len = len.min(self.capacity);
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == self.capacity
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// Turns direct I/O on for `file`; `false` where the platform or filesystem refuses it.
pub(crate) fn enable(file: &File) -> bool {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
        fcntl_getfl(file)
            .and_then(|flags| fcntl_setfl(file, flags | OFlags::DIRECT))
            .is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        false
    }
}

/// A second handle on `file` (found at `path`) with direct I/O turned on: `None` where the
/// platform or filesystem refuses it, or when `path` no longer names the same file. Direct I/O
/// is a flag of the open file, not of a duplicated descriptor, so it needs its own open.
pub(crate) fn reopen(file: &File, path: &Path) -> Option<File> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let second = File::open(path).ok()?;
        let (first, other) = (file.metadata().ok()?, second.metadata().ok()?);
        ((first.dev(), first.ino()) == (other.dev(), other.ino()) && enable(&second))
            .then_some(second)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, path);
        None
    }
}

/// Turns direct I/O off again (for a last, partial block).
pub(crate) fn disable(file: &File) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
        let flags = fcntl_getfl(file)?;
        fcntl_setfl(file, flags - OFlags::DIRECT)?;
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
    Ok(())
}

/// A positioned read (on a file opened for direct I/O: `buf` and `offset` aligned).
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        std::os::windows::fs::FileExt::seek_read(file, buf, offset)
    }
}

/// Whether `error` is the filesystem refusing direct I/O (or its alignment), so the caller
/// should go on through the cache.
pub(crate) fn refused(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::InvalidInput
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aligned_buffer_is_aligned_and_fills_up_to_its_size() {
        let mapped = AlignedBuffer::new(2 * ALIGN);
        assert!(matches!(mapped.block, Block::Mapped(_)));
        for mut buf in [mapped, AlignedBuffer::on_heap(2 * ALIGN)] {
            fills_up(&mut buf);
        }
        assert_eq!(AlignedBuffer::new(0).push(b"x"), 0);
    }

    fn fills_up(buf: &mut AlignedBuffer) {
        assert!(buf.is_aligned());
        assert_eq!(buf.filled().as_ptr().align_offset(ALIGN), 0);
        assert_eq!(buf.push(&[7u8; ALIGN]), ALIGN);
        assert_eq!(buf.push(&[8u8; 3 * ALIGN]), ALIGN);
        assert!(buf.is_full());
        assert_eq!(buf.filled().len(), 2 * ALIGN);
        assert_eq!(buf.filled()[ALIGN - 1], 7);
        assert_eq!(buf.filled()[ALIGN], 8);
        buf.clear();
        assert_eq!(buf.len(), 0);
    }
}
