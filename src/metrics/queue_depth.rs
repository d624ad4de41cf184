//! `coid_push_queue_depth`: the pushes waiting in the durable queue, counted in the
//! state store when Prometheus scrapes (`SELECT count(*) FROM push_queue`), not kept
//! in a gauge. The queue is shared with other processes (`coid deliver` queues
//! pushes too) and rows leave it in several places (sent, dropped, swept), so the
//! table is the only count that is always right, and one indexed count per scrape is
//! cheap.
//!
//! The push worker names the store once it runs ([`QueueDepth::watch`]); until then, and when a
//! count fails, the metric is left out of the scrape (absent means unknown, where
//! `0` would claim an empty queue). Encoding it blocks on SQLite, so the whole scrape
//! is encoded on the blocking pool (`super::http`).

use std::sync::Mutex;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

use crate::store::Store;

/// The metric's name.
pub const NAME: &str = "coid_push_queue_depth";
const HELP: &str =
    "Pushes waiting in the durable push queue (counted in the state store at scrape time)";

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

    /// The queue length now, if a store is known and answers.
    fn depth(&self) -> Option<i64> {
        let store = self
            .store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        match store.queue_len() {
            Ok(n) => Some(i64::try_from(n).unwrap_or(i64::MAX)),
            Err(err) => {
                tracing::warn!(error = %err, "metrics: cannot count the push queue");
                None
            }
        }
    }
}

impl Collector for QueueDepth {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(depth) = self.depth() else {
            return Ok(());
        };
        let gauge = ConstGauge::new(depth);
        let metric = encoder.encode_descriptor(NAME, HELP, None, gauge.metric_type())?;
        gauge.encode(metric)
    }
}
