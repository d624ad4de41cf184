//! The Dovecot LMTP backend (production default): forwards each message to Dovecot's
//! LMTP service and relays Dovecot's own per-recipient verdicts.
//!
//! Recipients with the same target share one transaction; each distinct target gets
//! its own transaction on the same connection, with [`super::route`] headers that the
//! shipped `sieve_before` script acts on. Connection trouble, timeouts and protocol
//! errors are temporary outcomes; Dovecot's replies (unknown user, over quota) become
//! outcomes that carry them, so `crate::answer` can pass them on as given.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::create_gate::CreateGate;
use super::lmtp_client::{Client, ClientError};
use super::pool::{Lease, Pool, Settings};
use super::route::route_headers;
use super::stream::Transform as _;
use super::{Backend, BoxFuture, Delivery, Job, Message, Outcome, Streaming, Temporary};
pub use announce::Announced;
use transfer::{Body, CHUNK};
pub use transfer::{Opened, Transfer};

#[path = "announce.rs"]
mod announce;
#[path = "transfer.rs"]
mod transfer;
use crate::config::DovecotConfig;
use crate::lmtp::{Envelope, Reply};
use crate::metrics::Recorder;
use crate::policy::Target;

/// A transaction that failed, and whether it got as far as DATA (after which a
/// retry could store the message twice).
struct Failure {
    error: ClientError,
    /// No connection could be had.
    connecting: bool,
    data_sent: bool,
}

impl Failure {
    fn connecting(error: ClientError) -> Failure {
        Failure {
            error,
            connecting: true,
            data_sent: false,
        }
    }

    fn before_data(error: ClientError) -> Failure {
        Failure {
            error,
            connecting: false,
            data_sent: false,
        }
    }

    /// The whole transaction took longer than `transaction_timeout_secs`; whether DATA
    /// went out is unknown here, and does not matter: the connection is dropped.
    fn past_deadline() -> Failure {
        Failure {
            error: ClientError::Timeout,
            connecting: false,
            data_sent: true,
        }
    }

    fn in_data(error: ClientError) -> Failure {
        Failure {
            error,
            connecting: false,
            data_sent: true,
        }
    }
}

/// Delivers over LMTP to Dovecot.
pub struct DovecotLmtp {
    pool: Arc<Pool>,
    separator: char,
    /// The most one transaction (checkout, a wait at the [`CreateGate`], envelope,
    /// DATA, every reply) may take: a store that answers each read just in time cannot
    /// hold a message for longer.
    transaction_timeout: Duration,
    recorder: Recorder,
    /// First creations of a folder, one at a time per user ([`CreateGate`]).
    gate: Arc<CreateGate>,
}

impl DovecotLmtp {
    /// From `[delivery.dovecot]`.
    pub fn new(config: &DovecotConfig) -> DovecotLmtp {
        DovecotLmtp {
            pool: Arc::new(Pool::new(Settings {
                addr: config.lmtp.clone(),
                lhlo: config.lhlo_name.clone(),
                connect_timeout: Duration::from_secs(config.connect_timeout_secs),
                reply_timeout: Duration::from_secs(config.reply_timeout_secs),
                max_open: config.max_connections,
                max_idle: config.max_idle_connections,
                idle_limit: Duration::from_secs(config.idle_secs),
            })),
            separator: config.hierarchy_separator,
            transaction_timeout: Duration::from_secs(config.transaction_timeout_secs),
            recorder: Recorder::off(),
            gate: Arc::new(CreateGate::new()),
        }
    }

    /// Counts the store's failures in `recorder`.
    pub fn with_recorder(mut self, recorder: Recorder) -> DovecotLmtp {
        self.recorder = recorder;
        self
    }

