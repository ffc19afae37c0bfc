//! The audit log: one JSON object per line, appended to an owner-only file: logins, failed
//! logins, logouts, refused requests, jobs started, changes to operators. Each line has the
//! time, the event, who, from where and what.
//!
//! No secret can reach it through this API: there is no field for a password or a token, an
//! operator's name comes only from an [`Operator`] (so a failed login records a name only when
//! it is a real operator's, never what was typed), a token only by its id, and a route is
//! cut at its query string with anything shaped like a token blanked.
//!
//! ```json
//! {"time":"2025-01-02T03:04:05.123Z","event":"login-failed","operator":"alice","from":"192.0.2.1","reason":"bad-credentials"}
//! ```

use std::fmt;
use std::fs::File;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::{Serialize, Serializer};
use time::OffsetDateTime;

use super::file::{self, NotOwnerOnly};
use super::operators::{IssuedToken, Operator, TokenInfo};
use super::role::{Action, Role};
use super::token;

/// The longest route kept in a line.
const MAX_ROUTE_LEN: usize = 200;

/// Why the audit log cannot be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open the audit log {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write to the audit log {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    NotOwnerOnly(#[from] NotOwnerOnly),
}

/// An operator's name, as only a real operator record gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorName(String);

impl From<&Operator> for OperatorName {
    fn from(operator: &Operator) -> Self {
        Self(operator.name.clone())
    }
}

impl Serialize for OperatorName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A token by its id (its first characters), never its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TokenId(String);

impl From<&IssuedToken> for TokenId {
    fn from(token: &IssuedToken) -> Self {
        Self(token.id.clone())
    }
}

impl TokenId {
    /// A token's id as an operator typed it (`sstore operator revoke`).
    pub fn from_id(id: &str) -> Self {
        Self(id.to_owned())
    }
}

impl From<&TokenInfo> for TokenId {
    fn from(token: &TokenInfo) -> Self {
        Self(token.id.clone())
    }
}

/// Who did something: an operator, a schedule, or someone at the `sstore` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    Operator(OperatorName),
    /// A schedule of the config, by name (`schedule:NAME`).
    Schedule(String),
    /// The `sstore operator` command (whoever can write the operators file).
    Cli,
}

impl Who {
    pub fn operator(operator: &Operator) -> Self {
        Who::Operator(operator.into())
    }
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::Operator(name) => f.write_str(&name.0),
            Who::Schedule(name) => write!(f, "schedule:{name}"),
            Who::Cli => f.write_str("cli"),
        }
    }
}

impl Serialize for Who {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A request's route, without its query string, anything shaped like a token blanked. Give
/// the route template (`/api/v1/jobs/{id}`) where there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Route(String);

impl Route {
    pub fn new(method: &str, path: &str) -> Self {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let mut out = String::with_capacity(method.len() + 1 + path.len());
        for c in method.chars().take(16).filter(char::is_ascii_alphabetic) {
            out.push(c);
        }
        out.push(' ');
        out.push_str(&blank_tokens(path));
        if out.len() > MAX_ROUTE_LEN {
            let mut end = MAX_ROUTE_LEN;
            while !out.is_char_boundary(end) {
                end -= 1;
            }
            out.truncate(end);
        }
        Self(out)
    }
}

/// `text` with every `sst_` followed by hex digits reduced to `sst_…`.
fn blank_tokens(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(token::TOKEN_PREFIX) {
        out.push_str(&rest[..at + token::TOKEN_PREFIX.len()]);
        let after = &rest[at + token::TOKEN_PREFIX.len()..];
        let hex_len = after.bytes().take_while(u8::is_ascii_hexdigit).count();
        if hex_len > 0 {
            out.push('…');
        }
        rest = &after[hex_len..];
    }
    out.push_str(rest);
    out
}

/// Why a login failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "reason")]
pub enum LoginFailure {
    /// Unknown name or wrong password (the log does not say which either).
    BadCredentials,
    /// Refused before checking, after too many failures.
    RateLimited { retry_after_secs: u64 },
    /// The operators file could not be read.
    Unavailable,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "reason")]
pub enum Refusal {
    /// No session cookie or token.
    Unauthenticated,
    /// A bearer token that is unknown or revoked.
    BadToken,
    /// An expired or unknown session.
    BadSession,
    /// The operator's role does not allow the action.
    Forbidden {
        role: Role,
        #[serde(flatten)]
        action: Action,
    },
    /// A state-changing browser request without the session's CSRF token.
    Csrf,
    /// A state-changing browser request from another origin.
    Origin,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "event")]
