//! What the service knows about its destinations without asking them on every request: for
//! each destination the configuration names (`[backup]`, schedules), its last successful
//! backup (read from its history at start, after every job, and every few minutes), and the
//! store's current Master Key generation (checked every `[serve] key_check_secs`). From these
//! come the warnings a status page shows: a Master Key newer than the last backup (back up
//! now), and a destination with no success for longer than its schedule's `alert_after`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use sstore_core::backup::{History, JobKind, JobStatus};
use sstore_core::config::Config;
use sstore_core::locations;
use sstore_core::store::SecureStore;

use crate::jobs::Runtime;

/// One destination as the service last saw it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DestinationState {
    /// As written in the config (a target name, a folder, a URL).
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_backup_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_key_generation: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_size: Option<u64>,
    /// Backups that failed there (in its history).
    pub failures: u64,
    /// Why the service could not read it, the last time it tried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The warnings for this destination (key change, staleness).
    pub warnings: Vec<String>,
    /// A warning that makes readiness fail (staleness).
    pub ready: bool,
}

/// The cache, shared by the status, readiness, metrics and console handlers.
#[derive(Default)]
pub struct Readiness {
    destinations: Mutex<BTreeMap<String, DestinationState>>,
    key_generation: Mutex<Option<u64>>,
}

impl Readiness {
    pub fn destinations(&self) -> Vec<DestinationState> {
        let generation = self.key_generation();
        self.destinations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .map(|mut d| {
                d.warnings.clear();
                d.ready = d.error.is_none();
                if let (Some(current), Some(last)) = (generation, d.last_key_generation)
                    && current > last
                {
                    d.warnings.push(format!(
                        "the Master Key changed (generation {current}) since the last successful backup here (generation {last}): the store and its backups are out of sync until a backup succeeds"
                    ));
                }
                if generation.is_some() && d.last_success.is_none() && d.error.is_none() {
                    d.warnings.push("no successful backup yet".into());
                }
                d
            })
            .collect()
    }

    pub fn key_generation(&self) -> Option<u64> {
        *self
            .key_generation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Records the store's generation; returns the previous one when it changed.
    pub fn set_key_generation(&self, generation: u64) -> Option<u64> {
        let mut current = self
            .key_generation
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let previous = current.replace(generation);
        previous.filter(|p| *p != generation)
    }

    /// Reads every configured destination's history (at most a few at once).
    pub async fn refresh(&self, runtime: &Runtime) {
        let names = configured_destinations(&runtime.config);
        let mut tasks = tokio::task::JoinSet::new();
        for name in names {
            let runtime_config = &runtime.config;
            let opened =
                locations::backup_directory(&runtime.registry, runtime_config, Some(&name), None)
                    .await;
            tasks.spawn(async move {
                let mut state = DestinationState {
                    name: name.clone(),
                    ..DestinationState::default()
                };
                match opened {
                    Ok(dir) => {
                        state.location = Some(dir.location());
                        match tokio::time::timeout(Duration::from_secs(30), dir.load_history())
                            .await
                        {
                            Ok(Ok(history)) => fill(&mut state, &history),
                            Ok(Err(e)) => state.error = Some(e.to_string()),
                            Err(_) => {
                                state.error = Some("its history did not answer within 30 s".into());
                            }
                        }
                    }
                    Err(e) => state.error = Some(e.to_string()),
                }
                state
            });
        }
        let states = tasks.join_all().await;
        let mut destinations = self.destinations.lock().unwrap_or_else(|p| p.into_inner());
        destinations.clear();
        for state in states {
            destinations.insert(state.name.clone(), state);
        }
    }

    /// Reads the store's Master Key generation; returns the previous one when it changed.
    pub fn check_key(&self, runtime: &Runtime) -> Option<u64> {
        let generation = SecureStore::open_locator(&runtime.store_path)
            .and_then(|s| s.summary())
            .ok()?
            .master_key
            .generation;
        self.set_key_generation(generation)
    }
}

/// The last successful backup in `history`, and the failures.
fn fill(state: &mut DestinationState, history: &History) {
    if let Some(last) = history.newest_successful_backup() {
        state.last_success = Some(if last.finished.is_empty() {
            last.started.clone()
        } else {
            last.finished.clone()
        });
        state.last_backup_id = Some(last.id.clone());
        state.last_key_generation = last.key_generation;
        state.last_size = last.backup_size;
    }
    state.failures = history
        .entries
        .iter()
        .filter(|e| e.kind == JobKind::Backup && e.status == JobStatus::Failed)
        .count() as u64;
}

/// Every destination the configuration names, as written: `[backup] directory` and targets,
/// and each schedule's.
pub fn configured_destinations(config: &Config) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut add = |name: &str| {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    };
    if let Some(dir) = &config.backup.directory {
        add(dir);
    }
    for t in &config.backup.targets {
        add(t);
    }
    for s in &config.schedules {
        if let Some(dir) = s
            .directory
            .as_deref()
            .or(config.backup.directory.as_deref())
        {
            add(dir);
        }
        for t in &s.targets {
            add(t);
        }
    }
    names
}

/// Keeps the cache fresh: the key generation every `key_every`, histories every `every`.
pub fn spawn_refresher(
    readiness: Arc<Readiness>,
    runtime: Arc<Runtime>,
    key_every: Duration,
    on_key_change: impl Fn(u64, u64) + Send + Sync + 'static,
) {
    tokio::spawn(async move {
        let mut histories = tokio::time::interval(Duration::from_secs(300));
        let mut keys = tokio::time::interval(key_every);
        loop {
            tokio::select! {
                _ = histories.tick() => readiness.refresh(&runtime).await,
                _ = keys.tick() => {
                    if let Some(previous) = readiness.check_key(&runtime)
                        && let Some(current) = readiness.key_generation()
                    {
                        on_key_change(previous, current);
                    }
                }
            }
        }
    });
}
