//! Shared set-up for sstore's cross-crate tests: real stores on disk, real backup folders.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use sstore_core::backup::{BackupDirectory, BackupOptions};
use sstore_core::format::{Compression, MIN_CHUNK_SIZE};
use sstore_core::store::{AppType, CredentialSet, FieldDef, FieldType, SecureStore, TargetApp};
use sstore_core::{KdfParams, Passphrase};
use sstore_target_local::LocalTarget;

pub mod mssql_engine;
pub mod tds_standin;

/// Set by `cargo xtask ci`: tests keep the files they write, for the secret scan after the
/// suite (see xtask/src/secret_scan.rs).
pub const KEEP_FILES_ENV: &str = "SSTORE_TEST_KEEP_FILES";

/// A private temporary folder for one test, removed when dropped unless [`KEEP_FILES_ENV`] is
/// set.
pub fn scratch_dir() -> tempfile::TempDir {
    let mut dir = tempfile::Builder::new()
        .prefix("sstore-test-")
        .tempdir()
        .unwrap();
    if std::env::var_os(KEEP_FILES_ENV).is_some() {
        dir.disable_cleanup(true);
    }
    dir
}

/// Writes a secret file as sstore expects one: owner-only (0600 on Unix).
pub fn write_secret_file(path: &Path, text: &str) {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

pub fn passphrase() -> Passphrase {
    Passphrase::new("Test-Passphrase-42")
}

/// The value stored for `field` of `principal` in `app` by [`populate`]: unique per cell.
pub fn expected_value(app: &str, principal: &str, field: &str) -> String {
    format!(
        "{field}|{principal}|{app}|{}",
        app.len() * 7919 + principal.len()
    )
}

/// Creates a store at `path` with `apps` applications; individual ones get `per_app`
/// principals, every tenth application is a group application with one set. Returns the
/// number of credential sets written.
pub fn populate(path: &Path, apps: usize, per_app: usize) -> u64 {
    let mut store = SecureStore::create(path, &passphrase(), KdfParams::MINIMUM).unwrap();
    let definitions: Vec<TargetApp> = (0..apps)
        .map(|i| {
            let app_type = if i % 10 == 9 {
                AppType::Group
            } else {
                AppType::Individual
            };
            let mut app = TargetApp::new(format!("app-{i:05}"), app_type);
            if i % 3 == 0 {
                app.fields = vec![
                    FieldDef::new("User", FieldType::UserName, false),
                    FieldDef::new("Password", FieldType::Password, true),
                    FieldDef::new("Pin", FieldType::Pin, true),
                ];
            }
            app
        })
        .collect();
    store.create_apps(&definitions).unwrap();
    let mut store = store.unlock(&passphrase()).unwrap();
    let mut sets = Vec::new();
    for app in &definitions {
        let principals = if app.app_type.is_group() { 1 } else { per_app };
        for p in 0..principals {
            let principal = if app.app_type.is_group() {
                format!("CONTOSO\\group-{}", app.name)
            } else {
                format!("CONTOSO\\user{p:03}")
            };
            let mut set = CredentialSet::new(&app.name, &principal);
            for field in &app.fields {
                set = set.with(
                    &field.name,
                    expected_value(&app.name, &principal, &field.name),
                );
            }
            sets.push(set);
        }
    }
    store.set_many(&sets).unwrap();
    sets.len() as u64
}

/// Checks every credential value of a store populated by [`populate`].
pub fn assert_all_values(path: &Path) -> u64 {
    let store = SecureStore::open(path)
        .unwrap()
        .unlock(&passphrase())
        .unwrap();
    let mut checked = 0;
    for app in store.apps().unwrap() {
        for principal in store.principals(&app.name).unwrap() {
            let set = store.credentials(&app.name, &principal).unwrap();
            assert_eq!(set.values.len(), app.fields.len());
            for (field, value) in &set.values {
                assert_eq!(
                    value.as_str(),
                    expected_value(&app.name, &principal, field),
                    "{}/{principal}/{field}",
                    app.name
                );
            }
            checked += 1;
        }
    }
    checked
}

/// A backup directory in a local folder, staging inside it (as the CLI does).
pub fn local_directory(dir: &Path) -> BackupDirectory {
    BackupDirectory::new(Arc::new(LocalTarget::new(dir)), dir.join(".sstore-staging"))
}

/// Options that make a small store span many chunks, with the cheapest allowed KDF.
pub fn many_chunk_options() -> BackupOptions {
    BackupOptions {
        item: None,
        kdf: KdfParams::MINIMUM,
        compression: Compression::None,
        chunk_size: MIN_CHUNK_SIZE,
    }
}

/// Default options with the cheapest KDF a writer accepts, for tests that make many backups.
pub fn fast_options() -> BackupOptions {
    BackupOptions {
        kdf: KdfParams::MINIMUM,
        ..BackupOptions::default()
    }
}

/// The names in the staging folder of the backup directory at `root`.
pub fn staging_entries(root: &Path) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(root.join(".sstore-staging"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect()
}

/// The shared libraries of the example plugin and the test fixtures (wrong ABI; faults from
/// the conformance kit's rules), built (or found up to date) by `cargo build` in this
/// workspace's target folder.
pub struct BuiltPlugins {
    /// `sumfolder` (`examples/plugin-sumfolder`).
    pub sumfolder: std::path::PathBuf,
    /// A plugin for ABI version 999 (`tests/fixtures/wrong-abi-plugin`).
    pub wrong_abi: std::path::PathBuf,
    /// `faultyfolder` (`tests/fixtures/faulty-plugin`): a folder whose `faults` setting holds
    /// the kit's fault rules.
    pub faulty: std::path::PathBuf,
}

/// Builds the plugin libraries once per test process. Test binaries live in
/// `<target>/<profile>/deps`, so the target folder and profile are found from this executable.
pub fn build_plugins() -> &'static BuiltPlugins {
    static BUILT: std::sync::OnceLock<BuiltPlugins> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executables live in <target>/<profile>/deps")
            .to_owned();
        let target_dir = profile_dir.parent().expect("target folder").to_owned();
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "sstore-example-sumfolder",
            "-p",
            "sstore-fixture-wrong-abi",
            "-p",
            "sstore-fixture-faulty",
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build for the plugins");
        assert!(status.success(), "building the example plugins failed");
        let lib = |name: &str| {
            profile_dir.join(format!(
                "{}{name}.{}",
                std::env::consts::DLL_PREFIX,
                std::env::consts::DLL_EXTENSION
            ))
        };
        BuiltPlugins {
            sumfolder: lib("sstore_example_sumfolder"),
            wrong_abi: lib("sstore_fixture_wrong_abi"),
            faulty: lib("sstore_fixture_faulty"),
        }
    })
}

/// Copies a library into `folder` (created owner-only) and returns the copy: plugins are
/// loaded only from files and folders that no other user can write.
pub fn install_plugin(library: &Path, folder: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(folder).expect("plugin folder");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700))
            .expect("chmod plugin folder");
    }
    let copy = folder.join(library.file_name().expect("library file name"));
    std::fs::copy(library, &copy).expect("copying the plugin");
    copy
}
