//! The pieces put together the way every request uses them: a login (rate limit, password,
//! session, audit), a session or a bearer token checked against the operators file as it is
//! now, a permission check, and a logout. The HTTP layer calls these and turns the errors
//! into status codes.

use std::net::IpAddr;

use super::audit::{AuditEvent, AuditLog, LoginFailure, OperatorName, Refusal, Route, Who};
use super::limiter::{LoginLimiter, RateLimited};
use super::operators::{AuthError, Operator, OperatorError, OperatorStore};
use super::role::Action;
use super::sessions::{NewSession, Session, Sessions};

/// Why a login was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// `429` with `Retry-After`.
    #[error(transparent)]
    RateLimited(RateLimited),
    /// `401`: the same for an unknown name and a wrong password.
    #[error("unknown operator or wrong password")]
    BadCredentials,
    /// `503`: the operators file cannot be read.
    #[error("cannot check operators: {0}")]
    Unavailable(#[source] Box<OperatorError>),
}

/// Why a request may not go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// `401`.
    #[error("log in first, or send an API token (Authorization: Bearer TOKEN)")]
    Unauthenticated,
    /// `403`.
    #[error("the role {role} may not do this")]
    Forbidden { role: super::role::Role },
    /// `403`: a state-changing browser request without its session's CSRF token.
    #[error("missing or wrong CSRF token")]
    Csrf,
    /// `403`: a state-changing browser request from another origin.
    #[error("the request comes from another origin")]
    Origin,
}

/// Where a request came from and what it asked, for audit lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    /// The method and route template (`POST /api/v1/jobs`).
    pub route: Route,
    /// The client's address.
    pub from: Option<IpAddr>,
}

impl RequestInfo {
    pub fn new(method: &str, route: &str, from: Option<IpAddr>) -> Self {
        Self {
            route: Route::new(method, route),
            from,
        }
    }
}

/// Operators, sessions, the login limiter and the audit log of one service.
#[derive(Debug)]
pub struct Authenticator {
    pub operators: OperatorStore,
    pub sessions: Sessions,
    pub limiter: LoginLimiter,
    /// `None`: no audit log (tests).
    pub audit: Option<AuditLog>,
}

impl Authenticator {
    /// Records an event; a failure to write it is reported on stderr and does not stop the
    /// request.
    pub fn audit(&self, event: &AuditEvent) {
        if let Some(log) = &self.audit
            && let Err(err) = log.record(event)
        {
            eprintln!("warning: {err}");
        }
    }

    /// A form login: refused at once past the rate limits, else the password is checked (slow
    /// on purpose: call it from `spawn_blocking`), the failure counted or the session made,
    /// and the outcome audited.
    pub fn login(
        &self,
        name: &str,
        password: &str,
        from: IpAddr,
    ) -> Result<(Operator, NewSession), LoginError> {
        // A failed login names the operator in the audit log only when it is a real one: what
        // was typed as a name is sometimes a password.
        let known = || {
            self.operators
                .get(name)
                .ok()
                .flatten()
                .map(|o| OperatorName::from(&o))
        };
        if let Err(limited) = self.limiter.check(name, from) {
            self.audit(&AuditEvent::LoginFailed {
                operator: known(),
                from: Some(from),
                reason: LoginFailure::RateLimited {
                    retry_after_secs: limited.retry_after_secs(),
                },
            });
            return Err(LoginError::RateLimited(limited));
        }
        match self.operators.verify_password(name, password) {
            Ok(operator) => {
                self.limiter.record_success(name, from);
                let session = self
                    .sessions
                    .create(&operator.name, operator.password_changed.unix_timestamp());
                self.audit(&AuditEvent::Login {
                    operator: (&operator).into(),
                    from: Some(from),
                });
                Ok((operator, session))
            }
            Err(AuthError::Unavailable(err)) => {
                self.audit(&AuditEvent::LoginFailed {
                    operator: None,
                    from: Some(from),
                    reason: LoginFailure::Unavailable,
                });
                Err(LoginError::Unavailable(err))
            }
            Err(AuthError::BadCredentials | AuthError::BadToken) => {
                self.limiter.record_failure(name, from);
                self.audit(&AuditEvent::LoginFailed {
                    operator: known(),
                    from: Some(from),
                    reason: LoginFailure::BadCredentials,
                });
                Err(LoginError::BadCredentials)
            }
        }
    }

