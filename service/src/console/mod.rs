//! The web console: Central Administration's Backup and Restore pages, served by the service
//! at its root URL. Server-rendered HTML (askama templates in `service/templates/`, checked at
//! compile time), one embedded stylesheet and one small script (for the live parts only: the
//! current job's progress from the event stream); every page works without JavaScript.
//!
//! Pages need a browser session (the same operators, sessions and audit log as the API); a
//! visitor without one is sent to `/login`. Every state-changing form carries the session's
//! CSRF token in a hidden field and is checked here, with the request's Origin, before
//! anything happens. No page ever shows a passphrase, key, credential value or secret setting.
//!
//! - [`login`]: sign in and out; [`home`]: the Backup and Restore section;
//! - [`backup`]: Perform a Backup, steps 1 and 2 (with the preflight);
//! - [`jobs`]: Backup and Restore Job Status, a job's log, cancel;
//! - [`history`], [`restore`], [`schedules`], [`targets`];
//! - [`probes`]: the destinations' reachability, cached; [`view`]: formatting for pages.

mod backup;
mod history;
mod home;
mod jobs;
mod login;
mod probes;
mod restore;
mod schedules;
mod targets;
#[cfg(test)]
mod tests;
mod view;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};

use crate::api::Shared;
use crate::api::auth::expected_origin;
use crate::auth::audit::Refusal;
use crate::auth::cookie::session_id_from_cookies;
use crate::auth::{AccessError, Action, Operator, RequestInfo, Role, Who};

/// The largest form the console reads.
const MAX_FORM: usize = 64 * 1024;

/// The console's state: the service's, and the destinations' reachability cache.
#[derive(Clone)]
pub struct Console {
    pub app: Shared,
    probes: Arc<probes::Probes>,
}

/// The console's routes (merged with the API's by [`crate::routes`]). A path that is neither
/// a page nor an API route gets an HTML 404, or the API's JSON 404 under `/api/`.
pub fn router(state: Shared) -> Router {
    let console = Console {
        app: state,
        probes: Arc::new(probes::Probes::default()),
    };
    Router::new()
        .route("/", get(home::page))
        .route("/login", get(login::page).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/backup", get(backup::step1))
        .route("/backup/options", get(backup::step2).post(backup::submit))
        .route("/jobs", get(jobs::status))
        .route("/jobs/{id}", get(jobs::status_of))
        .route("/jobs/{id}/log", get(jobs::log))
        .route("/jobs/{id}/cancel", post(jobs::cancel))
        .route("/history", get(history::page))
        .route("/history/verify", post(history::verify))
        .route("/history/prune", post(history::prune))
        .route("/restore", get(restore::page).post(restore::submit))
        .route("/schedules", get(schedules::page))
        .route("/schedules/{name}/run", post(schedules::run))
        .route("/targets", get(targets::page))
        .route("/targets/{name}/test", post(targets::test))
        .route("/assets/console.css", get(stylesheet))
        .route("/assets/console.js", get(script))
        .route("/{*rest}", any(not_found))
        .layer(DefaultBodyLimit::max(MAX_FORM))
        .with_state(console)
}

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// Anything else: the API's JSON 404 under `/api/`, else a page.
async fn not_found(uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        return crate::api::auth::not_found(uri).await.into_response();
    }
    PageError::new(
        StatusCode::NOT_FOUND,
        "Not found",
        format!("There is no page {}.", uri.path()),
    )
    .into_response()
}

/// The operator line every page shows, and the logout form's token.
pub struct Signed {
    pub name: String,
    pub role: String,
    pub csrf: String,
}

/// What the base template needs.
pub struct Layout {
    pub title: String,
    pub signed: Option<Signed>,
    /// `<meta http-equiv="refresh">` content, when the page refreshes itself.
    pub refresh: Option<String>,
}

/// A signed-in visitor of a page: the operator as the operators file says now, the session,
/// and what a form's CSRF check needs.
pub struct Visitor {
    pub operator: Operator,
    session: String,
    pub csrf: String,
    pub ip: Option<IpAddr>,
    request: RequestInfo,
    expected_origin: String,
    origin: Option<String>,
}

impl FromRequestParts<Console> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Console) -> Result<Self, Response> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip());
        let route = parts
            .extensions
            .get::<axum::extract::MatchedPath>()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
        let request = RequestInfo::new(parts.method.as_str(), &route, ip);
        let auth = &state.app.auth;
        let cookies = header_text(&parts.headers, header::COOKIE).unwrap_or_default();
        let found = session_id_from_cookies(cookies, state.app.tls).and_then(|id| {
            auth.session(id)
                .map(|(_, operator)| (id.to_owned(), operator))
        });
        let Some((session, operator)) = found else {
            if parts.method != Method::GET && parts.method != Method::HEAD {
                auth.refuse_unauthenticated(Refusal::Unauthenticated, &request);
            }
            // The API answers 401; a page sends the browser to the login page, and back here
            // after it (for a page read; a form posted without a session starts over).
            let next = if parts.method == Method::GET {
                parts
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_owned()
            } else {
                "/".to_owned()
            };
            let target = if next == "/" {
                "/login".to_owned()
            } else {
                format!("/login?next={}", view::url_encode(&next))
            };
            return Err(Redirect::to(&target).into_response());
        };
        Ok(Visitor {
            csrf: auth.sessions.csrf_token(&session),
            operator,
            session,
            ip,
            request,
            expected_origin: expected_origin(&parts.headers, state.app.tls),
            origin: header_text(&parts.headers, header::ORIGIN)
                .or_else(|| header_text(&parts.headers, header::REFERER))
                .map(str::to_owned),
        })
    }
}

