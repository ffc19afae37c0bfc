//! Perform a Backup, as Central Administration's two steps: select the component (the Secure
//! Store item with its Master Key, as `backup --show-tree`), then the backup options (Backup
//! Type, Backup File Location and/or configured targets). "Check readiness" runs the
//! preflight for exactly these choices; Start Backup runs it too, and starts nothing when a
//! location is refused or a check fails, saying so beside the field concerned.

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use sstore_core::backup::{
    CheckStatus, ITEM_NAME, PreflightRequest, StoreTree, preflight, preflight::ready,
};
use sstore_core::config::{self, Config};
use sstore_core::locations;
use sstore_core::target::location::{self, Location};

use super::{Console, Layout, PageError, Visitor, html, ok, see_job};
use crate::auth::Action;
use crate::jobs::{JobKind, JobRequest};

const STEP1: &str = "Perform a Backup - Step 1 of 2: Select Component to Back Up";
const STEP2: &str = "Perform a Backup - Step 2 of 2: Select Backup Options";

/// What a backup holds, for the tree.
struct Tree {
    item: &'static str,
    store_id: String,
    store_path: String,
    generation: u64,
    key_id: String,
    applications: u64,
    credential_sets: u64,
}

#[derive(Template)]
#[template(path = "backup_step1.html")]
struct Step1 {
    layout: Layout,
    tree: Option<Tree>,
    error: String,
    can_backup: bool,
    role: String,
}

/// `GET /backup`: step 1.
pub async fn step1(State(state): State<Console>, visitor: Visitor) -> Response {
    let store_path = state.app.jobs.runtime().store_path.clone();
    let read = tokio::task::spawn_blocking(move || StoreTree::read(&store_path))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    let (tree, error) = match read {
        Ok(t) => (
            Some(Tree {
                item: ITEM_NAME,
                store_id: t.summary.store_id,
                store_path: t.store_path.display().to_string(),
                generation: t.summary.master_key.generation,
                key_id: t.summary.master_key.key_id,
                applications: t.summary.applications,
                credential_sets: t.summary.credential_sets,
            }),
            String::new(),
        ),
        Err(e) => (None, format!("The Secure Store cannot be read: {e}")),
    };
    ok(&Step1 {
        layout: visitor.layout(STEP1),
        tree,
        error,
        can_backup: visitor.may(Action::RunBackup),
        role: visitor.role().to_string(),
    })
}

/// A configured target offered as a checkbox.
struct TargetChoice {
    name: String,
    id: String,
    kind: String,
    checked: bool,
}

/// One preflight check on the page.
struct CheckRow {
    check: String,
    status: &'static str,
    class: &'static str,
    detail: String,
}

#[derive(Template)]
#[template(path = "backup_step2.html")]
struct Step2 {
    layout: Layout,
    component: String,
    location: String,
    location_error: String,
    targets: Vec<TargetChoice>,
    targets_error: String,
    staging: String,
    general_error: String,
    checks: Vec<CheckRow>,
    checked: bool,
    ready: bool,
    can_backup: bool,
    role: String,
    csrf: String,
}

impl Step2 {
    fn new(visitor: &Visitor, config: &Config) -> Self {
        Self {
            layout: visitor.layout(STEP2),
            component: ITEM_NAME.to_owned(),
            location: config.backup.directory.clone().unwrap_or_default(),
            location_error: String::new(),
            targets: target_choices(config, &config.backup.targets),
            targets_error: String::new(),
            staging: staging_text(config),
            general_error: String::new(),
            checks: Vec::new(),
            checked: false,
            ready: false,
            can_backup: visitor.may(Action::RunBackup),
            role: visitor.role().to_string(),
            csrf: visitor.csrf.clone(),
        }
    }

    fn has_errors(&self) -> bool {
        !self.location_error.is_empty()
            || !self.targets_error.is_empty()
            || !self.general_error.is_empty()
    }
}

