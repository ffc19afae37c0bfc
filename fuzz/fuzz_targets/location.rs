//! Locations as users type them: paths, URLs, UNC paths.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sstore_core::target::location;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = location::parse(text);
    }
});
