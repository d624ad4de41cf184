//! What a delivery run delivers to, fresh for each run: Dovecot, set up as
//! `conf.d/dovecot/` ships it, or Postfix's `smtp-sink -L`, an LMTP server that
//! answers every transaction `250` and throws the message away. The sink does no
//! work per message, so runs against it show what coid itself costs.
//!
//! How the hops are reached: unix sockets with Dovecot, as in production; TCP on
//! loopback with the sink (`smtp-sink` listens on `127.0.0.1:<port>`, coid delivers
//! there with `[delivery.dovecot] lmtp = "127.0.0.1:<port>"`, and the next hop in
//! front of coid is its TCP listener).

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::common::coid::{Coid, CoidOpts};
use crate::common::ports::{LaunchFailure, PortLease, lease_port, start_with_retries};
use crate::common::stack::dovecot_opts;
use crate::common::{
    Dovecot, LmtpTarget, make_run_dir, process, release_run_dir, tail_file, wait_until,
};
use crate::delivery::{coid_opts, coid_opts_to, inbox_count};

/// Where the messages end up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// Dovecot's LMTP service, storing into the user's INBOX.
    Dovecot,
    /// `smtp-sink -L`: accepts and discards.
    Sink,
}

impl Store {
    /// Its name in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Store::Dovecot => "Dovecot",
            Store::Sink => "smtp-sink",
        }
    }
}

/// A started store.
pub enum Running {
    Dovecot(Dovecot),
    Sink(Sink),
}

impl Running {
    /// Starts a fresh one; returns once the connections that checked it was up are
    /// counted as closed.
    pub fn start(store: Store) -> Running {
        let running = match store {
            Store::Dovecot => Running::Dovecot(Dovecot::start(dovecot_opts("/"))),
            Store::Sink => Running::Sink(Sink::start()),
        };
        let probed = wait_until(Duration::from_secs(5), || {
            (running.closed() >= running.probes()).then_some(())
        });
        assert!(probed.is_some(), "{store:?}: start-up probes not seen");
        running
    }

    /// coid delivering to it.
    pub fn coid_opts(&self) -> CoidOpts {
        match self {
            Running::Dovecot(dovecot) => coid_opts(dovecot),
            Running::Sink(sink) => coid_opts_to(&sink.addr().to_string()),
        }
    }

    /// Where the LMTP client in front delivers: the store itself, or `coid` in front
    /// of it.
    pub fn next_hop(&self, coid: Option<&Coid>) -> LmtpTarget {
        match (self, coid) {
            (Running::Dovecot(_), Some(coid)) => LmtpTarget::Unix(coid.socket_path()),
            (Running::Dovecot(dovecot), None) => LmtpTarget::Unix(dovecot.lmtp_socket()),
            (Running::Sink(_), Some(coid)) => LmtpTarget::Tcp(coid.lmtp_addr()),
            (Running::Sink(sink), None) => LmtpTarget::Tcp(sink.addr()),
        }
    }

    /// Messages it took: the INBOX's count, or the sink's message counter (waited
    /// for up to a second: the sink counts just after it answered).
    pub fn stored(&self, expected: usize) -> usize {
        match self {
            Running::Dovecot(dovecot) => inbox_count(dovecot),
            Running::Sink(sink) => {
                wait_until(Duration::from_secs(1), || {
                    (sink.counters().messages == expected).then_some(())
                });
                sink.counters().messages
            }
        }
    }

    /// LMTP connections it has served that are closed by now, not counting the
    /// probes at start-up.
    pub fn connections_closed(&self) -> usize {
        self.closed().saturating_sub(self.probes())
    }

    /// Connections made at start-up to see it listen: the harness checks Dovecot's
    /// LMTP TCP listener and its socket, [`Sink::start`] the sink's port.
    fn probes(&self) -> usize {
        match self {
            Running::Dovecot(_) => 2,
            Running::Sink(_) => 1,
        }
    }