pub enum AuditEvent {
    Login {
        operator: OperatorName,
        from: Option<IpAddr>,
    },
    LoginFailed {
        /// Only when the name typed is a real operator's.
        operator: Option<OperatorName>,
        from: Option<IpAddr>,
        #[serde(flatten)]
        reason: LoginFailure,
    },
    Logout {
        operator: OperatorName,
        from: Option<IpAddr>,
    },
    Refused {
        operator: Option<OperatorName>,
        from: Option<IpAddr>,
        route: Route,
        #[serde(flatten)]
        reason: Refusal,
    },
    JobStarted {
        requested_by: Who,
        from: Option<IpAddr>,
        /// The job's id and kind (`backup`, `verify`, `prune`, `restore`).
        job: String,
        kind: String,
    },
    JobCancelled {
        by: Who,
        from: Option<IpAddr>,
        job: String,
    },
    OperatorAdded {
        operator: OperatorName,
        role: Role,
        by: Who,
    },
    OperatorRemoved {
        operator: OperatorName,
        /// How many tokens went with it.
        tokens: usize,
        by: Who,
    },
    RoleChanged {
        operator: OperatorName,
        role: Role,
        by: Who,
    },
    PasswordChanged {
        operator: OperatorName,
        by: Who,
    },
    TokenIssued {
        operator: OperatorName,
        token: TokenId,
        by: Who,
    },
    TokenRevoked {
        operator: OperatorName,
        token: TokenId,
        by: Who,
    },
}

#[derive(Serialize)]
struct Line<'a> {
    #[serde(with = "time::serde::rfc3339")]
    time: OffsetDateTime,
    #[serde(flatten)]
    event: &'a AuditEvent,
}

/// The size at which the audit log is rotated.
pub const ROTATE_AT_BYTES: u64 = 8 * 1024 * 1024;
/// How many rotated logs are kept (`audit.log.1` is the newest).
pub const ROTATED_KEPT: u32 = 5;

/// The audit log file, appended to by the service and the `sstore operator` commands. Past
/// [`ROTATE_AT_BYTES`] it is renamed `audit.log.1` (the older ones shifted up to
/// `audit.log.5`, the oldest dropped) and a new one begun; a writer whose file was rotated by
/// another process follows to the new file.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<File>,
    rotate_at: u64,
}

