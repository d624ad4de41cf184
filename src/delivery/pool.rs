//! Reused LMTP connections to the store. Opening a connection costs a connect, a
//! greeting and an LHLO, and Dovecot serves each as a new client; a busy host pays
//! that per message. The pool keeps connections that ended a transaction cleanly
//! and hands them out again, newest first.
//!
//! Bounds: at most `max_open` connections exist at once (idle and in use), at most
//! `max_idle` wait idle, and an idle one is closed once it waited `idle_limit`, well
//! below the store's own idle timeout (Dovecot's LMTP server drops idle clients after
//! minutes). A connection that failed is never put back.
//!
//! With all `max_open` in use, a delivery waits up to the connect timeout for
//! whichever comes first: a connection put back idle (its slot goes with it), or a
//! slot freed by a connection that closed; then it fails as the store being
//! unreachable would. A reused connection found dead is replaced in its own slot, so
//! replacing never waits for another. Whether it may be replaced is the backend's
//! rule (`super::dovecot`): only before any byte of the message went out.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::lmtp_client::{Client, ClientError};

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Settings {
    /// A socket path starting with `/`, else `host:port`.
    pub addr: String,
    /// Name in our LHLO.
    pub lhlo: String,
    /// Longest wait for a connection (and for a free slot under `max_open`).
    pub connect_timeout: Duration,
    /// Longest wait for each reply.
    pub reply_timeout: Duration,
    /// Most connections open at once.
    pub max_open: usize,
    /// Most idle connections kept.
    pub max_idle: usize,
    /// An idle connection older than this is closed instead of reused.
    pub idle_limit: Duration,
}

/// A connection out of the pool, counted against `max_open` until dropped.
pub struct Lease {
    /// The connection.
    pub client: Client,
    /// It served an earlier transaction (so it may have died meanwhile).
    pub reused: bool,
    permit: OwnedSemaphorePermit,
}

struct Idle {
    client: Client,
    permit: OwnedSemaphorePermit,
    since: Instant,
}

/// The pool; cheap to share behind the backend.
pub struct Pool {
    settings: Settings,
    open: Arc<Semaphore>,
    idle: Mutex<Vec<Idle>>,
    /// Told when a connection goes back idle: a checkout waiting for a slot takes it.
    returned: Notify,
}

/// What a checkout waited for.
enum Slot {
    Idle(Lease),
    Free(OwnedSemaphorePermit),
}

impl Pool {
    /// An empty pool.
    pub fn new(settings: Settings) -> Pool {
        Pool {
            open: Arc::new(Semaphore::new(settings.max_open.max(1))),
            idle: Mutex::new(Vec::new()),
            returned: Notify::new(),
            settings,
        }
    }

    /// The address connections go to.
    pub fn addr(&self) -> &str {
        &self.settings.addr
    }

    /// An idle connection if one is fresh enough, else a new one; with `max_open`
    /// in use, the first to be put back or a slot freed meanwhile.
    ///
    /// # Errors
    /// No slot or no connection within the connect timeout, or the store refused.
    pub async fn checkout(&self) -> Result<Lease, ClientError> {
        let s = &self.settings;
        let slot = tokio::time::timeout(s.connect_timeout, self.slot())
            .await
            .map_err(|_| ClientError::Timeout)??;
        match slot {
            Slot::Idle(lease) => Ok(lease),
            Slot::Free(permit) => self.connect(permit).await,
        }
    }

    /// An idle connection if one is fresh enough; never connects.
    pub fn idle(&self) -> Option<Lease> {
        self.take_idle().map(|idle| Lease {
            client: idle.client,
            reused: true,
            permit: idle.permit,
        })
    }

    /// A new connection in the slot of `dead`, a reused one that turned out dead
    /// (closed here); never waits for another slot.
    ///
    /// # Errors
    /// No connection within the connect timeout, or the store refused.
    pub async fn reconnect(&self, dead: Lease) -> Result<Lease, ClientError> {
        let Lease { client, permit, .. } = dead;
        drop(client);
        self.connect(permit).await
    }

    /// An idle connection, else a free slot, whichever there is first. Waiting for
    /// the notice of a connection put back cannot miss one: `notify_one` keeps its
    /// notice for the next waiter when nobody waits yet.
    async fn slot(&self) -> Result<Slot, ClientError> {
        loop {
            if let Some(lease) = self.idle() {
                return Ok(Slot::Idle(lease));
            }
            tokio::select! {
                permit = Arc::clone(&self.open).acquire_owned() => {
                    return permit.map(Slot::Free).map_err(|_| ClientError::Timeout);
                }
                () = self.returned.notified() => {}
            }
        }
    }

    async fn connect(&self, permit: OwnedSemaphorePermit) -> Result<Lease, ClientError> {
        let s = &self.settings;
        let client = Client::connect(&s.addr, &s.lhlo, s.connect_timeout, s.reply_timeout).await?;
        Ok(Lease {
            client,
            reused: false,
            permit,
        })
    }

    /// Puts a connection that ended its transaction cleanly back, if there is room.
    pub fn checkin(&self, lease: Lease) {
        let mut idle = self.lock();
        idle.retain(|i| i.since.elapsed() < self.settings.idle_limit);
        if idle.len() < self.settings.max_idle {
            idle.push(Idle {
                client: lease.client,
                permit: lease.permit,
                since: Instant::now(),
            });
            drop(idle);
            self.returned.notify_one();
        }
    }

    /// The newest idle connection within the idle limit; older ones are closed.
    fn take_idle(&self) -> Option<Idle> {
        let mut idle = self.lock();
        let limit = self.settings.idle_limit;
        idle.retain(|i| i.since.elapsed() < limit);
        idle.pop()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // A panic while holding it can only have left a valid Vec behind.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}
