//! A fault-injecting LMTP hop for tests: sits between coid and Dovecot and, for its
//! first connections, refuses, stalls, dies in the middle of DATA, or closes when idle;
//! later connections are passed through to Dovecot untouched. It can also cut every
//! connection at once, as a store that restarts does. Only for fault injection: everything else
//! in the tests talks to the real Dovecot.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to do with one connection.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Greet with 421 and close.
    Refuse,
    /// Accept and never answer.
    Stall,
    /// Relay to Dovecot, then cut both sides after a few bytes of message data.
    DieMidData,
    /// Relay to Dovecot, but hold the end of the message data (so Dovecot's answer)
    /// back this long: a slow store.
    SlowData(Duration),
    /// Relay to Dovecot; after the end of the message data, pass on Dovecot's first
    /// per-recipient reply and then cut both sides: a store that dies between its
    /// replies to a multi-recipient transaction.
    CutAfterFirstReply,
    /// Relay to Dovecot, and close both sides once no byte has passed for this long:
    /// a store's idle timeout.
    CloseWhenIdle(Duration),
    /// Relay to Dovecot; after the end of the message data, pass Dovecot's answer on
    /// one byte per this interval: a store that answers every read in time and never
    /// finishes.
    DribbleAfterData(Duration),
}

/// The running hop; stops accepting when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
    /// Every connection's client side, to cut them all at once.
    live: Arc<Mutex<Vec<TcpStream>>>,
    /// Connections the hop closed because they were idle.
    idle_closed: Arc<AtomicUsize>,
    /// Ends of message data passed to the store, and how many of them the store
    /// answered (a reply line came back through the hop after it).
    ends: Arc<Ends>,
}

/// Ends of message data passed to the store, and those the store answered.
#[derive(Default)]
struct Ends {
    /// Ends of data the hop has read from coid (passed on or not).
    read: AtomicUsize,
    passed: AtomicUsize,
    answered: AtomicUsize,
    /// Connections coid closed (its side reached end of file or was reset).
    closed_by_coid: AtomicUsize,
    /// `DATA` command lines the hop has read from coid.
    data_commands: AtomicUsize,
}

