//! `cred set|get|clear|list`. Values are secrets: only `cred get` prints them.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context as _, Result, bail};
use sstore_core::store::CredentialSet;
use zeroize::Zeroizing;

use super::{Context, print_json};
use crate::args::CredCommand;

pub fn run(ctx: &Context, cmd: CredCommand) -> Result<()> {
    match cmd {
        CredCommand::Set { app, principal } => {
            let mut store = ctx.unlock()?;
            let definition = store.app(&app)?;
            let mut set = CredentialSet::new(&app, &principal);
            if std::io::stdin().is_terminal() {
                for field in &definition.fields {
                    let value = if field.masked {
                        Zeroizing::new(rpassword::prompt_password(format!(
                            "{} ({}): ",
                            field.name,
                            field.field_type.as_str()
                        ))?)
                    } else {
                        eprint!("{} ({}): ", field.name, field.field_type.as_str());
                        let mut line = Zeroizing::new(String::new());
                        std::io::stdin().lock().read_line(&mut line)?;
                        Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned())
                    };
                    set.values.push((field.name.clone(), value));
                }
            } else {
                for (number, line) in std::io::stdin().lock().lines().enumerate() {
                    let line =
                        Zeroizing::new(line.context("reading field values from standard input")?);
                    if line.trim().is_empty() {
                        continue;
                    }
                    let Some((field, value)) = line.split_once('=') else {
                        bail!("standard input line {}: expected `field=value`", number + 1);
                    };
                    set.values
                        .push((field.trim().to_owned(), Zeroizing::new(value.to_owned())));
                }
            }
            store.set_credentials(&set)?;
            println!(
                "Set the credentials of {principal} for {app} ({} fields).",
                set.values.len()
            );
        }
        CredCommand::Get {
            app,
            principal,
            json,
        } => {
            let store = ctx.unlock()?;
            let set = store.credentials(&app, &principal)?;
            if json {
                let fields: serde_json::Map<String, serde_json::Value> = set
                    .values
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.to_string())))
                    .collect();
                print_json(
                    &serde_json::json!({ "app": app, "principal": principal, "fields": fields }),
                )?;
            } else {
                for (field, value) in &set.values {
                    println!("{field}: {}", value.as_str());
                }
            }
        }
        CredCommand::Clear { app, principal } => {
            // Removing does not need the key, but only someone holding the passphrase may do it.
            let mut store = ctx.unlock()?;
            store.clear_credentials(&app, &principal)?;
            println!("Cleared the credentials of {principal} for {app}.");
        }
        CredCommand::List { app, json } => {
            let principals = ctx.open_store()?.principals(&app)?;
            if json {
                return print_json(&principals);
            }
            for p in principals {
                println!("{p}");
            }
        }
    }
    Ok(())
}
