//! Timer jobs (`[[schedule]]` in the config): when each runs, what it backs up, and what the
//! job journal says about its last run. The service (`sstore serve`) runs them; `sstore
//! schedules` and the service's `GET /api/v1/schedules` show them through [`read_status`].
//!
//! # Triggers
//! - `every = "6h"` (units s, m, h, d, w, y; at least one minute): the next run is the last
//!   run's start plus the interval. A schedule that never ran is due at once.
//! - `cron = "0 2 * * *"`: five fields (minute, hour, day of month, month, day of week,
//!   Sunday = 0 or 7), Vixie semantics (when both day fields are restricted, either matching is
//!   enough), plus croner's `L`, `W` and `#`. The next run is the first match strictly after
//!   the last run's start; a schedule that never ran waits for the first match after the
//!   service began watching it. An expression that never matches (`0 0 30 2 *`) is refused.
//!
//! # Time zones
//! `timezone = "UTC"` reads the expression on UTC; `"local"` (the default) on the system's
//! zone (`TZ`, else `/etc/localtime`; UTC when neither says). Across daylight saving time,
//! with times shown on the schedule's clock:
//! - a time skipped when clocks go forward (02:30 on the spring change in Europe) runs at the
//!   first valid time after the gap, the same day (03:00), for an expression with fixed minute
//!   and hour; an expression with `*` or a step in those fields just has no run in the gap;
//! - a time repeated when clocks go back runs once, at its first occurrence, for fixed minute
//!   and hour; `*` or a step runs in both passes (they are real, distinct hours).
//!
//! Intervals are real elapsed time and ignore clock changes.
//!
//! # Missed runs
//! Runs are found from the start of the last run in the journal (jobs recorded with
//! `requested_by = "schedule:NAME"`, see [`requested_by`]), not from a list of slots: when the
//! service was down across one or many due times, [`Schedule::due`] reports a single run due
//! now (`missed: true`, to be said in the log), and the run after it is counted from that
//! run's start. So a missed schedule runs once at start, never once per missed slot.
//!
//! # Random delay
//! `random_delay = "10m"` starts each scheduled run up to that much later than due, uniformly,
//! so many hosts on one schedule do not start at once ([`Schedule::random_delay`] maps a
//! random number into `[0, random_delay]`). For `every`, the next interval counts from the
//! delayed start, so such a schedule drifts by at most the delay per run.
//!
//! # Staleness
//! `alert_after = "26h"`: when the schedule's last fully successful backup finished longer ago
//! than that, or none ever did, [`Schedule::stale`] returns a message saying so (with when the
//! last one succeeded); the service's readiness fails with it.

mod status;
mod trigger;

use std::time::Duration;

use serde::Deserialize;

use crate::backup::{BackupError, PruneRules, prune::parse_duration};
use crate::recipient::Recipient;

pub use status::{ScheduleRun, ScheduleStatus, SchedulesStatus, read_status};
pub use trigger::{CronTrigger, NEVER, Timezone, Trigger, human_duration, relative};

/// The time type of this API (the `time` crate's), for callers without their own dependency.
pub use time::OffsetDateTime;

/// The prefix of `requested_by` in the journal records of scheduled jobs.
pub const REQUESTED_BY_PREFIX: &str = "schedule:";

/// `requested_by` of a job started by the schedule `name`: `schedule:NAME`.
pub fn requested_by(name: &str) -> String {
    format!("{REQUESTED_BY_PREFIX}{name}")
}

/// The schedule that started a job, from its `requested_by`.
pub fn schedule_of(requested_by: &str) -> Option<&str> {
    requested_by.strip_prefix(REQUESTED_BY_PREFIX)
}

/// The shortest `every`.
pub const MIN_INTERVAL: Duration = Duration::from_secs(60);

/// A run due more than this long ago counts as missed (the service was down or busy).
pub const MISSED_AFTER: Duration = Duration::from_secs(60);

/// Why schedules cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// A `[[schedule]]` entry is wrong: which one (`'nightly'`, or `#2` without a name), which
    /// field, and what is wrong.
    #[error("[[schedule]] {schedule}: `{field}` {message}")]
    Invalid {
        schedule: String,
        field: &'static str,
        message: String,
    },
    #[error("cannot read the job journal: {0}")]
    Journal(#[source] BackupError),
}

