//! The compiled-in example: its registration reaches the registry, it passes the conformance
//! kit, and the `sstore-mirror` binary backs up to it and restores from the second copy when
//! the first is lost.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use sstore_target_api::{OpenRequest, Registry};

const PASS: &str = "Mirror-Test-Pass-7";

fn settings(a: &std::path::Path, b: &std::path::Path) -> toml::Table {
    toml::from_str(&format!(
        "paths = [\"{}\", \"{}\"]",
        a.display(),
        b.display()
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_kind_registers_and_conforms() {
    sstore_example_mirror::link();
    let registry = Registry::builtin();
    let kind = registry
        .kind("mirror")
        .expect("the mirror kind is registered");
    assert!(kind.schemes.is_empty());

    let dir = tempfile::tempdir().unwrap();
    let request = OpenRequest {
        name: "pair".into(),
        url: None,
        config: settings(&dir.path().join("a"), &dir.path().join("b")),
    };
    let target = registry.open("mirror", &request).await.unwrap();
    let unreachable = OpenRequest {
        name: "broken".into(),
        url: None,
        config: settings(&dir.path().join("a"), &dir.path().join("file/below")),
    };
    std::fs::write(dir.path().join("file"), b"not a folder").unwrap();
    let options = sstore_conformance::KitOptions {
        // Every byte is written twice; 64 MiB keeps the run short while still streaming.
        large_object_bytes: 64 * 1024 * 1024,
        unreachable: Some(registry.open("mirror", &unreachable).await.unwrap()),
        ..Default::default()
    };
    sstore_conformance::assert_conforms(target, &options).await;

    // A typo in the settings names the key and the target.
    let typo = OpenRequest {
        name: "pair".into(),
        url: None,
        config: toml::from_str("pathz = []").unwrap(),
    };
    let err = registry.open("mirror", &typo).await.unwrap_err();
    assert!(err.to_string().contains("pathz"), "{err}");
    assert!(err.to_string().contains("pair"), "{err}");
}

fn sstore(home: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sstore-mirror"));
    for (key, _) in std::env::vars() {
        if key.starts_with("SSTORE_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("SSTORE_STORE", home.join("store.db"))
        .env("SSTORE_PASSPHRASE", PASS)
        .arg("--config")
        .arg(home.join("sstore.toml"));
    cmd
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed: {}{}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_custom_binary_backs_up_to_the_mirror_and_survives_a_lost_copy() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let (a, b) = (home.join("usb-a"), home.join("usb-b"));
    std::fs::write(
        home.join("sstore.toml"),
        format!(
            "[[target]]\nname = \"pair\"\nkind = \"mirror\"\npaths = [\"{}\", \"{}\"]\n",
            a.display(),
            b.display()
        ),
    )
    .unwrap();
    ok(sstore(home).args(["store", "init"]));
    ok(sstore(home).args(["app", "new", "crm", "--type", "individual"]));

    let listing = ok(sstore(home).arg("targets"));
    assert!(listing.contains("mirror"), "{listing}");
    assert!(listing.contains("local"), "{listing}");
    assert!(listing.contains("pair"), "{listing}");

    ok(sstore(home).args(["backup", "--directory", "pair"]));
    for copy in [&a, &b] {
        assert!(copy.join("sstorebr0000/sstorebackup.bak").is_file());
        assert!(copy.join("sstorebrtoc.json").is_file());
    }

    // The first disk loses the backup file: restore reads it from the second.
    std::fs::remove_file(a.join("sstorebr0000/sstorebackup.bak")).unwrap();
    let restored = home.join("restored.db");
    ok(sstore(home).args([
        "restore",
        "--directory",
        "pair",
        "--method",
        "new",
        "--new-store",
        restored.to_str().unwrap(),
    ]));
    let apps = ok(sstore(home)
        .args(["--store", restored.to_str().unwrap()])
        .args(["app", "list"]));
    assert!(apps.contains("crm"), "{apps}");
}
