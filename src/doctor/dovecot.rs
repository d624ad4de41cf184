//! Dovecot, from `doveconf -n` (2.3 and 2.4 syntax): the LMTP listener coid delivers
//! to, local users' names at LMTP, the Sieve plugin and coid's scripts (compiled),
//! METADATA through coid's dict, the capabilities COI and Delta Chat clients look for,
//! and the mail store under coid's seen filter.
//!
//! `doveconf -n` shows only what differs from Dovecot's defaults, so a default (the
//! `lmtp` listener in `base_dir`) counts as there when nothing overrides it.

use std::time::SystemTime;

use super::{Area, Finding, setting};

/// One `key = value` of `doveconf -n`, with the sections around it
/// (`["protocol lmtp", "mail_plugins"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// Enclosing section headers, outermost first (`"service lmtp"`).
    pub sections: Vec<String>,
    /// The setting's name.
    pub key: String,
    /// Its value, trimmed.
    pub value: String,
}

/// `doveconf -n`'s settings, in order. Comments and lines that are neither a section
/// nor a setting are skipped.
pub fn parse(doveconf: &str) -> Vec<Setting> {
    let mut sections: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for line in doveconf.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "}" {
            sections.pop();
        } else if let Some(head) = line.strip_suffix('{') {
            sections.push(head.trim().to_owned());
        } else if let Some((key, value)) = line.split_once('=') {
            out.push(Setting {
                sections: sections.clone(),
                key: key.trim().to_owned(),
                // doveconf quotes values with spaces: `mail_plugins = " sieve"`.
                value: value.trim().trim_matches('"').trim().to_owned(),
            });
        }
    }
    out
}

/// What Dovecot must match on coid's side, and facts about coid's Sieve scripts.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    /// `[delivery.dovecot] lmtp`: a socket path or `host:port`.
    pub lmtp: &'a str,
    /// `[dict] socket` (empty: no dict proxy).
    pub dict_socket: &'a str,
    /// Postfix's `mailbox_transport` goes to coid: local users reach Dovecot as
    /// `user@host`.
    pub local_users: bool,
    /// coid's Sieve scripts Dovecot runs, as found on disk.
    pub scripts: &'a [Script],
}

/// A Sieve script named in Dovecot's config and its compiled form.
#[derive(Debug, Clone)]
pub struct Script {
    /// The `.sieve` file.
    pub path: String,
    /// Its modification time (`None`: missing).
    pub source: Option<SystemTime>,
    /// The `.svbin` next to it (`None`: missing).
    pub binary: Option<SystemTime>,
}

/// coid's Sieve scripts named in `doveconf -n` (2.3 `sieve_before`,
/// `imapsieve_mailbox*_before`; 2.4 `sieve_script { path }`), as file paths.
pub fn coid_scripts(doveconf: &str) -> Vec<String> {
    let mut paths: Vec<String> = parse(doveconf)
        .into_iter()
        .filter(|s| {
            s.key.starts_with("sieve_before")
                || (s.key.starts_with("imapsieve_mailbox") && s.key.ends_with("_before"))
                || (s.key.ends_with("path")
                    && s.sections.iter().any(|h| h.starts_with("sieve_script")))
        })
        .map(|s| s.value.strip_prefix("file:").unwrap_or(&s.value).to_owned())
        .filter(|path| path.contains("/coid") && path.ends_with(".sieve"))
        .collect();
    paths.dedup();
    paths
}

