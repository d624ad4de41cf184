//! Listeners and the accept loop: a connection permit is taken before `accept()`, so an
//! overloaded coid stops accepting and the kernel backlog absorbs the load; each
//! session runs in its own task with a tracing span. On shutdown the listeners close,
//! idle sessions end (LMTP: with 421) and transactions in flight get a grace period to
//! finish. The same loop serves LMTP and the dict proxy, through [`Handler`].
//!
//! The handler's context comes through a `watch` channel: a reload (SIGHUP) sends a
//! new one, each accepted session takes the context current at accept time and keeps
//! it to its end, so sessions in flight finish on the config they started with.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Semaphore, watch};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::lmtp::connection::{self, ConnectionContext};

/// Serves one accepted connection of some protocol.
pub trait Handler: Send + Sync + 'static {
    /// The protocol's name in each session's tracing span.
    const PROTOCOL: &'static str;
    /// The protocol's label in the session metrics.
    const METRICS: crate::metrics::Proto;

    /// Where sessions are counted.
    fn recorder(&self) -> &crate::metrics::Recorder;

    /// Runs one connection to its end; ends idle sessions when `shutdown` turns true.
    fn serve<S>(
        self: Arc<Self>,
        stream: S,
        shutdown: watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = ()> + Send
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static;
}

impl Handler for ConnectionContext {
    const PROTOCOL: &'static str = "lmtp";
    const METRICS: crate::metrics::Proto = crate::metrics::Proto::Lmtp;

    fn recorder(&self) -> &crate::metrics::Recorder {
        self.pipeline.recorder()
    }

    async fn serve<S>(self: Arc<Self>, stream: S, shutdown: watch::Receiver<bool>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        connection::serve(stream, self, shutdown).await;
    }
}

/// A bound listening socket.
pub enum Listener {
    /// TCP.
    Tcp(TcpListener),
    /// Unix domain socket, with its path if coid bound it (removed at shutdown).
    Unix(UnixListener, Option<PathBuf>),
}

impl Listener {
    /// Binds a TCP listener.
    ///
    /// # Errors
    /// The address is in use or not ours.
    pub async fn tcp(addr: &str) -> std::io::Result<Listener> {
        Ok(Listener::Tcp(TcpListener::bind(addr).await?))
    }

    /// Takes over a TCP listener bound before the runtime started.
    ///
    /// # Errors
    /// It cannot be made non-blocking or registered with the runtime.
    pub fn from_std_tcp(listener: std::net::TcpListener) -> std::io::Result<Listener> {
        listener.set_nonblocking(true)?;
        Ok(Listener::Tcp(TcpListener::from_std(listener)?))
    }

    /// Takes over a unix listener bound before the runtime started; `path`, if given,
    /// is removed at shutdown (sockets systemd passed are systemd's to remove).
    ///
    /// # Errors
    /// It cannot be made non-blocking or registered with the runtime.
    pub fn from_std_unix(
        listener: std::os::unix::net::UnixListener,
        path: Option<PathBuf>,
    ) -> std::io::Result<Listener> {
        listener.set_nonblocking(true)?;
        let listener = UnixListener::from_std(listener)?;
        Ok(Listener::Unix(listener, path))
    }

    /// The TCP address, for tests and logs.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix(..) => None,
        }
    }
}

/// How the server stops.
#[derive(Debug, Clone)]
pub struct ShutdownPolicy {
    /// Time transactions in flight get to finish after the stop signal.
    pub grace: Duration,
}

static SESSION_IDS: AtomicU64 = AtomicU64::new(1);

/// Serves `listeners` until `stop` resolves, then drains within the grace period.
/// Each session gets the context `ctx` holds when it is accepted.
pub async fn run<H: Handler>(
    listeners: Vec<Listener>,
    ctx: watch::Receiver<Arc<H>>,
    max_connections: usize,
    stop: impl std::future::Future<Output = ()>,
    policy: ShutdownPolicy,
) {
    let permits = Arc::new(Semaphore::new(max_connections));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let sessions = TaskTracker::new();
    let mut acceptors = Vec::new();
    let mut paths = Vec::new();
    for listener in listeners {
        if let Listener::Unix(_, Some(path)) = &listener {
            paths.push(path.clone());
        }
        let accept = Acceptor {
            ctx: ctx.clone(),
            permits: permits.clone(),
            shutdown: shutdown_rx.clone(),
            sessions: sessions.clone(),
        };
        acceptors.push(tokio::spawn(accept.run(listener)));
    }
    stop.await;
    // coid serve says "stop requested" once; each listener's own step is detail.
    tracing::debug!(proto = H::PROTOCOL, "shutting down: no new sessions");
    let _ = shutdown_tx.send(true);
    for acceptor in acceptors {
        let _ = acceptor.await;
    }
    for path in paths {
        let _ = std::fs::remove_file(path);
    }
    sessions.close();
    if tokio::time::timeout(policy.grace, sessions.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            left = sessions.len(),
            "grace period over; cutting sessions off"
        );
    }
}

/// One listener's accept loop.
struct Acceptor<H> {
    ctx: watch::Receiver<Arc<H>>,
    permits: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
    sessions: TaskTracker,
}

impl<H: Handler> Acceptor<H> {
    async fn run(mut self, listener: Listener) {
        loop {
            let permit = tokio::select! {
                p = self.permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                _ = self.shutdown.changed() => return,
            };
            let accepted = tokio::select! {
                a = accept(&listener) => a,
                _ = self.shutdown.changed() => return,
            };
            match accepted {
                Ok((stream, peer)) => self.spawn(stream, peer, permit),
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn spawn(&self, stream: Stream, peer: String, permit: tokio::sync::OwnedSemaphorePermit) {
        let id = SESSION_IDS.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!("session", proto = H::PROTOCOL, id, peer = %peer);
        let ctx = Arc::clone(&self.ctx.borrow());
        let rx = self.shutdown.clone();
        self.sessions.spawn(
            async move {
                let _counted = ctx.recorder().session_started(H::METRICS);
                tracing::debug!("session start");
                match stream {
                    Stream::Tcp(s) => ctx.serve(s, rx).await,
                    Stream::Unix(s) => ctx.serve(s, rx).await,
                }
                drop(permit);
                tracing::debug!("session end");
            }
            .instrument(span),
        );
    }
}

async fn accept(listener: &Listener) -> std::io::Result<(Stream, String)> {
    match listener {
        Listener::Tcp(l) => l
            .accept()
            .await
            .map(|(s, peer)| (Stream::Tcp(s), peer.to_string())),
        Listener::Unix(l, _) => l
            .accept()
            .await
            .map(|(s, _)| (Stream::Unix(s), "unix".to_owned())),
    }
}

enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}
