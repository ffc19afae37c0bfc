//! A whole backup stream opened with an X25519 identity (cheap, unlike a passphrase slot's
//! Argon2id) and read to the end: damage must come back as an error, never a panic, a hang or
//! unbounded memory. The seed corpus holds real streams written to this identity's recipient.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use sstore_core::Identity;
use sstore_core::format::{Keys, StreamReader};

/// A throwaway identity made for the fuzzer (its seeds were written to its recipient).
const IDENTITY: &str = include_str!("../identity.txt");

fuzz_target!(|data: &[u8]| {
    let Some(Ok(identity)) = IDENTITY
        .lines()
        .find(|line| line.starts_with("SSTORE-SECRET-KEY-"))
        .map(str::parse::<Identity>)
    else {
        return;
    };
    let identities = [identity];
    if let Ok(mut reader) = StreamReader::open(Cursor::new(data), Keys::identities(&identities)) {
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    }
});
