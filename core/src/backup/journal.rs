//! The local job journal: one JSON record per backup job, written from the moment the job
//! starts and replaced atomically at every change of state, so `sstore history --jobs` and
//! `sstore status` can show queued, running, interrupted and finished jobs with each target's
//! outcome. The staging folder keeps a copy of the record of a job that has not finished, which
//! is what a later run resumes from.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::BackupError;
use crate::fsutil;

pub const JOURNAL_FORMAT: u32 = 1;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    Queued,
    Staging,
    Transferring,
    Verifying,
    Succeeded,
    PartiallySucceeded,
    Failed,
    /// An operator cancelled it; nothing it did is listed.
    Cancelled,
}

impl JobState {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Succeeded
                | JobState::PartiallySucceeded
                | JobState::Failed
                | JobState::Cancelled
        )
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JobState::Queued => "queued",
            JobState::Staging => "staging",
            JobState::Transferring => "transferring",
            JobState::Verifying => "verifying",
            JobState::Succeeded => "succeeded",
            JobState::PartiallySucceeded => "partially succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        })
    }
}

/// Where one destination's copy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CopyState {
    Pending,
    Transferring,
    Verifying,
    Succeeded,
    Failed,
}

impl std::fmt::Display for CopyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CopyState::Pending => "pending",
            CopyState::Transferring => "transferring",
            CopyState::Verifying => "verifying",
            CopyState::Succeeded => "succeeded",
            CopyState::Failed => "failed",
        })
    }
}

/// One destination of a job (the backup directory or a `--target`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyRecord {
    /// The name the job was given (`nas`, or the location for a URL).
    pub name: String,
    pub location: String,
    pub state: CopyState,
    #[serde(default)]
    pub bytes_sent: u64,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The folder of this copy when it is not the job's: another backup was listed under the
    /// job's folder on this destination before a resumed run reached it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
}

/// One backup job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub format: u32,
    /// The backup id.
    pub id: String,
    pub state: JobState,
    pub item: String,
    /// The numbered folder the backup goes to on every destination.
    pub folder: String,
    pub requested_by: String,
    pub host: String,
    pub pid: u32,
    pub started: String,
    #[serde(default)]
    pub finished: String,
    /// The staging folder holding the staged backup until every destination has it.
    pub staging: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_size: Option<u64>,
    /// The Master Key generation in the backup (known once staged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_generation: Option<u64>,
    /// Average transfer rate over the whole job, MiB/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_mib_s: Option<f64>,
    #[serde(default)]
    pub warnings: u32,
    #[serde(default)]
    pub errors: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_message: Option<String>,
    /// How many times an interrupted run of this job was resumed.
    #[serde(default)]
    pub resumed: u32,
    pub copies: Vec<CopyRecord>,
}

impl JobRecord {
    /// Whether the process that runs this job is alive (only knowable on the same host).
    pub fn is_running(&self) -> bool {
        !self.state.is_finished() && self.host == host_name() && process_alive(self.pid)
    }

    /// Not finished, and the process that ran it is gone (killed, crashed, or on another
    /// host): the next `sstore backup` on the same staging folder resumes it.
    pub fn is_interrupted(&self) -> bool {
        !self.state.is_finished() && !self.is_running()
    }

    /// Its staged copy still has destinations to reach: the job is not finished, or some copy
    /// did not succeed.
    pub fn is_pending(&self) -> bool {
        !self.state.is_finished() || self.unfinished_copies().next().is_some()
    }

    /// The state shown to people: `interrupted (transferring)` for an interrupted job.
    pub fn shown_state(&self) -> String {
        if self.is_interrupted() {
            format!("interrupted ({})", self.state)
        } else {
            self.state.to_string()
        }
    }

    pub fn copy_mut(&mut self, name: &str) -> Option<&mut CopyRecord> {
        self.copies.iter_mut().find(|c| c.name == name)
    }

