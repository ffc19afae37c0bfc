//! `backup-key generate` (a new X25519 identity file, owner-only, and its recipient) and
//! `backup-key show` (the recipients of an identity file). The identity's secret is written
//! to its file only, never printed.

use anyhow::Result;
use sstore_core::recipient::{Identity, read_identity_file};

use crate::args::BackupKeyCommand;

pub fn run(cmd: BackupKeyCommand) -> Result<()> {
    match cmd {
        BackupKeyCommand::Generate { out } => {
            let identity = Identity::generate();
            identity.write_identity_file(&out)?;
            eprintln!(
                "Wrote the identity to {} (owner-only). Keep it offline with the people who restore; \
                 back up with --recipient or [backup] recipients:",
                out.display()
            );
            println!("{}", identity.recipient());
        }
        BackupKeyCommand::Show { file } => {
            for identity in read_identity_file(&file)? {
                println!("{}", identity.recipient());
            }
        }
    }
    Ok(())
}