    /// The session of a cookie and its operator as the operators file says now (its current
    /// role). A session whose operator was removed, or whose password changed since it began
    /// (`sstore operator passwd`), ends here, with all its others.
    pub fn session(&self, id: &str) -> Option<(Session, Operator)> {
        let session = self.sessions.lookup(id)?;
        match self.operators.get(&session.operator) {
            Ok(Some(operator))
                if operator.password_changed.unix_timestamp() == session.password_changed =>
            {
                Some((session, operator))
            }
            Ok(_) => {
                self.sessions.remove_operator(&session.operator);
                None
            }
            Err(_) => None,
        }
    }

    /// The operator of an `Authorization: Bearer` token. Token requests need no CSRF token.
    pub fn bearer(&self, token: &str) -> Result<Operator, AuthError> {
        self.operators.authenticate_token(token)
    }

    /// Ends a session and audits the logout.
    pub fn logout(&self, id: &str, from: Option<IpAddr>) {
        if let Some((_, operator)) = self.session(id) {
            self.audit(&AuditEvent::Logout {
                operator: (&operator).into(),
                from,
            });
        }
        self.sessions.logout(id);
    }

    /// Whether `operator` may do `action`; a refusal is audited with the route.
    pub fn authorize(
        &self,
        operator: &Operator,
        action: Action,
        request: &RequestInfo,
    ) -> Result<(), AccessError> {
        if operator.role.allows(action) {
            return Ok(());
        }
        self.audit(&AuditEvent::Refused {
            operator: Some(operator.into()),
            from: request.from,
            route: request.route.clone(),
            reason: Refusal::Forbidden {
                role: operator.role,
                action,
            },
        });
        Err(AccessError::Forbidden {
            role: operator.role,
        })
    }

    /// For a state-changing request made with a session cookie: its `Origin` (or, without
    /// one, `Referer`'s origin) must be `expected_origin` (`https://host:port`), and its CSRF
    /// token (header or form field) the session's. Refusals are audited.
    pub fn check_browser_write(
        &self,
        session_id: &str,
        operator: &Operator,
        csrf_token: Option<&str>,
        origin: Option<&str>,
        expected_origin: &str,
        request: &RequestInfo,
    ) -> Result<(), AccessError> {
        let (reason, error) = if !origin.is_some_and(|o| same_origin(o, expected_origin)) {
            (Refusal::Origin, AccessError::Origin)
        } else if !csrf_token.is_some_and(|t| self.sessions.check_csrf(session_id, t)) {
            (Refusal::Csrf, AccessError::Csrf)
        } else {
            return Ok(());
        };
        self.audit(&AuditEvent::Refused {
            operator: Some(operator.into()),
            from: request.from,
            route: request.route.clone(),
            reason,
        });
        Err(error)
    }

    /// Audits a request refused for want of credentials (`reason`: unauthenticated, a bad
    /// token, an unknown or expired session).
    pub fn refuse_unauthenticated(&self, reason: Refusal, request: &RequestInfo) {
        self.audit(&AuditEvent::Refused {
            operator: None,
            from: request.from,
            route: request.route.clone(),
            reason,
        });
    }

    /// Audits a job started (`requested_by`: [`Who::operator`] or [`Who::Schedule`]).
    pub fn job_started(&self, requested_by: Who, from: Option<IpAddr>, job: &str, kind: &str) {
        self.audit(&AuditEvent::JobStarted {
            requested_by,
            from,
            job: job.to_owned(),
            kind: kind.to_owned(),
        });
    }
}

