//! Browser sessions, in memory (a restart logs everyone out): a random session id in an
//! HttpOnly cookie, an idle and an absolute expiry, and a CSRF token bound to the session
//! (HMAC-SHA256 of the session id under a key made at start, checked in constant time).
//!
//! Sessions are keyed by the SHA-256 of their id, so the table holds nothing a cookie could
//! be made from.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::clock::{Clock, SystemClock};
use super::random;

const ID_HEX_LEN: usize = 64;
const CSRF_CONTEXT: &[u8] = b"sstore csrf v1\0";

/// How long sessions last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// A session unused this long ends (default 8 h).
    pub idle: Duration,
    /// A session ends this long after the login however much it is used (default 12 h).
    pub absolute: Duration,
    /// The most sessions one operator may have; a login beyond ends the oldest (default 32).
    pub max_per_operator: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(8 * 3600),
            absolute: Duration::from_secs(12 * 3600),
            max_per_operator: 32,
        }
    }
}

/// A session just made: the id for the cookie (shown to that browser only), its CSRF token,
/// and how long the cookie should live.
pub struct NewSession {
    pub id: Zeroizing<String>,
    pub csrf_token: String,
    /// For the cookie's `Max-Age`: the absolute lifetime.
    pub max_age: Duration,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession")
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

/// A live session, as a lookup finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The operator's name; look it up in the operators file for its current role (and to
    /// find that it was removed).
    pub operator: String,
    /// The operator's `password_changed` (Unix seconds) when the session began: a session
    /// from before a password change is over.
    pub password_changed: i64,
    pub created: Instant,
    /// When it ends unless used again (or at the absolute limit).
    pub expires: Instant,
}

#[derive(Debug)]
struct Entry {
    operator: String,
    password_changed: i64,
    created: Instant,
    last_seen: Instant,
}

/// The live sessions of the service. Shared by requests; every method takes `&self`.
pub struct Sessions {
    config: SessionConfig,
    clock: Arc<dyn Clock>,
    csrf_key: Zeroizing<[u8; 32]>,
    table: Mutex<HashMap<[u8; 32], Entry>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn key_of(id: &str) -> Option<[u8; 32]> {
    if id.len() == ID_HEX_LEN && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Some(Sha256::digest(id.as_bytes()).into())
    } else {
        None
    }
}

