//! Cut-through: a message decided from its header section while its body is still
//! arriving. The I/O side (`crate::lmtp::data_phase`) hands [`Pipeline::decide_early`]
//! the header section as soon as it is complete (its empty line, [`super::MAX_HEADER`]
//! bytes, or the end of DATA, whichever comes first); the [`Plan`] says where the rest
//! of the body goes:
//! - every delivered copy shares one target and the backend can stream (Dovecot LMTP):
//!   the store transaction is opened now and the body streamed into it
//!   ([`crate::delivery::Transfer`]); nothing goes to the spool;
//! - several targets, or a backend that cannot stream: the body is spooled and
//!   delivered after its end, as store-and-forward always did (with the decisions
//!   already made, so the policy runs once);
//! - nothing to store (every recipient rejected or discarded, the decision failed, or
//!   the store already answered before DATA): the body is read and dropped.
//!
//! All three end in one place, [`Pipeline::conclude`]: the copies' typed outcomes become
//! one [`Answer`] per recipient (a [`PerRcpt`]) and `crate::answer::reply` makes them
//! replies, exactly as on the store-and-forward path; the log lines and the pushes
//! follow the replies ([`After`]).

use super::{After, Decisions, Pipeline, PipelineError, class_label, outcome_label};
use crate::answer::{self, Answer};
use crate::classify::Class;
use crate::delivery::{Announced, Delivery, Job, Message, Opened, Outcome, Transfer};
use crate::lmtp::{Envelope, PerRcpt, Reply};
use crate::policy::Verdict;
use crate::spool::Spooled;

/// What was decided for a message before its body was complete.
pub struct Early {
    decided: Result<Decisions, PipelineError>,
    /// The copies to store (empty while a [`Transfer`] holds them).
    copies: Vec<Delivery>,
    /// Copy `k` belongs to recipient `owners[k]`.
    owners: Vec<usize>,
}

/// Where the rest of the body goes.
pub enum Plan {
    /// One store transaction is open: push the body into it.
    Stream(Box<Transfer>),
    /// Spool the body and deliver it after its end ([`Pipeline::finish_spooled`]).
    Spool,
    /// Nothing to store: read the body to its end and drop it.
    Drop,
}

impl Early {
    /// The copies the decision asks for (none if it failed).
    pub(super) fn new(decided: Result<Decisions, PipelineError>) -> Early {
        let (copies, owners) = decided.as_ref().map(copies_of).unwrap_or_default();
        Early {
            decided,
            copies,
            owners,
        }
    }
}

impl Pipeline {
    /// Whether the backend can take a message while it is still arriving; if not, the
    /// I/O side keeps to store-and-forward ([`Pipeline::process`]).
    pub fn streams(&self) -> bool {
        self.backend.streaming().is_some()
    }

    /// At DATA, when the backend streams: the envelope sent to the store ahead of the
    /// decision (`crate::delivery::Streaming::announce`), or `None`.
    pub async fn announce(&self, envelope: &Envelope) -> Option<Announced> {
        self.backend.streaming()?.announce(envelope).await
    }

    /// Decides the message from `header` (as [`Pipeline::decide`] does) and, when all
    /// its copies share one target and the backend can stream, opens the store
    /// transaction (on `announced` when its envelope fits; otherwise it is dropped).
    pub async fn decide_early(
        &self,
        envelope: &Envelope,
        header: Vec<u8>,
        announced: Option<Announced>,
    ) -> (Early, Plan) {
        let mut early = Early::new(self.decide_header(envelope, header).await);
        if early.copies.is_empty() {
            return (early, Plan::Drop);
        }
        let first = early.copies.first().map(|c| c.job.target.clone());
        let one_target = early
            .copies
            .iter()
            .all(|c| Some(&c.job.target) == first.as_ref());
        let Some(streaming) = self.backend.streaming().filter(|_| one_target) else {
            return (early, Plan::Spool);
        };
        let copies = std::mem::take(&mut early.copies);
        match streaming.open(envelope, copies, announced).await {
            Opened::Stream(transfer) => (early, Plan::Stream(transfer)),
            Opened::Done(copies) => {
                early.copies = copies;
                (early, Plan::Drop)
            }
        }
    }

    /// The end of a streamed message: the end mark, the store's replies, and one
    /// reply per recipient. `body` is the whole message if it stayed under the spool
    /// threshold (for the push hook), `size` its length.
    pub async fn finish_streamed(
        &self,
        envelope: &Envelope,
        mut early: Early,
        transfer: Box<Transfer>,
        body: Option<&[u8]>,
        size: u64,
    ) -> (PerRcpt<Reply>, After) {
        // Delivery time here is what the client waits for after its end of DATA.
        early.copies = self.recorder.time_delivery(transfer.finish()).await;
        self.conclude(envelope, early, body, size).await
    }

