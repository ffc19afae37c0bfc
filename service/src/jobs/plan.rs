//! Turning a request into what the engine runs: the destinations opened (through the
//! registry), the keys chosen from what the service holds, the locations the job needs to
//! itself. Everything that can be refused is refused here, before the job is queued.

use std::path::PathBuf;

use sstore_core::backup::{
    BackupDirectory, BackupKeys, Destination, OpenKeys, PruneRules, RestoreMethod, RestoreRequest,
    Selection,
};
use sstore_core::config::Config;
use sstore_core::locations;
use sstore_core::recipient::Recipient;
use sstore_core::target::Registry;

use super::request::{self, JobKind, JobRequest};
use super::view;
use crate::error::ApiError;
use crate::secrets::Secrets;

/// What every job runs with.
pub struct Runtime {
    pub config: Config,
    pub registry: Registry,
    pub store_path: PathBuf,
    pub secrets: Secrets,
    /// The service's own folder (jobs, certificate, audit log).
    pub state_dir: PathBuf,
}

impl Runtime {
    /// The keys a new backup is written with: `recipients` (else `[backup] recipients`), a
    /// passphrase slot when the service holds a backup passphrase; without either, the store
    /// passphrase. Says exactly what is missing when the service has nothing to write with.
    pub fn backup_keys(&self, recipients: Option<&[String]>) -> Result<BackupKeys, String> {
        let recipients: Vec<Recipient> = match recipients {
            Some(list) => list
                .iter()
                .map(|r| r.parse().map_err(|e| format!("recipient {r}: {e}")))
                .collect::<Result<_, _>>()?,
            None => self.config.recipients(),
        };
        let backup = self.secrets.backup_passphrase.clone();
        match (backup, recipients.is_empty(), &self.secrets.store_passphrase) {
            (Some(passphrase), _, _) => Ok(BackupKeys {
                passphrase: Some(passphrase),
                passphrase_is_store: false,
                recipients,
            }),
            (None, false, _) => Ok(BackupKeys {
                passphrase: None,
                passphrase_is_store: false,
                recipients,
            }),
            (None, true, Some(store)) => Ok(BackupKeys {
                passphrase: Some(store.clone()),
                passphrase_is_store: true,
                recipients,
            }),
            (None, true, None) => Err(
                "the service has no key to write backups with: set [backup] recipients (no secret needed), or give it a backup passphrase ([serve] backup_passphrase_file, SSTORE_BACKUP_PASSPHRASE or the systemd credential sstore-backup-passphrase)"
                    .into(),
            ),
        }
    }

    /// The keys the service opens backups with.
    pub fn open_keys(&self) -> Result<OpenKeys, String> {
        let keys = OpenKeys {
            passphrase: self
                .secrets
                .backup_passphrase
                .clone()
                .or_else(|| self.secrets.store_passphrase.clone()),
            identities: self.secrets.identities.clone(),
        };
        if keys.passphrase.is_none() && keys.identities.is_empty() {
            return Err("the service holds no key that opens backups: give it a backup passphrase, or identity files ([serve] identity_files)".into());
        }
        Ok(keys)
    }
}

/// A job, ready to run.
pub enum Plan {
    Backup {
        staging: PathBuf,
        destinations: Vec<Destination>,
        keys: Option<BackupKeys>,
        /// Only finish an interrupted job found in the staging folder.
        resume_only: bool,
        /// After a successful backup (schedules): verify it, prune by these rules.
        verify_after: bool,
        prune: Option<PruneRules>,
    },
    Verify {
        dir: BackupDirectory,
        selection: Selection,
        keys: OpenKeys,
    },
    Prune {
        dir: BackupDirectory,
        rules: PruneRules,
        dry_run: bool,
    },
    Restore {
        dir: BackupDirectory,
        request: RestoreRequest,
        keys: OpenKeys,
        /// An overwrite first backs the current store up here, so it can itself be undone;
        /// the live store is not touched unless that backup succeeds.
        backup_first: Option<BackupFirst>,
    },
}

/// The backup of the live store an overwrite takes first: to the configured `[backup]`
/// destinations, with the keys scheduled backups use.
pub struct BackupFirst {
    pub staging: PathBuf,
    pub destinations: Vec<Destination>,
    pub keys: BackupKeys,
}

/// The state a job enters when it starts.
pub fn first_state(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Backup => view::STAGING,
        _ => view::TRANSFERRING,
    }
}

impl Plan {
    pub fn kind(&self) -> JobKind {
        match self {
            Plan::Backup { .. } => JobKind::Backup,
            Plan::Verify { .. } => JobKind::Verify,
            Plan::Prune { .. } => JobKind::Prune,
            Plan::Restore { .. } => JobKind::Restore,
        }
    }

    /// What the job needs to itself: its destinations' locations and staging folder.
    pub fn locations(&self) -> Vec<String> {
        match self {
            Plan::Backup {
                staging,
                destinations,
                ..
            } => destinations
                .iter()
                .map(|d| d.dir.location())
                .chain(std::iter::once(format!("staging:{}", staging.display())))
                .collect(),
            Plan::Verify { dir, .. } | Plan::Prune { dir, .. } => vec![dir.location()],
            Plan::Restore {
                dir,
                request,
                backup_first,
                ..
            } => {
                let mut locations = vec![
                    dir.location(),
                    format!("store:{}", request.destination.display()),
                ];
                if let Some(first) = backup_first {
                    for location in
                        first
                            .destinations
                            .iter()
                            .map(|d| d.dir.location())
                            .chain(std::iter::once(format!(
                                "staging:{}",
                                first.staging.display()
                            )))
                    {
                        if !locations.contains(&location) {
                            locations.push(location);
                        }
                    }
                }
                locations
            }
        }
    }

