//! `sstore operator add|token|revoke|list|remove|passwd`: who may use `sstore serve`. The operators
//! file is `[serve] operators`, else `operators.json` beside the config file, else in the
//! service's state folder; a running service sees every change at its next request.
//! Passwords come from a prompt without echo (asked twice) or the first line of stdin, never
//! from an argument or the environment; a token is printed once, on stdout.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use sstore_service::auth::audit::{AuditEvent, AuditLog, TokenId, Who};
use sstore_service::auth::operators::validate_name;
use sstore_service::auth::password::{self, MIN_PASSWORD_CHARS};
use sstore_service::auth::{OperatorStore, Role, paths};
use zeroize::Zeroizing;

use super::{Context, print_json};
use crate::args::{OperatorCommand, OperatorRole};

fn role(arg: OperatorRole) -> Role {
    match arg {
        OperatorRole::Admin => Role::Admin,
        OperatorRole::Operator => Role::Operator,
        OperatorRole::Viewer => Role::Viewer,
    }
}

pub fn run(ctx: &Context, cmd: OperatorCommand) -> Result<()> {
    let store = OperatorStore::open(paths::operators_path(&ctx.config))?;
    let audit = || {
        AuditLog::open(paths::audit_path(&ctx.config))
            .map_err(|err| eprintln!("warning: not recorded in the audit log: {err}"))
            .ok()
    };
    let record = |event: AuditEvent| {
        if let Some(log) = audit()
            && let Err(err) = log.record(&event)
        {
            eprintln!("warning: not recorded in the audit log: {err}");
        }
    };
    match cmd {
        OperatorCommand::Add { name, role: arg } => {
            // Fail before asking for a password when the name cannot be added.
            validate_name(&name)?;
            if store.get(&name)?.is_some() {
                bail!(
                    "an operator named {name} already exists in {}",
                    store.path().display()
                );
            }
            let password = read_password(&name)?;
            let operator = store.add(&name, role(arg), &password)?;
            record(AuditEvent::OperatorAdded {
                operator: (&operator).into(),
                role: operator.role,
                by: Who::Cli,
            });
            println!(
                "Added operator {} ({}) to {}",
                operator.name,
                operator.role,
                store.path().display()
            );
        }
        OperatorCommand::Token { name } => {
            let issued = store.issue_token(&name)?;
            let operator = store
                .get(&name)?
                .with_context(|| format!("operator {name} was removed meanwhile"))?;
            record(AuditEvent::TokenIssued {
                operator: (&operator).into(),
                token: TokenId::from(&issued),
                by: Who::Cli,
            });
            eprintln!(
                "A new API token for {name} (id {}). It is shown only now and cannot be shown again: \
                 keep it somewhere safe. Scripts send it as `Authorization: Bearer TOKEN`.",
                issued.id
            );
            println!("{}", *issued.token);
        }
        OperatorCommand::Revoke { name, id } => {
            store.revoke_token(&name, &id)?;
            if let Some(operator) = store.get(&name)? {
                record(AuditEvent::TokenRevoked {
                    operator: (&operator).into(),
                    token: TokenId::from_id(&id),
                    by: Who::Cli,
                });
            }
            println!(
                "Revoked API token {id} of operator {name}; a running service refuses it at the next request"
            );
        }
        OperatorCommand::List { json } => list(&store, json)?,
        OperatorCommand::Remove { name } => {
            let operator = store.remove(&name)?;
            record(AuditEvent::OperatorRemoved {
                operator: (&operator).into(),
                tokens: operator.tokens.len(),
                by: Who::Cli,
            });
            println!(
                "Removed operator {} and its {} API token(s); a running service refuses them at the next request",
                operator.name,
                operator.tokens.len()
            );
        }
        OperatorCommand::Passwd { name } => {
            // Fail before asking when there is no such operator.
            if store.get(&name)?.is_none() {
                bail!("no operator named {name} in {}", store.path().display());
            }
            let password = read_password(&name)?;
            store.set_password(&name, &password)?;
            if let Some(operator) = store.get(&name)? {
                record(AuditEvent::PasswordChanged {
                    operator: (&operator).into(),
                    by: Who::Cli,
                });
            }
            println!("Changed the password of operator {name}");
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct Listed<'a> {
    name: &'a str,
    role: Role,
    tokens: usize,
    token_ids: Vec<&'a str>,
    created: String,
    password_changed: String,
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

fn list(store: &OperatorStore, json: bool) -> Result<()> {
    let operators = store.list()?;
    let listed: Vec<Listed<'_>> = operators
        .iter()
        .map(|o| Listed {
            name: &o.name,
            role: o.role,
            tokens: o.tokens.len(),
            token_ids: o.tokens.iter().map(|t| t.id.as_str()).collect(),
            created: rfc3339(o.created),
            password_changed: rfc3339(o.password_changed),
        })
        .collect();
    if json {
        return print_json(&listed);
    }
    if listed.is_empty() {
        eprintln!(
            "No operators in {}: add one with `sstore operator add NAME --role admin`",
            store.path().display()
        );
        return Ok(());
    }
    let width = listed
        .iter()
        .map(|o| o.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:<width$}  {:<8}  {:>6}  {:<20}  TOKEN IDS",
        "NAME", "ROLE", "TOKENS", "CREATED"
    );
    for o in &listed {
        println!(
            "{:<width$}  {:<8}  {:>6}  {:<20}  {}",
            o.name,
            o.role.as_str(),
            o.tokens,
            o.created,
            o.token_ids.join(" ")
        );
    }
    Ok(())
}

/// The new password: asked twice without echo on a terminal, else the first line of stdin.
/// Checked against the policy before it is hashed.
fn read_password(name: &str) -> Result<Zeroizing<String>> {
    let password = if std::io::stdin().is_terminal() {
        let first = Zeroizing::new(
            rpassword::prompt_password(format!(
                "Password for {name} (at least {MIN_PASSWORD_CHARS} characters): "
            ))
            .context("reading the password")?,
        );
        password::check_policy(&first).with_context(|| format!("operator {name}"))?;
        let second = Zeroizing::new(
            rpassword::prompt_password("Repeat the password: ").context("reading the password")?,
        );
        if *first != *second {
            bail!("the two passwords differ");
        }
        first
    } else {
        let mut line = Zeroizing::new(String::with_capacity(2048));
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        while line.ends_with(['\n', '\r']) {
            line.pop();
        }
        if line.is_empty() {
            bail!(
                "no password given: type it at the prompt on a terminal, or give it as the first line of stdin \
                 (at least {MIN_PASSWORD_CHARS} characters)"
            );
        }
        line
    };
    password::check_policy(&password).with_context(|| format!("operator {name}"))?;
    Ok(password)
}
