//! The console's pages and forms in process (the router as the server serves it, requests
//! without a network): redirects to the login, the login form, every page for every role with
//! the contract's words and no secret, CSRF and role refusals, a backup started from the
//! wizard, the restore form's checks. The browser tests (`cli/tests/console.rs`) drive the
//! same pages in Chromium against the real binary.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use sstore_core::KdfParams;
use sstore_core::Passphrase;
use sstore_core::config::Config;
use sstore_core::store::SecureStore;
use sstore_core::target::Registry;
use tower::ServiceExt;

use crate::api::{AppState, Shared};
use crate::auth::{
    AuditLog, Authenticator, LimiterConfig, LoginLimiter, OperatorStore, Role, SessionConfig,
    Sessions,
};
use crate::jobs::{JobManager, Runtime};
use crate::readiness::Readiness;
use crate::scheduler::Scheduler;
use crate::secrets::Secrets;

const HOST: &str = "127.0.0.1:7443";
const ORIGIN: &str = "http://127.0.0.1:7443";
const STORE_PASS: &str = "Store-Pass-In-Test-1";
const BACKUP_PASS: &str = "Backup-Pass-In-Test-2";
const PASSWORD: &str = "Operator-Pass-In-Test-3";

struct Fixture {
    dir: tempfile::TempDir,
    state: Shared,
    app: Router,
}

/// A signed-in browser: its cookie and CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

fn fixture() -> Fixture {
    // Keeps the local kind linked, so the registry opens folders.
    let _ = sstore_target_local::kind();
    let dir = tempfile::tempdir().unwrap();
    let path = |p: &str| dir.path().join(p);
    let text = format!(
        "[backup]\ndirectory = {:?}\n[serve]\nstate = {:?}\nallowed_paths = [{:?}, {:?}]\n",
        path("backups"),
        path("service"),
        path("restores"),
        path("typed"),
    );
    let config = Config::parse(&text, &path("config.toml")).unwrap();
    let store_path = path("store.db");
    SecureStore::create(
        &store_path,
        &Passphrase::new(STORE_PASS),
        KdfParams::MINIMUM,
    )
    .unwrap();
    let runtime = Arc::new(Runtime {
        config,
        registry: Registry::builtin(),
        store_path,
        secrets: Secrets {
            store_passphrase: Some(Passphrase::new(STORE_PASS)),
            backup_passphrase: Some(Passphrase::new(BACKUP_PASS)),
            identities: Vec::new(),
        },
        state_dir: path("service"),
    });
    let operators = OperatorStore::open(path("operators.json")).unwrap();
    for (name, role) in [
        ("ada", Role::Admin),
        ("otto", Role::Operator),
        ("vera", Role::Viewer),
    ] {
        operators.add(name, role, PASSWORD).unwrap();
    }
    let jobs = JobManager::new(runtime);
    let state = Arc::new(AppState {
        scheduler: Scheduler::new(jobs.clone()),
        jobs,
        readiness: Arc::new(Readiness::default()),
        auth: Arc::new(Authenticator {
            operators,
            sessions: Sessions::new(SessionConfig::default()),
            limiter: LoginLimiter::new(LimiterConfig::default()),
            audit: Some(AuditLog::open(path("audit.log")).unwrap()),
        }),
        tls: false,
        started: Instant::now(),
        started_at: sstore_core::backup::now_rfc3339(),
    });
    Fixture {
        app: crate::routes(state.clone()),
        state,
        dir,
    }
}

impl Fixture {
    fn browser(&self, operator: &str) -> Browser {
        let changed = self
            .state
            .auth
            .operators
            .get(operator)
            .ok()
            .flatten()
            .map_or(0, |o| o.password_changed.unix_timestamp());
        let session = self.state.auth.sessions.create(operator, changed);
        Browser {
            cookie: format!("sstore_session={}", *session.id),
            csrf: session.csrf_token,
        }
    }

