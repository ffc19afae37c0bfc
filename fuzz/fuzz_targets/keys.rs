//! Recipient strings (`sstore1…`) and identity lines (`SSTORE-SECRET-KEY-1…`), Bech32.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sstore_core::{Identity, Recipient};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(recipient) = text.parse::<Recipient>() {
            // What parses prints back to the same text.
            assert_eq!(
                recipient.to_string().parse::<Recipient>().ok(),
                Some(recipient)
            );
        }
        let _ = text.parse::<Identity>();
    }
});
