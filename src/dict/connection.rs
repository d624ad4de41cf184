//! The I/O side of one dict proxy connection: reads bytes into the sans-IO
//! [`Session`], runs its lookups, iterations and commits against [`Attributes`] on the
//! blocking pool, and writes the replies in command order.
//!
//! Bounded: one read buffer, replies written in batches of at most about
//! [`WRITE_CHUNK`] bytes, the session's limits, an idle timeout that closes the
//! connection (Dovecot reconnects when it needs to), and a shutdown signal that closes
//! it at once unless a transaction is open, which then gets the server's grace period.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::attributes::Attributes;
use super::protocol::Reply;
use super::session::{Event, Limits, Session};
use crate::metrics::{DictCommit, Recorder};
use crate::server::Handler;

/// Size of the read buffer.
const READ_CHUNK: usize = 16 * 1024;
/// Replies are written once this many bytes are pending: one read can hold thousands
/// of lookups, each of whose answers may be as long as a line.
const WRITE_CHUNK: usize = 64 * 1024;

/// What every dict connection shares.
pub struct DictContext {
    /// The attribute dictionary.
    pub attributes: Arc<Attributes>,
    /// Session limits.
    pub limits: Limits,
    /// Silence allowed before the connection is closed.
    pub idle_timeout: Duration,
}

impl Handler for DictContext {
    const PROTOCOL: &'static str = "dict";
    const METRICS: crate::metrics::Proto = crate::metrics::Proto::Dict;

    fn recorder(&self) -> &Recorder {
        self.attributes.recorder()
    }

    async fn serve<S>(self: Arc<Self>, stream: S, shutdown: watch::Receiver<bool>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        serve(stream, self, shutdown).await;
    }
}

/// Runs one connection to its end. I/O errors end it quietly (the peer went away).
pub async fn serve<S>(mut stream: S, ctx: Arc<DictContext>, mut shutdown: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut session = Session::new(ctx.limits.clone());
    if let Err(err) = run(&mut stream, &mut session, &ctx, &mut shutdown).await {
        tracing::debug!(error = %err, "dict connection ended by i/o error");
    }
}

async fn run<S>(
    stream: &mut S,
    session: &mut Session,
    ctx: &DictContext,
    shutdown: &mut watch::Receiver<bool>,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; READ_CHUNK];
    let mut out = Vec::new();
    loop {
        let mut events = Vec::new();
        if *shutdown.borrow() && !session.in_transaction() {
            session.close(&mut events);
        } else {
            let in_tx = session.in_transaction();
            tokio::select! {
                read = tokio::time::timeout(ctx.idle_timeout, stream.read(&mut buf)) => match read {
                    Err(_) => {
                        tracing::debug!("dict connection idle; closing");
                        session.close(&mut events);
                    }
                    Ok(Ok(0)) => return Ok(()),
                    Ok(Ok(n)) => session.ingest(buf.get(..n).unwrap_or_default(), &mut events),
                    Ok(Err(err)) => return Err(err),
                },
                _ = shutdown.changed(), if !in_tx && !*shutdown.borrow() => continue,
            }
        }
        for event in events {
            answer(event, &ctx.attributes, &mut out).await;
            if out.len() >= WRITE_CHUNK {
                send(stream, &mut out).await?;
            }
        }
        send(stream, &mut out).await?;
        if session.is_closed() {
            return Ok(());
        }
    }
}

/// Writes and flushes what is pending in `out`, leaving it empty.
async fn send<S: AsyncWrite + Unpin>(stream: &mut S, out: &mut Vec<u8>) -> std::io::Result<()> {
    if !out.is_empty() {
        stream.write_all(out).await?;
        stream.flush().await?;
        out.clear();
    }
    Ok(())
}

