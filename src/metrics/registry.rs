//! The metrics themselves: every family, its name and HELP text, and the registry that
//! encodes them. `super::Recorder` holds one per process (the composition root makes
//! it); tests build their own, so they can assert exact values.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::labels::{
    BackendError, DeliveryOutcome, DeltaChatOutcome, DictCommit, MessageClass, Proto, PushOutcome,
    ReloadResult,
};
use super::queue_depth::QueueDepth;
use super::sets::{
    BackendLabels, BuildLabels, ClassLabels, DeliveryLabels, DeltaChatLabels, DictLabels,
    ProtoLabels, PushLabels, ReloadLabels,
};
use crate::store::Store;

/// Histogram buckets of `coid_delivery_duration_seconds`: 1 ms to 120 s (the longest a
/// store may reasonably take before its reply timeout turns the delivery into 4xx).
const DELIVERY_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Every metric, and the registry they are in.
pub(super) struct Metrics {
    registry: Registry,
    sessions_active: Family<ProtoLabels, Gauge>,
    sessions: Family<ProtoLabels, Counter>,
    messages: Family<ClassLabels, Counter>,
    deliveries: Family<DeliveryLabels, Counter>,
    delivery_duration: Histogram,
    backend_errors: Family<BackendLabels, Counter>,
    policy_errors: Counter,
    push_outcomes: Family<PushLabels, Counter>,
    pushes_sealed_beside: Counter,
    deltachat_outcomes: Family<DeltaChatLabels, Counter>,
    dict_commits: Family<DictLabels, Counter>,
    reloads: Family<ReloadLabels, Counter>,
    queue_depth: Arc<QueueDepth>,
}

/// Counts a session as open until dropped; from `metrics::session_started`.
#[must_use = "the session counts as open until this is dropped"]
#[derive(Debug)]
pub struct SessionGuard {
    /// Shares its value with the registered `coid_sessions_active{proto}` series;
    /// `None` when nothing is recorded.
    active: Option<Gauge>,
}

impl SessionGuard {
    /// A guard that counts nothing.
    pub(super) fn off() -> SessionGuard {
        SessionGuard { active: None }
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if let Some(active) = &self.active {
            active.dec();
        }
    }
}

