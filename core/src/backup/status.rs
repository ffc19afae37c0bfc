//! Job status: what the job journal says about running, queued, interrupted and finished
//! backup jobs, each with its destinations' states (`sstore status`, `history --jobs`, the
//! service's status). The rule for "interrupted" lives on [`JobRecord::is_interrupted`].

use std::path::PathBuf;

use serde::Serialize;

use super::{BackupError, JobJournal, JobRecord, JobState};

/// Every job the journal knows, by what is happening to it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobsStatus {
    /// Jobs whose process is alive and working (staging, transferring, verifying).
    pub running: Vec<JobRecord>,
    /// Jobs whose process is alive and waiting for their turn.
    pub queued: Vec<JobRecord>,
    /// Jobs whose process is gone before they finished: the next backup resumes them.
    pub interrupted: Vec<JobRecord>,
    /// Finished jobs, oldest first.
    pub finished: Vec<JobRecord>,
    /// Records that could not be read.
    #[serde(skip)]
    pub unreadable: Vec<PathBuf>,
}

impl JobsStatus {
    /// Reads every record of `journal`.
    pub fn read(journal: &JobJournal) -> Result<Self, BackupError> {
        let (jobs, unreadable) = journal.list()?;
        let mut status = Self {
            unreadable,
            ..Self::default()
        };
        for job in jobs {
            if job.state.is_finished() {
                status.finished.push(job);
            } else if job.is_interrupted() {
                status.interrupted.push(job);
            } else if job.state == JobState::Queued {
                status.queued.push(job);
            } else {
                status.running.push(job);
            }
        }
        Ok(status)
    }

    /// The most recent finished job.
    pub fn last_finished(&self) -> Option<&JobRecord> {
        self.finished.last()
    }
}
