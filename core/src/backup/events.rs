//! What a running job reports as it goes, for progress bars, `--json` event lines and
//! `--percentage` log lines. Events carry names, sizes and messages, never a secret.

use std::sync::Arc;

use serde::Serialize;

/// One thing that happened in a job.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum JobEvent {
    Started {
        job_id: String,
        folder: String,
        destinations: Vec<String>,
        resumed: bool,
    },
    /// The job entered a state (staging, transferring, verifying ...).
    State {
        state: String,
    },
    /// Bytes of the backup file sent to one destination so far.
    Progress {
        target: String,
        bytes: u64,
        total: u64,
    },
    /// A destination finished: its copy verified and published, or failed.
    TargetDone {
        target: String,
        ok: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    Warning {
        message: String,
    },
    Error {
        message: String,
    },
    Summary {
        job_id: String,
        status: String,
        folder: String,
        bytes: u64,
        seconds: f64,
        succeeded: Vec<String>,
        failed: Vec<String>,
    },
}

/// Receives a job's events; cheap to clone. The default ignores them.
#[derive(Clone, Default)]
pub struct EventSink(Option<Receiver>);

type Receiver = Arc<dyn Fn(&JobEvent) + Send + Sync>;

impl EventSink {
    pub fn new(receiver: impl Fn(&JobEvent) + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(receiver)))
    }

    pub fn emit(&self, event: JobEvent) {
        if let Some(receiver) = &self.0 {
            receiver(&event);
        }
    }
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "EventSink(active)"
        } else {
            "EventSink(none)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_as_tagged_lines() {
        let line = serde_json::to_string(&JobEvent::Progress {
            target: "nas".into(),
            bytes: 5,
            total: 10,
        })
        .unwrap();
        assert_eq!(
            line,
            r#"{"event":"progress","target":"nas","bytes":5,"total":10}"#
        );
        let line = serde_json::to_string(&JobEvent::TargetDone {
            target: "nas".into(),
            ok: true,
            message: None,
        })
        .unwrap();
        assert_eq!(line, r#"{"event":"target-done","target":"nas","ok":true}"#);
    }
}
