//! Run-time plugins through the real binary: the example `sumfolder` plugin is built, loaded
//! with `--plugin` and from a config's plugins folder, backed up to and restored from; broken,
//! foreign and insecure plugin files are refused with clear messages; a panic inside a plugin
//! (the fault-injecting test plugin's) becomes an error.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{Sandbox, code, files_under, text};
use sstore_tests::{build_plugins, install_plugin};

fn plugin(sandbox: &Sandbox) -> PathBuf {
    install_plugin(&build_plugins().sumfolder, &sandbox.path("plugins"))
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn back_up_to_a_plugin_and_restore_from_it() {
    let sandbox = Sandbox::new();
    sandbox.sample_store();
    let plugin = plugin(&sandbox);
    let remote = sandbox.path("remote");
    let url = format!("sumfolder://{}", remote.display());
    let staging = sandbox.path("staging");

    // The kind is listed with its file and ABI version.
    let listing = sandbox.ok(&["--plugin", arg(&plugin), "targets"]);
    assert!(listing.contains("sumfolder"), "{listing}");
    assert!(
        listing.contains(&format!("plugin {}", plugin.display())),
        "{listing}"
    );
    assert!(listing.contains("ABI 1"), "{listing}");
    assert!(listing.contains("local"), "{listing}");

    let out = sandbox.ok(&[
        "--plugin",
        arg(&plugin),
        "backup",
        "--directory",
        &url,
        "--staging",
        arg(&staging),
    ]);
    assert!(out.contains("succeeded"), "{out}");
    // The objects went through the plugin: each has its SHA-256 beside it.
    let sums = files_under(&remote.join("sums"));
    assert!(
        sums.iter()
            .any(|p| p.ends_with("sstorebr0000/sstorebackup.bak")),
        "{sums:?}"
    );
    assert!(remote.join("objects/sstorebrtoc.json").is_file());

    let history = sandbox.ok(&["--plugin", arg(&plugin), "history", "--directory", &url]);
    assert!(history.contains("sstorebr0000"), "{history}");
    sandbox.ok(&[
        "--plugin",
        arg(&plugin),
        "verify",
        "--directory",
        &url,
        "--staging",
        arg(&staging),
    ]);

    // Restore into a new store file and read a secret back from it.
    let restored = sandbox.path("restored.db");
    sandbox.ok(&[
        "--plugin",
        arg(&plugin),
        "restore",
        "--directory",
        &url,
        "--staging",
        arg(&staging),
        "--method",
        "new",
        "--new-store",
        arg(&restored),
    ]);
    let creds = sandbox.ok(&[
        "--store",
        arg(&restored),
        "cred",
        "get",
        "crm",
        "--principal",
        "CONTOSO\\alice",
    ]);
    assert!(creds.contains("Secret-of-alice"), "{creds}");

    // Damage on the plugin's disk is caught by the plugin's own checksum and reported as such.
    let bak = remote.join("objects/sstorebr0000/sstorebackup.bak");
    let mut bytes = std::fs::read(&bak).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&bak, bytes).unwrap();
    let out = sandbox.run(&[
        "--plugin",
        arg(&plugin),
        "verify",
        "--directory",
        &url,
        "--staging",
        arg(&staging),
    ]);
    assert_ne!(code(&out), 0, "{}", text(&out));
}

#[test]
fn a_config_names_the_plugins_folder_and_a_plugin_target() {
    let sandbox = Sandbox::new();
    sandbox.sample_store();
    plugin(&sandbox);
    let remote = sandbox.path("vault");
    let config = sandbox.path("sstore.toml");
    std::fs::write(
        &config,
        format!(
            "plugins = \"plugins\"\n\n[[target]]\nname = \"vault\"\nkind = \"sumfolder\"\npath = \"{}\"\n\n\
             [[target]]\nname = \"nowhere\"\nkind = \"sumfolder\"\npath = \"{}\"\n",
            remote.display(),
            sandbox.path("store.db/cannot/be/a/folder").display()
        ),
    )
    .unwrap();
    let listing = sandbox.ok(&["--config", arg(&config), "targets"]);
    let vault = listing.lines().skip_while(|l| !l.contains("vault")).nth(1);
    assert!(vault.is_some_and(|l| l.contains("ready")), "{listing}");
    let nowhere = listing
        .lines()
        .skip_while(|l| !l.contains("nowhere"))
        .nth(1);
    assert!(
        nowhere.is_some_and(|l| l.contains("NOT READY")),
        "{listing}"
    );

    let json = sandbox.ok(&["--config", arg(&config), "targets", "--json"]);
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    let kinds: Vec<&str> = parsed["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kind"].as_str().unwrap())
        .collect();
    let mut sorted = kinds.clone();
    sorted.sort_unstable();
    assert_eq!(kinds, sorted, "kinds are listed sorted");
    assert_eq!(parsed["targets"][0]["ready"], true);
    assert_eq!(parsed["targets"][1]["ready"], false);

    let out = sandbox.ok(&["--config", arg(&config), "backup", "--directory", "vault"]);
    assert!(out.contains("succeeded"), "{out}");
    assert!(remote.join("objects/sstorebrtoc.json").is_file());
}