    /// Plans `request` (already validated) for `requested_by`.
    pub async fn resolve(
        runtime: &Runtime,
        request: &JobRequest,
        requested_by: &str,
    ) -> Result<Self, ApiError> {
        Self::resolve_with_keys(runtime, request, requested_by, None).await
    }

    /// Plans `request`; a verify or restore opens backups with `keys` when given (a key an
    /// operator typed for this one job), else with the keys the service holds.
    pub async fn resolve_with_keys(
        runtime: &Runtime,
        request: &JobRequest,
        requested_by: &str,
        keys: Option<OpenKeys>,
    ) -> Result<Self, ApiError> {
        let no_keys = |m: String| ApiError::new(axum::http::StatusCode::CONFLICT, "no-keys", m);
        let open_keys = || match &keys {
            Some(keys) => Ok(keys.clone()),
            None => runtime.open_keys().map_err(no_keys),
        };
        let config = &runtime.config;
        let registry = &runtime.registry;
        let directory = request.directory.as_deref();
        let open_dir = || async {
            locations::backup_directory(registry, config, directory, None)
                .await
                .map_err(|e| ApiError::invalid(e.to_string()))
        };
        Ok(match request.kind()? {
            JobKind::Backup => {
                let (staging, destinations) =
                    locations::destinations(registry, config, directory, &request.targets, None)
                        .await
                        .map_err(|e| ApiError::invalid(e.to_string()))?;
                let keys = runtime
                    .backup_keys(request.recipients.as_deref())
                    .map_err(|m| ApiError::new(axum::http::StatusCode::CONFLICT, "no-keys", m))?;
                Plan::Backup {
                    staging,
                    destinations,
                    keys: Some(keys),
                    resume_only: false,
                    verify_after: false,
                    prune: None,
                }
            }
            JobKind::Verify => Plan::Verify {
                dir: open_dir().await?,
                selection: if request.all {
                    Selection::All
                } else {
                    Selection::id_or_newest(request.backup_id.as_deref())
                },
                keys: open_keys()?,
            },
            JobKind::Prune => Plan::Prune {
                dir: open_dir().await?,
                rules: PruneRules {
                    keep_last: request.keep_last.unwrap_or(1),
                    keep_within: request
                        .keep_within
                        .as_deref()
                        .and_then(sstore_core::backup::prune::parse_duration),
                },
                dry_run: request.dry_run,
            },
            JobKind::Restore => {
                let mut backup_first = None;
                let (method, destination) = match request.restore_method()? {
                    request::RestoreMethod::Overwrite => {
                        let (staging, destinations) =
                            locations::destinations(registry, config, None, &[], None)
                                .await
                                .map_err(|e| {
                                    ApiError::invalid(format!(
                                        "a restore over the live store first backs the current store up to the configured [backup] destinations, and they cannot be used: {e}"
                                    ))
                                })?;
                        let keys = runtime.backup_keys(None).map_err(|m| {
                            no_keys(format!(
                                "a restore over the live store first backs the current store up, and {m}"
                            ))
                        })?;
                        backup_first = Some(BackupFirst {
                            staging,
                            destinations,
                            keys,
                        });
                        (RestoreMethod::Overwrite, runtime.store_path.clone())
                    }
                    request::RestoreMethod::New => {
                        let path = request.new_store.as_deref().unwrap_or_default();
                        (
                            RestoreMethod::New,
                            request::allowed_local_path(
                                config,
                                std::path::Path::new(path),
                                "new_store",
                            )?,
                        )
                    }
                };
                Plan::Restore {
                    dir: open_dir().await?,
                    request: RestoreRequest {
                        backup_id: request.backup_id.clone(),
                        method,
                        destination,
                        // An existing file is never replaced through the service.
                        force: false,
                        store_passphrase: runtime.secrets.store_passphrase.clone(),
                        requested_by: Some(requested_by.to_owned()),
                    },
                    keys: open_keys()?,
                    backup_first,
                }
            }
        })
    }
}

/// A resume-only backup of an interrupted job, to the destinations its record names (by the
/// names its run was given), from the staging folder it was staged in.
pub async fn plan_resume(
    runtime: &Runtime,
    record: &sstore_core::backup::JobRecord,
) -> Result<(JobRequest, Plan), String> {
    let names: Vec<String> = record.copies.iter().map(|c| c.name.clone()).collect();
    let Some((directory, targets)) = names.split_first() else {
        return Err("its record names no destination".into());
    };
    let (_, destinations) = locations::destinations(
        &runtime.registry,
        &runtime.config,
        Some(directory),
        targets,
        None,
    )
    .await
    .map_err(|e| e.to_string())?;
    let staging = record
        .staging
        .parent()
        .map(std::path::Path::to_path_buf)
        .ok_or_else(|| {
            format!(
                "its staging folder {} has no parent",
                record.staging.display()
            )
        })?;
    let request = JobRequest {
        kind: Some(JobKind::Backup),
        directory: Some(directory.clone()),
        targets: targets.to_vec(),
        ..JobRequest::default()
    };
    Ok((
        request,
        Plan::Backup {
            staging,
            destinations,
            keys: None,
            resume_only: true,
            verify_after: false,
            prune: None,
        },
    ))
}
