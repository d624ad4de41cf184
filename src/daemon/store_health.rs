//! `/health` follows the state store: while it fails (PostgreSQL unreachable, an SQLite
//! file that cannot be written), every message is answered 4xx and Postfix retries,
//! so `/health` says `degraded` (503) and a load balancer can send mail to another
//! node; it says `ok` again once the store answers. The store is probed on a blocking
//! thread every [`PROBE`], with the same check `coid serve` makes at start
//! (`Engine::check_writable`). Only serving and degraded turn into each other:
//! starting and stopping are the serve loop's to say.

use std::time::Duration;

use tokio::sync::watch;

use crate::metrics::http::Health;
use crate::store::Store;

/// How often the store is probed.
pub const PROBE: Duration = Duration::from_secs(10);

/// What `/health` says after a probe found the store `ok` (or not) while it said
/// `current`; `None`: unchanged.
pub fn next(current: Health, ok: bool) -> Option<Health> {
    match (current, ok) {
        (Health::Serving, false) => Some(Health::Degraded),
        (Health::Degraded, true) => Some(Health::Serving),
        _ => None,
    }
}

/// Probes `store` until `stop` turns true, turning `health` degraded and back.
pub async fn watch_store(
    store: Store,
    health: watch::Sender<Health>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(PROBE) => {}
        }
        if *stop.borrow() {
            return;
        }
        let probed = store.clone();
        let result = tokio::task::spawn_blocking(move || probed.check_writable()).await;
        let error = match result {
            Ok(Ok(())) => None,
            Ok(Err(err)) => Some(err.to_string()),
            Err(join) => Some(join.to_string()),
        };
        health.send_if_modified(|now| match next(*now, error.is_none()) {
            Some(new) => {
                match &error {
                    Some(error) => tracing::error!(store = %store.describe(), error, "state store failing: /health degraded"),
                    None => tracing::info!(store = %store.describe(), "state store answers again: /health ok"),
                }
                *now = new;
                true
            }
            None => false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_serving_and_degraded_turn_into_each_other() {
        let cases = [
            (Health::Serving, true, None),
            (Health::Serving, false, Some(Health::Degraded)),
            (Health::Degraded, false, None),
            (Health::Degraded, true, Some(Health::Serving)),
            (Health::Starting, false, None),
            (Health::Starting, true, None),
            (Health::Stopping, false, None),
            (Health::Stopping, true, None),
        ];
        for (current, ok, expected) in cases {
            assert_eq!(next(current, ok), expected, "{current:?} ok={ok}");
        }
    }
}
