//! The WebPush METADATA entries ("IMAP WebPush Extension v1.0"; coi-spec.md §3.2–3.5)
//! on top of the push queue and the subscriptions table, for `super::attributes`:
//!
//! - `/private/vendor/vendor.dovecot/webpush/vapid`: read-only and virtual, the PEM
//!   public key of the server's VAPID key; listed when its parent is iterated (the OX
//!   client reads it from `GETMETADATA (DEPTH 1) "" (... /private/vendor/vendor.dovecot/webpush)`).
//! - `.../webpush/subscriptions/<id>`: SET stores a subscription (validated JSON, the
//!   endpoint rules, the per-user limit) pending validation and queues its validation
//!   push (`{"validation": "<token>"}`), sent by the worker after the commit; GET and
//!   DEPTH 1 list it with `created` and `validated`; NIL deletes it and its pushes.
//! - `.../webpush/subscriptions/<id>/validate`: write-only; the token within
//!   `subscription_expire_secs` validates, anything else (NIL too) fails the commit.
//!
//! Other names below `.../webpush/` are refused. Unvalidated subscriptions past the
//! window are deleted when the user's subscriptions are read (and by the worker).
//! Dovecot lowercases entry names, so ids are case-insensitive. Blocking (SQLite).

use crate::push::queue::{PushQueue, validation_token};
use crate::push::webpush::subscription::{Request, parse_request, rfc3339};
use crate::push::webpush::vapid::VapidKey;
use crate::store::{Depth, Op, StoreError, Subscribe, Subscription, unix_now_ms};

/// The parent of every WebPush entry.
pub const WEBPUSH: &str = "/private/vendor/vendor.dovecot/webpush";
/// The VAPID public key.
pub const ENTRY_VAPID: &str = "/private/vendor/vendor.dovecot/webpush/vapid";
/// The parent of the subscriptions.
const SUBSCRIPTIONS: &str = "/private/vendor/vendor.dovecot/webpush/subscriptions/";

/// What a WebPush entry name names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry<'a> {
    /// `webpush/vapid`.
    Vapid,
    /// `webpush/subscriptions/<id>`.
    Subscription(&'a str),
    /// `webpush/subscriptions/<id>/validate`.
    Validate(&'a str),
    /// Anything else at or below `webpush`.
    Other,
}

impl Entry<'_> {
    /// `None` for entries outside the WebPush space.
    pub fn parse(entry: &str) -> Option<Entry<'_>> {
        if entry == WEBPUSH {
            return Some(Entry::Other);
        }
        let below = entry.strip_prefix(WEBPUSH)?.strip_prefix('/')?;
        if below == "vapid" {
            return Some(Entry::Vapid);
        }
        let Some(rest) = entry.strip_prefix(SUBSCRIPTIONS) else {
            return Some(Entry::Other);
        };
        Some(match rest.split_once('/') {
            None if !rest.is_empty() => Entry::Subscription(rest),
            Some((id, "validate")) if !id.is_empty() => Entry::Validate(id),
            _ => Entry::Other,
        })
    }
}

/// The WebPush entries of every user.
#[derive(Clone)]
pub struct WebPush {
    queue: PushQueue,
    vapid_pem: String,
}

impl WebPush {
    /// Over `queue`, showing `vapid`'s public key.
    pub fn new(queue: PushQueue, vapid: &VapidKey) -> WebPush {
        WebPush {
            queue,
            vapid_pem: vapid.public_pem(),
        }
    }

    /// Wakes the push worker (after a commit that queued validation pushes).
    pub fn wake(&self) {
        self.queue.wake();
    }

    /// Deletes `user`'s subscriptions left unvalidated past the window.
    fn expire_pending(&self, user: &str) -> Result<(), StoreError> {
        self.queue
            .expire_subscriptions(Some(user), unix_now_ms())
            .map(drop)
    }

    /// The value of a WebPush entry.
    ///
    /// # Errors
    /// The store failed.
    pub fn lookup(&self, user: &str, entry: Entry<'_>) -> Result<Option<String>, StoreError> {
        match entry {
            Entry::Vapid => Ok(Some(self.vapid_pem.clone())),
            Entry::Subscription(id) => {
                self.expire_pending(user)?;
                Ok(self
                    .queue
                    .store()
                    .subscription(user, id)?
                    .and_then(|s| listing(&s)))
            }
            Entry::Validate(_) | Entry::Other => Ok(None),
        }
    }

