//! `sstore operator ...` with the real binary: the operators file it writes, what it prints,
//! and that no password or token ends up anywhere but where it belongs.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;

use common::{Sandbox, code, text};
use sstore_service::auth::{AuthError, OperatorStore, Role};

const ALICE_PW: &str = "Alice-Operator-Pass-1";
const ALICE_PW2: &str = "Alice-Second-Pass-22";
const BOB_PW: &str = "Bob-Viewer-Passw0rd";

/// The operators file when there is no config: in the platform data folder.
fn default_operators(sb: &Sandbox) -> PathBuf {
    sb.path("data/sstore/service/operators.json")
}

fn audit_log(sb: &Sandbox) -> PathBuf {
    sb.path("data/sstore/service/audit.log")
}

/// Runs with `stdin`; asserts success; returns (stdout, stderr).
fn ok_with(sb: &Sandbox, args: &[&str], stdin: &str) -> (String, String) {
    let out = sb.run_with_stdin(args, stdin);
    assert!(out.status.success(), "sstore {args:?}: {}", text(&out));
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn is_token(s: &str) -> bool {
    s.len() == 68 && s.starts_with("sst_") && s[4..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[test]
fn operators_are_added_listed_given_tokens_and_removed_without_a_secret_leaking() {
    let sb = Sandbox::new();
    let printed = std::cell::RefCell::new(String::new());
    let keep = |(out, err): (String, String)| {
        printed.borrow_mut().push_str(&out);
        printed.borrow_mut().push_str(&err);
        out
    };

    keep(ok_with(
        &sb,
        &["operator", "add", "alice", "--role", "admin"],
        &format!("{ALICE_PW}\nignored second line\n"),
    ));
    keep(ok_with(
        &sb,
        &["operator", "add", "bob", "--role", "viewer"],
        &format!("{BOB_PW}\r\n"),
    ));
    let file = default_operators(&sb);
    assert!(file.is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Two tokens for alice: printed once each, on stdout alone, and different.
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let (out, err) = ok_with(&sb, &["operator", "token", "alice"], "");
        let token = out.trim().to_owned();
        assert!(is_token(&token), "{out}");
        assert_eq!(out, format!("{token}\n"));
        assert!(err.contains("cannot be shown again"), "{err}");
        assert!(!err.contains(&token));
        printed.borrow_mut().push_str(&err);
        tokens.push(token);
    }
    assert_ne!(tokens[0], tokens[1]);

    let listing = keep(ok_with(&sb, &["operator", "list"], ""));
    let lines: Vec<&str> = listing.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{listing}");
    let alice: Vec<&str> = lines[1].split_whitespace().collect();
    let bob: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(&alice[..3], ["alice", "admin", "2"], "{listing}");
    assert_eq!(&bob[..3], ["bob", "viewer", "0"], "{listing}");
    let json: serde_json::Value =
        serde_json::from_str(&keep(ok_with(&sb, &["operator", "list", "--json"], ""))).unwrap();
    assert_eq!(json[0]["name"], "alice");
    assert_eq!(json[0]["role"], "admin");
    assert_eq!(json[0]["tokens"], 2);
    assert_eq!(json[0]["token_ids"][0].as_str().unwrap(), &tokens[0][..12]);
    assert!(json[0]["created"].as_str().unwrap().ends_with('Z'));

    // What the service would check.
    let service = OperatorStore::open(&file).unwrap();
    assert_eq!(
        service.verify_password("alice", ALICE_PW).unwrap().role,
        Role::Admin
    );
    assert_eq!(service.verify_token(&tokens[1]).unwrap().name, "alice");
    assert!(matches!(
        service.verify_password("bob", ALICE_PW),
        Err(AuthError::BadCredentials)
    ));

    keep(ok_with(
        &sb,
        &["operator", "passwd", "alice"],
        &format!("{ALICE_PW2}\n"),
    ));
    assert!(service.verify_password("alice", ALICE_PW).is_err());
    service.verify_password("alice", ALICE_PW2).unwrap();
    assert!(
        service.verify_token(&tokens[0]).is_some(),
        "tokens survive a new password"
    );

    // A third token, revoked by its id: it stops working, the others do not.
    let (out, _) = ok_with(&sb, &["operator", "token", "alice"], "");
    let third = out.trim().to_owned();
    let listing = keep(ok_with(&sb, &["operator", "list"], ""));
    assert!(listing.contains(&third[..12]), "{listing}");
    let (out, _) = ok_with(&sb, &["operator", "revoke", "alice", &third[..12]], "");
    assert!(
        out.contains(&format!("Revoked API token {}", &third[..12])),
        "{out}"
    );
    printed.borrow_mut().push_str(&out);
    assert!(service.verify_token(&third).is_none());
    assert!(service.verify_token(&tokens[0]).is_some());
    let out = sb.run(&["operator", "revoke", "alice", &third[..12]]);
    assert_ne!(code(&out), 0);
    assert!(text(&out).contains(&third[..12]), "{}", text(&out));

    let (out, _) = ok_with(&sb, &["operator", "remove", "alice"], "");
    assert!(out.contains("2 API token"), "{out}");
    printed.borrow_mut().push_str(&out);
    assert!(service.verify_token(&tokens[0]).is_none());
    assert!(service.verify_token(&tokens[1]).is_none());
    assert!(service.verify_password("alice", ALICE_PW2).is_err());
    let listing = keep(ok_with(&sb, &["operator", "list"], ""));
    assert!(!listing.contains("alice"), "{listing}");

    // No secret in the operators file, the audit log, or anything printed.
    let stored = std::fs::read_to_string(&file).unwrap();
    let audit = std::fs::read_to_string(audit_log(&sb)).unwrap();
    for secret in [ALICE_PW, ALICE_PW2, BOB_PW, &tokens[0], &tokens[1], &third] {
        assert!(!stored.contains(secret), "{secret} in the operators file");
        assert!(!audit.contains(secret), "{secret} in the audit log");
        let printed = printed.borrow();
        assert!(!printed.contains(secret), "{secret} printed: {printed}");
    }
    for token in &tokens {
        assert!(!stored.contains(&token[12..]));
    }
    let events: Vec<String> = audit
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["event"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        events,
        [
            "operator-added",
            "operator-added",
            "token-issued",
            "token-issued",
            "password-changed",
            "token-issued",
            "token-revoked",
            "operator-removed"
        ]
    );
}

#[test]
fn a_short_or_missing_password_is_refused_and_nothing_is_written() {
    let sb = Sandbox::new();
    let out = sb.run_with_stdin(
        &["operator", "add", "alice", "--role", "admin"],
        "short-pass\n",
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("at least 12 characters"), "{said}");
    assert!(!said.contains("short-pass"), "{said}");
    assert!(!default_operators(&sb).exists());

    let out = sb.run_with_stdin(&["operator", "add", "alice", "--role", "admin"], "");
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(text(&out).contains("no password given"), "{}", text(&out));

    ok_with(
        &sb,
        &["operator", "add", "alice", "--role", "operator"],
        &format!("{ALICE_PW}\n"),
    );
    let before = std::fs::read(default_operators(&sb)).unwrap();
    let out = sb.run_with_stdin(&["operator", "passwd", "alice"], "tooshort\n");
    assert_eq!(code(&out), 1);
    assert!(text(&out).contains("at least 12 characters"));
    assert_eq!(std::fs::read(default_operators(&sb)).unwrap(), before);
}

#[test]
fn bad_names_duplicates_and_unknown_operators_are_refused_by_name() {
    let sb = Sandbox::new();
    let pw = format!("{ALICE_PW}\n");
    ok_with(&sb, &["operator", "add", "alice", "--role", "viewer"], &pw);
    for (args, expect) in [
        (
            vec!["operator", "add", "alice", "--role", "admin"],
            "already exists",
        ),
        (
            vec!["operator", "add", "Al ice", "--role", "admin"],
            "invalid operator name",
        ),
        (
            vec!["operator", "remove", "carol"],
            "no operator named carol",
        ),
        (
            vec!["operator", "token", "carol"],
            "no operator named carol",
        ),
        (
            vec!["operator", "passwd", "carol"],
            "no operator named carol",
        ),
    ] {
        // Each fails before reading a password (stdin is empty).
        let out = sb.run(&args);
        assert_eq!(code(&out), 1, "{args:?}: {}", text(&out));
        assert!(text(&out).contains(expect), "{args:?}: {}", text(&out));
    }
    let out = sb.run(&["operator", "add", "x", "--role", "root"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
}

#[test]
fn the_operators_file_is_the_configs_or_beside_it() {
    let sb = Sandbox::new();
    let pw = format!("{ALICE_PW}\n");
    let named = sb.path("etc/named.toml");
    std::fs::create_dir_all(named.parent().unwrap()).unwrap();
    std::fs::write(&named, "[serve]\noperators = \"ops/people.json\"\n").unwrap();
    ok_with(
        &sb,
        &[
            "--config",
            named.to_str().unwrap(),
            "operator",
            "add",
            "alice",
            "--role",
            "admin",
        ],
        &pw,
    );
    assert!(sb.path("etc/ops/people.json").is_file());

    let beside = sb.path("conf/sstore.toml");
    std::fs::create_dir_all(beside.parent().unwrap()).unwrap();
    std::fs::write(&beside, "").unwrap();
    let config = beside.to_str().unwrap();
    ok_with(
        &sb,
        &[
            "--config", config, "operator", "add", "bob", "--role", "viewer",
        ],
        &pw,
    );
    assert!(sb.path("conf/operators.json").is_file());
    let listing = ok_with(&sb, &["--config", config, "operator", "list"], "").0;
    assert!(
        listing.contains("bob") && !listing.contains("alice"),
        "{listing}"
    );
    assert!(!default_operators(&sb).exists());
}

#[cfg(unix)]
#[test]
fn an_operators_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    ok_with(
        &sb,
        &["operator", "add", "alice", "--role", "admin"],
        &format!("{ALICE_PW}\n"),
    );
    let file = default_operators(&sb);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = sb.run(&["operator", "list"]);
    assert_eq!(code(&out), 1);
    let said = text(&out);
    assert!(said.contains("chmod 600"), "{said}");
    assert!(said.contains(&file.display().to_string()), "{said}");
}
