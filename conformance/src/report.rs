//! The kit's result: one [`CheckOutcome`] per check, gathered in a [`Report`] that prints as a
//! table (for `sstore targets test`) and serialises to JSON.

use std::fmt;
use std::time::Duration;

use serde::{Serialize, Serializer};
use sstore_target_api::Capabilities;

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "message", rename_all = "lowercase")]
pub enum Outcome {
    Passed,
    /// The target broke the contract; the message says how.
    Failed(String),
    /// The check could not run (for example, no unreachable target was given); says why.
    Skipped(String),
}

/// The result of one check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckOutcome {
    /// The check's name (see [`crate::check_list`]).
    pub name: &'static str,
    pub result: Outcome,
    /// What a passed check measured or noticed (throughput, the error an unreachable target
    /// gave); informational only.
    pub note: Option<String>,
    #[serde(serialize_with = "seconds")]
    pub elapsed: Duration,
}

impl CheckOutcome {
    pub fn passed(&self) -> bool {
        self.result == Outcome::Passed
    }

    pub fn failed(&self) -> bool {
        matches!(self.result, Outcome::Failed(_))
    }

    pub fn skipped(&self) -> bool {
        matches!(self.result, Outcome::Skipped(_))
    }
}

/// The results of one run of the kit against one target.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The target's [`sstore_target_api::Target::location`].
    pub location: String,
    pub capabilities: Capabilities,
    /// The prefix every object of the run was written under (`sstore-conformance-…/`).
    pub prefix: String,
    /// One entry per check, in the order run; the last one is `cleanup`.
    pub checks: Vec<CheckOutcome>,
    #[serde(serialize_with = "seconds")]
    pub elapsed: Duration,
}

impl Report {
    /// No check failed (skipped checks do not count against the target).
    pub fn passed(&self) -> bool {
        !self.checks.iter().any(CheckOutcome::failed)
    }

    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &CheckOutcome> {
        self.checks.iter().filter(|c| c.failed())
    }

    /// The outcome of the check called `name`.
    pub fn check(&self, name: &str) -> Option<&CheckOutcome> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// How many checks passed, failed and were skipped.
    pub fn counts(&self) -> (usize, usize, usize) {
        let count = |f: fn(&CheckOutcome) -> bool| self.checks.iter().filter(|c| f(c)).count();
        (
            count(CheckOutcome::passed),
            count(CheckOutcome::failed),
            count(CheckOutcome::skipped),
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Target conformance of {}", self.location)?;
        writeln!(
            f,
            "  capabilities: {}",
            describe_capabilities(&self.capabilities)
        )?;
        writeln!(f, "  objects under: {} (\"…/\" below)", self.prefix)?;
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for check in &self.checks {
            let (status, message) = match &check.result {
                Outcome::Passed => ("PASS", check.note.as_deref().unwrap_or("")),
                Outcome::Failed(m) => ("FAIL", m.as_str()),
                Outcome::Skipped(m) => ("SKIP", m.as_str()),
            };
            // The run's prefix is in most keys; the header gives it once.
            let message = if self.prefix.is_empty() {
                message.to_owned()
            } else {
                message.replace(&self.prefix, "…/")
            };
            let elapsed = format!("{:.2?}", check.elapsed);
            let line = format!(
                "  {status}  {:<width$}  {elapsed:>9}  {message}",
                check.name
            );
            writeln!(f, "{}", line.trim_end())?;
        }
        let (passed, failed, skipped) = self.counts();
        write!(
            f,
            "{} checks: {passed} passed, {failed} failed, {skipped} skipped in {:.2?}",
            self.checks.len(),
            self.elapsed
        )
    }
}

fn describe_capabilities(c: &Capabilities) -> String {
    let names = [
        (c.atomic_publish, "atomic publish"),
        (c.conditional_create, "conditional create"),
        (c.multipart, "multipart"),
        (c.server_sha256, "server SHA-256"),
        (c.native_ranges, "native ranges"),
    ];
    let on: Vec<&str> = names
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
    if on.is_empty() {
        "none".to_owned()
    } else {
        on.join(", ")
    }
}

fn seconds<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_one_line_per_check_and_a_summary() {
        let check = |name, result, note: Option<&str>| CheckOutcome {
            name,
            result,
            note: note.map(str::to_owned),
            elapsed: Duration::from_millis(12),
        };
        let report = Report {
            location: "local:/x".into(),
            capabilities: Capabilities::default(),
            prefix: "sstore-conformance-1-2/".into(),
            checks: vec![
                check("readiness", Outcome::Passed, Some("writable")),
                check(
                    "listing",
                    Outcome::Failed("sstore-conformance-1-2/listing/a not sorted".into()),
                    None,
                ),
                check("unreachable", Outcome::Skipped("none given".into()), None),
            ],
            elapsed: Duration::from_secs(1),
        };
        assert!(!report.passed());
        assert_eq!(report.counts(), (1, 1, 1));
        assert_eq!(
            report.failures().map(|c| c.name).collect::<Vec<_>>(),
            ["listing"]
        );
        let text = report.to_string();
        assert!(
            text.contains("  PASS  readiness      12.00ms  writable\n"),
            "{text}"
        );
        assert!(
            text.contains("  FAIL  listing        12.00ms  …/listing/a not sorted\n"),
            "{text}"
        );
        assert!(text.contains("SKIP  unreachable"), "{text}");
        assert!(text.ends_with("3 checks: 1 passed, 1 failed, 1 skipped in 1.00s"));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["checks"][1]["result"]["status"], "failed");
        assert_eq!(
            json["checks"][1]["result"]["message"],
            "sstore-conformance-1-2/listing/a not sorted"
        );
    }
}
