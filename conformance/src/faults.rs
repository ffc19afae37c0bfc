//! Fault injection for tests: a [`FaultPlan`] says which calls of which operation fail or
//! stall, and [`FaultyTarget`] wraps any target with it. The plan itself is synchronous and
//! deserializable, so a test plugin (`tests/fixtures/faulty-plugin`) reads the same rules from
//! its settings and asks the same plan; one decision logic serves the engine's tests, the
//! kit's own tests and the end-to-end tests of the real binary.
//!
//! A rule: `operation` (`put`, `get`, `stat`, `list`, `delete`, `readiness`), an optional
//! `key_suffix` the key must end with, `after` matching calls let through first (default 0),
//! then `times` calls hit (default: every later one), with `fault`:
//!
//! | fault | what happens |
//! |---|---|
//! | `temporary` | a temporary I/O error (the engine retries) |
//! | `permanent` | permission denied (permanent: the engine does not retry) |
//! | `no-space` | the target is full (permanent) |
//! | `stall` | the call waits `ms` milliseconds, then goes on |
//! | `slow-body` | a put's body is read with a `ms` pause per chunk (a slow link) |
//! | `fail-mid-body` | a put's body fails after `after_bytes` bytes (a dropped connection) |
//! | `panic` | the call panics (a defect in a target) |
//!
//! In TOML: `faults = [{ operation = "put", key_suffix = ".bak", times = 2, fault = "temporary" }]`.

use std::future::Future as _;
use std::ops::Range;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use sstore_target_api::{
    Capabilities, ObjectKey, ObjectMeta, ObjectReader, PutBody, PutMode, PutOptions, Readiness,
    RetryStatus, Target, TargetError, TargetErrorKind,
};
use tokio::io::{AsyncRead, ReadBuf};

/// The operations a rule can hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    Put,
    Get,
    Stat,
    List,
    Delete,
    Readiness,
}

impl Operation {
    /// The name rules use (`put`, `get`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Put => "put",
            Self::Get => "get",
            Self::Stat => "stat",
            Self::List => "list",
            Self::Delete => "delete",
            Self::Readiness => "readiness",
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a hit call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    Temporary,
    Permanent,
    NoSpace,
    Stall,
    SlowBody,
    FailMidBody,
    Panic,
}

/// One rule of a plan.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub operation: Operation,
    #[serde(default)]
    pub key_suffix: Option<String>,
    /// Matching calls let through before the first hit.
    #[serde(default)]
    pub after: u32,
    /// How many calls are hit (`None`: every one after `after`).
    #[serde(default)]
    pub times: Option<u32>,
    pub fault: FaultKind,
    /// For `stall` and `slow-body`: the pause in milliseconds.
    #[serde(default)]
    pub ms: u64,
    /// For `fail-mid-body`: the bytes read before the body fails.
    #[serde(default)]
    pub after_bytes: u64,
}

impl Rule {
    /// A rule hitting `times` calls of `operation` (every call when `None`) with `fault`.
    pub fn new(operation: Operation, fault: FaultKind) -> Self {
        Self {
            operation,
            key_suffix: None,
            after: 0,
            times: None,
            fault,
            ms: 0,
            after_bytes: 0,
        }
    }

    pub fn on_keys_ending(mut self, suffix: &str) -> Self {
        self.key_suffix = Some(suffix.to_owned());
        self
    }

    pub fn after(mut self, calls: u32) -> Self {
        self.after = calls;
        self
    }

    pub fn times(mut self, times: u32) -> Self {
        self.times = Some(times);
        self
    }

    pub fn ms(mut self, ms: u64) -> Self {
        self.ms = ms;
        self
    }

    pub fn after_bytes(mut self, bytes: u64) -> Self {
        self.after_bytes = bytes;
        self
    }
}

/// A fault to apply to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub ms: u64,
    pub after_bytes: u64,
    /// Which hit of its rule this is (1 for the first).
    pub hit: u32,
}

impl Fault {
    /// The error a failing fault returns (`None` for faults that delay or alter a body).
    pub fn error(&self, location: &str, key: Option<&ObjectKey>) -> Option<TargetError> {
        let (kind, retry, what) = match self.kind {
            FaultKind::Temporary => (
                TargetErrorKind::Io,
                RetryStatus::Temporary,
                "temporary I/O error",
            ),
            FaultKind::Permanent => (
                TargetErrorKind::PermissionDenied,
                RetryStatus::Permanent,
                "permission denied",
            ),
            FaultKind::NoSpace => (
                TargetErrorKind::NoSpace,
                RetryStatus::Permanent,
                "no space left",
            ),
            _ => return None,
        };
        Some(
            TargetError::new(
                kind,
                location,
                key,
                format!("{what} (injected fault, hit {})", self.hit),
            )
            .with_retry(retry),
        )
    }

