//! One message through coid: read the header section, classify once, look up each
//! recipient's COI settings, run the policy per recipient, deliver, and combine the
//! store's outcomes into exactly one [`Answer`] per recipient, in RCPT order (a
//! [`PerRcpt`], so the count cannot be wrong); `crate::answer` makes them replies.
//!
//! Failures of coid's own parts (spool, state store, store unreachable) are temporary
//! for every recipient; a message that cannot be parsed is still delivered, as email.
//! After delivery, the pushes for the recipients it was stored for are handed to the
//! push hook (`crate::push::delivered`), which queues them in a task of its own: the
//! replies never wait for push work and never change because of it.

use std::sync::Arc;
use std::time::Instant;

use mail_parser::Message as Parsed;

use crate::answer::{Answer, Own};
use crate::classify::{Class, Classification, classify};
use crate::config::Config;
use crate::delivery::{Backend, Outcome};
use crate::lmtp::{Envelope, PerRcpt, Reply};
use crate::metrics::{DeliveryOutcome, MessageClass, Recorder};
use crate::parsed;
use crate::policy::{Evaluation, Facts, Policy, Verdict};
use crate::push::delivered::{Delivered, DeliveredMessage, PushHook};
use crate::spool::Spooled;
use crate::store::{CoiCache, CoiSettings, Store, StoreError};
use crate::users::{UserAddress, UserMap};

/// Most header bytes read for classification and the policy.
pub const MAX_HEADER: usize = 256 * 1024;

/// Why a message could not be decided; always temporary.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Reading the spooled message failed.
    #[error("spool: {0}")]
    Spool(#[from] std::io::Error),
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blocking task died.
    #[error("worker task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// Parsing, classification or the policy panicked on this message.
    #[error("parsing or policy panicked: {0}")]
    Panic(String),
}

impl PipelineError {
    /// The failure, as a recipient's answer.
    pub fn answer(&self) -> Answer {
        Answer::Own(match self {
            PipelineError::Spool(_) => Own::Spool,
            PipelineError::Store(_) => Own::StateStore,
            PipelineError::Join(_) => Own::Task,
            PipelineError::Panic(_) => Own::Panic,
        })
    }
}

/// What coid decided for one recipient.
#[derive(Debug, Clone)]
pub struct RcptDecision {
    /// The address as given in RCPT.
    pub rcpt: String,
    /// The user it maps to.
    pub user: UserAddress,
    /// The policy's outcome.
    pub evaluation: Evaluation,
}

/// What coid decided for one message.
#[derive(Debug, Clone)]
pub struct Decisions {
    /// The message's class.
    pub classification: Classification,
    /// Message-ID, for logs.
    pub message_id: Option<String>,
    /// One per recipient, in RCPT order.
    pub recipients: PerRcpt<RcptDecision>,
    /// The header section classification read (at most [`MAX_HEADER`] bytes); push
    /// payloads are built from it.
    pub header: Vec<u8>,
    /// When deciding began: the settings it read, and the push targets its pushes
    /// look for, count every change committed before then.
    pub began: Instant,
}

/// The shared per-message machinery.
pub struct Pipeline {
    policy: Arc<Policy>,
    coi: CoiCache,
    backend: Arc<dyn Backend>,
    users: UserMap,
    coi_defaults: CoiSettings,
    push: Option<PushHook>,
    separator: char,
    recorder: Recorder,
}

impl Pipeline {
    /// Assembles a pipeline.
    pub fn new(
        config: &Config,
        policy: Arc<Policy>,
        store: Store,
        backend: Arc<dyn Backend>,
    ) -> Pipeline {
        Pipeline {
            policy,
            coi: CoiCache::new(store),
            backend,
            users: UserMap::new(&config.users),
            coi_defaults: CoiSettings::defaults(&config.coi),
            push: None,
            separator: config.delivery.dovecot.hierarchy_separator,
            recorder: Recorder::off(),
        }
    }

    /// Where messages are counted (the LMTP server counts its sessions there too).
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Counts messages, recipients, delivery times and policy failures in `recorder`.
    pub fn with_recorder(mut self, recorder: Recorder) -> Pipeline {
        self.recorder = recorder;
        self
    }

    /// Reads COI settings through `cache` (shared with pipelines of other configs).
    pub fn with_coi_cache(mut self, cache: CoiCache) -> Pipeline {
        self.coi = cache;
        self
    }