/// Every Dovecot check.
pub fn check(doveconf: &str, want: &Expect<'_>) -> Vec<Finding> {
    let all = parse(doveconf);
    if all.is_empty() {
        return vec![Finding::error(
            Area::Dovecot,
            "doveconf -n printed no settings",
            "run coid doctor as root on the Dovecot host",
        )];
    }
    let mut out = vec![lmtp_listener(&all, want.lmtp)];
    if want.local_users {
        out.push(username_format(&all));
    }
    out.extend(sieve(&all, want.scripts));
    out.push(attribute_dict(&all, want.dict_socket));
    out.push(metadata(&all));
    out.extend(capabilities(&all));
    out.push(match seen_filter_on_mbox(doveconf) {
        Some(problem) => Finding::error(
            Area::Dovecot,
            problem,
            "in /etc/dovecot/local.conf: !include /etc/coid/dovecot/90-coid.conf and 91-coid-metadata.conf instead of coid.conf",
        ),
        None => Finding::ok(Area::Dovecot, "mail store: no seen filter on mbox"),
    });
    out
}

/// The values of `key` in the sections whose headers start with `sections` (outermost
/// first), or at the top level for `&[]`.
fn values<'a>(all: &'a [Setting], sections: &[&str], key: &str) -> Vec<&'a str> {
    all.iter()
        .filter(|s| s.key == key)
        .filter(|s| {
            s.sections.len() == sections.len()
                && s.sections.iter().zip(sections).all(|(h, want)| h == want)
        })
        .map(|s| s.value.as_str())
        .collect()
}

/// An LMTP listener where `[delivery.dovecot] lmtp` points.
fn lmtp_listener(all: &[Setting], lmtp: &str) -> Finding {
    let protocols = values(all, &[], "protocols");
    if let Some(p) = protocols.last()
        && !p.split_whitespace().any(|w| w == "lmtp")
    {
        return Finding::error(
            Area::Dovecot,
            format!("protocols = {p}: Dovecot runs no LMTP server for coid to deliver to"),
            "apt install dovecot-lmtpd (or add lmtp to protocols), then systemctl restart dovecot",
        );
    }
    let base = values(all, &[], "base_dir")
        .last()
        .map_or("/run/dovecot".to_owned(), |b| {
            b.trim_end_matches('/').to_owned()
        });
    let in_lmtp = |s: &&Setting| s.sections.first().is_some_and(|h| h == "service lmtp");
    let found = if lmtp.starts_with('/') {
        let default = format!("{base}/lmtp");
        lmtp == default
            || all.iter().filter(in_lmtp).any(|s| {
                s.sections
                    .get(1)
                    .and_then(|h| h.strip_prefix("unix_listener "))
                    .is_some_and(|name| {
                        let name = name.trim();
                        name == lmtp || format!("{base}/{name}") == lmtp
                    })
            })
    } else {
        let port = lmtp.rsplit_once(':').map_or("", |(_, p)| p);
        all.iter().filter(in_lmtp).any(|s| {
            s.key == "port"
                && s.value == port
                && s.sections
                    .get(1)
                    .is_some_and(|h| h.starts_with("inet_listener"))
        })
    };
    if found {
        Finding::ok(
            Area::Dovecot,
            format!("an LMTP listener at {lmtp} ([delivery.dovecot] lmtp)"),
        )
    } else {
        let listener = if lmtp.starts_with('/') {
            format!("service lmtp {{ unix_listener {lmtp} {{ user = coid }} }}")
        } else {
            format!(
                "service lmtp {{ inet_listener lmtp {{ address = 127.0.0.1; port = {} }} }}",
                lmtp.rsplit_once(':').map_or("PORT", |(_, p)| p)
            )
        };
        Finding::error(
            Area::Dovecot,
            format!(
                "no Dovecot LMTP listener at {lmtp} ([delivery.dovecot] lmtp): coid cannot deliver"
            ),
            format!(
                "in /etc/dovecot/local.conf: {listener} (or lmtp = \"{base}/lmtp\" in coid.toml)"
            ),
        )
    }
}

