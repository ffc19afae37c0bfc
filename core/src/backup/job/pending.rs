//! Step 1: find pending work. A staged backup that has not reached every destination stays in
//! the staging folder, in `<staging>/<job id>/` with its record (`job.json`), until a later
//! run finishes it. The newest such job is resumed; older ones are superseded by it and
//! discarded; a subfolder without a record (a job killed while staging) is removed.

use std::path::{Path, PathBuf};

use super::super::EventSink;
use super::super::journal::{self, JobRecord};

/// The staged job's record, inside its staging subfolder.
pub(crate) const STAGED_RECORD: &str = "job.json";

/// A staged backup waiting to be sent to the destinations that do not have it yet.
#[derive(Debug)]
pub(crate) struct PendingJob {
    pub dir: PathBuf,
    pub record: JobRecord,
}

/// The newest pending job in `staging`, after removing what cannot be resumed.
pub(crate) fn find_pending(staging: &Path, events: &EventSink) -> Option<PendingJob> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(staging).ok()?.flatten() {
        let path = entry.path();
        if !entry.file_type().is_ok_and(|t| t.is_dir())
            || path.file_name().is_some_and(|n| n == "jobs")
        {
            continue;
        }
        match journal::read_record(&path.join(STAGED_RECORD)) {
            Ok(Some(record)) if record.is_pending() => found.push(PendingJob { dir: path, record }),
            Ok(Some(_)) => {}
            _ => {
                if std::fs::remove_dir_all(&path).is_ok() {
                    events.warn(format!(
                        "removed {}: left by a job interrupted while staging",
                        path.display()
                    ));
                }
            }
        }
    }
    found.sort_by(|a, b| a.record.started.cmp(&b.record.started));
    let newest = found.pop();
    for old in found {
        if std::fs::remove_dir_all(&old.dir).is_ok() {
            events.warn(format!(
                "discarded the staged copy of interrupted backup {} ({}): a newer interrupted backup supersedes it",
                old.record.id, old.record.folder
            ));
        }
    }
    newest
}
