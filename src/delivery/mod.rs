//! Delivery to the store: one trait, a typed outcome per copy.
//!
//! The pipeline hands a backend the message and one [`Delivery`] per (recipient,
//! target), each already marked not answered; the backend sets each one's
//! [`Outcome`]. A backend never marks a copy delivered before the store has the
//! message; its own trouble is temporary (the MTA retries), and permanent is only the
//! store's verdict on the recipient (unknown user) or an address it cannot take.
//! Backends know nothing of LMTP replies: `crate::answer` turns outcomes into them.
//!
//! Backends: [`dovecot::DovecotLmtp`] (production) and [`maildir::Maildir`] (embedded).
//! Dovecot's can also take a message while it is still arriving ([`Streaming`], its
//! `transfer` module): the cut-through path for a message whose copies share one
//! target.

pub mod create_gate;
pub mod dovecot;
pub mod lmtp_client;
pub mod maildir;
#[cfg(test)]
pub mod memory;
pub mod outcome;
pub mod pool;
pub mod route;
pub mod stream;

use std::future::Future;
use std::pin::Pin;

use crate::lmtp::Envelope;
use crate::policy::Target;
use crate::spool::Spooled;
use crate::users::UserAddress;

/// Headers coid adds for the store (Dovecot's `sieve_before` script acts on them). Any
/// header whose name starts with this prefix is removed from incoming mail first, so
/// only coid can set them.
pub const TRUSTED_HEADER_PREFIX: &str = "X-Coid-";

/// One copy to store: a recipient and where its copy goes.
#[derive(Debug, Clone)]
pub struct Job {
    /// The recipient address as given in RCPT (extension included).
    pub rcpt: String,
    /// The recipient split into user parts.
    pub user: UserAddress,
    /// Folder and flags.
    pub target: Target,
}

/// A message to deliver.
pub struct Message<'a> {
    /// The transaction's envelope (sender, BODY, SMTPUTF8).
    pub envelope: &'a Envelope,
    /// The message bytes, as received (dot-stuffing undone).
    pub body: &'a Spooled,
}

/// A boxed future, so backends can sit behind `dyn Backend`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub use outcome::{Delivery, Outcome, Permanent, Temporary};

/// A store that takes messages.
pub trait Backend: Send + Sync {
    /// Stores `message` for each copy and sets each copy's outcome.
    fn deliver<'a>(
        &'a self,
        message: &'a Message<'a>,
        copies: &'a mut [Delivery],
    ) -> BoxFuture<'a, ()>;

    /// The cut-through side of the store, if it has one: a transaction opened before
    /// the body is complete. `None` (the default): every message is stored and
    /// forwarded through [`Backend::deliver`].
    fn streaming(&self) -> Option<&dyn Streaming> {
        None
    }
}

/// A store that takes a message while it is still arriving (cut-through delivery).
pub trait Streaming: Send + Sync {
    /// At DATA, before anything is decided: sends the envelope ahead on an idle
    /// connection, if there is one, so that [`Streaming::open`] finds its replies
    /// waiting. Dropping the result drops that connection, and the store keeps nothing.
    fn announce<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Option<Announced>>;

    /// Opens one transaction for `copies`, which all share one target (on `announced`
    /// when its envelope fits them); the body then goes through [`Transfer::push`]
    /// and [`Transfer::finish`]. Outcomes follow the same rules as
    /// [`Backend::deliver`]'s.
    fn open<'a>(
        &'a self,
        envelope: &'a Envelope,
        copies: Vec<Delivery>,
        announced: Option<Announced>,
    ) -> BoxFuture<'a, Opened>;
}

pub use dovecot::{Announced, Opened, Transfer};
