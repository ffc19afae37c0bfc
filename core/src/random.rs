//! Random bytes from the operating system.

use std::cell::RefCell;

use zeroize::Zeroize;

/// Fills `buf` from the OS random source. A machine without one cannot run sstore safely, so
/// failure aborts rather than continuing with predictable keys.
pub fn fill(buf: &mut [u8]) {
    if let Err(err) = getrandom::fill(buf) {
        panic!("the operating system's random number generator failed: {err}");
    }
}

/// `N` random bytes.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fill(&mut out);
    out
}

/// A random lower-case hex identifier of `N` bytes.
pub fn hex_id<const N: usize>() -> String {
    hex::encode(bytes::<N>())
}

/// A fresh 12-byte AES-GCM nonce. Nonces are served from a per-thread buffer refilled from the
/// OS 4 KiB at a time: one system call per 341 nonces instead of one each (a `masterkey
/// update` seals one per stored value; the calls took a tenth of it). Bytes handed out are
/// wiped from the buffer. Only nonces come from it, never keys; and sstore never forks
/// without exec, so no two processes share a buffer.
pub fn nonce() -> [u8; 12] {
    const POOL: usize = 4096;
    thread_local! {
        static BUFFER: RefCell<(Vec<u8>, usize)> = RefCell::new((vec![0; POOL], POOL));
    }
    BUFFER.with_borrow_mut(|(pool, next)| {
        if *next + 12 > pool.len() {
            fill(pool);
            *next = 0;
        }
        let mut out = [0u8; 12];
        let taken = &mut pool[*next..*next + 12];
        out.copy_from_slice(taken);
        taken.zeroize();
        *next += 12;
        out
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn nonces_do_not_repeat_across_refills() {
        let nonces: std::collections::HashSet<[u8; 12]> =
            (0..2000).map(|_| super::nonce()).collect();
        assert_eq!(nonces.len(), 2000);
    }
}
