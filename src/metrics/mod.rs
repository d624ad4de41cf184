//! Prometheus metrics: the registry, the [`Recorder`] that code counts through, and
//! (in [`http`]) the local listener that serves it with the health check.
//!
//! The composition root (`crate::app`) makes one [`Recorder`] per process and hands a
//! clone to each part that counts (LMTP and dict servers, pipeline, delivery backends,
//! push queue and worker, dict attributes); the listener encodes the same one. Code
//! beneath never reaches a global: what it records is what it was handed, so tests
//! give each part a recorder of their own (or [`Recorder::off`]) and assert exact
//! values. Pure code (`policy`, `classify`) counts nothing: the pipeline counts policy
//! failures from the evaluation it gets back.
//!
//! Recording is infallible and cheap: a hash lookup of a small label set, then an
//! atomic increment (one per message plus one per recipient on the mail path). Label
//! values come only from the enums in [`labels`], never from mail, so the number of
//! series is fixed; each part maps its own types to them.
//!
//! Exposed (names per the Prometheus naming conventions; counters end in `_total`):
//! - `coid_sessions_active{proto}` gauge and `coid_sessions_total{proto}` counter
//!   ([`Recorder::session_started`]). The gauge is not `coid_sessions`: that family
//!   name is the counter's (OpenMetrics names a counter family without `_total`), and
//!   two families may not share a name.
//! - `coid_messages_total{class}` and `coid_deliveries_total{class,outcome}`
//!   ([`Recorder::message_done`]), `coid_delivery_duration_seconds`
//!   ([`Recorder::time_delivery`]).
//! - `coid_backend_errors_total{kind}` ([`Recorder::backend_error`]),
//!   `coid_policy_errors_total` ([`Recorder::policy_error`]).
//! - `coid_push_queue_depth{kind}` and `coid_deltachat_tokens` (counted at scrape time,
//!   see `queue_depth`; [`Recorder::watch_push_queue`]), and from the same store
//!   `coid_state_store_errors_total{engine}`,
//!   `coid_push_outcomes_total{outcome}` ([`Recorder::push_outcome`]),
//!   `coid_push_encrypted_beside_total` ([`Recorder::push_sealed_beside`]),
//!   `coid_deltachat_notifications_total{outcome}` ([`Recorder::deltachat_outcome`]).
//! - `coid_dict_commits_total{result}` ([`Recorder::dict_commit`]),
//!   `coid_reloads_total{result}` ([`Recorder::reload`]), `coid_build_info{version}` = 1.

pub mod http;
pub mod labels;
mod queue_depth;
mod registry;
mod sets;

use std::sync::Arc;

use crate::store::Store;

pub use labels::{
    BackendError, DeliveryOutcome, DeltaChatOutcome, DictCommit, MessageClass, Proto, PushOutcome,
};
use registry::Metrics;
pub use registry::SessionGuard;

/// The HTTP `Content-Type` of [`Recorder::encode`]'s output: OpenMetrics text 1.0.0,
/// which is what prometheus-client writes (`# EOF`, `# UNIT`, counter families without
/// `_total`). Prometheus asks for it first and parses it natively.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Where counts go: a registry, or nowhere ([`Recorder::off`], the default). Cheap to
/// clone; clones count into the same registry.
#[derive(Clone, Default)]
pub struct Recorder(Option<Arc<Metrics>>);

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Recorder"
        } else {
            "Recorder(off)"
        })
    }
}

impl Recorder {
    /// A new registry with every metric, every known series at 0.
    pub fn new() -> Recorder {
        Recorder(Some(Arc::new(Metrics::new())))
    }

    /// Records nothing (the command line's one-shot paths, tests that do not count).
    pub fn off() -> Recorder {
        Recorder(None)
    }

    /// A session was accepted: counts it in `coid_sessions_total` and, until the guard
    /// is dropped, in `coid_sessions_active`.
    pub fn session_started(&self, proto: Proto) -> SessionGuard {
        match &self.0 {
            Some(m) => m.session_started(proto),
            None => SessionGuard::off(),
        }
    }

    /// One message is done: counts it by class and each recipient by outcome.
    pub fn message_done(
        &self,
        class: MessageClass,
        outcomes: impl IntoIterator<Item = DeliveryOutcome>,
    ) {
        if let Some(m) = &self.0 {
            m.message_done(class, outcomes);
        }
    }

    /// Runs one backend delivery call, observing its wall time in
    /// `coid_delivery_duration_seconds`.
    pub async fn time_delivery<F: Future>(&self, delivery: F) -> F::Output {
        let start = std::time::Instant::now();
        let output = delivery.await;
        if let Some(m) = &self.0 {
            m.delivery_took(start.elapsed());
        }
        output
    }

    /// The delivery backend failed this way (once per failure, not per recipient).
    pub fn backend_error(&self, kind: BackendError) {
        if let Some(m) = &self.0 {
            m.backend_error(kind);
        }
    }

    /// A policy run failed or hit the CPU limit.
    pub fn policy_error(&self) {
        if let Some(m) = &self.0 {
            m.policy_error();
        }
    }

    /// One push ended this way.
    pub fn push_outcome(&self, outcome: PushOutcome) {
        self.push_outcomes(outcome, 1);
    }

    /// `count` pushes ended this way (the sweep, a full queue).
    pub fn push_outcomes(&self, outcome: PushOutcome, count: usize) {
        if let Some(m) = &self.0 {
            m.push_outcomes(outcome, count);
        }
    }

    /// One Web Push was encrypted on a sealing thread, beside the push worker's.
    pub fn push_sealed_beside(&self) {
        if let Some(m) = &self.0 {
            m.push_sealed_beside();
        }
    }

    /// One Delta Chat notification ended this way.
    pub fn deltachat_outcome(&self, outcome: DeltaChatOutcome) {
        self.deltachat_outcomes(outcome, 1);
    }

    /// `count` Delta Chat notifications ended this way (the sweep, a full queue).
    pub fn deltachat_outcomes(&self, outcome: DeltaChatOutcome, count: usize) {
        if let Some(m) = &self.0 {
            m.deltachat_outcomes(outcome, count);
        }
    }

    /// A dict commit ended this way.
    pub fn dict_commit(&self, result: DictCommit) {
        if let Some(m) = &self.0 {
            m.dict_commit(result);
        }
    }

    /// A reload (SIGHUP) succeeded (`true`) or was refused.
    pub fn reload(&self, ok: bool) {
        if let Some(m) = &self.0 {
            m.reload(ok);
        }
    }

    /// `coid_push_queue_depth` and `coid_deltachat_tokens` count `store`'s push queue
    /// and tokens at each scrape from now on.
    pub fn watch_push_queue(&self, store: Store) {
        if let Some(m) = &self.0 {
            m.watch_push_queue(store);
        }
    }

    /// The whole exposition, OpenMetrics text ([`CONTENT_TYPE`]), ending in `# EOF`;
    /// empty when off.
    ///
    /// Blocks: the queue depth is counted in SQLite. Async callers use
    /// `tokio::task::spawn_blocking`.
    ///
    /// # Errors
    /// Only if a metric fails to format (it does not with prometheus-client's types).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        match &self.0 {
            Some(m) => m.encode(),
            None => Ok(String::new()),
        }
    }
}

#[cfg(test)]
mod tests;