/// Whether an `Origin` (or a `Referer` URL) has the scheme, host and port of `expected`
/// (compared without case; a trailing path of a `Referer` is ignored).
pub fn same_origin(given: &str, expected: &str) -> bool {
    fn origin(url: &str) -> Option<&str> {
        let scheme_end = url.find("://")? + 3;
        let end = url[scheme_end..]
            .find(['/', '?', '#'])
            .map_or(url.len(), |i| scheme_end + i);
        Some(&url[..end])
    }
    match (origin(given.trim()), origin(expected.trim())) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;
    use std::time::Duration;

    use super::super::clock::ManualClock;
    use super::super::limiter::{LimitScope, LimiterConfig};
    use super::super::role::Role;
    use super::super::sessions::SessionConfig;
    use super::*;

    const PW: &str = "authenticator-password";

    fn setup() -> (tempfile::TempDir, ManualClock, Authenticator) {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new();
        let operators = OperatorStore::open(dir.path().join("operators.json")).unwrap();
        operators.add("alice", Role::Operator, PW).unwrap();
        let auth = Authenticator {
            operators,
            sessions: Sessions::with_clock(SessionConfig::default(), Arc::new(clock.clone())),
            limiter: LoginLimiter::with_clock(LimiterConfig::default(), Arc::new(clock.clone())),
            audit: Some(AuditLog::open(dir.path().join("audit.log")).unwrap()),
        };
        (dir, clock, auth)
    }

    fn audit_lines(auth: &Authenticator) -> Vec<serde_json::Value> {
        let path = auth.audit.as_ref().unwrap().path();
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn ip() -> IpAddr {
        "192.0.2.1".parse().unwrap()
    }

    #[test]
    fn a_login_makes_a_session_that_ends_when_the_operator_is_removed() {
        let (_dir, _clock, auth) = setup();
        let (operator, session) = auth.login("alice", PW, ip()).unwrap();
        assert_eq!(operator.name, "alice");
        let (found, op) = auth.session(&session.id).unwrap();
        assert_eq!(
            (found.operator.as_str(), op.role),
            ("alice", Role::Operator)
        );
        // The CLI removes alice: her session ends at the next request.
        OperatorStore::open(auth.operators.path())
            .unwrap()
            .remove("alice")
            .unwrap();
        assert!(auth.session(&session.id).is_none());
        assert!(auth.sessions.is_empty());
    }

    #[test]
    fn a_password_change_ends_the_sessions_begun_before_it() {
        let (_dir, _clock, auth) = setup();
        let (_, before) = auth.login("alice", PW, ip()).unwrap();
        // Whole seconds in the file: make the change land in a later second than the login.
        std::thread::sleep(Duration::from_millis(1100));
        OperatorStore::open(auth.operators.path())
            .unwrap()
            .set_password("alice", "a-new-password-2")
            .unwrap();
        assert!(auth.session(&before.id).is_none());
        assert!(auth.login("alice", PW, ip()).is_err(), "the old password");
        let (_, after) = auth.login("alice", "a-new-password-2", ip()).unwrap();
        assert!(auth.session(&after.id).is_some());
    }

    #[test]
    fn failed_logins_are_limited_audited_without_the_password_and_reset_by_a_success() {
        let (_dir, clock, auth) = setup();
        for _ in 0..4 {
            assert!(matches!(
                auth.login("alice", "wrong-password-1", ip()),
                Err(LoginError::BadCredentials)
            ));
        }
        auth.login("alice", PW, ip()).unwrap();
        for _ in 0..5 {
            assert!(matches!(
                auth.login("alice", "wrong-password-2", ip()),
                Err(LoginError::BadCredentials)
            ));
        }
        // Locked now, even with the right password.
        match auth.login("alice", PW, ip()) {
            Err(LoginError::RateLimited(limited)) => {
                assert_eq!(limited.scope, LimitScope::Account);
            }
            other => panic!("{other:?}"),
        }
        // Someone typing a password as the name: not in the log.
        let _ = auth.login("typed-a-password-here", PW, ip());
        clock.advance(Duration::from_secs(15 * 60));
        auth.login("alice", PW, ip()).unwrap();
        let lines = audit_lines(&auth);
        let text = std::fs::read_to_string(auth.audit.as_ref().unwrap().path()).unwrap();
        for secret in [PW, "wrong-password", "typed-a-password-here"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        let kinds: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
        assert_eq!(kinds.iter().filter(|k| **k == "login").count(), 2);
        assert_eq!(kinds.iter().filter(|k| **k == "login-failed").count(), 11);
        assert!(
            lines
                .iter()
                .any(|l| l["reason"] == "rate-limited" && l["operator"] == "alice")
        );
        assert!(
            lines
                .iter()
                .all(|l| l["from"] == "192.0.2.1" && l["time"].is_string())
        );
    }

    #[test]
    fn permissions_csrf_and_origin_are_checked_and_refusals_audited() {
        let (_dir, _clock, auth) = setup();
        let (operator, session) = auth.login("alice", PW, ip()).unwrap();
        let request = RequestInfo::new("POST", "/api/v1/jobs", Some(ip()));
        auth.authorize(&operator, Action::RunBackup, &request)
            .unwrap();
        assert_eq!(
            auth.authorize(&operator, Action::RunRestore { overwrite: true }, &request),
            Err(AccessError::Forbidden {
                role: Role::Operator
            })
        );
        let origin = "https://backup.example:7443";
        let check = |csrf: Option<&str>, origin_given: Option<&str>| {
            auth.check_browser_write(&session.id, &operator, csrf, origin_given, origin, &request)
        };
        check(Some(&session.csrf_token), Some(origin)).unwrap();
        check(
            Some(&session.csrf_token),
            Some("https://BACKUP.example:7443/console/jobs"),
        )
        .unwrap();
        assert_eq!(check(None, Some(origin)), Err(AccessError::Csrf));
        assert_eq!(check(Some("00"), Some(origin)), Err(AccessError::Csrf));
        for bad in [
            None,
            Some("https://evil.example"),
            Some("http://backup.example:7443"),
            Some("https://backup.example:7443.evil.example"),
            Some("null"),
        ] {
            assert_eq!(
                check(Some(&session.csrf_token), bad),
                Err(AccessError::Origin)
            );
        }
        let refused = audit_lines(&auth)
            .into_iter()
            .filter(|l| l["event"] == "refused")
            .count();
        assert_eq!(refused, 1 + 2 + 5);
        let text = std::fs::read_to_string(auth.audit.as_ref().unwrap().path()).unwrap();
        assert!(!text.contains(&session.csrf_token));
        assert!(!text.contains(session.id.as_str()));
    }

    #[test]
    fn logout_ends_the_session_and_tokens_follow_the_file() {
        let (_dir, _clock, auth) = setup();
        let (_op, session) = auth.login("alice", PW, ip()).unwrap();
        auth.logout(&session.id, Some(ip()));
        assert!(auth.session(&session.id).is_none());
        let token = auth.operators.issue_token("alice").unwrap();
        assert_eq!(auth.bearer(&token.token).unwrap().name, "alice");
        auth.operators.remove("alice").unwrap();
        assert!(matches!(
            auth.bearer(&token.token),
            Err(AuthError::BadToken)
        ));
        auth.job_started(Who::Schedule("nightly".into()), None, "j1", "backup");
        let lines = audit_lines(&auth);
        assert!(lines.iter().any(|l| l["event"] == "logout"));
        assert!(lines.iter().any(|l| l["event"] == "job-started"));
    }
}
