//! The randomized kill soak: the real `sstore` binary, killed with SIGKILL at random moments
//! of a backup (staged in a local directory, then sent to two targets: a local folder and a
//! slow destination through the fault-injecting test plugin), a resume, a prune, a restore
//! and a `masterkey update`, over and over. After every round the invariants are checked:
//!
//! - every listed backup on every destination verifies (a backup verified once is checked
//!   again by its files' SHA-256: unchanged bytes verify the same), and a random one restores
//!   and opens with the passphrase of its key generation;
//! - the live store opens with the passphrase of its key generation, complete;
//! - no lock is left that blocks the next job (`sstore backup --resume` is never refused);
//! - the staging folder holds nothing but its lock after that job;
//! - folder numbers never repeat (a folder, once used by a backup, never names another);
//! - a killed restore leaves no store, or a complete one, at its destination.
//!
//! `cargo xtask ci` runs a short soak (30 kills); `cargo xtask soak --minutes N` runs one for
//! N minutes. It ends with one line of counts, `lost: 0` or what was lost (and then fails).
//! Environment: `SSTORE_SOAK_KILLS` (default 30), `SSTORE_SOAK_MINUTES` (run for that long
//! instead), `SSTORE_SOAK_SEED` (repeat a run's random choices).

#![cfg(unix)]
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{PASS, Sandbox, code, files_under, text};
use sha2::{Digest, Sha256};
use sstore_core::store::{AppType, CredentialSet, FieldDef, FieldType, SecureStore, TargetApp};
use sstore_core::{KdfParams, Passphrase};
use sstore_tests::{build_plugins, install_plugin};

/// Every backup is written with this passphrase (the store's changes with each key update).
const BACKUP_PASS: &str = "Soak-Backup-Pass-0";
const APPS: usize = 40;
const PER_APP: usize = 50;

/// What a round kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Backup,
    Resume,
    Prune,
    Restore,
    MasterKey,
}

impl Op {
    const ALL: [Op; 5] = [
        Op::Backup,
        Op::Resume,
        Op::Prune,
        Op::Restore,
        Op::MasterKey,
    ];

    fn name(self) -> &'static str {
        match self {
            Op::Backup => "backup",
            Op::Resume => "resume",
            Op::Prune => "prune",
            Op::Restore => "restore",
            Op::MasterKey => "masterkey update",
        }
    }
}

/// xorshift64*: small, seedable, good enough to pick moments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// A destination of every backup: what `--directory`/`--target` names it, and its folder.
struct Dest {
    flag: &'static str,
    name: String,
    /// Where its numbered folders are on disk.
    root: PathBuf,
}

struct Soak {
    sb: Sandbox,
    rng: Rng,
    seed: u64,
    dests: Vec<Dest>,
    /// The store passphrase of each key generation (index 0 unused; generation 1 is the first).
    passes: Vec<String>,
    /// The generation the live store is on.
    generation: u64,
    /// How long each operation takes when left alone (the kill moment is drawn below this).
    estimate: BTreeMap<Op, Duration>,
    /// (destination, folder) -> backup id, for every backup folder ever seen.
    folders: BTreeMap<(usize, String), String>,
    /// (destination, backup id) -> the SHA-256 of its files when it verified.
    verified_files: BTreeMap<(usize, String), String>,
    restores: usize,
    kills: BTreeMap<Op, u64>,
    finished_before_kill: u64,
    interrupted: u64,
    verified: u64,
    restores_checked: u64,
    rounds: u64,
    lost: Vec<String>,
}

