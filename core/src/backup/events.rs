//! What a running job reports, as one stream of typed events: its state, each destination's
//! state and progress, every line of its log (info, warning, error), each destination's
//! outcome and a summary. Front ends observe the stream (progress bars, `--json` lines, the
//! service's live view), and so does the job's own log file ([`super::JobLog`]); nothing
//! parses log text. Events carry names, sizes and messages, never a secret.

use std::sync::Arc;

use serde::Serialize;

use super::{CopyState, JobState};

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
    /// The job entered a state (`staging`, `transferring`, `verifying`).
    State {
        state: String,
    },
    /// One destination's copy entered a state (`transferring`, `verifying`, `succeeded`,
    /// `failed`).
    TargetState {
        target: String,
        state: String,
    },
    /// Bytes of the backup file sent to one destination so far.
    Progress {
        target: String,
        bytes: u64,
        total: u64,
    },
    /// A line of the job log that is neither a warning nor an error.
    Info {
        message: String,
    },
    Warning {
        message: String,
    },
    Error {
        message: String,
    },
    /// A destination finished: its copy verified and listed, or failed.
    TargetDone {
        target: String,
        ok: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
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

impl JobEvent {
    pub fn state(state: JobState) -> Self {
        Self::State {
            state: state.to_string(),
        }
    }

    pub fn target_state(target: &str, state: CopyState) -> Self {
        Self::TargetState {
            target: target.to_owned(),
            state: state.to_string(),
        }
    }

    /// The log level and message of a log-line event.
    pub fn log_line(&self) -> Option<(Level, &str)> {
        match self {
            Self::Info { message } => Some((Level::Info, message)),
            Self::Warning { message } => Some((Level::Warning, message)),
            Self::Error { message } => Some((Level::Error, message)),
            _ => None,
        }
    }
}

/// The level of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

type Observer = Arc<dyn Fn(&JobEvent) + Send + Sync>;

/// Where a job's events go: every observer, in the order they were added. Cheap to clone.
/// The default has no observer.
#[derive(Clone, Default)]
pub struct EventSink(Arc<[Observer]>);

impl EventSink {
    pub fn new(observer: impl Fn(&JobEvent) + Send + Sync + 'static) -> Self {
        Self(Arc::new([Arc::new(observer) as Observer]))
    }

    /// This sink and one more observer.
    pub fn and(&self, observer: impl Fn(&JobEvent) + Send + Sync + 'static) -> Self {
        let mut all: Vec<Observer> = self.0.to_vec();
        all.push(Arc::new(observer));
        Self(all.into())
    }

    pub fn emit(&self, event: JobEvent) {
        for observer in self.0.iter() {
            observer(&event);
        }
    }

    pub fn info(&self, message: impl Into<String>) {
        self.emit(JobEvent::Info {
            message: message.into(),
        });
    }

    pub fn warn(&self, message: impl Into<String>) {
        self.emit(JobEvent::Warning {
            message: message.into(),
        });
    }

    pub fn error(&self, message: impl Into<String>) {
        self.emit(JobEvent::Error {
            message: message.into(),
        });
    }
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EventSink({} observers)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Mutex;

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
        let line =
            serde_json::to_string(&JobEvent::target_state("nas", CopyState::Verifying)).unwrap();
        assert_eq!(
            line,
            r#"{"event":"target-state","target":"nas","state":"verifying"}"#
        );
        let line = serde_json::to_string(&JobEvent::state(JobState::PartiallySucceeded)).unwrap();
        assert_eq!(line, r#"{"event":"state","state":"partially succeeded"}"#);
    }

    #[test]
    fn every_observer_sees_every_event_in_order() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (a, b) = (seen.clone(), seen.clone());
        let sink = EventSink::new(move |e| a.lock().unwrap().push(format!("a {e:?}")))
            .and(move |e| b.lock().unwrap().push(format!("b {e:?}")));
        sink.warn("low space");
        sink.clone().info("done");
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 4);
        assert!(seen[0].starts_with("a Warning"), "{seen:?}");
        assert!(seen[1].starts_with("b Warning"), "{seen:?}");
        assert!(seen[3].starts_with("b Info"), "{seen:?}");
        assert_eq!(
            JobEvent::Error {
                message: "x".into()
            }
            .log_line(),
            Some((Level::Error, "x"))
        );
    }
}
