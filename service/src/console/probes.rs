//! Whether each destination is reachable and writable, and its free space: the targets'
//! readiness checks (a probe object written and removed), run in the background and kept for
//! a minute so pages that refresh every 30 seconds do not probe every target each time. A
//! page waits a few seconds for fresh answers, then shows what it has.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sstore_core::locations;
use sstore_core::target::Readiness;

use crate::jobs::Runtime;

/// How long an answer is used before the target is asked again.
const FRESH: Duration = Duration::from_secs(60);

/// One destination's last answer.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The target's location (never a secret), when it opened.
    pub location: Option<String>,
    pub result: Result<Readiness, String>,
    pub checked: Instant,
}

#[derive(Default)]
struct Entry {
    last: Option<Probe>,
    running: bool,
}

#[derive(Default)]
pub struct Probes {
    entries: Mutex<HashMap<String, Entry>>,
}

impl Probes {
    /// The latest answer for each of `names` (as a location string or target name), asking
    /// again those older than a minute and waiting up to `wait` for them.
    pub async fn get(
        self: &Arc<Self>,
        runtime: &Arc<Runtime>,
        names: &[String],
        wait: Duration,
    ) -> HashMap<String, Probe> {
        let mut started = Vec::new();
        {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            for name in names {
                let entry = entries.entry(name.clone()).or_default();
                let stale = entry
                    .last
                    .as_ref()
                    .is_none_or(|p| p.checked.elapsed() > FRESH);
                if stale && !entry.running {
                    entry.running = true;
                    let (probes, runtime, name) = (self.clone(), runtime.clone(), name.clone());
                    started.push(tokio::spawn(async move {
                        let probe = probe(&runtime, &name).await;
                        let mut entries = probes.entries.lock().unwrap_or_else(|p| p.into_inner());
                        let entry = entries.entry(name).or_default();
                        entry.running = false;
                        entry.last = Some(probe);
                    }));
                }
            }
        }
        if !started.is_empty() {
            // What does not answer in time goes on in the background, for the next page.
            let _ = tokio::time::timeout(wait, futures_util::future::join_all(started)).await;
        }
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        names
            .iter()
            .filter_map(|n| Some((n.clone(), entries.get(n)?.last.clone()?)))
            .collect()
    }

    /// Forgets the answer for `name` (after a test of the target).
    pub fn forget(&self, name: &str) {
        if let Some(entry) = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(name)
        {
            entry.last = None;
        }
    }
}

async fn probe(runtime: &Runtime, name: &str) -> Probe {
    let checked = Instant::now();
    let opened = match locations::open(&runtime.registry, &runtime.config, name).await {
        Ok(opened) => opened,
        Err(e) => {
            return Probe {
                location: None,
                result: Err(e.to_string()),
                checked,
            };
        }
    };
    let limit = runtime.config.readiness_timeout();
    let result = match tokio::time::timeout(limit, opened.target.readiness()).await {
        Ok(Ok(readiness)) => Ok(readiness),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", limit.as_secs())),
    };
    Probe {
        location: Some(opened.target.location()),
        result,
        checked: Instant::now(),
    }
}