/// The configured targets (`[[target]]`, and `[backup] targets` written as locations), with
/// `checked` ticked.
fn target_choices(config: &Config, checked: &[String]) -> Vec<TargetChoice> {
    let mut choices: Vec<TargetChoice> = config
        .named_targets
        .iter()
        .map(|t| (t.name.clone(), t.kind.clone()))
        .chain(
            config
                .backup
                .targets
                .iter()
                .filter(|t| config.target(t).is_none())
                .map(|t| (t.clone(), "location".to_owned())),
        )
        .map(|(name, kind)| TargetChoice {
            id: format!(
                "target-{}",
                super::view::url_encode(&name).replace('%', "_")
            ),
            checked: checked.contains(&name),
            name,
            kind,
        })
        .collect();
    choices.dedup_by(|a, b| a.name == b.name);
    choices
}

fn staging_text(config: &Config) -> String {
    let base = config
        .backup
        .staging
        .clone()
        .unwrap_or_else(config::default_staging_path);
    format!(
        "{} (a location on a local disk stages beside its backups instead)",
        base.display()
    )
}

#[derive(Deserialize)]
pub struct Step2Query {
    #[serde(default)]
    component: Option<String>,
}

/// `GET /backup/options`: step 2, for the component chosen in step 1.
pub async fn step2(
    State(state): State<Console>,
    visitor: Visitor,
    query: Result<Query<Step2Query>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let component = query.ok().and_then(|Query(q)| q.component);
    check_component(component.as_deref(), &visitor)?;
    let config = &state.app.jobs.runtime().config;
    Ok(ok(&Step2::new(&visitor, config)))
}

fn check_component(component: Option<&str>, visitor: &Visitor) -> Result<(), PageError> {
    match component {
        None | Some(ITEM_NAME) => Ok(()),
        Some(other) => Err(PageError::new(
            StatusCode::BAD_REQUEST,
            "Unknown component",
            format!("There is no component {other:?} to back up; choose {ITEM_NAME} in step 1."),
        )
        .with_layout(visitor)),
    }
}

/// The posted step 2 (targets are repeated fields, so the body is read as pairs).
#[derive(Default)]
struct Step2Form {
    csrf_token: String,
    component: Option<String>,
    method: String,
    location: String,
    targets: Vec<String>,
    action: String,
}

impl Step2Form {
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut form = Self::default();
        for (key, value) in pairs {
            match key.as_str() {
                "csrf_token" => form.csrf_token = value,
                "component" => form.component = Some(value),
                "method" => form.method = value,
                "location" => form.location = value.trim().to_owned(),
                "targets" if !value.is_empty() && !form.targets.contains(&value) => {
                    form.targets.push(value);
                }
                "action" => form.action = value,
                _ => {}
            }
        }
        form
    }
}

