//! A service job as clients see it (`GET /api/v1/jobs/{id}`): its kind, state, who asked,
//! each destination's state, and the outcome. Kept current from the engine's events, and
//! saved in the service's state folder so the list survives a restart.

use serde::{Deserialize, Serialize};
use sstore_core::backup::JobEvent;

use super::request::{JobKind, JobRequest};

/// The states of a service job. A backup goes queued → staging → transferring → verifying →
/// an end; verify, prune and restore go queued → transferring (reading or removing) →
/// verifying (checking) → an end.
pub const QUEUED: &str = "queued";
pub const STAGING: &str = "staging";
pub const TRANSFERRING: &str = "transferring";
pub const VERIFYING: &str = "verifying";
pub const SUCCEEDED: &str = "succeeded";
pub const PARTIALLY_SUCCEEDED: &str = "partially succeeded";
pub const FAILED: &str = "failed";
pub const CANCELLED: &str = "cancelled";
/// The service stopped (or was killed) while the job ran; a backup is resumed at the next
/// start, as a job of its own.
pub const INTERRUPTED: &str = "interrupted";

pub fn is_finished(state: &str) -> bool {
    matches!(
        state,
        SUCCEEDED | PARTIALLY_SUCCEEDED | FAILED | CANCELLED | INTERRUPTED
    )
}

/// One destination of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestinationView {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub state: String,
    #[serde(default)]
    pub bytes_sent: u64,
    #[serde(default)]
    pub bytes_total: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    pub id: String,
    pub kind: JobKind,
    pub state: String,
    /// Why a queued job waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_reason: Option<String>,
    /// The operator's name, or `schedule:NAME`, or `service` (a resumed job).
    pub requested_by: String,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    /// What was asked.
    pub request: JobRequest,
    #[serde(default)]
    pub destinations: Vec<DestinationView>,
    /// The backup made (a backup job) or worked on (verify, restore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    /// The Master Key generation of the backup made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_generation: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    #[serde(default)]
    pub warnings: u32,
    #[serde(default)]
    pub errors: u32,
    /// Why the job did not succeed (the Failure Message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_message: Option<String>,
    /// What the job did, in a sentence (`backup 1a2b… in sstorebr0003`, `2 backups verified`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

impl JobView {
    pub fn new(id: String, kind: JobKind, requested_by: String, request: JobRequest) -> Self {
        Self {
            id,
            kind,
            state: QUEUED.into(),
            queued_reason: None,
            requested_by,
            created: sstore_core::backup::now_rfc3339(),
            started: None,
            finished: None,
            request,
            destinations: Vec::new(),
            backup_id: None,
            folder: None,
            key_generation: None,
            bytes: None,
            seconds: None,
            warnings: 0,
            errors: 0,
            failure_message: None,
            summary: None,
        }
    }

    pub fn is_finished(&self) -> bool {
        is_finished(&self.state)
    }

    fn destination(&mut self, name: &str) -> &mut DestinationView {
        if let Some(i) = self.destinations.iter().position(|d| d.name == name) {
            return &mut self.destinations[i];
        }
        self.destinations.push(DestinationView {
            name: name.to_owned(),
            location: None,
            state: "pending".into(),
            bytes_sent: 0,
            bytes_total: 0,
            message: None,
        });
        let last = self.destinations.len() - 1;
        &mut self.destinations[last]
    }

    /// Follows an engine event. Returns whether the job's state changed (worth saving).
    pub fn apply(&mut self, event: &JobEvent) -> bool {
        match event {
            JobEvent::Started {
                job_id,
                folder,
                destinations,
                ..
            } => {
                self.backup_id = Some(job_id.clone());
                self.folder = Some(folder.clone());
                for name in destinations {
                    self.destination(name);
                }
                true
            }
            JobEvent::State { state } => {
                let changed = self.state != *state;
                self.state = state.clone();
                changed
            }
            JobEvent::TargetState { target, state } => {
                let d = self.destination(target);
                d.state = state.clone();
                true
            }
            JobEvent::Progress {
                target,
                bytes,
                total,
            } => {
                let d = self.destination(target);
                d.bytes_sent = *bytes;
                d.bytes_total = *total;
                false
            }
            JobEvent::TargetDone {
                target,
                ok,
                message,
            } => {
                let d = self.destination(target);
                d.state = if *ok { SUCCEEDED } else { FAILED }.into();
                d.message = message.clone();
                true
            }
            JobEvent::Warning { .. } => {
                self.warnings += 1;
                false
            }
            JobEvent::Error { .. } => {
                self.errors += 1;
                false
            }
            JobEvent::Summary { bytes, seconds, .. } => {
                self.bytes = Some(*bytes);
                self.seconds = Some(*seconds);
                false
            }
            JobEvent::Info { .. } => false,
        }
    }
}
