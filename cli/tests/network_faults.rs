//! Network faults between the real `sstore` binary and every real server `cargo xtask services
//! up` starts (s3s-fs, Azurite, sshd for SFTP, rclone for WebDAV, both Samba servers): each
//! configured target points at the conformance kit's fault-injecting proxy instead of its
//! server, and every backup runs through one fault at a time: latency, a throttled link, a
//! connection closed mid-upload, a connection reset mid-upload, and a black hole opening
//! mid-upload.
//!
//! For each: the job either retries and succeeds, or (the black hole) fails within the bound
//! its configured timeouts and retries give, with a temporary error naming the target; nothing
//! partial is ever listed (the history lists only verified backups, the target holds only
//! published names and complete backup files); and the next run resumes the interrupted backup
//! once the network is back. Each test prints a line of the faults it injected.

#![cfg(unix)]
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Sandbox, big_store, code, files_under, text};
use sstore_conformance::proxy::{FaultProxy, NetFault};
use sstore_conformance::services::{self, Services};
use sstore_conformance::unique;
use sstore_core::target::{Registry, Target};

/// The name of the target under test in every sandbox's config.
const NET: &str = "net";
/// How the engine retries: quickly, three attempts, no retry after 10 s of one step.
const TRANSFER: &str =
    "[transfer]\nretry_delay_ms = 50\nmax_retry_delay_ms = 200\nattempts = 3\ndeadline_secs = 10\n";

/// A secret in an owner-only file of the sandbox; its path.
fn secret_file(sandbox: &Sandbox, name: &str, secret: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = sandbox.path(name);
    std::fs::write(&path, secret).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.display().to_string()
}

/// What one fault case expects.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// The backup succeeds within this time.
    Succeeds(Duration),
    /// The backup fails within this time with a temporary error; the next run (the network
    /// back) resumes it.
    FailsThenResumes(Duration),
}

/// One target kind behind the proxy: a sandbox whose config has `[[target]] name = "net"`.
struct NetTarget {
    kind: &'static str,
    sandbox: Sandbox,
    proxy: FaultProxy,
    /// The staging folder (`[backup] staging`).
    staging: PathBuf,
    /// Faults injected, per fault kind.
    injected: Vec<(&'static str, u64)>,
}

impl NetTarget {
    /// A sandbox with the store and a config with `table` (the `[[target]]` settings after
    /// `name` and `kind`, through `proxy`), fast retries and its own staging folder.
    fn new(kind: &'static str, proxy: FaultProxy, table: impl Fn(&Sandbox) -> String) -> Self {
        let sandbox = Sandbox::new();
        // About 1 MiB of incompressible values: the backup file is one long upload that
        // the faults hit in its middle.
        big_store(&sandbox.store(), 16, 8, 8_000);
        let staging = sandbox.path("staging");
        let dir = sandbox.path("config/sstore");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("config.toml"),
            format!(
                "[backup]\nstaging = {:?}\n{TRANSFER}\n[[target]]\nname = \"{NET}\"\n{}\n",
                staging.display().to_string(),
                table(&sandbox)
            ),
        )
        .unwrap();
        Self {
            kind,
            sandbox,
            proxy,
            staging,
            injected: Vec::new(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.sandbox.run(args)
    }

    fn history(&self) -> Vec<serde_json::Value> {
        let out = self.run(&["history", "--json", "--target", NET]);
        assert_eq!(code(&out), 0, "{}: history: {}", self.kind, text(&out));
        let history: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        history["entries"].as_array().cloned().unwrap_or_default()
    }

    fn succeeded_ids(&self) -> Vec<String> {
        self.history()
            .iter()
            .filter(|e| e["kind"] == "backup" && e["status"] == "succeeded")
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The target as the binary opens it (the same config), for listings.
    async fn open(&self) -> Arc<dyn Target> {
        let _ = sstore_cli::builtin_kinds();
        let path = self.sandbox.path("config/sstore/config.toml");
        let config = sstore_core::config::Config::load(Some(&path)).unwrap();
        sstore_core::locations::open(&Registry::builtin(), &config, NET)
            .await
            .unwrap_or_else(|e| panic!("{}: opening the target: {e}", self.kind))
            .target
    }

    /// Every object on the target has a published name, and every backup file is complete:
    /// as large as the manifest beside it says, or as the staged copy still waiting for it.
    async fn assert_nothing_partial(&self, when: &str) {
        let target = self.open().await;
        let listed = target
            .list("")
            .await
            .unwrap_or_else(|e| panic!("{}: list {when}: {e}", self.kind));
        let staged: Vec<u64> = files_under(&self.staging)
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "bak"))
            .map(|p| std::fs::metadata(p).unwrap().len())
            .collect();
        for meta in &listed {
            let key = meta.key.as_str();
            let name = key.rsplit('/').next().unwrap_or(key);
            assert!(
                matches!(
                    name,
                    "sstorebrtoc.json"
                        | "sstore.lock"
                        | "sstorebackup.bak"
                        | "sstoremanifest.json"
                        | "sstorebackup.log"
                ),
                "{}: {when}: an unpublished object is listed: {key}",
                self.kind
            );
            if name == "sstorebackup.bak" {
                let folder = key.trim_end_matches("sstorebackup.bak");
                let manifest = listed
                    .iter()
                    .find(|m| m.key.as_str() == format!("{folder}sstoremanifest.json"));
                let expected = match manifest {
                    Some(m) => {
                        let bytes =
                            sstore_core::target::get_bytes(target.as_ref(), &m.key, 1024 * 1024)
                                .await
                                .unwrap();
                        let manifest: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                        vec![manifest["backup_size"].as_u64().unwrap()]
                    }
                    None => staged.clone(),
                };
                assert!(
                    expected.contains(&meta.size),
                    "{}: {when}: {key} is {} bytes, expected one of {expected:?}",
                    self.kind,
                    meta.size
                );
            }
        }
    }

