//! The backup stream's header (docs/FORMAT.md): any bytes decode to a header or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sstore_core::format::Header;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = Header::decode(data) {
        // A decoded header describes itself and encodes without panicking.
        let _ = header.slots();
        let _ = header.opens_with();
        let _ = header.encode();
    }
});
