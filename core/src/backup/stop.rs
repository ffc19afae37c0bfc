//! Asking a running job to stop, for front ends that run jobs on behalf of others (the
//! service): [`StopSignal::cancel`] ends a job as `cancelled` (a new backup's staged copy is
//! removed; nothing is listed), [`StopSignal::shut_down`] stops it at the next safe point and
//! leaves it to be resumed, as a killed process would, but with its locks released. Safe
//! points: before each step, and at any moment of a transfer (every put publishes atomically,
//! so an abandoned upload is never visible). Staging, once started, runs to its end.

use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

/// Why a job was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// An operator cancelled it: it ends as `cancelled`.
    Cancelled,
    /// The service is shutting down: the job is left to be resumed.
    ShutDown,
}

/// Shared between the job and whoever may stop it; cheap to clone. The default never stops.
#[derive(Debug, Clone, Default)]
pub struct StopSignal {
    token: CancellationToken,
    reason: Arc<OnceLock<(StopReason, String)>>,
}

impl StopSignal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels the job; `by` says who asked (recorded in its log and history).
    pub fn cancel(&self, by: &str) {
        self.stop(StopReason::Cancelled, by);
    }

    /// Stops the job at the next safe point, to be resumed later.
    pub fn shut_down(&self) {
        self.stop(StopReason::ShutDown, "the service shutting down");
    }

    fn stop(&self, reason: StopReason, by: &str) {
        let _ = self.reason.set((reason, by.to_owned()));
        self.token.cancel();
    }

    /// Why and by whom the job was asked to stop, once it was.
    pub fn reason(&self) -> Option<(StopReason, &str)> {
        self.reason.get().map(|(r, by)| (*r, by.as_str()))
    }

    pub fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once the job is asked to stop.
    pub async fn stopped(&self) {
        self.token.cancelled().await;
    }
}
