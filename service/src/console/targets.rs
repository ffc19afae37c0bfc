//! Targets: every configured target with its kind, location (never a secret: the target's own
//! description, or its URL without credentials) and readiness; "Test" runs the conformance
//! kit's quick checks against it (small objects, under a fresh prefix it removes).

use std::time::Duration;

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use sstore_conformance::{KitOptions, Outcome};
use sstore_core::locations;

use super::{Console, Layout, PageError, Visitor, html, ok, view};
use crate::auth::Action;

/// How long the readiness probes may hold the page.
const PROBE_WAIT: Duration = Duration::from_secs(5);
/// The longest a test may run.
const TEST_LIMIT: Duration = Duration::from_secs(300);

pub struct TargetRow {
    name: String,
    name_path: String,
    kind: String,
    location: String,
    reachable: String,
    writable: String,
    free: String,
    detail: String,
    failure: String,
}

pub struct KitRow {
    name: String,
    result: &'static str,
    class: &'static str,
    message: String,
    seconds: String,
}

pub struct KitReport {
    target: String,
    location: String,
    passed: bool,
    counts: String,
    rows: Vec<KitRow>,
}

#[derive(Template)]
#[template(path = "targets.html")]
struct TargetsPage {
    layout: Layout,
    rows: Vec<TargetRow>,
    report: Option<KitReport>,
    can_test: bool,
    csrf: String,
}

async fn render(state: &Console, visitor: &Visitor, report: Option<KitReport>) -> TargetsPage {
    let runtime = state.app.jobs.runtime();
    let names: Vec<String> = runtime
        .config
        .named_targets
        .iter()
        .map(|t| t.name.clone())
        .collect();
    let probes = state.probes.get(runtime, &names, PROBE_WAIT).await;
    let rows = runtime
        .config
        .named_targets
        .iter()
        .map(|t| {
            let probe = probes.get(&t.name);
            let location = probe
                .and_then(|p| p.location.clone())
                .or_else(|| t.url.as_deref().map(view::redact_url))
                .unwrap_or_default();
            let (reachable, writable, free, detail, failure) = match probe.map(|p| &p.result) {
                None => (
                    "checking…".to_owned(),
                    "checking…".to_owned(),
                    String::new(),
                    String::new(),
                    String::new(),
                ),
                Some(Ok(r)) => (
                    "yes".to_owned(),
                    if r.writable { "yes" } else { "no" }.to_owned(),
                    r.free_bytes
                        .map(view::bytes)
                        .unwrap_or_else(|| "unknown".into()),
                    r.detail.clone().unwrap_or_default(),
                    String::new(),
                ),
                Some(Err(e)) => (
                    "no".to_owned(),
                    "no".to_owned(),
                    String::new(),
                    String::new(),
                    e.clone(),
                ),
            };
            TargetRow {
                name: t.name.clone(),
                name_path: view::url_encode(&t.name),
                kind: t.kind.clone(),
                location,
                reachable,
                writable,
                free,
                detail,
                failure,
            }
        })
        .collect();
    TargetsPage {
        layout: visitor.layout("Targets"),
        rows,
        report,
        can_test: visitor.may(Action::RunBackup),
        csrf: visitor.csrf.clone(),
    }
}

pub async fn page(State(state): State<Console>, visitor: Visitor) -> Response {
    ok(&render(&state, &visitor, None).await)
}

#[derive(Deserialize)]
pub struct TestForm {
    #[serde(default)]
    csrf_token: String,
}

/// `POST /targets/{name}/test`: the conformance kit's quick checks, shown on the page. It
/// writes (small objects, removed after), so it needs a role that may back up.
pub async fn test(
    State(state): State<Console>,
    visitor: Visitor,
    Path(name): Path<String>,
    body: Result<axum::Form<TestForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = super::form(body, &visitor)?;
    visitor.check_form(&state, &form.csrf_token)?;
    visitor.require(&state, Action::RunBackup)?;
    let runtime = state.app.jobs.runtime();
    let Some(named) = runtime.config.target(&name) else {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            "No such target",
            format!("No target named {name} is configured."),
        )
        .with_layout(&visitor));
    };
    let target = locations::open_named(&runtime.registry, named)
        .await
        .map_err(|e| {
            PageError::new(
                StatusCode::BAD_GATEWAY,
                "Target not opened",
                format!("{name} cannot be opened: {e}"),
            )
            .with_layout(&visitor)
        })?;
    let location = target.location();
    let options = quick_options(runtime.config.readiness_timeout());
    let report = tokio::time::timeout(TEST_LIMIT, sstore_conformance::run(target, &options))
        .await
        .map_err(|_| {
            PageError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "Test stopped",
                format!(
                    "The test of {name} did not finish within {} s.",
                    TEST_LIMIT.as_secs()
                ),
            )
            .with_layout(&visitor)
        })?;
    state.probes.forget(&name);
    let (passed, failed, skipped) = report.counts();
    let kit = KitReport {
        target: name,
        location,
        passed: report.passed(),
        counts: format!("{passed} passed, {failed} failed, {skipped} skipped"),
        rows: report
            .checks
            .iter()
            .map(|c| {
                let (result, class, message) = match &c.result {
                    Outcome::Passed => ("passed", "status-ok", c.note.clone().unwrap_or_default()),
                    Outcome::Failed(m) => ("FAILED", "status-failed", m.clone()),
                    Outcome::Skipped(m) => ("skipped", "muted", m.clone()),
                };
                KitRow {
                    name: c.name.to_owned(),
                    result,
                    class,
                    message,
                    seconds: format!("{:.2}", c.elapsed.as_secs_f64()),
                }
            })
            .collect(),
    };
    let status = if kit.passed {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok(html(status, &render(&state, &visitor, Some(kit)).await))
}

/// The kit's quick checks: every check, with small objects and few keys.
fn quick_options(readiness: Duration) -> KitOptions {
    KitOptions {
        large_object_bytes: 4 * 1024 * 1024,
        many_keys: 40,
        concurrency: 4,
        readiness_deadline: readiness,
        check_timeout: Duration::from_secs(60),
        ..KitOptions::default()
    }
}