    /// Panics for a `panic` fault.
    pub fn maybe_panic(&self, operation: Operation) {
        if self.kind == FaultKind::Panic {
            panic!("injected panic in {operation}");
        }
    }
}

/// The rules of a test, with a call counter per rule. Shared between clones of a target.
#[derive(Debug, Default)]
pub struct FaultPlan {
    rules: Vec<(Rule, AtomicU32)>,
}

impl FaultPlan {
    pub fn new(rules: impl IntoIterator<Item = Rule>) -> Self {
        Self {
            rules: rules.into_iter().map(|r| (r, AtomicU32::new(0))).collect(),
        }
    }

    /// Counts a call of `operation` on `key` and says which fault, if any, it gets (the
    /// first rule that hits).
    pub fn check(&self, operation: Operation, key: Option<&str>) -> Option<Fault> {
        for (rule, calls) in &self.rules {
            if rule.operation != operation {
                continue;
            }
            if let Some(suffix) = &rule.key_suffix
                && !key.is_some_and(|k| k.ends_with(suffix.as_str()))
            {
                continue;
            }
            let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
            let hit = call.saturating_sub(rule.after);
            if hit >= 1 && rule.times.is_none_or(|times| hit <= times) {
                return Some(Fault {
                    kind: rule.fault,
                    ms: rule.ms,
                    after_bytes: rule.after_bytes,
                    hit,
                });
            }
        }
        None
    }

    /// How many calls each rule has seen, in rule order.
    pub fn calls(&self) -> Vec<u32> {
        self.rules
            .iter()
            .map(|(_, calls)| calls.load(Ordering::SeqCst))
            .collect()
    }
}

/// A target with faults injected by a [`FaultPlan`].
#[derive(Debug, Clone)]
pub struct FaultyTarget {
    inner: Arc<dyn Target>,
    plan: Arc<FaultPlan>,
}

impl FaultyTarget {
    pub fn new(inner: Arc<dyn Target>, plan: FaultPlan) -> Self {
        Self {
            inner,
            plan: Arc::new(plan),
        }
    }

    pub fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    /// Applies the fault for this call, if any: waits, panics, or fails.
    async fn before(
        &self,
        operation: Operation,
        key: Option<&ObjectKey>,
    ) -> Result<Option<Fault>, TargetError> {
        let Some(fault) = self.plan.check(operation, key.map(ObjectKey::as_str)) else {
            return Ok(None);
        };
        fault.maybe_panic(operation);
        if fault.kind == FaultKind::Stall {
            tokio::time::sleep(Duration::from_millis(fault.ms)).await;
        }
        match fault.error(&self.inner.location(), key) {
            Some(error) => Err(error),
            None => Ok(Some(fault)),
        }
    }
}

#[async_trait]
impl Target for FaultyTarget {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn put(
        &self,
        key: &ObjectKey,
        body: PutBody<'_>,
        options: PutOptions,
    ) -> Result<ObjectMeta, TargetError> {
        match self.before(Operation::Put, Some(key)).await? {
            Some(fault) if matches!(fault.kind, FaultKind::SlowBody | FaultKind::FailMidBody) => {
                let mut body = FaultyBody {
                    inner: Box::new(body),
                    fault,
                    read: 0,
                    pause: None,
                };
                self.inner.put(key, &mut body, options).await
            }
            _ => self.inner.put(key, body, options).await,
        }
    }