    async fn deliver_all(&self, message: &Message<'_>, copies: &mut [Delivery]) {
        let mut lease: Option<Lease> = None;
        for members in group_by_target(copies) {
            // Outcomes are set as Dovecot answers: when the connection fails half way,
            // the recipients it already answered keep theirs (a 250 must stay a 250,
            // or Postfix delivers to them twice); the rest become temporary failures.
            let mut group = Group {
                copies: &mut *copies,
                members: &members,
            };
            // On the deadline the transaction's future is dropped, and with it the
            // connection it held: a connection left mid-transaction is never pooled.
            // A wait at the gate counts against the same deadline.
            let deadline = self.transaction_timeout;
            let result =
                tokio::time::timeout(deadline, self.group(&mut lease, message, &mut group))
                    .await
                    .unwrap_or_else(|_| Err(Failure::past_deadline()));
            if let Err(failure) = result {
                self.failed(&failure, &mut group);
                lease = None;
            }
        }
        if let Some(lease) = lease {
            self.pool.checkin(lease);
        }
    }

    /// One group's transaction on the connection in `lease` (taken from the pool if
    /// there is none), through the [`CreateGate`] when its target creates its folder.
    /// On success the connection is left in `lease` for the next group.
    ///
    /// The gate is entered with a connection in hand: a transaction holding the gate
    /// never waits for the pool, so it cannot wait for a connection held by one that
    /// waits at the gate.
    async fn group(
        &self,
        lease: &mut Option<Lease>,
        message: &Message<'_>,
        group: &mut Group<'_>,
    ) -> Result<(), Failure> {
        let current = match lease.take() {
            Some(current) => current,
            None => self.pool.checkout().await.map_err(Failure::connecting)?,
        };
        let pass = self.gate.enter(CreateGate::keys(group.jobs())).await;
        let result = self.transaction_on(current, message, group).await;
        self.gate.leave(pass, group.deliveries());
        *lease = Some(result?);
        Ok(())
    }

    /// The group's transaction on `current`. A connection from the pool that turns out
    /// dead before DATA is replaced by a fresh one (in its own pool slot) and the
    /// transaction tried again; after DATA never.
    async fn transaction_on(
        &self,
        mut current: Lease,
        message: &Message<'_>,
        group: &mut Group<'_>,
    ) -> Result<Lease, Failure> {
        let reused = current.reused;
        match self.transaction(&mut current, message, group).await {
            Ok(()) => {}
            Err(failure) if reused && !failure.data_sent => {
                tracing::debug!(backend = "dovecot", error = %failure.error, "pooled connection is gone; trying a new one");
                group.reset();
                current = self
                    .pool
                    .reconnect(current)
                    .await
                    .map_err(Failure::connecting)?;
                self.transaction(&mut current, message, group).await?;
            }
            Err(failure) => return Err(failure),
        }
        current.reused = false;
        Ok(current)
    }

    /// One MAIL/RCPT*/DATA transaction for copies sharing a target; each copy's
    /// outcome is set as soon as Dovecot has given it. On a connection from the pool,
    /// an RSET goes first, in the same pipelined write (RFC 2920), so it costs no
    /// round trip.
    async fn transaction(
        &self,
        lease: &mut Lease,
        message: &Message<'_>,
        group: &mut Group<'_>,
    ) -> Result<(), Failure> {
        let Some(target) = group.target().cloned() else {
            return Ok(());
        };
        let reset = lease.reused;
        let c = &mut lease.client;
        // The envelope exchange is the streaming path's (`transfer::start_on`).
        let accepted = self.start_on(c, message.envelope, group, reset).await?;
        if accepted.is_empty() {
            return Ok(());
        }
        self.data(c, message, &target)
            .await
            .map_err(Failure::in_data)?;
        for k in accepted {
            let reply = c.read_reply().await.map_err(Failure::in_data)?;
            group.set(k, Outcome::from_store(reply));
        }
        Ok(())
    }

