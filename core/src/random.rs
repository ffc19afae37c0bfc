//! Random bytes from the operating system.

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