    async fn send(&self, request: Request<Body>) -> Page {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 4 << 20)
            .await
            .unwrap();
        Page {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&self, path: &str, browser: Option<&Browser>) -> Page {
        let mut request = Request::get(path).header(header::HOST, HOST);
        if let Some(b) = browser {
            request = request.header(header::COOKIE, &b.cookie);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    async fn post(&self, path: &str, browser: Option<&Browser>, form: &str) -> Page {
        let mut request = Request::post(path)
            .header(header::HOST, HOST)
            .header(header::ORIGIN, ORIGIN)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(b) = browser {
            request = request.header(header::COOKIE, &b.cookie);
        }
        self.send(request.body(Body::from(form.to_owned())).unwrap())
            .await
    }

    fn audit(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("audit.log")).unwrap_or_default()
    }
}

fn location(page: &Page) -> &str {
    page.headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn encode(text: &str) -> String {
    super::view::url_encode(text)
}

#[tokio::test]
async fn pages_lead_to_the_login_and_the_api_stays_json() {
    let f = fixture();
    let page = f.get("/", None).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&page), "/login");
    let page = f.get("/jobs/abc?refresh=10", None).await;
    assert_eq!(location(&page), "/login?next=/jobs/abc%3Frefresh%3D10");
    let page = f.get("/login", None).await;
    assert_eq!(page.status, StatusCode::OK);
    for words in [
        "<label for=\"name\">User name</label>",
        "<label for=\"password\">Password</label>",
        ">Sign in</button>",
    ] {
        assert!(page.body.contains(words), "{words}");
    }
    // The API answers 401 and JSON 404s as before; other paths get a page.
    let page = f.get("/api/v1/status", None).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    let page = f.get("/api/v1/no-such-thing", None).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body.contains("\"not-found\""), "{}", page.body);
    let otto = f.browser("otto");
    let page = f.get("/no-such-page", Some(&otto)).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body.contains("There is no page /no-such-page."));
    // Assets are embedded.
    let css = f.get("/assets/console.css", None).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(
        css.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert!(css.body.contains(":focus-visible"));
    let js = f.get("/assets/console.js", None).await;
    assert!(js.body.contains("EventSource"));
}

