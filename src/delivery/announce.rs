//! The envelope sent ahead: at DATA, before the header section has arrived, coid
//! writes (RSET,) MAIL, every RCPT and DATA on an idle pooled connection to the store
//! and reads the replies only once the message is decided. The store looks its
//! recipients up while the client is still sending, and the decided message finds
//! DATA's 354 already there: one round trip to the store less on every message
//! (issue 10: the latency coid adds).
//!
//! Only a transaction with one recipient is announced. Recipients of one message may
//! be decided into different folders (one has COI on, the other not), and then one
//! transaction naming all of them cannot be used; LMTP has no way to call off a DATA
//! but to drop the connection, which would cost such messages a new connection each.
//! With one recipient that happens only when the policy discards or rejects it or
//! files it into two folders.
//!
//! The rules of the transaction that follows stay those of `super::transfer`:
//! - only an idle pooled connection is used, so announcing never waits for a connect;
//! - the announced transaction is taken only when the decision streams the message to
//!   every recipient, in RCPT order, one copy each, in one transaction
//!   ([`Announced::fits`]). Otherwise it is dropped with DATA open and no end mark, so
//!   the store keeps nothing, and the message goes its usual way;
//! - no byte of the message went out before the replies are read, so a pooled
//!   connection found dead there is replaced and the envelope sent again;
//! - the transaction's deadline (`transaction_timeout_secs`) starts at the announce.

use tokio::time::Instant;

use super::transfer::accepted_copies;
use super::{DovecotLmtp, Failure, envelope_commands, envelope_is_ascii, envelope_replies};
use crate::delivery::Delivery;
use crate::delivery::pool::Lease;
use crate::lmtp::Envelope;

/// An envelope written to the store whose replies are not read yet. Dropping it drops
/// the connection: DATA is open on it.
pub struct Announced {
    lease: Lease,
    deadline: Instant,
}

impl Announced {
    /// When the transaction begun at the announce must be over.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the announced envelope is the one for `copies`: one copy per recipient
    /// of `env`, in RCPT order (their target is the caller's to check: one
    /// transaction has one).
    pub(super) fn fits(&self, env: &Envelope, copies: &[Delivery]) -> bool {
        copies.len() == env.recipients.len()
            && copies
                .iter()
                .zip(&env.recipients)
                .all(|(copy, r)| copy.job.rcpt == r.address)
    }

    /// Reads the envelope's replies into `group`'s outcomes; the connection and the
    /// accepted copies' indexes, as [`DovecotLmtp::start_on`] gives them.
    pub(super) async fn replies(
        mut self,
        group: &mut super::Group<'_>,
    ) -> (Lease, Result<Vec<usize>, Failure>) {
        let c = &mut self.lease.client;
        let started = match envelope_replies(c, group.len(), true).await {
            Ok(answered) => accepted_copies(c, group, answered).await,
            Err(err) => Err(Failure::before_data(err)),
        };
        (self.lease, started)
    }
}

impl DovecotLmtp {
    /// Writes `env`'s envelope on an idle pooled connection; `None` when it has more
    /// than one recipient, there is no idle connection, the store cannot take the
    /// envelope as it is (UTF-8 without SMTPUTF8), or the write fails (the connection
    /// is dropped; the message then opens its transaction the usual way).
    pub(super) async fn announce_envelope(&self, env: &Envelope) -> Option<Announced> {
        if env.recipients.len() != 1 {
            return None;
        }
        let mut lease = self.pool.idle()?;
        let rcpts = || env.recipients.iter().map(|r| r.address.as_str());
        if !lease.client.smtputf8 && !envelope_is_ascii(&env.mail_from, rcpts()) {
            self.pool.checkin(lease);
            return None;
        }
        let deadline = Instant::now() + self.transaction_timeout;
        let cmd = envelope_commands(&lease.client, env, rcpts(), true);
        let sent = tokio::time::timeout_at(deadline, lease.client.send(cmd.as_bytes())).await;
        match sent {
            Ok(Ok(())) => Some(Announced { lease, deadline }),
            Ok(Err(err)) => {
                tracing::debug!(backend = "dovecot", error = %err, "pooled connection is gone; the envelope waits for the header");
                None
            }
            Err(_) => None,
        }
    }
}
