//! The push worker's bookkeeping between its trips to the store, pure or nearly
//! (`super::worker` holds the loop): collecting finished sends, holding back rows
//! claimed ahead that a 429 just delayed, when a round goes to the store, how long to
//! sleep, counting outcomes. Apart so that the loop's file stays readable.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::outcome::Outcome;
use super::worker::{AHEAD, AHEAD_WAIT, LINGER, POLL};
use crate::metrics::Recorder;
use crate::store::{Destination, PushKind, QueuedPush, Settle, unix_now_ms};

/// Collects a finished send's changes to the queue; a send task that died (a bug)
/// leaves its row leased, to be sent again after the lease.
pub(super) fn finished(
    done: Result<Vec<Settle>, tokio::task::JoinError>,
    settled: &mut Vec<Settle>,
) {
    match done {
        Ok(changes) => settled.extend(changes),
        Err(err) => tracing::error!(error = %err, "push worker: a send task failed"),
    }
}

/// Rows claimed ahead that an outcome just held back (429: its endpoint, or its
/// kind's one service, waits until then) are not sent early: they go back to the
/// queue due at the same time as the rest.
pub(super) fn hold_back(ready: &mut VecDeque<(Instant, QueuedPush)>, settled: &mut Vec<Settle>) {
    let holds: Vec<(Option<String>, PushKind, i64)> = settled
        .iter()
        .filter_map(|change| match change {
            Settle::DelayEndpoint { endpoint, until } => {
                Some((Some(endpoint.clone()), PushKind::WebPush, *until))
            }
            Settle::DelayKind { kind, until } => Some((None, *kind, *until)),
            _ => None,
        })
        .collect();
    for (endpoint, kind, until) in holds {
        let held = |(_, push): &(Instant, QueuedPush)| match (&push.to, &endpoint) {
            (Destination::WebPush { endpoint: to, .. }, Some(endpoint)) => to == endpoint,
            (_, None) => push.kind() == kind,
            _ => false,
        };
        let (back, keep): (VecDeque<_>, VecDeque<_>) = ready.drain(..).partition(held);
        *ready = keep;
        settled.extend(back.into_iter().map(|(_, push)| Settle::Retry {
            seq: push.seq,
            attempts: push.attempts,
            not_before: until,
            payload: None,
        }));
    }
}

/// Whether this round goes to the store: when fewer than `concurrency` rows wait
/// claimed ahead (so the trip claims a batch, not a row per finished send), when
/// outcomes wait and nothing is left to send, or when outcomes pile up (a bound:
/// [`AHEAD`] × `concurrency`; with fewer than that ahead a trip comes first
/// anyway).
pub(super) fn trip_due(concurrency: usize, ready: usize, inflight: usize, settled: usize) -> bool {
    ready < concurrency
        || (settled > 0 && ready == 0 && inflight == 0)
        || settled >= AHEAD * concurrency
}

/// How many rows a trip claims, with `held` in flight and claimed ahead: up to
/// [`AHEAD`] × `concurrency` held, but no more than the sends get through in half of
/// [`AHEAD_WAIT`] at `per_send` each (zero: not known yet), and room for two batches
/// at least while one send takes less than `AHEAD_WAIT` (the batch ahead waits about
/// one send), one batch when sends take longer (a batch ahead would wait past it and
/// go back to the queue unsent). A fast push service gets large batches (fewer trips
/// to the store); a slow one gets no more rows than are sent before their wait runs
/// out (with 8 in flight and 360 ms a send, the last of 56 rows ahead would wait past
/// it and go back to the queue unsent).
pub(super) fn claim_room(concurrency: usize, held: usize, per_send: Duration) -> usize {
    let in_time = match (AHEAD_WAIT / 2)
        .as_micros()
        .checked_div(per_send.as_micros())
    {
        Some(sends) => concurrency.saturating_mul(usize::try_from(sends).unwrap_or(usize::MAX)),
        None => usize::MAX,
    };
    let batches = if per_send < AHEAD_WAIT { 2 } else { 1 };
    let most = (AHEAD * concurrency).min(in_time.max(batches * concurrency));
    most.saturating_sub(held)
}

/// How long sends took lately: a moving average (each new send weighs 1/8), in µs.
#[derive(Debug, Default)]
pub(super) struct SendTime(AtomicU64);

impl SendTime {
    /// Counts one send that took `took`.
    pub(super) fn record(&self, took: Duration) {
        let took = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 {
                    took
                } else {
                    old - old / 8 + took / 8
                })
            });
    }

    /// The average; zero before the first send.
    pub(super) fn average(&self) -> Duration {
        Duration::from_micros(self.0.load(Ordering::Relaxed))
    }
}

/// What the last trip to the store found: when it was, and whether it claimed as
/// many rows as it had room for (a backlog: more wait).
#[derive(Debug, Clone, Copy)]
pub(super) struct LastTrip {
    pub at: Instant,
    pub full: bool,
}

/// How long a due trip waits so that rows trickling in share it: while mail flows,
/// each message's pushes arrive on their own, and a trip per message and another per
/// finished batch (each a transaction, several pages written to the WAL) cost more
/// than the pushes. After a trip that found less than it had room for, the next one
/// waits until [`LINGER`] after it; outcomes wait with it (their rows stay leased).
/// No wait after a full trip (a backlog), when outcomes pile up (the bound of
/// [`trip_due`]), or when the last trip is older than [`LINGER`] (a push after a
/// quiet spell goes at once).
pub(super) fn linger(
    last: Option<LastTrip>,
    concurrency: usize,
    settled: usize,
    now: Instant,
) -> Option<Duration> {
    let last = last.filter(|last| !last.full)?;
    if settled >= AHEAD * concurrency {
        return None;
    }
    LINGER
        .checked_sub(now.saturating_duration_since(last.at))
        .filter(|left| !left.is_zero())
}

/// How long to wait for a row due at `next_due` (unix ms), within [`POLL`].
pub(super) fn until(next_due: Option<i64>) -> Duration {
    match next_due {
        Some(at) => {
            let ms = at.saturating_sub(unix_now_ms()).max(0);
            Duration::from_millis(u64::try_from(ms).unwrap_or(0)).min(POLL)
        }
        None => POLL,
    }
}

/// Counts an attempt's outcome in its kind's metric.
pub(super) fn count(recorder: &Recorder, kind: PushKind, outcome: Outcome) {
    match kind {
        PushKind::WebPush => recorder.push_outcome(outcome.into()),
        PushKind::DeltaChat => recorder.deltachat_outcome(outcome.into()),
    }
}
