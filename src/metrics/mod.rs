//! Prometheus metrics: one registry for the whole process, the calls that record into
//! it, and (in [`http`]) the local listener that serves it with the health check.
//!
//! Metrics are process-global by nature: a scrape reports the process, and the events
//! happen deep in the LMTP, delivery, policy, push and dict code, which should not
//! carry a handle through every call. So the registry is a `static` ([`LazyLock`]),
//! built on first use, and recording is a plain function call (`metrics::…`) and
//! infallible: an uncontended read lock and a hash lookup of a small label set, then
//! an atomic increment (one per message plus one per recipient on the mail path). Label values come only from the enums in
//! [`labels`], never from mail, so the number of series is fixed.
//!
//! Exposed (names per the Prometheus naming conventions; counters end in `_total`):
//! - `coid_sessions_active{proto}` gauge and `coid_sessions_total{proto}` counter
//!   ([`session_started`]). The gauge is not `coid_sessions`: that family name is
//!   the counter's (OpenMetrics names a counter family without `_total`), and two
//!   families may not share a name.
//! - `coid_messages_total{class}` and `coid_deliveries_total{class,outcome}`
//!   ([`message_done`]), `coid_delivery_duration_seconds` ([`time_delivery`]).
//! - `coid_backend_errors_total{kind}` ([`backend_error`]),
//!   `coid_policy_errors_total` ([`policy_error`]).
//! - `coid_push_queue_depth{kind}` and `coid_deltachat_tokens` (counted at scrape time,
//!   see `queue_depth`; [`watch_push_queue`]), `coid_push_outcomes_total{outcome}`
//!   ([`push_outcome`]), `coid_deltachat_notifications_total{outcome}`
//!   ([`deltachat_outcome`]).
//! - `coid_dict_commits_total{result}` ([`dict_commit`]),
//!   `coid_reloads_total{result}` ([`reload`]), `coid_build_info{version}` = 1.

pub mod http;
pub mod labels;
mod queue_depth;
mod registry;
mod sets;

use std::sync::LazyLock;

use crate::classify::Class;
use crate::lmtp::Reply;
use crate::store::Store;

pub use labels::{BackendError, DeltaChatOutcome, DictCommit, Proto, PushOutcome};
use registry::Metrics;
pub use registry::SessionGuard;

/// The HTTP `Content-Type` of [`encode`]'s output: OpenMetrics text 1.0.0, which is
/// what prometheus-client writes (`# EOF`, `# UNIT`, counter families without
/// `_total`). Prometheus asks for it first and parses it natively.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The process's metrics.
static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// A session was accepted: counts it in `coid_sessions_total` and, until the guard is
/// dropped, in `coid_sessions_active`.
pub fn session_started(proto: Proto) -> SessionGuard {
    METRICS.session_started(proto)
}

/// One message is done: counts it by class (`None`: it could not be classified) and
/// each recipient's reply by outcome.
pub fn message_done(class: Option<Class>, replies: &[Reply]) {
    METRICS.message_done(class, replies);
}

/// Runs one backend delivery call, observing its wall time in
/// `coid_delivery_duration_seconds`.
pub async fn time_delivery<F: Future>(delivery: F) -> F::Output {
    let start = std::time::Instant::now();
    let output = delivery.await;
    METRICS.delivery_took(start.elapsed());
    output
}

/// The delivery backend failed this way (once per failure, not per recipient).
pub fn backend_error(kind: BackendError) {
    METRICS.backend_error(kind);
}

/// A policy run failed or hit the CPU limit.
pub fn policy_error() {
    METRICS.policy_error();
}

/// One push ended this way.
pub fn push_outcome(outcome: PushOutcome) {
    METRICS.push_outcomes(outcome, 1);
}

/// `count` pushes ended this way (the sweep, a full queue).
pub fn push_outcomes(outcome: PushOutcome, count: usize) {
    METRICS.push_outcomes(outcome, count);
}

/// One Delta Chat notification ended this way.
pub fn deltachat_outcome(outcome: DeltaChatOutcome) {
    METRICS.deltachat_outcomes(outcome, 1);
}

/// `count` Delta Chat notifications ended this way (the sweep, a full queue).
pub fn deltachat_outcomes(outcome: DeltaChatOutcome, count: usize) {
    METRICS.deltachat_outcomes(outcome, count);
}

/// A dict commit ended this way.
pub fn dict_commit(result: DictCommit) {
    METRICS.dict_commit(result);
}

/// A reload (SIGHUP) succeeded (`true`) or was refused.
pub fn reload(ok: bool) {
    METRICS.reload(ok);
}

/// `coid_push_queue_depth` and `coid_deltachat_tokens` count `store`'s push queue and
/// tokens at each scrape from now on.
/// The push worker calls this when it starts.
pub fn watch_push_queue(store: Store) {
    METRICS.watch_push_queue(store);
}

/// The whole exposition, OpenMetrics text ([`CONTENT_TYPE`]), ending in `# EOF`.
///
/// Blocks: the queue depth is counted in SQLite. Async callers use
/// `tokio::task::spawn_blocking`.
///
/// # Errors
/// Only if a metric fails to format (it does not with prometheus-client's types).
pub fn encode() -> Result<String, std::fmt::Error> {
    METRICS.encode()
}

#[cfg(test)]
mod tests;
