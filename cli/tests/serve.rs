//! `sstore serve` as its users run it: the real binary, real HTTP on loopback, operators made
//! with `sstore operator`, destinations on disk (a slow one through the fault-injecting test
//! plugin). Refusals change nothing; queued jobs wait their turn; a key change triggers a
//! backup; SIGTERM and kill -9 lose nothing; bad input is a 4xx; no secret leaks.

#![cfg(unix)]
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{PASS, Sandbox, code, text};
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};
use sstore_tests::{build_plugins, install_plugin};

const ADMIN_PASSWORD: &str = "Admin-Password-77";
const OPERATOR_PASSWORD: &str = "Operator-Password-78";
const VIEWER_PASSWORD: &str = "Viewer-Password-79";
const BACKUP_PASS: &str = "Service-Backup-Pass-8";

/// A free loopback port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `sstore serve` in a sandbox, with three operators and their tokens.
struct Service {
    sandbox: Sandbox,
    child: Option<Child>,
    port: u16,
    admin: String,
    operator: String,
    viewer: String,
    client: Client,
    log: PathBuf,
}

impl Service {
    /// A sandbox with a sample store, `config` (TOML after the common part) and operators.
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
                "plugins = {:?}\n[backup]\ndirectory = {:?}\n[transfer]\nretry_delay_ms = 20\nmax_retry_delay_ms = 100\nattempts = 3\n\
                 [serve]\nstate = {:?}\nkey_check_secs = 1\nallowed_paths = [{:?}]\n{config}",
                plugins,
                sandbox.backups(),
                sandbox.path("service"),
                sandbox.path("restores"),
            ),
        )
        .unwrap();
        let mut tokens = Vec::new();
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
            tokens.push(sandbox.ok(&["operator", "token", name]).trim().to_owned());
        }
        let mut service = Self {
            log: sandbox.path("serve.log"),
            sandbox,
            child: None,
            port: free_port(),
            admin: tokens[0].clone(),
            operator: tokens[1].clone(),
            viewer: tokens[2].clone(),
            client: Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        };
        service.start();
        service
    }

    /// Starts the service (again), plain HTTP on its port, the backup passphrase in its
    /// environment only.
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = self
            .sandbox
            .cmd()
            .env("SSTORE_BACKUP_PASSPHRASE", BACKUP_PASS)
            .args(["serve", "--plain-http", "--listen"])
            .arg(format!("127.0.0.1:{}", self.port))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the service did not start: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// Waits for the process to end; returns its exit code.
    fn wait(&mut self) -> Option<i32> {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the service did not stop: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn get(&self, path: &str, token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .unwrap()
    }

    fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .unwrap()
    }

    fn json(&self, path: &str, token: &str) -> Value {
        let response = self.get(path, token);
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().unwrap()
    }

    /// Starts a job; its id.
    fn start_job(&self, token: &str, body: Value) -> String {
        let response = self.post("/api/v1/jobs", token, body.clone());
        assert_eq!(response.status(), 202, "POST {body}: {:?}", response.text());
        let value: Value = response.json().unwrap();
        value["id"].as_str().unwrap().to_owned()
    }

    /// Waits until job `id` satisfies `done`; returns its view.
    fn wait_job(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let job = self.json(&format!("/api/v1/jobs/{id}"), &self.admin);
            if done(&job) {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} is still {job}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the newest job requested by `requested_by` to end; returns its view.
    fn wait_job_of(&self, requested_by: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let jobs = self.json(
                &format!("/api/v1/jobs?requested_by={requested_by}"),
                &self.viewer,
            );
            if let Some(job) = jobs.as_array().unwrap().first()
                && Self::finished(job)
            {
                return job.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no finished job of {requested_by}: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn finished(job: &Value) -> bool {
        matches!(
            job["state"].as_str(),
            Some("succeeded" | "partially succeeded" | "failed" | "cancelled" | "interrupted")
        )
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A `[[target]]` on the fault-injecting plugin whose backup-file uploads crawl.
fn slow_target(name: &str, path: &Path, ms: u64) -> String {
    format!(
        "[[target]]\nname = \"{name}\"\nkind = \"faultyfolder\"\npath = {path:?}\n\
         faults = [{{ operation = \"put\", key_suffix = \".bak\", fault = \"slow-body\", ms = {ms} }}]\n"
    )
}

#[test]
fn refused_requests_change_nothing_and_roles_and_sessions_hold() {
    let service = Service::new("");
    let before = service.json("/api/v1/jobs", &service.viewer);
    assert_eq!(before.as_array().unwrap().len(), 0, "{before}");

    // Unauthenticated: 401, JSON, a stable code.
    let response = service
        .client
        .get(service.url("/api/v1/status"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().unwrap();
    assert_eq!(body["error"]["code"], "unauthenticated");
    let response = service
        .client
        .post(service.url("/api/v1/jobs"))
        .json(&json!({"kind": "backup"}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        service.get("/api/v1/status", "sst_not-a-token").status(),
        401
    );

    // A viewer reads but starts nothing; an operator may not restore over the live store.
    assert_eq!(service.get("/api/v1/status", &service.viewer).status(), 200);
    let response = service.post("/api/v1/jobs", &service.viewer, json!({"kind": "backup"}));
    assert_eq!(response.status(), 403);
    let response = service.post(
        "/api/v1/jobs",
        &service.operator,
        json!({"kind": "restore", "method": "overwrite"}),
    );
    assert_eq!(response.status(), 403);
    // Outside the allowed paths, and an unconfigured URL: refused before anything runs.
    let response = service.post(
        "/api/v1/jobs",
        &service.admin,
        json!({"kind": "backup", "directory": "/etc/sstore-elsewhere"}),
    );
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.json::<Value>().unwrap()["error"]["code"],
        "location-not-allowed"
    );
    let response = service.post(
        "/api/v1/jobs",
        &service.admin,
        json!({"kind": "backup", "directory": "s3://bucket/x"}),
    );
    assert_eq!(response.status(), 403);

    // A browser session: CSRF token and same origin needed for a change.
    let login = service
        .client
        .post(service.url("/api/v1/session"))
        .json(&json!({"name": "otto", "password": OPERATOR_PASSWORD}))
        .send()
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = login
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    let csrf = login.json::<Value>().unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let origin = service.url("");
    let browser_post = |csrf: Option<&str>, origin: &str| {
        let mut request = service
            .client
            .post(service.url("/api/v1/jobs"))
            .header("cookie", &session)
            .header("origin", origin)
            .json(&json!({"kind": "verify"}));
        if let Some(token) = csrf {
            request = request.header("x-csrf-token", token);
        }
        request.send().unwrap()
    };
    let response = browser_post(None, &origin);
    assert_eq!(response.status(), 403);
    assert_eq!(response.json::<Value>().unwrap()["error"]["code"], "csrf");
    let response = browser_post(Some(&csrf), "http://evil.example");
    assert_eq!(response.status(), 403);
    assert_eq!(response.json::<Value>().unwrap()["error"]["code"], "origin");
    // Nothing was started by any refused request.
    assert_eq!(
        service
            .json("/api/v1/jobs", &service.viewer)
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // A wrong password: 401, the same message as an unknown operator.
    let wrong = service
        .client
        .post(service.url("/api/v1/session"))
        .json(&json!({"name": "otto", "password": "Not-The-Password-1"}))
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let unknown = service
        .client
        .post(service.url("/api/v1/session"))
        .json(&json!({"name": "nobody", "password": "Not-The-Password-1"}))
        .send()
        .unwrap();
    assert_eq!(unknown.status(), 401);
    // With both: accepted (a verify of no backup yet fails, but it ran as asked).
    let response = browser_post(Some(&csrf), &origin);
    assert_eq!(response.status(), 202, "{:?}", response.text());

    // The audit log names the refusals, never a password or token.
    let audit = std::fs::read_to_string(service.sandbox.path("service/audit.log")).unwrap();
    assert!(audit.contains("\"refused\""), "{audit}");
    assert!(audit.contains("\"login-failed\""), "{audit}");
    for secret in [
        ADMIN_PASSWORD,
        OPERATOR_PASSWORD,
        VIEWER_PASSWORD,
        "Not-The-Password-1",
        &service.admin,
        &service.operator,
        &csrf,
    ] {
        assert!(!audit.contains(secret), "the audit log holds a secret");
    }
}

#[test]
fn a_token_stops_working_when_its_operator_is_removed() {
    let service = Service::new("");
    assert_eq!(
        service.get("/api/v1/status", &service.operator).status(),
        200
    );
    service.sandbox.ok(&["operator", "remove", "otto"]);
    assert_eq!(
        service.get("/api/v1/status", &service.operator).status(),
        401
    );
    assert_eq!(service.get("/api/v1/status", &service.admin).status(), 200);
}

#[test]
fn a_schedule_fires_and_its_backup_verifies_and_readiness_clears() {
    let service = Service::new(
        "[[schedule]]\nname = \"often\"\nevery = \"1h\"\nverify_after = true\nalert_after = \"2h\"\n",
    );
    // It never ran: it runs at start, as the schedule, and verifies its backup.
    let job = service.wait_job_of("schedule:often");
    assert_eq!(job["state"], "succeeded", "{job}");
    let log = service
        .get(
            &format!("/api/v1/jobs/{}/log", job["id"].as_str().unwrap()),
            &service.viewer,
        )
        .text()
        .unwrap();
    assert!(log.contains("verified"), "{log}");
    let schedules = service.json("/api/v1/schedules", &service.viewer);
    let often = &schedules["schedules"][0];
    assert_eq!(often["name"], "often");
    assert_eq!(often["last_outcome"], "succeeded", "{often}");
    assert!(often["stale"].is_null(), "{often}");
    // And from the command line, with the service running or not.
    let shown = service.sandbox.ok(&["schedules"]);
    assert!(shown.contains("often"), "{shown}");
    // The backup verifies with the CLI too, with the service's backup passphrase.
    let out = service
        .sandbox
        .cmd()
        .env("SSTORE_BACKUP_PASSPHRASE", BACKUP_PASS)
        .args(["verify", "--directory"])
        .arg(service.sandbox.backups())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // Metrics name the destination's last success.
    let metrics = service.get("/metrics", &service.viewer).text().unwrap();
    assert!(
        metrics.contains("sstore_destination_last_success_timestamp_seconds"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sstore_jobs{state=\"succeeded\"}"),
        "{metrics}"
    );
}

#[test]
fn a_master_key_change_triggers_a_backup_and_the_warning_clears() {
    let service = Service::new(
        "[[schedule]]\nname = \"keys\"\ncron = \"0 0 1 1 *\"\ntimezone = \"UTC\"\non_key_change = true\n",
    );
    let first = service.start_job(&service.operator, json!({"kind": "backup"}));
    let first = service.wait_job(&first, Service::finished);
    assert_eq!(first["state"], "succeeded", "{first}");
    assert_eq!(first["key_generation"], 1);

    // The passphrase changes from the command line while the service runs.
    let out = service
        .sandbox
        .cmd()
        .env("SSTORE_NEW_PASSPHRASE", "New-Store-Pass-42")
        .args(["masterkey", "update"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // Noticed within seconds: the schedule backs up, with the service's backup passphrase.
    let job = service.wait_job_of("schedule:keys");
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["key_generation"], 2, "{job}");
    // The warning clears once the destinations are read again after it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = service.json("/api/v1/status", &service.viewer);
        let warnings = status["warnings"].to_string();
        if status["store"]["key_generation"] == 2 && !warnings.contains("Master Key changed") {
            break;
        }
        assert!(Instant::now() < deadline, "{status}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn jobs_on_one_destination_take_turns_and_a_cli_backup_meanwhile_is_refused() {
    let service_dir = sstore_tests::scratch_dir();
    let slow = service_dir.path().join("slow");
    let service = Service::new(&slow_target("slow", &slow, 3000));
    let a = service.start_job(
        &service.operator,
        json!({"kind": "backup", "directory": "slow"}),
    );
    let b = service.start_job(
        &service.operator,
        json!({"kind": "backup", "directory": "slow"}),
    );
    service.wait_job(&a, |j| j["state"] == "transferring");
    let queued = service.json(&format!("/api/v1/jobs/{b}"), &service.viewer);
    assert_eq!(queued["state"], "queued", "{queued}");
    assert!(
        queued["queued_reason"].as_str().unwrap().contains(&a),
        "{queued}"
    );
    // The command line, on the same directory: refused by the lock (exit 6).
    let out = service
        .sandbox
        .cmd()
        .env("SSTORE_BACKUP_PASSPHRASE", BACKUP_PASS)
        .args(["backup", "--directory", "slow"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 6, "{}", text(&out));
    let a = service.wait_job(&a, Service::finished);
    assert_eq!(a["state"], "succeeded", "{a}");
    let b = service.wait_job(&b, Service::finished);
    assert_eq!(b["state"], "succeeded", "{b}");
    assert!(b["started"].as_str().unwrap() >= a["finished"].as_str().unwrap());
    // Cancelling a finished job is a conflict.
    let response = service
        .client
        .delete(service.url(&format!("/api/v1/jobs/{}", b["id"].as_str().unwrap())))
        .bearer_auth(&service.operator)
        .send()
        .unwrap();
    assert_eq!(response.status(), 409);
}

#[test]
fn sigterm_mid_transfer_stops_cleanly_and_the_next_start_resumes() {
    let service_dir = sstore_tests::scratch_dir();
    let slow = service_dir.path().join("slow");
    let mut service = Service::new(&slow_target("slow", &slow, 20_000));
    let id = service.start_job(
        &service.operator,
        json!({"kind": "backup", "directory": "slow"}),
    );
    service.wait_job(&id, |j| j["state"] == "transferring");
    service.signal("-TERM");
    assert_eq!(service.wait(), Some(0), "{}", service.log_text());
    assert!(
        service.log_text().contains("SIGTERM"),
        "{}",
        service.log_text()
    );
    // The destination's lock was released; nothing is listed there yet.
    assert!(!slow.join("objects/sstore.lock").exists());
    let journal = service.sandbox.ok(&["history", "--jobs", "--json"]);
    assert!(journal.contains("transferring"), "{journal}");

    // The next start finds the interrupted job and resumes it to success.
    let config = service.sandbox.path("config/sstore/config.toml");
    let healed = std::fs::read_to_string(&config)
        .unwrap()
        .replace("ms = 20000", "ms = 0");
    std::fs::write(&config, healed).unwrap();
    service.start();
    let resumed = service.wait_job_of("service");
    assert_eq!(resumed["state"], "succeeded", "{resumed}");
    let before = service.json(&format!("/api/v1/jobs/{id}"), &service.viewer);
    assert_eq!(before["state"], "interrupted", "{before}");
    assert_eq!(resumed["backup_id"], before["backup_id"]);
}

#[test]
fn kill_9_mid_transfer_loses_nothing() {
    let service_dir = sstore_tests::scratch_dir();
    let slow = service_dir.path().join("slow");
    let mut service = Service::new(&slow_target("slow", &slow, 20_000));
    let done = service.start_job(&service.operator, json!({"kind": "backup"}));
    service.wait_job(&done, Service::finished);
    let id = service.start_job(
        &service.operator,
        json!({"kind": "backup", "directory": "slow"}),
    );
    service.wait_job(&id, |j| j["state"] == "transferring");
    service.signal("-KILL");
    service.wait();
    let config = service.sandbox.path("config/sstore/config.toml");
    let healed = std::fs::read_to_string(&config)
        .unwrap()
        .replace("ms = 20000", "ms = 0");
    std::fs::write(&config, healed).unwrap();
    service.start();
    service.wait_job_of("service");
    // Every backup listed anywhere verifies.
    for location in [
        service.sandbox.backups().to_str().unwrap().to_owned(),
        "slow".into(),
    ] {
        let out = service
            .sandbox
            .cmd()
            .env("SSTORE_BACKUP_PASSPHRASE", BACKUP_PASS)
            .args(["verify", "--all", "--directory", &location])
            .output()
            .unwrap();
        assert!(out.status.success(), "{location}: {}", text(&out));
    }
}

#[test]
fn bad_input_to_every_endpoint_is_a_4xx_never_a_5xx() {
    use proptest::prelude::*;
    let service = Service::new("");
    let routes = [
        ("POST", "/api/v1/jobs"),
        ("POST", "/api/v1/session"),
        ("GET", "/api/v1/jobs"),
        ("GET", "/api/v1/history"),
        ("GET", "/api/v1/targets"),
        ("GET", "/api/v1/jobs/x/log"),
        ("DELETE", "/api/v1/jobs/nope"),
        ("POST", "/api/v1/schedules/nope/run"),
    ];
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 48,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    });
    let body = prop_oneof![
        any::<Vec<u8>>().prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        "\\{\"kind\": \"(backup|verify|prune|restore|x)\"(, \"[a-z_]{1,12}\": (1|\"[ -~]{0,20}\"|null|\\[\\]|true))*\\}",
        "[ -~]{0,64}",
    ];
    let query = "[a-z_]{1,10}=[ -~&%]{0,30}";
    runner
        .run(&(body, query, 0..routes.len()), |(body, query, route)| {
            let (method, path) = routes[route];
            let url = format!("{}?{}", service.url(path), query);
            let request = match method {
                "POST" => service.client.post(&url),
                "DELETE" => service.client.delete(&url),
                _ => service.client.get(&url),
            };
            let response = request
                .bearer_auth(&service.admin)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .unwrap();
            let status = response.status().as_u16();
            prop_assert!(
                status < 500 || (path == "/api/v1/history" && status >= 502),
                "{method} {url} with {body:?}: {status} {:?}",
                response.text()
            );
            Ok(())
        })
        .unwrap();
    // Every route docs/openapi.json documents is served (not the router's fallback, not a
    // wrong method), and an undocumented one is not.
    let spec: Value = serde_json::from_slice(
        &std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json")).unwrap(),
    )
    .unwrap();
    let mut checked = 0;
    for (route, item) in spec["paths"].as_object().unwrap() {
        let path = route.replace("{id}", "nope").replace("{name}", "nope");
        for method in ["get", "post", "delete"] {
            if item.get(method).is_none() || path.ends_with("/events") {
                continue;
            }
            let url = service.url(&path);
            let request = match method {
                "post" => service.client.post(&url).json(&json!({})),
                "delete" => service.client.delete(&url),
                _ => service.client.get(&url),
            };
            let response = request.bearer_auth(&service.viewer).send().unwrap();
            let status = response.status().as_u16();
            let body = response.text().unwrap();
            assert!(
                status != 405 && !body.contains("no route"),
                "{method} {route}: {status} {body}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 14, "{checked}");
    let response = service.get("/api/v1/undocumented", &service.viewer);
    assert_eq!(response.status(), 404);
    assert!(response.text().unwrap().contains("no route"));

    // An oversized body is refused, and the service still answers.
    let response = service.post(
        "/api/v1/jobs",
        &service.admin,
        json!({"kind": "backup", "directory": "x".repeat(100_000)}),
    );
    assert_eq!(response.status(), 413);
    assert_eq!(service.get("/api/v1/status", &service.viewer).status(), 200);
}

#[test]
fn no_secret_in_responses_logs_or_arguments_and_tls_by_default() {
    let service = Service::new("");
    let id = service.start_job(&service.operator, json!({"kind": "backup"}));
    service.wait_job(&id, Service::finished);
    let mut seen = String::new();
    for path in [
        "/api/v1/status",
        "/api/v1/jobs",
        &format!("/api/v1/jobs/{id}"),
        &format!("/api/v1/jobs/{id}/log"),
        "/api/v1/history",
        "/api/v1/targets?check=true",
        "/api/v1/schedules",
        "/metrics",
    ] {
        seen.push_str(&service.get(path, &service.admin).text().unwrap());
    }
    seen.push_str(&service.log_text());
    seen.push_str(&std::fs::read_to_string(service.sandbox.path("service/audit.log")).unwrap());
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", service.pid())).unwrap();
    seen.push_str(&String::from_utf8_lossy(&cmdline));
    for secret in [
        PASS,
        BACKUP_PASS,
        ADMIN_PASSWORD,
        &service.admin,
        &service.viewer,
    ] {
        assert!(!seen.contains(secret), "a secret was shown");
    }

    // Without --plain-http: TLS with a self-signed certificate, its fingerprint printed; the
    // session cookie is Secure. Plain HTTP on a non-loopback address is refused.
    let port = free_port();
    let mut child = service
        .sandbox
        .cmd()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(
        first.contains("https://") && first.contains("fingerprint"),
        "{first}"
    );
    let insecure = Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let login = insecure
        .post(format!("https://127.0.0.1:{port}/api/v1/session"))
        .json(&json!({"name": "vera", "password": VIEWER_PASSWORD}))
        .send()
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = login.headers().get("set-cookie").unwrap().to_str().unwrap();
    assert!(
        cookie.contains("Secure") && cookie.starts_with("__Host-"),
        "{cookie}"
    );
    let _ = child.kill();
    let _ = child.wait();
    let out = service
        .sandbox
        .run(&["serve", "--plain-http", "--listen", "0.0.0.0:1"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(text(&out).contains("--insecure-listen"), "{}", text(&out));
}
