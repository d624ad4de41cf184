//! Delivery to the store: one trait, per-recipient results.
//!
//! The pipeline hands a backend the message and one [`Job`] per (recipient, target);
//! the backend answers one [`Reply`] per job, in order. A backend never answers 2xx for
//! a job before the store has the message; its own trouble is 4xx (the MTA retries),
//! and 5xx is only the store's verdict on the recipient (unknown user, over quota).
//!
//! Backends: [`dovecot::DovecotLmtp`] (production) and [`maildir::Maildir`] (embedded).

pub mod dovecot;
pub mod lmtp_client;
pub mod maildir;
pub mod pool;
pub mod route;
pub mod stream;

use std::future::Future;
use std::pin::Pin;

use crate::lmtp::{Envelope, Reply};
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

/// A store that takes messages.
pub trait Backend: Send + Sync {
    /// Stores `message` for each job; returns exactly one reply per job, in order.
    fn deliver<'a>(
        &'a self,
        message: &'a Message<'a>,
        jobs: &'a [Job],
    ) -> BoxFuture<'a, Vec<Reply>>;
}
