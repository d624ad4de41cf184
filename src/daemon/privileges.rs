//! Who coid runs as. Started as root (outside systemd, whose unit starts coid as its
//! user already), coid binds its sockets, gives them and any directory it had to
//! create to `[service] user`, and then becomes that user — supplementary groups,
//! group, user, in that order — before the runtime starts, the state store opens or a
//! message is read. A failed drop is fatal: coid never serves as root by accident.

use std::ffi::CString;
use std::path::Path;

use nix::unistd::{Gid, Group, Uid, User, chown, getegid, geteuid, initgroups, setgid, setuid};

use crate::config::ServiceConfig;

/// The account to become.
#[derive(Debug, Clone)]
pub struct Account {
    /// The user's name (for initgroups and logs).
    pub name: String,
    /// Its uid.
    pub uid: Uid,
    /// The group to run as.
    pub gid: Gid,
}

/// The account `[service]` names, if coid runs as root and should drop to it.
///
/// # Errors
/// The user or group does not exist.
pub fn target(service: &ServiceConfig) -> Result<Option<Account>, String> {
    if service.user.is_empty() {
        if geteuid().is_root() {
            tracing::warn!("running as root: set [service] user to drop privileges");
        }
        return Ok(None);
    }
    if !geteuid().is_root() {
        tracing::debug!(
            uid = geteuid().as_raw(),
            "not started as root: running as the starting user"
        );
        return Ok(None);
    }
    let user = lookup_user(&service.user)?;
    let gid = if service.group.is_empty() {
        user.gid
    } else {
        lookup_group(&service.group)?
    };
    Ok(Some(Account {
        name: service.user.clone(),
        uid: user.uid,
        gid,
    }))
}

/// Becomes `account`, for good: root cannot be regained afterwards.
///
/// # Errors
/// A system call failed; coid must not go on.
pub fn drop_to(account: &Account) -> Result<(), String> {
    let name = CString::new(account.name.as_str())
        .map_err(|_| format!("service.user {:?}: not a valid name", account.name))?;
    let fail = |what: &str, err: nix::Error| format!("cannot drop privileges ({what}): {err}");
    initgroups(&name, account.gid).map_err(|e| fail("initgroups", e))?;
    setgid(account.gid).map_err(|e| fail("setgid", e))?;
    setuid(account.uid).map_err(|e| fail("setuid", e))?;
    let regained = !account.uid.is_root() && setuid(Uid::from_raw(0)).is_ok();
    if geteuid() != account.uid || getegid() != account.gid || regained {
        return Err("privilege drop did not take; refusing to run".into());
    }
    tracing::info!(user = %account.name, uid = account.uid.as_raw(), gid = account.gid.as_raw(), "dropped privileges");
    Ok(())
}

/// The user named `name`.
///
/// # Errors
/// No such user, or the user database failed.
pub fn lookup_user(name: &str) -> Result<User, String> {
    match User::from_name(name) {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(format!("user {name:?} does not exist")),
        Err(err) => Err(format!("cannot look up user {name:?}: {err}")),
    }
}

/// The gid of the group named `name`.
///
/// # Errors
/// No such group, or the group database failed.
pub fn lookup_group(name: &str) -> Result<Gid, String> {
    match Group::from_name(name) {
        Ok(Some(group)) => Ok(group.gid),
        Ok(None) => Err(format!("group {name:?} does not exist")),
        Err(err) => Err(format!("cannot look up group {name:?}: {err}")),
    }
}

/// Gives `path` to `owner`/`group` (`None`: leave as is).
///
/// # Errors
/// chown(2) failed (not root and not allowed).
pub fn give(path: &Path, owner: Option<Uid>, group: Option<Gid>) -> Result<(), String> {
    if owner.is_none() && group.is_none() {
        return Ok(());
    }
    chown(path, owner, group).map_err(|err| format!("cannot chown {}: {err}", path.display()))
}
