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
//! A batch lists a group's pushes one after another (`crate::push::delivered` makes
//! them so), which makes a *run*: the first push of a run asks the table, the rest of
//! it take that answer. A run ends where the group changes or a push's own key comes
//! again (the same message delivered twice within one batch: the second run asks the
//! table, which now knows the group). A group whose pushes were not adjacent asks once
//! per run, which is correct, only slower.
//!
//! What changes against a key per push: a message delivered again after its user
//! added a device pushes to none of them, the new one included; before, the new
//! device got the push. A redelivery is a duplicate of mail already in the mailbox,
//! so nothing is missed that mattered. Keys kept per push by earlier versions (43
//! characters) never match a group's (24): a message delivered before an upgrade and
//! again after it is pushed twice, once.
//!
//! [`dedupe_key`]: super::dedupe_key

use super::NewPush;

/// Characters of a [`super::dedupe_key`] that digest the message and the user.
pub(crate) const MESSAGE_PART: usize = 22;

/// The dedupe table's key of `push`'s group; `None`: never deduplicated.
pub(crate) fn group_key(push: &NewPush) -> Option<String> {
    let key = push.dedupe.as_deref()?;
    let message = key.get(..MESSAGE_PART).unwrap_or(key);
    Some(format!("{message}.{}", push.kind.code()))
}

/// What the engine does with the dedupe table for one push.
#[derive(Debug, PartialEq, Eq)]
enum Dedupe {
    /// No key: queue it.
    Free,
    /// The first of a run: ask the table about this group key.
    Ask(String),
    /// In the run of a group the table answered: `true` queue it, `false` a duplicate.
    Answered(bool),
}

/// Walks one batch's pushes in order.
#[derive(Default)]
pub(crate) struct Runs {
    /// The current run's group key and the push keys in it so far.
    run: Option<(String, Vec<String>)>,
    /// The table's answer for the current run.
    kept: bool,
}

impl Runs {
    /// Whether to queue `push`, the next of the batch: `ask` keeps a group key in the
    /// dedupe table if it is new or its time is up (true), or finds it live (false: a
    /// duplicate); it is called once per run.
    ///
    /// # Errors
    /// What `ask` returned.
    pub(crate) fn admit<E>(
        &mut self,
        push: &NewPush,
        ask: impl FnOnce(&str) -> Result<bool, E>,
    ) -> Result<bool, E> {
        match self.next(push) {
            Dedupe::Free => Ok(true),
            Dedupe::Answered(kept) => Ok(kept),
            Dedupe::Ask(group) => {
                let kept = ask(&group)?;
                self.answered(kept);
                Ok(kept)
            }
        }
    }

    /// What to do for `push`, the next of the batch.
    fn next(&mut self, push: &NewPush) -> Dedupe {
        let (Some(group), Some(own)) = (group_key(push), push.dedupe.as_ref()) else {
            return Dedupe::Free;
        };
        if let Some((current, keys)) = &mut self.run
            && *current == group
            && !keys.contains(own)
        {
            keys.push(own.clone());
            return Dedupe::Answered(self.kept);
        }
        self.run = Some((group.clone(), vec![own.clone()]));
        self.kept = false;
        Dedupe::Ask(group)
    }

    /// The table's answer for the run [`Runs::next`] just opened.
    fn answered(&mut self, kept: bool) {
        self.kept = kept;
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

    #[test]
    fn a_group_asks_once_and_its_run_shares_the_answer() {
        let mut runs = Runs::default();
        let Dedupe::Ask(group) = runs.next(&push("m", WP, "a", "d1")) else {
            panic!("the first asks");
        };
        assert_eq!(group.len(), MESSAGE_PART + 2);
        runs.answered(true);
        assert_eq!(runs.next(&push("m", WP, "a", "d2")), Dedupe::Answered(true));
        assert_eq!(runs.next(&push("m", WP, "a", "d3")), Dedupe::Answered(true));
        // Another user, message or kind is another group.
        for other in [push("m", WP, "b", "d1"), push("n", WP, "a", "d1")] {
            assert!(matches!(runs.next(&other), Dedupe::Ask(_)));
            runs.answered(false);
        }
        let Dedupe::Ask(dc) = runs.next(&push("n", DC, "a", "t1")) else {
            panic!("another kind asks");
        };
        assert_ne!(dc, group_key(&push("n", WP, "a", "t1")).expect("a key"));
        runs.answered(false);
        assert_eq!(
            runs.next(&push("n", DC, "a", "t2")),
            Dedupe::Answered(false)
        );
    }

    #[test]
    fn the_same_push_again_opens_a_new_run() {
        let mut runs = Runs::default();
        assert!(matches!(
            runs.next(&push("m", WP, "a", "d1")),
            Dedupe::Ask(_)
        ));
        runs.answered(true);
        assert_eq!(runs.next(&push("m", WP, "a", "d2")), Dedupe::Answered(true));
        // The message delivered again, right behind: the table must be asked.
        assert!(matches!(
            runs.next(&push("m", WP, "a", "d1")),
            Dedupe::Ask(_)
        ));
        runs.answered(false);
        assert_eq!(
            runs.next(&push("m", WP, "a", "d2")),
            Dedupe::Answered(false)
        );
    }

    #[test]
    fn pushes_without_a_key_are_free_and_break_no_run() {
        let mut runs = Runs::default();
        assert!(matches!(
            runs.next(&push("m", WP, "a", "d1")),
            Dedupe::Ask(_)
        ));
        runs.answered(true);
        let validation = NewPush {
            dedupe: None,
            ..push("m", WP, "a", "d9")
        };
        assert_eq!(runs.next(&validation), Dedupe::Free);
        assert_eq!(runs.next(&push("m", WP, "a", "d2")), Dedupe::Answered(true));
    }
}
