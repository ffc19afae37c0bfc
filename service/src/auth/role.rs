//! Roles and what each may do. The HTTP layer maps every route to an [`Action`] and asks
//! [`Role::allows`] before doing anything.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What an operator may do, from most to least.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including a restore that overwrites the store and managing operators.
    Admin,
    /// Reads everything; runs backups, verifies, prunes, schedules, restores to a new file,
    /// and cancels jobs.
    Operator,
    /// Reads only.
    Viewer,
}

/// Something a request does, as far as permissions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case", tag = "action")]
pub enum Action {
    /// Status, jobs, events, logs, history, targets, schedules, metrics.
    Read,
    RunBackup,
    RunVerify,
    RunPrune,
    /// A restore: `overwrite` replaces the live store, else it restores to a new file.
    RunRestore {
        overwrite: bool,
    },
    CancelJob,
    /// Run a schedule now.
    RunSchedule,
    /// Add, remove or change operators and their tokens.
    ManageOperators,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Operator, Role::Viewer];

    /// Whether this role may do `action`.
    pub fn allows(self, action: Action) -> bool {
        match self {
            Role::Admin => true,
            Role::Operator => match action {
                Action::Read
                | Action::RunBackup
                | Action::RunVerify
                | Action::RunPrune
                | Action::RunSchedule
                | Action::CancelJob
                | Action::RunRestore { overwrite: false } => true,
                Action::RunRestore { overwrite: true } | Action::ManageOperators => false,
            },
            Role::Viewer => action == Action::Read,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not `admin`, `operator` or `viewer`.
#[derive(Debug, thiserror::Error)]
#[error("unknown role '{0}': use admin, operator or viewer")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

impl Action {
    /// Whether the action changes something (and so, from a browser, needs a CSRF token).
    pub fn changes_state(self) -> bool {
        self != Action::Read
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_ACTIONS: [Action; 9] = [
        Action::Read,
        Action::RunBackup,
        Action::RunVerify,
        Action::RunPrune,
        Action::RunRestore { overwrite: false },
        Action::RunRestore { overwrite: true },
        Action::CancelJob,
        Action::RunSchedule,
        Action::ManageOperators,
    ];

    #[test]
    fn the_role_matrix() {
        for action in ALL_ACTIONS {
            assert!(Role::Admin.allows(action), "admin may {action:?}");
            assert_eq!(
                Role::Viewer.allows(action),
                action == Action::Read,
                "viewer and {action:?}"
            );
            let operator_may = !matches!(
                action,
                Action::RunRestore { overwrite: true } | Action::ManageOperators
            );
            assert_eq!(
                Role::Operator.allows(action),
                operator_may,
                "operator and {action:?}"
            );
        }
    }

    #[test]
    fn roles_parse_and_print_their_names() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().ok(), Some(role));
            assert_eq!(
                serde_json::to_string(&role).ok(),
                Some(format!("\"{role}\""))
            );
        }
        let err = "root".parse::<Role>().err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("unknown role 'root': use admin, operator or viewer")
        );
    }

    #[test]
    fn only_read_changes_nothing() {
        for action in ALL_ACTIONS {
            assert_eq!(action.changes_state(), action != Action::Read);
        }
    }
}
