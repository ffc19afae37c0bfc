//! Operators and authentication: who may use the service and what each may do.
//!
//! - [`operators`]: the operators file (names, roles, Argon2id password hashes, hashed API
//!   tokens), owner-only, read again when the CLI changes it.
//! - [`role`]: roles and the actions each allows.
//! - [`sessions`] and [`cookie`]: browser sessions with CSRF tokens, and their cookie.
//! - [`limiter`]: failed logins limited per account and per address.
//! - [`audit`]: the audit log (JSON lines, no secrets).
//! - [`authenticator`]: all of these put together the way a request uses them.
//! - [`paths`]: where the operators file and the audit log are.
//!
//! Everything here is plain logic, without HTTP.

pub mod audit;
pub mod authenticator;
pub mod clock;
pub mod cookie;
mod file;
pub mod limiter;
pub mod operators;
pub mod password;
pub mod paths;
mod random;
pub mod role;
pub mod sessions;
pub mod token;

pub use audit::{AuditError, AuditEvent, AuditLog, Who};
pub use authenticator::{AccessError, Authenticator, LoginError, RequestInfo};
pub use clock::{Clock, ManualClock, SystemClock};
pub use file::NotOwnerOnly;
pub use limiter::{LimitScope, LimiterConfig, LoginLimiter, RateLimited};
pub use operators::{AuthError, IssuedToken, Operator, OperatorError, OperatorStore, TokenInfo};
pub use role::{Action, Role};
pub use sessions::{NewSession, Session, SessionConfig, Sessions};
