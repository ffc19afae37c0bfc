//! Random bytes from the operating system, for salts, tokens, session ids and keys.

/// `N` random bytes. A machine whose random source fails cannot issue safe tokens or session
/// ids, so that failure stops the program rather than continuing with predictable ones.
pub(crate) fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    if let Err(err) = getrandom::fill(&mut out) {
        panic!("the operating system's random number generator failed: {err}");
    }
    out
}
