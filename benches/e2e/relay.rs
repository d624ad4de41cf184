//! A relay that does nothing: it copies bytes both ways between each LMTP client and
//! the store, on a runtime shaped like coid's (multi-thread, one thread). No protocol,
//! no parsing, no state: what any process between the client and the store costs at
//! the least, one more hop for every command and reply. Its ratio against the direct
//! path is the floor to read coid's ratios against (issue 10): coid answers MAIL and
//! RCPT itself and sends the envelope in one write, so it makes fewer hops, but does
//! all of its own work on top.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::thread::JoinHandle;

use tokio::io::{AsyncRead, AsyncWrite, copy_bidirectional};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::oneshot;

use crate::common::{LmtpTarget, make_run_dir};

/// A running relay to one store; stops when dropped.
pub struct Relay {
    front: LmtpTarget,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Relay {
    /// Listens where the store's kind of address says (a socket in a temporary
    /// directory, or a port on 127.0.0.1) and relays every connection to `store`.
    pub fn start(store: LmtpTarget) -> Relay {
        let dir = make_run_dir("coid-bench-relay-");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("the relay's runtime");
        let listener = runtime.block_on(Listener::bind(store, &dir));
        let front = listener.target();
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                tokio::select! {
                    () = listener.serve() => {}
                    _ = stopped => {}
                }
            });
        });
        Relay {
            front,
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// Where the client delivers.
    pub fn target(&self) -> LmtpTarget {
        self.front.clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Where the relay listens, and the store it relays to: a socket to a socket, or a
/// port to a port, as the store is reached.
enum Listener {
    Unix {
        listener: UnixListener,
        front: PathBuf,
        store: PathBuf,
    },
    Tcp {
        listener: TcpListener,
        store: SocketAddr,
    },
}

impl Listener {
    async fn bind(store: LmtpTarget, dir: &tempfile::TempDir) -> Listener {
        match store {
            LmtpTarget::Unix(store) => {
                let front = dir.path().join("relay.sock");
                let listener = UnixListener::bind(&front).expect("the relay's socket");
                // Postfix's lmtp client runs as its own user.
                std::fs::set_permissions(&front, std::fs::Permissions::from_mode(0o666))
                    .expect("the relay's socket mode");
                Listener::Unix {
                    listener,
                    front,
                    store,
                }
            }
            LmtpTarget::Tcp(store) => {
                let listener = TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("the relay's port");
                Listener::Tcp { listener, store }
            }
        }
    }

    fn target(&self) -> LmtpTarget {
        match self {
            Listener::Unix { front, .. } => LmtpTarget::Unix(front.clone()),
            Listener::Tcp { listener, .. } => {
                LmtpTarget::Tcp(listener.local_addr().expect("the relay's address"))
            }
        }
    }

    /// Accepts until the runtime stops; a connection the store refuses is closed, and
    /// the client in front (which must not fail) then fails the run.
    async fn serve(self) {
        match self {
            Listener::Unix {
                listener, store, ..
            } => loop {
                let (client, _) = listener.accept().await.expect("relay accept");
                let store = store.clone();
                tokio::spawn(async move {
                    if let Ok(upstream) = UnixStream::connect(&store).await {
                        pipe(client, upstream).await;
                    }
                });
            },
            Listener::Tcp { listener, store } => loop {
                let (client, _) = listener.accept().await.expect("relay accept");
                tokio::spawn(async move {
                    if let Ok(upstream) = TcpStream::connect(store).await {
                        // As coid's own connection to the store; the client side too,
                        // so a relayed reply never waits for an ACK.
                        let _ = (client.set_nodelay(true), upstream.set_nodelay(true));
                        pipe(client, upstream).await;
                    }
                });
            },
        }
    }
}

/// Copies both ways until either side closes.
async fn pipe(
    mut client: impl AsyncRead + AsyncWrite + Unpin,
    mut upstream: impl AsyncRead + AsyncWrite + Unpin,
) {
    let _ = copy_bidirectional(&mut client, &mut upstream).await;
}
