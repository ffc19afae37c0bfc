//! Login rate limiting: failed logins are counted per account name and per client address
//! over a sliding window; past the limit, logins are refused (before any password is
//! checked) with the time to wait. In memory.
//!
//! A success clears the account's failures, not the address's: one good login of an
//! attacker's own account must not buy more guesses at others from the same address.
//! IPv6 addresses count per /64, the block one host usually has.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::clock::{Clock, SystemClock};

/// Account names longer than this are counted by their first bytes (bounds memory).
const MAX_ACCOUNT_KEY: usize = 128;

/// How many failures are allowed, and over how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimiterConfig {
    /// The sliding window (default 15 min).
    pub window: Duration,
    /// Failures per account name in the window before its logins are refused (default 5).
    pub per_account: usize,
    /// Failures per client address in the window (default 20).
    pub per_address: usize,
    /// Most accounts or addresses tracked at once; beyond, the stalest are forgotten
    /// (default 10 000).
    pub max_tracked: usize,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(15 * 60),
            per_account: 5,
            per_address: 20,
            max_tracked: 10_000,
        }
    }
}

/// Which limit was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    Account,
    Address,
}

impl fmt::Display for LimitScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LimitScope::Account => "for this account",
            LimitScope::Address => "from this address",
        })
    }
}

/// A login refused because of earlier failures; `retry_after` is for the `Retry-After` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many failed logins {scope}: try again in {} seconds", retry_after_secs(*.retry_after))]
pub struct RateLimited {
    pub scope: LimitScope,
    pub retry_after: Duration,
}

impl RateLimited {
    /// Whole seconds to wait, rounded up (at least 1), for `Retry-After`.
    pub fn retry_after_secs(&self) -> u64 {
        retry_after_secs(self.retry_after)
    }
}

fn retry_after_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum AddressKey {
    V4([u8; 4]),
    V6Prefix([u8; 8]),
}

fn address_key(address: IpAddr) -> AddressKey {
    match address {
        IpAddr::V4(v4) => AddressKey::V4(v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => AddressKey::V4(v4.octets()),
            None => {
                let o = v6.octets();
                AddressKey::V6Prefix([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]])
            }
        },
    }
}

fn account_key(account: &str) -> String {
    let mut end = account.len().min(MAX_ACCOUNT_KEY);
    while !account.is_char_boundary(end) {
        end -= 1;
    }
    account[..end].to_owned()
}

#[derive(Debug)]
struct Failures<K> {
    map: HashMap<K, VecDeque<Instant>>,
}

impl<K: Hash + Eq + Clone> Failures<K> {
    fn new() -> Self {
        Self {
            map: HashMap::new(),
        }
    }

    /// The failures of `key` still in the window (older ones are dropped).
    fn recent(&mut self, key: &K, now: Instant, window: Duration) -> Option<&VecDeque<Instant>> {
        let list = self.map.get_mut(key)?;
        while list.front().is_some_and(|t| *t + window <= now) {
            list.pop_front();
        }
        if list.is_empty() {
            self.map.remove(key);
            return None;
        }
        self.map.get(key)
    }

    /// `Some(wait)` when `key` has `limit` or more failures in the window.
    fn refused(
        &mut self,
        key: &K,
        limit: usize,
        now: Instant,
        window: Duration,
    ) -> Option<Duration> {
        let list = self.recent(key, now, window)?;
        if list.len() < limit.max(1) {
            return None;
        }
        let freeing = list.get(list.len() - limit.max(1))?;
        Some((*freeing + window).saturating_duration_since(now))
    }

    fn record(&mut self, key: K, now: Instant, window: Duration, max_tracked: usize) {
        if !self.map.contains_key(&key) && self.map.len() >= max_tracked.max(1) {
            self.map
                .retain(|_, list| list.back().is_some_and(|t| *t + window > now));
            if self.map.len() >= max_tracked.max(1)
                && let Some(stalest) = self
                    .map
                    .iter()
                    .min_by_key(|(_, list)| list.back().copied())
                    .map(|(k, _)| k.clone())
            {
                self.map.remove(&stalest);
            }
        }
        self.map.entry(key).or_default().push_back(now);
    }
}

#[derive(Debug)]
struct State {
    accounts: Failures<String>,
    addresses: Failures<AddressKey>,
}

