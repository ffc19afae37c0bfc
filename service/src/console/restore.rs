//! The restore wizard: choose a directory or target, then a backup (the newest successful one
//! by default, each with its key generation and time), then the method (a new store at a path;
//! or over the live store: admin only, a typed confirmation, and the job first backs the live
//! store up so the overwrite can itself be undone), and optionally a key for this one job.
//!
//! Keys: by default the job opens the backup with what the service holds (its backup
//! passphrase, its identity files), and the page says which. A passphrase or identity typed
//! here goes into that one job's plan only (zeroized on drop): never into the job's request or
//! view (which are saved and served), never logged, never shown again. The restore decrypts
//! into a temporary file and checks it completely before it replaces anything; a failure
//! leaves the live store as it was.

use std::path::Path;

use askama::Template;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use sstore_core::backup::{JobKind as HistoryKind, JobStatus, OpenKeys};
use sstore_core::{Identity, Passphrase};
use zeroize::Zeroizing;

use super::history::{Choice, load, location_choices};
use super::{Console, Layout, PageError, Visitor, html, ok, see_job, view};
use crate::auth::Action;
use crate::jobs::{JobKind, JobRequest, Runtime};

/// What an operator types to confirm a restore over the live store.
pub const CONFIRM_WORD: &str = "OVERWRITE";

pub struct BackupChoice {
    id: String,
    radio_id: String,
    finished: String,
    key_generation: String,
    size: String,
    folder: String,
    requested_by: String,
    checked: bool,
}

#[derive(Template)]
#[template(path = "restore.html")]
struct RestorePage {
    layout: Layout,
    choices: Vec<Choice>,
    location: String,
    error: String,
    loaded: bool,
    backups: Vec<BackupChoice>,
    backup_error: String,
    overwrite: bool,
    new_store: String,
    new_store_error: String,
    confirm_error: String,
    confirm_word: &'static str,
    can_restore: bool,
    can_overwrite: bool,
    /// Shown again after a post, so its field errors are seen even when the location lists
    /// no backup (any more).
    posted: bool,
    role: String,
    store_path: String,
    service_keys: String,
    key_error: String,
    general_error: String,
    csrf: String,
}

impl RestorePage {
    fn new(visitor: &Visitor, runtime: &Runtime, location: &str) -> Self {
        Self {
            layout: visitor.layout("Restore from a backup"),
            choices: location_choices(&runtime.config, location),
            location: location.to_owned(),
            error: String::new(),
            loaded: false,
            backups: Vec::new(),
            backup_error: String::new(),
            overwrite: false,
            new_store: default_new_store(runtime),
            new_store_error: String::new(),
            confirm_error: String::new(),
            confirm_word: CONFIRM_WORD,
            can_restore: visitor.may(Action::RunRestore { overwrite: false }),
            can_overwrite: visitor.may(Action::RunRestore { overwrite: true }),
            posted: false,
            role: visitor.role().to_string(),
            store_path: runtime.store_path.display().to_string(),
            service_keys: match runtime.open_keys() {
                Ok(keys) => format!("the service's own: {}", keys.describe()),
                Err(why) => format!("none: {why}"),
            },
            key_error: String::new(),
            general_error: String::new(),
            csrf: visitor.csrf.clone(),
        }
    }

    /// Reads the location's history and lists its successful backups, `selected` (else the
    /// newest) ticked.
    async fn load_backups(&mut self, runtime: &Runtime, selected: &str) {
        if self.location.is_empty() {
            self.error = "The configuration names no backup directory or target.".into();
            return;
        }
        match load(runtime, &self.location).await {
            Ok(history) => {
                self.loaded = true;
                let mut backups: Vec<BackupChoice> = history
                    .entries
                    .iter()
                    .rev()
                    .filter(|e| e.kind == HistoryKind::Backup && e.status == JobStatus::Succeeded)
                    .map(|e| BackupChoice {
                        radio_id: format!("backup-{}", view::url_encode(&e.id).replace('%', "_")),
                        id: e.id.clone(),
                        finished: view::time(if e.finished.is_empty() {
                            &e.started
                        } else {
                            &e.finished
                        }),
                        key_generation: e
                            .key_generation
                            .map_or_else(|| "unknown".to_owned(), |g| g.to_string()),
                        size: e.backup_size.map(view::bytes).unwrap_or_default(),
                        folder: e.folder.clone(),
                        requested_by: e.requested_by.clone(),
                        checked: e.id == selected,
                    })
                    .collect();
                if !backups.iter().any(|b| b.checked)
                    && let Some(newest) = backups.first_mut()
                {
                    newest.checked = true;
                }
                self.backups = backups;
            }
            Err(e) => self.error = e,
        }
    }
}

/// `<first allowed path>/restored-<time>.db`.
fn default_new_store(runtime: &Runtime) -> String {
    let stamp = time::OffsetDateTime::now_utc()
        .format(&time::macros::format_description!(
            "[year][month][day]-[hour][minute][second]"
        ))
        .unwrap_or_default();
    runtime
        .config
        .serve
        .allowed_paths
        .first()
        .map(|p| p.join(format!("restored-{stamp}.db")).display().to_string())
        .unwrap_or_default()
}

