//! The web console in a real browser: Debian's Chromium, headless, driven through chromedriver
//! (W3C WebDriver) against the real `sstore serve` on loopback. Operators sign in (and a wrong
//! password is refused), walk the backup wizard to two targets and watch a progress bar per
//! target, see a Failure Message and the partial success when a target refuses the upload,
//! open the job log, restore to a new store (and read it back with `sstore cred get`) and
//! over the live store (which is backed up first); a viewer finds no Start Backup, and a form
//! posted without its CSRF token changes nothing. Each test saves screenshots under
//! `target/console-screenshots/`.
//!
//! Without chromium and chromedriver (`apt-get install chromium chromium-driver`) the tests
//! are skipped with a note, or fail under `SSTORE_REQUIRE_SERVICES=1` (as `cargo xtask ci`
//! runs them, after installing both).

#![cfg(unix)]
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Sandbox, text};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use sstore_tests::{build_plugins, install_plugin};

const ADMIN_PASSWORD: &str = "Admin-Console-Pw-41";
const OPERATOR_PASSWORD: &str = "Operator-Console-Pw-42";
const VIEWER_PASSWORD: &str = "Viewer-Console-Pw-43";
const BACKUP_PASS: &str = "Console-Backup-Pass-44";

/// How long a page may take to show what a test waits for.
const WAIT: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------------------------------
// The service.

/// A running `sstore serve --plain-http` in a sandbox with a sample store, three operators
/// (ada admin, otto operator, vera viewer) and an API token for ada.
struct Service {
    sandbox: Sandbox,
    child: Child,
    port: u16,
    token: String,
    client: Client,
    log: PathBuf,
}