/// A store with `APPS` x `PER_APP` credential sets of a few hundred bytes each.
fn make_store(path: &Path) {
    let mut store = SecureStore::create(path, &Passphrase::new(PASS), KdfParams::MINIMUM).unwrap();
    let apps: Vec<TargetApp> = (0..APPS)
        .map(|i| {
            let mut app = TargetApp::new(format!("app{i:03}"), AppType::Individual);
            app.fields = vec![
                FieldDef::new("User", FieldType::UserName, false),
                FieldDef::new("Password", FieldType::Password, true),
            ];
            app
        })
        .collect();
    store.create_apps(&apps).unwrap();
    let mut store = store.unlock(&Passphrase::new(PASS)).unwrap();
    let mut sets = Vec::new();
    for app in &apps {
        for p in 0..PER_APP {
            sets.push(
                CredentialSet::new(&app.name, format!("user{p:03}"))
                    .with("User", format!("{}-user{p:03}", app.name))
                    .with(
                        "Password",
                        format!("{}-{p:03}-{}", app.name, "x".repeat(200)),
                    ),
            );
        }
    }
    store.set_many(&sets).unwrap();
}

/// The number of sets in the store at `path` and its key generation, if `passphrase` opens
/// it; every value is checked.
fn open_store(path: &Path, passphrase: &str) -> Result<(usize, u64), String> {
    let store = SecureStore::open(path).map_err(|e| format!("open: {e}"))?;
    let store = store
        .unlock(&Passphrase::new(passphrase))
        .map_err(|e| format!("unlock: {e}"))?;
    let mut sets = 0;
    for app in store.apps().map_err(|e| e.to_string())? {
        for principal in store.principals(&app.name).map_err(|e| e.to_string())? {
            let set = store
                .credentials(&app.name, &principal)
                .map_err(|e| e.to_string())?;
            if set.value("User") != Some(format!("{}-{principal}", app.name).as_str()) {
                return Err(format!("{}/{principal}: wrong value", app.name));
            }
            sets += 1;
        }
    }
    let generation = store
        .master_key_info()
        .map_err(|e| e.to_string())?
        .generation;
    Ok((sets, generation))
}

