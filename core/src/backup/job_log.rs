//! The readable log of one job (`sstorebackup.log` / `sstorerestore.log`): timestamped lines
//! with warning and error counts, recorded from the job's log-line events (it is one observer
//! of the job's [`EventSink`]). Events never carry secrets, so neither does the log.

use std::sync::{Arc, Mutex};

use super::events::{EventSink, JobEvent, Level};

#[derive(Clone, Default)]
pub struct JobLog {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    lines: Vec<String>,
    warnings: u32,
    errors: u32,
}

impl JobLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// One line of the log: `<RFC 3339 time> [info|warning|error] <message>`.
    pub fn format_line(level: Level, message: &str) -> String {
        format!("{} [{}] {message}", super::now_rfc3339(), level.as_str())
    }

    /// `events`, with this log recording its log-line events.
    pub fn attach(&self, events: &EventSink) -> EventSink {
        let log = self.clone();
        events.and(move |event| log.record(event))
    }

    /// Records a log-line event (other events are not part of the log).
    pub fn record(&self, event: &JobEvent) {
        let Some((level, message)) = event.log_line() else {
            return;
        };
        let line = Self::format_line(level, message);
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match level {
            Level::Warning => inner.warnings += 1,
            Level::Error => inner.errors += 1,
            Level::Info => {}
        }
        inner.lines.push(line);
    }

    pub fn warnings(&self) -> u32 {
        self.inner.lock().map(|i| i.warnings).unwrap_or(0)
    }

    pub fn errors(&self) -> u32 {
        self.inner.lock().map(|i| i.errors).unwrap_or(0)
    }

    /// The log as a file body.
    pub fn render(&self) -> String {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = inner.lines.join("\n");
        out.push('\n');
        out
    }

    /// Puts back the lines of an earlier part of this job (a resumed job's log file), with
    /// their counts, without emitting them again.
    pub fn continue_from(&self, earlier: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for line in earlier.lines().filter(|l| !l.trim().is_empty()) {
            // The level is the first bracketed word after the time.
            match line.split_whitespace().nth(1) {
                Some("[warning]") => inner.warnings += 1,
                Some("[error]") => inner.errors += 1,
                _ => {}
            }
            inner.lines.push(line.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_log_records_log_lines_from_events_and_counts_them() {
        let log = JobLog::new();
        let events = log.attach(&EventSink::default());
        events.info("started");
        events.emit(JobEvent::Progress {
            target: "t".into(),
            bytes: 1,
            total: 2,
        });
        events.warn("slow");
        events.error("failed");
        let text = log.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].ends_with(" [info] started"), "{text}");
        assert!(lines[1].ends_with(" [warning] slow"), "{text}");
        assert_eq!((log.warnings(), log.errors()), (1, 1));

        let resumed = JobLog::new();
        resumed.continue_from(&text);
        assert_eq!((resumed.warnings(), resumed.errors()), (1, 1));
        assert_eq!(resumed.render(), text);
    }
}