/// One `[[schedule]]` entry, as written in the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    pub name: String,
    /// An interval: `"6h"`, `"30m"`, `"1d"` (exclusive with `cron`).
    pub every: Option<String>,
    /// A cron expression: `"0 2 * * *"` (minute hour day month weekday).
    pub cron: Option<String>,
    /// The clock of `cron`: `"local"` (default) or `"UTC"`.
    pub timezone: Option<String>,
    /// The backup directory (a folder, a URL, a UNC path or a `[[target]]` name); default the
    /// config's `[backup] directory`.
    pub directory: Option<String>,
    /// More destinations; default the config's `[backup] targets`.
    #[serde(default)]
    pub targets: Vec<String>,
    /// `"full"` (the only method today).
    pub method: Option<String>,
    /// Retention applied after a successful run (as `sstore prune`).
    pub keep_last: Option<usize>,
    pub keep_within: Option<String>,
    /// Verify the new backup on every destination after it succeeded.
    #[serde(default)]
    pub verify_after: bool,
    /// Run after every Master Key change.
    #[serde(default)]
    pub on_key_change: bool,
    /// Start up to this much later than due (`"10m"`), so many hosts do not start at once.
    pub random_delay: Option<String>,
    /// A destination with no successful backup for longer than this (`"26h"`) fails readiness.
    pub alert_after: Option<String>,
    /// Recipients for this schedule's backups, instead of `[backup] recipients`.
    pub recipients: Option<Vec<String>>,
}

/// How a scheduled backup is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// The whole store (the only method today).
    Full,
}

/// A `[[schedule]]` entry, checked and parsed.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    pub trigger: Trigger,
    /// The backup directory as written (`None`: the config's `[backup] directory`).
    pub directory: Option<String>,
    /// More destinations as written (empty: the config's `[backup] targets`).
    pub targets: Vec<String>,
    pub method: Method,
    /// Retention after a successful run (see [`Schedule::prune_rules`]).
    pub keep_last: Option<usize>,
    pub keep_within: Option<Duration>,
    pub verify_after: bool,
    pub on_key_change: bool,
    /// The longest random delay before a scheduled run (zero: none).
    pub random_delay: Duration,
    /// Staleness limit, and its text as written (`"26h"`).
    pub alert_after: Option<(Duration, String)>,
    /// Recipients instead of `[backup] recipients` (`None`: those).
    pub recipients: Option<Vec<Recipient>>,
}

/// Whether a schedule should run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Not yet: the next run is at this time (before any random delay).
    At(OffsetDateTime),
    /// Run now (once): its time was `slot`. `missed` when that was more than [`MISSED_AFTER`]
    /// ago, i.e. it became due while the service was down (or busy): log it.
    Now { slot: OffsetDateTime, missed: bool },
}

/// Checks every `[[schedule]]` (unique names, each field) and parses them, in order. Called
/// by [`crate::config::Config::parse`], so a config that loaded has valid schedules.
pub fn parse_schedules(configs: &[ScheduleConfig]) -> Result<Vec<Schedule>, ScheduleError> {
    let mut schedules: Vec<Schedule> = Vec::with_capacity(configs.len());
    for (index, config) in configs.iter().enumerate() {
        let schedule = Schedule::parse(index, config)?;
        if schedules.iter().any(|s| s.name == schedule.name) {
            return Err(ScheduleError::Invalid {
                schedule: format!("'{}'", schedule.name),
                field: "name",
                message: "is used by two schedules; give each its own name".into(),
            });
        }
        schedules.push(schedule);
    }
    Ok(schedules)
}

/// The parsed schedules of a loaded config.
pub fn schedules(config: &crate::config::Config) -> Result<Vec<Schedule>, ScheduleError> {
    parse_schedules(&config.schedules)
}