    /// Nothing but the lock is left in the staging folder once a job finished.
    fn assert_staging_clean(&self, when: &str) {
        let left: Vec<PathBuf> = files_under(&self.staging)
            .into_iter()
            .filter(|p| !p.ends_with("sstore.lock"))
            .collect();
        assert!(
            left.is_empty(),
            "{}: {when}: left in staging: {left:?}",
            self.kind
        );
    }

    /// Runs a backup through `fault` and checks what `expect` says.
    async fn case(&mut self, fault: NetFault, expect: Expect) {
        let listed_before = self.succeeded_ids();
        let stats_before = self.proxy.stats();
        self.proxy.set(fault);
        let started = Instant::now();
        let out = self.run(&["backup", "--directory", NET]);
        let elapsed = started.elapsed();
        self.proxy.clear();
        let injected = self.proxy.stats().since(&stats_before);
        let all = text(&out);
        let what = format!("{} through {fault}", self.kind);
        eprintln!(
            "{what}: exit {} in {:.1}s, {} faults injected",
            code(&out),
            elapsed.as_secs_f64(),
            injected.faults()
        );
        assert!(
            injected.faults() > 0,
            "{what}: the fault never fired ({injected:?}): {all}"
        );
        self.injected.push((fault.name(), injected.faults()));
        match expect {
            Expect::Succeeds(within) => {
                assert_eq!(code(&out), 0, "{what}: {all}");
                assert!(
                    elapsed <= within,
                    "{what}: took {elapsed:?}, more than {within:?}"
                );
                let listed = self.succeeded_ids();
                assert_eq!(listed.len(), listed_before.len() + 1, "{what}: {listed:?}");
                self.assert_staging_clean(&what);
                self.assert_nothing_partial(&what).await;
            }
            Expect::FailsThenResumes(within) => {
                assert_eq!(code(&out), 1, "{what}: {all}");
                assert!(
                    elapsed <= within,
                    "{what}: failed only after {elapsed:?}, more than {within:?}: {all}"
                );
                // The error names the target and says that trying again may help.
                assert!(all.contains(NET), "{what}: the target is not named: {all}");
                assert!(
                    all.contains("temporary"),
                    "{what}: the error does not say it is temporary: {all}"
                );
                // Nothing of the failed backup is listed; nothing partial is on the target.
                assert_eq!(self.succeeded_ids(), listed_before, "{what}");
                self.assert_nothing_partial(&what).await;
                // The network is back: the next run resumes the same backup and lists it.
                let out = self.run(&["backup", "--directory", NET, "--resume"]);
                assert_eq!(code(&out), 0, "{what}: the resume: {}", text(&out));
                assert!(
                    text(&out).contains("Interrupted backup"),
                    "{what}: {}",
                    text(&out)
                );
                let listed = self.succeeded_ids();
                assert_eq!(listed.len(), listed_before.len() + 1, "{what}: {listed:?}");
                self.assert_staging_clean(&format!("{what}, resumed"));
                self.assert_nothing_partial(&format!("{what}, resumed"))
                    .await;
            }
        }
    }

