//! How a running backup job shows itself: one JSON event per line (`--json`), progress bars
//! per target on a terminal, or plain lines otherwise. Only names, sizes and messages are
//! shown; the job never reports a secret.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sstore_core::backup::{EventSink, JobEvent, JobLog};

/// How events are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Json,
    Bars,
    Lines,
}

impl Mode {
    pub fn choose(json: bool) -> Self {
        if json {
            Mode::Json
        } else if std::io::stderr().is_terminal() {
            Mode::Bars
        } else {
            Mode::Lines
        }
    }
}

/// Prints one event as a JSON line on stdout.
pub fn print_json_event(event: &JobEvent) {
    if let Ok(line) = serde_json::to_string(event) {
        println!("{line}");
    }
}

/// Prints a log-line event as the job log writes it, on stderr.
fn print_log_line(event: &JobEvent) {
    if let Some((level, message)) = event.log_line() {
        eprintln!("{}", JobLog::format_line(level, message));
    }
}

/// How a command shows a job's events: with `--json`, one JSON line per event (the log's
/// info lines only on stderr, with `--verbose`); with `--verbose`, every log line as the job
/// log writes it; otherwise progress bars on a terminal, plain lines elsewhere.
pub fn observers(json: bool, verbose: bool) -> EventSink {
    match (json, verbose) {
        (true, verbose) => EventSink::new(move |event| match event {
            JobEvent::Info { .. } if verbose => print_log_line(event),
            JobEvent::Info { .. } => {}
            _ => print_json_event(event),
        }),
        (false, true) => EventSink::new(print_log_line),
        (false, false) => sink(Mode::choose(false)),
    }
}

/// With `verbose`, every log line on stderr as the job log writes it; else nothing.
pub fn log_lines(verbose: bool) -> EventSink {
    if verbose {
        EventSink::new(print_log_line)
    } else {
        EventSink::default()
    }
}

/// Warnings and errors on stderr (`warning: ...`), for commands without a job log.
pub fn warnings() -> EventSink {
    EventSink::new(|event| match event {
        JobEvent::Warning { message } => eprintln!("warning: {message}"),
        JobEvent::Error { message } => eprintln!("error: {message}"),
        _ => {}
    })
}

/// The event sink for `mode`.
fn sink(mode: Mode) -> EventSink {
    match mode {
        Mode::Json => EventSink::new(print_json_event),
        Mode::Bars => {
            let bars = Arc::new(Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                bars: Mutex::new(HashMap::new()),
            });
            EventSink::new(move |event| bars.show(event))
        }
        Mode::Lines => {
            let last = Mutex::new(HashMap::<String, u64>::new());
            EventSink::new(move |event| plain_line(event, &last))
        }
    }
}

struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    fn show(&self, event: &JobEvent) {
        match event {
            JobEvent::Progress {
                target,
                bytes,
                total,
            } => {
                let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
                let bar = bars.entry(target.clone()).or_insert_with(|| {
                    let bar = self.multi.add(ProgressBar::new(*total));
                    let style = ProgressStyle::with_template(
                        "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
                    bar.set_style(style);
                    bar.set_prefix(target.clone());
                    bar
                });
                bar.set_position(*bytes);
            }
            JobEvent::TargetDone {
                target,
                ok,
                message,
            } => {
                let bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
                let text = match (ok, message) {
                    (true, _) => format!("{target}: verified and published"),
                    (false, Some(m)) => format!("{target}: failed: {m}"),
                    (false, None) => format!("{target}: failed"),
                };
                if let Some(bar) = bars.get(target) {
                    bar.finish_with_message(text.clone());
                }
                let _ = self.multi.println(text);
            }
            JobEvent::State { state } => {
                let _ = self.multi.println(format!("{state}..."));
            }
            _ => {}
        }
    }
}

/// A line per state change, per finished target, and per 25% of each transfer.
fn plain_line(event: &JobEvent, last: &Mutex<HashMap<String, u64>>) {
    match event {
        JobEvent::State { state } => eprintln!("{state}..."),
        JobEvent::Progress {
            target,
            bytes,
            total,
        } if *total > 0 => {
            let quarter = bytes.saturating_mul(4) / total;
            let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
            let seen = last.entry(target.clone()).or_insert(0);
            if quarter > *seen {
                *seen = quarter;
                eprintln!("{target}: {}% sent", quarter * 25);
            }
        }
        JobEvent::TargetDone {
            target, ok: true, ..
        } => eprintln!("{target}: verified and published"),
        JobEvent::TargetDone {
            target,
            ok: false,
            message,
        } => eprintln!("{target}: failed: {}", message.as_deref().unwrap_or("")),
        _ => {}
    }
}
