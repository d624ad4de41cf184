//! The I/O side of one LMTP session: reads bytes into the sans-IO [`Session`], hands
//! message bodies to the DATA phase ([`super::data_phase`]: cut-through to the store,
//! or spooled) and writes replies. Replies are
//! buffered while pipelined input is pending and flushed before waiting (RFC 2920).
//!
//! Bounded: one read buffer, bodies held in memory only up to the spool threshold, an idle
//! timeout that ends the session with 421, and a shutdown signal that ends idle
//! sessions with 421 while a transaction in flight is allowed to finish.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::data_phase::DataPhase;
use super::{Envelope, Event, Limits, Reply, Session};
use crate::pipeline::{After, Pipeline};

/// Size of the read buffer.
const READ_CHUNK: usize = 64 * 1024;
/// After a transaction that was running at a stop: how long its client has to send
/// QUIT (and get 221) before the session ends with 421.
const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// What every connection shares.
pub struct ConnectionContext {
    /// Message processing.
    pub pipeline: Arc<Pipeline>,
    /// Session limits.
    pub limits: Limits,
    /// LHLO name.
    pub hostname: String,
    /// Silence allowed before 421.
    pub idle_timeout: Duration,
    /// Spool threshold in bytes.
    pub spool_threshold: usize,
    /// Spool directory.
    pub spool_dir: PathBuf,
}

/// Runs one session to its end. I/O errors end it quietly (the peer went away).
pub async fn serve<S>(stream: S, ctx: Arc<ConnectionContext>, shutdown: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut conn = Connection {
        stream,
        session: Session::new(ctx.hostname.clone(), ctx.limits.clone()),
        shutdown,
        pending: Vec::new(),
        out: Vec::new(),
        data: DataPhase::new(ctx.spool_threshold),
        busy_at_stop: false,
        after: None,
        ctx,
    };
    if let Err(err) = conn.run().await {
        tracing::debug!(error = %err, "session ended by i/o error");
    }
}