    /// Every listed backup verifies (through a clean network), then prints the faults.
    fn finish(&self) {
        let out = self.run(&["verify", "--all", "--target", NET]);
        assert_eq!(code(&out), 0, "{}: verify: {}", self.kind, text(&out));
        let total: u64 = self.injected.iter().map(|(_, n)| n).sum();
        let detail: Vec<String> = self
            .injected
            .iter()
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        println!(
            "network faults: {}: {total} injected ({}), {} backups listed and verified",
            self.kind,
            detail.join(", "),
            self.succeeded_ids().len()
        );
    }
}

/// The five faults, each aimed at the middle of the backup file's upload (about 1 MiB), with
/// what each must lead to. `fail_within` bounds the black hole's failure: the target's own
/// timeouts and retries, times the engine's attempts, for every step that meets the hole.
async fn run_every_fault(net: &mut NetTarget, fail_within: Duration) {
    let quick = Duration::from_secs(60);
    net.case(
        NetFault::Latency(Duration::from_millis(20)),
        Expect::Succeeds(quick),
    )
    .await;
    net.case(
        NetFault::Throttle {
            bytes_per_sec: 1024 * 1024,
        },
        Expect::Succeeds(quick),
    )
    .await;
    net.case(
        NetFault::Drop {
            after_bytes: 300 * 1024,
            times: 2,
        },
        Expect::Succeeds(quick),
    )
    .await;
    net.case(
        NetFault::Reset {
            after_bytes: 300 * 1024,
            times: 2,
        },
        Expect::Succeeds(quick),
    )
    .await;
    net.case(
        NetFault::BlackHole {
            after_bytes: 300 * 1024,
        },
        Expect::FailsThenResumes(fail_within),
    )
    .await;
    net.finish();
}

fn port_of(endpoint: &str) -> u16 {
    endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {endpoint}"))
}

fn proxy_to(port: u16) -> FaultProxy {
    FaultProxy::to_local_port(port).unwrap()
}

const S3: &[&str] = &[
    "SSTORE_TEST_S3_ENDPOINT",
    "SSTORE_TEST_S3_BUCKET",
    "SSTORE_TEST_S3_ACCESS_KEY",
    "SSTORE_TEST_S3_SECRET_KEY",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_through_network_faults() {
    let Some(s) = services::require(S3) else {
        return;
    };
    let proxy = proxy_to(port_of(s.get("SSTORE_TEST_S3_ENDPOINT")));
    let port = proxy.port();
    let mut net = NetTarget::new("s3", proxy, |sb| {
        format!(
            "kind = 's3'\nbucket = '{}'\nprefix = '{}'\nendpoint = 'http://127.0.0.1:{port}'\n\
             allow_http = true\naccess_key_id = '{}'\nsecret_access_key_file = '{}'\n\
             timeout_secs = 2\nretries = 1\n",
            s.get("SSTORE_TEST_S3_BUCKET"),
            unique("netfault"),
            s.get("SSTORE_TEST_S3_ACCESS_KEY"),
            secret_file(sb, "s3-secret", s.get("SSTORE_TEST_S3_SECRET_KEY")),
        )
    });
    // Per request: 2 tries of 2 s (and a backoff); 3 attempts; a few steps meet the hole.
    run_every_fault(&mut net, Duration::from_secs(90)).await;
}

const AZURE: &[&str] = &[
    "SSTORE_TEST_AZURE_ENDPOINT",
    "SSTORE_TEST_AZURE_ACCOUNT",
    "SSTORE_TEST_AZURE_KEY",
    "SSTORE_TEST_AZURE_CONTAINER",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_through_network_faults() {
    let Some(s) = services::require(AZURE) else {
        return;
    };
    let endpoint = s.get("SSTORE_TEST_AZURE_ENDPOINT");
    let proxy = proxy_to(port_of(
        endpoint.trim_end_matches(&format!("/{}", s.get("SSTORE_TEST_AZURE_ACCOUNT"))),
    ));
    let port = proxy.port();
    let mut net = NetTarget::new("azure", proxy, |sb| {
        format!(
            "kind = 'azure'\ncontainer = '{}'\nprefix = '{}'\n\
             endpoint = 'http://127.0.0.1:{port}/{}'\nallow_http = true\naccount = '{}'\n\
             account_key_file = '{}'\ntimeout_secs = 2\nretries = 1\n",
            s.get("SSTORE_TEST_AZURE_CONTAINER"),
            unique("netfault"),
            s.get("SSTORE_TEST_AZURE_ACCOUNT"),
            s.get("SSTORE_TEST_AZURE_ACCOUNT"),
            secret_file(sb, "azure-key", s.get("SSTORE_TEST_AZURE_KEY")),
        )
    });
    run_every_fault(&mut net, Duration::from_secs(90)).await;
}

const SFTP: &[&str] = &[
    "SSTORE_TEST_SFTP_ENDPOINT",
    "SSTORE_TEST_SFTP_USER",
    "SSTORE_TEST_SFTP_KEY",
    "SSTORE_TEST_SFTP_ROOT",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_through_network_faults() {
    let Some(s) = services::require(SFTP) else {
        return;
    };
    let proxy = proxy_to(port_of(s.get("SSTORE_TEST_SFTP_ENDPOINT")));
    let port = proxy.port();
    let mut net = NetTarget::new("sftp", proxy, |_| {
        format!(
            "kind = 'opendal'\nservice = 'sftp'\nendpoint = 'ssh://127.0.0.1:{port}'\n\
             user = '{}'\nkey = '{}'\nroot = '{}/{}'\nknown_hosts_strategy = 'accept'\n\
             timeout_secs = 4\nio_timeout_secs = 2\nretries = 1\n",
            s.get("SSTORE_TEST_SFTP_USER"),
            s.get("SSTORE_TEST_SFTP_KEY"),
            s.get("SSTORE_TEST_SFTP_ROOT"),
            unique("netfault"),
        )
    });
    run_every_fault(&mut net, Duration::from_secs(90)).await;
}

const WEBDAV: &[&str] = &[
    "SSTORE_TEST_WEBDAV_ENDPOINT",
    "SSTORE_TEST_WEBDAV_USER",
    "SSTORE_TEST_WEBDAV_PASSWORD",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_through_network_faults() {
    let Some(s) = services::require(WEBDAV) else {
        return;
    };
    let proxy = proxy_to(port_of(s.get("SSTORE_TEST_WEBDAV_ENDPOINT")));
    let port = proxy.port();
    let mut net = NetTarget::new("webdav", proxy, |sb| {
        format!(
            "kind = 'opendal'\nservice = 'webdav'\nendpoint = 'http://127.0.0.1:{port}'\n\
             username = '{}'\npassword_file = '{}'\nroot = '/{}'\n\
             timeout_secs = 4\nio_timeout_secs = 2\nretries = 1\n",
            s.get("SSTORE_TEST_WEBDAV_USER"),
            secret_file(sb, "dav-password", s.get("SSTORE_TEST_WEBDAV_PASSWORD")),
            unique("netfault"),
        )
    });
    run_every_fault(&mut net, Duration::from_secs(90)).await;
}

const SMB: &[&str] = &[
    "SSTORE_TEST_SMB_PORT",
    "SSTORE_TEST_SMB_ENCRYPTED_PORT",
    "SSTORE_TEST_SMB_USER",
    "SSTORE_TEST_SMB_PASSWORD",
    "SSTORE_TEST_SMB_SHARE",
];

/// The SMB target through the proxy to the server on `port_key`.
fn smb_target(s: &Services, port_key: &str, extra: &str) -> NetTarget {
    let proxy = proxy_to(s.get(port_key).parse().unwrap());
    let port = proxy.port();
    let kind = if port_key.contains("ENCRYPTED") {
        "smb (encrypted)"
    } else {
        "smb (signed)"
    };
    NetTarget::new(kind, proxy, |sb| {
        format!(
            "kind = 'smb'\nserver = '127.0.0.1'\nport = {port}\nshare = '{}'\nfolder = '{}'\n\
             user = '{}'\npassword_file = '{}'\ntimeout_secs = 10\n{extra}",
            s.get("SSTORE_TEST_SMB_SHARE"),
            unique("netfault"),
            s.get("SSTORE_TEST_SMB_USER"),
            secret_file(sb, "smb-password", s.get("SSTORE_TEST_SMB_PASSWORD")),
        )
    })
}

#[cfg(feature = "smb")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smb_signed_through_network_faults() {
    let Some(s) = services::require(SMB) else {
        return;
    };
    let mut net = smb_target(&s, "SSTORE_TEST_SMB_PORT", "");
    run_every_fault(&mut net, Duration::from_secs(90)).await;
}

/// The server that requires encryption takes only libsmbclient's sessions: this runs in the
/// build with `--features libsmbclient` (`cargo xtask ci` runs it), and says so otherwise.
#[cfg(feature = "smb")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smb_encrypted_through_network_faults() {
    let Some(s) = services::require(SMB) else {
        return;
    };
    if !cfg!(feature = "libsmbclient") {
        eprintln!(
            "skipped: the SMB server that requires encryption needs the libsmbclient build \
             (cargo test -p sstore-cli --features libsmbclient --test network_faults)"
        );
        return;
    }
    let mut net = smb_target(
        &s,
        "SSTORE_TEST_SMB_ENCRYPTED_PORT",
        "encryption = 'required'\n",
    );
    run_every_fault(&mut net, Duration::from_secs(90)).await;
}
