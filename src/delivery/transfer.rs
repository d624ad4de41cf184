//! Cut-through delivery to Dovecot: one store transaction opened as soon as the
//! message's header section is decided, the body streamed into it as it arrives from
//! the client, the end mark and the per-recipient replies read at the end of DATA.
//! Also the [`Body`] writer (filter, dot-stuffing, batching) that the store-and-forward
//! path in `super` shares.
//!
//! The rules are the store-and-forward path's, stretched over the client's DATA:
//! - a pooled connection found dead is replaced only while no byte of the message went
//!   out (during [`DovecotLmtp::open`], never in [`Transfer::push`]);
//! - a copy is delivered only once Dovecot's 2xx for it was read (RFC 2033 §4.2: one
//!   reply per accepted RCPT after the end mark), never before;
//! - one deadline (`transaction_timeout_secs`) covers the whole transaction, the time
//!   the client takes to send its DATA included;
//! - a transaction that does not end cleanly (the client went away, the message grew
//!   too big, the store failed, the deadline passed) drops its connection without the
//!   end mark: Dovecot stores nothing, and the connection is never pooled again.

use std::sync::Arc;

use tokio::time::Instant;

use super::announce::Announced;
use super::{
    Answered, DovecotLmtp, Failure, Group, envelope, envelope_is_ascii, reset_transaction,
};
use crate::delivery::create_gate::{CreateGate, Key};
use crate::delivery::lmtp_client::{Client, ClientError};
use crate::delivery::pool::{Lease, Pool};
use crate::delivery::route::route_headers;
use crate::delivery::stream::{DotStuffer, HeaderFilter, Transform};
use crate::delivery::{Delivery, Outcome, Permanent, Temporary};
use crate::lmtp::Envelope;
use crate::metrics::{BackendError, Recorder};
use crate::policy::Target;

/// Bytes gathered before a write to the store while streaming DATA.
pub(super) const CHUNK: usize = 64 * 1024;

/// What opening a streaming transaction came to.
pub enum Opened {
    /// DATA was accepted (354): push the body, then [`Transfer::finish`].
    Stream(Box<Transfer>),
    /// The transaction is over before any body byte: every copy's outcome is final
    /// (the store refused MAIL or every RCPT, could not be reached, or cannot take a
    /// UTF-8 envelope).
    Done(Vec<Delivery>),
}

/// One open store transaction whose body is still arriving. Dropping it without
/// [`Transfer::finish`] drops the connection with no end mark sent.
pub struct Transfer {
    /// `None` once the transaction failed: later bytes are dropped.
    lease: Option<Lease>,
    pool: Arc<Pool>,
    /// The copies, all with the same target; each still [`Temporary::NotAnswered`]
    /// unless the store refused its RCPT.
    copies: Vec<Delivery>,
    /// Indexes of the copies whose RCPT the store accepted, in RCPT order: one reply
    /// each follows the end mark.
    accepted: Vec<usize>,
    body: Body,
    deadline: Instant,
    recorder: Recorder,
    /// Where the end mark waits its turn when the target creates its folder
    /// ([`CreateGate`]: Dovecot creates it once the message is complete), and for
    /// which (user, folder) pairs.
    gate: Arc<CreateGate>,
    keys: Vec<Key>,
}

impl DovecotLmtp {
    /// Opens one transaction for `copies` (all with the same target): the envelope
    /// sent ahead at DATA when it fits the copies ([`Announced`]), else checkout,
    /// (RSET,) MAIL, RCPT*, DATA in one write; then their replies. A pooled connection
    /// that turns out dead is replaced and the envelope sent again: nothing of the
    /// message went out yet.
    pub(super) async fn open_transfer(
        &self,
        env: &Envelope,
        mut copies: Vec<Delivery>,
        announced: Option<Announced>,
    ) -> Opened {
        let announced = announced.filter(|a| a.fits(env, &copies));
        let deadline = announced.as_ref().map_or_else(
            || Instant::now() + self.transaction_timeout,
            Announced::deadline,
        );
        let members: Vec<usize> = (0..copies.len()).collect();
        let mut group = Group {
            copies: &mut copies,
            members: &members,
        };
        let started = self.start(env, &mut group, announced);
        let opened = tokio::time::timeout_at(deadline, started)
            .await
            .unwrap_or_else(|_| Err(Failure::past_deadline()));
        match opened {
            Ok(Some((lease, accepted))) => {
                let target = group.target().cloned().unwrap_or_else(Target::inbox);
                // Buffers no bigger than the message, when the client declared its size
                // (Postfix sends SIZE=, RFC 1870).
                let size = env.declared_size.map_or(CHUNK, |n| {
                    usize::try_from(n).unwrap_or(CHUNK).saturating_add(1024)
                });
                let mut body = Body::new(size);
                body.stuffer
                    .push(&route_headers(&target, self.separator), &mut body.out);
                let keys = CreateGate::keys(copies.iter().map(|c| &c.job));
                Opened::Stream(Box::new(Transfer {
                    lease: Some(lease),
                    pool: Arc::clone(&self.pool),
                    copies,
                    accepted,
                    body,
                    deadline,
                    recorder: self.recorder.clone(),
                    gate: Arc::clone(&self.gate),
                    keys,
                }))
            }
            Ok(None) => Opened::Done(copies),
            Err(failure) => {
                self.failed(&failure, &mut group);
                Opened::Done(copies)
            }
        }
    }

