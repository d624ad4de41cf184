//! `coid_push_queue_depth{kind}`: the pushes waiting in the durable queue by kind
//! (`webpush`, `deltachat`), and `coid_deltachat_tokens`: the Delta Chat device tokens
//! stored, both counted in the state store when Prometheus scrapes, not kept in a
//! gauge. The queue is shared with other processes (`coid deliver` queues
//! pushes too) and rows leave it in several places (sent, dropped, swept), so the
//! table is the only count that is always right, and one indexed count per scrape is
//! cheap.
//!
//! The push worker names the store once it runs ([`QueueDepth::watch`]); until then, and when a
//! count fails, the metric is left out of the scrape (absent means unknown, where
//! `0` would claim an empty queue). Encoding it blocks on SQLite, so the whole scrape
//! is encoded on the blocking pool (`super::http`).
//!
//! The same store gives `coid_state_store_errors_total{engine}`: the store's calls
//! that failed for the database's sake (`Store::errors`), shown even when counting
//! the queue fails, which is when it matters.

use std::sync::Mutex;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::store::{PushKind, Store, StoreError};

/// The queue's name.
pub const NAME: &str = "coid_push_queue_depth";
const HELP: &str =
    "Pushes waiting in the durable push queue by kind (counted in the state store at scrape time)";
/// The tokens' name.
pub const TOKENS: &str = "coid_deltachat_tokens";
const TOKENS_HELP: &str = "Delta Chat device tokens stored (counted at scrape time)";

/// The store errors' name (OpenMetrics adds `_total`).
pub const STORE_ERRORS: &str = "coid_state_store_errors";
const STORE_ERRORS_HELP: &str =
    "State store calls that failed for the database's sake, by engine (sqlite, postgresql)";

/// `{engine}` of the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EngineLabels {
    engine: &'static str,
}

/// `{kind}` of a queued push.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// What one scrape counts.
struct Counts {
    webpush: i64,
    deltachat: i64,
    tokens: i64,
}

/// The collector registered once in the process registry.
#[derive(Default)]
pub struct QueueDepth {
    /// The store whose queue is counted; `None` until a push worker runs.
    store: Mutex<Option<Store>>,
}

impl std::fmt::Debug for QueueDepth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueDepth").finish_non_exhaustive()
    }
}

impl QueueDepth {
    /// Counts `store`'s push queue from now on (replacing an earlier store).
    pub fn watch(&self, store: Store) {
        // A poisoned lock only means a panic while swapping an Option: take it over.
        let mut slot = self.store.lock().unwrap_or_else(|p| p.into_inner());
        *slot = Some(store);
    }

    /// The counts now, if a store is known and answers.
    fn counts(&self) -> Option<Counts> {
        let store = self
            .store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        let counted = || -> Result<Counts, StoreError> {
            let n = |count: usize| i64::try_from(count).unwrap_or(i64::MAX);
            Ok(Counts {
                webpush: n(store.queue_len_of(PushKind::WebPush)?),
                deltachat: n(store.queue_len_of(PushKind::DeltaChat)?),
                tokens: n(store.token_count()?),
            })
        };
        match counted() {
            Ok(counts) => Some(counts),
            Err(err) => {
                tracing::warn!(error = %err, "metrics: cannot count the push queue");
                None
            }
        }
    }
}

impl Collector for QueueDepth {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(store) = store {
            let mut family = encoder.encode_descriptor(
                STORE_ERRORS,
                STORE_ERRORS_HELP,
                None,
                MetricType::Counter,
            )?;
            let labels = EngineLabels {
                engine: store.kind(),
            };
            ConstCounter::new(store.errors()).encode(family.encode_family(&labels)?)?;
        }
        let Some(counts) = self.counts() else {
            return Ok(());
        };
        let mut family = encoder.encode_descriptor(NAME, HELP, None, MetricType::Gauge)?;
        for (kind, depth) in [("webpush", counts.webpush), ("deltachat", counts.deltachat)] {
            let labels = KindLabels { kind };
            let series = family.encode_family(&labels)?;
            ConstGauge::new(depth).encode(series)?;
        }
        let tokens = ConstGauge::new(counts.tokens);
        let metric = encoder.encode_descriptor(TOKENS, TOKENS_HELP, None, tokens.metric_type())?;
        tokens.encode(metric)
    }
}