#[tokio::test]
async fn the_login_form_signs_in_and_refuses_a_wrong_password() {
    let f = fixture();
    let wrong = f
        .post(
            "/login",
            None,
            "name=otto&password=Wrong-Pass-In-Test-9&next=%2Fjobs",
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("Unknown user name or wrong password."));
    assert!(wrong.body.contains("value=\"otto\""));
    assert!(!wrong.body.contains("Wrong-Pass-In-Test-9"));
    let form = format!("name=otto&password={}&next=%2Fjobs", encode(PASSWORD));
    let right = f.post("/login", None, &form).await;
    assert_eq!(right.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&right), "/jobs");
    let cookie = right.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    // Elsewhere after the login: refused.
    let form = format!(
        "name=otto&password={}&next=https://evil.example/",
        encode(PASSWORD)
    );
    assert_eq!(location(&f.post("/login", None, &form).await), "/");
    // A login form posted from another site.
    let request = Request::post("/login")
        .header(header::HOST, HOST)
        .header(header::ORIGIN, "https://evil.example")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "name=otto&password={}",
            encode(PASSWORD)
        )))
        .unwrap();
    assert_eq!(f.send(request).await.status, StatusCode::FORBIDDEN);
    // Signing out needs the session's token.
    let session = cookie.split(';').next().unwrap();
    let browser = Browser {
        cookie: session.to_owned(),
        csrf: String::new(),
    };
    let refused = f.post("/logout", Some(&browser), "csrf_token=00").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(f.get("/", Some(&browser)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn every_page_shows_its_words_for_every_role_and_no_secret() {
    let f = fixture();
    let pages = [
        (
            "/",
            vec![
                "Backup and Restore",
                ">Perform a backup<",
                ">Restore from a backup<",
                ">Check backup and restore job status<",
                ">View history<",
            ],
        ),
        (
            "/backup",
            vec![
                "<h1>Perform a Backup - Step 1 of 2: Select Component to Back Up</h1>",
                "SecureStore",
                "generation 1",
            ],
        ),
        (
            "/backup/options?component=SecureStore",
            vec![
                "<h1>Perform a Backup - Step 2 of 2: Select Backup Options</h1>",
                "<legend>Backup Type</legend>",
                ">Full</label>",
                ">Backup File Location</label>",
            ],
        ),
        (
            "/jobs",
            vec![
                "<h1>Backup and Restore Job Status</h1>",
                ">Readiness</h2>",
                ">Refresh</button>",
                "<meta http-equiv=\"refresh\" content=\"30; url=/jobs?refresh=30\">",
            ],
        ),
        ("/history", vec!["<h1>History</h1>"]),
        ("/restore", vec!["<h1>Restore from a backup</h1>"]),
        ("/schedules", vec!["edited in the config file"]),
        ("/targets", vec!["<h1>Targets</h1>"]),
    ];
    let mut rendered = Vec::new();
    for (name, role) in [("ada", "admin"), ("otto", "operator"), ("vera", "viewer")] {
        let browser = f.browser(name);
        for (path, words) in &pages {
            let page = f.get(path, Some(&browser)).await;
            rendered.push((format!("{path} for {role}"), page.body.clone()));
            assert_eq!(
                page.status,
                StatusCode::OK,
                "{path} for {role}: {}",
                page.body
            );
            assert!(page.body.starts_with("<!DOCTYPE html>"), "{path}");
            assert!(
                page.body.contains(&format!(
                    "<strong data-operator=\"{name}\">{name}</strong> (<span data-role=\"{role}\">{role}</span>)"
                )),
                "{path} does not name the operator"
            );
            for word in words {
                assert!(page.body.contains(word), "{path} for {role}: no {word}");
            }
            for secret in [STORE_PASS, BACKUP_PASS, PASSWORD, &*browser.cookie] {
                assert!(!page.body.contains(secret), "{path} shows a secret");
            }
            let csp = page.headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap();
            assert!(csp.contains("script-src 'self'"), "{csp}");
            assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
            // Every state-changing form carries the token.
            let forms = page.body.matches("method=\"post\"").count();
            let tokens = page
                .body
                .matches(&format!("name=\"csrf_token\" value=\"{}\"", browser.csrf))
                .count();
            assert_eq!(forms, tokens, "{path} for {role}: a form without its token");
        }
        let step2 = f.get("/backup/options", Some(&browser)).await;
        assert_eq!(
            step2.body.contains(">Start Backup</button>"),
            role != "viewer",
            "{role}"
        );
    }
    // The refresh interval is configurable, and can be off.
    let otto = f.browser("otto");
    let page = f.get("/jobs?refresh=0", Some(&otto)).await;
    assert!(!page.body.contains("http-equiv=\"refresh\""));
    let page = f.get("/jobs?refresh=60", Some(&otto)).await;
    assert!(page.body.contains("content=\"60; url=/jobs?refresh=60\""));
    let login = f.get("/login", None).await;
    rendered.push(("/login".to_owned(), login.body));
    validate_html(&rendered);
}

#[tokio::test]
async fn forms_need_their_csrf_token_the_origin_and_a_role_that_may() {
    let f = fixture();
    let otto = f.browser("otto");
    let vera = f.browser("vera");
    let start = |csrf: &str| {
        format!(
            "csrf_token={csrf}&component=SecureStore&method=full&location={}&action=start",
            encode(&f.dir.path().join("backups").display().to_string())
        )
    };
    let page = f.post("/backup/options", Some(&otto), &start("")).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("security token (CSRF)"));
    let page = f
        .post("/backup/options", Some(&otto), &start(&"00".repeat(32)))
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    // Another origin, with the right token.
    let request = Request::post("/backup/options")
        .header(header::HOST, HOST)
        .header(header::ORIGIN, "https://evil.example")
        .header(header::COOKIE, &otto.cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(start(&otto.csrf)))
        .unwrap();
    assert_eq!(f.send(request).await.status, StatusCode::FORBIDDEN);
    // A viewer, with her own token.
    let page = f
        .post("/backup/options", Some(&vera), &start(&vera.csrf))
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("Your role (viewer) may not do this"));
    // An operator may not overwrite the live store, whatever the form says.
    let overwrite = format!(
        "csrf_token={}&location=&backup_id=x&method=overwrite&confirm=OVERWRITE",
        otto.csrf
    );
    let page = f.post("/restore", Some(&otto), &overwrite).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    // Without a session, a form leads to the login.
    let page = f.post("/backup/options", None, &start("")).await;
    assert_eq!(location(&page), "/login");
    assert!(f.state.jobs.list().is_empty(), "nothing started");
    let audit = f.audit();
    assert_eq!(audit.matches("\"reason\":\"csrf\"").count(), 2, "{audit}");
    assert_eq!(audit.matches("\"reason\":\"origin\"").count(), 1, "{audit}");
    assert_eq!(
        audit.matches("\"reason\":\"forbidden\"").count(),
        2,
        "{audit}"
    );
}