    /// Logs and counts a failed transaction; its unanswered copies become temporary.
    pub(super) fn failed(&self, failure: &Failure, group: &mut Group<'_>) {
        let err = &failure.error;
        let cause = if failure.connecting {
            tracing::warn!(backend = "dovecot", addr = %self.pool.addr(), error = %err, "cannot reach the store");
            Temporary::Unreachable
        } else {
            tracing::warn!(backend = "dovecot", error = %err, "delivery transaction failed");
            Temporary::Broken
        };
        group.fail_unanswered(&cause);
        self.recorder.backend_error(BackendError::from(err));
    }

    /// The envelope's replies (on the announced connection, or sent now on a pooled
    /// one), and again on a fresh connection if the pooled one is dead. `Some`: DATA
    /// got its 354, with the accepted copies' indexes; `None`: the transaction is
    /// over, outcomes set, the connection back in the pool.
    async fn start(
        &self,
        env: &Envelope,
        group: &mut Group<'_>,
        announced: Option<Announced>,
    ) -> Result<Option<(Lease, Vec<usize>)>, Failure> {
        let (mut lease, started) = match announced {
            Some(announced) => announced.replies(group).await,
            None => {
                let mut lease = self.pool.checkout().await.map_err(Failure::connecting)?;
                let reused = lease.reused;
                let started = self.start_on(&mut lease.client, env, group, reused).await;
                (lease, started)
            }
        };
        let started = match started {
            Err(failure) if lease.reused => {
                tracing::debug!(backend = "dovecot", error = %failure.error, "pooled connection is gone; trying a new one");
                group.reset();
                lease = self
                    .pool
                    .reconnect(lease)
                    .await
                    .map_err(Failure::connecting)?;
                self.start_on(&mut lease.client, env, group, false).await?
            }
            other => other?,
        };
        lease.reused = false;
        if started.is_empty() {
            self.pool.checkin(lease);
            return Ok(None);
        }
        Ok(Some((lease, started)))
    }

    /// The envelope of one transaction; the accepted copies' indexes (empty: the
    /// transaction is over, every outcome set).
    pub(super) async fn start_on(
        &self,
        c: &mut Client,
        env: &Envelope,
        group: &mut Group<'_>,
        reset: bool,
    ) -> Result<Vec<usize>, Failure> {
        let ascii = envelope_is_ascii(&env.mail_from, group.jobs().map(|j| j.rcpt.as_str()));
        if !c.smtputf8 && !ascii {
            // Dovecot 2.3 would store such a sender as `Return-Path: <>`; Postfix
            // bounces the same way when it talks to the store directly.
            group.fill(&Outcome::Permanent(Permanent::Utf8AddressUnsupported));
            return Ok(Vec::new());
        }
        let answered = envelope(c, env, group, reset)
            .await
            .map_err(Failure::before_data)?;
        accepted_copies(c, group, answered).await
    }
}

/// The store's answers to the envelope set the refused copies' outcomes; returns the
/// accepted copies' indexes (empty: the transaction is over, every outcome set, the
/// connection reset for the next one).
pub(super) async fn accepted_copies(
    c: &mut Client,
    group: &mut Group<'_>,
    answered: Answered,
) -> Result<Vec<usize>, Failure> {
    let replies = match answered {
        Answered::Rcpts(replies) => replies,
        Answered::MailRefused(mail) => {
            group.fill(&Outcome::from_store(mail));
            return Ok(Vec::new());
        }
    };
    let mut accepted = Vec::new();
    for (k, rcpt) in replies.into_iter().enumerate() {
        if rcpt.is_success() {
            accepted.push(k);
        } else {
            group.set(k, Outcome::from_store(rcpt));
        }
    }
    if accepted.is_empty() {
        reset_transaction(c).await.map_err(Failure::before_data)?;
    }
    Ok(accepted)
}