impl AuditLog {
    /// Opens (or creates, owner-only, with its folder) the audit log at `path`; refuses one
    /// others may read.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, AuditError> {
        let path = path.into();
        let open_err = |source| AuditError::Open {
            path: path.clone(),
            source,
        };
        let file = file::open_append_owner_only(&path).map_err(open_err)?;
        let meta = file.metadata().map_err(open_err)?;
        file::check_owner_only("the audit log", &path, &meta)?;
        Ok(Self {
            path,
            file: Mutex::new(file),
            rotate_at: ROTATE_AT_BYTES,
        })
    }

    /// The same log, rotated at `bytes` instead (for tests).
    pub fn rotating_at(mut self, bytes: u64) -> Self {
        self.rotate_at = bytes;
        self
    }

    /// The path of rotated log number `n` (1 is the newest).
    pub fn rotated_path(&self, n: u32) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line for `event`, stamped with the time now.
    pub fn record(&self, event: &AuditEvent) -> Result<(), AuditError> {
        let line = Line {
            time: OffsetDateTime::now_utc(),
            event,
        };
        let write_err = |source| AuditError::Write {
            path: self.path.clone(),
            source,
        };
        let mut bytes = serde_json::to_vec(&line).map_err(|e| write_err(e.into()))?;
        bytes.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        self.follow_rotation(&mut file).map_err(write_err)?;
        let size = file.metadata().map_err(write_err)?.len();
        if size > 0 && size + bytes.len() as u64 > self.rotate_at {
            self.rotate(&mut file).map_err(write_err)?;
        }
        file.write_all(&bytes).map_err(write_err)
    }

    /// Reopens the log when another process rotated (or removed) the file this one holds.
    fn follow_rotation(&self, file: &mut File) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let held = file.metadata()?;
            let same = std::fs::metadata(&self.path)
                .is_ok_and(|now| now.ino() == held.ino() && now.dev() == held.dev());
            if !same {
                *file = file::open_append_owner_only(&self.path)?;
            }
        }
        Ok(())
    }

    fn rotate(&self, file: &mut File) -> std::io::Result<()> {
        for n in (1..ROTATED_KEPT).rev() {
            match std::fs::rename(self.rotated_path(n), self.rotated_path(n + 1)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(&self.path, self.rotated_path(1))?;
        *file = file::open_append_owner_only(&self.path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::operators::OperatorStore;
    use super::*;

    const PW: &str = "audit-secret-password";

    #[test]
    fn the_log_rotates_keeps_five_and_a_second_writer_follows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&path).unwrap().rotating_at(2_000);
        let other = AuditLog::open(&path).unwrap().rotating_at(2_000);
        let event = AuditEvent::JobCancelled {
            by: Who::Cli,
            from: None,
            job: "0123456789abcdef".into(),
        };
        let mut lines = 0;
        for i in 0..400 {
            let writer = if i % 2 == 0 { &log } else { &other };
            writer.record(&event).unwrap();
            lines += 1;
        }
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        assert!(size(&path) <= 2_000, "{}", size(&path));
        let mut kept = 0;
        for n in 1..=ROTATED_KEPT {
            let rotated = log.rotated_path(n);
            assert!(rotated.exists(), "{}", rotated.display());
            assert!(size(&rotated) <= 2_000);
            kept += std::fs::read_to_string(&rotated).unwrap().lines().count();
        }
        assert!(!log.rotated_path(ROTATED_KEPT + 1).exists());
        kept += std::fs::read_to_string(&path).unwrap().lines().count();
        // Every line is in the current file or one of the five kept, until the oldest drop.
        assert!(kept > 0 && kept < lines, "{kept} of {lines}");
        for n in 1..=ROTATED_KEPT {
            for line in std::fs::read_to_string(log.rotated_path(n))
                .unwrap()
                .lines()
            {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(value["event"], "job-cancelled");
            }
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0);
        }
    }

    #[test]
    fn lines_are_json_with_time_event_who_where_and_what_and_never_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let store = OperatorStore::open(dir.path().join("operators.json")).unwrap();
        let alice = store.add("alice", Role::Operator, PW).unwrap();
        let token = store.issue_token("alice").unwrap();
        let log = AuditLog::open(dir.path().join("state").join("audit.log")).unwrap();
        let from = Some("192.0.2.1".parse().unwrap());
        let name = OperatorName::from(&alice);
        let events = [
            AuditEvent::OperatorAdded {
                operator: name.clone(),
                role: Role::Operator,
                by: Who::Cli,
            },
            AuditEvent::TokenIssued {
                operator: name.clone(),
                token: TokenId::from(&token),
                by: Who::Cli,
            },
            AuditEvent::Login {
                operator: name.clone(),
                from,
            },
            AuditEvent::LoginFailed {
                operator: None,
                from,
                reason: LoginFailure::RateLimited {
                    retry_after_secs: 60,
                },
            },
            AuditEvent::Refused {
                operator: Some(name.clone()),
                from,
                route: Route::new("POST", &format!("/api/v1/restore?token={}", *token.token)),
                reason: Refusal::Forbidden {
                    role: Role::Operator,
                    action: Action::RunRestore { overwrite: true },
                },
            },
            AuditEvent::Refused {
                operator: None,
                from,
                route: Route::new("GET", &format!("/api/v1/x/{}/y", *token.token)),
                reason: Refusal::Unauthenticated,
            },
            AuditEvent::JobStarted {
                requested_by: Who::Schedule("nightly".into()),
                from: None,
                job: "j-1".into(),
                kind: "backup".into(),
            },
            AuditEvent::Logout {
                operator: name,
                from,
            },
        ];
        for event in &events {
            log.record(event).unwrap();
        }
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert!(!text.contains(PW));
        assert!(!text.contains(token.token.as_str()));
        assert!(!text.contains(&token.token[12..24]));
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), events.len());
        for line in &lines {
            assert!(line["time"].as_str().unwrap().ends_with('Z'), "{line}");
        }
        assert_eq!(lines[0]["event"], "operator-added");
        assert_eq!(lines[0]["operator"], "alice");
        assert_eq!(lines[0]["role"], "operator");
        assert_eq!(lines[0]["by"], "cli");
        assert_eq!(lines[1]["token"], token.id.as_str());
        assert_eq!(lines[2]["event"], "login");
        assert_eq!(lines[2]["from"], "192.0.2.1");
        assert_eq!(lines[3]["event"], "login-failed");
        assert_eq!(lines[3]["operator"], serde_json::Value::Null);
        assert_eq!(lines[3]["reason"], "rate-limited");
        assert_eq!(lines[3]["retry_after_secs"], 60);
        assert_eq!(lines[4]["reason"], "forbidden");
        assert_eq!(lines[4]["action"], "run-restore");
        assert_eq!(lines[4]["overwrite"], true);
        assert_eq!(lines[4]["route"], "POST /api/v1/restore");
        assert_eq!(lines[5]["route"], "GET /api/v1/x/sst_…/y");
        assert_eq!(lines[6]["requested_by"], "schedule:nightly");
        assert_eq!(lines[7]["event"], "logout");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(log.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Reopening appends.
        drop(log);
        let log = AuditLog::open(dir.path().join("state").join("audit.log")).unwrap();
        log.record(&events[0]).unwrap();
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert_eq!(text.lines().count(), events.len() + 1);
    }

    #[cfg(unix)]
    #[test]
    fn an_audit_log_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = AuditLog::open(&path).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn routes_are_cut_and_bounded() {
        assert_eq!(Route::new("GET", "/a?b=c#d").0, "GET /a");
        assert_eq!(Route::new("G\nE T", "/a").0, "GET /a");
        assert!(Route::new("GET", &"x".repeat(1000)).0.len() <= MAX_ROUTE_LEN);
        assert_eq!(blank_tokens("sst_ and sst_abc1 x"), "sst_ and sst_… x");
    }
}