    /// The end of a spooled message decided early: delivered store-and-forward.
    pub async fn finish_spooled(
        &self,
        envelope: &Envelope,
        mut early: Early,
        body: &Spooled,
    ) -> (PerRcpt<Reply>, After) {
        self.deliver_spooled(envelope, &mut early, body).await;
        self.conclude(envelope, early, body.as_bytes(), body.len())
            .await
    }

    /// Stores the copies of a decided message from its spooled body.
    pub(super) async fn deliver_spooled(
        &self,
        envelope: &Envelope,
        early: &mut Early,
        body: &Spooled,
    ) {
        if early.decided.is_ok() && !early.copies.is_empty() {
            let message = Message { envelope, body };
            let delivery = self.backend.deliver(&message, &mut early.copies);
            self.recorder.time_delivery(delivery).await;
        }
    }

    /// The end of a message with nothing (more) to store.
    pub async fn finish_dropped(
        &self,
        envelope: &Envelope,
        early: Early,
        size: u64,
    ) -> (PerRcpt<Reply>, After) {
        self.conclude(envelope, early, None, size).await
    }

    /// One reply per recipient from the decisions and the copies' outcomes, and what
    /// follows them (the log lines, the pushes); counts the message.
    async fn conclude(
        &self,
        envelope: &Envelope,
        early: Early,
        body: Option<&[u8]>,
        size: u64,
    ) -> (PerRcpt<Reply>, After) {
        let (class, answers, after) = self.conclude_answers(envelope, early, body, size);
        let replies = answers.map(|a| answer::reply(&a));
        self.recorder
            .message_done(class_label(class), replies.iter().map(outcome_label));
        (replies, after)
    }

    /// One answer per recipient, the message's class (`None`: it could not be
    /// decided), and what follows the replies.
    pub(super) fn conclude_answers(
        &self,
        envelope: &Envelope,
        early: Early,
        body: Option<&[u8]>,
        size: u64,
    ) -> (Option<Class>, PerRcpt<Answer>, After) {
        let span = tracing::info_span!(
            "message",
            size,
            rcpts = envelope.recipients.len(),
            msg_id = tracing::field::Empty,
            class = tracing::field::Empty
        );
        match early.decided {
            Ok(decisions) => {
                span.record("msg_id", decisions.message_id.as_deref().unwrap_or(""));
                span.record("class", decisions.classification.class.as_str());
                let answers = answers_of(&decisions, &early.copies, &early.owners);
                let class = decisions.classification.class;
                let pushes = self.pushes_of(body, decisions, &answers);
                (Some(class), answers, After::new(span, early.copies, pushes))
            }
            Err(err) => {
                let _entered = span.enter();
                tracing::error!(target: "coid::pipeline", error = %err, "cannot process message; deferring");
                let answers = envelope.per_rcpt(|_, _| err.answer());
                (None, answers, After::default())
            }
        }
    }
}

/// One copy per (recipient, target) the policy asked for, and each copy's recipient
/// index.
fn copies_of(decisions: &Decisions) -> (Vec<Delivery>, Vec<usize>) {
    let mut copies = Vec::new();
    let mut owners = Vec::new();
    for (i, d) in decisions.recipients.iter().enumerate() {
        if let Verdict::Deliver(targets) = &d.evaluation.verdict {
            for target in targets {
                copies.push(Delivery::new(Job {
                    rcpt: d.rcpt.clone(),
                    user: d.user.clone(),
                    target: target.clone(),
                }));
                owners.push(i);
            }
        }
    }
    (copies, owners)
}

/// One answer per recipient: the policy's verdict, or its copies' combined outcome
/// (`owners[k]` is copy `k`'s recipient).
pub(super) fn answers_of(
    decisions: &Decisions,
    copies: &[Delivery],
    owners: &[usize],
) -> PerRcpt<Answer> {
    decisions
        .recipients
        .map_ref(|i, d| match &d.evaluation.verdict {
            Verdict::Reject(reason) => Answer::Rejected(reason.clone()),
            Verdict::Discard => Answer::Discarded,
            Verdict::Deliver(_) => Answer::Delivery(Outcome::combine(
                owners
                    .iter()
                    .zip(copies)
                    .filter(|(owner, _)| **owner == i)
                    .map(|(_, copy)| &copy.outcome),
            )),
        })
}

/// The one info line per copy. Logged under `coid::pipeline`, the target this line
/// always had: operators and the booted install check grep `pipeline: delivered`.
pub(super) fn log_outcome(copy: &Delivery) {
    let job = &copy.job;
    let folder = job.target.folder.as_deref().unwrap_or("INBOX");
    if copy.outcome.is_delivered() {
        tracing::info!(target: "coid::pipeline", rcpt = %job.rcpt, folder, flags = ?job.target.flags, "delivered");
    } else {
        let reply = answer::reply(&Answer::Delivery(copy.outcome.clone()));
        tracing::warn!(target: "coid::pipeline", rcpt = %job.rcpt, folder, code = reply.code, reply = %reply, outcome = ?copy.outcome, "not delivered");
    }
}