impl Transfer {
    /// Passes body bytes on (filtered, dot-stuffed, in writes of [`CHUNK`]). A failure
    /// (or the deadline) ends the transaction here: the connection is dropped and
    /// later bytes are ignored; [`Transfer::finish`] then reports it.
    pub async fn push(&mut self, bytes: &[u8]) {
        if Instant::now() >= self.deadline {
            self.expire();
        }
        let Some(lease) = self.lease.as_mut() else {
            return;
        };
        let sent = tokio::time::timeout_at(self.deadline, self.body.push(&mut lease.client, bytes));
        match sent.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => self.fail(&err),
            Err(_) => self.fail(&ClientError::Timeout),
        }
    }

    /// When the transaction's deadline passes, while the store connection is still
    /// good; `None` once it failed.
    pub fn deadline(&self) -> Option<Instant> {
        self.lease.as_ref().map(|_| self.deadline)
    }

    /// The deadline passed while the client was still sending: the store connection
    /// is dropped now, not at the client's next byte.
    pub fn expire(&mut self) {
        if self.lease.is_some() {
            self.fail(&ClientError::Timeout);
        }
    }

    /// Sends the end mark, reads one reply per accepted recipient and puts the
    /// connection back in the pool; returns the copies with their outcomes. Copies the
    /// store did not answer (it failed, stalled past the deadline) are temporary.
    /// When the target creates its folder, the end mark first waits its turn at the
    /// [`CreateGate`], within the transaction's deadline.
    pub async fn finish(mut self) -> Vec<Delivery> {
        if Instant::now() >= self.deadline {
            self.expire();
        }
        if let Some(mut lease) = self.lease.take() {
            let deadline = self.deadline;
            let gate = Arc::clone(&self.gate);
            let entered = gate.enter(std::mem::take(&mut self.keys));
            let Ok(pass) = tokio::time::timeout_at(deadline, entered).await else {
                self.fail(&ClientError::Timeout);
                return self.copies;
            };
            let end = self.end(&mut lease.client);
            match tokio::time::timeout_at(deadline, end).await {
                Ok(Ok(())) => self.pool.checkin(lease),
                Ok(Err(err)) => self.fail(&err),
                Err(_) => self.fail(&ClientError::Timeout),
            }
            gate.leave(pass, &self.copies);
        }
        self.copies
    }

    async fn end(&mut self, c: &mut Client) -> Result<(), ClientError> {
        std::mem::take(&mut self.body).finish(c).await?;
        for &k in &self.accepted {
            let reply = c.read_reply().await?;
            if let Some(copy) = self.copies.get_mut(k) {
                copy.outcome = Outcome::from_store(reply);
            }
        }
        Ok(())
    }

    /// Drops the connection (no end mark: the store keeps nothing) and fails every copy
    /// the store has not answered.
    fn fail(&mut self, err: &ClientError) {
        tracing::warn!(backend = "dovecot", error = %err, "delivery transaction failed");
        self.recorder.backend_error(BackendError::from(err));
        self.lease = None;
        for copy in &mut self.copies {
            if copy.outcome == Outcome::Temporary(Temporary::NotAnswered) {
                copy.outcome = Outcome::Temporary(Temporary::Broken);
            }
        }
    }
}

/// The message on its way out: filtered, stuffed, and written once [`CHUNK`] bytes
/// are ready (or at the end).
#[derive(Default)]
pub(super) struct Body {
    filter: HeaderFilter,
    pub(super) stuffer: DotStuffer,
    filtered: Vec<u8>,
    pub(super) out: Vec<u8>,
}

impl Body {
    /// Buffers sized for a message of about `size` bytes (at most [`CHUNK`]).
    pub(super) fn new(size: usize) -> Body {
        let size = size.min(CHUNK);
        Body {
            filter: HeaderFilter::new(),
            stuffer: DotStuffer::default(),
            filtered: Vec::with_capacity(size),
            out: Vec::with_capacity(size + size / 32 + 1024),
        }
    }

    pub(super) async fn push(&mut self, c: &mut Client, bytes: &[u8]) -> Result<(), ClientError> {
        self.filtered.clear();
        self.filter.push(bytes, &mut self.filtered);
        self.stuffer.push(&self.filtered, &mut self.out);
        if self.out.len() >= CHUNK {
            c.send(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    pub(super) async fn finish(mut self, c: &mut Client) -> Result<(), ClientError> {
        self.filtered.clear();
        self.filter.finish(&mut self.filtered);
        self.stuffer.push(&self.filtered, &mut self.out);
        self.stuffer.finish(&mut self.out);
        c.send(&self.out).await
    }
}
