//! The JSON sstore reads back from a backup directory and its staging folder: a backup's
//! manifest, the directory's history (`sstorebrtoc.json`) and a job record of the journal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sstore_core::backup::{History, JobRecord, Manifest};

fuzz_target!(|data: &[u8]| {
    if let Ok(history) = serde_json::from_slice::<History>(data) {
        let _ = history.newest_successful_backup();
        let _ = history.highest_folder_number();
    }
    let _ = serde_json::from_slice::<Manifest>(data);
    let _ = serde_json::from_slice::<JobRecord>(data);
});
