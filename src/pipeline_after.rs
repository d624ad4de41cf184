//! What follows a message's replies: its log lines (one per copy) and the hand-over of
//! its pushes to the push hook. Neither changes a reply, so neither runs before one:
//! the I/O side writes the replies, flushes them, and then drops the [`After`], which
//! does the work in its `Drop`. Dropping is the only way an `After` ends, so a session
//! that ends in between (the client went away, coid stops) still logs and queues.
//!
//! Measured with `benches/run.sh --bench e2e` (one message at a time through coid to
//! `smtp-sink`): with the log line and the push hook's counter read ahead of the
//! reply, coid added 0.21 ms per message; without them, 0.19 ms.

use crate::delivery::Delivery;
use crate::push::delivered::{Delivered, DeliveredMessage, PushHook};

use super::early::log_outcome;

/// The work after one message's replies; done when dropped.
#[derive(Default)]
pub struct After {
    /// The message's span (size, recipients, Message-ID, class) for the log lines.
    span: Option<tracing::Span>,
    /// The copies, each logged with its outcome.
    copies: Vec<Delivery>,
    /// The pushes to hand to the hook, if any.
    pushes: Option<Pushes>,
}

/// A delivered message's pushes, for the hook.
pub(super) struct Pushes {
    pub(super) hook: PushHook,
    pub(super) message: DeliveredMessage,
    pub(super) recipients: Vec<Delivered>,
}

impl After {
    /// Logs `copies` under `span` and hands `pushes` on, once dropped.
    pub(super) fn new(span: tracing::Span, copies: Vec<Delivery>, pushes: Option<Pushes>) -> After {
        After {
            span: Some(span),
            copies,
            pushes,
        }
    }
}

impl Drop for After {
    fn drop(&mut self) {
        let Some(span) = self.span.take() else {
            return;
        };
        let _entered = span.enter();
        self.copies.iter().for_each(log_outcome);
        if let Some(p) = self.pushes.take() {
            p.hook.after_delivery(p.message, p.recipients);
        }
    }
}