fn sha256_of_files(folder: &Path) -> String {
    let mut files = files_under(folder);
    files.sort();
    let mut hasher = Sha256::new();
    for file in files {
        // The restore log grows with every restore; the backup's own files never change.
        if file.ends_with("sstorerestore.log") {
            continue;
        }
        hasher.update(file.to_string_lossy().as_bytes());
        hasher.update(std::fs::read(&file).unwrap_or_default());
    }
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Soak {
    fn new(seed: u64) -> Self {
        let sb = Sandbox::new();
        make_store(&sb.store());
        let plugins = sb.path("plugins");
        install_plugin(&build_plugins().faulty, &plugins);
        let (nas, slow) = (sb.path("nas"), sb.path("slow"));
        let config = sb.path("config/sstore");
        std::fs::create_dir_all(&config).unwrap();
        std::fs::write(
            config.join("config.toml"),
            format!(
                "plugins = {:?}\n[backup]\ndirectory = {:?}\ntargets = [\"nas\", \"slow\"]\n\
                 [transfer]\nretry_delay_ms = 20\nmax_retry_delay_ms = 100\nattempts = 3\n\n\
                 [[target]]\nname = \"nas\"\nkind = \"local\"\npath = {:?}\n\n\
                 [[target]]\nname = \"slow\"\nkind = \"faultyfolder\"\npath = {:?}\n\
                 faults = [{{ operation = \"put\", key_suffix = \".bak\", fault = \"slow-body\", ms = 300 }}]\n",
                plugins.to_str().unwrap(),
                sb.backups().to_str().unwrap(),
                nas.to_str().unwrap(),
                slow.to_str().unwrap(),
            ),
        )
        .unwrap();
        let dests = vec![
            Dest {
                flag: "--directory",
                name: sb.backups().to_str().unwrap().to_owned(),
                root: sb.backups(),
            },
            Dest {
                flag: "--target",
                name: "nas".into(),
                root: nas,
            },
            Dest {
                flag: "--target",
                name: "slow".into(),
                root: slow.join("objects"),
            },
        ];
        let estimate = Op::ALL
            .iter()
            .map(|op| (*op, Duration::from_millis(500)))
            .collect();
        Self {
            sb,
            rng: Rng(seed | 1),
            seed,
            dests,
            passes: vec![String::new(), PASS.to_owned()],
            generation: 1,
            estimate,
            folders: BTreeMap::new(),
            verified_files: BTreeMap::new(),
            restores: 0,
            kills: BTreeMap::new(),
            finished_before_kill: 0,
            interrupted: 0,
            verified: 0,
            restores_checked: 0,
            rounds: 0,
            lost: Vec::new(),
        }
    }

    /// `sstore` with the store passphrase of the current generation and the backup passphrase.
    fn cmd(&self) -> Command {
        let mut cmd = self.sb.cmd();
        cmd.env("SSTORE_PASSPHRASE", &self.passes[self.generation as usize])
            .env("SSTORE_BACKUP_PASSPHRASE", BACKUP_PASS);
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    fn problem(&mut self, what: String) {
        eprintln!("soak: LOST: {what}");
        self.lost.push(what);
    }

    /// The command of `op`, and the store path a restore writes (to check after a kill).
    fn command(&mut self, op: Op) -> (Command, Option<PathBuf>) {
        let mut cmd = self.cmd();
        let mut restored = None;
        match op {
            Op::Backup => {
                cmd.arg("backup");
            }
            Op::Resume => {
                cmd.args(["backup", "--resume"]);
            }
            Op::Prune => {
                let d = &self.dests[self.rng.below(3) as usize];
                let keep = 1 + self.rng.below(3);
                cmd.args(["prune", d.flag, &d.name, "--keep-last", &keep.to_string()]);
            }
            Op::Restore => {
                let d = &self.dests[self.rng.below(3) as usize];
                self.restores += 1;
                let path = self.sb.path(&format!("restores/r{}.db", self.restores));
                cmd.args(["restore", d.flag, &d.name, "--method", "new", "--new-store"])
                    .arg(&path);
                restored = Some(path);
            }
            Op::MasterKey => {
                let next = format!("Soak-Store-Pass-{}", self.generation + 1);
                cmd.env("SSTORE_NEW_PASSPHRASE", next)
                    .args(["masterkey", "update"]);
            }
        }
        (cmd, restored)
    }

    /// Runs each operation once to the end, to learn how long each takes.
    fn calibrate(&mut self) {
        for op in [
            Op::Backup,
            Op::Backup,
            Op::Prune,
            Op::Restore,
            Op::MasterKey,
        ] {
            let (mut cmd, _) = self.command(op);
            let started = Instant::now();
            let out = cmd.output().unwrap();
            assert_eq!(code(&out), 0, "{}: {}", op.name(), text(&out));
            self.note_duration(op, started.elapsed());
            if op == Op::MasterKey {
                self.generation += 1;
                self.passes
                    .push(format!("Soak-Store-Pass-{}", self.generation));
            }
        }
        let backup = self.estimate[&Op::Backup];
        self.estimate.insert(Op::Resume, backup);
        self.check();
    }

    fn note_duration(&mut self, op: Op, took: Duration) {
        let estimate = self.estimate.entry(op).or_default();
        *estimate = (*estimate).max(took);
    }

    /// One round: an operation killed at a random moment, then every invariant.
    fn round(&mut self) {
        self.rounds += 1;
        let op = Op::ALL[self.rng.below(Op::ALL.len() as u64) as usize];
        let (mut cmd, restored) = self.command(op);
        let limit = u64::try_from(self.estimate[&op].as_micros()).unwrap_or(u64::MAX);
        let moment = Duration::from_micros(self.rng.below(limit + 1));
        let started = Instant::now();
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut status = None;
        while started.elapsed() < moment {
            if let Some(s) = child.try_wait().unwrap() {
                status = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        let killed = match status {
            Some(_) => false,
            None => {
                let _ = child.kill();
                let s = child.wait().unwrap();
                // It may have ended on its own between the last look and the signal.
                let was_killed = {
                    use std::os::unix::process::ExitStatusExt;
                    s.signal() == Some(9)
                };
                status = Some(s);
                was_killed
            }
        };
        let stderr = {
            use std::io::Read;
            let mut text = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut text);
            }
            text
        };
        if killed {
            *self.kills.entry(op).or_default() += 1;
        } else {
            self.finished_before_kill += 1;
            self.note_duration(op, started.elapsed());
            let code = status.and_then(|s| s.code()).unwrap_or(-1);
            let fine = code == 0
                || (op == Op::Resume && code == 1 && stderr.contains("nothing to resume"));
            if !fine {
                self.problem(format!(
                    "round {}: {} ended with exit {code} without being killed: {stderr}",
                    self.rounds,
                    op.name()
                ));
            }
        }
        if op == Op::MasterKey {
            self.settle_key_change(killed);
        }
        if let Some(path) = restored {
            self.check_restored(&path, killed);
        }
        self.check();
    }

    /// After a `masterkey update`: the store is on the old generation with its passphrase, or
    /// on the next with the new one; nothing in between.
    fn settle_key_change(&mut self, killed: bool) {
        let store = self.sb.store();
        let (old, new) = (
            self.passes[self.generation as usize].clone(),
            format!("Soak-Store-Pass-{}", self.generation + 1),
        );
        match (open_store(&store, &old), open_store(&store, &new)) {
            (Ok((sets, g)), Err(_)) if g == self.generation => {
                if sets != APPS * PER_APP {
                    self.problem(format!("the store on the old key holds {sets} sets"));
                }
                if !killed {
                    self.problem("a finished key update left the old key".into());
                }
            }
            (Err(_), Ok((sets, g))) if g == self.generation + 1 => {
                if sets != APPS * PER_APP {
                    self.problem(format!("the store on the new key holds {sets} sets"));
                }
                self.generation += 1;
                self.passes.push(new);
            }
            (a, b) => self.problem(format!(
                "after a key update (killed: {killed}) the store opens with neither passphrase \
                 of its generation: old {a:?}, new {b:?}"
            )),
        }
    }

    /// A killed restore leaves nothing at its destination, or a complete store.
    fn check_restored(&mut self, path: &Path, killed: bool) {
        if !path.exists() {
            if !killed {
                self.problem(format!("a finished restore wrote no {}", path.display()));
            }
            return;
        }
        let opened = (1..self.passes.len()).find_map(|g| open_store(path, &self.passes[g]).ok());
        match opened {
            Some((sets, _)) if sets == APPS * PER_APP => {}
            other => self.problem(format!(
                "the restored store {} is incomplete or does not open: {other:?}",
                path.display()
            )),
        }
    }

    fn history(&mut self, d: usize) -> Vec<serde_json::Value> {
        let dest = &self.dests[d];
        let out = self.run(&["history", "--json", dest.flag, &dest.name]);
        if code(&out) != 0 {
            let what = format!("the history of {} does not read: {}", dest.name, text(&out));
            self.problem(what);
            return Vec::new();
        }
        let h: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        h["entries"].as_array().cloned().unwrap_or_default()
    }

    /// Every invariant, after a round.
    fn check(&mut self) {
        // The live store opens with the passphrase of its generation.
        match open_store(&self.sb.store(), &self.passes[self.generation as usize]) {
            Ok((sets, g)) if sets == APPS * PER_APP && g == self.generation => {}
            other => self.problem(format!(
                "the live store (generation {}) does not open complete: {other:?}",
                self.generation
            )),
        }
        // No lock blocks the next job; it finishes what the kill interrupted.
        let out = self.run(&["backup", "--resume"]);
        let all = text(&out);
        match code(&out) {
            0 => {
                if all.contains("Interrupted backup") {
                    self.interrupted += 1;
                }
            }
            1 if all.contains("nothing to resume") => {}
            code => self.problem(format!(
                "round {}: the next job (backup --resume) exits {code}: {all}",
                self.rounds
            )),
        }
        // Nothing is left in staging but its lock.
        let staging = self.dests[0].root.join(".sstore-staging");
        let left: Vec<PathBuf> = files_under(&staging)
            .into_iter()
            .filter(|p| !p.ends_with("sstore.lock"))
            .collect();
        if !left.is_empty() {
            self.problem(format!(
                "round {}: left in staging after the next job: {left:?}",
                self.rounds
            ));
        }
        // A killed restore leaves at most its own work file: the next restore into the folder
        // sweeps it (every round's checks restore into it).
        let leftovers = self.restore_leftovers();
        if leftovers > 1 {
            self.problem(format!(
                "round {}: {leftovers} restore work files left beside restored stores",
                self.rounds
            ));
        }
        let mut listed_everywhere = Vec::new();
        for d in 0..self.dests.len() {
            let entries = self.history(d);
            self.check_folders(d, &entries);
            for entry in entries
                .iter()
                .filter(|e| e["kind"] == "backup" && e["status"] == "succeeded")
            {
                let id = entry["id"].as_str().unwrap().to_owned();
                let folder = entry["folder"].as_str().unwrap().to_owned();
                let generation = entry["key_generation"].as_u64().unwrap_or(0);
                self.check_listed(d, &id, &folder);
                listed_everywhere.push((d, id, generation));
            }
        }
        // One listed backup, chosen at random, restores and opens with the passphrase of the
        // key generation it was taken under.
        if !listed_everywhere.is_empty() {
            let pick = self.rng.below(listed_everywhere.len() as u64) as usize;
            let (d, id, generation) = listed_everywhere[pick].clone();
            self.check_restore(d, &id, generation);
        }
        // A prune now and then keeps the histories short.
        if self.rounds.is_multiple_of(8) {
            for d in 0..self.dests.len() {
                let dest = &self.dests[d];
                let out = self.run(&["prune", dest.flag, &dest.name, "--keep-last", "2"]);
                if code(&out) != 0 {
                    let what = format!("a prune of {} failed: {}", dest.name, text(&out));
                    self.problem(what);
                }
            }
        }
    }

    /// Folder numbers never repeat: each folder in the history, and each backup folder on
    /// disk with a manifest, always names the same backup; no two history entries share one.
    fn check_folders(&mut self, d: usize, entries: &[serde_json::Value]) {
        let mut seen = BTreeSet::new();
        let mut pairs = Vec::new();
        for e in entries.iter().filter(|e| e["kind"] == "backup") {
            let folder = e["folder"].as_str().unwrap_or_default().to_owned();
            if !seen.insert(folder.clone()) {
                self.problem(format!(
                    "{}: two backups in folder {folder}",
                    self.dests[d].name
                ));
            }
            pairs.push((folder, e["id"].as_str().unwrap_or_default().to_owned()));
        }
        if let Ok(read) = std::fs::read_dir(&self.dests[d].root) {
            for entry in read.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.starts_with("sstorebr") || !entry.path().is_dir() {
                    continue;
                }
                let manifest = entry.path().join("sstoremanifest.json");
                if let Ok(bytes) = std::fs::read(&manifest)
                    && let Ok(m) = serde_json::from_slice::<serde_json::Value>(&bytes)
                    && let Some(id) = m["backup_id"].as_str()
                {
                    pairs.push((name, id.to_owned()));
                }
            }
        }
        for (folder, id) in pairs {
            match self.folders.get(&(d, folder.clone())) {
                Some(before) if *before != id => {
                    let what = format!(
                        "{}: folder {folder} was backup {before}, now {id}",
                        self.dests[d].name
                    );
                    self.problem(what);
                }
                Some(_) => {}
                None => {
                    self.folders.insert((d, folder), id);
                }
            }
        }
    }

    /// A listed backup verifies: fully the first time, by its files' digest after that.
    fn check_listed(&mut self, d: usize, id: &str, folder: &str) {
        let files = sha256_of_files(&self.dests[d].root.join(folder));
        match self.verified_files.get(&(d, id.to_owned())) {
            Some(known) if *known == files => {}
            _ => {
                let dest = &self.dests[d];
                let out = self.run(&["verify", dest.flag, &dest.name, "--backup-id", id]);
                if code(&out) == 0 {
                    self.verified += 1;
                    self.verified_files.insert((d, id.to_owned()), files);
                } else {
                    let what = format!(
                        "round {}: listed backup {id} on {} does not verify: {}",
                        self.rounds,
                        dest.name,
                        text(&out)
                    );
                    self.problem(what);
                }
            }
        }
    }

    fn check_restore(&mut self, d: usize, id: &str, generation: u64) {
        let path = self.sb.path("restores/check.db");
        let _ = std::fs::remove_file(&path);
        let dest = &self.dests[d];
        let out = self.run(&[
            "restore",
            dest.flag,
            &dest.name,
            "--backup-id",
            id,
            "--method",
            "new",
            "--new-store",
            path.to_str().unwrap(),
        ]);
        if code(&out) != 0 {
            let what = format!(
                "listed backup {id} on {} does not restore: {}",
                dest.name,
                text(&out)
            );
            self.problem(what);
            return;
        }
        let pass = self
            .passes
            .get(generation as usize)
            .cloned()
            .unwrap_or_default();
        match open_store(&path, &pass) {
            Ok((sets, g)) if sets == APPS * PER_APP && g == generation => {
                self.restores_checked += 1;
            }
            other => self.problem(format!(
                "backup {id} restored does not open with the passphrase of generation \
                 {generation}: {other:?}"
            )),
        }
    }

    /// Temporary files a killed restore left beside its destination.
    fn restore_leftovers(&self) -> usize {
        files_under(&self.sb.path("restores"))
            .iter()
            .filter(|p| p.to_string_lossy().ends_with(".tmp"))
            .count()
    }

    fn summary(&self, elapsed: Duration) -> String {
        let total: u64 = self.kills.values().sum();
        let per_op: Vec<String> = self
            .kills
            .iter()
            .map(|(op, n)| format!("{} {n}", op.name()))
            .collect();
        let lost = if self.lost.is_empty() {
            "lost: 0".to_owned()
        } else {
            format!("lost: {} ({})", self.lost.len(), self.lost.join("; "))
        };
        format!(
            "soak: {total} kills ({}), {} jobs interrupted, {} backups verified, {} restores \
             checked, {} rounds ({} ran to the end before their kill), {} restore work files \
             left, {:.0}s, seed {}, {lost}",
            per_op.join(", "),
            self.interrupted,
            self.verified,
            self.restores_checked,
            self.rounds,
            self.finished_before_kill,
            self.restore_leftovers(),
            elapsed.as_secs_f64(),
            self.seed,
        )
    }
}

#[test]
#[ignore = "the kill soak: run by `cargo xtask ci` (short) and `cargo xtask soak --minutes N`"]
fn kill_soak() {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let seed = env("SSTORE_SOAK_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let minutes = env("SSTORE_SOAK_MINUTES");
    let kills = env("SSTORE_SOAK_KILLS").unwrap_or(30);
    let started = Instant::now();
    let mut soak = Soak::new(seed);
    eprintln!("soak: seed {seed}");
    soak.calibrate();
    loop {
        let total: u64 = soak.kills.values().sum();
        let done = match minutes {
            Some(m) => started.elapsed() >= Duration::from_secs(m * 60),
            None => total >= kills,
        };
        if done || soak.lost.len() >= 10 {
            break;
        }
        soak.round();
        if soak.rounds.is_multiple_of(10) {
            eprintln!("{}", soak.summary(started.elapsed()));
        }
    }
    let line = soak.summary(started.elapsed());
    println!("{line}");
    assert!(soak.lost.is_empty(), "{line}");
}
