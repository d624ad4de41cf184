//! Pushes for a delivered message (WebPush spec "Push Notifications"; coi-spec.md
//! §3.6): one per validated subscription of each recipient the store accepted the
//! message for, if the subscription's msgtype wants it: `chat` wants messages stored
//! with the `$Chat` keyword, `mail`/`email` the others, `all`/`any` both. Read
//! receipts (MDNs) never push; the pipeline does not even ask.
//!
//! Never on the reply path: [`PushHook::after_delivery`] hands the work to a task and
//! returns, and whatever goes wrong there is only logged, so mail never waits for push
//! work and no reply changes because of it. The payload has the folder the policy
//! chose (in the store's hierarchy separator), the outer headers' fields and, when it
//! fits, the body; no UID/UIDVALIDITY (Dovecot's LMTP reply does not tell them).

use mail_parser::MessageParser;
use tokio_util::task::TaskTracker;

use super::MAX_PLAINTEXT;
use super::payload::{Payload, Stored};
use super::queue::PushQueue;
use super::subscription::MsgType;
use crate::policy::Target;
use crate::spool::header_end;
use crate::store::{NewPush, Store, StoreError, unix_now_ms};

/// One recipient the message was stored for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The user in the state store.
    pub username: String,
    /// The mailbox it went to, in the store's hierarchy separator.
    pub folder: String,
    /// Stored with `$Chat`.
    pub chat: bool,
}

impl Delivered {
    /// `username`'s copy, stored as `target` (whose folder uses `/`; the payload has
    /// the store's `separator`).
    pub fn stored(username: String, target: &Target, separator: char) -> Delivered {
        Delivered {
            username,
            folder: match &target.folder {
                Some(folder) => folder.replace('/', &separator.to_string()),
                None => "INBOX".to_owned(),
            },
            chat: target.flags.iter().any(|f| f.eq_ignore_ascii_case("$Chat")),
        }
    }
}

/// What the payload is built from.
#[derive(Debug, Clone)]
pub struct DeliveredMessage {
    /// The header section.
    pub header: Vec<u8>,
    /// The body (after the header section), when small enough to be `content`.
    pub body: Option<Vec<u8>>,
    /// The COI or Delta Chat group id.
    pub group_id: Option<String>,
}

impl DeliveredMessage {
    /// From the header section and, if the whole message is in memory, its body when
    /// that is small enough to be `content`.
    pub fn new(header: Vec<u8>, whole: Option<&[u8]>, group_id: Option<String>) -> Self {
        let body = whole.and_then(|all| {
            let rest = all.get(header_end(all)?..)?;
            (rest.len() <= MAX_PLAINTEXT).then(|| rest.to_vec())
        });
        DeliveredMessage {
            header,
            body,
            group_id,
        }
    }
}

/// The pushes for `message`, stored for `recipients`, queued at `now` (unix ms) and
/// given up at `deadline`. Blocking (reads subscriptions).
///
/// # Errors
/// The store failed.
pub fn pushes_for(
    store: &Store,
    message: &DeliveredMessage,
    recipients: &[Delivered],
    now: i64,
    deadline: i64,
) -> Result<Vec<NewPush>, StoreError> {
    let parsed = MessageParser::new()
        .parse_headers(&message.header)
        .unwrap_or_default();
    let mut pushes = Vec::new();
    for rcpt in recipients {
        let wanted: Vec<_> = store
            .subscriptions(&rcpt.username)?
            .into_iter()
            .filter(|s| s.validated_at.is_some())
            .filter(|s| MsgType::parse(&s.msgtype).is_some_and(|m| m.wants(rcpt.chat)))
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let stored = Stored {
            folder: &rcpt.folder,
            ..Stored::default()
        };
        let mut payload = Payload::build(&parsed, &stored, message.group_id.as_deref());
        if let Some(body) = &message.body {
            payload.offer_content(&parsed, body);
        }
        let json = payload.to_json();
        pushes.extend(wanted.into_iter().map(|sub| NewPush {
            username: rcpt.username.clone(),
            subscription: sub.id,
            payload: json.clone(),
            with_content: payload.has_content(),
            validation: false,
            not_before: now,
            deadline,
        }));
    }
    Ok(pushes)
}

/// Queues pushes after delivery, off the reply path.
pub struct PushHook {
    queue: PushQueue,
    tasks: TaskTracker,
}

impl PushHook {
    /// Over `queue`.
    pub fn new(queue: PushQueue) -> PushHook {
        PushHook {
            queue,
            tasks: TaskTracker::new(),
        }
    }

    /// The queue it fills.
    pub fn queue(&self) -> &PushQueue {
        &self.queue
    }

    /// Starts queueing the pushes for `message` delivered to `recipients` and returns
    /// at once. Must be called inside the tokio runtime.
    pub fn after_delivery(&self, message: DeliveredMessage, recipients: Vec<Delivered>) {
        if recipients.is_empty() {
            return;
        }
        let queue = self.queue.clone();
        let work = move || {
            let now = unix_now_ms();
            let deadline = queue.deadline_from(now);
            let pushes = pushes_for(queue.store(), &message, &recipients, now, deadline)?;
            queue.enqueue(&pushes, now)
        };
        self.tasks.spawn(async move {
            match tokio::task::spawn_blocking(work).await {
                Ok(Ok(0)) => {}
                Ok(Ok(queued)) => tracing::debug!(queued, "pushes queued"),
                Ok(Err(err)) => tracing::error!(error = %err, "cannot queue pushes"),
                Err(err) => tracing::error!(error = %err, "push queueing task failed"),
            }
        });
    }

    /// Waits until every push started so far is queued (shutdown, `coid deliver`).
    pub async fn flush(&self) {
        self.tasks.close();
        self.tasks.wait().await;
        self.tasks.reopen();
    }
}

#[cfg(test)]
#[path = "delivered_tests.rs"]
mod tests;
