//! Exit codes (documented in the README and `--help`) and error messages.

use sstore_core::ErrorCategory;
use sstore_core::backup::BackupError;
use sstore_core::store::StoreError;

pub const FAILED: i32 = 1;
pub const WRONG_PASSPHRASE: i32 = 3;
pub const NO_STORE: i32 = 4;
pub const DAMAGED: i32 = 5;
pub const LOCKED: i32 = 6;
pub const PARTIAL: i32 = 7;

fn category(err: &anyhow::Error) -> ErrorCategory {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<BackupError>() {
            return e.category();
        }
        if let Some(e) = cause.downcast_ref::<StoreError>() {
            return e.category();
        }
        if let Some(e) = cause.downcast_ref::<sstore_core::Error>() {
            return e.category();
        }
    }
    ErrorCategory::Failed
}

pub fn code(err: &anyhow::Error) -> i32 {
    if err.chain().any(|c| c.downcast_ref::<Partial>().is_some()) {
        return PARTIAL;
    }
    match category(err) {
        ErrorCategory::Failed => FAILED,
        ErrorCategory::WrongPassphrase => WRONG_PASSPHRASE,
        ErrorCategory::NoStore => NO_STORE,
        ErrorCategory::Damaged => DAMAGED,
        ErrorCategory::Locked => LOCKED,
    }
}

/// The error and its causes on one line, without repeating a cause its parent already quotes.
pub fn describe(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// A job that reached some targets and not others (exit code 7).
#[derive(Debug)]
pub struct Partial(pub String);

impl std::fmt::Display for Partial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Partial {}
