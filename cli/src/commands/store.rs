//! `store init|info`, `masterkey update`, `key refresh`.

use anyhow::Result;
use sstore_core::KdfParams;
use sstore_core::store::SecureStore;

use super::{Context, print_json};
use crate::args::{KeyCommand, MasterkeyCommand, StoreCommand};
use crate::passphrase;

pub fn run_store(ctx: &Context, cmd: StoreCommand) -> Result<()> {
    match cmd {
        StoreCommand::Init => {
            let passphrase = ctx.store_passphrase(true)?;
            let store = SecureStore::create_at(&ctx.store, &passphrase, KdfParams::RECOMMENDED)?;
            let info = store.master_key_info()?;
            println!(
                "Created Secure Store {} at {}",
                store.store_id()?,
                ctx.store
            );
            println!(
                "Master Key {} (generation {}), protected with {}",
                info.key_id, info.generation, info.kdf
            );
            println!("Keep the passphrase safe: a backup can only be restored with it.");
        }
        StoreCommand::Info { json } => {
            let summary = ctx.open_store()?.summary()?;
            if json {
                print_json(&serde_json::json!({
                    "path": ctx.store_path,
                    "home": if ctx.store.is_sql_server() { "sqlserver" } else { "sqlite" },
                    "store_id": summary.store_id,
                    "master_key": summary.master_key,
                    "applications": summary.applications,
                    "credential_sets": summary.credential_sets,
                }))?;
            } else {
                println!("Store:           {}", ctx.store);
                println!("Store id:        {}", summary.store_id);
                println!(
                    "Master Key:      {} (generation {}, {}, created {})",
                    summary.master_key.key_id,
                    summary.master_key.generation,
                    summary.master_key.kdf,
                    summary.master_key.created_at
                );
                println!("Applications:    {}", summary.applications);
                println!("Credential sets: {}", summary.credential_sets);
            }
        }
    }
    Ok(())
}

pub fn run_masterkey(ctx: &Context, cmd: MasterkeyCommand) -> Result<()> {
    let MasterkeyCommand::Update {
        new_passphrase_file,
    } = cmd;
    let mut store = ctx.unlock()?;
    let new = passphrase::new(new_passphrase_file.as_deref())?;
    new.check_policy()?;
    let sets = store.summary()?.credential_sets;
    let info = store.change_master_key(&new, KdfParams::RECOMMENDED)?;
    println!(
        "New Master Key {} (generation {}); {} credential sets re-encrypted.",
        info.key_id, info.generation, sets
    );
    println!(
        "Back up the store now: earlier backups hold the old key and open with the old passphrase."
    );
    Ok(())
}

pub fn run_key(ctx: &Context, cmd: KeyCommand) -> Result<()> {
    let KeyCommand::Refresh = cmd;
    let store = ctx.open_store()?;
    let info = store.check_passphrase(&ctx.store_passphrase(false)?)?;
    println!(
        "The passphrase opens Master Key {} (generation {}).",
        info.key_id, info.generation
    );
    Ok(())
}