    /// The message after DATA's 354: the route headers, the message with incoming
    /// `X-Coid-*` fields removed ([`HeaderFilter`]) and dot-stuffed, and the end mark.
    /// Written in as few writes as the size allows (one for a message held in memory
    /// below [`CHUNK`]), with buffers no bigger than the message.
    async fn data(
        &self,
        c: &mut Client,
        message: &Message<'_>,
        target: &Target,
    ) -> Result<(), ClientError> {
        let size = usize::try_from(message.body.len()).unwrap_or(CHUNK);
        let mut body = Body::new(size);
        body.stuffer
            .push(&route_headers(target, self.separator), &mut body.out);
        match message.body.as_bytes() {
            Some(bytes) => {
                for chunk in bytes.chunks(CHUNK) {
                    body.push(c, chunk).await?;
                }
            }
            None => {
                let mut reader = message.body.reader().await?;
                let mut buf = vec![0u8; CHUNK];
                loop {
                    let n = reader.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    body.push(c, buf.get(..n).unwrap_or_default()).await?;
                }
            }
        }
        body.finish(c).await
    }
}

/// What the store said to the envelope.
enum Answered {
    /// MAIL accepted: one reply per RCPT; DATA was answered 354 if any was accepted.
    Rcpts(Vec<Reply>),
    /// MAIL refused with this reply (the transaction was reset).
    MailRefused(Reply),
}

/// Sends (RSET,) MAIL, every RCPT and DATA in one write (RFC 2920: DATA may end a
/// pipelined group; LMTP servers must support PIPELINING, RFC 2033 §5) and reads
/// their replies. One round trip to the store before the body instead of two.
async fn envelope(
    c: &mut Client,
    env: &crate::lmtp::Envelope,
    group: &Group<'_>,
    reset: bool,
) -> Result<Answered, ClientError> {
    let rcpts = group.jobs().map(|job| job.rcpt.as_str());
    c.send(envelope_commands(c, env, rcpts, reset).as_bytes())
        .await?;
    envelope_replies(c, group.len(), reset).await
}

/// The pipelined group (RSET,) MAIL, one RCPT per address in `rcpts`, DATA.
fn envelope_commands<'a>(
    c: &Client,
    env: &crate::lmtp::Envelope,
    rcpts: impl Iterator<Item = &'a str>,
    reset: bool,
) -> String {
    let mut cmd = String::new();
    if reset {
        cmd.push_str("RSET\r\n");
    }
    cmd.push_str(&format!("MAIL FROM:<{}>", env.mail_from));
    if env.body_8bit && c.eight_bit {
        cmd.push_str(" BODY=8BITMIME");
    }
    if env.smtputf8 && c.smtputf8 {
        cmd.push_str(" SMTPUTF8");
    }
    cmd.push_str("\r\n");
    for rcpt in rcpts {
        cmd.push_str(&format!("RCPT TO:<{rcpt}>\r\n"));
    }
    cmd.push_str("DATA\r\n");
    cmd
}

/// The replies to [`envelope_commands`] for `rcpts` recipients.
///
/// DATA's reply must fit the recipients': 354 when some RCPT was accepted, a
/// refusal when none was (the transaction then ends, and an RSET clears it). A store
/// that says otherwise is out of protocol: the connection is not used again.
async fn envelope_replies(
    c: &mut Client,
    rcpts: usize,
    reset: bool,
) -> Result<Answered, ClientError> {
    if reset {
        let rset = c.read_reply().await?;
        if !rset.is_success() {
            return Err(ClientError::Protocol(format!("RSET answered {rset}")));
        }
    }
    let mail = c.read_reply().await?;
    let mut rcpt_replies = Vec::with_capacity(rcpts);
    for _ in 0..rcpts {
        rcpt_replies.push(c.read_reply().await?);
    }
    let data = c.read_reply().await?;
    let accepted = mail.is_success() && rcpt_replies.iter().any(Reply::is_success);
    match (accepted, data.code == 354) {
        (true, true) => Ok(Answered::Rcpts(rcpt_replies)),
        (false, false) if mail.is_success() => Ok(Answered::Rcpts(rcpt_replies)),
        (false, false) => {
            reset_transaction(c).await?;
            Ok(Answered::MailRefused(mail))
        }
        (true, false) => Err(ClientError::Protocol(format!(
            "DATA answered {data} after a recipient was accepted"
        ))),
        (false, true) => Err(ClientError::Protocol(format!(
            "DATA answered {data} with no recipient accepted"
        ))),
    }
}