#[test]
fn a_plugin_for_another_abi_version_is_refused() {
    let sandbox = Sandbox::new();
    let wrong = install_plugin(&build_plugins().wrong_abi, &sandbox.path("plugins"));
    let out = sandbox.run(&["--plugin", arg(&wrong), "targets"]);
    let message = text(&out);
    assert_eq!(code(&out), 1, "{message}");
    assert!(message.contains(&wrong.display().to_string()), "{message}");
    assert!(message.contains("ABI version 999"), "{message}");
    assert!(message.contains("speaks version 1"), "{message}");
}

#[test]
fn a_panic_inside_the_plugin_is_an_error_not_a_crash() {
    let sandbox = Sandbox::new();
    sandbox.sample_store();
    // The fault-injecting test plugin, told to panic in every put.
    install_plugin(&build_plugins().faulty, &sandbox.path("plugins"));
    let config = sandbox.path("sstore.toml");
    std::fs::write(
        &config,
        format!(
            "plugins = \"plugins\"\n\n[[target]]\nname = \"flaky\"\nkind = \"faultyfolder\"\npath = \"{}\"\n\
             faults = [{{ operation = \"put\", fault = \"panic\" }}]\n",
            sandbox.path("flaky").display()
        ),
    )
    .unwrap();
    let out = sandbox.run(&["--config", arg(&config), "backup", "--directory", "flaky"]);
    let message = text(&out);
    // A normal exit with the documented failure code: the process was not killed by the panic.
    assert_eq!(out.status.code(), Some(1), "{message}");
    assert!(
        message.contains("the plugin panicked: injected panic in put"),
        "{message}"
    );
    // The store is untouched and still opens.
    sandbox.ok(&["store", "info"]);
}

/// A copy of the C library's libm: a real shared library that is not an sstore plugin.
fn foreign_library() -> PathBuf {
    let candidates = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib/aarch64-linux-gnu/libm.so.6",
        "/usr/lib/aarch64-linux-gnu/libm.so.6",
        "/usr/lib64/libm.so.6",
        "/lib64/libm.so.6",
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("a system libm.so.6 to use as a foreign library")
}

#[test]
fn foreign_and_insecure_files_are_refused_clearly() {
    let sandbox = Sandbox::new();
    let folder = sandbox.path("plugins");

    let not_a_library = folder.join("notes.so");
    install_plugin(&build_plugins().sumfolder, &folder);
    std::fs::write(&not_a_library, "just text\n").unwrap();
    let out = sandbox.run(&["--plugin", arg(&not_a_library), "targets"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        text(&out).contains("is not a loadable shared library"),
        "{}",
        text(&out)
    );

    let foreign = install_plugin(&foreign_library(), &folder);
    let out = sandbox.run(&["--plugin", arg(&foreign), "targets"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        text(&out).contains("does not export the `sstore_plugin_entry` symbol"),
        "{}",
        text(&out)
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let plugin = folder.join(build_plugins().sumfolder.file_name().unwrap());
        std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o666)).unwrap();
        let out = sandbox.run(&["--plugin", arg(&plugin), "targets"]);
        assert_eq!(code(&out), 1, "{}", text(&out));
        assert!(
            text(&out).contains("writable by other users"),
            "{}",
            text(&out)
        );
        std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o777)).unwrap();
        let out = sandbox.run(&["--plugin", arg(&plugin), "targets"]);
        assert_eq!(code(&out), 1, "{}", text(&out));
        assert!(text(&out).contains("the folder"), "{}", text(&out));
    }
}

#[test]
fn unknown_schemes_list_the_schemes_available() {
    let sandbox = Sandbox::new();
    sandbox.sample_store();
    let plugin = plugin(&sandbox);
    let out = sandbox.run(&[
        "--plugin",
        arg(&plugin),
        "backup",
        "--directory",
        "ftp://example.invalid/backups",
    ]);
    let message = text(&out);
    assert_eq!(code(&out), 1, "{message}");
    assert!(message.contains("'ftp://'"), "{message}");
    // Every scheme this binary serves, built in and from the plugin, sorted.
    let listed = message
        .split("the schemes available are: ")
        .nth(1)
        .and_then(|rest| rest.split(" (").next())
        .unwrap_or_default();
    let schemes: Vec<&str> = listed.split(", ").collect();
    let mut expected = vec!["file", "s3", "az", "sftp", "webdav", "sumfolder"];
    if cfg!(feature = "smb") {
        expected.push("smb");
    }
    for scheme in expected {
        assert!(schemes.contains(&scheme), "{scheme} missing: {message}");
    }
    assert!(schemes.is_sorted(), "{message}");
}

#[test]
fn the_conformance_kit_passes_against_the_plugin() {
    let sandbox = Sandbox::new();
    let plugin = plugin(&sandbox);
    let url = format!("sumfolder://{}", sandbox.path("kit").display());
    let out = sandbox.ok(&["--plugin", arg(&plugin), "targets", "test", &url]);
    assert!(out.contains("PASS"), "{out}");
    assert!(!out.contains("FAIL"), "{out}");
}