    /// All LMTP connections closed so far: the sink's counter, or Dovecot's
    /// `Disconnect from` log lines.
    fn closed(&self) -> usize {
        match self {
            Running::Dovecot(dovecot) => dovecot
                .log()
                .lines()
                .filter(|l| l.contains("lmtp(") && l.contains(": Disconnect from "))
                .count(),
            Running::Sink(sink) => sink.counters().sessions,
        }
    }
}

/// Postfix's transport for `target`.
pub fn postfix_transport(target: &LmtpTarget) -> String {
    match target {
        LmtpTarget::Unix(path) => format!("lmtp:unix:{}", path.display()),
        LmtpTarget::Tcp(addr) => format!("lmtp:inet:{addr}"),
    }
}

/// `smtp-source`'s server argument for `target`.
pub fn source_addr(target: &LmtpTarget) -> String {
    match target {
        LmtpTarget::Unix(path) => format!("unix:{}", path.display()),
        LmtpTarget::Tcp(addr) => addr.to_string(),
    }
}

/// A running `smtp-sink -L -c` on a leased loopback port; stopped (by its PID) on
/// drop.
pub struct Sink {
    child: Child,
    port: PortLease,
    dir: Option<TempDir>,
}

/// The sink's running counters (`-c`): it rewrites them on its stdout whenever a
/// session ends and whenever a message's final dot arrives.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    /// Sessions that have ended.
    pub sessions: usize,
    /// Messages received.
    pub messages: usize,
}

/// `smtp-sink` is in Debian's `postfix` package.
const SMTP_SINK: &str = "/usr/sbin/smtp-sink";
/// Run as root, it must be told whom to switch to after binding.
const SINK_USER: &str = "nobody";

impl Sink {
    /// Starts it; retries on fresh ports if another process took the port.
    pub fn start() -> Sink {
        start_with_retries("smtp-sink", Sink::launch)
    }

    fn launch() -> Result<Sink, LaunchFailure> {
        let dir = make_run_dir("smtp-sink-");
        let port = lease_port();
        let out = process::output_file(&dir.path().join("counters"));
        let err = process::output_file(&dir.path().join("stderr"));
        let mut child = Command::new(SMTP_SINK)
            .args(["-L", "-c", "-u", SINK_USER])
            .arg(format!("127.0.0.1:{}", port.port()))
            .arg("256")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {SMTP_SINK} (Debian's postfix package): {e}"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port.port()));
        let up = wait_until(Duration::from_secs(10), || {
            if child.try_wait().ok().flatten().is_some() {
                return Some(false);
            }
            TcpStream::connect(addr).ok().map(|_| true)
        });
        let sink = Sink {
            child,
            port,
            dir: Some(dir),
        };
        if up == Some(true) {
            return Ok(sink);
        }
        let message = format!(
            "smtp-sink did not listen on {addr}: {}",
            tail_file(&sink.path("stderr"), 10)
        );
        Err(LaunchFailure { message })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port.port()))
    }

    /// The latest counters it wrote (`sess=S quit=Q mesg=M`, each ending in `\r`).
    pub fn counters(&self) -> Counters {
        let raw = std::fs::read(self.path("counters")).unwrap_or_default();
        let text = String::from_utf8_lossy(&raw);
        let Some(last) = text.split(['\r', '\n']).rfind(|l| l.contains("mesg=")) else {
            return Counters::default();
        };
        let field = |name: &str| {
            last.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name)?.parse().ok())
                .unwrap_or(0)
        };
        Counters {
            sessions: field("sess="),
            messages: field("mesg="),
        }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir
            .as_ref()
            .map(|d| d.path().join(name))
            .expect("the sink's directory is present until drop")
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        process::terminate(self.child.id(), "smtp-sink", Duration::from_secs(5));
        let _ = self.child.wait();
        if let Some(dir) = self.dir.take() {
            release_run_dir(dir, "smtp-sink");
        }
    }
}