/// RSET after a transaction that ends before DATA.
async fn reset_transaction(c: &mut Client) -> Result<(), ClientError> {
    c.send(b"RSET\r\n").await?;
    c.read_reply().await?;
    Ok(())
}

/// Whether the sender and every recipient are ASCII, so a store without SMTPUTF8
/// (RFC 6531) can take the envelope unchanged. UTF-8 in header fields (RFC 6532) is
/// passed through either way: the store keeps the bytes as they are.
fn envelope_is_ascii<'a>(mail_from: &str, mut rcpts: impl Iterator<Item = &'a str>) -> bool {
    mail_from.is_ascii() && rcpts.all(str::is_ascii)
}

/// Copy indexes grouped by identical target, groups in order of first appearance.
fn group_by_target(copies: &[Delivery]) -> Vec<Vec<usize>> {
    let mut groups: Vec<(&Target, Vec<usize>)> = Vec::new();
    for (i, copy) in copies.iter().enumerate() {
        match groups.iter_mut().find(|(t, _)| **t == copy.job.target) {
            Some((_, members)) => members.push(i),
            None => groups.push((&copy.job.target, vec![i])),
        }
    }
    groups.into_iter().map(|(_, members)| members).collect()
}

/// The copies of one transaction (same target): `members` index into `copies`.
struct Group<'a> {
    copies: &'a mut [Delivery],
    members: &'a [usize],
}

impl Group<'_> {
    fn len(&self) -> usize {
        self.members.len()
    }

    fn jobs(&self) -> impl Iterator<Item = &Job> {
        self.members
            .iter()
            .filter_map(|&i| self.copies.get(i).map(|c| &c.job))
    }

    fn deliveries(&self) -> impl Iterator<Item = &Delivery> {
        self.members.iter().filter_map(|&i| self.copies.get(i))
    }

    fn target(&self) -> Option<&Target> {
        self.jobs().next().map(|job| &job.target)
    }

    /// Sets the outcome of the group's `k`-th copy.
    fn set(&mut self, k: usize, outcome: Outcome) {
        if let Some(copy) = self.members.get(k).and_then(|&i| self.copies.get_mut(i)) {
            copy.outcome = outcome;
        }
    }

    fn fill(&mut self, outcome: &Outcome) {
        for k in 0..self.len() {
            self.set(k, outcome.clone());
        }
    }

    /// Back to not answered, before the transaction is tried again.
    fn reset(&mut self) {
        self.fill(&Outcome::Temporary(Temporary::NotAnswered));
    }

    /// The copies the store has not answered fail with `cause`.
    fn fail_unanswered(&mut self, cause: &Temporary) {
        for &i in self.members {
            if let Some(copy) = self.copies.get_mut(i)
                && copy.outcome == Outcome::Temporary(Temporary::NotAnswered)
            {
                copy.outcome = Outcome::Temporary(cause.clone());
            }
        }
    }
}

impl Backend for DovecotLmtp {
    fn deliver<'a>(
        &'a self,
        message: &'a Message<'a>,
        copies: &'a mut [Delivery],
    ) -> BoxFuture<'a, ()> {
        Box::pin(self.deliver_all(message, copies))
    }

    fn streaming(&self) -> Option<&dyn Streaming> {
        Some(self)
    }
}

impl Streaming for DovecotLmtp {
    fn announce<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Option<Announced>> {
        Box::pin(self.announce_envelope(envelope))
    }

    fn open<'a>(
        &'a self,
        envelope: &'a Envelope,
        copies: Vec<Delivery>,
        announced: Option<Announced>,
    ) -> BoxFuture<'a, Opened> {
        Box::pin(self.open_transfer(envelope, copies, announced))
    }
}