    /// Every WebPush entry below `prefix` at `depth`, as (entry name, value).
    ///
    /// # Errors
    /// The store failed.
    pub fn rows(
        &self,
        user: &str,
        prefix: &str,
        depth: Depth,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut rows = Vec::new();
        if depth.matches(prefix, ENTRY_VAPID) {
            rows.push((ENTRY_VAPID.to_owned(), self.vapid_pem.clone()));
        }
        let could_list = SUBSCRIPTIONS.starts_with(prefix) || prefix.starts_with(SUBSCRIPTIONS);
        if !could_list {
            return Ok(rows);
        }
        self.expire_pending(user)?;
        for sub in self.queue.store().subscriptions(user)? {
            let entry = format!("{SUBSCRIPTIONS}{}", sub.id);
            if depth.matches(prefix, &entry)
                && let Some(value) = listing(&sub)
            {
                rows.push((entry, value));
            }
        }
        Ok(rows)
    }

    /// What a SET (`Some`) or NIL (`None`) of a WebPush entry does in the commit.
    ///
    /// # Errors
    /// The refusal, for Dovecot's log.
    pub fn plan(
        &self,
        user: &str,
        entry: Entry<'_>,
        value: Option<&str>,
        now_ms: i64,
    ) -> Result<Op, String> {
        match (entry, value) {
            (Entry::Subscription(id), None) => Ok(Op::Unsubscribe { id: id.to_owned() }),
            (Entry::Subscription(id), Some(json)) => self.subscribe(user, id, json, now_ms),
            (Entry::Validate(id), Some(token)) => {
                let expire = self.queue.settings().subscription_expire.as_secs();
                let window = i64::try_from(expire).unwrap_or(i64::MAX);
                Ok(Op::Validate {
                    id: id.to_owned(),
                    token: token.to_owned(),
                    created_since: (now_ms / 1000).saturating_sub(window),
                })
            }
            (Entry::Validate(id), None) => {
                Err(format!("cannot unset the validation of subscription {id}"))
            }
            (Entry::Vapid, _) => Err(format!("unable to set {ENTRY_VAPID}: it is read-only")),
            (Entry::Other, _) => Err("not a WebPush entry coid serves".into()),
        }
    }

    fn subscribe(&self, user: &str, id: &str, json: &str, now_ms: i64) -> Result<Op, String> {
        let request = parse_request(id, json).map_err(|e| e.to_string())?;
        let settings = self.queue.settings();
        settings
            .endpoints
            .check_url(&request.endpoint)
            .map_err(|e| format!("invalid subscription: {e}"))?;
        let token = validation_token();
        Ok(Op::Subscribe(Box::new(Subscribe {
            subscription: Subscription {
                id: request.id,
                client: request.client,
                device: request.device,
                msgtype: request.msgtype,
                endpoint: request.endpoint_text,
                p256dh: request.p256dh,
                auth: request.auth,
                created: now_ms / 1000,
                validated_at: None,
            },
            validation_push: self.queue.validation_push(user, id, &token, now_ms),
            token,
            limit: settings.subscription_limit,
            max_queue: settings.max_queue,
        })))
    }
}

/// The listing JSON of a stored subscription (WebPush spec "Listing Subscriptions").
pub fn listing(sub: &Subscription) -> Option<String> {
    let request = Request {
        id: sub.id.clone(),
        client: sub.client.clone(),
        device: sub.device.clone(),
        msgtype: sub.msgtype.clone(),
        endpoint: url::Url::parse(&sub.endpoint).ok()?,
        endpoint_text: sub.endpoint.clone(),
        p256dh: sub.p256dh.clone(),
        auth: sub.auth.clone(),
    };
    Some(request.listing_json(&rfc3339(sub.created), sub.validated_at.is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names() {
        let sub = format!("{SUBSCRIPTIONS}31754ee7-d3ee");
        assert_eq!(Entry::parse(ENTRY_VAPID), Some(Entry::Vapid));
        assert_eq!(
            Entry::parse(&sub),
            Some(Entry::Subscription("31754ee7-d3ee"))
        );
        assert_eq!(
            Entry::parse(&format!("{sub}/validate")),
            Some(Entry::Validate("31754ee7-d3ee"))
        );
        for other in [
            WEBPUSH.to_owned(),
            format!("{WEBPUSH}/"),
            format!("{WEBPUSH}/subscriptions"),
            SUBSCRIPTIONS.to_owned(),
            format!("{sub}/other"),
            format!("{sub}/validate/x"),
            format!("{SUBSCRIPTIONS}/validate"),
            format!("{WEBPUSH}/vapid/x"),
        ] {
            assert_eq!(Entry::parse(&other), Some(Entry::Other), "{other}");
        }
        for outside in [
            "/private/vendor/vendor.dovecot/webpushx",
            "/private/vendor/vendor.dovecot/coi/config/enabled",
            "/private/devicetoken",
        ] {
            assert_eq!(Entry::parse(outside), None, "{outside}");
        }
    }
}
