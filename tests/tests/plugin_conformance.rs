//! The example run-time plugin, loaded through the real loader, passes the whole conformance
//! kit (256 MiB streamed object, 1,500 keys), including a bounded readiness failure for a
//! plugin target that cannot be reached; errors (and the fault plugin's injected faults)
//! cross the ABI with their kind.

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
    let dir = sstore_tests::scratch_dir();
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
    let dir = sstore_tests::scratch_dir();
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

    // Faults injected in the fault plugin cross the ABI with their kind and retry status, and
    // an aborted upload leaves nothing behind.
    let file = install_plugin(&build_plugins().faulty, &dir.path().join("plugins"));
    let plugin = sstore_target_dylib::load_plugin(&file).unwrap();
    assert_eq!(plugin.kind, "faultyfolder");
    plugin.register(&mut registry).unwrap();
    for (name, rule, kind, temporary) in [
        (
            "dropped",
            "{ operation = 'put', fault = 'fail-mid-body', after_bytes = 1000 }",
            TargetErrorKind::Network,
            true,
        ),
        (
            "flaky",
            "{ operation = 'put', fault = 'temporary' }",
            TargetErrorKind::Io,
            true,
        ),
        (
            "refused",
            "{ operation = 'put', fault = 'permanent' }",
            TargetErrorKind::PermissionDenied,
            false,
        ),
        (
            "full",
            "{ operation = 'put', fault = 'no-space' }",
            TargetErrorKind::NoSpace,
            false,
        ),
    ] {
        let root = dir.path().join(name);
        let mut config: toml::Table = toml::from_str(&format!("faults = [{rule}]")).unwrap();
        config.insert("path".into(), root.to_string_lossy().into_owned().into());
        let target = registry
            .open(
                "faultyfolder",
                &OpenRequest {
                    name: name.into(),
                    url: None,
                    config,
                },
            )
            .await
            .unwrap();
        let key = sstore_core::target::ObjectKey::new("d/obj").unwrap();
        let err = sstore_core::target::put_bytes(
            target.as_ref(),
            &key,
            &[7u8; 5000],
            sstore_core::target::PutMode::Create,
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind, kind, "{name}: {err}");
        assert_eq!(err.is_temporary(), temporary, "{name}: {err}");
        assert!(err.message.contains("injected fault"), "{name}: {err}");
        assert!(target.list("").await.unwrap().is_empty(), "{name}");
        let leftovers = files_below(&root);
        assert!(leftovers.is_empty(), "{name}: {leftovers:?}");
    }
}

/// Every file below `dir`.
fn files_below(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_below(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The fault plugin is a sound target when no rule hits (a quick run of the kit), so a test
/// failing through it fails because of the faults it was given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fault_plugin_conforms_when_no_rule_hits() {
    let dir = sstore_tests::scratch_dir();
    let file = install_plugin(&build_plugins().faulty, &dir.path().join("plugins"));
    let mut registry = Registry::builtin();
    sstore_target_dylib::load_plugin(&file)
        .unwrap()
        .register(&mut registry)
        .unwrap();
    // A rule for keys no check writes: counted, never hit.
    let mut config: toml::Table =
        toml::from_str("faults = [{ operation = 'put', key_suffix = '.never', fault = 'panic' }]")
            .unwrap();
    config.insert(
        "path".into(),
        dir.path().join("kit").to_string_lossy().into_owned().into(),
    );
    let request = OpenRequest {
        name: "kit".into(),
        url: None,
        config,
    };
    let target = registry.open("faultyfolder", &request).await.unwrap();
    let report = sstore_conformance::assert_conforms(
        target,
        &sstore_conformance::KitOptions {
            large_object_bytes: 3 * 1024 * 1024 + 1,
            many_keys: 60,
            concurrency: 4,
            ..Default::default()
        },
    )
    .await;
    // Every check ran but `unreachable` (none given).
    assert_eq!(report.counts(), (report.checks.len() - 1, 0, 1), "{report}");
}
