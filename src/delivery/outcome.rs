//! What a delivery backend says about one copy of a message: delivered, or a temporary
//! or permanent failure with its cause. Backends speak in these, never in LMTP replies;
//! `crate::answer` is the one place that turns them into replies.
//!
//! A backend receives one [`Delivery`] per copy with its outcome already set to
//! [`Temporary::NotAnswered`], and overwrites it once the store has answered. A copy the
//! backend never got to therefore stays a temporary failure: coid cannot answer 250 for
//! a copy the store did not take (design.md: nothing is lost).

use super::Job;
use crate::lmtp::Reply;

/// The store's answer for one copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The store has the message (its 2xx was read).
    Delivered,
    /// Not stored; the MTA keeps the message and retries.
    Temporary(Temporary),
    /// Not stored, and retrying will not help.
    Permanent(Permanent),
}

/// Why a copy was not stored this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Temporary {
    /// The store answered 4xx (e.g. over quota, its own internal trouble); passed on.
    Store(Reply),
    /// No connection to the store could be had.
    Unreachable,
    /// The connection to the store failed, timed out or answered out of protocol in
    /// the middle of the transaction.
    Broken,
    /// The backend's own trouble: file system, lock, a blocking task that died.
    Local,
    /// The backend gave no answer for this copy.
    NotAnswered,
}

/// Why a copy will never be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permanent {
    /// The store answered 5xx (e.g. unknown user); passed on.
    Store(Reply),
    /// A non-ASCII envelope address, and the store has no SMTPUTF8 (RFC 6531).
    Utf8AddressUnsupported,
    /// A recipient name that would leave the mail tree (Maildir).
    BadMailbox,
}

impl Outcome {
    /// The store's reply as an outcome: 2xx delivered, 5xx permanent, anything else
    /// temporary (unknown trouble is retried).
    pub fn from_store(reply: Reply) -> Outcome {
        if reply.is_success() {
            Outcome::Delivered
        } else if reply.is_permanent() {
            Outcome::Permanent(Permanent::Store(reply))
        } else {
            Outcome::Temporary(Temporary::Store(reply))
        }
    }

    /// True for [`Outcome::Delivered`].
    pub fn is_delivered(&self) -> bool {
        matches!(self, Outcome::Delivered)
    }

    /// The outcome of a recipient with several copies: delivered only if every copy
    /// was; otherwise the first temporary failure (so the MTA retries), else the first
    /// permanent one. `None` (no copy at all) is [`Temporary::NotAnswered`].
    pub fn combine<'a>(copies: impl IntoIterator<Item = &'a Outcome>) -> Outcome {
        let mut permanent = None;
        let mut any = false;
        for outcome in copies {
            any = true;
            match outcome {
                Outcome::Delivered => {}
                Outcome::Temporary(_) => return outcome.clone(),
                Outcome::Permanent(_) => {
                    permanent.get_or_insert_with(|| outcome.clone());
                }
            }
        }
        match (any, permanent) {
            (false, _) => Outcome::Temporary(Temporary::NotAnswered),
            (true, Some(permanent)) => permanent,
            (true, None) => Outcome::Delivered,
        }
    }
}

/// One copy to store, and what became of it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Which recipient, where to.
    pub job: Job,
    /// Set by the backend; [`Temporary::NotAnswered`] until it does.
    pub outcome: Outcome,
}

impl Delivery {
    /// A copy not yet answered.
    pub fn new(job: Job) -> Delivery {
        Delivery {
            job,
            outcome: Outcome::Temporary(Temporary::NotAnswered),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUSY: Outcome = Outcome::Temporary(Temporary::Unreachable);

    fn unknown_user() -> Outcome {
        Outcome::Permanent(Permanent::Store(Reply::new(550, [5, 1, 1], "no")))
    }

    #[test]
    fn combining_copies_prefers_a_retry_over_a_final_no() {
        let ok = Outcome::Delivered;
        let cases: [(&[Outcome], Outcome); 6] = [
            (&[], Outcome::Temporary(Temporary::NotAnswered)),
            (std::slice::from_ref(&ok), ok.clone()),
            (&[ok.clone(), ok.clone()], ok.clone()),
            (&[ok.clone(), unknown_user()], unknown_user()),
            (&[unknown_user(), BUSY], BUSY),
            (&[ok.clone(), BUSY, unknown_user()], BUSY),
        ];
        for (copies, want) in cases {
            assert_eq!(Outcome::combine(copies), want, "{copies:?}");
        }
    }

    #[test]
    fn store_replies_are_classed_by_their_code() {
        let saved = Reply::new(250, [2, 0, 0], "saved");
        let full = Reply::new(452, [4, 2, 2], "Mailbox full");
        let gone = Reply::new(550, [5, 1, 1], "User doesn't exist");
        let odd = Reply::new(354, [0, 0, 0], "go on");
        assert_eq!(Outcome::from_store(saved), Outcome::Delivered);
        assert_eq!(
            Outcome::from_store(full.clone()),
            Outcome::Temporary(Temporary::Store(full))
        );
        assert_eq!(
            Outcome::from_store(gone.clone()),
            Outcome::Permanent(Permanent::Store(gone))
        );
        assert_eq!(
            Outcome::from_store(odd.clone()),
            Outcome::Temporary(Temporary::Store(odd))
        );
    }
}