/// Carries out one session event, appending the reply bytes.
async fn answer(event: Event, attributes: &Arc<Attributes>, out: &mut Vec<u8>) {
    let attrs = attributes.clone();
    let replies = match event {
        Event::Reply(reply) => {
            // A commit the session failed by itself broke a rule or limit.
            if matches!(reply, Reply::CommitFailed { .. }) {
                attributes.recorder().dict_commit(DictCommit::Refused);
            }
            vec![reply]
        }
        Event::Close => Vec::new(),
        Event::Lookup { username, key } => {
            blocking(move || vec![attrs.lookup(&username, &key)], Reply::Failed).await
        }
        Event::Iterate {
            username,
            path,
            flags,
            limit,
        } => {
            blocking(
                move || attrs.iterate(&username, &path, flags, limit),
                Reply::Failed,
            )
            .await
        }
        Event::Commit {
            id,
            async_,
            username,
            changes,
        } => {
            let recorder = attributes.recorder().clone();
            let failed = move |error| {
                recorder.dict_commit(DictCommit::Failed);
                Reply::CommitFailed {
                    id: Some(id),
                    async_,
                    error,
                }
            };
            blocking(
                move || vec![attrs.commit(id, async_, &username, &changes)],
                failed,
            )
            .await
        }
    };
    for reply in replies {
        reply.encode(out);
    }
}

/// Runs store work on the blocking pool; a panic there becomes the `failed` reply.
async fn blocking(
    work: impl FnOnce() -> Vec<Reply> + Send + 'static,
    failed: impl FnOnce(String) -> Reply,
) -> Vec<Reply> {
    match tokio::task::spawn_blocking(work).await {
        Ok(replies) => replies,
        Err(err) => {
            tracing::error!(error = %err, "dict store task failed");
            vec![failed("coid internal error".into())]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CoiConfig, UsersConfig};
    use crate::store::temp_store;
    use tokio::io::{AsyncBufReadExt, BufReader, DuplexStream};

    struct Running {
        client: BufReader<DuplexStream>,
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
        _dir: tempfile::TempDir,
    }

    fn start() -> Running {
        let (dir, store) = temp_store();
        let ctx = Arc::new(DictContext {
            attributes: Arc::new(Attributes::new(
                store,
                &UsersConfig::default(),
                &CoiConfig::default(),
            )),
            limits: Limits {
                max_line: 1024,
                max_transactions: 4,
                max_changes: 10,
                max_pending_bytes: 4096,
                max_rows: 10,
            },
            idle_timeout: Duration::from_secs(30),
        });
        let (client, server) = tokio::io::duplex(4096);
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(serve(server, ctx, shutdown));
        Running {
            client: BufReader::new(client),
            stop,
            task,
            _dir: dir,
        }
    }

    impl Running {
        async fn send(&mut self, bytes: &[u8]) {
            self.client.get_mut().write_all(bytes).await.expect("write");
        }

        async fn line(&mut self) -> String {
            let mut line = String::new();
            self.client.read_line(&mut line).await.expect("read");
            line
        }
    }

    #[tokio::test]
    async fn commits_then_closes_an_idle_connection_on_shutdown() {
        let mut c = start();
        c.send(b"H3\t2\t0\t\tcoid\nB1\ta@x\nS1\tpriv/g/k\tv\nC1\nLpriv/g/k\ta@x\n")
            .await;
        assert_eq!(c.line().await, "O1\n");
        assert_eq!(c.line().await, "Ov\n");
        let _ = c.stop.send(true);
        (&mut c.task).await.expect("connection task ends");
        assert_eq!(c.line().await, "", "closed");
    }

    /// Many lookups in one read: their answers go out in batches, all of them, in order.
    #[tokio::test]
    async fn many_lookups_in_one_read_are_all_answered_in_order() {
        let mut c = start();
        let value = "v".repeat(900);
        c.send(format!("H3\t2\t0\t\tcoid\nB1\ta@x\nS1\tpriv/g/k\t{value}\nC1\n").as_bytes())
            .await;
        assert_eq!(c.line().await, "O1\n");
        // 3200 bytes fit the duplex buffer at once; the answers are about 90 KB.
        c.send("Lpriv/g/k\ta@x\nLpriv/g/none\ta@x\n".repeat(100).as_bytes())
            .await;
        for _ in 0..100 {
            assert_eq!(c.line().await, format!("O{value}\n"));
            assert_eq!(c.line().await, "N\n");
        }
    }

    #[tokio::test]
    async fn an_open_transaction_may_finish_after_shutdown() {
        let mut c = start();
        // The lookup's answer shows the transaction is open on the server side.
        c.send(b"H3\t2\t0\t\tcoid\nB1\ta@x\nS1\tpriv/g/k\tv\nLpriv/g/k\ta@x\n")
            .await;
        assert_eq!(c.line().await, "N\n");
        let _ = c.stop.send(true);
        c.send(b"C1\n").await;
        assert_eq!(c.line().await, "O1\n");
        (&mut c.task).await.expect("then it ends");
    }
}
