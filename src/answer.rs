//! What became of one recipient of a message, and the one function that turns it into
//! the LMTP reply (RFC 2033 §4.2, codes per RFC 5321 §4.2 and RFC 3463).
//!
//! Everything after DATA ends here: the backends' typed [`Outcome`]s (combined over a
//! recipient's copies), the policy's reject and discard, and coid's own failures. No
//! other code writes a reply for a delivered message, so the rules live in one place:
//! - 250 only for [`Outcome::Delivered`] (every copy stored) and a policy discard;
//! - the store's own 4xx and 5xx are passed on as it gave them (unknown user, quota),
//!   but only when their class matches the outcome, so a store that answers out of
//!   protocol can never turn a failure into a 2xx;
//! - coid's own trouble and a store it cannot reach are 451: the MTA retries; wire
//!   texts stay generic (the cause goes to the log, not to the client).

use crate::delivery::{Outcome, Permanent, Temporary};
use crate::lmtp::Reply;

/// One recipient's fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// What the store said, combined over the recipient's copies.
    Delivery(Outcome),
    /// The policy discarded the message for this recipient.
    Discarded,
    /// The policy rejected it, with the script's reason (may be empty).
    Rejected(String),
    /// coid could not get as far as asking the store.
    Own(Own),
}

/// coid's own failures before delivery; all temporary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Own {
    /// The message could not be spooled or read back.
    Spool,
    /// The state store (COI settings) failed.
    StateStore,
    /// Parsing, classification or the policy panicked on this message.
    Panic,
    /// A blocking task died.
    Task,
}

/// 250 for a stored copy. The store's own text (with its session id) is in coid's log.
pub const DELIVERED: Reply = Reply::new(250, [2, 0, 0], "Delivered");
/// 550 for a recipient name the Maildir backend refuses.
pub const BAD_MAILBOX: Reply = Reply::new(550, [5, 1, 1], "Bad destination mailbox address");

/// The reply for one recipient.
pub fn reply(answer: &Answer) -> Reply {
    match answer {
        Answer::Delivery(Outcome::Delivered) => DELIVERED,
        Answer::Delivery(Outcome::Temporary(cause)) => temporary(cause),
        Answer::Delivery(Outcome::Permanent(cause)) => permanent(cause),
        Answer::Discarded => Reply::DISCARDED,
        Answer::Rejected(reason) if reason.trim().is_empty() => Reply::REJECTED_BY_POLICY,
        Answer::Rejected(reason) => Reply::dynamic(550, [5, 7, 1], reason),
        Answer::Own(_) => Reply::TEMP_FAILURE,
    }
}

fn temporary(cause: &Temporary) -> Reply {
    match cause {
        Temporary::Store(reply) if reply.is_temporary() => reply.clone(),
        Temporary::Store(_) | Temporary::Unreachable | Temporary::Broken => {
            Reply::STORE_UNAVAILABLE
        }
        Temporary::Local | Temporary::NotAnswered => Reply::TEMP_FAILURE,
    }
}

fn permanent(cause: &Permanent) -> Reply {
    match cause {
        Permanent::Store(reply) if reply.is_permanent() => reply.clone(),
        Permanent::Store(_) => Reply::STORE_UNAVAILABLE,
        Permanent::Utf8AddressUnsupported => Reply::UTF8_ADDRESS_UNSUPPORTED,
        Permanent::BadMailbox => BAD_MAILBOX,
    }
}

#[cfg(test)]
#[path = "answer_tests.rs"]
mod tests;
