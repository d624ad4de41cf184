//! The thin layer under `coid doctor`: runs `postconf -x` and `doveconf -n`, reads the
//! transport tables' source files, stats coid's sockets, scripts and state directory,
//! reads the database read-only and asks `GET /health`. Changes nothing.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use nix::unistd::{Gid, Group, Uid, User, getgrouplist};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::config::{Config, DeliveryBackend};
use crate::doctor::coid::{Database, Facts, FileFacts, Socket, StateDir};
use crate::doctor::{Area, Finding, dovecot, postfix};
use crate::push::webpush::vapid::VapidKey;
use crate::store::{POSTGRES_SCHEMA_VERSION, SCHEMA_VERSION, SECRET_VAPID, Store};

/// `postconf -x` (every parameter, expanded), or `None` when it cannot run.
pub fn postconf() -> Option<String> {
    let out = Command::new("postconf").arg("-x").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn postfix_expect(config: &Config) -> postfix::Expect<'_> {
    postfix::Expect {
        unix_socket: &config.lmtp.unix_socket,
        tcp: &config.lmtp.tcp,
        max_recipients: config.lmtp.max_recipients,
        maxsmtprecipients: config.deltachat.maxsmtprecipients,
    }
}

/// Postfix's findings.
pub fn postfix(config: &Config, postconf: Option<&str>) -> Vec<Finding> {
    let Some(text) = postconf else {
        return vec![Finding::error(
            Area::Postfix,
            "postconf -x did not run (no Postfix here, or not root)",
            "run coid doctor as root on the Postfix host",
        )];
    };
    let maps = postfix::parse(text)
        .get("transport_maps")
        .map(|v| transport_tables(v))
        .unwrap_or_default();
    postfix::check(text, &maps, &postfix_expect(config))
}

/// The source text of each file-based table in `transport_maps`.
fn transport_tables(value: &str) -> Vec<(String, String)> {
    value
        .split([',', ' ', '\t'])
        .filter_map(|map| {
            let (kind, path) = map.split_once(':')?;
            let file_based = ["hash", "btree", "lmdb", "cdb", "dbm", "texthash"];
            if !file_based.contains(&kind) || !path.starts_with('/') {
                return None;
            }
            let text = std::fs::read_to_string(path).ok()?;
            Some((map.to_owned(), text))
        })
        .collect()
}

/// Dovecot's findings.
pub fn dovecot(config: &Config, postconf: Option<&str>) -> Vec<Finding> {
    let Some(text) = crate::cli::check::dovecot_settings() else {
        return vec![Finding::error(
            Area::Dovecot,
            "doveconf -n did not run (no Dovecot here, or not root)",
            "run coid doctor as root on the Dovecot host",
        )];
    };
    let local_users = postconf.is_some_and(|p| {
        let parsed = postfix::parse(p);
        let queue = parsed
            .get("queue_directory")
            .map_or("/var/spool/postfix", String::as_str);
        parsed
            .get("mailbox_transport")
            .is_some_and(|t| postfix::is_coid(t, queue, &postfix_expect(config)))
    });
    let scripts: Vec<dovecot::Script> = dovecot::coid_scripts(&text)
        .into_iter()
        .map(|path| {
            let mtime = |p: &str| std::fs::metadata(p).and_then(|m| m.modified()).ok();
            let svbin = format!("{}.svbin", path.trim_end_matches(".sieve"));
            dovecot::Script {
                source: mtime(&path),
                binary: mtime(&svbin),
                path,
            }
        })
        .collect();
    let mut out = Vec::new();
    if config.delivery.backend != DeliveryBackend::Dovecot {
        out.push(Finding::warning(
            Area::Dovecot,
            format!(
                "[delivery] backend = {}: coid does not deliver to Dovecot",
                config.delivery.backend
            ),
            "",
        ));
    }
    out.extend(dovecot::check(
        &text,
        &dovecot::Expect {
            lmtp: &config.delivery.dovecot.lmtp,
            // Matched against doveconf's text.
            dict_socket: &config.dict.socket.to_string_lossy(),
            local_users,
            scripts: &scripts,
        },
    ));
    out
}

/// What `stat` says about `path` (symlinks not followed).
fn file_facts(path: &Path) -> Option<FileFacts> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    Some(FileFacts {
        is_socket: meta.file_type().is_socket(),
        owner: user_name(meta.uid()),
        group: group_name(meta.gid()),
        mode: meta.mode() & 0o7777,
    })
}

