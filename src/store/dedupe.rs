//! Which pushes of a batch being queued must ask the store's dedupe table, and which
//! share an answer it gave: the engine-independent half of deduplication (the table
//! itself, `push_dedupe`, is each engine's).
//!
//! Postfix delivers at least once, so a message may be delivered, and its pushes
//! queued, again. What the table remembers is the *group*: one delivered message's
//! pushes of one kind to one user, whichever devices they go to (the message-and-user
//! half of their [`dedupe_key`]s, and the kind). A group is queued once; queued again,
//! all of it is a no-op. One key per group, not per push, because each key is one more
//! B-tree write in the transaction that queues the message: with 8 devices, writing
//! one instead of 8 took queueing a message's pushes from 102–122 µs to 89–106 µs
//! (`benches/push`, SQLite, 6 and 9 runs in one hour).
//!
//! Within one batch (one transaction) the first push of a group asks the table; the
//! group's other pushes take that answer without asking, and a push whose own key
//! came already in the batch (the same message delivered twice, handed over
//! together) is a duplicate. The batch's groups are remembered while it is queued, in
//! whatever order their pushes come.
//!
//! What changes against a key per push: a message delivered again after its user
//! added a device pushes to none of them, the new one included; before, the new
//! device got the push. A redelivery is a duplicate of mail already in the mailbox,
//! so nothing is missed that mattered. Keys kept per push by earlier versions (43
//! characters) never match a group's (24): a message delivered before an upgrade and
//! again after it is pushed twice, once. And when the queue is full partway through
//! a group (its bound, `[push] max_queue`), the rest of the group is dropped with a
//! warning as before, but a later redelivery no longer fills it in: its key is kept.
//!
//! [`dedupe_key`]: super::dedupe_key

use std::collections::HashMap;

use super::NewPush;

/// Characters of a [`super::dedupe_key`] that digest the message and the user.
pub(crate) const MESSAGE_PART: usize = 22;

/// The dedupe table's key of `push`'s group; `None`: never deduplicated.
pub(crate) fn group_key(push: &NewPush) -> Option<String> {
    let key = push.dedupe.as_deref()?;
    let message = key.get(..MESSAGE_PART).unwrap_or(key);
    Some(format!("{message}.{}", push.kind.code()))
}

/// A group this batch met: the table's answer and the push keys seen in it.
struct Seen {
    kept: bool,
    keys: Vec<String>,
}

/// Walks one batch's pushes, in order.
#[derive(Default)]
pub(crate) struct Runs {
    /// Group key → what the batch knows of it. Bounded by the batch.
    groups: HashMap<String, Seen>,
}

impl Runs {
    /// Whether to queue `push`, the next of the batch: `ask` keeps a group key in the
    /// dedupe table if it is new or its time is up (true), or finds it live (false: a
    /// duplicate); it is called once per group of the batch.
    ///
    /// # Errors
    /// What `ask` returned.
    pub(crate) fn admit<E>(
        &mut self,
        push: &NewPush,
        ask: impl FnOnce(&str) -> Result<bool, E>,
    ) -> Result<bool, E> {
        let (Some(group), Some(own)) = (group_key(push), push.dedupe.as_ref()) else {
            return Ok(true);
        };
        if let Some(seen) = self.groups.get_mut(&group) {
            if seen.keys.contains(own) {
                return Ok(false);
            }
            seen.keys.push(own.clone());
            return Ok(seen.kept);
        }
        let kept = ask(&group)?;
        let keys = vec![own.clone()];
        self.groups.insert(group, Seen { kept, keys });
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{PushKind, dedupe_key};

    fn push(message: &str, kind: PushKind, user: &str, target: &str) -> NewPush {
        NewPush {
            kind,
            username: user.into(),
            target: target.into(),
            payload: String::new(),
            with_content: false,
            validation: false,
            not_before: 0,
            deadline: 0,
            dedupe: Some(dedupe_key(message, kind, user, target)),
        }
    }

    const WP: PushKind = PushKind::WebPush;
    const DC: PushKind = PushKind::DeltaChat;

    /// One push of a batch: (message, kind, user, target), what the table would
    /// answer if asked, and whether it must be queued.
    type Step = (
        &'static str,
        PushKind,
        &'static str,
        &'static str,
        bool,
        bool,
    );

    /// Walks `steps` as one batch; returns the group keys the table was asked about.
    fn walk(steps: &[Step]) -> Vec<String> {
        let mut runs = Runs::default();
        let mut asked = Vec::new();
        for (i, &(message, kind, user, target, table, queued)) in steps.iter().enumerate() {
            let admitted = runs
                .admit(&push(message, kind, user, target), |group| {
                    asked.push(group.to_owned());
                    Ok::<_, ()>(table)
                })
                .expect("no error");
            assert_eq!(
                admitted, queued,
                "step {i}: {message} {kind:?} {user} {target}"
            );
        }
        asked
    }

    #[test]
    fn a_group_asks_once_and_its_pushes_share_the_answer() {
        let asked = walk(&[
            ("m", WP, "a", "d1", true, true),
            // The table would now say "live": the group's other pushes never ask it.
            ("m", WP, "a", "d2", false, true),
            // Another user, message or kind is another group, and asks.
            ("m", WP, "b", "d1", false, false),
            ("n", WP, "a", "d1", false, false),
            ("m", DC, "a", "t1", true, true),
            // A duplicate group's other pushes are duplicates too.
            ("n", WP, "a", "d2", true, false),
        ]);
        assert_eq!(asked.len(), 4, "once per group: {asked:?}");
        assert_eq!(asked[0].len(), MESSAGE_PART + 2);
        assert_ne!(asked[3], asked[0], "another kind, another key");
    }

    #[test]
    fn a_push_met_twice_in_a_batch_is_queued_once_whatever_the_order() {
        let asked = walk(&[
            ("m", WP, "a", "d1", true, true),
            // Two copies of the message for one user (two addresses), the second
            // wanting a device the first did not: d1 again is a duplicate, d2 is new.
            ("m", WP, "a", "d1", true, false),
            ("m", WP, "a", "d2", false, true),
            // Apart, after another group: the same.
            ("n", WP, "a", "d1", true, true),
            ("m", WP, "a", "d3", false, true),
            ("m", WP, "a", "d2", true, false),
        ]);
        assert_eq!(asked.len(), 2, "once per group: {asked:?}");
    }

    #[test]
    fn pushes_without_a_key_are_free() {
        let mut runs = Runs::default();
        let validation = NewPush {
            dedupe: None,
            ..push("m", WP, "a", "d9")
        };
        for _ in 0..2 {
            let admitted = runs.admit(&validation, |_| -> Result<bool, ()> {
                panic!("a push without a key never asks the table")
            });
            assert_eq!(admitted, Ok(true));
        }
    }
}
