//! The Dovecot LMTP backend (production default): forwards each message to Dovecot's
//! LMTP service and relays Dovecot's own per-recipient verdicts.
//!
//! Recipients with the same target share one transaction; each distinct target gets
//! its own transaction on the same connection, with [`super::route`] headers that the
//! shipped `sieve_before` script acts on. Connection trouble, timeouts and protocol
//! errors are 4xx; Dovecot's replies (unknown user, over quota) are passed on as given.

use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::lmtp_client::{Client, ClientError};
use super::pool::{Lease, Pool, Settings};
use super::route::route_headers;
use super::stream::{DotStuffer, HeaderFilter, Transform};
use super::{Backend, BoxFuture, Job, Message};
use crate::config::DovecotConfig;
use crate::lmtp::Reply;
use crate::metrics::{self, BackendError};
use crate::policy::Target;

/// Bytes read from the spool per step while streaming DATA.
const CHUNK: usize = 64 * 1024;

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
    pool: Pool,
    separator: char,
}

impl DovecotLmtp {
    /// From `[delivery.dovecot]`.
    pub fn new(config: &DovecotConfig) -> DovecotLmtp {
        DovecotLmtp {
            pool: Pool::new(Settings {
                addr: config.lmtp.clone(),
                lhlo: config.lhlo_name.clone(),
                connect_timeout: Duration::from_secs(config.connect_timeout_secs),
                reply_timeout: Duration::from_secs(config.reply_timeout_secs),
                max_open: config.max_connections,
                max_idle: config.max_idle_connections,
                idle_limit: Duration::from_secs(config.idle_secs),
            }),
            separator: config.separator(),
        }
    }

    async fn deliver_all(&self, message: &Message<'_>, jobs: &[Job]) -> Vec<Reply> {
        let mut replies = vec![Reply::STORE_UNAVAILABLE; jobs.len()];
        let mut lease: Option<Lease> = None;
        for group in group_by_target(jobs) {
            let group_jobs: Vec<&Job> = group.iter().filter_map(|&i| jobs.get(i)).collect();
            // Filled as Dovecot answers: when the connection fails half way, the
            // recipients it already answered keep their reply (a 250 must stay a 250,
            // or Postfix delivers to them twice); the rest stay 4xx.
            let mut group_replies = vec![Reply::STORE_UNAVAILABLE; group_jobs.len()];
            let result = self
                .group(&mut lease, message, &group_jobs, &mut group_replies)
                .await;
            for (&i, reply) in group.iter().zip(group_replies) {
                if let Some(slot) = replies.get_mut(i) {
                    *slot = reply;
                }
            }
            if let Err(failure) = result {
                let err = &failure.error;
                if failure.connecting {
                    tracing::warn!(backend = "dovecot", addr = %self.pool.addr(), error = %err, "cannot reach the store");
                } else {
                    tracing::warn!(backend = "dovecot", error = %err, "delivery transaction failed");
                }
                metrics::backend_error(BackendError::from(err));
                lease = None;
            }
        }
        if let Some(lease) = lease {
            self.pool.checkin(lease);
        }
        replies
    }

    /// One group's transaction on the connection in `lease` (taken from the pool if
    /// there is none). A connection from the pool that turns out dead before DATA is
    /// replaced by a fresh one and the transaction tried again; after DATA never.
    /// On success the connection is left in `lease` for the next group.
    async fn group(
        &self,
        lease: &mut Option<Lease>,
        message: &Message<'_>,
        jobs: &[&Job],
        out: &mut [Reply],
    ) -> Result<(), Failure> {
        let mut current = match lease.take() {
            Some(current) => current,
            None => self.pool.checkout().await.map_err(Failure::connecting)?,
        };
        let reused = current.reused;
        match self.transaction(&mut current, message, jobs, out).await {
            Ok(()) => {}
            Err(failure) if reused && !failure.data_sent => {
                tracing::debug!(backend = "dovecot", error = %failure.error, "pooled connection is gone; trying a new one");
                out.fill(Reply::STORE_UNAVAILABLE);
                current = self.pool.fresh().await.map_err(Failure::connecting)?;
                self.transaction(&mut current, message, jobs, out).await?;
            }
            Err(failure) => return Err(failure),
        }
        current.reused = false;
        *lease = Some(current);
        Ok(())
    }

