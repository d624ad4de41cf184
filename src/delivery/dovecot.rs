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
use super::route::route_headers;
use super::stream::{DotStuffer, HeaderFilter, Transform};
use super::{Backend, BoxFuture, Job, Message};
use crate::config::DovecotConfig;
use crate::lmtp::Reply;
use crate::metrics::{self, BackendError};
use crate::policy::Target;

/// Bytes read from the spool per step while streaming DATA.
const CHUNK: usize = 64 * 1024;

/// Delivers over LMTP to Dovecot.
pub struct DovecotLmtp {
    addr: String,
    lhlo: String,
    separator: char,
    connect_timeout: Duration,
    reply_timeout: Duration,
}

impl DovecotLmtp {
    /// From `[delivery.dovecot]`.
    pub fn new(config: &DovecotConfig) -> DovecotLmtp {
        DovecotLmtp {
            addr: config.lmtp.clone(),
            lhlo: config.lhlo_name.clone(),
            separator: config.separator(),
            connect_timeout: Duration::from_secs(config.connect_timeout_secs),
            reply_timeout: Duration::from_secs(config.reply_timeout_secs),
        }
    }

    async fn connect(&self) -> Result<Client, ClientError> {
        Client::connect(
            &self.addr,
            &self.lhlo,
            self.connect_timeout,
            self.reply_timeout,
        )
        .await
    }

    async fn deliver_all(&self, message: &Message<'_>, jobs: &[Job]) -> Vec<Reply> {
        let mut replies = vec![Reply::STORE_UNAVAILABLE; jobs.len()];
        let mut client: Option<Client> = None;
        for group in group_by_target(jobs) {
            if client.is_none() {
                match self.connect().await {
                    Ok(c) => client = Some(c),
                    Err(err) => {
                        tracing::warn!(backend = "dovecot", addr = %self.addr, error = %err, "cannot reach the store");
                        metrics::backend_error(BackendError::from(&err));
                        return replies;
                    }
                }
            }
            let Some(c) = client.as_mut() else {
                return replies;
            };
            let group_jobs: Vec<&Job> = group.iter().filter_map(|&i| jobs.get(i)).collect();
            // Filled as Dovecot answers: when the connection fails half way, the
            // recipients it already answered keep their reply (a 250 must stay a 250,
            // or Postfix delivers to them twice); the rest stay 4xx.
            let mut group_replies = vec![Reply::STORE_UNAVAILABLE; group_jobs.len()];
            let result = self
                .transaction(c, message, &group_jobs, &mut group_replies)
                .await;
            for (&i, reply) in group.iter().zip(group_replies) {
                if let Some(slot) = replies.get_mut(i) {
                    *slot = reply;
                }
            }
            if let Err(err) = result {
                tracing::warn!(backend = "dovecot", error = %err, "delivery transaction failed");
                metrics::backend_error(BackendError::from(&err));
                client = None;
            }
        }
        replies
    }

    /// One MAIL/RCPT*/DATA transaction for jobs sharing a target; each job's final
    /// reply goes into `out` (one slot per job) as soon as Dovecot has given it.
    async fn transaction(
        &self,
        c: &mut Client,
        message: &Message<'_>,
        jobs: &[&Job],
        out: &mut [Reply],
    ) -> Result<(), ClientError> {
        let Some(first) = jobs.first() else {
            return Ok(());
        };
        let env = message.envelope;
        if !c.smtputf8 && !envelope_is_ascii(&env.mail_from, jobs) {
            // Dovecot 2.3 would store such a sender as `Return-Path: <>`; Postfix
            // bounces the same way when it talks to the store directly.
            out.fill(Reply::UTF8_ADDRESS_UNSUPPORTED);
            return Ok(());
        }
        let mut cmd = format!("MAIL FROM:<{}>", env.mail_from);
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
        let mail = c.read_reply().await?;
        let mut rcpt_replies = Vec::with_capacity(jobs.len());
        for _ in jobs {
            rcpt_replies.push(c.read_reply().await?);
        }
        if !mail.is_success() {
            out.fill(mail);
            c.send(b"RSET\r\n").await?;
            c.read_reply().await?;
            return Ok(());
        }
        for (slot, rcpt) in out.iter_mut().zip(&rcpt_replies) {
            if !rcpt.is_success() {
                *slot = rcpt.clone();
            }
        }
        if !rcpt_replies.iter().any(Reply::is_success) {
            c.send(b"RSET\r\n").await?;
            c.read_reply().await?;
            return Ok(());
        }
        self.data(c, message, &first.target).await?;
        for (slot, rcpt) in out.iter_mut().zip(&rcpt_replies) {
            if rcpt.is_success() {
                *slot = c.read_reply().await?;
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
