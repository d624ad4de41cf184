//! A relay that does nothing: it copies bytes both ways between each LMTP client and
//! the store, on a runtime shaped like coid's (multi-thread, one thread). No protocol,
//! no parsing, no state: what any process between the client and the store costs at
//! the least, one more hop for every command and reply. Its ratio against the direct
//! path is the floor to read coid's ratios against (issue 10): coid answers MAIL and
//! RCPT itself and sends the envelope in one write, so it makes fewer hops, but does
//! all of its own work on top.

use std::os::unix::fs::PermissionsExt;
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
        let listener = runtime.block_on(Listener::bind(&store, &dir));
        let front = listener.target();
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                tokio::select! {
                    () = listener.serve(store) => {}
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

enum Listener {
    Unix(UnixListener, std::path::PathBuf),
    Tcp(TcpListener),
}

impl Listener {
    async fn bind(store: &LmtpTarget, dir: &tempfile::TempDir) -> Listener {
        match store {
            LmtpTarget::Unix(_) => {
                let path = dir.path().join("relay.sock");
                let listener = UnixListener::bind(&path).expect("the relay's socket");
                // Postfix's lmtp client runs as its own user.
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))
                    .expect("the relay's socket mode");
                Listener::Unix(listener, path)
            }
            LmtpTarget::Tcp(_) => {
                let listener = TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("the relay's port");
                Listener::Tcp(listener)
            }
        }
    }

    fn target(&self) -> LmtpTarget {
        match self {
            Listener::Unix(_, path) => LmtpTarget::Unix(path.clone()),
            Listener::Tcp(listener) => {
                LmtpTarget::Tcp(listener.local_addr().expect("the relay's address"))
            }
        }
    }

    /// Accepts until the runtime stops; a connection the store refuses is closed, and
    /// the client in front (which must not fail) then fails the run.
    async fn serve(self, store: LmtpTarget) {
        loop {
            match (&self, &store) {
                (Listener::Unix(listener, _), LmtpTarget::Unix(path)) => {
                    let (client, _) = listener.accept().await.expect("relay accept");
                    let path = path.clone();
                    tokio::spawn(async move {
                        if let Ok(upstream) = UnixStream::connect(&path).await {
                            pipe(client, upstream).await;
                        }
                    });
                }
                (Listener::Tcp(listener), LmtpTarget::Tcp(addr)) => {
                    let (client, _) = listener.accept().await.expect("relay accept");
                    client.set_nodelay(true).expect("TCP_NODELAY");
                    let addr = *addr;
                    tokio::spawn(async move {
                        if let Ok(upstream) = TcpStream::connect(addr).await {
                            upstream.set_nodelay(true).expect("TCP_NODELAY");
                            pipe(client, upstream).await;
                        }
                    });
                }
                _ => unreachable!("the listener is of the store's kind"),
            }
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