impl Sessions {
    pub fn new(config: SessionConfig) -> Self {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    pub fn with_clock(config: SessionConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            config,
            clock,
            csrf_key: Zeroizing::new(random::bytes::<32>()),
            table: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> SessionConfig {
        self.config
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn expiry(&self, entry: &Entry) -> Instant {
        (entry.last_seen + self.config.idle).min(entry.created + self.config.absolute)
    }

    fn purge(&self, table: &mut HashMap<[u8; 32], Entry>, now: Instant) {
        table.retain(|_, e| self.expiry(e) > now);
    }

    /// Starts a session for `operator` (after its password, last changed at
    /// `password_changed`, was checked).
    pub fn create(&self, operator: &str, password_changed: i64) -> NewSession {
        let id = Zeroizing::new(hex::encode(random::bytes::<32>()));
        let now = self.clock.now();
        let mut table = self.lock();
        self.purge(&mut table, now);
        let mut mine: Vec<([u8; 32], Instant)> = table
            .iter()
            .filter(|(_, e)| e.operator == operator)
            .map(|(k, e)| (*k, e.created))
            .collect();
        if mine.len() >= self.config.max_per_operator.max(1) {
            mine.sort_by_key(|(_, created)| *created);
            let excess = mine.len() + 1 - self.config.max_per_operator.max(1);
            for (key, _) in mine.into_iter().take(excess) {
                table.remove(&key);
            }
        }
        if let Some(key) = key_of(&id) {
            table.insert(
                key,
                Entry {
                    operator: operator.to_owned(),
                    password_changed,
                    created: now,
                    last_seen: now,
                },
            );
        }
        drop(table);
        let csrf_token = self.csrf_token(&id);
        NewSession {
            id,
            csrf_token,
            max_age: self.config.absolute,
        }
    }

    /// The live session of a cookie's id, marking it used now; `None` when unknown, expired
    /// or malformed (an expired one is forgotten).
    pub fn lookup(&self, id: &str) -> Option<Session> {
        let key = key_of(id)?;
        let now = self.clock.now();
        let mut table = self.lock();
        if table.get(&key).map(|e| self.expiry(e))? <= now {
            table.remove(&key);
            return None;
        }
        let entry = table.get_mut(&key)?;
        entry.last_seen = now;
        Some(Session {
            operator: entry.operator.clone(),
            password_changed: entry.password_changed,
            created: entry.created,
            expires: self.expiry(entry),
        })
    }

    /// Ends a session; returns whether it existed.
    pub fn logout(&self, id: &str) -> bool {
        key_of(id).is_some_and(|key| self.lock().remove(&key).is_some())
    }

    /// Ends every session of an operator (removed, or whose password changed); returns how
    /// many there were.
    pub fn remove_operator(&self, operator: &str) -> usize {
        let mut table = self.lock();
        let before = table.len();
        table.retain(|_, e| e.operator != operator);
        before - table.len()
    }

    /// How many sessions are live.
    pub fn len(&self) -> usize {
        let now = self.clock.now();
        let mut table = self.lock();
        self.purge(&mut table, now);
        table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn mac(&self, id: &str) -> Hmac<Sha256> {
        let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(&*self.csrf_key) {
            Ok(mac) => mac,
            // HMAC takes keys of any length.
            Err(_) => unreachable!("HMAC key length"),
        };
        mac.update(CSRF_CONTEXT);
        mac.update(id.as_bytes());
        mac
    }

    /// The CSRF token of a session: the same for the session's whole life, useless for any
    /// other session or after a restart of the service.
    pub fn csrf_token(&self, id: &str) -> String {
        hex::encode(self.mac(id).finalize().into_bytes())
    }

    /// Whether `token` is the CSRF token of session `id` (compared in constant time).
    pub fn check_csrf(&self, id: &str, token: &str) -> bool {
        let mut given = [0u8; 32];
        if hex::decode_to_slice(token, &mut given).is_err() {
            return false;
        }
        self.mac(id).verify_slice(&given).is_ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::clock::ManualClock;
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn sessions() -> (ManualClock, Sessions) {
        let clock = ManualClock::new();
        let sessions = Sessions::with_clock(SessionConfig::default(), Arc::new(clock.clone()));
        (clock, sessions)
    }

    #[test]
    fn a_session_is_found_by_its_id_and_ends_at_logout() {
        let (_clock, sessions) = sessions();
        let new = sessions.create("alice", 0);
        assert_eq!(new.id.len(), 64);
        assert_eq!(new.max_age, 12 * HOUR);
        assert_eq!(sessions.lookup(&new.id).unwrap().operator, "alice");
        let other = sessions.create("alice", 0);
        assert_ne!(*new.id, *other.id);
        assert!(sessions.logout(&new.id));
        assert!(sessions.lookup(&new.id).is_none());
        assert!(!sessions.logout(&new.id));
        assert!(sessions.lookup(&other.id).is_some());
        for bad in ["", "x", &"0".repeat(64), &format!("{}z", &other.id[..63])] {
            assert!(sessions.lookup(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_session_unused_for_eight_hours_expires() {
        let (clock, sessions) = sessions();
        let new = sessions.create("alice", 0);
        let unused = sessions.create("bob", 0);
        clock.advance(3 * HOUR);
        assert!(sessions.lookup(&new.id).is_some());
        clock.advance(5 * HOUR);
        assert!(sessions.lookup(&unused.id).is_none(), "8 h unused");
        clock.advance(3 * HOUR - Duration::from_secs(1));
        // 11 h after the login, 8 h less a second after its last use: still live.
        assert!(sessions.lookup(&new.id).is_some(), "the lookup renewed it");
        let other = sessions.create("carol", 0);
        clock.advance(8 * HOUR);
        assert!(sessions.lookup(&other.id).is_none());
        assert!(sessions.lookup(&new.id).is_none());
        assert!(sessions.is_empty());
    }

    #[test]
    fn a_session_in_use_still_ends_after_twelve_hours() {
        let (clock, sessions) = sessions();
        let new = sessions.create("alice", 0);
        let created = sessions.lookup(&new.id).unwrap().created;
        for _ in 0..11 {
            clock.advance(HOUR);
            let s = sessions.lookup(&new.id).unwrap();
            assert!(s.expires <= created + 12 * HOUR);
        }
        clock.advance(HOUR);
        assert!(sessions.lookup(&new.id).is_none());
    }

    #[test]
    fn expiry_is_configurable() {
        let clock = ManualClock::new();
        let config = SessionConfig {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(90),
            max_per_operator: 2,
        };
        let sessions = Sessions::with_clock(config, Arc::new(clock.clone()));
        let a = sessions.create("alice", 0);
        assert_eq!(a.max_age, Duration::from_secs(90));
        clock.advance(Duration::from_secs(61));
        assert!(sessions.lookup(&a.id).is_none());
        // Beyond the limit per operator, the oldest session ends.
        let b = sessions.create("alice", 0);
        clock.advance(Duration::from_secs(1));
        let c = sessions.create("alice", 0);
        clock.advance(Duration::from_secs(1));
        let d = sessions.create("alice", 0);
        assert!(sessions.lookup(&b.id).is_none());
        assert!(sessions.lookup(&c.id).is_some());
        assert!(sessions.lookup(&d.id).is_some());
    }

    #[test]
    fn removing_an_operator_ends_its_sessions_only() {
        let (_clock, sessions) = sessions();
        let a1 = sessions.create("alice", 0);
        let a2 = sessions.create("alice", 0);
        let b = sessions.create("bob", 0);
        assert_eq!(sessions.remove_operator("alice"), 2);
        assert!(sessions.lookup(&a1.id).is_none());
        assert!(sessions.lookup(&a2.id).is_none());
        assert!(sessions.lookup(&b.id).is_some());
        assert_eq!(sessions.len(), 1);
    }

    #[test]
    fn the_csrf_token_is_bound_to_its_session_and_to_this_process() {
        let (_clock, sessions) = sessions();
        let a = sessions.create("alice", 0);
        let b = sessions.create("alice", 0);
        assert_eq!(a.csrf_token, sessions.csrf_token(&a.id));
        assert!(sessions.check_csrf(&a.id, &a.csrf_token));
        assert!(sessions.check_csrf(&a.id, &a.csrf_token.to_uppercase()));
        assert!(!sessions.check_csrf(&a.id, &b.csrf_token));
        assert!(!sessions.check_csrf(&b.id, &a.csrf_token));
        assert!(!sessions.check_csrf(&a.id, ""));
        assert!(!sessions.check_csrf(&a.id, "zz"));
        assert!(!sessions.check_csrf(&a.id, &a.csrf_token[..62]));
        // Another process (a restart) has another key.
        let (_c, restarted) = super::tests::sessions();
        assert!(!restarted.check_csrf(&a.id, &a.csrf_token));
        assert_ne!(a.csrf_token, *a.id);
    }
}