/// `POST /backup/options`: "Check readiness" or "Start Backup".
pub async fn submit(
    State(state): State<Console>,
    visitor: Visitor,
    body: Result<axum::Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, PageError> {
    let form = Step2Form::from_pairs(super::form(body, &visitor)?);
    visitor.check_form(&state, &form.csrf_token)?;
    visitor.require(&state, Action::RunBackup)?;
    check_component(form.component.as_deref(), &visitor)?;
    let runtime = state.app.jobs.runtime().clone();
    let config = &runtime.config;
    let mut page = Step2::new(&visitor, config);
    page.location = form.location.clone();
    page.targets = target_choices(config, &form.targets);

    if !form.method.is_empty() && form.method != "full" {
        page.general_error = format!(
            "Backup Type {:?}: only Full exists (every backup holds the whole store).",
            form.method
        );
    }
    // The request: the typed location first, then the targets ticked; without a typed
    // location, the first target ticked is the backup directory.
    let mut names: Vec<String> = Vec::new();
    if !form.location.is_empty() {
        names.push(form.location.clone());
    }
    for target in &form.targets {
        if !names.contains(target) {
            names.push(target.clone());
        }
    }
    if names.is_empty() {
        page.location_error =
            "Type a Backup File Location, or choose a configured target below.".into();
    }
    if !form.location.is_empty()
        && let Err(why) = check_location(&runtime, &form.location)
    {
        page.location_error = why;
    }
    for target in &form.targets {
        if config.target(target).is_none() && !config.backup.targets.contains(target) {
            page.targets_error = format!("{target} is not a configured target.");
        }
    }
    if page.has_errors() {
        return Ok(html(StatusCode::BAD_REQUEST, &page));
    }
    let (directory, targets) = match names.split_first() {
        Some((first, rest)) => (first.clone(), rest.to_vec()),
        None => return Ok(html(StatusCode::BAD_REQUEST, &page)),
    };
    let request = JobRequest {
        kind: Some(JobKind::Backup),
        directory: Some(directory.clone()),
        targets: targets.clone(),
        method: Some("full".into()),
        ..JobRequest::default()
    };
    if let Err(e) = request.validate(config) {
        page.general_error = e.message;
        return Ok(html(StatusCode::BAD_REQUEST, &page));
    }

    // The preflight, for exactly these destinations (as the job will open them).
    let opened =
        locations::destinations(&runtime.registry, config, Some(&directory), &targets, None).await;
    let (staging, destinations) = match opened {
        Ok(found) => found,
        Err(e) => {
            let message = e.to_string();
            if form.location.is_empty() {
                page.targets_error = message;
            } else {
                page.location_error = message;
            }
            return Ok(html(StatusCode::BAD_REQUEST, &page));
        }
    };
    page.staging = staging.display().to_string();
    let checks = preflight(PreflightRequest {
        store_path: &runtime.store_path,
        keys: runtime.backup_keys(None),
        staging: &staging,
        destinations: &destinations,
        force: false,
        readiness_timeout: config.readiness_timeout(),
    })
    .await;
    page.checked = true;
    page.ready = ready(&checks);
    for check in &checks {
        if check.status != CheckStatus::Failed {
            continue;
        }
        match check.check.strip_prefix("target ") {
            Some(name) if name == form.location => {
                page.location_error = format!("Not ready: {}", check.detail);
            }
            Some(name) => {
                page.targets_error = format!("{name} is not ready: {}", check.detail);
            }
            None => {
                page.general_error = format!("{} check failed: {}", check.check, check.detail);
            }
        }
    }
    page.checks = checks
        .into_iter()
        .map(|c| {
            let (status, class) = match c.status {
                CheckStatus::Ok => ("ok", "status-ok"),
                CheckStatus::Warning => ("warning", "status-warning"),
                CheckStatus::Failed => ("FAIL", "status-failed"),
            };
            CheckRow {
                check: c.check,
                status,
                class,
                detail: c.detail,
            }
        })
        .collect();
    if form.action != "start" {
        return Ok(ok(&page));
    }
    if !page.ready {
        page.general_error = format!(
            "Nothing was started: {}",
            if page.general_error.is_empty() {
                "a readiness check failed (see below)".to_owned()
            } else {
                page.general_error.clone()
            }
        );
        return Ok(html(StatusCode::CONFLICT, &page));
    }
    match state.app.jobs.submit(request, &visitor.operator.name).await {
        Ok(job) => {
            visitor.audit_started(&state, &job);
            Ok(see_job(&job.id))
        }
        Err(e) => {
            page.general_error = format!("Nothing was started: {}", e.message);
            Ok(html(e.status, &page))
        }
    }
}

/// Refuses a typed location the service cannot or may not use: an unknown scheme, a
/// malformed path, a place outside `[serve] allowed_paths`.
fn check_location(runtime: &crate::jobs::Runtime, text: &str) -> Result<(), String> {
    let config = &runtime.config;
    if config.target(text).is_none() {
        match location::parse(text) {
            Ok(Location::Url { scheme, .. }) if scheme != "file" => {
                if runtime.registry.kind_for_scheme(&scheme).is_none() {
                    let mut known = runtime.registry.schemes();
                    known.sort_unstable();
                    return Err(format!(
                        "Unknown scheme {scheme}://: this service serves {}, a folder, a UNC path (\\\\server\\share\\folder) or a configured target's name.",
                        known
                            .iter()
                            .map(|s| format!("{s}://"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    crate::jobs::request::allowed_location(config, text).map_err(|e| e.message)
}