/// Counts failed logins and refuses logins past the limits. Shared by requests.
pub struct LoginLimiter {
    config: LimiterConfig,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl fmt::Debug for LoginLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginLimiter")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl LoginLimiter {
    pub fn new(config: LimiterConfig) -> Self {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    pub fn with_clock(config: LimiterConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            config,
            clock,
            state: Mutex::new(State {
                accounts: Failures::new(),
                addresses: Failures::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a login for `account` from `address` may be tried now. Call it before checking
    /// the password; when refused, check nothing.
    pub fn check(&self, account: &str, address: IpAddr) -> Result<(), RateLimited> {
        let now = self.clock.now();
        let window = self.config.window;
        let mut state = self.lock();
        let by_address =
            state
                .addresses
                .refused(&address_key(address), self.config.per_address, now, window);
        let by_account =
            state
                .accounts
                .refused(&account_key(account), self.config.per_account, now, window);
        match (by_account, by_address) {
            (Some(a), Some(b)) if b > a => Err(RateLimited {
                scope: LimitScope::Address,
                retry_after: b,
            }),
            (Some(a), _) => Err(RateLimited {
                scope: LimitScope::Account,
                retry_after: a,
            }),
            (None, Some(b)) => Err(RateLimited {
                scope: LimitScope::Address,
                retry_after: b,
            }),
            (None, None) => Ok(()),
        }
    }

    /// Counts a failed login (a wrong password, an unknown name).
    pub fn record_failure(&self, account: &str, address: IpAddr) {
        let now = self.clock.now();
        let (window, max) = (self.config.window, self.config.max_tracked);
        let mut state = self.lock();
        state
            .accounts
            .record(account_key(account), now, window, max);
        state
            .addresses
            .record(address_key(address), now, window, max);
    }

    /// Clears the account's failures after a successful login.
    pub fn record_success(&self, account: &str, _address: IpAddr) {
        self.lock().accounts.map.remove(&account_key(account));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::clock::ManualClock;
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn limiter() -> (ManualClock, LoginLimiter) {
        let clock = ManualClock::new();
        let limiter = LoginLimiter::with_clock(LimiterConfig::default(), Arc::new(clock.clone()));
        (clock, limiter)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn five_failures_lock_the_account_for_the_rest_of_the_window() {
        let (clock, limiter) = limiter();
        let from = ip("192.0.2.1");
        for _ in 0..5 {
            limiter.check("alice", from).unwrap();
            limiter.record_failure("alice", from);
            clock.advance(MINUTE);
        }
        let refused = limiter.check("alice", from).unwrap_err();
        assert_eq!(refused.scope, LimitScope::Account);
        // The first failure was 5 minutes ago: it leaves the window in 10.
        assert_eq!(refused.retry_after, 10 * MINUTE);
        assert_eq!(refused.retry_after_secs(), 600);
        assert!(refused.to_string().contains("try again in 600 seconds"));
        // From another address too: the account is what is locked.
        assert!(limiter.check("alice", ip("198.51.100.7")).is_err());
        // Other accounts from the same address are not.
        limiter.check("bob", from).unwrap();
        clock.advance(10 * MINUTE);
        limiter.check("alice", from).unwrap();
    }

    #[test]
    fn twenty_failures_lock_the_address_whatever_the_names() {
        let (clock, limiter) = limiter();
        let from = ip("2001:db8::1");
        for i in 0..20 {
            let name = format!("user{i}");
            limiter.check(&name, from).unwrap();
            limiter.record_failure(&name, from);
        }
        let refused = limiter.check("someone-else", from).unwrap_err();
        assert_eq!(refused.scope, LimitScope::Address);
        assert_eq!(refused.retry_after, 15 * MINUTE);
        // The same /64 is the same client; another network is not.
        assert!(limiter.check("x", ip("2001:db8::ffff")).is_err());
        limiter.check("x", ip("2001:db9::1")).unwrap();
        limiter.check("x", ip("192.0.2.1")).unwrap();
        clock.advance(15 * MINUTE);
        limiter.check("someone-else", from).unwrap();
    }

    #[test]
    fn a_success_resets_the_account_but_not_the_address() {
        let (_clock, limiter) = limiter();
        let from = ip("192.0.2.1");
        for _ in 0..4 {
            limiter.record_failure("alice", from);
        }
        limiter.record_success("alice", from);
        for _ in 0..4 {
            limiter.record_failure("alice", from);
        }
        limiter.check("alice", from).unwrap();
        limiter.record_failure("alice", from);
        assert!(limiter.check("alice", from).is_err());
        limiter.record_success("alice", from);
        limiter.check("alice", from).unwrap();
        // 9 failures counted for the address so far; 11 more lock it, success or not.
        for i in 0..11 {
            limiter.record_failure(&format!("u{i}"), from);
        }
        limiter.record_success("alice", from);
        assert_eq!(
            limiter.check("alice", from).unwrap_err().scope,
            LimitScope::Address
        );
    }

    #[test]
    fn the_window_slides() {
        let (clock, limiter) = limiter();
        let from = ip("::ffff:192.0.2.9");
        for _ in 0..4 {
            limiter.record_failure("alice", from);
        }
        clock.advance(14 * MINUTE);
        limiter.record_failure("alice", from);
        assert!(limiter.check("alice", from).is_err());
        clock.advance(MINUTE);
        // The first four left the window; one remains.
        limiter.check("alice", from).unwrap();
        // An IPv4-mapped address is the IPv4 address.
        assert!(limiter.check("alice", ip("192.0.2.9")).is_ok());
    }

    #[test]
    fn memory_is_bounded() {
        let clock = ManualClock::new();
        let config = LimiterConfig {
            max_tracked: 3,
            per_address: 1000,
            ..LimiterConfig::default()
        };
        let limiter = LoginLimiter::with_clock(config, Arc::new(clock.clone()));
        let from = ip("192.0.2.1");
        for i in 0..10 {
            limiter.record_failure(&format!("u{i}"), from);
            clock.advance(Duration::from_secs(1));
        }
        assert!(limiter.lock().accounts.map.len() <= 3);
        assert_eq!(account_key(&"é".repeat(100)).len(), 128);
    }
}
