//! When a schedule runs: an interval (`every`) or a cron expression in a time zone (`cron`,
//! `timezone`), and the conversions between the engine's [`OffsetDateTime`] and the zoned time
//! the cron search needs.

use std::time::Duration;

use jiff::Zoned;
use jiff::tz::TimeZone;
use serde::Serialize;
use time::OffsetDateTime;

/// The time [`Trigger::next_after`] answers when there is no next run: a cron expression with
/// no match before the year 5000 (refused when the config is read, so not seen in practice).
pub const NEVER: OffsetDateTime = time::macros::datetime!(9999-12-31 23:59:59 UTC);

/// The clock a cron expression is read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Timezone {
    /// The system's zone (`TZ`, else `/etc/localtime`), daylight saving time included; UTC
    /// when the system does not say.
    #[serde(rename = "local")]
    Local,
    #[serde(rename = "UTC")]
    Utc,
}

impl Timezone {
    /// `"local"` or `"UTC"`, in any case.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "local" => Some(Self::Local),
            "utc" => Some(Self::Utc),
            _ => None,
        }
    }

    pub(crate) fn zone(self) -> TimeZone {
        match self {
            Self::Local => TimeZone::system(),
            Self::Utc => TimeZone::UTC,
        }
    }
}

impl std::fmt::Display for Timezone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Local => "local",
            Self::Utc => "UTC",
        })
    }
}

/// A cron expression (5 fields: minute, hour, day of month, month, day of week) and its clock.
#[derive(Debug, Clone)]
pub struct CronTrigger {
    expression: String,
    timezone: Timezone,
    cron: croner::Cron,
    zone: TimeZone,
}

impl CronTrigger {
    /// Parses a 5-field expression; the error says what is wrong with it.
    pub fn parse(expression: &str, timezone: Timezone) -> Result<Self, String> {
        Self::with_zone(expression, timezone, timezone.zone())
    }

    pub(crate) fn with_zone(
        expression: &str,
        timezone: Timezone,
        zone: TimeZone,
    ) -> Result<Self, String> {
        let expression = expression.split_whitespace().collect::<Vec<_>>().join(" ");
        let fields = expression.split(' ').filter(|f| !f.is_empty()).count();
        if fields != 5 {
            return Err(format!(
                "has {fields} field(s); give 5: minute hour day-of-month month day-of-week, e.g. \"0 2 * * *\""
            ));
        }
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .year(croner::parser::Year::Disallowed)
            .build()
            .parse(&expression)
            .map_err(|e| e.to_string())?;
        let trigger = Self {
            expression,
            timezone,
            cron,
            zone,
        };
        // An expression that never matches (`0 0 30 2 *`) is refused here rather than leaving
        // a schedule that silently never runs. The reference time is fixed, so the check does
        // not depend on when the config is read.
        let reference = time::macros::datetime!(2000-01-01 00:00 UTC);
        if trigger.next_after(reference) == NEVER {
            return Err("never matches a date (check the day of month and month)".into());
        }
        Ok(trigger)
    }

    /// The expression as written (whitespace normalised).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    pub fn timezone(&self) -> Timezone {
        self.timezone
    }

    /// The first match strictly after `after`, or [`NEVER`].
    pub fn next_after(&self, after: OffsetDateTime) -> OffsetDateTime {
        to_zoned(after, &self.zone)
            .and_then(|z| self.cron.find_next_occurrence(&z, false).ok())
            .and_then(|z| from_zoned(&z))
            .unwrap_or(NEVER)
    }

    /// `t` on this trigger's clock, for people: `2025-03-02 02:00:00 CET`.
    pub fn format(&self, t: OffsetDateTime) -> String {
        format_in(t, &self.zone)
    }
}

/// What makes a schedule run.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// Every `interval`, counted from the start of the last run; `text` as written (`"6h"`).
    Every { interval: Duration, text: String },
    /// Boxed: a parsed expression is much larger than an interval.
    Cron(Box<CronTrigger>),
}

