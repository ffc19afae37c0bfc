//! The running job's record, shared by its steps: every change is saved to the job journal
//! (`sstore history --jobs`) and to the staged copy's record (what a resumed run starts from),
//! and state changes are reported as events.

use std::path::PathBuf;
use std::sync::Mutex;

use super::super::journal::{self, CopyState, JobJournal, JobRecord, JobState};
use super::super::{EventSink, JobEvent};

pub(crate) struct Tracker {
    record: Mutex<JobRecord>,
    journal: Option<JobJournal>,
    /// The staged record (present once staging is done).
    staged_record: Mutex<Option<PathBuf>>,
    events: EventSink,
}

impl Tracker {
    pub fn new(record: JobRecord, journal: Option<JobJournal>, events: EventSink) -> Self {
        Self {
            record: Mutex::new(record),
            journal,
            staged_record: Mutex::new(None),
            events,
        }
    }

    pub fn snapshot(&self) -> JobRecord {
        self.record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Changes the record and saves it (journal and staged copy). A failure to save is a
    /// warning: it never fails the backup itself.
    pub fn update(&self, change: impl FnOnce(&mut JobRecord)) {
        let record = {
            let mut record = self.record.lock().unwrap_or_else(|p| p.into_inner());
            change(&mut record);
            record.clone()
        };
        if let Some(journal) = &self.journal
            && let Err(e) = journal.save(&record)
        {
            self.events
                .warn(format!("cannot update the job journal: {e}"));
        }
        let staged = self
            .staged_record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(path) = staged
            && let Err(e) = journal::write_record(&path, &record)
        {
            self.events
                .warn(format!("cannot update the staged job record: {e}"));
        }
    }

    /// From now on, the record is also kept beside the staged copy.
    pub fn keep_beside_staged_copy(&self, path: PathBuf) {
        *self.staged_record.lock().unwrap_or_else(|p| p.into_inner()) = Some(path);
        self.update(|_| {});
    }

    /// Moves the job to `state` (reported when it changes).
    pub fn set_state(&self, state: JobState) {
        let changed = self.record.lock().map(|r| r.state != state).unwrap_or(true);
        self.update(|r| r.state = state);
        if changed {
            self.events.emit(JobEvent::state(state));
        }
    }

    /// Moves one destination's copy to `state`, with its failure message (or none). While the
    /// job transfers, it is `verifying` once every copy still at work is verifying.
    pub fn set_copy(&self, name: &str, state: CopyState, message: Option<String>) {
        let mut job_state = None;
        self.update(|r| {
            if let Some(c) = r.copy_mut(name) {
                c.state = state;
                c.message = message;
            }
            if matches!(r.state, JobState::Transferring | JobState::Verifying) {
                let at_work: Vec<CopyState> = r
                    .copies
                    .iter()
                    .map(|c| c.state)
                    .filter(|s| {
                        matches!(
                            s,
                            CopyState::Pending | CopyState::Transferring | CopyState::Verifying
                        )
                    })
                    .collect();
                // With no copy at work, the job keeps its state until it settles.
                if !at_work.is_empty() {
                    let next = if at_work.iter().all(|s| *s == CopyState::Verifying) {
                        JobState::Verifying
                    } else {
                        JobState::Transferring
                    };
                    if next != r.state {
                        r.state = next;
                        job_state = Some(next);
                    }
                }
            }
        });
        self.events.emit(JobEvent::target_state(name, state));
        if let Some(state) = job_state {
            self.events.emit(JobEvent::state(state));
        }
    }

    /// Adds a copy's attempts and bytes sent.
    pub fn count_transfer(&self, name: &str, attempts: u32, bytes_sent: u64) {
        self.update(|r| {
            if let Some(c) = r.copy_mut(name) {
                c.attempts += attempts;
                c.bytes_sent = bytes_sent;
            }
        });
    }
}