    async fn put_file(
        &self,
        key: &ObjectKey,
        path: &Path,
        mode: PutMode,
    ) -> Result<ObjectMeta, TargetError> {
        match self.before(Operation::Put, Some(key)).await? {
            // A body fault needs a body: stream the file through `put`.
            Some(fault) if matches!(fault.kind, FaultKind::SlowBody | FaultKind::FailMidBody) => {
                let file = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| TargetError::from_io(&self.location(), Some(key), e))?;
                let mut body = FaultyBody {
                    inner: Box::new(file),
                    fault,
                    read: 0,
                    pause: None,
                };
                self.inner
                    .put(key, &mut body, PutOptions { mode, length: None })
                    .await
            }
            _ => self.inner.put_file(key, path, mode).await,
        }
    }

    async fn get(&self, key: &ObjectKey) -> Result<ObjectReader, TargetError> {
        self.before(Operation::Get, Some(key)).await?;
        self.inner.get(key).await
    }

    async fn get_range(
        &self,
        key: &ObjectKey,
        range: Range<u64>,
    ) -> Result<ObjectReader, TargetError> {
        self.before(Operation::Get, Some(key)).await?;
        self.inner.get_range(key, range).await
    }

    async fn stat(&self, key: &ObjectKey) -> Result<ObjectMeta, TargetError> {
        self.before(Operation::Stat, Some(key)).await?;
        self.inner.stat(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, TargetError> {
        self.before(Operation::List, None).await?;
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), TargetError> {
        self.before(Operation::Delete, Some(key)).await?;
        self.inner.delete(key).await
    }

    async fn readiness(&self) -> Result<Readiness, TargetError> {
        self.before(Operation::Readiness, None).await?;
        self.inner.readiness().await
    }

    async fn connection(&self) -> Result<Option<String>, TargetError> {
        self.inner.connection().await
    }
}

/// A put body that is slow, or fails part-way.
struct FaultyBody<'a> {
    inner: Box<dyn AsyncRead + Send + Unpin + 'a>,
    fault: Fault,
    read: u64,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl AsyncRead for FaultyBody<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.fault.kind == FaultKind::FailMidBody && this.read >= this.fault.after_bytes {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                format!("the body failed after {} bytes (injected fault)", this.read),
            )));
        }
        if this.fault.kind == FaultKind::SlowBody {
            let pause = this.pause.get_or_insert_with(|| {
                Box::pin(tokio::time::sleep(Duration::from_millis(this.fault.ms)))
            });
            if pause.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.pause = None;
        }
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            this.read += (buf.filled().len() - before) as u64;
        }
        poll
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn rules_count_matching_calls_and_hit_the_ones_asked() {
        let plan = FaultPlan::new([
            Rule::new(Operation::Put, FaultKind::Temporary)
                .on_keys_ending(".bak")
                .after(1)
                .times(2),
            Rule::new(Operation::Delete, FaultKind::Permanent),
        ]);
        let put = |key| plan.check(Operation::Put, Some(key)).map(|f| f.hit);
        assert_eq!(put("a/x.bak"), None);
        assert_eq!(put("a/y.json"), None);
        assert_eq!(put("a/x.bak"), Some(1));
        assert_eq!(put("a/x.bak"), Some(2));
        assert_eq!(put("a/x.bak"), None);
        assert_eq!(plan.check(Operation::Delete, Some("k")).unwrap().hit, 1);
        assert_eq!(plan.check(Operation::Delete, None).unwrap().hit, 2);
        assert_eq!(plan.calls(), [4, 2]);
        let fault = plan.check(Operation::Delete, Some("k")).unwrap();
        let e = fault.error("loc", None).unwrap();
        assert_eq!(e.kind, TargetErrorKind::PermissionDenied);
        assert!(!e.is_temporary());
        assert!(e.message.contains("injected"), "{e}");
    }

    #[test]
    fn a_panic_fault_names_the_operation_as_rules_do() {
        let plan = FaultPlan::new([Rule::new(Operation::Readiness, FaultKind::Panic)]);
        let fault = plan.check(Operation::Readiness, None).unwrap();
        assert!(fault.error("loc", None).is_none());
        let payload =
            std::panic::catch_unwind(|| fault.maybe_panic(Operation::Readiness)).unwrap_err();
        let message = payload.downcast_ref::<String>().unwrap();
        assert_eq!(message, "injected panic in readiness");
    }

    #[test]
    fn rules_read_from_toml_settings() {
        #[derive(Deserialize)]
        struct Settings {
            faults: Vec<Rule>,
        }
        let s: Settings = toml::from_str(
            "faults = [{ operation = 'put', key_suffix = '.bak', times = 2, fault = 'temporary' },\n\
             { operation = 'put', fault = 'slow-body', ms = 5 }]",
        )
        .unwrap();
        assert_eq!(s.faults.len(), 2);
        assert_eq!(s.faults[1].fault, FaultKind::SlowBody);
        assert_eq!(s.faults[1].ms, 5);
    }
}
