//! The default `sstore` needs nothing but a Rust toolchain to build and the C runtime to run:
//! no crate of the default build links a system library (the `links` keys of its dependency
//! graph are only crates that build bundled C sources), and the built binary loads nothing
//! beyond libc, libm, libgcc_s and the loader. A system library coming back (as libsmbclient
//! once did, and every newcomer's first build failed) fails this test.

#![cfg(not(feature = "libsmbclient"))]
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

/// `links` values of crates that compile C sources they carry (and their version-stamped
/// variants): SQLite (rusqlite's `bundled`), zstd, AWS-LC and ring (rustls' crypto), the
/// mimalloc allocator, and wasm-bindgen's marker (WebAssembly targets only).
const BUNDLED: &[&str] = &[
    "sqlite3",
    "zstd",
    "aws_lc",
    "ring_core",
    "mimalloc",
    "wasm_bindgen",
];

/// Libraries every Linux program loads: the C runtime and the dynamic loader.
const C_RUNTIME: &[&str] = &[
    "linux-vdso",
    "libc.so",
    "libm.so",
    "libgcc_s.so",
    "ld-linux",
    "libpthread.so",
    "libdl.so",
    "librt.so",
];

#[test]
fn no_crate_of_the_default_build_links_a_system_library() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // The crates this host's build uses (others, like a fiat backend for other targets, are
    // not downloaded and not linked).
    let rustc = Command::new("rustc").arg("-vV").output().unwrap();
    let host = String::from_utf8(rustc.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .unwrap();
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
        ])
        .arg(&host)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages: HashMap<&str, &serde_json::Value> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p))
        .collect();
    let nodes: HashMap<&str, &serde_json::Value> = metadata["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let root = packages
        .values()
        .find(|p| p["name"] == "sstore-cli")
        .map(|p| p["id"].as_str().unwrap())
        .unwrap();
    // Everything the binary is built from: normal and build dependencies, transitively.
    let mut seen = BTreeSet::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let used = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null() || k["kind"] == "build");
            if used {
                stack.push(dep["pkg"].as_str().unwrap());
            }
        }
    }
    assert!(
        seen.len() > 100,
        "the graph looks wrong: {} crates",
        seen.len()
    );
    let system: Vec<String> = seen
        .iter()
        .filter_map(|id| {
            let p = packages[id];
            let links = p["links"].as_str()?;
            (!BUNDLED.iter().any(|b| links.starts_with(b)))
                .then(|| format!("{} {} (links = \"{links}\")", p["name"], p["version"]))
        })
        .collect();
    assert!(
        system.is_empty(),
        "the default build needs system libraries: {system:?}; put such a crate behind an \
         opt-in feature (as libsmbclient is)"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn the_default_binary_loads_only_the_c_runtime() {
    let binary = env!("CARGO_BIN_EXE_sstore");
    let out = Command::new("ldd").arg(binary).output().unwrap();
    assert!(out.status.success(), "ldd {binary}: {out:?}");
    let listing = String::from_utf8(out.stdout).unwrap();
    let libraries: Vec<&str> = listing
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(
        libraries.iter().any(|l| l.starts_with("libc.so")),
        "{listing}"
    );
    let extra: Vec<&&str> = libraries
        .iter()
        .filter(|l| !C_RUNTIME.iter().any(|c| l.contains(c)))
        .collect();
    assert!(
        extra.is_empty(),
        "{binary} loads libraries beyond the C runtime: {extra:?}\n{listing}"
    );
}