    /// The copies verified and listed on their destination.
    pub fn succeeded_copies(&self) -> impl Iterator<Item = &CopyRecord> {
        self.copies
            .iter()
            .filter(|c| c.state == CopyState::Succeeded)
    }

    /// The copies that did not (yet) succeed.
    pub fn unfinished_copies(&self) -> impl Iterator<Item = &CopyRecord> {
        self.copies
            .iter()
            .filter(|c| c.state != CopyState::Succeeded)
    }
}

pub fn host_name() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// Whether a process with this pid exists on this host.
pub fn process_alive(pid: u32) -> bool {
    #[cfg(target_os = "linux")]
    {
        Path::new(&format!("/proc/{pid}")).exists()
    }
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        std::process::Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// The folder of job records.
#[derive(Debug, Clone)]
pub struct JobJournal {
    dir: PathBuf,
}

impl JobJournal {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Replaces the record of `job` atomically (write, fsync, rename).
    pub fn save(&self, job: &JobRecord) -> Result<(), BackupError> {
        write_record(&self.path_of(&job.id), job)
    }

    pub fn load(&self, id: &str) -> Result<Option<JobRecord>, BackupError> {
        read_record(&self.path_of(id))
    }

    /// Every job recorded, oldest first. Unreadable records are skipped (named in the result).
    pub fn list(&self) -> Result<(Vec<JobRecord>, Vec<PathBuf>), BackupError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(e) => return Err(BackupError::io(&self.dir)(e)),
        };
        let mut jobs = Vec::new();
        let mut unreadable = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match read_record(&path) {
                Ok(Some(job)) => jobs.push(job),
                _ => unreadable.push(path),
            }
        }
        jobs.sort_by(|a, b| a.started.cmp(&b.started).then(a.id.cmp(&b.id)));
        Ok((jobs, unreadable))
    }
}

/// Writes `job` to `path` atomically, owner-only.
pub(crate) fn write_record(path: &Path, job: &JobRecord) -> Result<(), BackupError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    fsutil::create_private_dir_all(parent).map_err(BackupError::io(parent))?;
    let bytes = serde_json::to_vec_pretty(job).map_err(|e| BackupError::Task(e.to_string()))?;
    let temp = fsutil::temp_sibling(path, "job");
    let result = (|| {
        let mut file = fsutil::create_private_file(&temp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(BackupError::io(path))
}

pub(crate) fn read_record(path: &Path) -> Result<Option<JobRecord>, BackupError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(BackupError::io(path)(e)),
    };
    let job: JobRecord = serde_json::from_slice(&bytes).map_err(|e| BackupError::History {
        file: path.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(Some(job))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, started: &str) -> JobRecord {
        JobRecord {
            format: JOURNAL_FORMAT,
            id: id.into(),
            state: JobState::Transferring,
            item: "SecureStore".into(),
            folder: "sstorebr0000".into(),
            requested_by: "u@h".into(),
            host: host_name(),
            pid: std::process::id(),
            started: started.into(),
            finished: String::new(),
            staging: "/tmp/s".into(),
            backup_size: None,
            key_generation: None,
            rate_mib_s: None,
            warnings: 0,
            errors: 0,
            failure_message: None,
            resumed: 0,
            copies: vec![],
        }
    }

    #[test]
    fn records_round_trip_sorted_and_running_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let journal = JobJournal::new(dir.path().join("jobs"));
        journal.save(&record("b", "2026-01-02T00:00:00Z")).unwrap();
        let mut a = record("a", "2026-01-03T00:00:00Z");
        journal.save(&a).unwrap();
        let (jobs, bad) = journal.list().unwrap();
        assert!(bad.is_empty());
        assert_eq!(
            jobs.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert!(jobs[0].is_running(), "this process is alive");
        a.state = JobState::Succeeded;
        journal.save(&a).unwrap();
        assert!(!journal.load("a").unwrap().unwrap().is_running());
        let mut dead = record("c", "2026-01-04T00:00:00Z");
        dead.pid = u32::MAX - 1;
        assert!(!dead.is_running());
    }
}
