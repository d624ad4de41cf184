//! coid's own side: is it running, are its sockets there with the owner, group and
//! mode `coid.toml` asks for (Postfix reaches the LMTP socket, Dovecot's mail
//! processes the dict socket), can the service user write the state directory, is
//! the database at this coid's schema version, and is there a VAPID key for Web Push.
//! The facts come from the command line's thin layer (stat, a read-only look at the
//! database, `GET /health`).

use super::{Area, Finding};

/// A file as `stat` saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    /// It is a unix socket.
    pub is_socket: bool,
    /// Owner's user name (or uid as text).
    pub owner: String,
    /// Group name (or gid as text).
    pub group: String,
    /// Permission bits.
    pub mode: u32,
}

/// One of coid's sockets: where, what the config asks for, what is there.
#[derive(Debug, Clone)]
pub struct Socket {
    /// `[lmtp] unix_socket` or `[dict] socket`.
    pub key: &'static str,
    /// Its path.
    pub path: String,
    /// Who connects to it (for the message).
    pub client: &'static str,
    /// The owner it should have (the service user when the config leaves it empty).
    pub owner: String,
    /// The group it should have.
    pub group: String,
    /// The mode it should have.
    pub mode: u32,
    /// What is there (`None`: nothing).
    pub found: Option<FileFacts>,
}

/// The state directory and the user coid runs as.
#[derive(Debug, Clone)]
pub struct StateDir {
    /// `[state] dir`.
    pub path: String,
    /// What is there (`None`: missing).
    pub found: Option<FileFacts>,
    /// `[service] user` (empty: coid stays who starts it; not checked).
    pub user: String,
    /// The groups of that user.
    pub user_groups: Vec<String>,
}

/// The database as read (read-only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// No state yet: no `coid.sqlite`, or none of coid's tables in PostgreSQL.
    Missing,
    /// It could not be read; why.
    Unreadable(String),
    /// Its schema version, and whether it holds a VAPID key that parses.
    Read {
        /// `PRAGMA user_version`.
        version: i64,
        /// A usable VAPID private key is stored.
        vapid: bool,
    },
}

/// Everything about coid itself.
#[derive(Debug, Clone)]
pub struct Facts {
    /// `coid health` answered 200.
    pub running: bool,
    /// The unix sockets the config names.
    pub sockets: Vec<Socket>,
    /// The state directory.
    pub state: StateDir,
    /// The database.
    pub database: Database,
    /// The schema version this coid writes (`store::SCHEMA_VERSION`).
    pub schema_version: i64,
    /// `[push] enabled`.
    pub push_enabled: bool,
}

/// Every check of coid itself.
pub fn check(facts: &Facts) -> Vec<Finding> {
    let mut out = vec![if facts.running {
        Finding::ok(Area::Coid, "coid serves (GET /health: 200)")
    } else {
        Finding::error(
            Area::Coid,
            "coid does not answer GET /health on [metrics] listen: not running (or no metrics listener)",
            "systemctl enable --now coid; journalctl -u coid -p err",
        )
    }];
    out.extend(facts.sockets.iter().map(|s| socket(s, facts.running)));
    out.push(state_dir(&facts.state));
    out.extend(database(facts));
    out
}

fn socket(s: &Socket, running: bool) -> Finding {
    let Some(found) = &s.found else {
        let what = format!(
            "{} {} does not exist{}",
            s.key,
            s.path,
            if running { " although coid runs" } else { "" }
        );
        return if running {
            Finding::error(
                Area::Coid,
                what,
                format!(
                    "{} in coid.toml must be the socket coid serves; systemctl restart coid",
                    s.key
                ),
            )
        } else {
            Finding::error(
                Area::Coid,
                format!("{what}: coid is not running"),
                "systemctl start coid",
            )
        };
    };
    let want = format!("{}:{} {:04o}", s.owner, s.group, s.mode);
    let got = format!("{}:{} {:04o}", found.owner, found.group, found.mode);
    if !found.is_socket {
        Finding::error(
            Area::Coid,
            format!("{} {} is not a socket", s.key, s.path),
            format!("rm {}; systemctl restart coid", s.path),
        )
    } else if want != got {
        Finding::error(
            Area::Coid,
            format!(
                "{} {} is {got}, coid.toml asks for {want}: {} may not connect",
                s.key, s.path, s.client
            ),
            format!(
                "systemctl restart coid (it sets {want}), or chown {}:{} {} && chmod {:04o} {}",
                s.owner, s.group, s.path, s.mode, s.path
            ),
        )
    } else {
        Finding::ok(Area::Coid, format!("{} {} is {got}", s.key, s.path))
    }
}

fn state_dir(state: &StateDir) -> Finding {
    let Some(found) = &state.found else {
        return Finding::error(
            Area::Coid,
            format!("[state] dir {} does not exist", state.path),
            format!(
                "install -d -o {0} -g {0} -m 0700 {1}",
                if state.user.is_empty() {
                    "coid"
                } else {
                    &state.user
                },
                state.path
            ),
        );
    };
    if state.user.is_empty() {
        return Finding::ok(
            Area::Coid,
            format!(
                "[state] dir {} exists ([service] user empty: not checked who writes it)",
                state.path
            ),
        );
    }
    let m = found.mode;
    let writable = (found.owner == state.user && m & 0o300 == 0o300)
        || (state.user_groups.contains(&found.group) && m & 0o030 == 0o030)
        || m & 0o003 == 0o003;
    if writable {
        Finding::ok(
            Area::Coid,
            format!(
                "[state] dir {} ({}:{} {:04o}) is writable by {}",
                state.path, found.owner, found.group, m, state.user
            ),
        )
    } else {
        Finding::error(
            Area::Coid,
            format!(
                "[state] dir {} is {}:{} {:04o}: the service user {} cannot write it",
                state.path, found.owner, found.group, m, state.user
            ),
            format!(
                "chown -R {0}:{0} {1} && chmod 0700 {1}",
                state.user, state.path
            ),
        )
    }
}

