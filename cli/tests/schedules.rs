//! `sstore schedules` with the real binary: schedules from the config, runs from the job
//! journal, no service running.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{Sandbox, code, text};

/// Seconds since 1970 as RFC 3339 UTC (`2025-03-01T02:00:03Z`).
fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    // Civil from days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// `2025-03-01 02:00:03 UTC`, as the command prints times on a UTC clock.
fn shown(secs: i64) -> String {
    rfc3339(secs).replace('T', " ").replace('Z', " UTC")
}

fn now_secs() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn write_record(jobs: &Path, id: &str, by: &str, state: &str, started: &str, finished: &str) {
    std::fs::create_dir_all(jobs).unwrap();
    let record = serde_json::json!({
        "format": 1,
        "id": id,
        "state": state,
        "item": "SecureStore",
        "folder": "sstorebr0000",
        "requested_by": by,
        "host": "elsewhere",
        "pid": 1,
        "started": started,
        "finished": finished,
        "staging": "/nowhere",
        "failure_message": if state == "failed" { Some("the NAS is offline") } else { None },
        "copies": [],
    });
    std::fs::write(
        jobs.join(format!("{id}.json")),
        serde_json::to_vec_pretty(&record).unwrap(),
    )
    .unwrap();
}

fn write_config(sandbox: &Sandbox, text: &str) {
    let dir = sandbox.path("config").join("sstore");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), text).unwrap();
}

