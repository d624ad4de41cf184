//! systemd integration (sd_notify(3), sd_listen_fds(3)): READY/RELOADING/STOPPING and
//! STATUS for `Type=notify`, the watchdog ping, and the sockets a `.socket` unit
//! passes. Outside systemd every call is a no-op (no `NOTIFY_SOCKET`, no `LISTEN_PID`).
//! The one `unsafe` of coid is here: taking ownership of a passed file descriptor.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::time::Duration;

use sd_notify::NotifyState;

/// A socket systemd passed, by its `FileDescriptorName=`.
pub struct Passed {
    /// The name (`lmtp` or `dict`; systemd's default is the socket unit's name).
    pub name: String,
    /// The listening socket.
    pub socket: PassedSocket,
}

/// What kind of listening socket was passed.
pub enum PassedSocket {
    /// `ListenStream=` with a path.
    Unix(UnixListener),
    /// `ListenStream=` with an address or port.
    Tcp(std::net::TcpListener),
}

/// Takes the sockets systemd passed to this process, if any (`LISTEN_PID` is ours).
///
/// # Errors
/// The environment is malformed, or a descriptor is neither a unix nor a TCP socket.
/// (Its type is the `.socket` unit's business: `ListenStream=` makes listening
/// stream sockets.)
pub fn passed_sockets() -> Result<Vec<Passed>, String> {
    let fds =
        sd_notify::listen_fds_with_names().map_err(|err| format!("socket activation: {err}"))?;
    let mut passed = Vec::new();
    for (fd, name) in fds {
        let socket = classify(own(fd))
            .map_err(|err| format!("socket activation: fd {fd} ({name}): {err}"))?;
        passed.push(Passed { name, socket });
    }
    // LISTEN_* stay in the environment: coid starts no children, and a reader checks
    // LISTEN_PID against its own PID anyway.
    Ok(passed)
}

/// Takes ownership of a descriptor systemd passed.
#[allow(unsafe_code)]
fn own(fd: RawFd) -> OwnedFd {
    // SAFETY: sd_notify::listen_fds_with_names returned `fd`: systemd opened it for this
    // process (LISTEN_PID matched) in the range SD_LISTEN_FDS_START..+LISTEN_FDS, and
    // nothing else in coid takes descriptors from that range, so this is the only owner.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A unix listener if the socket's address is a path, else a TCP listener. std checks
/// the address family on `local_addr`, so a TCP socket is not taken for a unix one.
fn classify(fd: OwnedFd) -> Result<PassedSocket, String> {
    let unix = UnixListener::from(fd);
    if unix.local_addr().is_ok() {
        return Ok(PassedSocket::Unix(unix));
    }
    let tcp = std::net::TcpListener::from(OwnedFd::from(unix));
    match tcp.local_addr() {
        Ok(_) => Ok(PassedSocket::Tcp(tcp)),
        Err(err) => Err(format!("not a unix or TCP listening socket: {err}")),
    }
}

/// Tells systemd the service is up (`READY=1`), with a status line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells systemd a reload has started (`RELOADING=1`, with the monotonic timestamp
/// `Type=notify-reload` wants); [`ready`] ends it.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// Tells systemd the service is stopping (`STOPPING=1`).
pub fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

fn send(states: &[NotifyState]) {
    if let Err(err) = sd_notify::notify(states) {
        tracing::warn!(error = %err, "cannot notify systemd");
    }
}

/// Pings systemd's watchdog at half its interval, as long as the runtime runs tasks
/// (`WatchdogSec=`): a wedged runtime stops the pings and systemd restarts coid.
pub fn spawn_watchdog() {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let every = (interval / 2).max(Duration::from_millis(100));
    tracing::debug!(?interval, "systemd watchdog on");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            send(&[NotifyState::Watchdog]);
        }
    });
}