    /// One MAIL/RCPT*/DATA transaction for jobs sharing a target; each job's final
    /// reply goes into `out` (one slot per job) as soon as Dovecot has given it. On a
    /// connection from the pool, an RSET goes first, in the same pipelined write
    /// (RFC 2920), so it costs no round trip.
    async fn transaction(
        &self,
        lease: &mut Lease,
        message: &Message<'_>,
        jobs: &[&Job],
        out: &mut [Reply],
    ) -> Result<(), Failure> {
        let Some(first) = jobs.first() else {
            return Ok(());
        };
        let reset = lease.reused;
        let c = &mut lease.client;
        let env = message.envelope;
        if !c.smtputf8 && !envelope_is_ascii(&env.mail_from, jobs) {
            // Dovecot 2.3 would store such a sender as `Return-Path: <>`; Postfix
            // bounces the same way when it talks to the store directly.
            out.fill(Reply::UTF8_ADDRESS_UNSUPPORTED);
            return Ok(());
        }
        let answered = envelope(c, env, jobs, reset)
            .await
            .map_err(Failure::before_data)?;
        let rcpt_replies = match answered {
            Answered::Rcpts(replies) => replies,
            Answered::MailRefused(mail) => {
                out.fill(mail);
                return Ok(());
            }
        };
        for (slot, rcpt) in out.iter_mut().zip(&rcpt_replies) {
            if !rcpt.is_success() {
                *slot = rcpt.clone();
            }
        }
        if !rcpt_replies.iter().any(Reply::is_success) {
            reset_transaction(c).await.map_err(Failure::before_data)?;
            return Ok(());
        }
        self.data(c, message, &first.target)
            .await
            .map_err(Failure::in_data)?;
        for (slot, rcpt) in out.iter_mut().zip(&rcpt_replies) {
            if rcpt.is_success() {
                *slot = c.read_reply().await.map_err(Failure::in_data)?;
            }
        }
        Ok(())
    }

    async fn data(
        &self,
        c: &mut Client,
        message: &Message<'_>,
        target: &Target,
    ) -> Result<(), ClientError> {
        c.send(b"DATA\r\n").await?;
        let go = c.read_reply().await?;
        if go.code != 354 {
            return Err(ClientError::Protocol(format!("DATA answered {go}")));
        }
        let mut stuffer = DotStuffer::default();
        let mut filter = HeaderFilter::new();
        let mut out = Vec::with_capacity(CHUNK + 1024);
        stuffer.push(&route_headers(target, self.separator), &mut out);
        let mut reader = message.body.reader().await?;
        let mut buf = vec![0u8; CHUNK];
        let mut filtered = Vec::with_capacity(CHUNK);
        loop {
            let n = reader.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            filtered.clear();
            filter.push(buf.get(..n).unwrap_or_default(), &mut filtered);
            stuffer.push(&filtered, &mut out);
            c.send(&out).await?;
            out.clear();
        }
        filtered.clear();
        filter.finish(&mut filtered);
        stuffer.push(&filtered, &mut out);
        stuffer.finish(&mut out);
        c.send(&out).await
    }
}

/// What the store said to the envelope.
enum Answered {
    /// MAIL accepted: one reply per RCPT.
    Rcpts(Vec<Reply>),
    /// MAIL refused with this reply (the transaction was reset).
    MailRefused(Reply),
}

/// Sends (RSET,) MAIL and every RCPT in one write and reads their replies.
async fn envelope(
    c: &mut Client,
    env: &crate::lmtp::Envelope,
    jobs: &[&Job],
    reset: bool,
) -> Result<Answered, ClientError> {
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
    for job in jobs {
        cmd.push_str(&format!("RCPT TO:<{}>\r\n", job.rcpt));
    }
    c.send(cmd.as_bytes()).await?;
    if reset {
        let rset = c.read_reply().await?;
        if !rset.is_success() {
            return Err(ClientError::Protocol(format!("RSET answered {rset}")));
        }
    }
    let mail = c.read_reply().await?;
    let mut rcpt_replies = Vec::with_capacity(jobs.len());
    for _ in jobs {
        rcpt_replies.push(c.read_reply().await?);
    }
    if mail.is_success() {
        Ok(Answered::Rcpts(rcpt_replies))
    } else {
        reset_transaction(c).await?;
        Ok(Answered::MailRefused(mail))
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
fn envelope_is_ascii(mail_from: &str, jobs: &[&Job]) -> bool {
    mail_from.is_ascii() && jobs.iter().all(|j| j.rcpt.is_ascii())
}

/// Job indexes grouped by identical target, groups in order of first appearance.
fn group_by_target(jobs: &[Job]) -> Vec<Vec<usize>> {
    let mut groups: Vec<(&Target, Vec<usize>)> = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        match groups.iter_mut().find(|(t, _)| **t == job.target) {
            Some((_, members)) => members.push(i),
            None => groups.push((&job.target, vec![i])),
        }
    }
    groups.into_iter().map(|(_, members)| members).collect()
}

impl Backend for DovecotLmtp {
    fn deliver<'a>(
        &'a self,
        message: &'a Message<'a>,
        jobs: &'a [Job],
    ) -> BoxFuture<'a, Vec<Reply>> {
        Box::pin(self.deliver_all(message, jobs))
    }
}