/// Local users reach Dovecot's LMTP as `bob@host`; a system userdb knows `bob`.
fn username_format(all: &[Setting]) -> Finding {
    let value = values(all, &["protocol lmtp"], "auth_username_format")
        .last()
        .map(|v| (*v).to_owned());
    let drops_domain = value.as_deref().is_some_and(|v| {
        ["%n", "%Ln", "%{if", "username", "regexp"]
            .iter()
            .any(|m| v.contains(m))
    });
    if drops_domain {
        Finding::ok(
            Area::Dovecot,
            format!(
                "protocol lmtp {{ auth_username_format = {} }}: local users found without their domain",
                value.unwrap_or_default()
            ),
        )
    } else {
        Finding::error(
            Area::Dovecot,
            format!(
                "mailbox_transport goes to coid, and protocol lmtp {{ auth_username_format = {} }} keeps the domain: \
                 every local user bounces with 550 5.1.1 User doesn't exist",
                value.as_deref().unwrap_or("(default %Lu)")
            ),
            "in /etc/dovecot/local.conf: protocol lmtp { auth_username_format = %Ln } (2.4: %{user | username | lower}; with virtual users too, see the README)",
        )
    }
}

/// The Sieve plugin at LMTP, coid's `sieve_before` script, and every coid script
/// compiled and not older than its source.
fn sieve(all: &[Setting], scripts: &[Script]) -> Vec<Finding> {
    let mut out = Vec::new();
    let plugin_23 = values(all, &["protocol lmtp"], "mail_plugins")
        .iter()
        .chain(values(all, &[], "mail_plugins").iter())
        .any(|v| v.split_whitespace().any(|w| w == "sieve"));
    let plugin_24 = values(all, &["protocol lmtp", "mail_plugins"], "sieve").contains(&"yes")
        || values(all, &["mail_plugins"], "sieve").contains(&"yes");
    out.push(if plugin_23 || plugin_24 {
        Finding::ok(Area::Dovecot, "protocol lmtp: the sieve plugin is loaded")
    } else {
        Finding::error(
            Area::Dovecot,
            "protocol lmtp has no sieve in mail_plugins: coid's routing (X-Coid-Folder) is never carried out, chats stay in INBOX",
            "apt install dovecot-sieve; in /etc/dovecot/local.conf: !include /etc/coid/dovecot/coid.conf (2.4: .../2.4/coid.conf)",
        )
    });
    if !scripts.iter().any(|s| s.path.ends_with("/coid.sieve")) {
        out.push(Finding::error(
            Area::Dovecot,
            "coid.sieve is not a sieve_before script: coid's routing is never carried out",
            "in /etc/dovecot/local.conf: !include /etc/coid/dovecot/coid.conf (2.4: .../2.4/coid.conf)",
        ));
    }
    for s in scripts {
        let svbin = format!("{}.svbin", s.path.trim_end_matches(".sieve"));
        out.push(match (s.source, s.binary) {
            (None, _) => Finding::error(
                Area::Dovecot,
                format!("{} is named in Dovecot's config but missing", s.path),
                "dpkg-reconfigure coid (reinstalls coid's scripts)",
            ),
            (Some(_), None) => Finding::error(
                Area::Dovecot,
                format!("{svbin} is missing: Dovecot compiles {} on each use, and cannot as the mail user", s.path),
                format!("sievec {}", s.path),
            ),
            (Some(src), Some(bin)) if bin < src => Finding::error(
                Area::Dovecot,
                format!("{svbin} is older than {}: Dovecot would recompile it on each use", s.path),
                format!("sievec {}", s.path),
            ),
            _ => Finding::ok(Area::Dovecot, format!("{} compiled ({svbin})", s.path)),
        });
    }
    out
}