struct Connection<S> {
    stream: S,
    session: Session,
    ctx: Arc<ConnectionContext>,
    shutdown: watch::Receiver<bool>,
    /// Received bytes the session has not consumed yet.
    pending: Vec<u8>,
    /// Replies not yet written.
    out: Vec<u8>,
    /// Where the body of the DATA being received goes.
    data: DataPhase,
    /// A transaction was still running when the stop came.
    busy_at_stop: bool,
    /// What follows the last message's replies (log lines, pushes): dropped, and so
    /// done, once those replies are written (or the session ends).
    after: Option<After>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    async fn run(&mut self) -> std::io::Result<()> {
        Reply::READY.write_to(&mut self.out);
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            self.step().await?;
            if self.session.is_closed() {
                return self.flush().await;
            }
            if !self.pending.is_empty() {
                continue;
            }
            self.flush().await?;
            let mut events = Vec::new();
            if *self.shutdown.borrow() && !self.session.in_transaction() {
                if self.busy_at_stop && !self.session.is_draining() {
                    // Its client may be about to QUIT: that gets 221, anything else 421.
                    self.session.drain();
                    if let Ok(Ok(n @ 1..)) =
                        tokio::time::timeout(DRAIN_WAIT, self.stream.read(&mut buf)).await
                    {
                        let read = buf.get(..n).unwrap_or_default();
                        self.pending.extend_from_slice(read);
                        continue;
                    }
                }
                self.session.close_with(Reply::SHUTTING_DOWN, &mut events);
                self.handle(events).await?;
                continue;
            }
            match self.read(&mut buf).await {
                Read::Data(n) => self
                    .pending
                    .extend_from_slice(buf.get(..n).unwrap_or_default()),
                Read::Eof => return Ok(()),
                Read::Error(err) => return Err(err),
                Read::Idle => self.session.close_with(Reply::IDLE_TIMEOUT, &mut events),
                Read::StoreDeadline => self.data.expire(),
                Read::Shutdown => {}
            }
            self.handle(events).await?;
        }
    }

    async fn read(&mut self, buf: &mut [u8]) -> Read {
        let in_tx = self.session.in_transaction();
        let store_deadline = self.data.store_deadline();
        tokio::select! {
            r = tokio::time::timeout(self.ctx.idle_timeout, self.stream.read(buf)) => match r {
                Err(_) => Read::Idle,
                Ok(Ok(0)) => Read::Eof,
                Ok(Ok(n)) => Read::Data(n),
                Ok(Err(err)) => Read::Error(err),
            },
            _ = self.shutdown.changed(), if !in_tx && !*self.shutdown.borrow() => Read::Shutdown,
            () = sleep_until(store_deadline), if store_deadline.is_some() => Read::StoreDeadline,
        }
    }

    /// Feeds pending input to the session and acts on what it says.
    async fn step(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() || self.session.awaiting_delivery() {
            return Ok(());
        }
        let mut events = Vec::new();
        let used = self.session.ingest(&self.pending, &mut events);
        self.pending.drain(..used);
        self.handle(events).await
    }

    async fn handle(&mut self, events: Vec<Event>) -> std::io::Result<()> {
        for event in events {
            match event {
                Event::Reply(reply) => reply.write_to(&mut self.out),
                Event::Replies(lines) => write_multiline(&lines, &mut self.out),
                Event::BeginData => {
                    // The envelope goes to the store before the 354 is flushed to the
                    // client: the store's lookup then overlaps the client's turnaround.
                    let envelope = self.session.envelope();
                    let (pipeline, dir) = (&self.ctx.pipeline, &self.ctx.spool_dir);
                    self.data.begin(pipeline, envelope, dir).await;
                }
                // Too big, or the session ends (idle, shutdown) in the middle of DATA:
                // an open store transaction is dropped without its end mark.
                Event::AbortData | Event::Close => self.data.abort(),
                Event::EndOfData(envelope) => self.deliver(envelope).await?,
            }
        }
        self.pass_body().await;
        Ok(())
    }

    /// Hands the body bytes the session has to the DATA phase.
    async fn pass_body(&mut self) {
        let body = self.session.take_body();
        if body.is_empty() {
            return;
        }
        let (pipeline, dir) = (&self.ctx.pipeline, &self.ctx.spool_dir);
        self.data
            .write(&body, pipeline, self.session.envelope(), dir)
            .await;
    }

    async fn deliver(&mut self, envelope: Envelope) -> std::io::Result<()> {
        // The session handed its envelope out with the end of DATA.
        let body = self.session.take_body();
        let ctx = Arc::clone(&self.ctx);
        let (pipeline, dir) = (&ctx.pipeline, &ctx.spool_dir);
        if !body.is_empty() {
            self.data.write(&body, pipeline, Some(&envelope), dir).await;
        }
        self.flush().await?;
        let (replies, after) = self.data.finish(pipeline, &envelope, dir).await;
        // The flush above did the previous message's `After`; this one waits for the
        // flush of its own replies.
        self.after = Some(after);
        self.busy_at_stop |= *self.shutdown.borrow();
        let mut events = Vec::new();
        self.session.finish_data(replies, &mut events);
        for event in events {
            if let Event::Reply(reply) = event {
                reply.write_to(&mut self.out);
            }
        }
        Ok(())
    }

    /// Writes the pending replies, then does what follows them.
    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await?;
            self.out.clear();
        }
        self.after = None;
        Ok(())
    }
}

enum Read {
    Data(usize),
    Eof,
    Error(std::io::Error),
    Idle,
    /// The open store transaction's deadline passed while waiting for the client.
    StoreDeadline,
    Shutdown,
}

/// Sleeps until `at`; forever without one (the `select!` branch is off then anyway).
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// `250-first` ... `250 last` (RFC 5321 §4.2.1).
fn write_multiline(lines: &[Reply], out: &mut Vec<u8>) {
    let last = lines.len().saturating_sub(1);
    for (i, line) in lines.iter().enumerate() {
        let sep = if i == last { ' ' } else { '-' };
        out.extend_from_slice(format!("{}{sep}{}\r\n", line.code, line.text).as_bytes());
    }
}