impl FaultProxy {
    /// Listens on a free loopback port; `faults` apply to the first connections in turn.
    pub fn start(upstream: SocketAddr, faults: Vec<Fault>) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the fault proxy");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("fault proxy address");
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let live = Arc::new(Mutex::new(Vec::new()));
        let idle_closed = Arc::new(AtomicUsize::new(0));
        let ends = Arc::new(Ends::default());
        let ends2 = ends.clone();
        let faults = Arc::new(Mutex::new(VecDeque::from(faults)));
        let (stop2, count) = (stop.clone(), connections.clone());
        let (live2, idle2) = (live.clone(), idle_closed.clone());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        count.fetch_add(1, Ordering::Relaxed);
                        if let Ok(clone) = client.try_clone() {
                            live2.lock().expect("live lock").push(clone);
                        }
                        let fault = faults.lock().expect("faults lock").pop_front();
                        let (stop3, idle3) = (stop2.clone(), idle2.clone());
                        let link = Link {
                            upstream,
                            ends: ends2.clone(),
                            pending: Arc::new(AtomicUsize::new(0)),
                        };
                        std::thread::spawn(move || handle(client, link, fault, stop3, idle3));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FaultProxy {
            addr,
            stop,
            connections,
            live,
            idle_closed,
            ends,
        }
    }

    /// Waits until the hop has read `n` ends of message data from coid (a
    /// [`Fault::SlowData`] hop then holds it back); false if not within `timeout`.
    pub fn wait_data_read(&self, n: usize, timeout: Duration) -> bool {
        super::wait_until(timeout, || {
            (self.ends.read.load(Ordering::SeqCst) >= n).then_some(())
        })
        .is_some()
    }

    /// Waits until the store has answered every end of message data the hop passed
    /// it; false if it has not within `timeout`. Dovecot stores a copy before it
    /// answers for it, so after this no copy of anything sent so far is still on its
    /// way into a mailbox.
    pub fn wait_store_answered(&self, timeout: Duration) -> bool {
        super::wait_until(timeout, || {
            let passed = self.ends.passed.load(Ordering::SeqCst);
            (self.ends.answered.load(Ordering::SeqCst) >= passed).then_some(())
        })
        .is_some()
    }

    /// Waits until the hop has read `n` `DATA` commands from coid; false if not within
    /// `timeout`.
    pub fn wait_data_commands(&self, n: usize, timeout: Duration) -> bool {
        super::wait_until(timeout, || {
            (self.ends.data_commands.load(Ordering::SeqCst) >= n).then_some(())
        })
        .is_some()
    }

    /// Waits until coid has closed `n` of its connections to the hop; false if not
    /// within `timeout`.
    pub fn wait_closed_by_coid(&self, n: usize, timeout: Duration) -> bool {
        super::wait_until(timeout, || {
            (self.ends.closed_by_coid.load(Ordering::SeqCst) >= n).then_some(())
        })
        .is_some()
    }

    /// Ends of message data the hop has read from coid so far (passed on or not).
    pub fn data_ends_read(&self) -> usize {
        self.ends.read.load(Ordering::SeqCst)
    }

    /// Cuts every connection made so far, as a store that restarts does.
    pub fn cut_all(&self) {
        for stream in self.live.lock().expect("live lock").drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Connections closed by [`Fault::CloseWhenIdle`] so far.
    pub fn idle_closed(&self) -> usize {
        self.idle_closed.load(Ordering::SeqCst)
    }

    /// `host:port` for coid's `delivery.dovecot.lmtp`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One connection's way to the store, and its count of ends of data not answered.
struct Link {
    upstream: SocketAddr,
    ends: Arc<Ends>,
    pending: Arc<AtomicUsize>,
}

impl Link {
    /// An end of message data is about to go to the store.
    fn end_passed(&self) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        self.ends.passed.fetch_add(1, Ordering::SeqCst);
    }

    /// It did not reach the store after all.
    fn end_lost(&self) {
        self.pending.fetch_sub(1, Ordering::SeqCst);
        self.ends.passed.fetch_sub(1, Ordering::SeqCst);
    }

    /// `bytes` from the store went on to the client: each line ending answers one
    /// pending end of data.
    fn passed_back(&self, bytes: &[u8]) {
        for _ in bytes.iter().filter(|&&b| b == b'\n') {
            let took = self
                .pending
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
            if took.is_ok() {
                self.ends.answered.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

fn handle(
    mut client: TcpStream,
    link: Link,
    fault: Option<Fault>,
    stop: Arc<AtomicBool>,
    idle_closed: Arc<AtomicUsize>,
) {
    client
        .set_nonblocking(false)
        .expect("blocking client socket");
    match fault {
        Some(Fault::Refuse) => {
            let _ = client.write_all(b"421 4.3.2 fault injected: refusing\r\n");
        }
        Some(Fault::Stall) => {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Some(Fault::DieMidData) => {
            relay(client, &link, Hop::Die);
        }
        Some(Fault::SlowData(delay)) => {
            relay(client, &link, Hop::Slow(delay));
        }
        Some(Fault::CutAfterFirstReply) => {
            relay(client, &link, Hop::CutAfterReply);
        }
        Some(Fault::DribbleAfterData(interval)) => {
            relay(client, &link, Hop::Dribble(interval));
        }
        Some(Fault::CloseWhenIdle(limit)) => {
            let _ = client.set_read_timeout(Some(limit));
            if relay(client, &link, Hop::Pass) == Ended::Idle {
                idle_closed.fetch_add(1, Ordering::SeqCst);
            }
        }
        None => {
            relay(client, &link, Hop::Pass);
        }
    }
}

/// What the relay does to the message data.
#[derive(Clone, Copy, PartialEq)]
enum Hop {
    Pass,
    Die,
    Slow(Duration),
    CutAfterReply,
    Dribble(Duration),
}

/// Copies both ways; [`Hop::Die`] cuts both connections once the client has sent
/// `DATA` and then some message bytes; [`Hop::Slow`] waits before passing on the
/// end of the data; [`Hop::CutAfterReply`] cuts after the first reply line that
/// follows the end of the data.
/// How a relay ended.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ended {
    /// A side closed or the hop cut it.
    Closed,
    /// The client's read timeout passed with nothing to read (`CloseWhenIdle`).
    Idle,
}

fn relay(client: TcpStream, link: &Link, hop: Hop) -> Ended {
    let Ok(server) = TcpStream::connect(link.upstream) else {
        return Ended::Closed;
    };
    let (mut c_read, mut s_write) = (
        client.try_clone().expect("clone"),
        server.try_clone().expect("clone"),
    );
    let (mut s_read, mut c_write) = (
        server.try_clone().expect("clone"),
        client.try_clone().expect("clone"),
    );
    let data_ended = Arc::new(AtomicBool::new(false));
    let ended = data_ended.clone();
    let back_link = Link {
        upstream: link.upstream,
        ends: link.ends.clone(),
        pending: link.pending.clone(),
    };
    let back = std::thread::spawn(move || {
        let link = &back_link;
        if hop == Hop::CutAfterReply {
            copy_until_reply_after_data(&mut s_read, &mut c_write, &ended, link);
        } else if let Hop::Dribble(interval) = hop {
            dribble_after_data(&mut s_read, &mut c_write, &ended, interval, link);
        } else {
            copy_back(&mut s_read, &mut c_write, link);
        }
        let _ = c_write.shutdown(Shutdown::Both);
        let _ = s_read.shutdown(Shutdown::Both);
    });
    let mut seen: Vec<u8> = Vec::new();
    // How far `seen` was searched for DATA commands.
    let mut searched: usize = 0;
    let mut buf = [0u8; 16];
    let mut ended = Ended::Closed;
    loop {
        let n = match c_read.read(&mut buf) {
            Ok(0) => {
                link.ends.closed_by_coid.fetch_add(1, Ordering::SeqCst);
                break;
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                ended = Ended::Idle;
                let _ = client.shutdown(Shutdown::Both);
                let _ = server.shutdown(Shutdown::Both);
                break;
            }
            Err(_) => {
                link.ends.closed_by_coid.fetch_add(1, Ordering::SeqCst);
                break;
            }
        };
        seen.extend_from_slice(buf.get(..n).unwrap_or_default());
        let from = searched.saturating_sub(7);
        let commands = seen
            .get(from..)
            .unwrap_or_default()
            .windows(8)
            .filter(|w| w == b"\r\nDATA\r\n")
            .count();
        link.ends
            .data_commands
            .fetch_add(commands, Ordering::SeqCst);
        searched = seen.len();
        let in_data = seen
            .windows(6)
            .position(|w| w == b"DATA\r\n")
            .is_some_and(|p| seen.len() > p + 40);
        let end = in_data && seen.ends_with(b"\r\n.\r\n");
        if end {
            link.ends.read.fetch_add(1, Ordering::SeqCst);
            data_ended.store(true, Ordering::SeqCst);
            if let Hop::Slow(delay) = hop {
                std::thread::sleep(delay);
            }
        }
        if hop == Hop::Die && in_data {
            let _ = server.shutdown(Shutdown::Both);
            let _ = client.shutdown(Shutdown::Both);
            break;
        }
        if end {
            link.end_passed();
        }
        if s_write.write_all(buf.get(..n).unwrap_or_default()).is_err() {
            if end {
                link.end_lost();
            }
            break;
        }
    }
    let _ = s_write.shutdown(Shutdown::Write);
    let _ = back.join();
    ended
}

/// Copies the server's bytes to the client until, after `ended` is set, one whole
/// line has been passed on.
fn copy_until_reply_after_data(
    from: &mut TcpStream,
    to: &mut TcpStream,
    ended: &AtomicBool,
    link: &Link,
) {
    let mut byte = [0u8; 1];
    while let Ok(1) = from.read(&mut byte) {
        if to.write_all(&byte).is_err() {
            return;
        }
        link.passed_back(&byte);
        if byte[0] == b'\n' && ended.load(Ordering::SeqCst) {
            return;
        }
    }
}

/// Copies the server's bytes to the client, one byte per `interval` once `ended` is
/// set, until either side closes.
fn dribble_after_data(
    from: &mut TcpStream,
    to: &mut TcpStream,
    ended: &AtomicBool,
    interval: Duration,
    link: &Link,
) {
    let mut byte = [0u8; 1];
    while let Ok(1) = from.read(&mut byte) {
        if ended.load(Ordering::SeqCst) {
            std::thread::sleep(interval);
        }
        if to.write_all(&byte).is_err() {
            return;
        }
        link.passed_back(&byte);
    }
}

/// Copies the server's bytes to the client until either side closes.
fn copy_back(from: &mut TcpStream, to: &mut TcpStream, link: &Link) {
    let mut buf = [0u8; 4096];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let bytes = buf.get(..n).unwrap_or_default();
        if to.write_all(bytes).is_err() {
            return;
        }
        link.passed_back(bytes);
    }
}
