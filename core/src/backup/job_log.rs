//! The readable log of one job (`sstorebackup.log` / `sstorerestore.log`): timestamped lines,
//! with warning and error counts. Callers never pass secrets to it.

use std::sync::{Arc, Mutex};

type Observer = Arc<dyn Fn(&str) + Send + Sync>;

#[derive(Clone, Default)]
pub struct JobLog {
    inner: Arc<Mutex<Inner>>,
    observer: Option<Observer>,
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

    /// Also passes each line to `observer` as it is written (for `--verbose`).
    pub fn with_observer(observer: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Self {
            inner: Arc::default(),
            observer: Some(Arc::new(observer)),
        }
    }

    fn push(&self, level: &str, message: &str) {
        let line = format!("{} [{level}] {message}", super::now_rfc3339());
        if let Some(observer) = &self.observer {
            observer(&line);
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match level {
            "warning" => inner.warnings += 1,
            "error" => inner.errors += 1,
            _ => {}
        }
        inner.lines.push(line);
    }

    pub fn info(&self, message: impl AsRef<str>) {
        self.push("info", message.as_ref());
    }

    pub fn warn(&self, message: impl AsRef<str>) {
        self.push("warning", message.as_ref());
    }

    pub fn error(&self, message: impl AsRef<str>) {
        self.push("error", message.as_ref());
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

    /// A new, empty log that reports to the same observer (for a second job in one run).
    pub fn fresh(&self) -> Self {
        Self {
            inner: Arc::default(),
            observer: self.observer.clone(),
        }
    }

    /// Puts back the lines of an earlier part of this job (a resumed job's log), without
    /// passing them to the observer again.
    pub fn continue_from(&self, earlier: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for line in earlier.lines().filter(|l| !l.trim().is_empty()) {
            if line.contains(" [warning] ") {
                inner.warnings += 1;
            } else if line.contains(" [error] ") {
                inner.errors += 1;
            }
            inner.lines.push(line.to_owned());
        }
    }
}