impl Schedule {
    /// Checks and parses the `index`th (from 0) `[[schedule]]` entry.
    pub fn parse(index: usize, config: &ScheduleConfig) -> Result<Self, ScheduleError> {
        let name = config.name.trim();
        let label = if name.is_empty() {
            format!("#{}", index + 1)
        } else {
            format!("'{name}'")
        };
        let invalid = |field: &'static str, message: String| ScheduleError::Invalid {
            schedule: label.clone(),
            field,
            message,
        };
        if name.is_empty() {
            return Err(invalid("name", "is empty; give the schedule a name".into()));
        }
        if name.chars().any(char::is_control) {
            return Err(invalid("name", "contains a control character".into()));
        }
        let duration = |field: &'static str, text: &str| {
            parse_duration(text).ok_or_else(|| {
                invalid(
                    field,
                    format!(
                        "= \"{text}\" is not a duration; give a number and a unit (s, m, h, d, w, y), e.g. \"6h\""
                    ),
                )
            })
        };

        let trigger = match (&config.every, &config.cron) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "every",
                    "and `cron` are both set; give one of them".into(),
                ));
            }
            (None, None) => {
                return Err(invalid(
                    "every",
                    "or `cron` is needed: when the schedule runs (`every = \"6h\"` or `cron = \"0 2 * * *\"`)".into(),
                ));
            }
            (Some(text), None) => {
                if config.timezone.is_some() {
                    return Err(invalid(
                        "timezone",
                        "applies only to `cron`; an `every` interval is elapsed time".into(),
                    ));
                }
                let interval = duration("every", text)?;
                if interval < MIN_INTERVAL {
                    return Err(invalid(
                        "every",
                        format!("= \"{text}\" is shorter than the minimum of one minute"),
                    ));
                }
                Trigger::Every {
                    interval,
                    text: text.trim().to_owned(),
                }
            }
            (None, Some(expression)) => {
                let timezone = match &config.timezone {
                    None => Timezone::Local,
                    Some(text) => Timezone::parse(text).ok_or_else(|| {
                        invalid(
                            "timezone",
                            format!("= \"{text}\" is not supported; give \"local\" or \"UTC\""),
                        )
                    })?,
                };
                let cron = CronTrigger::parse(expression, timezone).map_err(|reason| {
                    invalid("cron", format!("= \"{expression}\" is not valid: {reason}"))
                })?;
                Trigger::Cron(Box::new(cron))
            }
        };

        let method = match config.method.as_deref().map(str::trim) {
            None => Method::Full,
            Some(m) if m.eq_ignore_ascii_case("full") => Method::Full,
            Some(m) => {
                return Err(invalid(
                    "method",
                    format!("= \"{m}\" is not supported; the only method is \"full\""),
                ));
            }
        };
        if config.keep_last == Some(0) {
            return Err(invalid(
                "keep_last",
                "= 0: give at least 1 (the newest backup is always kept)".into(),
            ));
        }
        let keep_within = config
            .keep_within
            .as_deref()
            .map(|t| duration("keep_within", t))
            .transpose()?;
        let random_delay = config
            .random_delay
            .as_deref()
            .map(|t| duration("random_delay", t))
            .transpose()?
            .unwrap_or(Duration::ZERO);
        let alert_after = match config.alert_after.as_deref() {
            None => None,
            Some(text) => {
                let limit = duration("alert_after", text)?;
                if limit.is_zero() {
                    return Err(invalid(
                        "alert_after",
                        "= 0: give how long without a successful backup is too long, e.g. \"26h\""
                            .into(),
                    ));
                }
                Some((limit, text.trim().to_owned()))
            }
        };
        let recipients = match &config.recipients {
            None => None,
            Some(list) => Some(
                list.iter()
                    .map(|text| {
                        text.parse::<Recipient>()
                            .map_err(|e| invalid("recipients", format!("\"{text}\": {e}")))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        Ok(Self {
            name: name.to_owned(),
            trigger,
            directory: config.directory.clone(),
            targets: config.targets.clone(),
            method,
            keep_last: config.keep_last,
            keep_within,
            verify_after: config.verify_after,
            on_key_change: config.on_key_change,
            random_delay,
            alert_after,
            recipients,
        })
    }

    /// `requested_by` of this schedule's jobs (`schedule:NAME`).
    pub fn requested_by(&self) -> String {
        requested_by(&self.name)
    }

    /// When the run after `last_run` (the start of the last run) is due: for `every`, the last
    /// run plus the interval, or `now` when it never ran; for `cron`, the first match strictly
    /// after the last run, or after `now` when it never ran, on the schedule's clock. A result
    /// at or before `now` means due now (see [`Schedule::due`]).
    pub fn next_run(
        &self,
        last_run: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> OffsetDateTime {
        self.trigger.next_run(last_run, now)
    }

    /// Whether to run at `now`. `since` is when the service began watching this schedule (its
    /// start, or the config reload that added it): a `cron` schedule that never ran waits for
    /// its first match after `since`. However many due times passed since the last run, the
    /// answer is one run ([`Due::Now`]); once it started, `last_run` is that start and the next
    /// time comes after it.
    pub fn due(
        &self,
        last_run: Option<OffsetDateTime>,
        since: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Due {
        let next = self.next_run(last_run, since);
        if next > now {
            return Due::At(next);
        }
        let missed = time::Duration::try_from(MISSED_AFTER)
            .ok()
            .and_then(|grace| next.checked_add(grace))
            .is_some_and(|limit| limit < now);
        Due::Now { slot: next, missed }
    }

    /// At the service's start (`now`): a run became due while it was down, to run once now.
    pub fn missed(&self, last_run: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
        matches!(self.due(last_run, now, now), Due::Now { missed: true, .. })
    }

    /// How long to wait before a scheduled run: `random` (any `u64`, e.g. from the OS) mapped
    /// into `[0, random_delay]`, to the millisecond. Zero when no `random_delay` is set.
    pub fn random_delay(&self, random: u64) -> Duration {
        let max = u64::try_from(self.random_delay.as_millis()).unwrap_or(u64::MAX);
        match max.checked_add(1) {
            None => Duration::from_millis(random),
            Some(span) => Duration::from_millis(random % span),
        }
    }

    /// [`Schedule::random_delay`] with a random number from the operating system.
    pub fn pick_random_delay(&self) -> Duration {
        self.random_delay(u64::from_le_bytes(crate::random::bytes::<8>()))
    }

    /// With `alert_after`: a message when the last successful backup (`last_success`, when it
    /// finished) is older than the limit, or none ever succeeded; `None` when fresh enough or
    /// no limit is set.
    pub fn stale(
        &self,
        last_success: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Option<String> {
        let (limit, text) = self.alert_after.as_ref()?;
        let Some(last) = last_success else {
            return Some(format!(
                "schedule '{}' has no successful backup yet (alert_after = \"{text}\")",
                self.name
            ));
        };
        let age = Duration::try_from(now - last).unwrap_or(Duration::ZERO);
        (age > *limit).then(|| {
            format!(
                "schedule '{}' has had no successful backup for {}: the last one succeeded at {} (alert_after = \"{text}\")",
                self.name,
                human_duration(age),
                self.trigger.format(last)
            )
        })
    }

    /// Retention after a successful run (as `sstore prune`): `None` without `keep_last` and
    /// `keep_within`; with only `keep_within`, the newest backup is kept besides.
    pub fn prune_rules(&self) -> Option<PruneRules> {
        if self.keep_last.is_none() && self.keep_within.is_none() {
            return None;
        }
        Some(PruneRules {
            keep_last: self.keep_last.unwrap_or(1),
            keep_within: self.keep_within,
        })
    }

    /// The backup directory and targets of this schedule's jobs: its own, else the config's
    /// `[backup] directory` and `[backup] targets`.
    pub fn destinations(&self, config: &crate::config::Config) -> (Option<String>, Vec<String>) {
        let directory = self
            .directory
            .clone()
            .or_else(|| config.backup.directory.clone());
        let targets = if self.targets.is_empty() {
            config.backup.targets.clone()
        } else {
            self.targets.clone()
        };
        (directory, targets)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use time::macros::datetime;

    use super::*;

    /// A schedule entry with only a name; the tests set the rest.
    fn entry(name: &str) -> ScheduleConfig {
        ScheduleConfig {
            name: name.into(),
            every: None,
            cron: None,
            timezone: None,
            directory: None,
            targets: Vec::new(),
            method: None,
            keep_last: None,
            keep_within: None,
            verify_after: false,
            on_key_change: false,
            random_delay: None,
            alert_after: None,
            recipients: None,
        }
    }

    fn every(name: &str, text: &str) -> ScheduleConfig {
        ScheduleConfig {
            every: Some(text.into()),
            ..entry(name)
        }
    }

    fn cron_utc(name: &str, expression: &str) -> ScheduleConfig {
        ScheduleConfig {
            cron: Some(expression.into()),
            timezone: Some("UTC".into()),
            ..entry(name)
        }
    }

    fn parse(config: ScheduleConfig) -> Schedule {
        Schedule::parse(0, &config).unwrap()
    }

    /// The error for `config`, checked to name the schedule and the field.
    fn error(configs: &[ScheduleConfig], schedule: &str, field: &str) -> String {
        let e = parse_schedules(configs).unwrap_err().to_string();
        assert!(e.contains(schedule), "{e} (should name {schedule})");
        assert!(
            e.contains(&format!("`{field}`")),
            "{e} (should name `{field}`)"
        );
        e
    }

    #[test]
    fn every_field_error_names_the_schedule_and_the_field() {
        let e = error(&[every("a", "6h"), every("a", "1d")], "'a'", "name");
        assert!(e.contains("two schedules"), "{e}");
        error(&[every("  ", "6h")], "#1", "name");
        error(&[every("ok", "6h"), entry("")], "#2", "name");
        let both = ScheduleConfig {
            cron: Some("0 2 * * *".into()),
            ..every("b", "6h")
        };
        let e = error(&[both], "'b'", "every");
        assert!(e.contains("`cron`"), "{e}");
        error(&[entry("none")], "'none'", "every");
        let e = error(&[every("bad", "6 hours")], "'bad'", "every");
        assert!(e.contains("6 hours"), "{e}");
        let e = error(&[every("short", "30s")], "'short'", "every");
        assert!(e.contains("one minute"), "{e}");
        parse(every("minute", "1m"));
        parse(every("seconds", "60s"));

        let e = error(&[cron_utc("c4", "0 2 * *")], "'c4'", "cron");
        assert!(e.contains("4 field(s)"), "{e}");
        error(&[cron_utc("c6", "0 0 2 * * *")], "'c6'", "cron");
        error(&[cron_utc("nick", "@daily")], "'nick'", "cron");
        error(&[cron_utc("range", "61 * * * *")], "'range'", "cron");
        error(&[cron_utc("junk", "a b c d e")], "'junk'", "cron");
        let e = error(&[cron_utc("feb30", "0 0 30 2 *")], "'feb30'", "cron");
        assert!(e.contains("never matches"), "{e}");

        let zone = ScheduleConfig {
            timezone: Some("Europe/Paris".into()),
            ..cron_utc("tz", "0 2 * * *")
        };
        let e = error(&[zone], "'tz'", "timezone");
        assert!(e.contains("Europe/Paris"), "{e}");
        let zone_with_every = ScheduleConfig {
            timezone: Some("UTC".into()),
            ..every("tz-every", "1h")
        };
        error(&[zone_with_every], "'tz-every'", "timezone");
        for text in ["utc", "UTC", "Local", "LOCAL", " local "] {
            parse(ScheduleConfig {
                timezone: Some(text.into()),
                ..cron_utc("x", "0 2 * * *")
            });
        }
        assert_eq!(
            match parse(ScheduleConfig {
                timezone: None,
                ..cron_utc("x", "0 2 * * *")
            })
            .trigger
            {
                Trigger::Cron(c) => c.timezone(),
                Trigger::Every { .. } => unreachable!(),
            },
            Timezone::Local
        );

        for (field, set) in [
            (
                "random_delay",
                (|c: &mut ScheduleConfig| c.random_delay = Some("soon".into()))
                    as fn(&mut ScheduleConfig),
            ),
            ("alert_after", |c| c.alert_after = Some("a day".into())),
            ("alert_after", |c| c.alert_after = Some("0h".into())),
            ("keep_within", |c| {
                c.keep_within = Some("1 fortnight".into())
            }),
            ("method", |c| c.method = Some("incremental".into())),
            ("keep_last", |c| c.keep_last = Some(0)),
            ("recipients", |c| {
                c.recipients = Some(vec!["sstore1nope".into()])
            }),
        ] {
            let mut config = every("f", "6h");
            set(&mut config);
            error(&[config], "'f'", field);
        }
    }

    #[test]
    fn a_full_entry_parses() {
        let recipient = crate::recipient::Identity::generate().recipient();
        let s = parse(ScheduleConfig {
            directory: Some("/srv/backups".into()),
            targets: vec!["nas".into()],
            method: Some("Full".into()),
            keep_last: Some(7),
            keep_within: Some("30d".into()),
            verify_after: true,
            on_key_change: true,
            random_delay: Some("10m".into()),
            alert_after: Some("26h".into()),
            recipients: Some(vec![recipient.to_string()]),
            ..cron_utc("nightly", "0  2 * * *")
        });
        assert_eq!(s.name, "nightly");
        assert_eq!(s.trigger.to_string(), "cron \"0 2 * * *\" (UTC)");
        assert_eq!(s.method, Method::Full);
        assert_eq!(s.random_delay, Duration::from_secs(600));
        assert_eq!(
            s.alert_after,
            Some((Duration::from_secs(26 * 3600), "26h".into()))
        );
        assert_eq!(s.recipients, Some(vec![recipient]));
        assert_eq!(
            s.prune_rules(),
            Some(PruneRules {
                keep_last: 7,
                keep_within: Some(Duration::from_secs(30 * 86_400)),
            })
        );
        assert_eq!(s.requested_by(), "schedule:nightly");
        assert_eq!(schedule_of(&s.requested_by()), Some("nightly"));
        assert_eq!(schedule_of("alice@host"), None);

        let s = parse(every("six", "6h"));
        assert_eq!(s.trigger.to_string(), "every 6h");
        assert_eq!(s.prune_rules(), None);
        let only_within = parse(ScheduleConfig {
            keep_within: Some("2w".into()),
            ..every("w", "1d")
        });
        assert_eq!(only_within.prune_rules().unwrap().keep_last, 1);
    }

    #[test]
    fn the_config_file_refuses_a_bad_schedule_naming_it() {
        let path = std::path::Path::new("/etc/sstore/config.toml");
        let e = crate::config::Config::parse(
            "[[schedule]]\nname = 'nightly'\ncron = '0 25 * * *'\ntimezone = 'UTC'\n",
            path,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("/etc/sstore/config.toml"), "{e}");
        assert!(e.contains("'nightly'") && e.contains("`cron`"), "{e}");
        let config = crate::config::Config::parse(
            "[backup]\ndirectory = '/srv/b'\ntargets = ['nas']\n\
             [[schedule]]\nname = 'nightly'\ncron = '0 2 * * *'\n\
             [[schedule]]\nname = 'often'\nevery = '6h'\ndirectory = '/mnt/x'\ntargets = ['s3']\n",
            path,
        )
        .unwrap();
        let all = schedules(&config).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(
            all[0].destinations(&config),
            (Some("/srv/b".into()), vec!["nas".into()])
        );
        assert_eq!(
            all[1].destinations(&config),
            (Some("/mnt/x".into()), vec!["s3".into()])
        );
    }

    #[test]
    fn an_interval_counts_from_the_last_start_and_runs_at_once_when_it_never_ran() {
        let s = parse(every("six", "6h"));
        let now = datetime!(2025-03-01 10:00 UTC);
        assert_eq!(s.next_run(None, now), now);
        assert_eq!(
            s.next_run(Some(datetime!(2025-03-01 08:30:15 UTC)), now),
            datetime!(2025-03-01 14:30:15 UTC)
        );
        // Elapsed time: across a month end and a leap day.
        let s = parse(every("daily", "1d"));
        assert_eq!(
            s.next_run(Some(datetime!(2024-02-28 23:00 UTC)), now),
            datetime!(2024-02-29 23:00 UTC)
        );
        assert_eq!(
            s.next_run(Some(datetime!(2025-01-31 12:00 UTC)), now),
            datetime!(2025-02-01 12:00 UTC)
        );
        // An interval too long to add gives "never", not a panic.
        let s = parse(every("long", "9000y"));
        assert_eq!(s.next_run(Some(datetime!(2025-01-01 0:00 UTC)), now), NEVER);
    }

    #[test]
    fn missed_runs_collapse_into_one_run_at_start() {
        let s = parse(cron_utc("nightly", "0 2 * * *"));
        let last = datetime!(2025-03-01 02:00:03 UTC);
        // The service was down from the 1st to the 5th: four nightly slots passed.
        let start = datetime!(2025-03-05 09:00 UTC);
        assert!(s.missed(Some(last), start));
        assert_eq!(
            s.due(Some(last), start, start),
            Due::Now {
                slot: datetime!(2025-03-02 02:00 UTC),
                missed: true
            }
        );
        // It runs once; the next run counts from that start: tomorrow night, not the 3rd.
        let ran = start + time::Duration::seconds(2);
        assert_eq!(
            s.due(Some(ran), start, ran),
            Due::At(datetime!(2025-03-06 02:00 UTC))
        );
        assert!(!s.missed(Some(ran), ran));

        // Woken on time: due, not missed.
        let slot = datetime!(2025-03-06 02:00 UTC);
        let woke = slot + time::Duration::milliseconds(5);
        assert_eq!(
            s.due(Some(ran), start, woke),
            Due::Now {
                slot,
                missed: false
            }
        );

        // Never ran: the first match after the service began watching, not at once.
        let since = datetime!(2025-03-05 09:00 UTC);
        assert_eq!(
            s.due(None, since, since),
            Due::At(datetime!(2025-03-06 02:00 UTC))
        );
        assert_eq!(
            s.due(None, since, woke),
            Due::Now {
                slot,
                missed: false
            }
        );
        assert!(!s.missed(None, since));

        // An interval: however long it was down, one run.
        let s = parse(every("six", "6h"));
        let last = datetime!(2025-03-01 00:00 UTC);
        assert!(s.missed(Some(last), start));
        assert_eq!(
            s.due(Some(last), start, start),
            Due::Now {
                slot: datetime!(2025-03-01 06:00 UTC),
                missed: true
            }
        );
        assert_eq!(
            s.due(Some(start), start, start),
            Due::At(datetime!(2025-03-05 15:00 UTC))
        );
        // Never ran: due at once, which is not a missed run.
        assert_eq!(
            s.due(None, start, start),
            Due::Now {
                slot: start,
                missed: false
            }
        );
        assert!(!s.missed(None, start));
    }

    #[test]
    fn the_random_delay_stays_within_its_bounds() {
        let s = parse(ScheduleConfig {
            random_delay: Some("10m".into()),
            ..every("r", "1h")
        });
        let max = Duration::from_secs(600);
        assert_eq!(s.random_delay(0), Duration::ZERO);
        assert_eq!(s.random_delay(600_000), max);
        assert_eq!(s.random_delay(600_001), Duration::ZERO);
        assert_eq!(s.random_delay(1234), Duration::from_millis(1234));
        let mut seen_high = false;
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..10_000 {
            // A fixed xorshift sequence: deterministic, spread over all of u64.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let d = s.random_delay(x);
            assert!(d <= max, "{d:?}");
            seen_high |= d > max / 2;
        }
        assert!(seen_high);
        for r in [u64::MAX, u64::MAX - 1, 1 << 63] {
            assert!(s.random_delay(r) <= max);
        }
        assert!(s.pick_random_delay() <= max);

        let none = parse(every("n", "1h"));
        assert_eq!(none.random_delay(u64::MAX), Duration::ZERO);
        assert_eq!(none.pick_random_delay(), Duration::ZERO);
    }

    #[test]
    fn staleness_says_when_the_last_success_was_or_that_none_was() {
        let s = parse(ScheduleConfig {
            alert_after: Some("26h".into()),
            ..cron_utc("nightly", "0 2 * * *")
        });
        let now = datetime!(2025-03-03 10:00 UTC);
        let fresh = datetime!(2025-03-02 09:00 UTC);
        assert_eq!(s.stale(Some(fresh), now), None);
        let exactly = now - time::Duration::hours(26);
        assert_eq!(s.stale(Some(exactly), now), None);
        let old = datetime!(2025-03-01 02:05 UTC);
        let message = s.stale(Some(old), now).unwrap();
        assert!(message.contains("'nightly'"), "{message}");
        assert!(message.contains("2025-03-01 02:05:00 UTC"), "{message}");
        assert!(message.contains("for 2d 7h"), "{message}");
        assert!(message.contains("26h"), "{message}");
        let never = s.stale(None, now).unwrap();
        assert!(never.contains("no successful backup yet"), "{never}");

        let unwatched = parse(cron_utc("quiet", "0 2 * * *"));
        assert_eq!(unwatched.stale(None, now), None);
        assert_eq!(unwatched.stale(Some(old), now), None);
    }

    #[test]
    fn durations_for_people() {
        assert_eq!(human_duration(Duration::ZERO), "0s");
        assert_eq!(human_duration(Duration::from_secs(45)), "45s");
        assert_eq!(human_duration(Duration::from_secs(90)), "1m 30s");
        assert_eq!(human_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(human_duration(Duration::from_secs(86_400 + 300)), "1d");
        assert_eq!(
            human_duration(Duration::from_secs(2 * 86_400 + 7 * 3600)),
            "2d 7h"
        );
        let now = datetime!(2025-03-01 12:00 UTC);
        assert_eq!(relative(now, now), "now");
        assert_eq!(
            relative(now + time::Duration::minutes(312), now),
            "in 5h 12m"
        );
        assert_eq!(relative(now - time::Duration::days(3), now), "3d ago");
    }
}