#[test]
fn schedules_show_the_last_run_its_outcome_and_the_next_run() {
    let sandbox = Sandbox::new();
    let jobs = sandbox.path("jobs");
    let backups = sandbox.backups();
    write_config(
        &sandbox,
        &format!(
            "[backup]\ndirectory = '{}'\njobs = '{}'\n\n\
             [[schedule]]\nname = 'nightly'\ncron = '0 2 * * *'\ntimezone = 'UTC'\n\
             targets = ['nas']\nalert_after = '26h'\non_key_change = true\n\n\
             [[schedule]]\nname = 'often'\nevery = '6h'\ndirectory = '/srv/other'\n\
             alert_after = '1d'\n",
            backups.display(),
            jobs.display()
        ),
    );
    // The nightly schedule ran an hour ago (and failed once before); someone ran a backup by
    // hand since; the other schedule never ran.
    let before = now_secs();
    let started = before - 3600;
    let finished = started + 65;
    write_record(
        &jobs,
        "old-one",
        "schedule:nightly",
        "failed",
        "2025-02-28T02:00:04Z",
        "2025-02-28T02:01:00Z",
    );
    write_record(
        &jobs,
        "last-one",
        "schedule:nightly",
        "succeeded",
        &rfc3339(started),
        &rfc3339(finished),
    );
    write_record(
        &jobs,
        "by-hand",
        "alice@host",
        "failed",
        &rfc3339(started + 600),
        &rfc3339(started + 660),
    );
    // The first 02:00 UTC strictly after the last start.
    let mut next = started.div_euclid(86_400) * 86_400 + 2 * 3600;
    if next <= started {
        next += 86_400;
    }

    let out = sandbox
        .cmd()
        .env("TZ", "UTC")
        .args(["schedules", "--json"])
        .output()
        .unwrap();
    let after = now_secs();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = json["schedules"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{json}");

    let nightly = &list[0];
    assert_eq!(nightly["name"], "nightly");
    assert_eq!(nightly["trigger"], "cron \"0 2 * * *\" (UTC)");
    assert_eq!(nightly["cron"], "0 2 * * *");
    assert_eq!(nightly["timezone"], "UTC");
    assert_eq!(nightly["directory"], backups.display().to_string());
    assert_eq!(nightly["targets"], serde_json::json!(["nas"]));
    assert_eq!(nightly["on_key_change"], true);
    assert_eq!(nightly["last_run"]["id"], "last-one");
    assert_eq!(nightly["last_run"]["state"], "succeeded");
    assert_eq!(nightly["last_run"]["started"], rfc3339(started));
    assert_eq!(nightly["last_run"]["finished"], rfc3339(finished));
    assert_eq!(nightly["last_outcome"], "succeeded");
    assert_eq!(nightly["last_success"], rfc3339(finished));
    assert_eq!(nightly["next_run"], rfc3339(next));
    assert_eq!(nightly["due"], false);
    assert_eq!(nightly["stale"], serde_json::Value::Null);

    let often = &list[1];
    assert_eq!(often["name"], "often");
    assert_eq!(often["trigger"], "every 6h");
    assert_eq!(often["every"], "6h");
    assert_eq!(often["directory"], "/srv/other");
    assert_eq!(often["last_run"], serde_json::Value::Null);
    assert_eq!(often["last_outcome"], serde_json::Value::Null);
    // Never ran: due at once.
    assert_eq!(often["due"], true);
    let next_often = often["next_run"].as_str().unwrap();
    assert!(
        (before..=after).any(|s| rfc3339(s) == next_often),
        "{next_often} not between {before} and {after}"
    );
    assert!(
        often["stale"]
            .as_str()
            .unwrap()
            .contains("no successful backup yet"),
        "{often}"
    );

    let out = sandbox
        .cmd()
        .env("TZ", "UTC")
        .arg("schedules")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let shown_text = String::from_utf8(out.stdout).unwrap();
    for expected in [
        "nightly: cron \"0 2 * * *\" (UTC), and after every Master Key change".to_string(),
        format!("destinations  {}, nas", backups.display()),
        format!("next run      {} (in ", shown(next)),
        format!(
            "last run      {} (1h ago), succeeded (job last-one)",
            shown(started)
        ),
        format!("last success  {}", shown(finished)),
        "often: every 6h".to_string(),
        "destinations  /srv/other".to_string(),
        "next run      now (it never ran)".to_string(),
        "last run      never".to_string(),
        "warning: schedule 'often' has no successful backup yet".to_string(),
    ] {
        assert!(
            shown_text.contains(&expected),
            "missing {expected:?} in:\n{shown_text}"
        );
    }
    assert!(
        !shown_text.contains("warning: schedule 'nightly'"),
        "{shown_text}"
    );
}

#[test]
fn a_missed_run_and_a_stale_schedule_are_shown() {
    let sandbox = Sandbox::new();
    let jobs = sandbox.path("jobs");
    write_config(
        &sandbox,
        &format!(
            "[backup]\ndirectory = '/srv/b'\njobs = '{}'\n\
             [[schedule]]\nname = 'nightly'\ncron = '0 2 * * *'\ntimezone = 'utc'\nalert_after = '26h'\n\
             [[schedule]]\nname = 'weekly'\ncron = '0 3 * * 0'\ntimezone = 'UTC'\n",
            jobs.display()
        ),
    );
    write_record(
        &jobs,
        "march",
        "schedule:nightly",
        "succeeded",
        "2025-03-01T02:00:03Z",
        "2025-03-01T02:04:10Z",
    );
    let out = sandbox.run(&["schedules", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let nightly = &json["schedules"][0];
    // Many nights passed since: one run is due, counted from the first missed slot.
    assert_eq!(nightly["next_run"], "2025-03-02T02:00:00Z");
    assert_eq!(nightly["due"], true);
    let stale = nightly["stale"].as_str().unwrap();
    assert!(stale.contains("2025-03-01 02:04:10 UTC"), "{stale}");
    assert!(stale.contains("26h"), "{stale}");
    // A cron schedule that never ran waits for its first match, and has no staleness limit.
    let weekly = &json["schedules"][1];
    assert_eq!(weekly["due"], false);
    assert_eq!(weekly["stale"], serde_json::Value::Null);

    let shown_text = sandbox.ok(&["schedules"]);
    assert!(
        shown_text.contains("next run      due since 2025-03-02 02:00:00 UTC"),
        "{shown_text}"
    );
    assert!(
        shown_text.contains("warning: schedule 'nightly' has had no successful backup for"),
        "{shown_text}"
    );
}

#[test]
fn no_schedules_a_bad_schedule_and_an_unreadable_journal() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["schedules"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("No schedules"), "{}", text(&out));

    write_config(
        &sandbox,
        "[[schedule]]\nname = 'nightly'\nevery = '6h'\ncron = '0 2 * * *'\n",
    );
    let out = sandbox.run(&["schedules"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("'nightly'") && err.contains("`every`"),
        "{err}"
    );

    // The journal folder is a file: the journal cannot be read.
    let not_a_folder = sandbox.path("jobs");
    std::fs::write(&not_a_folder, "x").unwrap();
    write_config(
        &sandbox,
        &format!(
            "[backup]\njobs = '{}'\n[[schedule]]\nname = 'often'\nevery = '6h'\n",
            not_a_folder.display()
        ),
    );
    let out = sandbox.run(&["schedules", "--json"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("job journal"),
        "{}",
        text(&out)
    );
}
