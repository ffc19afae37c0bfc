//! Makes a Secure Store for benchmarks (`cargo xtask bench-serve`): one application with two
//! fields, and N credential sets whose values are `B` pseudo-random characters, so the store
//! (its values encrypted under the Master Key, hence incompressible) is about N x B bytes.
//!
//! usage: make_store --out STORE.db --sets N --value-bytes B
//! The store passphrase is read from SSTORE_PASSPHRASE.

use anyhow::{Context, Result, bail};
use sstore_core::store::{AppType, CredentialSet, FieldDef, FieldType, SecureStore, TargetApp};
use sstore_core::{KdfParams, Passphrase};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| -> Result<String> {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .with_context(|| format!("missing {flag}"))
    };
    let out = std::path::PathBuf::from(value("--out")?);
    let sets: usize = value("--sets")?.parse()?;
    let bytes: usize = value("--value-bytes")?.parse()?;
    let passphrase = Passphrase::new(
        std::env::var("SSTORE_PASSPHRASE").context("set SSTORE_PASSPHRASE for the new store")?,
    );
    if out.exists() {
        bail!("{} exists", out.display());
    }
    let mut store = SecureStore::create(&out, &passphrase, KdfParams::RECOMMENDED)?;
    let mut app = TargetApp::new("bench".to_owned(), AppType::Individual);
    app.fields = vec![
        FieldDef::new("User", FieldType::UserName, false),
        FieldDef::new("Secret", FieldType::Password, true),
    ];
    store.create_apps(std::slice::from_ref(&app))?;
    let mut store = store.unlock(&passphrase)?;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut text = |n: usize| -> String {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'!' + (x % 94) as u8)
            })
            .collect()
    };
    for batch in (0..sets).collect::<Vec<_>>().chunks(10_000) {
        let sets: Vec<CredentialSet> = batch
            .iter()
            .map(|i| {
                CredentialSet::new("bench", format!("CONTOSO\\user{i:08}"))
                    .with("User", format!("user{i:08}"))
                    .with("Secret", text(bytes))
            })
            .collect();
        store.set_many(&sets)?;
    }
    println!("{} sets in {}", sets, out.display());
    Ok(())
}