impl Trigger {
    /// The first run after `last_run` (see [`super::Schedule::next_run`]).
    pub fn next_run(
        &self,
        last_run: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> OffsetDateTime {
        match self {
            Self::Every { interval, .. } => match last_run {
                None => now,
                Some(last) => time::Duration::try_from(*interval)
                    .ok()
                    .and_then(|d| last.checked_add(d))
                    .unwrap_or(NEVER),
            },
            Self::Cron(cron) => cron.next_after(last_run.unwrap_or(now)),
        }
    }

    /// `t` for people, on the trigger's clock (the system's for an interval).
    pub fn format(&self, t: OffsetDateTime) -> String {
        match self {
            Self::Every { .. } => format_in(t, &TimeZone::system()),
            Self::Cron(cron) => cron.format(t),
        }
    }
}

impl std::fmt::Display for Trigger {
    /// `every 6h`, or `cron "0 2 * * *" (UTC)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Every { text, .. } => write!(f, "every {text}"),
            Self::Cron(cron) => write!(f, "cron \"{}\" ({})", cron.expression, cron.timezone),
        }
    }
}

fn to_zoned(t: OffsetDateTime, zone: &TimeZone) -> Option<Zoned> {
    let ts = jiff::Timestamp::from_nanosecond(t.unix_timestamp_nanos()).ok()?;
    Some(ts.to_zoned(zone.clone()))
}

fn from_zoned(z: &Zoned) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(z.timestamp().as_nanosecond()).ok()
}

fn format_in(t: OffsetDateTime, zone: &TimeZone) -> String {
    match to_zoned(t, zone) {
        Some(z) => z.strftime("%Y-%m-%d %H:%M:%S %Z").to_string(),
        None => t.to_string(),
    }
}

/// `t` relative to `now` for people: `in 5h 12m`, `3d 2h ago`, `now`.
pub fn relative(t: OffsetDateTime, now: OffsetDateTime) -> String {
    let d = t - now;
    let abs = Duration::try_from(d.abs()).unwrap_or(Duration::ZERO);
    if abs < Duration::from_secs(1) {
        "now".into()
    } else if d.is_positive() {
        format!("in {}", human_duration(abs))
    } else {
        format!("{} ago", human_duration(abs))
    }
}