/// METADATA through coid's dict socket.
fn attribute_dict(all: &[Setting], dict_socket: &str) -> Finding {
    let names: Vec<&str> = all
        .iter()
        // 2.4's doveconf -n may drop the filter's prefix inside `dict proxy { }`.
        .filter(|s| s.key == "mail_attribute_dict" || s.key.ends_with("socket_path"))
        .map(|s| s.value.as_str())
        .collect();
    if !dict_socket.is_empty() && names.iter().any(|v| v.contains(dict_socket)) {
        Finding::ok(
            Area::Dovecot,
            format!("mail_attribute_dict: coid's dict at {dict_socket}"),
        )
    } else {
        Finding::error(
            Area::Dovecot,
            format!(
                "mail_attribute_dict is {}, not coid's dict socket {dict_socket}: COI settings and push registrations never reach coid",
                names.last().copied().unwrap_or("unset")
            ),
            format!(
                "in /etc/dovecot/local.conf: mail_attribute_dict = proxy:{dict_socket}:coid (included by /etc/coid/dovecot/coid.conf)"
            ),
        )
    }
}

/// `imap_metadata = yes` (at the top or in `protocol imap`).
fn metadata(all: &[Setting]) -> Finding {
    let mut set = values(all, &[], "imap_metadata");
    set.extend(values(all, &["protocol imap"], "imap_metadata"));
    if set.last() == Some(&"yes") {
        Finding::ok(Area::Dovecot, "imap_metadata = yes")
    } else {
        Finding::error(
            Area::Dovecot,
            format!(
                "imap_metadata = {}: clients cannot use METADATA",
                set.last().copied().unwrap_or("no")
            ),
            "in /etc/dovecot/local.conf: protocol imap { imap_metadata = yes }",
        )
    }
}

/// `COI`, `WEBPUSH` and `XDELTAPUSH` among the IMAP capabilities.
fn capabilities(all: &[Setting]) -> Vec<Finding> {
    let mut words: Vec<&str> = all
        .iter()
        .filter(|s| s.key == "imap_capability")
        .flat_map(|s| s.value.split_whitespace())
        .map(|w| w.trim_start_matches('+'))
        .collect();
    words.extend(
        all.iter()
            .filter(|s| {
                s.sections.last().is_some_and(|h| h == "imap_capability") && s.value == "yes"
            })
            .map(|s| s.key.as_str()),
    );
    let fix = "in /etc/dovecot/local.conf: protocol imap { imap_capability = +COI WEBPUSH XDELTAPUSH } (2.4: imap_capability { COI = yes ... })";
    ["COI", "WEBPUSH", "XDELTAPUSH"]
        .iter()
        .map(|cap| {
            if words.contains(cap) {
                Finding::ok(Area::Dovecot, format!("imap_capability has {cap}"))
            } else if *cap == "XDELTAPUSH" {
                Finding::warning(
                    Area::Dovecot,
                    "imap_capability lacks XDELTAPUSH: Delta Chat before 2.58 registers no device token",
                    fix,
                )
            } else {
                Finding::error(
                    Area::Dovecot,
                    format!("imap_capability lacks {cap}: COI clients do not subscribe to push"),
                    fix,
                )
            }
        })
        .collect()
}

/// Why Dovecot's settings (`doveconf -n`) are refused: coid's seen filter is
/// included while mail is stored as mbox (2.3 `mail_location = mbox:…`, 2.4
/// `mail_driver = mbox`). Shared with `coid check-config`.
pub fn seen_filter_on_mbox(doveconf: &str) -> Option<String> {
    let lines = || doveconf.lines().map(str::trim);
    let mbox = lines().find(|line| {
        setting(line, "mail_location").is_some_and(|v| v.starts_with("mbox:"))
            || setting(line, "mail_driver") == Some("mbox")
    })?;
    if !lines().any(|line| !line.starts_with('#') && line.contains("coid-seen")) {
        return None;
    }
    Some(format!(
        "{mbox}, and coid's seen filter (92-coid-seen.conf) is included: on mbox the \
         seen filter leaves a copy of every chat it moves in INBOX (each chat is then \
         there twice). Store mail as Maildir (or sdbox/mdbox), or include only \
         90-coid.conf and 91-coid-metadata.conf instead of coid.conf and keep \
         message-filter to none or active"
    ))
}

#[cfg(test)]
#[path = "dovecot_tests.rs"]
mod tests;
