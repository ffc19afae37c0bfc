//! The example run-time plugin, loaded through the real loader, passes the whole conformance
//! kit (256 MiB streamed object, 1,500 keys), including a bounded readiness failure for a
//! plugin target that cannot be reached.

#![allow(clippy::unwrap_used)]

use sstore_core::target::{OpenRequest, Registry, TargetErrorKind};
use sstore_tests::{build_plugins, install_plugin};

fn request(name: &str, path: &std::path::Path) -> OpenRequest {
    let mut config = toml::Table::new();
    config.insert("path".into(), path.to_string_lossy().into_owned().into());
    OpenRequest {
        name: name.into(),
        url: None,
        config,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_plugin_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let file = install_plugin(&build_plugins().sumfolder, &dir.path().join("plugins"));
    let mut registry = Registry::builtin();
    let plugin = sstore_target_dylib::load_plugin(&file).unwrap();
    assert_eq!(plugin.kind, "sumfolder");
    assert_eq!(plugin.abi_version, sstore_target_dylib::ABI_VERSION);
    plugin.register(&mut registry).unwrap();

    let target = registry
        .open("sumfolder", &request("kit", &dir.path().join("kit")))
        .await
        .unwrap();
    std::fs::write(dir.path().join("a-file"), b"not a folder").unwrap();
    let unreachable = registry
        .open(
            "sumfolder",
            &request("blocked", &dir.path().join("a-file/below")),
        )
        .await
        .unwrap();
    let report = sstore_conformance::assert_conforms(
        target,
        &sstore_conformance::KitOptions {
            unreachable: Some(unreachable),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(report.counts(), (report.checks.len(), 0, 0), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_errors_keep_their_kind_and_a_bad_setting_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = install_plugin(&build_plugins().sumfolder, &dir.path().join("plugins"));
    let mut registry = Registry::builtin();
    sstore_target_dylib::load_plugin(&file)
        .unwrap()
        .register(&mut registry)
        .unwrap();

    let mut config = toml::Table::new();
    config.insert("paht".into(), "/x".into());
    let err = registry
        .open(
            "sumfolder",
            &OpenRequest {
                name: "typo".into(),
                url: None,
                config,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, TargetErrorKind::InvalidConfig);
    assert!(err.to_string().contains("paht"), "{err}");

    // An injected temporary failure crosses the ABI as a temporary I/O error, and the
    // aborted upload leaves nothing behind.
    let mut config = toml::Table::new();
    config.insert(
        "path".into(),
        dir.path()
            .join("flaky")
            .to_string_lossy()
            .into_owned()
            .into(),
    );
    config.insert("fail_after_bytes".into(), 1000.into());
    let flaky = registry
        .open(
            "sumfolder",
            &OpenRequest {
                name: "flaky".into(),
                url: None,
                config,
            },
        )
        .await
        .unwrap();
    let key = sstore_core::target::ObjectKey::new("d/obj").unwrap();
    let err = sstore_core::target::put_bytes(
        flaky.as_ref(),
        &key,
        &[7u8; 5000],
        sstore_core::target::PutMode::Create,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind, TargetErrorKind::Io);
    assert!(err.is_temporary(), "{err}");
    assert!(err.message.contains("fail_after_bytes"), "{err}");
    assert!(flaky.list("").await.unwrap().is_empty());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("flaky/objects/d"))
        .unwrap()
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