    /// Queues pushes after delivery through `hook`.
    pub fn with_push(mut self, hook: PushHook) -> Pipeline {
        self.push = Some(hook);
        self
    }

    /// Waits until the pushes of every message processed so far are queued.
    pub async fn flush_pushes(&self) {
        if let Some(hook) = &self.push {
            hook.flush().await;
        }
    }

    /// Classifies and runs the policy for every recipient, without delivering.
    ///
    /// # Errors
    /// Spool or state store trouble, or a panic while parsing or in the policy.
    pub async fn decide(
        &self,
        envelope: &Envelope,
        body: &Spooled,
    ) -> Result<Decisions, PipelineError> {
        let header = body.header_block(MAX_HEADER).await?;
        self.decide_header(envelope, header).await
    }

    /// Classifies and runs the policy for every recipient on `header`, the message's
    /// header section (at most [`MAX_HEADER`] bytes of it).
    ///
    /// # Errors
    /// State store trouble, or a panic while parsing or in the policy.
    pub async fn decide_header(
        &self,
        envelope: &Envelope,
        header: Vec<u8>,
    ) -> Result<Decisions, PipelineError> {
        let began = Instant::now();
        let users = envelope.per_rcpt(|_, r| self.users.resolve(&r.address));
        let settings = self.settings_of(&users, began).await?;
        let (classification, message_id, recipients) =
            isolate(|| self.decide_parsed(envelope, &header, users, settings))?;
        Ok(Decisions {
            classification,
            message_id,
            recipients,
            header,
            began,
        })
    }

    /// Parses once, classifies and runs the policy for every recipient. Classification
    /// reads the outer headers of what the policy sees (an unparseable message is email
    /// either way). Synchronous, so [`isolate`] can contain a panic in any of it.
    fn decide_parsed(
        &self,
        envelope: &Envelope,
        header: &[u8],
        users: PerRcpt<UserAddress>,
        settings: PerRcpt<CoiSettings>,
    ) -> (Classification, Option<String>, PerRcpt<RcptDecision>) {
        let parsed = parse_for_policy(header);
        let classification = classify(&parsed);
        let message_id = parsed.message_id().map(str::to_owned);
        let mut settings = settings.into_iter();
        let recipients = users.map_ref(|i, user| {
            let rcpt = envelope
                .recipients
                .get(i)
                .map_or("", |r| r.address.as_str());
            let settings = settings.next().unwrap_or_else(|| self.coi_defaults.clone());
            let facts = Facts {
                mail_from: &envelope.mail_from,
                rcpt,
                classification: &classification,
                settings: &settings,
            };
            let evaluation = self.policy.evaluate(parsed.clone(), &facts);
            if let Some(warning) = &evaluation.warning {
                tracing::warn!(rcpt, warning, "policy failed; keeping in INBOX");
                self.recorder.policy_error();
            }
            RcptDecision {
                rcpt: rcpt.to_owned(),
                user: user.clone(),
                evaluation,
            }
        });
        (classification, message_id, recipients)
    }

    /// The recipients' settings as of `began` or later: from the cache when every one
    /// is there (no SQLite, no blocking thread), else read on a blocking thread. A
    /// user the store knows nothing of has the server's defaults.
    async fn settings_of(
        &self,
        users: &PerRcpt<UserAddress>,
        began: Instant,
    ) -> Result<PerRcpt<CoiSettings>, PipelineError> {
        let names: Vec<String> = users.iter().map(|u| u.username.clone()).collect();
        let stored = match self.coi.cached(&names, began) {
            Some(stored) => stored,
            None => {
                let cache = self.coi.clone();
                tokio::task::spawn_blocking(move || cache.load(&names)).await??
            }
        };
        let defaults = &self.coi_defaults;
        let mut stored = stored.into_iter();
        Ok(users.map_ref(|_, _| stored.next().unwrap_or_default().over(defaults)))
    }

    /// Decides and delivers one spooled message (store-and-forward); returns one reply
    /// per recipient, in order, and what follows them ([`After`]). The same path as
    /// cut-through from the decision on ([`Pipeline::finish_spooled`]).
    pub async fn process(&self, envelope: &Envelope, body: &Spooled) -> (PerRcpt<Reply>, After) {
        let early = Early::new(self.decide(envelope, body).await);
        self.finish_spooled(envelope, early, body).await
    }