fn database(facts: &Facts) -> Vec<Finding> {
    let want = facts.schema_version;
    match &facts.database {
        Database::Missing if facts.running => vec![Finding::error(
            Area::Coid,
            "coid runs but its state database is missing (coid.sqlite in [state] dir, or coid's tables at [state.postgresql] url): is this config the running coid's?",
            "systemctl restart coid",
        )],
        Database::Missing => vec![Finding::warning(
            Area::Coid,
            "no state database yet (coid never ran on this config)",
            "systemctl start coid",
        )],
        Database::Unreadable(why) => vec![Finding::error(
            Area::Coid,
            format!("the database cannot be read: {why}"),
            "",
        )],
        Database::Read { version, vapid } => {
            let mut out = vec![match version.cmp(&want) {
                std::cmp::Ordering::Equal => Finding::ok(
                    Area::Coid,
                    format!("database schema version {version} (this coid's)"),
                ),
                std::cmp::Ordering::Less => Finding::warning(
                    Area::Coid,
                    format!(
                        "database schema version {version}, this coid writes {want}: an older coid still runs"
                    ),
                    "systemctl restart coid (it migrates the database)",
                ),
                std::cmp::Ordering::Greater => Finding::error(
                    Area::Coid,
                    format!(
                        "database schema version {version} is newer than this coid's {want}: a newer coid wrote it"
                    ),
                    "install that newer coid again (downgrades are not supported)",
                ),
            }];
            if facts.push_enabled {
                out.push(if *vapid {
                    Finding::ok(Area::Coid, "VAPID key present ([push] enabled)")
                } else {
                    Finding::error(
                        Area::Coid,
                        "[push] enabled but the database holds no usable VAPID key: Web Push cannot sign",
                        "systemctl restart coid (it creates the key); restore the state from a backup if clients had registered the old one",
                    )
                });
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Severity;

    fn facts() -> Facts {
        let file = |owner: &str, group: &str, mode| FileFacts {
            is_socket: true,
            owner: owner.into(),
            group: group.into(),
            mode,
        };
        Facts {
            running: true,
            sockets: vec![
                Socket {
                    key: "[lmtp] unix_socket",
                    path: "/var/spool/postfix/coid/lmtp".into(),
                    client: "Postfix",
                    owner: "coid".into(),
                    group: "postfix".into(),
                    mode: 0o660,
                    found: Some(file("coid", "postfix", 0o660)),
                },
                Socket {
                    key: "[dict] socket",
                    path: "/run/coid/dict".into(),
                    client: "Dovecot",
                    owner: "coid".into(),
                    group: "coid".into(),
                    mode: 0o660,
                    found: Some(file("coid", "coid", 0o660)),
                },
            ],
            state: StateDir {
                path: "/var/lib/coid".into(),
                found: Some(FileFacts {
                    is_socket: false,
                    owner: "coid".into(),
                    group: "coid".into(),
                    mode: 0o700,
                }),
                user: "coid".into(),
                user_groups: vec!["coid".into(), "postfix".into()],
            },
            database: Database::Read {
                version: 5,
                vapid: true,
            },
            schema_version: 5,
            push_enabled: true,
        }
    }

    fn bad(f: &Facts) -> Vec<Finding> {
        check(f)
            .into_iter()
            .filter(|f| f.severity != Severity::Ok)
            .collect()
    }

    #[test]
    fn a_running_coid_is_fine() {
        assert!(bad(&facts()).is_empty());
    }

    #[test]
    fn each_break_is_named() {
        let mut f = facts();
        if let Some(s) = f.sockets[0].found.as_mut() {
            s.mode = 0o600;
        }
        let b = bad(&f);
        assert!(
            b[0].what
                .contains("is coid:postfix 0600, coid.toml asks for coid:postfix 0660: Postfix"),
            "{b:?}"
        );

        let mut f = facts();
        f.sockets[1].found = None;
        assert!(
            bad(&f)[0]
                .what
                .starts_with("[dict] socket /run/coid/dict does not exist although coid runs")
        );

        let mut f = facts();
        f.running = false;
        f.sockets.iter_mut().for_each(|s| s.found = None);
        let b = bad(&f);
        assert_eq!(b.len(), 3, "{b:?}");
        assert!(b[1].what.ends_with("coid is not running"));

        let mut f = facts();
        if let Some(d) = f.state.found.as_mut() {
            d.owner = "root".into();
        }
        let b = bad(&f);
        assert!(
            b[0].what.contains("the service user coid cannot write it"),
            "{b:?}"
        );
        assert_eq!(
            b[0].fix.as_deref(),
            Some("chown -R coid:coid /var/lib/coid && chmod 0700 /var/lib/coid")
        );

        let mut f = facts();
        f.database = Database::Read {
            version: 6,
            vapid: true,
        };
        assert_eq!(bad(&f)[0].severity, Severity::Error);
        f.database = Database::Read {
            version: 4,
            vapid: true,
        };
        assert_eq!(bad(&f)[0].severity, Severity::Warning);
        f.database = Database::Read {
            version: 5,
            vapid: false,
        };
        assert!(bad(&f)[0].what.contains("no usable VAPID key"));
        f.push_enabled = false;
        assert!(bad(&f).is_empty());
    }
}