fn user_name(uid: u32) -> String {
    User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

fn group_name(gid: u32) -> String {
    Group::from_gid(Gid::from_raw(gid))
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |g| g.name)
}

/// The user coid runs as (`[service] user`, else who runs doctor) and its groups.
fn service_user(config: &Config) -> (String, String, Vec<String>) {
    let name = if config.service.user.is_empty() {
        user_name(Uid::current().as_raw())
    } else {
        config.service.user.clone()
    };
    let user = User::from_name(&name).ok().flatten();
    let primary = if config.service.group.is_empty() {
        user.as_ref()
            .map_or_else(String::new, |u| group_name(u.gid.as_raw()))
    } else {
        config.service.group.clone()
    };
    let mut groups = vec![primary.clone()];
    if let Some(u) = &user
        && let Ok(name) = std::ffi::CString::new(u.name.clone())
        && let Ok(gids) = getgrouplist(&name, u.gid)
    {
        groups.extend(gids.into_iter().map(|g| group_name(g.as_raw())));
    }
    (name, primary, groups)
}

/// coid's own facts.
pub fn coid(config: &Config) -> Facts {
    let (user, group, groups) = service_user(config);
    let or = |value: &str, default: &str| {
        if value.is_empty() {
            default.to_owned()
        } else {
            value.to_owned()
        }
    };
    let mut sockets = Vec::new();
    if !config.lmtp.unix_socket.as_os_str().is_empty() {
        sockets.push(Socket {
            key: "[lmtp] unix_socket",
            path: config.lmtp.unix_socket.display().to_string(),
            client: "Postfix",
            owner: or(&config.lmtp.unix_socket_owner, &user),
            group: or(&config.lmtp.unix_socket_group, &group),
            mode: config.lmtp.unix_socket_mode.bits(),
            found: file_facts(&config.lmtp.unix_socket),
        });
    }
    if !config.dict.socket.as_os_str().is_empty() {
        sockets.push(Socket {
            key: "[dict] socket",
            path: config.dict.socket.display().to_string(),
            client: "Dovecot's mail processes",
            owner: or(&config.dict.socket_owner, &user),
            group: or(&config.dict.socket_group, &group),
            mode: config.dict.socket_mode.bits(),
            found: file_facts(&config.dict.socket),
        });
    }
    Facts {
        running: running(config),
        sockets,
        state: StateDir {
            path: config.state.dir.display().to_string(),
            found: file_facts(&config.state.dir),
            user: if config.service.user.is_empty() {
                String::new()
            } else {
                user
            },
            user_groups: groups,
        },
        database: match config.state.database {
            crate::config::Database::Sqlite => database(&config.database_path()),
            crate::config::Database::Postgresql => postgres_database(config),
        },
        schema_version: match config.state.database {
            crate::config::Database::Sqlite => SCHEMA_VERSION,
            crate::config::Database::Postgresql => POSTGRES_SCHEMA_VERSION,
        },
        push_enabled: config.push.enabled,
    }
}

/// `GET /health` answered 200.
fn running(config: &Config) -> bool {
    let Some(listen) = config.metrics.listen else {
        return false;
    };
    matches!(
        crate::cli::health::ask(crate::cli::health::reachable(listen)),
        Ok((200, _))
    )
}

/// The database's schema version and VAPID key, opened read-only.
/// The PostgreSQL store's schema version and VAPID key, read without changing it.
fn postgres_database(config: &Config) -> Database {
    match Store::peek_postgres(&config.state.postgresql) {
        Ok(None) => Database::Missing,
        Ok(Some((version, pem))) => Database::Read {
            version,
            vapid: pem.is_some_and(|pem| VapidKey::from_private_pem(&pem).is_ok()),
        },
        Err(err) => Database::Unreadable(err.to_string()),
    }
}

fn database(path: &Path) -> Database {
    if !path.exists() {
        return Database::Missing;
    }
    let read = || -> rusqlite::Result<(i64, Option<String>)> {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let version = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let pem = conn
            .query_row(
                "SELECT value FROM server_secrets WHERE name = ?1",
                [SECRET_VAPID],
                |r| r.get::<_, String>(0),
            )
            .optional()?;
        Ok((version, pem))
    };
    match read() {
        Ok((version, pem)) => Database::Read {
            version,
            vapid: pem.is_some_and(|pem| VapidKey::from_private_pem(&pem).is_ok()),
        },
        Err(err) => Database::Unreadable(format!("{}: {err}", path.display())),
    }
}
