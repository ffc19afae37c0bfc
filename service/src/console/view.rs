//! Formatting for pages: sizes, times, states, jobs as rows, and URL encoding. Templates get
//! ready-made strings (askama escapes them), so they hold no logic beyond loops and ifs.

use crate::jobs::JobView;
use crate::jobs::view::DestinationView;

/// `1.5 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// An RFC 3339 time as people read it: `2026-12-01 10:22:03 UTC`.
pub fn time(rfc3339: &str) -> String {
    if rfc3339.is_empty() {
        return String::new();
    }
    match rfc3339.strip_suffix('Z') {
        Some(utc) => format!("{} UTC", utc.replacen('T', " ", 1)),
        None => rfc3339.replacen('T', " ", 1),
    }
}

/// A time from the `time` crate, the same way.
pub fn offset_time(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .map(|s| time(&s))
        .unwrap_or_default()
}

/// The CSS class of a state: `state-partially-succeeded`.
pub fn state_class(state: &str) -> String {
    format!("state-{}", state.replace(' ', "-"))
}

/// `%`-encodes everything but unreserved characters and `/` (for paths and query values).
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One job in a table.
pub struct JobRow {
    pub id: String,
    pub kind: String,
    pub state: String,
    pub state_class: String,
    pub created: String,
    pub started: String,
    pub finished: String,
    pub size: String,
    pub requested_by: String,
    pub warnings: u32,
    pub errors: u32,
    pub failure: String,
    pub summary: String,
    pub finished_flag: bool,
}

impl JobRow {
    pub fn of(job: &JobView) -> Self {
        Self {
            id: job.id.clone(),
            kind: job.kind.to_string(),
            state: job.state.clone(),
            state_class: state_class(&job.state),
            created: time(&job.created),
            started: job.started.as_deref().map(time).unwrap_or_default(),
            finished: job.finished.as_deref().map(time).unwrap_or_default(),
            size: job.bytes.map(bytes).unwrap_or_default(),
            requested_by: job.requested_by.clone(),
            warnings: job.warnings,
            errors: job.errors,
            failure: job.failure_message.clone().unwrap_or_default(),
            summary: job.summary.clone().unwrap_or_default(),
            finished_flag: job.is_finished(),
        }
    }
}

/// One destination of the current job, with its progress.
pub struct DestinationRow {
    pub name: String,
    pub location: String,
    pub state: String,
    pub state_class: String,
    pub sent: u64,
    /// At least 1 (a `<progress>` needs a positive max).
    pub max: u64,
    pub progress: String,
    pub message: String,
}

impl DestinationRow {
    pub fn of(d: &DestinationView, job: &JobView) -> Self {
        let max = d.bytes_total.max(1);
        let mut progress = if d.bytes_total == 0 {
            if d.state == "pending" {
                "waiting".to_owned()
            } else {
                String::new()
            }
        } else {
            format!("{} of {}", bytes(d.bytes_sent), bytes(d.bytes_total))
        };
        // A rate and an ETA from the job's start, until the event stream gives live ones.
        if let Some(seconds) = elapsed_since(job.started.as_deref())
            && seconds > 0.5
            && d.bytes_sent > 0
            && !job.is_finished()
        {
            let rate = d.bytes_sent as f64 / seconds;
            progress.push_str(&format!(", {}/s", bytes(rate as u64)));
            if d.bytes_total > d.bytes_sent && rate > 0.0 {
                let left = (d.bytes_total - d.bytes_sent) as f64 / rate;
                progress.push_str(&format!(", about {} left", duration(left)));
            }
        }
        Self {
            name: d.name.clone(),
            location: d.location.clone().unwrap_or_default(),
            state: d.state.clone(),
            state_class: state_class(&d.state),
            sent: d.bytes_sent.min(max),
            max,
            progress,
            message: d.message.clone().unwrap_or_default(),
        }
    }
}

/// `3 min 12 s`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

fn elapsed_since(rfc3339: Option<&str>) -> Option<f64> {
    let started =
        time::OffsetDateTime::parse(rfc3339?, &time::format_description::well_known::Rfc3339)
            .ok()?;
    Some((time::OffsetDateTime::now_utc() - started).as_seconds_f64())
}

/// A URL for pages: its user and password removed (configured URLs are shown without
/// credentials, whatever the config holds).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let tail = tail.split_once('?').map_or(tail, |(path, _)| path);
    format!("{scheme}://{host}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_times_and_urls_read_well() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(time("2026-12-01T10:22:03Z"), "2026-12-01 10:22:03 UTC");
        assert_eq!(time(""), "");
        assert_eq!(
            state_class("partially succeeded"),
            "state-partially-succeeded"
        );
        assert_eq!(url_encode("/jobs/a b?x=1&y"), "/jobs/a%20b%3Fx%3D1%26y");
        assert_eq!(duration(75.0), "1 min 15 s");
        assert_eq!(
            redact_url("s3://key:secret@host:9000/bucket?token=abc"),
            "s3://host:9000/bucket"
        );
        assert_eq!(redact_url("/srv/backups"), "/srv/backups");
    }
}
