//! The configuration file (TOML), with its targets' settings and schedules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sstore_core::config::Config;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::parse(text, std::path::Path::new("fuzz/config.toml"));
    }
});
