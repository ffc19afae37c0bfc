//! `app new|list|show|remove`.

use anyhow::{Result, anyhow};
use sstore_core::store::{FieldDef, TargetApp};

use super::{Context, print_json};
use crate::args::{AppCommand, AppNewArgs};

pub fn run(ctx: &Context, cmd: AppCommand) -> Result<()> {
    match cmd {
        AppCommand::New(args) => new(ctx, args),
        AppCommand::List { json } => {
            let apps = ctx.open_store()?.apps()?;
            if json {
                return print_json(&apps);
            }
            if apps.is_empty() {
                println!(
                    "No target applications. Create one with `sstore app new NAME --type individual`."
                );
            }
            for app in apps {
                println!(
                    "{}\t{}\t{}\t{} fields",
                    app.name,
                    app.app_type.as_str(),
                    app.friendly_name,
                    app.fields.len()
                );
            }
            Ok(())
        }
        AppCommand::Show { name, json } => {
            let store = ctx.open_store()?;
            let app = store.app(&name)?;
            let principals = store.principals(&name)?;
            if json {
                return print_json(
                    &serde_json::json!({ "application": app, "principals": principals }),
                );
            }
            println!("Name:          {}", app.name);
            println!("Friendly name: {}", app.friendly_name);
            println!("Type:          {}", app.app_type.as_str());
            println!(
                "Contact:       {}",
                app.contact_email.as_deref().unwrap_or("-")
            );
            println!("Fields:");
            for f in &app.fields {
                println!(
                    "  {}\t{}{}",
                    f.name,
                    f.field_type.as_str(),
                    if f.masked { "\tmasked" } else { "" }
                );
            }
            println!("Credential sets: {}", principals.len());
            Ok(())
        }
        AppCommand::Remove { name } => {
            ctx.open_store()?.remove_app(&name)?;
            println!("Removed target application {name} and its credential sets.");
            Ok(())
        }
    }
}

fn new(ctx: &Context, args: AppNewArgs) -> Result<()> {
    let mut store = ctx.open_store()?;
    let mut app = TargetApp::new(
        &args.name,
        args.app_type.parse().map_err(|e: String| anyhow!(e))?,
    );
    if let Some(friendly) = args.friendly_name {
        app.friendly_name = friendly;
    }
    app.contact_email = args.contact_email;
    if !args.fields.is_empty() {
        app.fields = args
            .fields
            .iter()
            .map(|spec| FieldDef::parse(spec))
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow!(e))?;
    }
    store.create_app(&app)?;
    println!(
        "Created {} target application {} with {} fields.",
        app.app_type.as_str(),
        app.name,
        app.fields.len()
    );
    Ok(())
}