impl Metrics {
    /// A registry with every metric, every known series at 0.
    pub(super) fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::default(),
            sessions_active: Family::default(),
            sessions: Family::default(),
            messages: Family::default(),
            deliveries: Family::default(),
            delivery_duration: Histogram::new(DELIVERY_BUCKETS),
            backend_errors: Family::default(),
            policy_errors: Counter::default(),
            push_outcomes: Family::default(),
            pushes_sealed_beside: Counter::default(),
            deltachat_outcomes: Family::default(),
            dict_commits: Family::default(),
            reloads: Family::default(),
            queue_depth: Arc::default(),
        };
        m.zero_known_series();
        m.register();
        m
    }

    /// Creates every labelled series at 0, so each is scraped from the start
    /// (`rate()` and alerts see the first event instead of a series appearing).
    fn zero_known_series(&self) {
        // `get_or_create` makes the series; the lock guard it returns is not needed.
        for &proto in Proto::ALL {
            let _ = self.sessions_active.get_or_create(&ProtoLabels { proto });
            let _ = self.sessions.get_or_create(&ProtoLabels { proto });
        }
        for &class in MessageClass::ALL {
            let _ = self.messages.get_or_create(&ClassLabels { class });
            for &outcome in DeliveryOutcome::ALL {
                let labels = DeliveryLabels { class, outcome };
                let _ = self.deliveries.get_or_create(&labels);
            }
        }
        for &kind in BackendError::ALL {
            let _ = self.backend_errors.get_or_create(&BackendLabels { kind });
        }
        for &outcome in PushOutcome::ALL {
            let _ = self.push_outcomes.get_or_create(&PushLabels { outcome });
        }
        for &outcome in DeltaChatOutcome::ALL {
            let labels = DeltaChatLabels { outcome };
            let _ = self.deltachat_outcomes.get_or_create(&labels);
        }
        for &result in DictCommit::ALL {
            let _ = self.dict_commits.get_or_create(&DictLabels { result });
        }
        for &result in ReloadResult::ALL {
            let _ = self.reloads.get_or_create(&ReloadLabels { result });
        }
    }

    /// Names and HELP texts (prometheus-client adds `_total` to counters and the unit
    /// to the name, and ends HELP with a period).
    fn register(&mut self) {
        let r = &mut self.registry;
        let sessions_active = self.sessions_active.clone();
        r.register(
            "coid_sessions_active",
            "Open LMTP and dict sessions",
            sessions_active,
        );
        r.register("coid_sessions", "Sessions accepted", self.sessions.clone());
        let help = "Messages processed (one per LMTP DATA) by class";
        r.register("coid_messages", help, self.messages.clone());
        let help =
            "Recipients after DATA by result: delivered (2xx), deferred (4xx), rejected (5xx)";
        r.register("coid_deliveries", help, self.deliveries.clone());
        let help = "Wall time of one backend delivery call (all recipients of a message)";
        let duration = self.delivery_duration.clone();
        r.register_with_unit("coid_delivery_duration", help, Unit::Seconds, duration);
        let help = "Delivery backend (Dovecot LMTP or Maildir) failures by kind";
        r.register("coid_backend_errors", help, self.backend_errors.clone());
        let help = "Sieve policy runs that failed or hit the CPU limit (kept in INBOX)";
        r.register("coid_policy_errors", help, self.policy_errors.clone());
        let help = "Pushes by outcome: each attempt's answer, or why one left the queue unsent";
        r.register("coid_push_outcomes", help, self.push_outcomes.clone());
        let help = "Web Push encryptions done beside the push worker's thread (in a backlog)";
        let beside = self.pushes_sealed_beside.clone();
        r.register("coid_push_encrypted_beside", help, beside);
        let help = "Delta Chat notifications by outcome: each attempt's answer from the \
                    notification proxy, or why one left the queue unsent";
        let deltachat = self.deltachat_outcomes.clone();
        r.register("coid_deltachat_notifications", help, deltachat);
        let help = "Dict proxy transaction commits by result";
        r.register("coid_dict_commits", help, self.dict_commits.clone());
        let help = "Configuration reloads (SIGHUP) by result";
        r.register("coid_reloads", help, self.reloads.clone());
        let build: Family<BuildLabels, Gauge> = Family::default();
        let version = env!("CARGO_PKG_VERSION");
        build.get_or_create(&BuildLabels { version }).set(1);
        r.register(
            "coid_build_info",
            "The running coid's version (always 1)",
            build,
        );
        r.register_collector(Box::new(Arc::clone(&self.queue_depth)));
    }

    pub(super) fn session_started(&self, proto: Proto) -> SessionGuard {
        let labels = ProtoLabels { proto };
        self.sessions.get_or_create(&labels).inc();
        let active = self.sessions_active.get_or_create(&labels).clone();
        active.inc();
        SessionGuard {
            active: Some(active),
        }
    }

    pub(super) fn message_done(
        &self,
        class: MessageClass,
        outcomes: impl IntoIterator<Item = DeliveryOutcome>,
    ) {
        self.messages.get_or_create(&ClassLabels { class }).inc();
        for outcome in outcomes {
            let labels = DeliveryLabels { class, outcome };
            self.deliveries.get_or_create(&labels).inc();
        }
    }

    pub(super) fn delivery_took(&self, elapsed: Duration) {
        self.delivery_duration.observe(elapsed.as_secs_f64());
    }

    pub(super) fn backend_error(&self, kind: BackendError) {
        self.backend_errors
            .get_or_create(&BackendLabels { kind })
            .inc();
    }

    pub(super) fn policy_error(&self) {
        self.policy_errors.inc();
    }

    pub(super) fn push_outcomes(&self, outcome: PushOutcome, count: usize) {
        if count > 0 {
            let count = u64::try_from(count).unwrap_or(u64::MAX);
            self.push_outcomes
                .get_or_create(&PushLabels { outcome })
                .inc_by(count);
        }
    }

    pub(super) fn push_sealed_beside(&self) {
        self.pushes_sealed_beside.inc();
    }

    pub(super) fn deltachat_outcomes(&self, outcome: DeltaChatOutcome, count: usize) {
        if count > 0 {
            let count = u64::try_from(count).unwrap_or(u64::MAX);
            self.deltachat_outcomes
                .get_or_create(&DeltaChatLabels { outcome })
                .inc_by(count);
        }
    }

    pub(super) fn dict_commit(&self, result: DictCommit) {
        self.dict_commits
            .get_or_create(&DictLabels { result })
            .inc();
    }

    pub(super) fn reload(&self, ok: bool) {
        let result = if ok {
            ReloadResult::Ok
        } else {
            ReloadResult::Failed
        };
        self.reloads.get_or_create(&ReloadLabels { result }).inc();
    }

    pub(super) fn watch_push_queue(&self, store: Store) {
        self.queue_depth.watch(store);
    }

    /// OpenMetrics text, `# EOF` included. Blocks (the queue depth reads SQLite).
    pub(super) fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