#[tokio::test]
async fn step_2_refuses_bad_locations_beside_the_field_and_starts_a_backup() {
    let f = fixture();
    let otto = f.browser("otto");
    let form = |location: &str, action: &str| {
        format!(
            "csrf_token={}&component=SecureStore&method=full&location={}&action={action}",
            otto.csrf,
            encode(location)
        )
    };
    for (location, says) in [
        ("ftp://example.invalid/x", "Unknown scheme ftp://"),
        ("/etc/elsewhere", "outside the paths the service may use"),
        ("", "Type a Backup File Location"),
    ] {
        let page = f
            .post("/backup/options", Some(&otto), &form(location, "start"))
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{location}");
        assert!(page.body.contains("id=\"location-error\""), "{location}");
        assert!(page.body.contains(says), "{location}: {}", page.body);
        assert!(page.body.contains("aria-invalid=\"true\""));
    }
    let typed = f.dir.path().join("typed/backups").display().to_string();
    let page = f
        .post("/backup/options", Some(&otto), &form(&typed, "check"))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("data-ready=\"true\""), "{}", page.body);
    assert!(
        page.body
            .contains(&format!("data-check=\"target {typed}\""))
    );
    assert!(f.state.jobs.list().is_empty(), "checking starts nothing");

    let page = f
        .post("/backup/options", Some(&otto), &form(&typed, "start"))
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let jobs = f.state.jobs.list();
    assert_eq!(jobs.len(), 1);
    assert_eq!(location(&page), format!("/jobs/{}", jobs[0].id));
    assert_eq!(jobs[0].requested_by, "otto");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f.state.jobs.view(&jobs[0].id).unwrap().is_finished() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let page = f.get(location(&page), Some(&otto)).await;
    assert!(
        page.body
            .contains(&format!("data-job-id=\"{}\"", jobs[0].id))
    );
    assert!(
        page.body.contains("data-job-state>succeeded<"),
        "{}",
        page.body
    );
    assert_eq!(page.body.matches("<progress ").count(), 1);
    let log = f
        .get(&format!("/jobs/{}/log", jobs[0].id), Some(&otto))
        .await;
    assert!(log.body.contains("[info]"), "{}", log.body);
    assert!(
        log.body
            .contains(&format!("/api/v1/jobs/{}/log?download=true", jobs[0].id))
    );
    assert!(f.audit().contains("\"job-started\""));
}

#[tokio::test]
async fn the_restore_form_checks_its_fields_and_never_shows_a_typed_key() {
    let f = fixture();
    let ada = f.browser("ada");
    let typed = "Typed-Key-In-Test-4";
    let form = |method: &str, new_store: &str, confirm: &str| {
        format!(
            "csrf_token={}&location=&backup_id=abc&method={method}&new_store={}&confirm={confirm}&passphrase={typed}",
            ada.csrf,
            encode(new_store)
        )
    };
    let page = f
        .post("/restore", Some(&ada), &form("overwrite", "", "yes"))
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("id=\"confirm-error\""), "{}", page.body);
    let page = f
        .post("/restore", Some(&ada), &form("new", "/etc/x.db", ""))
        .await;
    assert!(page.body.contains("id=\"new-store-error\""));
    assert!(page.body.contains("outside the paths the service may use"));
    let bodies = [page.body];
    let page = f.post("/restore", Some(&ada), &form("new", "", "")).await;
    assert!(page.body.contains("Give the path of the new store file."));
    for body in bodies.iter().chain([&page.body]) {
        assert!(!body.contains(typed), "the typed key is on the page");
        assert!(!body.contains(BACKUP_PASS) && !body.contains(STORE_PASS));
    }
    assert!(f.state.jobs.list().is_empty());
}

/// Checks pages with the Nu HTML Checker (vnu.jar from npm's vnu-jar, run by Java; `cargo
/// xtask ci` installs it and names it in `SSTORE_VNU_JAR`): any error fails with its messages.
/// Without the checker this says so and returns, or fails under `SSTORE_REQUIRE_SERVICES=1`.
fn validate_html(pages: &[(String, String)]) {
    let required = std::env::var("SSTORE_REQUIRE_SERVICES").as_deref() == Ok("1");
    let jar = std::env::var_os("SSTORE_VNU_JAR")
        .map(std::path::PathBuf::from)
        .filter(|jar| jar.exists());
    let Some(jar) = jar else {
        assert!(
            !required,
            "SSTORE_VNU_JAR names no Nu HTML Checker (cargo xtask ci installs it)"
        );
        eprintln!("skipped: HTML validation needs SSTORE_VNU_JAR (vnu.jar)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, (what, body)) in pages.iter().enumerate() {
        let file = dir.path().join(format!("page-{i}.html"));
        std::fs::write(&file, body).unwrap();
        files.push((file, what));
    }
    let out = std::process::Command::new("java")
        .arg("-jar")
        .arg(&jar)
        .args(["--errors-only", "--format", "text"])
        .args(files.iter().map(|(file, _)| file))
        .output()
        .expect("running java -jar vnu.jar");
    let mut report = String::from_utf8_lossy(&out.stderr).into_owned();
    report.push_str(&String::from_utf8_lossy(&out.stdout));
    for (file, what) in &files {
        report = report.replace(&*file.to_string_lossy(), what);
    }
    assert!(
        out.status.success(),
        "the Nu HTML Checker found errors in the console's pages:\n{report}"
    );
}
