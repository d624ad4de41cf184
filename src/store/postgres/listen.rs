//! Wake-ups across nodes: a connection of its own, on a thread of its own, that
//! `LISTEN`s on the queue's channel and calls the worker's wake-up for every
//! notification (enqueue sends one with its commit, on any node). When the connection
//! is lost it connects again (waiting a little longer each time, at most a minute),
//! and wakes the worker once it is back, since a notification may have been missed.
//! The worker's own timer still sweeps; this only makes a push from another node go
//! out without waiting for it. The thread ends soon after the engine is dropped.

use std::sync::{Arc, Weak};
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;

use super::Postgres;
use super::queue::CHANNEL;
use super::tls::Tls;

/// How often the thread looks whether the engine is gone.
const POLL: Duration = Duration::from_secs(2);
/// The longest wait before connecting again.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl Postgres {
    /// See [`crate::store::Engine::watch_queue`].
    pub(super) fn watch_queue(&self, wake: Box<dyn Fn() + Send + Sync>) {
        let config = self.config.clone();
        let tls = self.tls.clone();
        let describe = self.describe.clone();
        let alive = Arc::downgrade(&self.alive);
        let spawned = std::thread::Builder::new()
            .name("coid-pg-listen".into())
            .spawn(move || listen(&config, &tls, &describe, &*wake, &alive));
        if let Err(err) = spawned {
            tracing::warn!(error = %err, "cannot start the PostgreSQL queue listener");
        }
    }
}

fn listen(
    config: &postgres::Config,
    tls: &Tls,
    describe: &str,
    wake: &(dyn Fn() + Send + Sync),
    alive: &Weak<()>,
) {
    let mut backoff = Duration::from_secs(1);
    while alive.strong_count() > 0 {
        let mut client = match config.connect(tls.clone()) {
            Ok(client) => client,
            Err(err) => {
                tracing::warn!(store = describe, error = %err, "queue listener: cannot connect");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        if let Err(err) = client.batch_execute(&format!("LISTEN {CHANNEL}")) {
            tracing::warn!(store = describe, error = %err, "queue listener: LISTEN failed");
            std::thread::sleep(backoff);
            continue;
        }
        backoff = Duration::from_secs(1);
        wake();
        while alive.strong_count() > 0 && !client.is_closed() {
            let mut notifications = client.notifications();
            match notifications.timeout_iter(POLL).next() {
                Ok(Some(_)) => wake(),
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(store = describe, error = %err, "queue listener: connection lost");
                    break;
                }
            }
        }
    }
}