    /// Decides and delivers one message; returns its class (`None`: it could not be
    /// decided) and one answer per recipient, in order.
    pub async fn answers(
        &self,
        envelope: &Envelope,
        body: &Spooled,
    ) -> (Option<Class>, PerRcpt<Answer>) {
        let mut early = Early::new(self.decide(envelope, body).await);
        self.deliver_spooled(envelope, &mut early, body).await;
        let (class, answers, _after) =
            self.conclude_answers(envelope, early, body.as_bytes(), body.len());
        (class, answers)
    }

    /// The pushes for the recipients the store took the message for, for the push
    /// hook, which queues them in its own task (once the replies are out: [`After`]).
    /// Read receipts never push.
    ///
    /// A delivered answer means every copy was stored (see [`Outcome::combine`]); the
    /// push names the first copy's folder.
    ///
    /// `body` is the whole message when it was held in memory (small ones), else `None`.
    fn pushes_of(
        &self,
        body: Option<&[u8]>,
        decisions: Decisions,
        answers: &PerRcpt<Answer>,
    ) -> Option<Pushes> {
        let hook = self.push.as_ref()?;
        if decisions.classification.class == Class::Mdn {
            return None;
        }
        let recipients: Vec<Delivered> = decisions
            .recipients
            .iter()
            .zip(answers)
            .filter(|(_, answer)| matches!(answer, Answer::Delivery(Outcome::Delivered)))
            .filter_map(|(decision, _)| match &decision.evaluation.verdict {
                Verdict::Deliver(targets) => Some(Delivered::stored(
                    decision.user.username.clone(),
                    decision.rcpt.clone(),
                    targets.first()?,
                    self.separator,
                )),
                Verdict::Discard | Verdict::Reject(_) => None,
            })
            .collect();
        if recipients.is_empty() {
            return None;
        }
        let class = decisions.classification.class;
        let message =
            DeliveredMessage::new(decisions.header, body, decisions.classification.group_id)
                .with_class(class)
                .decided_from(decisions.began);
        Some(Pushes {
            hook: hook.clone(),
            message,
            recipients,
        })
    }
}

/// The policy sees the header section, whatever the message's size (body and size
/// tests are refused when the script is loaded: `crate::policy::capabilities`); a
/// message without a header section is an empty one (classified as email), never one
/// that panics when read (see [`crate::parsed`]). Public for the fuzz targets (`fuzz/`),
/// which parse exactly as coid does.
pub fn parse_for_policy<'a>(header: &'a [u8]) -> Parsed<'a> {
    parsed::header(header)
}

/// Runs `work` (parsing, classification and the policy: third-party code fed with
/// the sender's bytes) so that a panic in it defers this one message (451 4.3.0,
/// logged at error level by [`Pipeline::process`]) instead of ending the session
/// with no reply for any recipient.
fn isolate<T>(work: impl FnOnce() -> T) -> Result<T, PipelineError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
        .map_err(|payload| PipelineError::Panic(panic_text(payload.as_ref())))
}

/// The message a panic was raised with, if it was text.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// The message's class as the metrics label it is counted under.
fn class_label(class: Option<Class>) -> MessageClass {
    match class {
        Some(Class::Chat) => MessageClass::Chat,
        Some(Class::Group) => MessageClass::Group,
        Some(Class::Mdn) => MessageClass::Mdn,
        Some(Class::Email) => MessageClass::Email,
        None => MessageClass::Unknown,
    }
}

/// A recipient's reply as the metrics label it is counted under (RFC 5321 §4.2.1
/// classes; a code that is neither 2xx nor 5xx is temporary, as coid treats unknown
/// trouble).
fn outcome_label(reply: &Reply) -> DeliveryOutcome {
    if reply.is_success() {
        DeliveryOutcome::Delivered
    } else if reply.is_permanent() {
        DeliveryOutcome::Rejected
    } else {
        DeliveryOutcome::Deferred
    }
}

#[path = "pipeline_after.rs"]
mod after;
#[path = "pipeline_early.rs"]
mod early;
pub use after::After;
use after::Pushes;
pub use early::{Early, Plan};

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "pipeline_combine_tests.rs"]
mod combine_tests;
