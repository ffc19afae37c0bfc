//! The home page: the Backup and Restore section, and a banner for what needs attention (a
//! Master Key changed since the last successful backup, a stale destination, missing keys).

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::{Console, Layout, Visitor, ok, view};

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    layout: Layout,
    banner: Vec<String>,
    banner_bad: bool,
    store_path: String,
    key_generation: String,
    active: usize,
    started: String,
    version: &'static str,
}

pub async fn page(State(state): State<Console>, visitor: Visitor) -> Response {
    let status = state.app.status();
    ok(&HomePage {
        layout: visitor.layout("Home"),
        banner_bad: !status.ready,
        banner: status.warnings,
        store_path: status.store.path,
        key_generation: status.store.key_generation.map_or_else(
            || "unknown (the store did not open)".to_owned(),
            |g| g.to_string(),
        ),
        active: state.app.jobs.active(),
        started: view::time(&status.started),
        version: status.version,
    })
}
