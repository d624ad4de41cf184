//! The handle every part of coid that makes pushes shares: the durable queue in the
//! state store (`crate::store`), for every kind of push, the rules from `[push]`
//! (its bound applies to all kinds), and the wake-up the worker
//! (`super::worker`) waits on, so a queued push goes out at once rather than at the
//! next poll. Also the server's VAPID key, created in the store on first use.
//!
//! Enqueueing blocks (SQLite): async callers use [`blocking`].

use std::sync::Arc;
use std::time::Duration;

use base64ct::{Base64UrlUnpadded, Encoding};
use rand_core::RngCore;
use tokio::sync::Notify;

use super::endpoint::EndpointPolicy;
use super::webpush::payload::validation_json;
use super::webpush::vapid::{KeyError, VapidKey};
use crate::config::PushConfig;
use crate::metrics::{DeltaChatOutcome, PushOutcome, Recorder};
use crate::store::{NewPush, PushKind, SECRET_VAPID, Store, StoreError};

/// The `[push]` rules the queue and the subscription entries apply.
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// Most rows in the queue.
    pub max_queue: usize,
    /// How long a push is retried.
    pub deadline: Duration,
    /// Subscriptions per user.
    pub subscription_limit: usize,
    /// How long a new subscription may stay unvalidated.
    pub subscription_expire: Duration,
    /// Which endpoints may be subscribed and contacted.
    pub endpoints: EndpointPolicy,
}

impl PushSettings {
    /// From `[push]`.
    pub fn from_config(config: &PushConfig) -> PushSettings {
        PushSettings {
            max_queue: config.max_queue,
            deadline: Duration::from_secs(config.deadline_secs),
            subscription_limit: config.subscription_limit,
            subscription_expire: Duration::from_secs(config.subscription_expire_secs),
            endpoints: EndpointPolicy {
                allow_private: config.allow_private_endpoints,
            },
        }
    }
}

/// The shared push queue; cheap to clone.
#[derive(Clone)]
pub struct PushQueue {
    store: Store,
    wake: Arc<Notify>,
    settings: Arc<PushSettings>,
    recorder: Recorder,
}

impl PushQueue {
    /// Over `store`, with `[push]`'s rules.
    pub fn new(store: Store, config: &PushConfig) -> PushQueue {
        PushQueue {
            store,
            recorder: Recorder::off(),
            wake: Arc::new(Notify::new()),
            settings: Arc::new(PushSettings::from_config(config)),
        }
    }

    /// Counts what never got into the queue (a full queue) in `recorder`, and hands
    /// it on to the worker that takes its pushes.
    pub fn with_recorder(mut self, recorder: Recorder) -> PushQueue {
        self.recorder = recorder;
        self
    }

    /// Where this queue's pushes are counted.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// The state store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The rules.
    pub fn settings(&self) -> &PushSettings {
        &self.settings
    }

    /// Tells the worker there is something new (kept until it next waits).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Wakes the worker also when another process or node queues a push (PostgreSQL
    /// `NOTIFY`; nothing for SQLite, where the worker's timer finds it).
    pub fn watch_other_writers(&self) {
        let wake = Arc::clone(&self.wake);
        self.store.watch_queue(Box::new(move || wake.notify_one()));
    }

    /// What the worker waits on.
    pub fn notify(&self) -> &Notify {
        &self.wake
    }

    /// The deadline of a push queued at `now` (unix ms).
    pub fn deadline_from(&self, now: i64) -> i64 {
        let deadline = i64::try_from(self.settings.deadline.as_millis()).unwrap_or(i64::MAX);
        now.saturating_add(deadline)
    }

