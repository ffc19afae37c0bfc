//! Several `sstore` processes and the service (`sstore serve`), started at the same moment
//! against the same backup directory and the same targets (a local folder, and a slow
//! destination through the fault-injecting test plugin): exactly one job runs per destination
//! at a time; every other is refused (exit 6, or exit 7 naming the locked destination when it
//! reached its others) or waits its turn in the service's queue; and every history stays
//! consistent: each listed backup verifies, no folder holds two backups, a staged copy left
//! pending is finished by the next job on its staging folder, which leaves no work files.

#![cfg(unix)]
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{Sandbox, code, files_under, text};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use sstore_tests::{build_plugins, install_plugin};

const BACKUP_PASS: &str = "Concurrency-Backup-Pass-3";
const OPERATOR_PASSWORD: &str = "Operator-Password-31";

/// A free loopback port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The running service; killed when dropped.
struct Service {
    child: Child,
    port: u16,
    token: String,
    client: Client,
    log: PathBuf,
}

impl Service {
    fn start(sb: &Sandbox) -> Self {
        let out = sb.run_with_stdin(
            &["operator", "add", "otto", "--role", "operator"],
            &format!("{OPERATOR_PASSWORD}\n"),
        );
        assert!(out.status.success(), "{}", text(&out));
        let token = sb.ok(&["operator", "token", "otto"]).trim().to_owned();
        let port = free_port();
        let log = sb.path("serve.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = sb
            .cmd()
            .env("SSTORE_BACKUP_PASSPHRASE", BACKUP_PASS)
            .args(["serve", "--plain-http", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the service did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            port,
            token,
            client: Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            log,
        }
    }

    fn start_job(&self, body: Value) -> String {
        let response = self
            .client
            .post(format!("http://127.0.0.1:{}/api/v1/jobs", self.port))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(response.status(), 202, "POST {body}");
        let value: Value = response.json().unwrap();
        value["id"].as_str().unwrap().to_owned()
    }

    fn job(&self, id: &str) -> Value {
        self.client
            .get(format!("http://127.0.0.1:{}/api/v1/jobs/{id}", self.port))
            .bearer_auth(&self.token)
            .send()
            .unwrap()
            .json()
            .unwrap()
    }

    fn wait_finished(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let job = self.job(id);
            let state = job["state"].as_str().unwrap_or_default();
            if matches!(
                state,
                "succeeded" | "partially succeeded" | "failed" | "cancelled" | "interrupted"
            ) {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} is still {job}: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
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

/// A sandbox whose config sends every backup to `backups` (staged there), `nas` (a local
/// folder) and `slow` (the fault plugin, whose backup-file uploads crawl), with a service
/// state folder.
fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.sample_store();
    let plugins = sb.path("plugins");
    install_plugin(&build_plugins().faulty, &plugins);
    let config = sb.path("config/sstore");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("config.toml"),
        format!(
            "plugins = {:?}\n[backup]\ndirectory = {:?}\ntargets = [\"nas\", \"slow\"]\n\
             [transfer]\nretry_delay_ms = 20\nmax_retry_delay_ms = 100\nattempts = 3\n\
             [serve]\nstate = {:?}\nkey_check_secs = 3600\n\n\
             [[target]]\nname = \"nas\"\nkind = \"local\"\npath = {:?}\n\n\
             [[target]]\nname = \"slow\"\nkind = \"faultyfolder\"\npath = {:?}\n\
             faults = [{{ operation = \"put\", key_suffix = \".bak\", fault = \"slow-body\", ms = 700 }}]\n",
            plugins.to_str().unwrap(),
            sb.backups().to_str().unwrap(),
            sb.path("service").to_str().unwrap(),
            sb.path("nas").to_str().unwrap(),
            sb.path("slow").to_str().unwrap(),
        ),
    )
    .unwrap();
    sb
}

/// How a job started at the same moment as the others ended.
#[derive(Debug)]
struct Ended {
    who: String,
    /// Succeeded everywhere, refused (by a lock), or partial because a destination was locked.
    verdict: &'static str,
    detail: String,
}

fn cli_verdict(who: &str, out: &Output) -> Ended {
    let all = text(out);
    let verdict = match code(out) {
        0 => "succeeded",
        6 => "refused",
        7 if all.contains("locked by") || all.contains("another sstore job") => "partial",
        other => panic!("{who}: exit {other} is neither success nor a refusal: {all}"),
    };
    if verdict == "refused" {
        assert!(
            all.contains("another sstore job") || all.contains("locked by"),
            "{who}: a refusal must say who holds the lock: {all}"
        );
    }
    Ended {
        who: who.to_owned(),
        verdict,
        detail: all,
    }
}

fn service_verdict(who: &str, job: &Value) -> Ended {
    let detail = job.to_string();
    let verdict = match job["state"].as_str().unwrap_or_default() {
        "succeeded" => "succeeded",
        "failed" if detail.contains("another sstore job") || detail.contains("locked by") => {
            "refused"
        }
        "partially succeeded" if detail.contains("locked by") => "partial",
        other => panic!("{who}: ended {other}, neither success nor a refusal: {detail}"),
    };
    Ended {
        who: who.to_owned(),
        verdict,
        detail,
    }
}

/// The job records of the journal (`sstore history --jobs --json`).
fn journal(sb: &Sandbox) -> Vec<Value> {
    let jobs: Value = serde_json::from_str(&sb.ok(&["history", "--jobs", "--json"])).unwrap();
    jobs.as_array().cloned().unwrap_or_default()
}

/// Every destination's history: each listed backup verifies, no folder holds two backups.
/// Returns the number of backups listed per destination.
fn assert_histories_consistent(sb: &Sandbox, places: &[[&str; 2]]) -> Vec<usize> {
    let mut counts = Vec::new();
    for place in places {
        let out = sb.ok(&["history", "--json", place[0], place[1]]);
        let h: Value = serde_json::from_str(&out).unwrap();
        let backups: Vec<&Value> = h["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "backup")
            .collect();
        let folders: BTreeSet<&str> = backups
            .iter()
            .map(|e| e["folder"].as_str().unwrap())
            .collect();
        assert_eq!(folders.len(), backups.len(), "{place:?}: a folder repeats");
        let listed = backups
            .iter()
            .filter(|e| e["status"] == "succeeded")
            .count();
        if listed > 0 {
            let out = sb
                .cmd()
                .env("SSTORE_BACKUP_PASSPHRASE", BACKUP_PASS)
                .args(["verify", "--all", place[0], place[1]])
                .output()
                .unwrap();
            assert_eq!(code(&out), 0, "{place:?}: {}", text(&out));
        }
        counts.push(listed);
    }
    counts
}

fn assert_no_work_files(folder: &Path) {
    let left: Vec<PathBuf> = files_under(folder)
        .into_iter()
        .filter(|p| !p.ends_with("sstore.lock"))
        .collect();
    assert_eq!(left, Vec::<PathBuf>::new(), "work files left");
}

#[test]
fn cli_processes_and_the_service_at_once_run_one_job_per_destination() {
    let sb = sandbox();
    let service = Arc::new(Service::start(&sb));
    let backups = sb.backups().to_str().unwrap().to_owned();
    let staging = sb.path("staging");
    let staging = staging.to_str().unwrap().to_owned();

    // What starts at once: the configured job (directory, nas, slow) four times from the
    // command line and twice through the service; the slow target alone twice from the
    // command line and once through the service; nas alone once.
    let cli_jobs: Vec<(String, Vec<String>)> = [
        ("cli backup 1", vec!["backup"]),
        ("cli backup 2", vec!["backup"]),
        ("cli backup 3", vec!["backup"]),
        ("cli backup 4", vec!["backup"]),
        (
            "cli slow 1",
            vec!["backup", "--directory", "slow", "--staging", &staging],
        ),
        (
            "cli slow 2",
            vec!["backup", "--directory", "slow", "--staging", &staging],
        ),
        ("cli nas", vec!["backup", "--directory", "nas"]),
    ]
    .into_iter()
    .map(|(who, args)| {
        (
            who.to_owned(),
            args.into_iter().map(str::to_owned).collect::<Vec<_>>(),
        )
    })
    .collect();
    let service_jobs = [
        ("service backup 1", json!({"kind": "backup"})),
        ("service backup 2", json!({"kind": "backup"})),
        (
            "service slow",
            json!({"kind": "backup", "directory": "slow"}),
        ),
    ];
    let barrier = Arc::new(Barrier::new(cli_jobs.len() + service_jobs.len()));
    let mut cli_threads = Vec::new();
    for (who, args) in cli_jobs {
        let mut cmd = sb.cmd();
        cmd.env("SSTORE_BACKUP_PASSPHRASE", BACKUP_PASS).args(&args);
        let barrier = barrier.clone();
        cli_threads.push(std::thread::spawn(move || {
            barrier.wait();
            let out = cmd.output().unwrap();
            cli_verdict(&who, &out)
        }));
    }
    let mut service_threads = Vec::new();
    for (who, body) in service_jobs {
        let (barrier, service) = (barrier.clone(), service.clone());
        service_threads.push(std::thread::spawn(move || {
            barrier.wait();
            let id = service.start_job(body);
            (who, id)
        }));
    }
    let mut ended: Vec<Ended> = cli_threads.into_iter().map(|t| t.join().unwrap()).collect();
    for t in service_threads {
        let (who, id) = t.join().unwrap();
        ended.push(service_verdict(who, &service.wait_finished(&id)));
    }
    for e in &ended {
        let last_line = e.detail.lines().last().unwrap_or_default();
        eprintln!("{}: {}: {last_line}", e.who, e.verdict);
    }
    let succeeded = ended.iter().filter(|e| e.verdict != "refused").count();
    let refused = ended.iter().filter(|e| e.verdict == "refused").count();
    assert!(succeeded >= 1, "no job ran: {ended:#?}");
    assert!(
        refused >= 1,
        "ten jobs on three destinations at once, and none refused: {ended:#?}"
    );

    // One job at a time on each destination; consistent histories; nothing left behind.
    // (A job record's start precedes its lock, which it may wait for, so job spans may
    // overlap; the locks' exclusion shows in the refusals above and the histories below.)
    let records = journal(&sb);
    let places = [
        ["--directory", backups.as_str()],
        ["--target", "nas"],
        ["--target", "slow"],
    ];
    let counts = assert_histories_consistent(&sb, &places);
    // Every job that reached a destination is listed there, and nothing else is.
    for (place, count) in places.iter().zip(&counts) {
        let name = if place[0] == "--directory" {
            "backups"
        } else {
            place[1]
        };
        let reached = records
            .iter()
            .filter(|r| {
                r["copies"].as_array().into_iter().flatten().any(|c| {
                    c["state"] == "succeeded"
                        && (c["name"].as_str() == Some(name)
                            || (name == "backups"
                                && c["location"].as_str().is_some_and(|l| l.contains(&backups))))
                })
            })
            .count();
        assert_eq!(reached, *count, "{place:?}: {records:#?}");
    }
    // A job refused on every destination after it staged (`cli nas` while the configured
    // job held `nas`) keeps its staged copy pending for the next run on that staging folder.
    // The next job on each staging folder resumes what is pending there and leaves nothing.
    drop(service);
    let next_jobs: [&[&str]; 3] = [
        &["backup"],
        &["backup", "--directory", "nas"],
        &["backup", "--directory", "slow", "--staging", &staging],
    ];
    for args in next_jobs {
        let out = sb
            .cmd()
            .env("SSTORE_BACKUP_PASSPHRASE", BACKUP_PASS)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{args:?}: {}", text(&out));
        eprintln!("next {args:?}: {}", text(&out));
    }
    assert_no_work_files(&sb.backups().join(".sstore-staging"));
    assert_no_work_files(&sb.path("nas/.sstore-staging"));
    assert_no_work_files(Path::new(&staging));
    let after = assert_histories_consistent(&sb, &places);
    // The configured job reached the directory, nas and slow; the other two reached nas and
    // slow again; each may also have finished a pending copy.
    assert!(after[0] > counts[0], "{after:?} after {counts:?}");
    assert!(after[1] >= counts[1] + 2, "{after:?} after {counts:?}");
    assert!(after[2] >= counts[2] + 2, "{after:?} after {counts:?}");
}