impl Visitor {
    pub fn role(&self) -> Role {
        self.operator.role
    }

    pub fn may(&self, action: Action) -> bool {
        self.operator.role.allows(action)
    }

    /// The base template's data for a page titled `title`.
    pub fn layout(&self, title: impl Into<String>) -> Layout {
        Layout {
            title: title.into(),
            signed: Some(Signed {
                name: self.operator.name.clone(),
                role: self.operator.role.to_string(),
                csrf: self.csrf.clone(),
            }),
            refresh: None,
        }
    }

    /// Checks a posted form: its CSRF token (the hidden `csrf_token` field) must be this
    /// session's, and the request must come from this origin. A refusal is audited and
    /// nothing else happens.
    pub fn check_form(&self, state: &Console, token: &str) -> Result<(), PageError> {
        state
            .app
            .auth
            .check_browser_write(
                &self.session,
                &self.operator,
                Some(token).filter(|t| !t.is_empty()),
                self.origin.as_deref(),
                &self.expected_origin,
                &self.request,
            )
            .map_err(|e| self.refused(e))
    }

    /// Refuses (audited) what the role does not allow.
    pub fn require(&self, state: &Console, action: Action) -> Result<(), PageError> {
        state
            .app
            .auth
            .authorize(&self.operator, action, &self.request)
            .map_err(|e| self.refused(e))
    }

    fn refused(&self, error: AccessError) -> PageError {
        let message = match error {
            AccessError::Csrf => "The form was refused: it did not carry this session's security token (CSRF). Nothing was changed; open the page again and repeat.".to_owned(),
            AccessError::Origin => "The form was refused: it was not sent from this console's own pages. Nothing was changed.".to_owned(),
            AccessError::Forbidden { role } => format!(
                "Your role ({role}) may not do this. Nothing was changed."
            ),
            AccessError::Unauthenticated => "Sign in first.".to_owned(),
        };
        PageError::new(StatusCode::FORBIDDEN, "Refused", message).with_layout(self)
    }

    /// Records that this operator started `job`.
    pub fn audit_started(&self, state: &Console, job: &crate::jobs::JobView) {
        state.app.auth.job_started(
            Who::operator(&self.operator),
            self.ip,
            &job.id,
            &job.kind.to_string(),
        );
    }
}

/// The client's address, when the server knows it.
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(address)| address.ip()),
        ))
    }
}

fn header_text(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A page that could not be shown, or a refused form: an HTML page with its status.
pub struct PageError {
    status: StatusCode,
    title: String,
    message: String,
    signed: Option<Box<Signed>>,
}

impl PageError {
    pub fn new(status: StatusCode, title: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            title: title.into(),
            message: message.into(),
            signed: None,
        }
    }

    pub fn with_layout(mut self, visitor: &Visitor) -> Self {
        self.signed = visitor.layout("").signed.map(Box::new);
        self
    }

    /// A service error (a job refused, a location not allowed) as a page.
    pub fn from_api(error: crate::error::ApiError, visitor: &Visitor) -> Self {
        Self::new(error.status, "Refused", error.message).with_layout(visitor)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            layout: Layout {
                title: self.title,
                signed: self.signed.map(|s| *s),
                refresh: None,
            },
            message: self.message,
        };
        html(self.status, &page)
    }
}

/// A rendered page, with the headers every page carries: no caching (pages show live state
/// and a CSRF token), no framing, scripts and styles only from this service.
pub fn html(status: StatusCode, page: &impl Template) -> Response {
    let body = match page.render() {
        Ok(body) => body,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the page could not be rendered: {e}"),
            )
                .into_response();
        }
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// `200` with a page.
pub fn ok(page: &impl Template) -> Response {
    html(StatusCode::OK, page)
}

/// After a form that started something: the browser goes to the job's status (303, so a
/// reload does not post again).
pub fn see_job(id: &str) -> Response {
    Redirect::to(&format!("/jobs/{}", view::url_encode(id))).into_response()
}

/// A form body, or a page saying why it could not be read.
pub fn form<T>(
    body: Result<axum::Form<T>, FormRejection>,
    visitor: &Visitor,
) -> Result<T, PageError> {
    body.map(|axum::Form(value)| value).map_err(|e| {
        PageError::new(StatusCode::BAD_REQUEST, "Bad form", e.body_text()).with_layout(visitor)
    })
}

/// The console's state, from a handler's `State`.
pub type ConsoleState = State<Console>;
