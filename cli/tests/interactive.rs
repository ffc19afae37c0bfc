//! The prompts, on a real pseudo-terminal (util-linux `script`): passphrase entry without echo,
//! per-field credential entry, and the confirmation before a restore overwrites the store.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Output;

use common::*;

/// Runs `sstore ARGS` on a pseudo-terminal, typing `input`.
fn on_terminal(sb: &Sandbox, args: &[&str], input: &str, without_passphrase: bool) -> Output {
    let mut cmd = sb.cmd();
    if without_passphrase {
        cmd.env_remove("SSTORE_PASSPHRASE");
    }
    let line = std::iter::once(env!("CARGO_BIN_EXE_sstore"))
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut script = std::process::Command::new("script");
    script.args(["-qec", &line, "/dev/null"]);
    // The sandbox's environment, removals included.
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => script.env(key, value),
            None => script.env_remove(key),
        };
    }
    output_with_input(&mut script, input)
}

#[test]
fn store_init_asks_twice_and_refuses_a_mismatch() {
    let sb = Sandbox::new();
    let out = on_terminal(
        &sb,
        &["store", "init"],
        "Typed-Pass-42\nTyped-Pass-43\n",
        true,
    );
    assert_ne!(code(&out), 0);
    assert!(
        text(&out).contains("the two passphrases differ"),
        "{}",
        text(&out)
    );
    assert!(!sb.store().exists());
    let out = on_terminal(
        &sb,
        &["store", "init"],
        "Typed-Pass-42\nTyped-Pass-42\n",
        true,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Repeat the store passphrase"));
    // The typed passphrase is the one that opens the store.
    let check = sb
        .cmd()
        .env("SSTORE_PASSPHRASE", "Typed-Pass-42")
        .args(["key", "refresh"])
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", text(&check));
}

#[test]
fn cred_set_prompts_for_each_field() {
    let sb = Sandbox::new();
    sb.ok(&["store", "init"]);
    sb.ok(&[
        "app",
        "new",
        "hr",
        "--type",
        "individual",
        "--field",
        "User:user-name",
        "--field",
        "PIN:pin:masked",
    ]);
    let out = on_terminal(
        &sb,
        &["cred", "set", "hr", "--principal", "carol"],
        "carol\n4711\n",
        false,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("User (user-name): ") && text(&out).contains("PIN (pin): "),
        "{}",
        text(&out)
    );
    let got: serde_json::Value =
        serde_json::from_str(&sb.ok(&["cred", "get", "hr", "--principal", "carol", "--json"]))
            .unwrap();
    assert_eq!(got["fields"]["User"], "carol");
    assert_eq!(got["fields"]["PIN"], "4711");
}

#[test]
fn restore_overwrite_asks_for_confirmation() {
    let sb = Sandbox::new();
    sb.sample_store();
    let dir = sb.backups();
    let dir = dir.to_str().unwrap();
    sb.ok(&["backup", "--directory", dir]);
    sb.ok(&["cred", "clear", "crm", "--principal", "CONTOSO\\alice"]);
    let live = std::fs::read(sb.store()).unwrap();
    let args = ["restore", "--directory", dir, "--method", "overwrite"];
    let out = on_terminal(&sb, &args, "no\n", false);
    assert_ne!(code(&out), 0);
    assert!(text(&out).contains("restore cancelled"), "{}", text(&out));
    assert_eq!(std::fs::read(sb.store()).unwrap(), live);
    let out = on_terminal(&sb, &args, "yes\n", false);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        sb.ok(&["cred", "get", "crm", "--principal", "CONTOSO\\alice"])
            .contains("Secret-of-alice")
    );
}