#[derive(Deserialize)]
pub struct RestoreQuery {
    location: Option<String>,
    other: Option<String>,
    backup_id: Option<String>,
}

/// `GET /restore?location=...&backup_id=...`.
pub async fn page(
    State(state): State<Console>,
    visitor: Visitor,
    query: Result<Query<RestoreQuery>, QueryRejection>,
) -> Response {
    let runtime = state.app.jobs.runtime().clone();
    let (chosen, other, backup_id) = query.map_or((None, None, None), |Query(q)| {
        (q.location, q.other, q.backup_id)
    });
    let location = other
        .map(|o| o.trim().to_owned())
        .filter(|o| !o.is_empty())
        .or(chosen.filter(|c| !c.is_empty()))
        .or_else(|| {
            crate::readiness::configured_destinations(&runtime.config)
                .into_iter()
                .next()
        })
        .unwrap_or_default();
    let mut page = RestorePage::new(&visitor, &runtime, &location);
    page.load_backups(&runtime, backup_id.as_deref().unwrap_or_default())
        .await;
    ok(&page)
}

#[derive(Deserialize)]
pub struct RestoreForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    location: String,
    #[serde(default)]
    backup_id: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    new_store: String,
    #[serde(default)]
    confirm: String,
    /// For this job only; never shown again.
    #[serde(default)]
    passphrase: Zeroizing<String>,
    #[serde(default)]
    identity: Zeroizing<String>,
}

/// `POST /restore`: starts the restore job and follows it, or shows why it did not start.
pub async fn submit(
    State(state): State<Console>,
    visitor: Visitor,
    body: Result<axum::Form<RestoreForm>, FormRejection>,
) -> Result<Response, PageError> {
    let mut form = super::form(body, &visitor)?;
    visitor.check_form(&state, &form.csrf_token)?;
    let overwrite = form.method == "overwrite";
    visitor.require(&state, Action::RunRestore { overwrite })?;
    let runtime = state.app.jobs.runtime().clone();
    let location = Some(form.location.trim().to_owned())
        .filter(|l| !l.is_empty())
        .or_else(|| {
            crate::readiness::configured_destinations(&runtime.config)
                .into_iter()
                .next()
        })
        .unwrap_or_default();
    let mut page = RestorePage::new(&visitor, &runtime, &location);
    page.overwrite = overwrite;
    page.posted = true;
    page.new_store = form.new_store.trim().to_owned();

    if form.backup_id.is_empty() {
        page.backup_error = "Choose a backup.".into();
    }
    if overwrite {
        if form.confirm.trim() != CONFIRM_WORD {
            page.confirm_error =
                format!("Type {CONFIRM_WORD} to confirm that the live store is to be replaced.");
        }
    } else if form.method != "new" {
        page.general_error = "Choose a restore method.".into();
    } else if page.new_store.is_empty() {
        page.new_store_error = "Give the path of the new store file.".into();
    } else {
        match crate::jobs::request::allowed_local_path(
            &runtime.config,
            Path::new(&page.new_store),
            "the new store",
        ) {
            Err(e) => page.new_store_error = e.message,
            Ok(path) if path.exists() => {
                page.new_store_error = format!(
                    "{} exists already: a restore never replaces a file there; choose a new name.",
                    path.display()
                );
            }
            Ok(_) => {}
        }
    }
    // The key typed for this job, if any: moved out of the form, never copied into the page.
    let mut keys = OpenKeys::default();
    if !form.passphrase.is_empty() {
        keys.passphrase = Some(Passphrase::new(std::mem::take(&mut *form.passphrase)));
    }
    if !form.identity.trim().is_empty() {
        match form.identity.trim().parse::<Identity>() {
            Ok(identity) => keys.identities.push(identity),
            Err(e) => page.key_error = e.to_string(),
        }
    }
    let keys = (keys.passphrase.is_some() || !keys.identities.is_empty()).then_some(keys);

    let invalid = !page.backup_error.is_empty()
        || !page.confirm_error.is_empty()
        || !page.new_store_error.is_empty()
        || !page.key_error.is_empty()
        || !page.general_error.is_empty();
    if !invalid {
        let request = JobRequest {
            kind: Some(JobKind::Restore),
            directory: Some(page.location.clone()).filter(|l| !l.is_empty()),
            method: Some(if overwrite { "overwrite" } else { "new" }.into()),
            backup_id: Some(form.backup_id.clone()),
            new_store: (!overwrite).then(|| page.new_store.clone()),
            ..JobRequest::default()
        };
        match state
            .app
            .jobs
            .submit_with_keys(request, &visitor.operator.name, keys)
            .await
        {
            Ok(job) => {
                visitor.audit_started(&state, &job);
                return Ok(see_job(&job.id));
            }
            Err(e) => page.general_error = format!("Nothing was started: {}", e.message),
        }
    }
    page.load_backups(&runtime, &form.backup_id).await;
    Ok(html(StatusCode::BAD_REQUEST, &page))
}