/// A duration for people: `2d 3h`, `45m`, `30s` (the two largest units).
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let units: [(u64, &str); 4] = [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")];
    for (i, (size, unit)) in units.iter().enumerate() {
        if secs >= *size {
            let mut out = format!("{}{unit}", secs / size);
            if let Some((next, next_unit)) = units.get(i + 1) {
                let n = secs % size / next;
                if n > 0 {
                    out.push_str(&format!(" {n}{next_unit}"));
                }
            }
            return out;
        }
    }
    "0s".into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use time::macros::datetime;

    use super::*;

    fn utc(expression: &str) -> CronTrigger {
        CronTrigger::parse(expression, Timezone::Utc).unwrap()
    }

    /// Central European rules (as Europe/Berlin): CET, CEST from the last Sunday of March
    /// 02:00 to the last Sunday of October 03:00. A POSIX rule, so no time zone database is
    /// needed and the test means the same on every machine.
    fn berlin(expression: &str) -> CronTrigger {
        let zone = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        CronTrigger::with_zone(expression, Timezone::Local, zone).unwrap()
    }

    #[test]
    fn cron_on_utc_is_the_first_match_strictly_after() {
        let c = utc("0 2 * * *");
        assert_eq!(
            c.next_after(datetime!(2025-03-01 02:00:04 UTC)),
            datetime!(2025-03-02 02:00 UTC)
        );
        // Strictly after: a run that started on the dot is not due again.
        assert_eq!(
            c.next_after(datetime!(2025-03-01 02:00 UTC)),
            datetime!(2025-03-02 02:00 UTC)
        );
        assert_eq!(
            c.next_after(datetime!(2025-03-01 01:59:59.5 UTC)),
            datetime!(2025-03-01 02:00 UTC)
        );
        // Year end.
        assert_eq!(
            utc("0 0 1 1 *").next_after(datetime!(2024-12-31 23:59:30 UTC)),
            datetime!(2025-01-01 0:00 UTC)
        );
        // Month ends: the 31st skips shorter months; L is the last day; Feb 29 waits for a
        // leap year.
        let c = utc("0 0 31 * *");
        assert_eq!(
            c.next_after(datetime!(2025-01-31 0:00 UTC)),
            datetime!(2025-03-31 0:00 UTC)
        );
        assert_eq!(
            c.next_after(datetime!(2025-03-31 0:00 UTC)),
            datetime!(2025-05-31 0:00 UTC)
        );
        let c = utc("30 23 L * *");
        assert_eq!(
            c.next_after(datetime!(2024-02-01 0:00 UTC)),
            datetime!(2024-02-29 23:30 UTC)
        );
        assert_eq!(
            c.next_after(datetime!(2023-02-01 0:00 UTC)),
            datetime!(2023-02-28 23:30 UTC)
        );
        assert_eq!(
            c.next_after(datetime!(2025-04-30 23:30 UTC)),
            datetime!(2025-05-31 23:30 UTC)
        );
        assert_eq!(
            utc("0 0 29 2 *").next_after(datetime!(2025-01-01 0:00 UTC)),
            datetime!(2028-02-29 0:00 UTC)
        );
        // Weekdays: Sunday is 0 or 7, names work; day of month OR day of week (Vixie).
        let sunday = datetime!(2025-03-09 9:00 UTC);
        assert_eq!(
            utc("0 9 * * 0").next_after(datetime!(2025-03-04 0:00 UTC)),
            sunday
        );
        assert_eq!(
            utc("0 9 * * 7").next_after(datetime!(2025-03-04 0:00 UTC)),
            sunday
        );
        assert_eq!(
            utc("0 9 * * sun").next_after(datetime!(2025-03-04 0:00 UTC)),
            sunday
        );
        assert_eq!(
            utc("0 0 1,15 * 1").next_after(datetime!(2025-03-02 0:00 UTC)),
            datetime!(2025-03-03 0:00 UTC)
        );
        assert_eq!(
            c.format(datetime!(2025-03-03 0:00 UTC)),
            "2025-03-03 00:00:00 UTC"
        );
    }

    /// A plain matcher for numbers, `*`, ranges, steps and lists, with Vixie's day rule.
    fn field_matches(field: &str, value: u32, sunday_seven: bool) -> bool {
        field.split(',').any(|part| {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => (r, s.parse::<u32>().unwrap()),
                None => (part, 1),
            };
            let (lo, hi) = match range {
                "*" => (0, 59),
                r => match r.split_once('-') {
                    Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
                    None => {
                        let n: u32 = r.parse().unwrap();
                        (n, if step > 1 { 59 } else { n })
                    }
                },
            };
            let hit = |v: u32| v >= lo && v <= hi && (v - lo).is_multiple_of(step);
            hit(value) || (sunday_seven && value == 0 && hit(7))
        })
    }

    fn day_matches(f: &[&str], t: OffsetDateTime) -> bool {
        let dom = field_matches(f[2], u32::from(t.day()), false);
        let dow = field_matches(f[4], u32::from(t.weekday().number_days_from_sunday()), true);
        let day = match (f[2].starts_with('*'), f[4].starts_with('*')) {
            (false, false) => dom || dow,
            _ => dom && dow,
        };
        day && field_matches(f[3], u32::from(u8::from(t.month())), false)
    }

    fn time_matches(f: &[&str], t: OffsetDateTime) -> bool {
        field_matches(f[0], u32::from(t.minute()), false)
            && field_matches(f[1], u32::from(t.hour()), false)
    }

    /// The first whole minute strictly after `start` that `expression` matches.
    fn reference_next(expression: &str, start: OffsetDateTime) -> OffsetDateTime {
        let f: Vec<&str> = expression.split(' ').collect();
        let mut t = start
            .replace_second(0)
            .unwrap()
            .replace_nanosecond(0)
            .unwrap()
            + time::Duration::minutes(1);
        loop {
            if !day_matches(&f, t) {
                t = t.replace_time(time::Time::MIDNIGHT) + time::Duration::days(1);
            } else if time_matches(&f, t) {
                return t;
            } else {
                t += time::Duration::minutes(1);
            }
        }
    }

    #[test]
    fn cron_on_utc_agrees_with_a_minute_by_minute_search() {
        let expressions = [
            "0 2 * * *",
            "*/15 * * * *",
            "5 */6 * * *",
            "30 4 1 * *",
            "0 0 31 * *",
            "59 23 28-31 2 *",
            "0 12 * * 1-5",
            "0 0 1,15 * 0",
            "10,40 8-17/3 * 1-6,12 *",
            "0 9 * * 7",
            "0 0 * * 6",
        ];
        for expression in expressions {
            let c = utc(expression);
            // Start points spread over two years (a leap day included), at odd seconds.
            let mut start = datetime!(2023-12-30 23:58:17 UTC);
            while start < datetime!(2025-12-31 0:00 UTC) {
                assert_eq!(
                    c.next_after(start),
                    reference_next(expression, start),
                    "{expression} after {start}"
                );
                start += time::Duration::seconds(3 * 86_400 + 5 * 3600 + 7 * 60 + 13);
            }
        }
    }

    #[test]
    fn a_time_skipped_by_daylight_saving_runs_after_the_gap_once() {
        // 2025-03-30: 02:00 CET becomes 03:00 CEST (01:00 UTC); 02:30 does not exist.
        let c = berlin("30 2 * * *");
        let day_before = datetime!(2025-03-29 01:30 UTC); // 02:30 CET on the 29th
        assert_eq!(
            c.next_after(day_before - time::Duration::minutes(1)),
            day_before
        );
        let after_gap = c.next_after(day_before);
        assert_eq!(after_gap, datetime!(2025-03-30 01:00 UTC)); // 03:00 CEST, same day
        assert_eq!(c.format(after_gap), "2025-03-30 03:00:00 CEST");
        assert_eq!(c.next_after(after_gap), datetime!(2025-03-31 00:30 UTC)); // 02:30 CEST
        // Every half hour: the slots in the gap simply do not exist.
        let c = berlin("*/30 * * * *");
        assert_eq!(
            c.next_after(datetime!(2025-03-30 00:45 UTC)), // 01:45 CET
            datetime!(2025-03-30 01:00 UTC)                // 03:00 CEST
        );
    }

    #[test]
    fn a_time_repeated_by_daylight_saving_runs_once() {
        // 2025-10-26: 03:00 CEST becomes 02:00 CET (01:00 UTC); 02:00-02:59 happens twice.
        let c = berlin("30 2 * * *");
        let first = c.next_after(datetime!(2025-10-25 23:00 UTC));
        assert_eq!(first, datetime!(2025-10-26 00:30 UTC)); // 02:30 CEST
        assert_eq!(c.format(first), "2025-10-26 02:30:00 CEST");
        // Not again at 02:30 CET an hour later: the next day.
        assert_eq!(c.next_after(first), datetime!(2025-10-27 01:30 UTC));
        // Hourly runs every real hour, in both passes.
        let c = berlin("0 * * * *");
        assert_eq!(
            c.next_after(datetime!(2025-10-26 00:00 UTC)), // 02:00 CEST
            datetime!(2025-10-26 01:00 UTC)                // 02:00 CET
        );
        assert_eq!(
            c.next_after(datetime!(2025-10-26 01:00 UTC)),
            datetime!(2025-10-26 02:00 UTC) // 03:00 CET
        );
        // Outside the changes, wall-clock times keep their local meaning.
        let c = berlin("0 2 * * *");
        assert_eq!(
            c.next_after(datetime!(2025-01-10 12:00 UTC)),
            datetime!(2025-01-11 01:00 UTC)
        );
        assert_eq!(
            c.next_after(datetime!(2025-07-10 12:00 UTC)),
            datetime!(2025-07-11 00:00 UTC)
        );
    }

    #[test]
    fn an_interval_is_elapsed_time_across_a_clock_change() {
        let t = Trigger::Every {
            interval: Duration::from_secs(86_400),
            text: "1d".into(),
        };
        let before = datetime!(2025-03-29 01:00 UTC);
        assert_eq!(
            t.next_run(Some(before), before),
            datetime!(2025-03-30 01:00 UTC)
        );
    }

    #[test]
    fn local_cron_reads_the_system_clock() {
        let c = CronTrigger::parse("0 2 * * *", Timezone::Local).unwrap();
        let system = TimeZone::system();
        // Mid-January and mid-July, away from any clock change.
        for start in [
            datetime!(2025-01-15 12:00 UTC),
            datetime!(2025-07-15 12:00 UTC),
        ] {
            let next = c.next_after(start);
            assert!(next > start);
            assert!(
                next - start <= time::Duration::hours(24 + 2),
                "{start} -> {next}"
            );
            let wall = to_zoned(next, &system).unwrap();
            assert_eq!((wall.hour(), wall.minute(), wall.second()), (2, 0, 0));
            assert_eq!(c.format(next), format_in(next, &system));
        }
        let t = Trigger::Cron(Box::new(c));
        assert_eq!(t.to_string(), "cron \"0 2 * * *\" (local)");
    }
}
