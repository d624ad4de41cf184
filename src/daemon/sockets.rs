//! coid's listening sockets, opened before privileges are dropped and before the async
//! runtime starts: the LMTP listeners (unix socket for Postfix and/or TCP), the dict
//! proxy socket for Dovecot, and the metrics listener. Sockets systemd passed
//! (`coid.socket`, by `FileDescriptorName=` `lmtp` or `dict`) replace the configured
//! ones of that name. A unix socket coid binds gets the mode, owner and group from
//! the config, so Postfix's and Dovecot's users can connect and nobody else.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid};

use super::privileges::{Account, give, lookup_group, lookup_user};
use super::systemd::{Passed, PassedSocket};
use crate::config::{Config, SocketMode};

/// A bound socket, not yet registered with the runtime.
pub enum Bound {
    /// TCP.
    Tcp(std::net::TcpListener),
    /// Unix socket; with its path when coid bound it (and removes it at exit).
    Unix(UnixListener, Option<PathBuf>),
}

/// Every listening socket coid serves.
pub struct Sockets {
    /// LMTP, for Postfix.
    pub lmtp: Vec<Bound>,
    /// The dict proxy, for Dovecot.
    pub dict: Vec<Bound>,
    /// `/metrics` and `/health`.
    pub metrics: Option<std::net::TcpListener>,
}

/// What a unix socket coid binds should look like.
struct UnixSpec<'a> {
    key: &'a str,
    path: &'a Path,
    mode: SocketMode,
    owner: &'a str,
    group: &'a str,
}

/// Opens every socket: takes the passed ones, binds the rest as configured.
/// `account` is who coid will run as after dropping privileges (if it will).
///
/// # Errors
/// What failed, for the operator (exit 78: a socket is a matter of configuration).
pub fn open(
    config: &Config,
    passed: Vec<Passed>,
    account: Option<&Account>,
) -> Result<Sockets, String> {
    let mut sockets = Sockets {
        lmtp: Vec::new(),
        dict: Vec::new(),
        metrics: None,
    };
    for p in passed {
        let bound = match p.socket {
            PassedSocket::Unix(l) => Bound::Unix(l, None),
            PassedSocket::Tcp(l) => Bound::Tcp(l),
        };
        match p.name.as_str() {
            "lmtp" => sockets.lmtp.push(bound),
            "dict" => sockets.dict.push(bound),
            other => {
                return Err(format!(
                    "systemd passed a socket named {other:?}; coid takes \"lmtp\" and \"dict\" \
                     (FileDescriptorName= in the .socket unit)"
                ));
            }
        }
    }
    if sockets.dict.is_empty() && !config.dict.socket.as_os_str().is_empty() {
        let d = &config.dict;
        let spec = UnixSpec {
            key: "dict",
            path: &d.socket,
            mode: d.socket_mode,
            owner: &d.socket_owner,
            group: &d.socket_group,
        };
        sockets.dict.push(bind_unix(&spec, account)?);
    }
    if let Some(addr) = config.metrics.listen {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| format!("metrics.listen: cannot listen on {addr}: {e}"))?;
        sockets.metrics = Some(listener);
    }
    // LMTP last: once Postfix (or a test) can connect, everything else is up.
    if sockets.lmtp.is_empty() {
        sockets.lmtp = bind_lmtp(config, account)?;
    } else {
        tracing::info!(
            sockets = sockets.lmtp.len(),
            "LMTP sockets from systemd; [lmtp] unix_socket and tcp are not bound"
        );
    }
    Ok(sockets)
}

fn bind_lmtp(config: &Config, account: Option<&Account>) -> Result<Vec<Bound>, String> {
    let l = &config.lmtp;
    let mut bound = Vec::new();
    if !l.unix_socket.as_os_str().is_empty() {
        let spec = UnixSpec {
            key: "lmtp",
            path: &l.unix_socket,
            mode: l.unix_socket_mode,
            owner: &l.unix_socket_owner,
            group: &l.unix_socket_group,
        };
        bound.push(bind_unix(&spec, account)?);
    }
    for addr in &l.tcp {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| format!("lmtp.tcp: cannot listen on {addr}: {e}"))?;
        bound.push(Bound::Tcp(listener));
    }
    Ok(bound)
}

/// Binds a unix socket: creates its directory if missing (given to `account`),
/// replaces a stale socket file, then sets mode, owner and group.
fn bind_unix(spec: &UnixSpec, account: Option<&Account>) -> Result<Bound, String> {
    let path = spec.path;
    let fail = |what: String| format!("{}: {}: {what}", spec.key, path.display());
    if let Some(dir) = path.parent().filter(|d| !d.exists()) {
        std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create directory: {e}")))?;
        if let Some(a) = account {
            give(dir, Some(a.uid), Some(a.gid)).map_err(fail)?;
        }
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(fail("another process is listening there".into()));
        }
        std::fs::remove_file(path).map_err(|e| fail(format!("cannot remove stale socket: {e}")))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| fail(format!("cannot listen: {e}")))?;
    let mode = spec.mode.bits();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| fail(format!("cannot set mode {mode:o}: {e}")))?;
    let (owner, group) = ownership(spec, account)?;
    give(path, owner, group).map_err(|e| {
        fail(format!(
            "{e} (group {:?}: coid must run as root or be in that group)",
            spec.group
        ))
    })?;
    Ok(Bound::Unix(listener, Some(path.to_owned())))
}

/// The owner and group a socket gets: the configured ones; an empty owner means the
/// account coid will run as (when it drops privileges), else unchanged.
fn ownership(
    spec: &UnixSpec,
    account: Option<&Account>,
) -> Result<(Option<Uid>, Option<Gid>), String> {
    let owner = if spec.owner.is_empty() {
        account.map(|a| a.uid)
    } else {
        Some(
            lookup_user(spec.owner)
                .map_err(|e| format!("{} socket owner: {e}", spec.key))?
                .uid,
        )
    };
    let group = if spec.group.is_empty() {
        account.map(|a| a.gid)
    } else {
        Some(lookup_group(spec.group).map_err(|e| format!("{} socket group: {e}", spec.key))?)
    };
    Ok((owner, group))
}