impl Service {
    /// `config`: TOML after the common part (`[[target]]` tables).
    fn new(config: &str) -> Self {
        let sandbox = Sandbox::new();
        sandbox.sample_store();
        let plugins = sandbox.path("plugins");
        install_plugin(&build_plugins().faulty, &plugins);
        let dir = sandbox.path("config/sstore");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("config.toml"),
            format!(
                "plugins = {:?}\n[backup]\ndirectory = {:?}\n[transfer]\nretry_delay_ms = 20\nmax_retry_delay_ms = 100\nattempts = 2\n\
                 [serve]\nstate = {:?}\nkey_check_secs = 1\nallowed_paths = [{:?}, {:?}]\n{config}",
                plugins,
                sandbox.backups(),
                sandbox.path("service"),
                sandbox.path("restores"),
                sandbox.path("typed"),
            ),
        )
        .unwrap();
        for (name, role, password) in [
            ("ada", "admin", ADMIN_PASSWORD),
            ("otto", "operator", OPERATOR_PASSWORD),
            ("vera", "viewer", VIEWER_PASSWORD),
        ] {
            let out = sandbox.run_with_stdin(
                &["operator", "add", name, "--role", role],
                &format!("{password}\n"),
            );
            assert!(out.status.success(), "{}", text(&out));
        }
        let token = sandbox.ok(&["operator", "token", "ada"]).trim().to_owned();
        let port = free_port();
        let log = sandbox.path("serve.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = sandbox
            .cmd()
            .env("SSTORE_BACKUP_PASSPHRASE", BACKUP_PASS)
            .args(["serve", "--plain-http", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let service = Self {
            sandbox,
            child,
            port,
            token,
            client: Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the service did not start: {}",
                service.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        service
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET path` with the admin's token.
    fn api(&self, path: &str) -> Value {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().unwrap()
    }

    fn jobs(&self) -> Vec<Value> {
        self.api("/api/v1/jobs").as_array().unwrap().clone()
    }

    /// Starts a job through the API; waits for it to end; its view.
    fn run_job(&self, body: Value) -> Value {
        let response = self
            .client
            .post(self.url("/api/v1/jobs"))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(response.status(), 202, "{:?}", response.text());
        let id = response.json::<Value>().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.wait_job(&id)
    }

    fn wait_job(&self, id: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let job = self.api(&format!("/api/v1/jobs/{id}"));
            if matches!(
                job["state"].as_str(),
                Some("succeeded" | "partially succeeded" | "failed" | "cancelled" | "interrupted")
            ) {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} is still {job}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `[[target]]` on the fault-injecting plugin with `fault` on backup-file uploads.
fn faulty_target(name: &str, path: &Path, fault: &str) -> String {
    format!(
        "[[target]]\nname = \"{name}\"\nkind = \"faultyfolder\"\npath = {path:?}\n\
         faults = [{{ operation = \"put\", key_suffix = \".bak\", {fault} }}]\n"
    )
}

// ---------------------------------------------------------------------------------------
// A small W3C WebDriver client (chromedriver speaks it over HTTP; reqwest is all it needs).

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Chromium and chromedriver, or `None` (the test is skipped, or fails under
/// `SSTORE_REQUIRE_SERVICES=1`).
fn browser_programs() -> Option<(PathBuf, PathBuf)> {
    let find = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(default))
    };
    let chromium = find("SSTORE_CHROMIUM", "/usr/bin/chromium");
    let driver = find("SSTORE_CHROMEDRIVER", "/usr/bin/chromedriver");
    if chromium.exists() && driver.exists() {
        return Some((chromium, driver));
    }
    let reason = format!(
        "the browser tests need {} and {} (apt-get install chromium chromium-driver)",
        chromium.display(),
        driver.display()
    );
    if std::env::var("SSTORE_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
        panic!("{reason} (SSTORE_REQUIRE_SERVICES=1)");
    }
    eprintln!("skipped: {reason}");
    None
}

/// One headless Chromium session through its own chromedriver.
struct Browser {
    driver: Child,
    endpoint: String,
    session: String,
    client: Client,
    _profile: tempfile::TempDir,
    test: &'static str,
    shots: u32,
}

struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Browser {
    /// A browser for test `test` (its screenshots are named after it), or `None` when the
    /// tests are skipped.
    fn start(test: &'static str) -> Option<Self> {
        let (chromium, driver_path) = browser_programs()?;
        let port = free_port();
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let endpoint = format!("http://127.0.0.1:{port}");
        let client = Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = client
                .get(format!("{endpoint}/status"))
                .send()
                .ok()
                .and_then(|r| r.json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Self {
            driver,
            endpoint,
            session: String::new(),
            client,
            test,
            shots: 0,
            _profile: profile,
        };
        // The flags this machine needs: no sandbox (root), no GPU, and nothing that reaches
        // for the network at start (the closed network refuses it).
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
            &format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let created = browser.command(
            "POST",
            "/session",
            Some(json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": chromium, "args": args},
            }}})),
        );
        browser.session = created["sessionId"].as_str().unwrap().to_owned();
        Some(browser)
    }

    /// A WebDriver command; its `value`, or the driver's error.
    fn try_command(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = if path == "/session" {
            format!("{}{path}", self.endpoint)
        } else {
            format!("{}/session/{}{path}", self.endpoint, self.session)
        };
        let request = match method {
            "GET" => self.client.get(url),
            "DELETE" => self.client.delete(url),
            _ => self
                .client
                .post(url)
                .json(&body.unwrap_or_else(|| json!({}))),
        };
        let response = request.send().map_err(|e| e.to_string())?;
        let ok = response.status().is_success();
        let value: Value = response.json().map_err(|e| e.to_string())?;
        if ok {
            Ok(value["value"].clone())
        } else {
            Err(format!(
                "{}: {}",
                value["value"]["error"], value["value"]["message"]
            ))
        }
    }

    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_command(method, path, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    fn goto(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })));
    }

    fn url(&self) -> String {
        self.command("GET", "/url", None)
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn title(&self) -> String {
        self.command("GET", "/title", None)
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn source(&self) -> String {
        self.command("GET", "/source", None)
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn script(&self, script: &str, args: Value) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    fn all(&self, using: &str, value: &str) -> Vec<Element<'_>> {
        self.try_command(
            "POST",
            "/elements",
            Some(json!({ "using": using, "value": value })),
        )
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e[ELEMENT_KEY].as_str())
        .map(|id| Element {
            browser: self,
            id: id.to_owned(),
        })
        .collect()
    }

    /// Elements matching a CSS selector, now.
    fn css_all(&self, css: &str) -> Vec<Element<'_>> {
        self.all("css selector", css)
    }

    /// The first element matching, waiting for it to appear.
    fn find(&self, using: &str, value: &str) -> Element<'_> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(element) = self.all(using, value).into_iter().next() {
                return element;
            }
            assert!(
                Instant::now() < deadline,
                "no {value} on {} ({}):\n{}",
                self.url(),
                self.title(),
                self.page_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn css(&self, css: &str) -> Element<'_> {
        self.find("css selector", css)
    }

    /// The form field labelled `label` (by the label's text).
    fn field(&self, label: &str) -> Element<'_> {
        self.find(
            "xpath",
            &format!("//*[@id=(//label[normalize-space()='{label}']/@for)]"),
        )
    }

    fn button(&self, text: &str) -> Element<'_> {
        self.find("xpath", &format!("//button[normalize-space()='{text}']"))
    }

    fn has_button(&self, text: &str) -> bool {
        !self
            .all("xpath", &format!("//button[normalize-space()='{text}']"))
            .is_empty()
    }

    fn link(&self, text: &str) -> Element<'_> {
        self.find("xpath", &format!("//a[normalize-space()='{text}']"))
    }

    fn heading(&self) -> String {
        self.css("h1").text()
    }

    /// Waits until the page's heading is `expected`: a click that submits a form or follows a
    /// link returns before the next page is there, so one read could see the old page or none.
    fn expect_heading(&self, expected: &str) {
        self.wait_until(&format!("the heading {expected:?}"), |b| {
            b.heading() == expected
        });
    }

    fn page_text(&self) -> String {
        self.all("css selector", "body")
            .first()
            .map(Element::text)
            .unwrap_or_default()
    }

    /// Waits until `done` holds (reading the page afresh each time).
    fn wait_until(&self, what: &str, done: impl Fn(&Browser) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "waited for {what} on {}:\n{}",
                self.url(),
                self.page_text()
            );
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// Saves a screenshot as `target/console-screenshots/<test>-<n>-<name>.png`.
    fn screenshot(&mut self, name: &str) -> PathBuf {
        self.shots += 1;
        let data = self.command("GET", "/screenshot", None);
        let png = base64_decode(data.as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}-{}-{name}.png", self.test, self.shots));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
        path
    }

    /// Signs in through the login form; waits for the page after it.
    fn sign_in(&self, service: &Service, name: &str, password: &str) {
        self.goto(&service.url("/login"));
        self.field("User name").type_text(name);
        self.field("Password").type_text(password);
        self.button("Sign in").click();
        self.wait_until("the home page", |b| !b.url().contains("/login"));
    }

    /// The current job's state on the status page.
    fn job_state(&self) -> String {
        self.css_all("[data-job-state]")
            .first()
            .map(Element::text)
            .unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.try_command("DELETE", "", None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Element<'_> {
    fn path(&self, what: &str) -> String {
        format!("/element/{}{what}", self.id)
    }

    fn click(&self) {
        self.browser.command("POST", &self.path("/click"), None);
    }

    fn clear(&self) {
        self.browser.command("POST", &self.path("/clear"), None);
    }

    fn type_text(&self, text: &str) {
        self.browser
            .command("POST", &self.path("/value"), Some(json!({ "text": text })));
    }

    fn text(&self) -> String {
        self.browser
            .try_command("GET", &self.path("/text"), None)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// A DOM property (`value`, `checked`, `max`), as JSON.
    fn property(&self, name: &str) -> Value {
        self.browser
            .command("GET", &self.path(&format!("/property/{name}")), None)
    }

    fn attribute(&self, name: &str) -> Option<String> {
        self.browser
            .command("GET", &self.path(&format!("/attribute/{name}")), None)
            .as_str()
            .map(str::to_owned)
    }
}

fn screenshot_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("console-screenshots")
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

// ---------------------------------------------------------------------------------------
// The tests.

#[test]
fn sign_in_with_the_form_and_a_wrong_password_is_refused() {
    let Some(mut browser) = Browser::start("login") else {
        return;
    };
    let service = Service::new("");
    // The root URL leads to the login page when nobody is signed in.
    browser.goto(&service.url("/"));
    browser.wait_until("the login page", |b| b.url().ends_with("/login"));
    browser.expect_heading("Sign in");
    browser.field("User name").type_text("otto");
    browser.field("Password").type_text("Not-The-Password-9");
    browser.button("Sign in").click();
    let error = browser.css("#login-error").text();
    assert_eq!(error, "Unknown user name or wrong password.");
    assert!(browser.url().ends_with("/login"));
    // The name stays, the password does not.
    assert_eq!(browser.field("User name").property("value"), "otto");
    assert_eq!(browser.field("Password").property("value"), "");
    browser.screenshot("wrong-password");

    // A page asked for before signing in is shown after it.
    browser.goto(&service.url("/schedules"));
    browser.wait_until("the login page", |b| b.url().contains("/login?next="));
    browser.field("User name").type_text("otto");
    browser.field("Password").type_text(OPERATOR_PASSWORD);
    browser.button("Sign in").click();
    browser.wait_until("the schedules page", |b| b.url().ends_with("/schedules"));
    browser.link("Home").click();
    browser.expect_heading("Central Administration");
    // The operator's name and role on every page, and the Backup and Restore section.
    assert_eq!(browser.css("[data-operator]").text(), "otto");
    assert_eq!(browser.css("[data-role]").text(), "operator");
    for link in [
        "Perform a backup",
        "Restore from a backup",
        "Check backup and restore job status",
        "View history",
        "Schedules",
        "Targets",
    ] {
        assert!(
            !browser
                .all(
                    "xpath",
                    &format!("//main//a[starts-with(normalize-space(), '{link}')]")
                )
                .is_empty(),
            "no link {link}"
        );
    }
    browser.screenshot("home");

    // Sign out: the pages lead to the login again.
    browser.button("Sign out").click();
    browser.wait_until("the login page", |b| b.url().contains("/login"));
    browser.goto(&service.url("/jobs"));
    browser.wait_until("the login page", |b| b.url().contains("/login"));

    let audit = std::fs::read_to_string(service.sandbox.path("service/audit.log")).unwrap();
    assert!(audit.contains("\"login-failed\""), "{audit}");
    assert!(!audit.contains("Not-The-Password-9") && !audit.contains(OPERATOR_PASSWORD));
}

#[test]
fn the_wizard_backs_up_to_two_targets_with_a_progress_bar_each() {
    let Some(mut browser) = Browser::start("wizard") else {
        return;
    };
    let offsite = sstore_tests::scratch_dir();
    let service = Service::new(&faulty_target(
        "offsite",
        offsite.path(),
        "fault = \"slow-body\", ms = 2500",
    ));
    browser.sign_in(&service, "otto", OPERATOR_PASSWORD);
    browser.link("Perform a backup").click();
    browser.expect_heading("Perform a Backup - Step 1 of 2: Select Component to Back Up");
    let tree = browser.css(".tree").text();
    assert!(tree.contains("SecureStore"), "{tree}");
    assert!(tree.contains("generation 1"), "{tree}");
    assert!(
        tree.contains("2 target applications, 3 credential sets"),
        "{tree}"
    );
    browser.screenshot("step-1");
    browser.button("Next").click();
    browser.expect_heading("Perform a Backup - Step 2 of 2: Select Backup Options");
    let backup_type = browser.find(
        "xpath",
        "//fieldset[legend[normalize-space()='Backup Type']]",
    );
    assert!(backup_type.text().contains("Full"));
    assert_eq!(browser.field("Full").property("checked"), true);

    // An unknown scheme is refused beside the field, and nothing starts.
    let location = browser.field("Backup File Location");
    location.clear();
    location.type_text("ftp://example.invalid/backups");
    browser.button("Start Backup").click();
    let refused = browser.css("#location-error").text();
    assert!(refused.contains("Unknown scheme ftp://"), "{refused}");
    assert_eq!(
        browser
            .field("Backup File Location")
            .attribute("aria-invalid"),
        Some("true".into())
    );
    assert!(service.jobs().is_empty());

    // A folder typed in, and the configured target ticked: check readiness, then start.
    let typed = service.sandbox.path("typed/backups");
    let location = browser.field("Backup File Location");
    location.clear();
    location.type_text(typed.to_str().unwrap());
    browser.field("offsite").click();
    browser.button("Check readiness").click();
    browser.css("[data-ready]");
    let checks = browser.css_all("[data-check]");
    let names: Vec<String> = checks
        .iter()
        .map(|c| c.attribute("data-check").unwrap())
        .collect();
    for expected in [
        "store".to_owned(),
        "keys".to_owned(),
        "staging".to_owned(),
        format!("target {}", typed.display()),
        "target offsite".to_owned(),
    ] {
        assert!(names.contains(&expected), "{expected} not in {names:?}");
    }
    assert_eq!(
        browser.css("[data-ready]").attribute("data-ready"),
        Some("true".into())
    );
    assert!(
        service.jobs().is_empty(),
        "a readiness check starts nothing"
    );
    browser.screenshot("step-2-readiness");
    browser.button("Start Backup").click();

    // The job status page follows the job.
    browser.wait_until("the job's page", |b| b.url().contains("/jobs/"));
    browser.expect_heading("Backup and Restore Job Status");
    let id = browser
        .css("[data-live-job]")
        .attribute("data-job-id")
        .unwrap();
    assert!(browser.url().ends_with(&format!("/jobs/{id}")));
    browser.css("[data-readiness]");
    assert!(browser.has_button("Refresh"));
    assert!(
        browser
            .source()
            .contains("<meta http-equiv=\"refresh\" content=\"30;")
    );
    browser.wait_until("a progress bar per destination", |b| {
        b.css_all("[data-destination] progress").len() == 2
    });
    browser.wait_until("the transfer", |b| b.job_state() == "transferring");
    browser.screenshot("transferring");
    browser.wait_until("the job to succeed", |b| b.job_state() == "succeeded");
    // The live stream fills in what the page could not know when it was rendered.
    browser.wait_until("the finish time", |b| {
        b.css("[data-job-finished]").text().ends_with(" UTC")
    });
    assert!(browser.css("[data-job-started]").text().ends_with(" UTC"));
    let bars = browser.css_all("[data-destination] progress");
    assert_eq!(bars.len(), 2);
    for bar in &bars {
        let (value, max) = (bar.property("value"), bar.property("max"));
        assert!(max.as_f64().unwrap() > 1.0, "{max}");
        assert_eq!(value, max, "every byte sent");
    }
    let names: Vec<String> = browser
        .css_all("[data-destination]")
        .iter()
        .map(|r| r.attribute("data-destination").unwrap())
        .collect();
    assert_eq!(names, [typed.display().to_string(), "offsite".to_owned()]);
    browser.screenshot("succeeded");

    let job = service.api(&format!("/api/v1/jobs/{id}"));
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["requested_by"], "otto");
    assert!(typed.join("sstorebrtoc.json").exists());
    assert!(offsite.path().join("objects/sstorebrtoc.json").exists());

    // After a reload, the finished job is still the current one on its page, and among the
    // earlier jobs on the general page once another runs.
    browser.button("Refresh").click();
    browser.wait_until("the reloaded page", |b| b.job_state() == "succeeded");
}

#[test]
fn a_target_that_refuses_the_upload_shows_its_failure_message_and_the_log_says_why() {
    let Some(mut browser) = Browser::start("refused") else {
        return;
    };
    let refusing = sstore_tests::scratch_dir();
    let service = Service::new(&faulty_target(
        "refusing",
        refusing.path(),
        "fault = \"permanent\"",
    ));
    browser.sign_in(&service, "otto", OPERATOR_PASSWORD);
    browser.goto(&service.url("/backup/options"));
    // The configured directory is prefilled; tick the refusing target too.
    assert_eq!(
        browser.field("Backup File Location").property("value"),
        service.sandbox.backups().display().to_string()
    );
    browser.field("refusing").click();
    browser.button("Start Backup").click();
    browser.wait_until("the job's page", |b| b.url().contains("/jobs/"));
    browser.wait_until("the job to end", |b| b.job_state() == "partially succeeded");
    browser.wait_until("the finish time and the error counted", |b| {
        let counts = b.css("[data-job-counts]").text();
        b.css("[data-job-finished]").text().ends_with(" UTC") && !counts.ends_with(", 0")
    });
    let row = browser.css("[data-destination='refusing']");
    let message = browser
        .css("[data-destination='refusing'] [data-target-message]")
        .text();
    assert!(!message.is_empty(), "no Failure Message: {}", row.text());
    assert_eq!(
        browser
            .css("[data-destination='refusing'] [data-target-state]")
            .text(),
        "failed"
    );
    let header = browser.find("xpath", "//th[normalize-space()='Failure Message']");
    assert!(!header.text().is_empty());
    let id = browser
        .css("[data-live-job]")
        .attribute("data-job-id")
        .unwrap();
    browser.screenshot("partially-succeeded");

    // After a reload the page says the same (from the job's record, not the live stream).
    browser.goto(&service.url(&format!("/jobs/{id}?refresh=0")));
    assert_eq!(browser.job_state(), "partially succeeded");
    let counts = browser.css("[data-job-counts]").text();
    assert!(
        !counts.ends_with(", 0"),
        "a failed destination is an error: {counts}"
    );
    assert!(!browser.source().contains("http-equiv=\"refresh\""));
    let job = service.api(&format!("/api/v1/jobs/{id}"));
    assert_eq!(job["state"], "partially succeeded", "{job}");

    // The job's log: every line, then the errors only, and a download link.
    browser.link("View the job log").click();
    browser.wait_until("the log page", |b| b.url().ends_with("/log"));
    assert_eq!(
        browser.css("[data-job-id]").attribute("data-job-id"),
        Some(id.clone())
    );
    let all = browser.css("[data-log]").text();
    assert!(all.contains("[info]"), "{all}");
    browser.field("Show").click();
    browser
        .find("xpath", "//option[normalize-space()='Errors']")
        .click();
    browser.button("Filter").click();
    browser.wait_until("the errors only", |b| b.url().contains("level=error"));
    let errors = browser.css("[data-log]").text();
    assert!(errors.contains("[error]"), "{errors}");
    assert!(errors.contains("refusing"), "{errors}");
    assert!(!errors.contains("[info]"), "{errors}");
    let download = browser.link("Download the log").attribute("href").unwrap();
    assert!(download.ends_with(&format!("/api/v1/jobs/{id}/log?download=true")));
    browser.screenshot("log-errors");

    // Earlier jobs carry the Failure Message column too, once another job runs.
    service.run_job(json!({"kind": "verify"}));
    browser.goto(&service.url("/jobs?refresh=0"));
    let earlier = browser.css(&format!("tr[data-job-id='{id}']")).text();
    assert!(earlier.contains("partially succeeded"), "{earlier}");
}

#[test]
fn restore_as_a_new_store_and_read_it_back_with_cred_get() {
    let Some(mut browser) = Browser::start("restore") else {
        return;
    };
    let service = Service::new("");
    let backup = service.run_job(json!({"kind": "backup"}));
    assert_eq!(backup["state"], "succeeded", "{backup}");
    let backup_id = backup["backup_id"].as_str().unwrap().to_owned();

    browser.sign_in(&service, "otto", OPERATOR_PASSWORD);
    browser.link("Restore from a backup").click();
    browser.expect_heading("Restore from a backup");
    // The newest successful backup is chosen, with its key generation.
    let choice = browser.css(&format!("input[name='backup_id'][value='{backup_id}']"));
    assert_eq!(choice.property("checked"), true);
    assert!(browser.page_text().contains("Master Key generation 1"));
    // An operator may not overwrite the live store.
    assert_eq!(
        browser
            .field("Overwrite the live store")
            .property("disabled"),
        true
    );
    assert!(
        browser
            .page_text()
            .contains("the service's own: a passphrase")
    );

    // A wrong passphrase typed for this job: the restore fails, writes nothing, and the
    // passphrase appears nowhere.
    let restored = service.sandbox.path("restores/restored.db");
    let new_store = browser.field("New store file");
    new_store.clear();
    new_store.type_text(restored.to_str().unwrap());
    let wrong = "Typed-Wrong-Pass-77";
    browser
        .field("Backup passphrase (optional)")
        .type_text(wrong);
    browser.button("Start Restore").click();
    browser.wait_until("the job's page", |b| b.url().contains("/jobs/"));
    browser.wait_until("the restore to fail", |b| b.job_state() == "failed");
    let failure = browser.css("[data-job-failure]").text();
    assert!(!failure.is_empty());
    assert!(!restored.exists());
    let failed_id = browser
        .css("[data-live-job]")
        .attribute("data-job-id")
        .unwrap();
    let view = service
        .api(&format!("/api/v1/jobs/{failed_id}"))
        .to_string();
    let log = service
        .client
        .get(service.url(&format!("/api/v1/jobs/{failed_id}/log")))
        .bearer_auth(&service.token)
        .send()
        .unwrap()
        .text()
        .unwrap();
    for place in [
        browser.source(),
        view,
        log,
        service.log_text(),
        std::fs::read_to_string(service.sandbox.path("service/audit.log")).unwrap(),
    ] {
        assert!(!place.contains(wrong), "the typed passphrase leaked");
        assert!(!place.contains(BACKUP_PASS), "the backup passphrase leaked");
    }

    // With the service's key: the restore succeeds, and the new store reads back.
    browser.link("Restore").click();
    let new_store = browser.field("New store file");
    new_store.clear();
    new_store.type_text(restored.to_str().unwrap());
    browser.button("Start Restore").click();
    browser.wait_until("the job's page", |b| b.url().contains("/jobs/"));
    browser.wait_until("the restore to succeed", |b| b.job_state() == "succeeded");
    assert_eq!(browser.css("#current-job").text(), "Restore");
    browser.screenshot("restored");
    let out = service
        .sandbox
        .cmd()
        .env("SSTORE_STORE", &restored)
        .args(["cred", "get", "crm", "--principal", "CONTOSO\\alice"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Secret-of-alice"));
    // A credential value is never on a page.
    browser.goto(&service.url("/history"));
    assert!(!browser.source().contains("Secret-of-"));
}

#[test]
fn an_overwrite_needs_an_admin_and_a_typed_confirmation_and_backs_the_live_store_up_first() {
    let Some(mut browser) = Browser::start("overwrite") else {
        return;
    };
    let service = Service::new("");
    let backup = service.run_job(json!({"kind": "backup"}));
    let backup_id = backup["backup_id"].as_str().unwrap().to_owned();
    // A change made after the backup: the overwrite undoes it, and the backup taken first
    // keeps it.
    let out = service.sandbox.run_with_stdin(
        &["cred", "set", "crm", "--principal", "CONTOSO\\alice"],
        "Windows User Name=alice\nWindows Password=Changed-Later-5\n",
    );
    assert!(out.status.success(), "{}", text(&out));

    browser.sign_in(&service, "ada", ADMIN_PASSWORD);
    browser.goto(&service.url("/restore"));
    browser.field("Overwrite the live store").click();
    // Without the typed confirmation nothing starts.
    browser.button("Start Restore").click();
    let refused = browser.css("#confirm-error").text();
    assert!(refused.contains("OVERWRITE"), "{refused}");
    assert!(service.jobs().len() == 1, "only the first backup");
    browser.screenshot("confirm-needed");
    browser.field("Overwrite the live store").click();
    browser
        .field("To overwrite, type OVERWRITE")
        .type_text("OVERWRITE");
    browser.button("Start Restore").click();
    browser.wait_until("the job's page", |b| b.url().contains("/jobs/"));
    browser.wait_until("the restore to succeed", |b| b.job_state() == "succeeded");
    let summary = browser.css("[data-job-summary]").text();
    assert!(
        summary.contains(&format!("backup {backup_id} restored")),
        "{summary}"
    );
    assert!(
        summary.contains("the store it replaced is backup"),
        "{summary}"
    );
    browser.screenshot("overwritten");

    // The live store is the backup's again; the backup taken first holds the later change.
    let value = service
        .sandbox
        .ok(&["cred", "get", "crm", "--principal", "CONTOSO\\alice"]);
    assert!(value.contains("Secret-of-alice"), "{value}");
    let history = service.api("/api/v1/history");
    let backups: Vec<&Value> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "backup" && e["status"] == "succeeded")
        .collect();
    assert_eq!(backups.len(), 2, "{history}");
    let undo = backups[1]["id"].as_str().unwrap();
    let undo_store = service.sandbox.path("restores/undo.db");
    service.run_job(
        json!({"kind": "restore", "method": "new", "backup_id": undo,
        "new_store": undo_store}),
    );
    let out = service
        .sandbox
        .cmd()
        .env("SSTORE_STORE", &undo_store)
        .args(["cred", "get", "crm", "--principal", "CONTOSO\\alice"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Changed-Later-5"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_viewer_finds_no_start_backup() {
    let Some(mut browser) = Browser::start("viewer") else {
        return;
    };
    let service = Service::new("");
    browser.sign_in(&service, "vera", VIEWER_PASSWORD);
    assert_eq!(browser.css("[data-role]").text(), "viewer");
    browser.link("Perform a backup").click();
    browser.css("[data-read-only]");
    assert!(!browser.has_button("Next"));
    browser.goto(&service.url("/backup/options"));
    browser.css("[data-read-only]");
    assert!(!browser.has_button("Start Backup"));
    assert!(!browser.has_button("Check readiness"));
    browser.screenshot("no-start-backup");
    browser.goto(&service.url("/restore"));
    assert!(!browser.has_button("Start Restore"));
    browser.goto(&service.url("/schedules"));
    assert!(!browser.has_button("Run now"));
    browser.goto(&service.url("/targets"));
    assert!(!browser.has_button("Test"));

    // A form made by hand, with the viewer's own CSRF token: refused, nothing starts.
    browser.goto(&service.url("/backup/options"));
    browser.script(
        "const form = document.createElement('form');
         form.method = 'post'; form.action = '/backup/options';
         const token = document.querySelector('input[name=csrf_token]').value;
         for (const [name, value] of [['csrf_token', token], ['action', 'start'],
                                      ['location', arguments[0]], ['method', 'full']]) {
             const input = document.createElement('input');
             input.type = 'hidden'; input.name = name; input.value = value;
             form.appendChild(input);
         }
         document.body.appendChild(form); form.submit();",
        json!([service.sandbox.backups()]),
    );
    browser.wait_until("the refusal", |b| b.heading() == "Refused");
    assert!(
        browser
            .page_text()
            .contains("Your role (viewer) may not do this")
    );
    assert!(service.jobs().is_empty());
}

#[test]
fn a_form_posted_without_its_csrf_token_changes_nothing() {
    let Some(mut browser) = Browser::start("csrf") else {
        return;
    };
    let service = Service::new("");
    browser.sign_in(&service, "otto", OPERATOR_PASSWORD);
    browser.goto(&service.url("/backup/options"));
    // The form's hidden token removed (the sign-out form keeps its own).
    browser.script(
        "document.querySelector('main form input[name=csrf_token]').remove();",
        json!([]),
    );
    browser.button("Start Backup").click();
    browser.wait_until("the refusal", |b| b.heading() == "Refused");
    assert!(
        browser.page_text().contains("CSRF"),
        "{}",
        browser.page_text()
    );
    browser.screenshot("refused");
    // A token of the wrong value fares no better.
    browser.goto(&service.url("/backup/options"));
    browser.script(
        "document.querySelector('main form input[name=csrf_token]').value = '00'.repeat(32);",
        json!([]),
    );
    browser.button("Start Backup").click();
    browser.wait_until("the refusal", |b| b.heading() == "Refused");
    assert!(service.jobs().is_empty(), "nothing started");
    let audit = std::fs::read_to_string(service.sandbox.path("service/audit.log")).unwrap();
    assert_eq!(audit.matches("\"csrf\"").count(), 2, "{audit}");
    // With its token, the same form starts the backup.
    browser.goto(&service.url("/backup/options"));
    browser.button("Start Backup").click();
    browser.wait_until("the job's page", |b| b.url().contains("/jobs/"));
    assert_eq!(service.jobs().len(), 1);
}