    /// Deletes the subscriptions (of `user`, or everyone's) left unvalidated past
    /// `[push] subscription_expire_secs` at `now` (unix ms); returns how many.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn expire_subscriptions(&self, user: Option<&str>, now: i64) -> Result<usize, StoreError> {
        let window = i64::try_from(self.settings.subscription_expire.as_secs()).unwrap_or(i64::MAX);
        self.store
            .expire_subscriptions(user, (now / 1000).saturating_sub(window))
    }

    /// The validation push for a new subscription, due at once.
    pub fn validation_push(&self, username: &str, id: &str, token: &str, now: i64) -> NewPush {
        NewPush {
            kind: PushKind::WebPush,
            username: username.to_owned(),
            target: id.to_owned(),
            payload: validation_json(token),
            with_content: false,
            validation: true,
            not_before: now,
            deadline: self.deadline_from(now),
            dedupe: None,
        }
    }

    /// Queues `pushes` (blocking) and wakes the worker. Pushes beyond the queue's
    /// bound are dropped with a warning; returns how many were queued.
    ///
    /// # Errors
    /// SQLite failed; nothing was queued.
    pub fn enqueue(&self, pushes: &[NewPush], now: i64) -> Result<usize, StoreError> {
        if pushes.is_empty() {
            return Ok(0);
        }
        let stored = self.store.enqueue(pushes, self.settings.max_queue, now)?;
        self.count_dropped(pushes, stored);
        if stored > 0 {
            self.wake();
        }
        Ok(stored)
    }

    /// Most rows in the queue (`[push] max_queue`).
    pub fn max_queue(&self) -> usize {
        self.settings.max_queue
    }

    /// Of `pushes`, those past the first `stored` found the queue full: counted and
    /// said so.
    pub(crate) fn count_dropped(&self, pushes: &[NewPush], stored: usize) {
        if stored < pushes.len() {
            let dropped = pushes.get(stored..).unwrap_or_default();
            let deltachat = dropped
                .iter()
                .filter(|p| p.kind == PushKind::DeltaChat)
                .count();
            self.recorder
                .push_outcomes(PushOutcome::QueueFull, dropped.len() - deltachat);
            self.recorder
                .deltachat_outcomes(DeltaChatOutcome::QueueFull, deltachat);
            tracing::warn!(
                dropped = pushes.len() - stored,
                max_queue = self.settings.max_queue,
                "push queue full: pushes dropped"
            );
        }
    }
}

/// Runs blocking store work off the async threads; a task that died is a
/// [`StoreError::Worker`].
///
/// # Errors
/// What `work` returned, or the dead task.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|join| Err(StoreError::Worker(join.to_string())))
}

/// A fresh validation token: 32 random bytes, base64url (WebPush spec: the content
/// of the validation is the server's choice).
pub fn validation_token() -> String {
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    Base64UrlUnpadded::encode_string(&bytes)
}

/// Why the VAPID key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum VapidError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored key is damaged.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// The server's VAPID key from the store, generated and stored on first use. Clients
/// register its public half with their push service, so it is never replaced.
///
/// # Errors
/// [`VapidError`].
pub fn vapid_key(store: &Store) -> Result<VapidKey, VapidError> {
    let pem = store.secret_or_insert(SECRET_VAPID, || VapidKey::generate().to_private_pem())?;
    Ok(VapidKey::from_private_pem(&pem)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::temp_store;

    #[test]
    fn the_vapid_key_is_made_once_and_tokens_differ() {
        let (_dir, store) = temp_store();
        let first = vapid_key(&store).expect("created");
        let again = vapid_key(&store).expect("loaded");
        assert_eq!(first.public_pem(), again.public_pem());
        let (a, b) = (validation_token(), validation_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
    }

    #[test]
    fn enqueue_respects_the_bound_and_wakes() {
        let (_dir, store) = temp_store();
        let config = PushConfig {
            max_queue: 1,
            ..PushConfig::default()
        };
        let queue = PushQueue::new(store, &config);
        let push = queue.validation_push("a@x", "id", "t", 0);
        assert_eq!(push.deadline, 3_600_000);
        assert_eq!(queue.enqueue(&[push.clone(), push], 0).expect("enqueue"), 1);
        let woken = queue.notify().notified();
        tokio_test_wait(woken);
    }

    /// The stored permit makes the future ready at once.
    fn tokio_test_wait(fut: tokio::sync::futures::Notified<'_>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(1), fut)
                .await
                .expect("woken");
        });
    }
}
