//! Timer jobs (`[[schedule]]` in the config): when each runs, what it backs up, and what the
//! job journal says about its last run.

use serde::Deserialize;

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
